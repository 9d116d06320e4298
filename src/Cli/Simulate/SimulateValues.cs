using System.Globalization;
using PtActors.Actors;
using PtActors.Engine;
using PtActors.Engine.Formats;
using PtActors.Engine.Hardware;
using PtActors.Persistence;

namespace PtActors.Cli.Simulate;

/// <summary>
/// The values of <c>ptactors simulate</c>'s options: each parser returns null and an explanation for a bad value.
/// Numbers are plain invariant integers (no signs, no separators); a seed may also be <c>0x</c> hex.
/// </summary>
internal static class SimulateValues
{
    /// <summary>The workloads a device may run.</summary>
    public static readonly string[] Workloads = ["nic", "nvme", "gpu", "random", "mixed"];

    // Upper bounds: what the simulator can hold on this class of machine (24 GiB, 2 cores); see docs/simulator.md.

    /// <summary>--iommus: each unit is a lane with its own actor, IOTLB and per-window bookkeeping.</summary>
    public const int MaxIommus = 64;

    /// <summary>--domains: each is a persistent actor with its page table, IOVA allocator and host.</summary>
    public const int MaxDomains = 65_536;

    /// <summary>--devices: device i's physical region [2^32 + i·2^34, +2^34) must stay below 2^52.</summary>
    public const int MaxDevices = 262_143;

    /// <summary>--iotlb: entries per unit (48 bytes each).</summary>
    public const int MaxIotlbEntries = 4_194_304;

    /// <summary>--cpus (Linux's NR_CPUS goes to 8192; a lazy domain keeps one ring per CPU).</summary>
    public const int MaxCpus = 4096;

    /// <summary>
    /// The CPUs of a run that does not say: one per device of a domain (device k of each domain on CPU k, as a driver
    /// gives each queue its own CPU), at least 1 and at most <see cref="MaxCpus"/>.
    /// </summary>
    public static int DefaultCpus(long devices, long domains)
        => (int)Math.Clamp((devices + Math.Max(1, domains) - 1) / Math.Max(1, domains), 1, MaxCpus);

    /// <summary>--inflight: operations each device keeps outstanding.</summary>
    public const int MaxInflight = 65_536;

    /// <summary>--ops on SQLite.</summary>
    public const long MaxOps = 1_000_000_000;

    /// <summary>--ops with --in-memory: the in-memory journal keeps every operation (~65-90 bytes each).</summary>
    public const long MaxOpsInMemory = 100_000_000;

    /// <summary>--duration: 10^6 windows of 100 µs (each lane keeps two numbers per window).</summary>
    public const ulong MaxDurationNs = 100_000_000_000;

    /// <summary>N of --policy batch:N.</summary>
    public const int MaxBatch = 1_048_576;

    /// <summary>--iommus × --iotlb: IOTLB entries of the whole run (768 MiB of entries).</summary>
    public const long MaxIotlbEntriesTotal = 16_777_216;

    /// <summary>--devices × --inflight: operations outstanding at once in the whole run.</summary>
    public const long MaxOutstanding = 16_777_216;

    /// <summary>--domains × --cpus: per-CPU flush-queue rings of the whole run.</summary>
    public const long MaxRings = 4_194_304;

