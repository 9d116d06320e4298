using PtActors.Engine;
using PtActors.Engine.Hardware;

namespace PtActors.Actors;

/// <summary>Everything a <c>ptactors simulate</c> run is configured with.</summary>
public sealed record SimulationSettings
{
    /// <summary>IOMMU units.</summary>
    public int Iommus { get; init; } = 4;
    /// <summary>Paging domains (spread round-robin over the units).</summary>
    public int Domains { get; init; } = 64;
    /// <summary>Devices (spread round-robin over the domains).</summary>
    public int Devices { get; init; } = 1024;
    /// <summary>Workload: nic, nvme, gpu, random or mixed.</summary>
    public string Workload { get; init; } = "mixed";
    /// <summary>Page-table format of every domain.</summary>
    public PtFormatKind Format { get; init; } = PtFormatKind.X86_64;
    /// <summary>Flush policy of every unit.</summary>
    public FlushPolicySpec Policy { get; init; } = new(FlushPolicyKind.Lazy);
    /// <summary>IOTLB entries per unit.</summary>
    public int IotlbEntries { get; init; } = 1024;
    /// <summary>CPUs for the per-CPU flush queues.</summary>
    public int Cpus { get; init; } = 1;
    /// <summary>Operations each device keeps outstanding.</summary>
    public int Inflight { get; init; } = 32;
    /// <summary>Probability of a DMA to an IOVA just unmapped (null: the workload's default).</summary>
    public double? LateDma { get; init; }
    /// <summary>Stop after exactly this many map+unmap operations were acknowledged (or null).</summary>
    public long? Ops { get; init; } = 2_000_000;
    /// <summary>Stop after this much simulated time (or null).</summary>
    public ulong? DurationNs { get; init; }
    /// <summary>Seed of every device's generator.</summary>
    public ulong Seed { get; init; } = 1;
    /// <summary>Simulated length of one window.</summary>
    public ulong WindowNs { get; init; } = 100_000;
    /// <summary>Group-commit size.</summary>
    public int MaxOpsPerEvent { get; init; } = 256;
    /// <summary>Where the ids of acknowledged operations are appended (<see cref="AckLog"/>), or null.</summary>
    public string? AckLogPath { get; init; }
    /// <summary>A domain saves a snapshot after this many events (0: never).</summary>
    public int SnapshotEvery { get; init; } = 500;
    /// <summary>Run id (persistence ids are RUNID/DOMAIN).</summary>
    public string RunId { get; init; } = "run";
    /// <summary>A deliberately broken IOMMU configuration, to show a checker firing (none by default).</summary>
    public UnsafeMode Unsafe { get; init; } = UnsafeMode.None;
    /// <summary>Also journal the DMAs each unit translated, per unit and window (<see cref="DmaRecorder"/>), for replay.</summary>
    public bool RecordDmas { get; init; }
    /// <summary>What work costs on the simulated clock (docs/model.md); it times the run, and a device whose CPU or unit falls behind is held back in it.</summary>
    public PtActors.Engine.Cost.CostModel Cost { get; init; } = PtActors.Engine.Cost.CostModel.Default;
    /// <summary>NIC devices: a page_pool RX ring (buffers mapped once) instead of a buffer mapped per packet.</summary>
    public bool NicPagePool { get; init; }
    /// <summary>NIC page pool: its pages, 4 KiB or 2 MiB.</summary>
    public ulong BufferPageBytes { get; init; } = 4096;
    /// <summary>NIC link rate, Gb/s (null: the workload's default, 25).</summary>
    public double? LinkGbps { get; init; }
    /// <summary>NIC buffers per ring (null: the workload's default, 1024).</summary>
    public int? NicRing { get; init; }
    /// <summary>NIC queue pairs per port (null: the workload's default, 1).</summary>
    public int? NicQueues { get; init; }
    /// <summary>NIC frame size in bytes (null: the workload's default, 1500).</summary>
    public int? FrameBytes { get; init; }
    /// <summary>NVMe command size in bytes (null: the workload's mix of 4 KiB to 128 KiB).</summary>
    public ulong? NvmeIoBytes { get; init; }
    /// <summary>NVMe queue depth (null: the workload's default, 64).</summary>
    public int? NvmeQueueDepth { get; init; }
    /// <summary>NVMe commands per second per device (null: the workload's default, 200 000).</summary>
    public int? NvmeIops { get; init; }

    /// <summary>
    /// HOST:PORT of a seed node of a PtActors cluster (<c>simulate --cluster</c>): the run's node joins it and its lanes
    /// start on the cluster's lane nodes (<c>ptactors node</c>); null: every lane runs in this process.
    /// </summary>
    public string? ClusterSeed { get; init; }

