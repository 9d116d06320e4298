namespace PtActors.Actors;

/// <summary>
/// Items collected for one message, handed over without a copy: <see cref="Take"/> gives the receiver the
/// array the items were written into and starts a new one. A window's messages carry thousands of operations,
/// results or DMAs; copying each list into an exact-size array (what <c>List.ToArray</c> does) was a tenth of a
/// run's CPU. The array handed over is never written again by the sender, so a message stays immutable.
/// </summary>
internal sealed class Outbox<T>
{
    private const int MinCapacity = 16;
    private T[] _items;
    private int _count;

    /// <summary>An empty outbox.</summary>
    public Outbox(int capacity = MinCapacity) => _items = new T[Math.Max(MinCapacity, capacity)];

    /// <summary>Items collected since the last <see cref="Take"/>.</summary>
    public int Count => _count;

    /// <summary>The items collected, in order (valid until the next <see cref="Add"/> or <see cref="Take"/>).</summary>
    public Span<T> Items => _items.AsSpan(0, _count);

    /// <summary>Appends one item.</summary>
    public void Add(in T item)
    {
        if (_count == _items.Length)
            Array.Resize(ref _items, _items.Length * 2);
        _items[_count++] = item;
    }

    /// <summary>
    /// The items collected, as memory the caller now owns, and a fresh array for what comes next (sized for a
    /// window like this one). Empty memory when nothing was collected.
    /// </summary>
    public ReadOnlyMemory<T> Take()
    {
        if (_count == 0)
            return ReadOnlyMemory<T>.Empty;
        var taken = new ReadOnlyMemory<T>(_items, 0, _count);
        _items = new T[Math.Max(MinCapacity, _count + (_count >> 3))];
        _count = 0;
        return taken;
    }
}
