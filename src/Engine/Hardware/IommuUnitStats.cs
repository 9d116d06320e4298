using System.Globalization;
using System.Text;

namespace PtActors.Engine.Hardware;

/// <summary>The counters of one IOMMU unit, and the first event of each safety checker that fired.</summary>
public sealed class IommuUnitStats
{
    /// <summary>DMAs translated by an IOTLB hit.</summary>
    public long Hits;
    /// <summary>DMAs that missed the IOTLB and walked.</summary>
    public long Misses;
    /// <summary>IO page faults.</summary>
    public long Faults;
    /// <summary>Invalidation commands of every kind.</summary>
    public long Invalidations;
    /// <summary>Whole-domain invalidation commands.</summary>
    public long DomainInvalidations;
    /// <summary>Global invalidation commands.</summary>
    public long GlobalInvalidations;
    /// <summary>Bytes covered by page-selective commands.</summary>
    public long InvalidatedBytes;
    /// <summary>Page-selective bytes beyond the union of the ranges unmapped since the domain's previous flush.</summary>
    public long OverInvalidatedBytes;
    /// <summary>Summed invalidation latency.</summary>
    public long InvalidationBusyNs;
    /// <summary>IOTLB flushes (syncs and flush-queue flushes).</summary>
    public long Flushes;
    /// <summary>Flushes that a timeout caused.</summary>
    public long TimedFlushes;
    /// <summary>Stale hits while an unflushed unmap covered the IOVA (allowed under lazy).</summary>
    public long StaleInWindow;
    /// <summary>Stale hits after the covering flush completed.</summary>
    public long StaleViolations;
    /// <summary>Longest stale window observed (now minus the earliest covering unmap).</summary>
    public long MaxStaleWindowNs;
    /// <summary>Walks that read a table page already returned to the allocator.</summary>
    public long UseAfterFree;
    /// <summary>DMAs translated through a domain the device is not attached to.</summary>
    public long IsolationBreaches;
    /// <summary>First stale hit in a window.</summary>
    public string? FirstStaleInWindow;
    /// <summary>First stale violation.</summary>
    public string? FirstStaleViolation;
    /// <summary>First use-after-free.</summary>
    public string? FirstUseAfterFree;
    /// <summary>First isolation breach.</summary>
    public string? FirstIsolationBreach;

    /// <summary>A copy of the counters as they are now (for handing to another thread).</summary>
    public IommuUnitStats Snapshot() => (IommuUnitStats)MemberwiseClone();

    /// <summary>Adds <paramref name="other"/>'s counts (the longest stale window is the larger one; the firsts stay this one's unless unset).</summary>
    public void Add(IommuUnitStats other)
    {
        ArgumentNullException.ThrowIfNull(other);
        Hits += other.Hits;
        Misses += other.Misses;
        Faults += other.Faults;
        Invalidations += other.Invalidations;
        DomainInvalidations += other.DomainInvalidations;
        GlobalInvalidations += other.GlobalInvalidations;
        InvalidatedBytes += other.InvalidatedBytes;
        OverInvalidatedBytes += other.OverInvalidatedBytes;
        InvalidationBusyNs += other.InvalidationBusyNs;
        Flushes += other.Flushes;
        TimedFlushes += other.TimedFlushes;
        StaleInWindow += other.StaleInWindow;
        StaleViolations += other.StaleViolations;
        MaxStaleWindowNs = Math.Max(MaxStaleWindowNs, other.MaxStaleWindowNs);
        UseAfterFree += other.UseAfterFree;
        IsolationBreaches += other.IsolationBreaches;
        FirstStaleInWindow ??= other.FirstStaleInWindow;
        FirstStaleViolation ??= other.FirstStaleViolation;
        FirstUseAfterFree ??= other.FirstUseAfterFree;
        FirstIsolationBreach ??= other.FirstIsolationBreach;
    }

    /// <summary>IOTLB hit rate (0 when nothing was translated).</summary>
    public double HitRate => Hits + Misses == 0 ? 0 : (double)Hits / (Hits + Misses);

    /// <summary>The counters as ` key=value` fields in a fixed order (decimal), first events last.</summary>
    public string ToFields()
    {
        var sb = new StringBuilder();
        void F(string key, long value) => sb.Append(' ').Append(key).Append('=').Append(value.ToString(CultureInfo.InvariantCulture));
        F("hits", Hits);
        F("misses", Misses);
        F("faults", Faults);
        F("invalidations", Invalidations);
        F("domain_invalidations", DomainInvalidations);
        F("global_invalidations", GlobalInvalidations);
        F("invalidated_bytes", InvalidatedBytes);
        F("over_invalidated_bytes", OverInvalidatedBytes);
        F("inv_busy_ns", InvalidationBusyNs);
        F("flushes", Flushes);
        F("stale_in_window", StaleInWindow);
        F("max_stale_window_ns", MaxStaleWindowNs);
        F("stale_violations", StaleViolations);
        F("use_after_free", UseAfterFree);
        F("isolation_breaches", IsolationBreaches);
        if (FirstStaleInWindow is not null)
            sb.Append(" first_stale_in_window=").Append(FirstStaleInWindow);
        if (FirstStaleViolation is not null)
            sb.Append(" first_stale_violation=").Append(FirstStaleViolation);
        if (FirstUseAfterFree is not null)
            sb.Append(" first_use_after_free=").Append(FirstUseAfterFree);
        if (FirstIsolationBreach is not null)
            sb.Append(" first_isolation_breach=").Append(FirstIsolationBreach);
        return sb.ToString();
    }
}

/// <summary>Why a DMA faulted.</summary>
public enum FaultReason : byte
{
    /// <summary>No fault.</summary>
    None,
    /// <summary>The device is not attached to any domain.</summary>
    NotAttached,
    /// <summary>Nothing maps the IOVA.</summary>
    Unmapped,
    /// <summary>The leaf lacks the permission the DMA needs.</summary>
    Permission,
}

/// <summary>How a DMA was translated.</summary>
public enum DmaOutcome : byte
{
    /// <summary>An IOTLB hit that agrees with the page table.</summary>
    Hit,
    /// <summary>A miss and a walk.</summary>
    Miss,
    /// <summary>A cached translation the page table no longer gives.</summary>
    Stale,
    /// <summary>An IO page fault.</summary>
    Fault,
}

/// <summary>The result of one DMA: outcome, full translated address, fault reason.</summary>
public readonly record struct DmaResult(DmaOutcome Outcome, ulong Pa, FaultReason Reason = FaultReason.None);

/// <summary>An io_page_fault event as the kernel traces it.</summary>
public readonly record struct IoPageFault(string Device, ulong Iova, int Flags, FaultReason Reason, ulong TimeNs)
{
    /// <summary>IOMMU_FAULT_READ.</summary>
    public const int Read = 0x0;
    /// <summary>IOMMU_FAULT_WRITE.</summary>
    public const int Write = 0x1;
}
