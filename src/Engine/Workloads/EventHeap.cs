using System.Runtime.CompilerServices;

namespace PtActors.Engine.Workloads;

/// <summary>
/// A device's scheduled action: at <see cref="Stamp"/>, handle <see cref="Kind"/> for <see cref="Slot"/>. 24 bytes.
/// Events run in (<see cref="Stamp"/>, <see cref="Prio"/>, <see cref="Order"/>) order.
/// </summary>
internal struct WorkEvent
{
    public ulong Stamp;
    public ulong Arg;

    /// <summary>Push order, set by the <see cref="EventHeap"/>: ties are handled first come, first served.</summary>
    public uint Order;

    public ushort Slot;
    public byte Kind;

    /// <summary>On equal stamps the lower runs first (releases before new work).</summary>
    public byte Prio;

    /// <summary>What breaks a tie of stamps: the priority, then the push order.</summary>
    public readonly ulong TieBreak => ((ulong)Prio << 32) | Order;
}

/// <summary>
/// A binary min-heap of <see cref="WorkEvent"/> by (stamp, priority, push order): deterministic, since no two events
/// tie. It starts small and grows by half when full, so a device pays for the events it keeps rather than for a worst
/// case, and does not allocate once grown. The heap numbers the events it is given (<see cref="Push"/>); an event
/// taken out and put back (<see cref="Reinsert"/>) keeps its number, hence its place among its peers.
/// <para>
/// A pop leaves the root vacant until the next operation: a push right after it (an action scheduling its successor,
/// the common case) takes the root's place with one sift-down, instead of a sift-down to fill the root and a sift-up
/// for the new event.
/// </para>
/// </summary>
internal sealed class EventHeap
{
    /// <summary>
    /// Push orders <see cref="EnsureOrderHeadroom"/> keeps available: more than a device can push between two of its
    /// calls (one per event handled and one per reply; an action schedules at most a few thousand events).
    /// </summary>
    internal const uint OrderHeadroom = 1 << 24;

    private const int MinCapacity = 4;

    private WorkEvent[] _items;
    private int _size;          // slots in use, the vacant root included
    private bool _rootVacant;   // the root was popped and not refilled yet
    private uint _nextOrder;

    /// <summary>An empty heap with room for <paramref name="capacity"/> events (at least 4).</summary>
    public EventHeap(int capacity = MinCapacity) => _items = new WorkEvent[Math.Max(MinCapacity, capacity)];

    /// <summary>An empty heap whose first event gets push order <paramref name="firstOrder"/> (to test renumbering).</summary>
    internal EventHeap(int capacity, uint firstOrder)
        : this(capacity) => _nextOrder = firstOrder;

    /// <summary>Events held.</summary>
    public int Count => _rootVacant ? _size - 1 : _size;

    /// <summary>Events it can hold before it grows.</summary>
    public int Capacity => _items.Length;

    /// <summary>The order the next pushed event gets.</summary>
    public uint NextOrder => _nextOrder;

    /// <summary>Adds an event, numbered after every event pushed before.</summary>
    /// <exception cref="InvalidOperationException">Push orders ran out: <see cref="EnsureOrderHeadroom"/> was not called.</exception>
    public void Push(ulong stamp, byte prio, byte kind, ushort slot, ulong arg)
    {
        if (_nextOrder == uint.MaxValue)
            throw new InvalidOperationException("The event heap ran out of push orders.");
        var e = new WorkEvent { Stamp = stamp, Arg = arg, Order = _nextOrder++, Slot = slot, Kind = kind, Prio = prio };
        Insert(in e);
    }

    /// <summary>Puts back an event taken out by <see cref="TryPopBefore"/>, at <paramref name="stamp"/>, keeping its order.</summary>
    public void Reinsert(in WorkEvent e, ulong stamp)
    {
        var moved = e;
        moved.Stamp = stamp;
        Insert(in moved);
    }

    /// <summary>Removes the first event into <paramref name="e"/> if one is stamped before <paramref name="limit"/>.</summary>
    public bool TryPopBefore(ulong limit, out WorkEvent e)
    {
        FillVacantRoot();
        if (_size == 0 || _items[0].Stamp >= limit)
        {
            e = default;
            return false;
        }
        e = _items[0];
        _rootVacant = true;
        return true;
    }

    /// <summary>The stamp of the first event into <paramref name="stamp"/>; false when the heap is empty.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryPeekStamp(out ulong stamp)
    {
        FillVacantRoot();
        stamp = _size == 0 ? 0 : _items[0].Stamp;
        return _size != 0;
    }

    /// <summary>
    /// When fewer than <see cref="OrderHeadroom"/> push orders are left, renumbers the events held from 0 in their
    /// order (their relative order, so the heap and what it pops, do not change). Call it only when no event taken out
    /// is waiting to be reinserted.
    /// </summary>
    public void EnsureOrderHeadroom()
    {
        if (_nextOrder > uint.MaxValue - OrderHeadroom)
            Renumber();
    }

    private void Renumber()
    {
        FillVacantRoot();
        var items = _items;
        var byOrder = new int[_size];
        for (int i = 0; i < byOrder.Length; i++)
            byOrder[i] = i;
        Array.Sort(byOrder, (a, b) => items[a].Order.CompareTo(items[b].Order));
        for (int rank = 0; rank < byOrder.Length; rank++)
            items[byOrder[rank]].Order = (uint)rank;
        _nextOrder = (uint)byOrder.Length;
    }

    private void Insert(in WorkEvent e)
    {
        if (_rootVacant)
        {
            _rootVacant = false;
            SiftDown(in e, _size);
            return;
        }
        if (_size == _items.Length)
            Array.Resize(ref _items, _items.Length + (_items.Length >> 1));
        var items = _items;
        int i = _size++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (!Less(in e, in items[parent]))
                break;
            items[i] = items[parent];
            i = parent;
        }
        items[i] = e;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void FillVacantRoot()
    {
        if (_rootVacant)
            FillRoot();
    }

    /// <summary>Fills the vacant root with the last event.</summary>
    private void FillRoot()
    {
        _rootVacant = false;
        int last = --_size;
        if (last > 0)
            SiftDown(in _items[last], last);
    }

    /// <summary>Places <paramref name="e"/> at the root of the first <paramref name="size"/> slots, pulling smaller children up until it fits.</summary>
    private void SiftDown(in WorkEvent e, int size)
    {
        var items = _items;
        var moving = e; // e may be a slot this overwrites
        int i = 0, child = 1;
        while (child < size)
        {
            if (child + 1 < size && Less(in items[child + 1], in items[child]))
                child++;
            if (!Less(in items[child], in moving))
                break;
            items[i] = items[child];
            i = child;
            child = 2 * i + 1;
        }
        items[i] = moving;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Less(in WorkEvent a, in WorkEvent b) => a.Stamp != b.Stamp ? a.Stamp < b.Stamp : a.TieBreak < b.TieBreak;
}
