namespace PtActors.Engine.Workloads;

/// <summary>A device's scheduled action: at <see cref="Stamp"/>, handle <see cref="Kind"/> for <see cref="Slot"/>.</summary>
internal struct WorkEvent
{
    public ulong Stamp;
    public ulong Order; // push order: ties are handled first come, first served
    public ulong Arg;
    public int Slot;
    public byte Kind;
    public byte Prio;   // on equal stamps the lower first (releases before new work)
}

/// <summary>A binary min-heap of <see cref="WorkEvent"/> by (stamp, priority, order): deterministic, no allocation once grown.</summary>
internal sealed class EventHeap
{
    private WorkEvent[] _items;

    public EventHeap(int capacity) => _items = new WorkEvent[Math.Max(4, capacity)];

    public int Count { get; private set; }

    public ulong PeekStamp => _items[0].Stamp;

    public void Push(in WorkEvent e)
    {
        if (Count == _items.Length)
            Array.Resize(ref _items, _items.Length * 2);
        int i = Count++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (!Less(e, _items[parent]))
                break;
            _items[i] = _items[parent];
            i = parent;
        }
        _items[i] = e;
    }

    public WorkEvent Pop()
    {
        var top = _items[0];
        var last = _items[--Count];
        int i = 0;
        while (true)
        {
            int child = 2 * i + 1;
            if (child >= Count)
                break;
            if (child + 1 < Count && Less(_items[child + 1], _items[child]))
                child++;
            if (!Less(_items[child], last))
                break;
            _items[i] = _items[child];
            i = child;
        }
        if (Count > 0)
            _items[i] = last;
        return top;
    }

    private static bool Less(in WorkEvent a, in WorkEvent b)
        => a.Stamp != b.Stamp ? a.Stamp < b.Stamp : a.Prio != b.Prio ? a.Prio < b.Prio : a.Order < b.Order;
}