    /// <summary>The configuration of every IOMMU unit of the run.</summary>
    public IommuUnitConfig UnitConfig() => UnsafeModes.Apply(Unsafe, new IommuUnitConfig
    {
        // Under passthrough no traffic reaches a unit (the hosts answer and DMA directly): it idles as strict.
        Policy = Policy.Kind == FlushPolicyKind.Passthrough ? FlushPolicySpec.Strict : Policy,
        Cpus = Cpus,
        Iotlb = new IotlbConfig(IotlbEntries, Math.Min(8, IotlbEntries)),
        Cost = Cost,
        InvalidationNs = (ulong)Math.Round(Cost.InvalidationNs),
    });

    /// <summary>The options of every device's workload (not validated: see <see cref="PtActors.Engine.Workloads.WorkloadOptions.Validate"/>).</summary>
    public PtActors.Engine.Workloads.WorkloadOptions WorkloadOptions()
    {
        var defaults = new PtActors.Engine.Workloads.WorkloadOptions();
        return new PtActors.Engine.Workloads.WorkloadOptions
        {
            Inflight = Inflight,
            LateDmaProbability = LateDma,
            NicPagePool = NicPagePool,
            NicBufferPageBytes = BufferPageBytes,
            LinkGbps = LinkGbps ?? defaults.LinkGbps,
            NicRingSize = NicRing ?? defaults.NicRingSize,
            NicQueues = NicQueues ?? defaults.NicQueues,
            FrameBytes = FrameBytes ?? defaults.FrameBytes,
            NvmeIoBytes = NvmeIoBytes ?? defaults.NvmeIoBytes,
            NvmeQueueDepth = NvmeQueueDepth ?? defaults.NvmeQueueDepth,
            NvmeIops = NvmeIops ?? defaults.NvmeIops,
        };
    }

    /// <summary>
    /// The configuration as <c>key=value</c> words (the run id aside): what a run prints first, what the run
    /// registry keeps and what <c>ptactors runs</c> shows; <see cref="ValueOf"/> reads a value back.
    /// <c>record-dmas=true</c> ends it when the run journals its DMAs (absent otherwise, as in runs recorded before the option).
    /// </summary>
    public string Describe()
    {
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        string end = Ops is long ops ? $"ops={ops}" : DurationNs is ulong ns ? $"duration={FormatDuration(ns)}" : "ops=none";
        string lateDma = LateDma is double p ? p.ToString("0.######", inv) : "default";
        return string.Create(inv,
            $"iommus={Iommus} domains={Domains} devices={Devices} workload={Workload} format={PtActors.Engine.Formats.PtFormatOps.For(Format).Name} " +
            $"policy={Policy} iotlb={IotlbEntries} cpus={Cpus} inflight={Inflight} late_dma={lateDma} {end} seed={Seed} " +
            $"unsafe={UnsafeModes.Name(Unsafe)}{(RecordDmas ? " record-dmas=true" : "")}{NicDescription()}");
    }

    /// <summary>The NIC and NVMe settings that differ from the workloads' defaults (nothing when none does).</summary>
    private string NicDescription()
    {
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        string text = NicPagePool ? " nic_buffers=page-pool" : "";
        if (BufferPageBytes != 4096)
            text += BufferPageBytes == 2UL << 20 ? " buffer_page=2M" : " buffer_page=" + BufferPageBytes.ToString(inv);
        if (LinkGbps is double g)
            text += " link_gbps=" + g.ToString("0.###", inv);
        if (NicRing is int ring)
            text += " ring=" + ring.ToString(inv);
        if (NicQueues is int queues)
            text += " queues=" + queues.ToString(inv);
        if (FrameBytes is int mtu)
            text += " mtu=" + mtu.ToString(inv);
        if (NvmeIoBytes is ulong io)
            text += " io_size=" + (io % (1UL << 20) == 0 ? (io >> 20).ToString(inv) + "M" : (io >> 10).ToString(inv) + "K");
        if (NvmeQueueDepth is int qd)
            text += " queue_depth=" + qd.ToString(inv);
        if (NvmeIops is int iops)
            text += " iops=" + iops.ToString(inv);
        return text;
    }

    /// <summary>A duration in the largest unit that divides it (<c>1500ms</c>, <c>2s</c>).</summary>
    public static string FormatDuration(ulong ns) => ns switch
    {
        _ when ns % 1_000_000_000 == 0 => $"{ns / 1_000_000_000}s",
        _ when ns % 1_000_000 == 0 => $"{ns / 1_000_000}ms",
        _ when ns % 1_000 == 0 => $"{ns / 1_000}us",
        _ => $"{ns}ns",
    };

