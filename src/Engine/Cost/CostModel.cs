namespace PtActors.Engine.Cost;

/// <summary>
/// What work costs on the simulated clock (docs/model.md gives each number's source). CPUs run the DMA API calls,
/// each IOMMU unit's invalidation queue runs commands one after the other, and its translation pipeline walks
/// misses with a bounded number of walks in flight. Times are nanoseconds of simulated time.
/// </summary>
public sealed record CostModel
{
    /// <summary>The defaults (config/cost-model.conf states them with their sources).</summary>
    public static CostModel Default { get; } = new();

    /// <summary>iommu_map of one 4 KiB page: the call's fixed cost (SPEC.md §6.1, AMDv1 2^12 avg, i7-12700).</summary>
    public double MapCallNs { get; init; } = 53;
    /// <summary>Each further page of one iommu_map call ((386 − 53) / 255, SPEC.md §6.1, 256·2^12).</summary>
    public double MapPageNs { get; init; } = 1.3;
    /// <summary>iommu_unmap of one 4 KiB page (SPEC.md §6.1, AMDv1 2^12 avg).</summary>
    public double UnmapCallNs { get; init; } = 69;
    /// <summary>Each further page of one iommu_unmap call ((353 − 69) / 255, SPEC.md §6.1).</summary>
    public double UnmapPageNs { get; init; } = 1.1;
    /// <summary>dma-iommu's own work per dma_map or dma_unmap call around the page-table call (an assumption).</summary>
    public double DmaCallNs { get; init; } = 100;
    /// <summary>An IOVA allocation served by the CPU's IOVA cache (magazines; an assumption).</summary>
    public double IovaCacheHitNs { get; init; } = 40;
    /// <summary>An IOVA allocation the CPU's cache cannot serve: the depot or the rbtree under its lock (an assumption).</summary>
    public double IovaCacheMissNs { get; init; } = 1000;
    /// <summary>Returning an IOVA to the CPU's cache (an assumption).</summary>
    public double IovaFreeNs { get; init; } = 40;
    /// <summary>IOVAs one magazine holds (IOVA_MAG_SIZE, drivers/iommu/iova.c); a CPU keeps two (loaded and prev).</summary>
    public int IovaMagazineSize { get; init; } = 127;
    /// <summary>Largest cached allocation, log2 of pages (IOVA_RANGE_CACHE_MAX_SIZE − 1 = 5: up to 32 pages).</summary>
    public int IovaCacheMaxOrder { get; init; } = 5;
    /// <summary>Queueing an unmapped range on the CPU's flush-queue ring under lazy (an assumption).</summary>
    public double FlushQueueNs { get; init; } = 50;
    /// <summary>CPU time to write an invalidation and its completion wait to the queue (an assumption).</summary>
    public double InvalidationSubmitNs { get; init; } = 200;
    /// <summary>Time the unit takes to complete one invalidation command; commands complete one after another (an assumption).</summary>
    public double InvalidationNs { get; init; } = 1000;
    /// <summary>One memory read of a page walk (an assumption: a DRAM access).</summary>
    public double WalkReadNs { get; init; } = 90;
    /// <summary>A translation served by the IOTLB (an assumption).</summary>
    public double IotlbHitNs { get; init; } = 2;
    /// <summary>Translations a unit works on at once (an assumption).</summary>
    public int TranslationsInFlight { get; init; } = 32;

    /// <summary>Why the model cannot be used, or null: every time finite and ≥ 0, the counts ≥ 1.</summary>
    public string? Problem()
    {
        foreach (var (name, value) in Times())
        {
            if (!double.IsFinite(value) || value < 0 || value > 1e9)
                return $"{name} must be a number of nanoseconds from 0 to 1e9, not {value.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
        }
        if (IovaMagazineSize is < 1 or > 1_000_000)
            return $"iova-magazine-size must be from 1 to 1000000, not {IovaMagazineSize}";
        if (IovaCacheMaxOrder is < -1 or > 20)
            return $"iova-cache-max-order must be from -1 (no cache) to 20, not {IovaCacheMaxOrder}";
        if (TranslationsInFlight is < 1 or > 4096)
            return $"translations-in-flight must be from 1 to 4096, not {TranslationsInFlight}";
        return null;
    }

    /// <summary>Every time of the model under its configuration name.</summary>
    public IEnumerable<(string Name, double Value)> Times()
    {
        yield return ("map-call-ns", MapCallNs);
        yield return ("map-page-ns", MapPageNs);
        yield return ("unmap-call-ns", UnmapCallNs);
        yield return ("unmap-page-ns", UnmapPageNs);
        yield return ("dma-call-ns", DmaCallNs);
        yield return ("iova-cache-hit-ns", IovaCacheHitNs);
        yield return ("iova-cache-miss-ns", IovaCacheMissNs);
        yield return ("iova-free-ns", IovaFreeNs);
        yield return ("flush-queue-ns", FlushQueueNs);
        yield return ("invalidation-submit-ns", InvalidationSubmitNs);
        yield return ("invalidation-ns", InvalidationNs);
        yield return ("walk-read-ns", WalkReadNs);
        yield return ("iotlb-hit-ns", IotlbHitNs);
    }

    /// <summary>CPU time of the page-table part of a map of <paramref name="bytes"/> (at least one page).</summary>
    public double MapNs(ulong bytes) => MapCallNs + (Pages(bytes) - 1) * MapPageNs;

    /// <summary>CPU time of the page-table part of an unmap of <paramref name="bytes"/> (at least one page).</summary>
    public double UnmapNs(ulong bytes) => UnmapCallNs + (Pages(bytes) - 1) * UnmapPageNs;

    /// <summary>4 KiB pages of <paramref name="bytes"/>, at least 1.</summary>
    public static double Pages(ulong bytes) => bytes <= 4096 ? 1 : (double)((bytes + 4095) >> 12);
}
