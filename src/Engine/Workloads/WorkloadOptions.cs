namespace PtActors.Engine.Workloads;

/// <summary>A physical address range [<see cref="Base"/>, <see cref="Base"/> + <see cref="Size"/>) a device's buffers come from.</summary>
public readonly record struct PaRegion(ulong Base, ulong Size)
{
    /// <summary>The exclusive end.</summary>
    public ulong End => Base + Size;

    /// <summary>Whether [<paramref name="pa"/>, +<paramref name="size"/>) lies inside.</summary>
    public bool Contains(ulong pa, ulong size) => pa >= Base && size <= Size && pa - Base <= Size - size;

    /// <summary>Whether the two regions share an address.</summary>
    public bool Overlaps(PaRegion other) => Base < other.End && other.Base < End;
}

/// <summary>
/// The knobs of the device workloads (the simulator's command line). Defaults are those of issue 10:
/// <c>--inflight 32</c>, <c>--late-dma 0</c> (the random kind uses 0.01 unless set), a 25 GbE NIC.
/// </summary>
public sealed record WorkloadOptions
{
    /// <summary>Operations a device keeps outstanding at most (<c>--inflight</c>).</summary>
    public int Inflight { get; init; } = 32;

    /// <summary>
    /// <c>--late-dma P</c>: after each unmap, the probability of a DMA to the unmapped range a little later. Null
    /// means the kind's default: 0, or 0.01 for <c>random</c>.
    /// </summary>
    public double? LateDmaProbability { get; init; }

    /// <summary>A late DMA comes 1 to this many nanoseconds after its unmap's stamp.</summary>
    public ulong LateDmaMaxDelayNs { get; init; } = 1000;

    /// <summary>The NIC's link rate in Gbit/s (10 to 100 are typical).</summary>
    public double LinkGbps { get; init; } = 25;

    /// <summary>
    /// The NIC's frame size in bytes (MTU), 64 to 9216 (jumbo frames); on the wire each frame also takes 38 bytes of
    /// header, FCS, preamble and gap. A frame past 4 KiB is DMAed a page at a time.
    /// </summary>
    public int FrameBytes { get; init; } = 1500;

    /// <summary>The largest NIC frame (jumbo).</summary>
    public const int MaxFrameBytes = 9216;

    /// <summary>Fraction of NIC packets that are received (the rest are transmitted).</summary>
    public double NicRxFraction { get; init; } = 0.5;

    /// <summary>Buffers in each of the NIC's RX and TX rings.</summary>
    public int NicRingSize { get; init; } = 1024;

    /// <summary>Queue pairs per NIC port (an RX and a TX ring each, with their descriptor rings and completion queues); packets spread over them at random.</summary>
    public int NicQueues { get; init; } = 1;

    /// <summary>NIC: the RX ring is a page_pool of buffers mapped once, rather than a buffer mapped per packet.</summary>
    public bool NicPagePool { get; init; }

    /// <summary>NIC page pool: the pages its buffers are carved from, 4 KiB or 2 MiB.</summary>
    public ulong NicBufferPageBytes { get; init; } = 4096;

    /// <summary>NVMe commands per second (arrivals; the inflight limit may throttle them).</summary>
    public int NvmeIops { get; init; } = 200_000;

    /// <summary>NVMe command size in bytes, a multiple of 4 KiB up to 2 MiB; 0 (the default) for a mix of 4 KiB to 128 KiB.</summary>
    public ulong NvmeIoBytes { get; init; }

    /// <summary>NVMe commands in flight at most (submission queue depth); arrivals beyond it are dropped.</summary>
    public int NvmeQueueDepth { get; init; } = 64;

    /// <summary>Fraction of NVMe commands that are reads (the device writes memory).</summary>
    public double NvmeReadFraction { get; init; } = 0.7;

    /// <summary>Long-lived buffers a GPU keeps mapped (2 MiB each, the first possibly 1 GiB).</summary>
    public int GpuBuffers { get; init; } = 8;

    /// <summary>Probability that a GPU's first buffer is 1 GiB rather than 2 MiB (drawn once per device).</summary>
    public double GpuHugeProbability { get; init; } = 0.0625;

    /// <summary>Nanoseconds between two GPU DMAs.</summary>
    public ulong GpuDmaIntervalNs { get; init; } = 100;

    /// <summary>Mean nanoseconds between two GPU remaps (unmap a buffer, map it again at another address).</summary>
    public ulong GpuRemapMeanNs { get; init; } = 2_000_000;

    /// <summary>Mean nanoseconds between two actions of a random device.</summary>
    public ulong RandomIntervalNs { get; init; } = 2000;

    /// <summary>
    /// Base of the physical regions: device <c>i</c>'s buffers come from
    /// [<see cref="PaBase"/> + i·2^<see cref="PaRegionLg2"/>, +2^<see cref="PaRegionLg2"/>). 1 GiB aligned.
    /// </summary>
    public ulong PaBase { get; init; } = 1UL << 32;

    /// <summary>log2 of each device's physical region (at least 33: a GPU needs two banks of a 1 GiB buffer and of its 2 MiB ones).</summary>
    public int PaRegionLg2 { get; init; } = 34;

