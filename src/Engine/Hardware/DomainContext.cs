namespace PtActors.Engine.Hardware;

/// <summary>An unmap whose flush has not completed yet: the stale window of its range opened at <c>TimeNs</c>.</summary>
internal readonly record struct UnmapRecord(ulong Start, ulong Last, ulong TimeNs);

/// <summary>One flush-queue entry: an unmapped IOVA range, its freed table pages, the flush counter at queueing.</summary>
internal sealed class FlushQueueEntry
{
    public long Id = -1;
    public ulong Iova;
    public ulong Last;
    public ulong Counter;
    public readonly PageList Pages = new();
}

/// <summary>
/// A flush-queue ring (struct iova_fq): head..tail in use, full when one slot is left (capacity size − 1).
/// </summary>
internal sealed class FlushQueue
{
    public readonly FlushQueueEntry[] Entries;
    public readonly int Mask;
    public int Head;
    public int Tail;

    public FlushQueue(int size)
    {
        if (size < 2 || (size & (size - 1)) != 0)
            throw new ArgumentException("A flush queue's size must be a power of two of at least 2.", nameof(size));
        Entries = new FlushQueueEntry[size];
        for (int i = 0; i < size; i++)
            Entries[i] = new FlushQueueEntry();
        Mask = size - 1;
    }

    public bool IsFull => ((Tail + 1) & Mask) == Head;

    public int Count => (Tail - Head) & Mask;
}

/// <summary>What a unit keeps per bound domain: its id, its unflushed unmaps and its flush-policy state.</summary>
internal sealed class DomainContext
{
    public DomainContext(IommuDomain domain, int id, IommuUnit unit)
    {
        Domain = domain;
        Id = id;
        var cfg = unit.Config;
        switch (cfg.Policy.Kind)
        {
            case FlushPolicyKind.Lazy:
                Queues = new FlushQueue[cfg.Cpus];
                for (int i = 0; i < Queues.Length; i++)
                    Queues[i] = new FlushQueue(cfg.FlushQueueSize);
                break;
            case FlushPolicyKind.LazySingle:
                Queues = [new FlushQueue(cfg.SingleQueueSize)];
                break;
            case FlushPolicyKind.Batch:
                Batch = new IotlbGather();
                break;
        }
    }

    public IommuDomain Domain { get; }

    public int Id { get; }

    /// <summary>Unmaps not yet covered by a completed flush, oldest first.</summary>
    public readonly List<UnmapRecord> Unflushed = new();

    /// <summary>The gather of one strict or lazy unmap.</summary>
    public readonly IotlbGather Gather = new();

    // dma-iommu flush queue (lazy, lazy-single)
    public readonly FlushQueue[]? Queues;
    public ulong FlushStartCount;
    public ulong FlushFinishCount;
    public bool TimerOn;

    // batch:N
    public readonly IotlbGather? Batch;
    public int BatchCount;
    public TimerEvent? BatchTimer;
    public readonly List<(long Id, ulong Iova, ulong Last)> BatchIds = new();

    // scratch for the union of unflushed ranges
    public readonly List<(ulong Start, ulong Last)> Scratch = new();
}
