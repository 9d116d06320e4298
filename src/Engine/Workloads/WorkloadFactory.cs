namespace PtActors.Engine.Workloads;

/// <summary>
/// Makes device workloads by kind name (<c>nic</c>, <c>nvme</c>, <c>gpu</c>, <c>random</c>, or <c>mixed</c>, which picks
/// one by device index), and answers where a device's buffers and explicit IOVAs live.
/// </summary>
public static class WorkloadFactory
{
    /// <summary>The network port kind.</summary>
    public const string Nic = "nic";

    /// <summary>The NVMe disk kind.</summary>
    public const string Nvme = "nvme";

    /// <summary>The accelerator kind.</summary>
    public const string Gpu = "gpu";

    /// <summary>The stress kind.</summary>
    public const string Random = "random";

    /// <summary>A per-device choice among the others (<see cref="MixedKind"/>).</summary>
    public const string Mixed = "mixed";

    /// <summary>The kind names <see cref="Create"/> accepts.</summary>
    public static IReadOnlyList<string> Kinds { get; } = [Nic, Nvme, Gpu, Random, Mixed];

    // 20 devices: 10 nic (50 %), 5 nvme (25 %), 3 gpu (15 %), 2 random (10 %), interleaved.
    private static readonly string[] MixedRotation =
    [
        Nic, Nvme, Nic, Gpu, Nic, Nvme, Nic, Random, Nic, Nvme,
        Nic, Gpu, Nic, Nvme, Nic, Random, Nic, Nvme, Nic, Gpu,
    ];

    /// <summary>
    /// The kind device <paramref name="deviceIndex"/> gets in a <c>mixed</c> run: a fixed rotation of 20 — 50 % nic,
    /// 25 % nvme, 15 % gpu, 10 % random — so devices 0..3 are nic, nvme, nic, gpu and the first random one is device 7.
    /// </summary>
    public static string MixedKind(int deviceIndex)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(deviceIndex);
        return MixedRotation[deviceIndex % MixedRotation.Length];
    }

    /// <summary>
    /// Creates device <paramref name="deviceIndex"/> of <paramref name="kind"/> (case-insensitive; <c>mixed</c> resolves
    /// through <see cref="MixedKind"/>), seeded by (<paramref name="seed"/>, <paramref name="deviceIndex"/>).
    /// </summary>
    /// <exception cref="ArgumentException">An unknown kind (the message names it and the valid ones), or an option out of range.</exception>
    public static DeviceWorkload Create(string kind, int deviceIndex, ulong seed, WorkloadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(kind);
        options ??= new WorkloadOptions();
        string k = kind.Trim().ToLowerInvariant();
        if (k == Mixed)
            k = MixedKind(deviceIndex);
        return k switch
        {
            Nic => new NicWorkload(deviceIndex, seed, options),
            Nvme => new NvmeWorkload(deviceIndex, seed, options),
            Gpu => new GpuWorkload(deviceIndex, seed, options),
            Random => new RandomWorkload(deviceIndex, seed, options),
            _ => throw new ArgumentException(
                $"Unknown workload kind '{kind}': expected one of {string.Join(", ", Kinds)}.", nameof(kind)),
        };
    }

    /// <summary>
    /// The physical region of device <paramref name="deviceIndex"/>: [PaBase + i·2^PaRegionLg2, +2^PaRegionLg2), disjoint
    /// from every other device's. Throws when it would pass 2^52 (the widest output address most formats take).
    /// </summary>
    public static PaRegion PaRegionOf(int deviceIndex, WorkloadOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegative(deviceIndex);
        ulong size = 1UL << options.PaRegionLg2;
        ulong limit = 1UL << 52;
        if (options.PaBase > limit || (ulong)deviceIndex + 1 > (limit - options.PaBase) / size)
            throw new ArgumentOutOfRangeException(nameof(deviceIndex), deviceIndex,
                $"Device {deviceIndex}'s physical region would pass 2^52; lower PaRegionLg2 ({options.PaRegionLg2}) or PaBase.");
        return new PaRegion(options.PaBase + (ulong)deviceIndex * size, size);
    }

    /// <summary>
    /// The IOVA window where device <paramref name="deviceIndex"/> (if random) maps at chosen addresses:
    /// [ExplicitIovaBase + i·2^ExplicitIovaLg2, +2^ExplicitIovaLg2). Keep the DMA-API allocator's range clear of it.
    /// </summary>
    public static (ulong Base, ulong Size) ExplicitIovaWindow(int deviceIndex, WorkloadOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegative(deviceIndex);
        ulong size = 1UL << options.ExplicitIovaLg2;
        if ((ulong)deviceIndex + 1 > (ulong.MaxValue - options.ExplicitIovaBase) / size)
            throw new ArgumentOutOfRangeException(nameof(deviceIndex), deviceIndex, "The explicit IOVA window would overflow.");
        return (options.ExplicitIovaBase + (ulong)deviceIndex * size, size);
    }
}
