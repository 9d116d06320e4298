using PtActors.Engine.Dma;

namespace PtActors.Engine.Workloads;

/// <summary>
/// Where a device's output goes during <see cref="IDeviceWorkload.Generate"/>: DMA-API operations (to the
/// domain) and DMA accesses (to the IOMMU), in one stream of non-decreasing stamps.
/// </summary>
public interface IWorkloadSink
{
    /// <summary>A DMA-API operation (DmaMap, Map, Unmap or ReadDirty); its reply comes back through <see cref="IDeviceWorkload.OnResult"/>.</summary>
    void Submit(in DmaOp op);

    /// <summary>A DMA access by the device to <paramref name="iova"/> at <paramref name="stampNs"/> (a write when <paramref name="write"/>).</summary>
    void Dma(ulong stampNs, ulong iova, bool write);
}

/// <summary>
/// A simulated device: a deterministic state machine that, window by window, emits the DMA-API operations and
/// DMA accesses its workload makes, given the replies it has received so far. Everything it does follows from
/// (seed, device index, options) and the replies.
/// </summary>
public interface IDeviceWorkload
{
    /// <summary>The device index (the high half of its operations' ids).</summary>
    int Device { get; }

    /// <summary>The workload kind: <c>nic</c>, <c>nvme</c>, <c>gpu</c> or <c>random</c>.</summary>
    string Kind { get; }

    /// <summary>Operations submitted and not yet replied to; never above <see cref="MaxInflight"/>.</summary>
    int Inflight { get; }

    /// <summary>The most operations the device keeps outstanding (<c>--inflight</c>).</summary>
    int MaxInflight { get; }

    /// <summary>Operations submitted so far.</summary>
    long Submitted { get; }

    /// <summary>Operations replied to so far.</summary>
    long Completed { get; }

    /// <summary>All counters.</summary>
    WorkloadStats Stats { get; }

    /// <summary>
    /// Whether the device is still being set up: the driver's maps of its rings, queues and pools, made as the device
    /// comes up, have not all been answered. A real driver does this before traffic flows; the cost model times it
    /// but does not hold the device back for it.
    /// </summary>
    bool SettingUp { get; }

    /// <summary>
    /// Emits to <paramref name="sink"/> what the device does in [<paramref name="t0"/>, <paramref name="t1"/>): stamps in
    /// that window, non-decreasing across operations and DMAs. Windows must not go back in time. Until
    /// <paramref name="heldUntilNs"/> the device starts no new work — its CPU or IOMMU unit is behind (the cost
    /// model's back-pressure, docs/model.md) — and counts what it held back (<see cref="WorkloadStats.Throttled"/>);
    /// releases (unmaps) and work already started go on.
    /// </summary>
    void Generate(ulong t0, ulong t1, IWorkloadSink sink, ulong heldUntilNs = 0);

    /// <summary>The reply to one of this device's operations (any order, any later time).</summary>
    void OnResult(in DmaOpResult result);
}

/// <summary>A device's counters.</summary>
/// <param name="Submitted">DMA-API operations submitted.</param>
/// <param name="Completed">Replies received.</param>
/// <param name="Errors">Replies carrying an error.</param>
/// <param name="AddressInUse">Replies with EADDRINUSE (overlapping Map attempts).</param>
/// <param name="DroppedBuffers">Buffers dropped because their map failed.</param>
/// <param name="Dropped">Work items (packets, commands, random actions) not started: no ring slot, no queue slot or no inflight budget.</param>
/// <param name="Deferred">Times an operation was postponed to the next window for lack of inflight budget.</param>
/// <param name="Dmas">DMA accesses emitted (all kinds, late and fault ones included).</param>
/// <param name="LateDmas">DMAs to an IOVA the device had just unmapped (the <c>--late-dma</c> race).</param>
/// <param name="FaultDmas">DMAs the device aimed at IOVAs it knows are unmapped (random only).</param>
/// <param name="Unmaps">Unmap operations submitted.</param>
/// <param name="ReadDirties">ReadDirty operations submitted.</param>
/// <param name="OverlapAttempts">Map operations deliberately aimed inside a live mapping (random only).</param>
/// <param name="MismatchedUnmaps">Unmaps whose size did not match the mapping (random only).</param>
/// <param name="UnitsCompleted">Finished work: nic packets, nvme commands, gpu buffer unmaps, random mappings retired.</param>
/// <param name="BytesMoved">Data bytes the device moved by DMA: nic frames, nvme command data, 64 bytes per gpu or random access to a live mapping (descriptors, completions and late or fault DMAs not counted).</param>
/// <param name="Transfers">Transfers those bytes came in: nic packets, nvme commands, gpu and random accesses.</param>
/// <param name="Throttled">Work items not started because the device's CPU or IOMMU unit was behind (the cost model's back-pressure): nic packets dropped, nvme commands not submitted, gpu accesses not made, random ticks postponed.</param>
/// <param name="HeldNs">Simulated time the device was held back (its CPU or unit behind) in the windows it generated.</param>
/// <param name="GeneratedNs">Simulated time of the windows it generated (what <see cref="HeldNs"/> is a part of).</param>
/// <param name="HeldWindows">Windows in which it was held back at all, and <paramref name="HeldWindowBytes"/> the data it moved in them.</param>
/// <param name="HeldWindowBytes">Data bytes moved in the windows it was held back in.</param>
/// <param name="FreeWindows">Windows it generated without being held back, after a window it was not held back in either (its steady pace: the first windows after a hold, with its rings full and its budget unspent, are above it), and <paramref name="FreeWindowBytes"/> the data it moved in them.</param>
/// <param name="FreeWindowBytes">Data bytes moved in those windows.</param>
public readonly record struct WorkloadStats(
    long Submitted,
    long Completed,
    long Errors,
    long AddressInUse,
    long DroppedBuffers,
    long Dropped,
    long Deferred,
    long Dmas,
    long LateDmas,
    long FaultDmas,
    long Unmaps,
    long ReadDirties,
    long OverlapAttempts,
    long MismatchedUnmaps,
    long UnitsCompleted,
    long BytesMoved,
    long Transfers,
    long Throttled = 0,
    long HeldNs = 0,
    long GeneratedNs = 0,
    long HeldWindows = 0,
    long HeldWindowBytes = 0,
    long FreeWindows = 0,
    long FreeWindowBytes = 0)
{
    /// <summary>
    /// Data bytes the device would have moved in the windows it was held back in, had it not been: each such window
    /// valued at what it moved on average in a window of its steady pace (<see cref="FreeWindows"/>), less what it did move in them
    /// (HeldWindows × FreeWindowBytes / FreeWindows − HeldWindowBytes, at least 0). A device with no such window has
    /// no such average: its rate while not held, over the time it was held, stands in. 0 when never held.
    /// </summary>
    public double HeldBytes
        => HeldWindows == 0 ? 0
            : FreeWindows > 0 ? Math.Max(0, (double)HeldWindows * FreeWindowBytes / FreeWindows - HeldWindowBytes)
            : GeneratedNs <= HeldNs ? 0
            : (double)BytesMoved * HeldNs / (GeneratedNs - HeldNs);
}