    /// <summary>A count from 1 to <paramref name="max"/>.</summary>
    public static int? Count(string text, int max, out string expected)
    {
        expected = $"an integer from 1 to {max}";
        return text.Length <= 20 && IsDecimal(text) && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int n)
            && n >= 1 && n <= max
            ? n : null;
    }

    /// <summary>An operation count: 1 to <see cref="MaxOps"/> (<see cref="MaxOpsInMemory"/> in memory, checked with the other options).</summary>
    public static long? Ops(string text, out string expected)
    {
        expected = $"an integer from 1 to {MaxOps} ({MaxOpsInMemory} with --in-memory)";
        return text.Length <= 20 && IsDecimal(text) && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long n)
            && n >= 1 && n <= MaxOps
            ? n : null;
    }

    /// <summary>IOTLB entries: a count that the default number of ways divides, up to <see cref="MaxIotlbEntries"/>.</summary>
    public static int? IotlbEntries(string text, out string expected)
    {
        int ways = new IotlbConfig().Ways;
        expected = $"a multiple of {ways}, the IOTLB's ways, from {ways} to {MaxIotlbEntries}";
        int? n = Count(text, MaxIotlbEntries, out _);
        return n is int entries && entries % ways == 0 ? entries : null;
    }

    /// <summary>A seed: decimal or 0x hex, 0 to 2^64-1.</summary>
    public static ulong? Seed(string text, out string expected)
    {
        expected = "an integer from 0 to 18446744073709551615, decimal or 0x hex";
        if (text.Length > 2 && text[0] == '0' && text[1] is 'x' or 'X')
        {
            return !text.AsSpan(2).ContainsAnyExcept("0123456789abcdefABCDEF")
                && ulong.TryParse(text.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ulong h)
                ? h : null;
        }
        return IsDecimal(text) && ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out ulong d) ? d : null;
    }

    /// <summary>A probability from 0 to 1 (a plain decimal: <c>0</c>, <c>0.25</c>, <c>.5</c>, <c>1</c>).</summary>
    /// <summary>A NIC page pool's page size: 4K or 2M.</summary>
    public static ulong? BufferPage(string text, out string expected)
    {
        expected = "4K or 2M";
        return text switch
        {
            "4K" or "4k" => 4096UL,
            "2M" or "2m" => 2UL << 20,
            _ => null,
        };
    }

    /// <summary>A NIC frame size in bytes, 64 to the jumbo maximum.</summary>
    public static int? Mtu(string text, out string expected)
    {
        expected = $"64 to {PtActors.Engine.Workloads.WorkloadOptions.MaxFrameBytes} bytes";
        return text.Length <= 6 && IsDecimal(text) && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int n)
            && n is >= 64 and <= PtActors.Engine.Workloads.WorkloadOptions.MaxFrameBytes ? n : null;
    }

    /// <summary>NVMe commands per second a device offers at most (10 ns apart).</summary>
    public const int MaxIops = 100_000_000;

    /// <summary>An NVMe command size: whole 4 KiB pages up to 2 MiB, in bytes or with a K or M suffix.</summary>
    public static ulong? IoSize(string text, out string expected)
    {
        expected = "4K to 2M in whole 4 KiB pages: 4K, 128K, 1M, or a number of bytes";
        (ulong scale, string digits) = text.EndsWith('K') || text.EndsWith('k') ? (1UL << 10, text[..^1])
            : text.EndsWith('M') || text.EndsWith('m') ? (1UL << 20, text[..^1])
            : (1UL, text);
        if (!IsDecimal(digits) || digits.Length > 9 || !ulong.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out ulong n))
            return null;
        ulong bytes = n * scale;
        return bytes is >= 4096 and <= PtActors.Engine.Workloads.NvmeWorkload.MaxIoBytes && (bytes & 4095) == 0 ? bytes : null;
    }

    /// <summary>How NICs get their RX buffers: <c>map-per-packet</c> or <c>page-pool</c>.</summary>
    public static string? NicBuffers(string text, out string expected)
    {
        expected = "map-per-packet or page-pool";
        return text is "map-per-packet" or "page-pool" ? text : null;
    }

    /// <summary>A link rate in Gb/s, above 0 and at most 10000.</summary>
    public static double? LinkGbps(string text, out string expected)
    {
        expected = "a rate in Gb/s above 0 and at most 10000";
        return text.Length > 0 && !text.AsSpan().ContainsAnyExcept("0123456789.")
            && double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double g)
            && double.IsFinite(g) && g > 0 && g <= 10_000
            ? g : null;
    }

    public static double? Probability(string text, out string expected)
    {
        expected = "a probability from 0 to 1";
        return text.Length > 0 && !text.AsSpan().ContainsAnyExcept("0123456789.")
            && double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double p)
            && double.IsFinite(p) && p is >= 0 and <= 1
            ? p : null;
    }

    /// <summary>A simulated duration: a positive integer with a unit, ns, us, ms or s (as the script's <c>advance</c>).</summary>
    public static ulong? Duration(string text, out string expected)
    {
        expected = "a positive integer with a unit (ns, us, ms or s), at most 100s";
        return SimulationSettings.ParseDuration(text) is ulong ns && ns <= MaxDurationNs ? ns : null;
    }

    /// <summary>A workload name.</summary>
    public static string? Workload(string text, out string expected)
    {
        expected = "nic, nvme, gpu, random or mixed";
        return Array.IndexOf(Workloads, text) >= 0 ? text : null;
    }

    /// <summary>A page-table format name.</summary>
    public static PtFormatKind? Format(string text, out string expected)
    {
        expected = "amdv1, x86_64, vtdss or riscv64";
        return PtFormatOps.Parse(text);
    }

    /// <summary>A flush policy.</summary>
    public static FlushPolicySpec? Policy(string text, out string expected)
    {
        expected = $"strict, lazy, lazy-single, batch:N with N from 1 to {MaxBatch}, or passthrough";
        return FlushPolicySpec.TryParse(text, out var spec) && spec.BatchSize <= MaxBatch ? spec : null;
    }

    /// <summary>A flush policy an IOMMU unit runs (replay, import): <see cref="Policy"/> without passthrough.</summary>
    public static FlushPolicySpec? UnitPolicy(string text, out string expected)
    {
        expected = $"strict, lazy, lazy-single or batch:N with N from 1 to {MaxBatch} (passthrough has no IOMMU to replay through)";
        return FlushPolicySpec.TryParse(text, out var spec) && spec.BatchSize <= MaxBatch && spec.Kind != FlushPolicyKind.Passthrough ? spec : null;
    }

    /// <summary>A deliberately broken IOMMU configuration (or none).</summary>
    public static UnsafeMode? Unsafe(string text, out string expected)
    {
        expected = string.Join(", ", UnsafeModes.Names);
        return UnsafeModes.Parse(text);
    }

    /// <summary>A run id (the first part of every persistence id of the run).</summary>
    public static string? RunId(string text, out string expected)
    {
        expected = $"1 to {PersistenceIds.MaxPartLength} characters of A-Z a-z 0-9 . _ -";
        return PersistenceIds.IsValidPart(text) ? text : null;
    }

    /// <summary>A file path (not empty, not blank).</summary>
    public static string? FilePath(string text, out string expected)
    {
        expected = "a file path";
        return string.IsNullOrWhiteSpace(text) || text.Contains('\0', StringComparison.Ordinal) ? null : text;
    }

    /// <summary>Seed nodes of a cluster: HOST:PORT[,HOST:PORT...].</summary>
    public static string? HostPort(string text, out string expected)
    {
        expected = "HOST:PORT[,HOST:PORT...] (host names or IPv4 addresses and ports 1..65535)";
        return PtActors.Actors.LaneSharding.ParseSeeds(text, out _) is null ? null : text;
    }

    /// <summary>A fresh run id: <c>yyyyMMdd-HHmmss-xxxx</c>, UTC time and 4 random hex digits.</summary>
    public static string NewRunId() => NewRunId(DateTimeOffset.UtcNow, System.Security.Cryptography.RandomNumberGenerator.GetInt32(0x10000));

    /// <summary>The run id of <paramref name="utcNow"/> with the suffix <paramref name="random"/> (its low 16 bits).</summary>
    public static string NewRunId(DateTimeOffset utcNow, int random)
        => string.Create(CultureInfo.InvariantCulture, $"{utcNow.UtcDateTime:yyyyMMdd-HHmmss}-{random & 0xffff:x4}");

    private static bool IsDecimal(string text) => text.Length > 0 && !text.AsSpan().ContainsAnyExceptInRange('0', '9');

    /// <summary>
    /// A comma-separated list of values each <paramref name="one"/> accepts, without repeats; each value is kept as
    /// written (for labels and JSON).
    /// </summary>
    public static SimulateCommand.ValueParser<Listed<T>?> List<T>(SimulateCommand.ValueParser<T?> one) where T : struct
        => (string text, out string expected) =>
        {
            var values = new List<T>();
            var texts = new List<string>();
            expected = "";
            foreach (string item in text.Split(','))
            {
                if (one(item, out expected) is not T value)
                {
                    expected = $"'{Shorten(item)}': {expected}";
                    return null;
                }
                if (values.Contains(value))
                {
                    expected = $"'{Shorten(item)}' is listed twice";
                    return null;
                }
                values.Add(value);
                texts.Add(item);
            }
            return new Listed<T>([.. values], [.. texts]);
        };

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..40] + "...";
}

/// <summary>The values of a list option (<c>--policy strict,lazy</c>), each also as written.</summary>
internal sealed record Listed<T>(T[] Items, string[] Texts);