    /// <summary>
    /// A duration as <see cref="FormatDuration"/> writes it and <c>--duration</c> takes it: a positive decimal integer
    /// with a unit (ns, us, ms or s); null for anything else or a value past 2^64 − 1 ns.
    /// </summary>
    public static ulong? ParseDuration(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        (int unitLength, ulong scale) = text.EndsWith("ns", StringComparison.Ordinal) ? (2, 1UL)
            : text.EndsWith("us", StringComparison.Ordinal) ? (2, 1_000UL)
            : text.EndsWith("ms", StringComparison.Ordinal) ? (2, 1_000_000UL)
            : text.EndsWith('s') ? (1, 1_000_000_000UL)
            : (0, 0UL);
        if (scale == 0)
            return null;
        string digits = text[..^unitLength];
        if (digits.Length == 0 || !digits.All(char.IsAsciiDigit)
            || !ulong.TryParse(digits, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ulong n) || n == 0)
            return null;
        return n <= ulong.MaxValue / scale ? n * scale : null;
    }

    /// <summary>The name of domain <paramref name="d"/> (its persistence id is RUNID/NAME).</summary>
    public static string DomainName(int d) => "dom" + d.ToString("D4", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The value of <paramref name="key"/> in a <see cref="Describe"/> text, or null.</summary>
    public static string? ValueOf(string described, string key)
    {
        foreach (var word in described.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = word.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0 && word.AsSpan(0, eq).SequenceEqual(key))
                return word[(eq + 1)..];
        }
        return null;
    }
}

/// <summary>The deliberately broken IOMMU configurations a run may use (<c>simulate --unsafe</c>).</summary>
public enum UnsafeMode
{
    /// <summary>A correct IOMMU.</summary>
    None,
    /// <summary>
    /// An unmap's table pages, IOVA and range lock go back before the flush covering it completed
    /// (<see cref="IommuUnitConfig.FreeTablesBeforeFlush"/>, XSA-346's pattern): walks may read freed pages.
    /// </summary>
    FreeEarly,
    /// <summary>Attach and detach leave the hardware's cached device context alone (<see cref="IommuUnitConfig.SkipContextInvalidation"/>).</summary>
    SkipContext,
    /// <summary>AMD's old build_inv_address mask, one bit short for an unaligned start (<see cref="InvalidationFlavor.AmdOneBitShort"/>).</summary>
    AmdShort,
}

/// <summary>Names of <see cref="UnsafeMode"/> as the command line and the figures write them.</summary>
public static class UnsafeModes
{
    /// <summary>The names, in <see cref="UnsafeMode"/> order.</summary>
    public static IReadOnlyList<string> Names { get; } = ["none", "free-early", "skip-context", "amd-short"];

    /// <summary>The name of <paramref name="mode"/>.</summary>
    public static string Name(UnsafeMode mode) => Names[(int)mode];

    /// <summary>The mode named <paramref name="name"/>, or null.</summary>
    public static UnsafeMode? Parse(string name)
    {
        for (int i = 0; i < Names.Count; i++)
        {
            if (string.Equals(Names[i], name, StringComparison.Ordinal))
                return (UnsafeMode)i;
        }
        return null;
    }

    /// <summary><paramref name="config"/> broken as <paramref name="mode"/> says.</summary>
    public static IommuUnitConfig Apply(UnsafeMode mode, IommuUnitConfig config) => mode switch
    {
        UnsafeMode.FreeEarly => config with { FreeTablesBeforeFlush = true },
        UnsafeMode.SkipContext => config with { SkipContextInvalidation = true },
        UnsafeMode.AmdShort => config with { Flavor = InvalidationFlavor.AmdOneBitShort },
        _ => config,
    };
}

