namespace PtActors.Engine.Hardware;

/// <summary>The IOTLB flush batching policies.</summary>
public enum FlushPolicyKind
{
    /// <summary>Invalidate at every unmap (IOMMU_DOMAIN_DMA).</summary>
    Strict,
    /// <summary>The dma-iommu flush queue: per-CPU rings of 256 entries, a 10 ms timeout (IOMMU_DOMAIN_DMA_FQ).</summary>
    Lazy,
    /// <summary>The flush queue's single-queue variant: one 32768-entry ring, 1000 ms (shadowing IOMMUs).</summary>
    LazySingle,
    /// <summary>Gather N unmaps of a domain, then one sync; also sync after 1 ms with nothing new.</summary>
    Batch,
    /// <summary>
    /// No translation at all: the identity domain of Linux's <c>iommu.passthrough=1</c>, where the DMA API maps to
    /// physical addresses directly. A setting of the simulator (the baseline its costs are read against), never of
    /// an IOMMU unit: scripts and replays refuse it.
    /// </summary>
    Passthrough,
}

/// <summary>A policy and its parameter, as written in a script or on the command line.</summary>
public readonly record struct FlushPolicySpec(FlushPolicyKind Kind, int BatchSize = 0)
{
    /// <summary>strict.</summary>
    public static FlushPolicySpec Strict => new(FlushPolicyKind.Strict);

    /// <summary>Parses <c>strict</c>, <c>lazy</c>, <c>lazy-single</c>, <c>batch:N</c> (N ≥ 1) or <c>passthrough</c>.</summary>
    public static bool TryParse(string text, out FlushPolicySpec spec)
    {
        spec = Strict;
        switch (text)
        {
            case "strict":
                return true;
            case "lazy":
                spec = new(FlushPolicyKind.Lazy);
                return true;
            case "lazy-single":
                spec = new(FlushPolicyKind.LazySingle);
                return true;
            case "passthrough":
                spec = new(FlushPolicyKind.Passthrough);
                return true;
        }
        if (text.StartsWith("batch:", StringComparison.Ordinal)
            && int.TryParse(text.AsSpan(6), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n)
            && n >= 1)
        {
            spec = new(FlushPolicyKind.Batch, n);
            return true;
        }
        return false;
    }

    /// <inheritdoc/>
    public override string ToString() => Kind switch
    {
        FlushPolicyKind.Strict => "strict",
        FlushPolicyKind.Lazy => "lazy",
        FlushPolicyKind.LazySingle => "lazy-single",
        FlushPolicyKind.Passthrough => "passthrough",
        _ => $"batch:{BatchSize}",
    };
}

/// <summary>Everything an IOMMU unit is configured with.</summary>
public sealed record IommuUnitConfig
{
    /// <summary>IOTLB geometry (default 1024 entries, 8 ways, LRU).</summary>
    public IotlbConfig Iotlb { get; init; } = new();
    /// <summary>Walk-cache geometry (default gem5 SMMUv3).</summary>
    public WalkCacheConfig WalkCache { get; init; } = new();
    /// <summary>Flush policy (default strict).</summary>
    public FlushPolicySpec Policy { get; init; } = FlushPolicySpec.Strict;
    /// <summary>CPUs for the per-CPU flush queues; each unmap names its CPU (the simulator: a device's index in its domain mod this).</summary>
    public int Cpus { get; init; } = 1;
    /// <summary>Latency of one invalidation command, summed as busy time (an assumption: 1 µs by default).</summary>
    public ulong InvalidationNs { get; init; } = 1000;
    /// <summary>How page-selective invalidations are encoded.</summary>
    public InvalidationFlavor Flavor { get; init; } = InvalidationFlavor.Amd;
    /// <summary>VT-d: the largest address mask a PSI may carry before it becomes domain-selective.</summary>
    public int VtdMaxAddressMask { get; init; } = 18;
    /// <summary>Entries per flush-queue ring (per CPU).</summary>
    public int FlushQueueSize { get; init; } = 256;
    /// <summary>Flush-queue timeout.</summary>
    public ulong FlushQueueTimeoutNs { get; init; } = 10_000_000;
    /// <summary>Entries of the single flush queue.</summary>
    public int SingleQueueSize { get; init; } = 32768;
    /// <summary>Single flush-queue timeout.</summary>
    public ulong SingleQueueTimeoutNs { get; init; } = 1_000_000_000;
    /// <summary>batch:N syncs when no unmap arrived for this long.</summary>
    public ulong BatchIdleNs { get; init; } = 1_000_000;
    /// <summary>Deliberately broken: table pages go back to the allocator at unmap, before the flush.</summary>
    public bool FreeTablesBeforeFlush { get; init; }
    /// <summary>What the unit's work costs on the simulated clock (<see cref="IommuUnit.Costs"/>); its invalidation latency is <see cref="Cost.CostModel.InvalidationNs"/>.</summary>
    public Cost.CostModel Cost { get; init; } = PtActors.Engine.Cost.CostModel.Default;
    /// <summary>Deliberately broken: attach and detach leave the hardware's cached device context alone.</summary>
    public bool SkipContextInvalidation { get; init; }
}
