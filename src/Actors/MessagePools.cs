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
    /// <summary>Arrays kept per size class.</summary>
    private const int MaxPooledPerClass = 256;

    /// <summary>The smallest array handed out (2^4 items).</summary>
    private const int MinClass = 4;

    /// <summary>
    /// Free arrays by size class: class c holds arrays of at least 2^c items, so any of them serves a request of up to
    /// 2^c. Requests are rounded up to a power of two, so an array goes back to the class it came from, and a window
    /// of another size never throws away the arrays of this one (the pool used to drop every array too small for
    /// the request at hand: measured as a steady stream of new arrays in a profile of <c>simulate</c>).
    /// </summary>
    private readonly Stack<T[]>[] _free = new Stack<T[]>[31];

    public MessageArrayPool()
    {
        for (int c = 0; c < _free.Length; c++)
            _free[c] = new Stack<T[]>();
    }

    /// <summary>An array of at least <paramref name="minLength"/> items (contents undefined).</summary>
    public T[] Rent(int minLength)
    {
        int c = Math.Max(MinClass, System.Numerics.BitOperations.Log2((uint)Math.Max(1, minLength) - 1) + 1);
        if (c >= _free.Length)
            return GC.AllocateUninitializedArray<T>(minLength);
        // Its own class first, then up to four times larger (a window smaller than the last reuses its arrays).
        for (int k = c; k < Math.Min(c + 3, _free.Length); k++)
        {
            var stack = _free[k];
            lock (stack)
            {
                if (stack.TryPop(out var array))
                    return array;
            }
        }
        return GC.AllocateUninitializedArray<T>(1 << c);
    }

    /// <summary>Gives back the array behind <paramref name="items"/>; its sender no longer touches it, nor may the caller.</summary>
    public void Return(ReadOnlyMemory<T> items)
    {
        if (!MemoryMarshal.TryGetArray(items, out var segment) || segment.Array is not { Length: >= 1 << MinClass } array)
            return;
        int c = System.Numerics.BitOperations.Log2((uint)array.Length);
        if (c >= _free.Length)
            return;
        var stack = _free[c];
        lock (stack)
        {
            if (stack.Count < MaxPooledPerClass)
                stack.Push(array);
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