/// <summary>The figures of a finished run (every key but the wall-clock ones is reproducible from the seed).</summary>
public sealed record SimulationResult
{
    /// <summary>Run id.</summary>
    public required string RunId { get; init; }
    /// <summary>How each lane wound down (what a replay needs to drain where the run did), in unit order.</summary>
    public PtActors.Engine.Replay.RunWindDown WindDown { get; init; } = PtActors.Engine.Replay.RunWindDown.None;
    /// <summary>Each domain's journal length and table-memory hash prefix, in domain order (what the run's end records for <c>verify</c>).</summary>
    public PtActors.Engine.Replay.RunDomainEnds Domains { get; init; } = PtActors.Engine.Replay.RunDomainEnds.None;
    /// <summary>
    /// Lanes lost with their nodes and rebuilt on others during the run, one line each (a cluster run; none in one
    /// process). Not a figure: the run's figures are those of a run that lost nothing.
    /// </summary>
    public IReadOnlyList<string> LaneRestarts { get; init; } = [];
    /// <summary>The deliberately broken configuration the run used.</summary>
    public UnsafeMode Unsafe { get; init; }
    /// <summary>Acknowledged map and unmap calls.</summary>
    public long Ops { get; init; }
    /// <summary>DMAs translated (or faulted).</summary>
    public long Dmas { get; init; }
    /// <summary>Acknowledged operations per second of wall time.</summary>
    public double OpsPerSec { get; init; }
    /// <summary>The cost model's figures (null where a run's figures come from elsewhere, e.g. a replay).</summary>
    public PtActors.Engine.Cost.CostFigures? Cost { get; init; }
    /// <summary>Wall time, seconds.</summary>
    public double WallS { get; init; }
    /// <summary>Simulated time, seconds.</summary>
    public double SimS { get; init; }
    /// <summary>Acknowledged maps.</summary>
    public long Maps { get; init; }
    /// <summary>Acknowledged unmaps.</summary>
    public long Unmaps { get; init; }
    /// <summary>Bytes mapped by acknowledged maps.</summary>
    public ulong BytesMapped { get; init; }
    /// <summary>IOTLB hit rate over all units.</summary>
    public double IotlbHitRate { get; init; }
    /// <summary>Invalidation commands.</summary>
    public long Invalidations { get; init; }
    /// <summary>Invalidations per acknowledged unmap.</summary>
    public double InvalidationsPerUnmap { get; init; }
    /// <summary>Over-invalidated bytes.</summary>
    public long OverInvalidatedBytes { get; init; }
    /// <summary>Stale hits inside a window.</summary>
    public long StaleInWindow { get; init; }
    /// <summary>Stale hits after the covering flush.</summary>
    public long StaleViolations { get; init; }
    /// <summary>Walks of freed table pages.</summary>
    public long UseAfterFree { get; init; }
    /// <summary>Translations through a domain the device is not attached to.</summary>
    public long IsolationBreaches { get; init; }
    /// <summary>Median range-lock wait, simulated µs.</summary>
    public double LockWaitP50Us { get; init; }
    /// <summary>99th percentile range-lock wait, simulated µs.</summary>
    public double LockWaitP99Us { get; init; }
    /// <summary>Operations that waited for their range lock (a wait above 0).</summary>
    public long LockWaits { get; init; }
    /// <summary>The range-lock waits: bucket 0 below 1 µs, bucket k ≥ 1 in [2^(k-1), 2^k) µs (null where not collected).</summary>
    public PtActors.Engine.Cost.BucketCounts? LockWaitHistogram { get; init; }
    /// <summary>The units over simulated time (null where not collected, e.g. a replay).</summary>
    public RunTimeline? Timeline { get; init; }
    /// <summary>Most table pages held at once (summed over domains at window ends).</summary>
    public long TablePagesMax { get; init; }
    /// <summary>Events written.</summary>
    public long EventsPersisted { get; init; }
    /// <summary>Operations in those events.</summary>
    public long OpsPersisted { get; init; }
    /// <summary>SHA-256 (hex) of the canonical form of every domain's final table, domains sorted by name.</summary>
    public required string TableHash { get; init; }
    /// <summary>
    /// SHA-256 (hex) of every domain's table memory exactly as the run left it (page numbers, accessed and dirty
    /// bits included), domains sorted by name: what a recovery from the journal must rebuild byte for byte.
    /// </summary>
    public string MemoryHash { get; init; } = "";
    /// <summary>IO page faults.</summary>
    public long Faults { get; init; }
    /// <summary>Errors returned to devices (EADDRINUSE, ENOMEM, ...).</summary>
    public long Errors { get; init; }
}

/// <summary>A progress report, once per reporting interval of a run.</summary>
public readonly record struct SimulationProgress(long Window, double SimS, long Ops, long TargetOps, long Dmas, double OpsPerSec);

/// <summary>Runs a simulation (the actor system, its persistence, the coordinator) to its end.</summary>
public interface ISimulationRunner
{
    /// <summary>
    /// Runs <paramref name="settings"/> on <paramref name="backend"/>, reporting progress now and then; returns the
    /// figures once every operation is acknowledged and every unit drained.
    /// </summary>
    Task<SimulationResult> RunAsync(SimulationSettings settings, PtActors.Persistence.PersistenceBackend backend,
        IProgress<SimulationProgress>? progress, CancellationToken cancellationToken);
}

/// <summary>The run id given is already recorded in the database: nothing of the run was written.</summary>
public sealed class RunIdTakenException(string runId, string reason)
    : Exception($"run id '{runId}' is already in the database ({reason}): choose another --run-id; nothing was written")
{
    /// <summary>The run id refused.</summary>
    public string RunId { get; } = runId;
}