    /// <summary>
    /// Base of the IOVA windows where random devices map at chosen addresses: device <c>i</c> uses
    /// [<see cref="ExplicitIovaBase"/> + i·2^<see cref="ExplicitIovaLg2"/>, +2^<see cref="ExplicitIovaLg2"/>). Keep it out of
    /// the DMA-API allocator's range (the default, 4 GiB, is above the domain actor's default IOVA limit).
    /// </summary>
    public ulong ExplicitIovaBase { get; init; } = 1UL << 32;

    /// <summary>log2 of each random device's explicit IOVA window (at least 21).</summary>
    public int ExplicitIovaLg2 { get; init; } = 26;

    /// <summary>The late-DMA probability a device of <paramref name="kind"/> uses.</summary>
    public double LateDmaFor(string kind) => LateDmaProbability ?? (kind == WorkloadFactory.Random ? 0.01 : 0);

    /// <summary>Throws when a value is out of range.</summary>
    public void Validate()
    {
        if (Inflight < 1)
            throw new ArgumentOutOfRangeException(nameof(Inflight), Inflight, "Inflight must be at least 1.");
        if (LateDmaProbability is { } p && !(p >= 0 && p <= 1))
            throw new ArgumentOutOfRangeException(nameof(LateDmaProbability), p, "The late-DMA probability must be in [0, 1].");
        if (LateDmaMaxDelayNs < 1)
            throw new ArgumentOutOfRangeException(nameof(LateDmaMaxDelayNs), LateDmaMaxDelayNs, "Must be at least 1 ns.");
        if (!(LinkGbps > 0 && LinkGbps <= 10_000))
            throw new ArgumentOutOfRangeException(nameof(LinkGbps), LinkGbps, "The link rate must be in (0, 10000] Gbit/s.");
        if (FrameBytes < 64 || FrameBytes > MaxFrameBytes)
            throw new ArgumentOutOfRangeException(nameof(FrameBytes), FrameBytes, $"Frames are 64 to {MaxFrameBytes} bytes.");
        CheckFraction(NicRxFraction, nameof(NicRxFraction));
        CheckFraction(NvmeReadFraction, nameof(NvmeReadFraction));
        CheckFraction(GpuHugeProbability, nameof(GpuHugeProbability));
        if (NicRingSize < 1 || NicRingSize > 1 << 16)
            throw new ArgumentOutOfRangeException(nameof(NicRingSize), NicRingSize, "Rings hold 1 to 65536 buffers.");
        if (NicQueues < 1 || NicQueues > NicWorkload.MaxQueues)
            throw new ArgumentOutOfRangeException(nameof(NicQueues), NicQueues, $"A port has 1 to {NicWorkload.MaxQueues} queues.");
        if ((long)NicQueues * NicRingSize > 1 << 16)
            throw new ArgumentOutOfRangeException(nameof(NicQueues), NicQueues, $"Queues x ring buffers is at most 65536 per direction, not {(long)NicQueues * NicRingSize}.");
        if (NicBufferPageBytes is not (4096 or 2UL << 20))
            throw new ArgumentOutOfRangeException(nameof(NicBufferPageBytes), NicBufferPageBytes, "Buffer pages are 4 KiB or 2 MiB.");
        if (NvmeIops < 1)
            throw new ArgumentOutOfRangeException(nameof(NvmeIops), NvmeIops, "Must be positive.");
        if ((NvmeIoBytes & 4095) != 0 || NvmeIoBytes > NvmeWorkload.MaxIoBytes)
            throw new ArgumentOutOfRangeException(nameof(NvmeIoBytes), NvmeIoBytes, "NVMe commands are whole 4 KiB pages, at most 2 MiB (0: the default mix).");
        if (NvmeQueueDepth < 1 || NvmeQueueDepth > 1 << 16)
            throw new ArgumentOutOfRangeException(nameof(NvmeQueueDepth), NvmeQueueDepth, "Queues hold 1 to 65536 commands.");
        if (GpuBuffers < 1 || GpuBuffers > 1024)
            throw new ArgumentOutOfRangeException(nameof(GpuBuffers), GpuBuffers, "A GPU keeps 1 to 1024 buffers.");
        if (GpuDmaIntervalNs < 1 || GpuRemapMeanNs < 1 || RandomIntervalNs < 1)
            throw new ArgumentOutOfRangeException(nameof(GpuDmaIntervalNs), "Intervals must be at least 1 ns.");
        if ((PaBase & ((1UL << 30) - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(PaBase), PaBase, "The PA base must be 1 GiB aligned.");
        if (PaRegionLg2 < 33 || PaRegionLg2 > 46)
            throw new ArgumentOutOfRangeException(nameof(PaRegionLg2), PaRegionLg2, "Regions are 2^33 to 2^46 bytes.");
        if ((ExplicitIovaBase & ((1UL << 21) - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(ExplicitIovaBase), ExplicitIovaBase, "The explicit IOVA base must be 2 MiB aligned.");
        if (ExplicitIovaLg2 < 21 || ExplicitIovaLg2 > 40)
            throw new ArgumentOutOfRangeException(nameof(ExplicitIovaLg2), ExplicitIovaLg2, "Windows are 2^21 to 2^40 bytes.");
    }

    private static void CheckFraction(double v, string name)
    {
        if (!(v >= 0 && v <= 1))
            throw new ArgumentOutOfRangeException(name, v, "Must be in [0, 1].");
    }
}
