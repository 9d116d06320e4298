using System.Runtime.InteropServices;
using PtActors.Engine.Hardware;

namespace PtActors.Actors;

/// <summary>
/// Arrays of one element type that a run's messages carry and their receivers give back once consumed. Only
/// messages nobody keeps are pooled: results (host), unmap notices and DMAs (unit, which copies them on
/// receipt), released unmap ids (domain, likewise). Operations are not: they become journal events.
/// Thread-safe; one instance per run, shared by its actors (no process-wide state).
/// </summary>
public sealed class MessageArrayPool<T> where T : unmanaged
{
    private const int MaxPooled = 1024;
    private readonly Stack<T[]> _free = new();

    /// <summary>An array of at least <paramref name="minLength"/> items (contents undefined).</summary>
    public T[] Rent(int minLength)
    {
        lock (_free)
        {
            while (_free.Count > 0)
            {
                var array = _free.Pop();
                if (array.Length >= minLength)
                    return array;
                // Too small for what this sender needs now: let it go.
            }
        }
        return GC.AllocateUninitializedArray<T>(minLength);
    }

    /// <summary>Gives back the array behind <paramref name="items"/>; its sender no longer touches it, nor may the caller.</summary>
    public void Return(ReadOnlyMemory<T> items)
    {
        if (!MemoryMarshal.TryGetArray(items, out var segment) || segment.Array is not { Length: > 0 } array)
            return;
        lock (_free)
        {
            if (_free.Count < MaxPooled)
                _free.Push(array);
        }
    }
}

/// <summary>The pools of one run's message arrays.</summary>
public sealed class MessagePools
{
    /// <summary>Domain → host results.</summary>
    public MessageArrayPool<PtActors.Engine.Dma.DmaOpResult> Results { get; } = new();

    /// <summary>Domain → unit unmap notices.</summary>
    public MessageArrayPool<PtActors.Engine.Dma.UnmapNotice> Notices { get; } = new();

    /// <summary>Host → unit DMAs.</summary>
    public MessageArrayPool<DmaAccess> Dmas { get; } = new();

    /// <summary>Unit → domain released unmap ids.</summary>
    public MessageArrayPool<long> Releases { get; } = new();
}
