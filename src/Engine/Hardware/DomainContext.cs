namespace PtActors.Engine.Hardware;

/// <summary>An unmap whose flush has not completed yet: the stale window of its range opened at <c>TimeNs</c>.</summary>
internal readonly record struct UnmapRecord(ulong Start, ulong Last, ulong TimeNs);

/// <summary>One flush-queue entry: an unmapped IOVA range, its freed table pages, the flush counter at queueing.</summary>
internal struct FlushQueueEntry
{
    public long Id;
    public ulong Iova;
    public ulong Last;
    public ulong Counter;
    /// <summary>The freed table pages; created the first time this slot holds any and reused after.</summary>
    public PageList? Pages;
}

/// <summary>
/// A flush-queue ring (struct iova_fq): head..tail in use, full when one slot is left (capacity size − 1).
/// Its slots are allocated as the ring fills (doubling up to <see cref="Size"/>), so a domain costs what its
/// unmaps use rather than the ring's full size.
/// </summary>
internal sealed class FlushQueue
{
    private const int InitialSlots = 8;
    private FlushQueueEntry[] _slots = [];
    private int _mask = -1;
    private int _head;
    private int _tail;

    public FlushQueue(int size)
    {
        if (size < 2 || (size & (size - 1)) != 0)
            throw new ArgumentException("A flush queue's size must be a power of two of at least 2.", nameof(size));
        Size = size;
    }

    /// <summary>The ring's size: it holds at most <c>Size - 1</c> entries.</summary>
    public int Size { get; }

    /// <summary>Slots allocated so far.</summary>
    public int AllocatedSlots => _slots.Length;

    public bool IsFull => Count == Size - 1;

    public bool IsEmpty => _head == _tail;

    public int Count => (_tail - _head) & _mask;

    /// <summary>The oldest entry (the queue must not be empty).</summary>
    public ref FlushQueueEntry Oldest => ref _slots[_head];

    /// <summary>The entry <paramref name="i"/> places after the oldest (0 ≤ i &lt; <see cref="Count"/>).</summary>
    public ref FlushQueueEntry this[int i] => ref _slots[(_head + i) & _mask];

    /// <summary>Drops the oldest entry.</summary>
    public void RemoveOldest() => _head = (_head + 1) & _mask;

    /// <summary>Appends an entry and returns its slot, which still holds what an earlier entry left there.</summary>
    public ref FlushQueueEntry Add()
    {
        if (Count + 1 >= _slots.Length)
            Grow();
        ref var slot = ref _slots[_tail];
        _tail = (_tail + 1) & _mask;
        return ref slot;
    }

    private void Grow()
    {
        int length = _slots.Length == 0 ? Math.Min(Size, InitialSlots) : _slots.Length * 2;
        if (length > Size)
            throw new InvalidOperationException("The flush queue is full.");
        // Oldest first; the free slots follow with their page lists, to be reused.
        var slots = new FlushQueueEntry[length];
        for (int i = 0; i < _slots.Length; i++)
            slots[i] = _slots[(_head + i) & _mask];
        int count = Count;
        _slots = slots;
        _mask = length - 1;
        _head = 0;
        _tail = count;
    }
}

/// <summary>
/// What a unit keeps per bound domain: its id, its unflushed unmaps and its flush-policy state. What a policy
/// does not use is never allocated, and what it uses only when it happens (the flush queues' slots, the timers,
/// the gather) is allocated on first use.
/// </summary>
internal sealed class DomainContext
{
    private IotlbGather? _gather;
    private List<(ulong Start, ulong Last)>? _scratch;
    private List<(ulong Start, ulong Last)>? _syncedBatchRanges;

    public DomainContext(IommuDomain domain, int id, IommuUnitConfig config)
    {
        Domain = domain;
        Id = id;
        switch (config.Policy.Kind)
        {
            case FlushPolicyKind.Lazy:
                Queues = new FlushQueue[config.Cpus];
                for (int i = 0; i < Queues.Length; i++)
                    Queues[i] = new FlushQueue(config.FlushQueueSize);
                break;
            case FlushPolicyKind.LazySingle:
                Queues = [new FlushQueue(config.SingleQueueSize)];
                break;
            case FlushPolicyKind.Batch:
                Batch = new IotlbGather();
                break;
        }
    }

    /// <summary>The table the unit walks (replaced by <see cref="IommuUnit.Rebind"/>).</summary>
    public IommuDomain Domain { get; set; }

    public int Id { get; }

    /// <summary>Unmaps not yet covered by a completed flush, oldest first.</summary>
    public readonly List<UnmapRecord> Unflushed = new();

    /// <summary>The gather of one strict or lazy unmap.</summary>
    public IotlbGather Gather => _gather ??= new IotlbGather();

    // dma-iommu flush queue (lazy, lazy-single)
    public readonly FlushQueue[]? Queues;
    public ulong FlushStartCount;
    public ulong FlushFinishCount;
    public bool TimerOn;
    /// <summary>The flush-queue timeout, re-armed whenever the queue starts holding entries again.</summary>
    public TimerEvent? QueueTimer;

    // batch:N
    public readonly IotlbGather? Batch;
    public int BatchCount;
    /// <summary>The batch idle timeout, re-armed at every unmap.</summary>
    public TimerEvent? BatchTimer;
    public readonly List<(long Id, ulong Iova, ulong Last)> BatchIds = new();
    /// <summary>Ranges of batch syncs that completed and whose IOVA is not reported released yet.</summary>
    public List<(ulong Start, ulong Last)> SyncedBatchRanges => _syncedBatchRanges ??= new();
    public List<(ulong Start, ulong Last)>? SyncedBatchRangesOrNull => _syncedBatchRanges;

    /// <summary>Scratch for the union of unflushed ranges.</summary>
    public List<(ulong Start, ulong Last)> Scratch => _scratch ??= new();
}
