using PtActors.Engine;
using PtActors.Engine.Formats;
using PtActors.Engine.Hardware;

namespace PtActors.Cli.Script;

/// <summary>
/// Turns one line of a scenario into a typed <see cref="ScriptCommand"/>: strips the <c>#</c> comment, splits
/// on spaces and tabs, checks the argument count and every argument. A malformed line throws
/// <see cref="ScriptSyntaxException"/> with the reason; a blank or comment-only line yields null. Whether the
/// named domain exists is the runner's check: it depends on the lines run before.
/// </summary>
internal static class ScriptParser
{
    private delegate ScriptCommand Builder(string[] args);

    private sealed record Syntax(int MinArgs, int MaxArgs, string Usage, Builder Build);

    private static readonly Dictionary<string, Syntax> Commands = new(StringComparer.Ordinal)
    {
        ["domain"] = new(2, int.MaxValue, "domain D FORMAT [key=value ...]", ParseDomain),
        ["map"] = new(4, 5, "map D IOVA PADDR SIZE [PROT]",
            a => new MapCommand(a[0], Num(a[1]), Num(a[2]), Num(a[3]), a.Length > 4 ? ParseProt(a[4]) : DefaultProt)),
        ["unmap"] = new(3, 3, "unmap D IOVA SIZE", a => new UnmapCommand(a[0], Num(a[1]), Num(a[2]))),
        ["unmap_fast"] = new(3, 3, "unmap_fast D IOVA SIZE", a => new UnmapFastCommand(a[0], Num(a[1]), Num(a[2]))),
        ["sync"] = new(1, 1, "sync D", a => new SyncCommand(a[0])),
        ["phys"] = new(2, 2, "phys D IOVA", a => new PhysCommand(a[0], Num(a[1]))),
        ["count"] = new(1, 1, "count D", a => new CountCommand(a[0])),
        ["top"] = new(1, 1, "top D", a => new TopCommand(a[0])),
        ["tables"] = new(1, 1, "tables D", a => new TablesCommand(a[0])),
        ["dirty"] = new(3, 4, "dirty D IOVA SIZE [noclear]",
            a => new DirtyCommand(a[0], Num(a[1]), Num(a[2]), a.Length > 3 && ParseDirtyFlag(a[3]))),
        ["touch"] = new(2, 2, "touch D IOVA", a => new TouchCommand(a[0], Num(a[1]))),
        ["iommu"] = new(1, int.MaxValue,
            "iommu U [iotlb=N] [ways=N] [mode=lru|flushall] [policy=strict|lazy|lazy-single|batch:N] [cpus=N] [inv_ns=N]",
            ParseIommu),
        ["attach"] = new(3, 3, "attach DEV U D", a => new AttachCommand(a[0], a[1], a[2])),
        ["detach"] = new(1, 1, "detach DEV", a => new DetachCommand(a[0])),
        ["dma"] = new(3, 3, "dma DEV IOVA r|w", a => new DmaCommand(a[0], Num(a[1]), ParseDirection(a[2]))),
        ["advance"] = new(1, 1, "advance DURATION", a => new AdvanceCommand(ParseDuration(a[0]))),
        ["stats"] = new(1, 1, "stats U", a => new StatsCommand(a[0])),
    };

    /// <summary>The protection of a <c>map</c> without PROT: read and write.</summary>
    public const IommuProt DefaultProt = IommuProt.Read | IommuProt.Write;

    /// <summary>The command names, in the order the format lists them.</summary>
    public static IEnumerable<string> CommandNames => Commands.Keys;

    /// <summary>Parses one line; null for a blank or comment-only line.</summary>
    /// <exception cref="ScriptSyntaxException">The line is malformed.</exception>
    public static ScriptCommand? Parse(string line)
    {
        var tokens = Tokenize(line);
        if (tokens.Count == 0)
            return null;
        string name = tokens[0];
        if (!Commands.TryGetValue(name, out var syntax))
            throw new ScriptSyntaxException($"unknown command {ScriptText.Quote(name)}");
        int args = tokens.Count - 1;
        if (args < syntax.MinArgs)
            throw new ScriptSyntaxException($"missing argument: usage is '{syntax.Usage}'");
        if (args > syntax.MaxArgs)
            throw new ScriptSyntaxException($"extra argument {ScriptText.Quote(tokens[syntax.MaxArgs + 1])}: usage is '{syntax.Usage}'");
        return syntax.Build(tokens.GetRange(1, args).ToArray());
    }

    /// <summary>The tokens of a line: the part before any <c>#</c>, split on spaces and tabs.</summary>
    public static List<string> Tokenize(string line)
    {
        int hash = line.IndexOf('#', StringComparison.Ordinal);
        if (hash >= 0)
            line = line[..hash];
        return [.. line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)];
    }

    private static ulong Num(string token) => ScriptNumber.Parse(token);

    /// <summary>PROT letters: r read, w write, c cache, n noexec, m mmio, p priv.</summary>
    private static IommuProt ParseProt(string token)
    {
        var prot = IommuProt.None;
        foreach (char c in token)
        {
            prot |= c switch
            {
                'r' => IommuProt.Read,
                'w' => IommuProt.Write,
                'c' => IommuProt.Cache,
                'n' => IommuProt.NoExec,
                'm' => IommuProt.Mmio,
                'p' => IommuProt.Priv,
                _ => throw new ScriptSyntaxException($"bad PROT letter {ScriptText.Quote(c)} in {ScriptText.Quote(token)} (letters are rwcnmp)"),
            };
        }
        return prot;
    }

    private static bool ParseDirtyFlag(string token) => token == "noclear"
        ? true
        : throw new ScriptSyntaxException($"bad dirty flag {ScriptText.Quote(token)} (the only flag is noclear)");

    private static bool ParseDirection(string token) => token switch
    {
        "r" => false,
        "w" => true,
        _ => throw new ScriptSyntaxException($"bad DMA direction {ScriptText.Quote(token)} (r or w)"),
    };

    /// <summary>DURATION: a decimal integer with a unit, ns, us, ms or s.</summary>
    private static ulong ParseDuration(string token)
    {
        (string unit, ulong scale) = token.EndsWith("ns", StringComparison.Ordinal) ? ("ns", 1UL)
            : token.EndsWith("us", StringComparison.Ordinal) ? ("us", 1_000UL)
            : token.EndsWith("ms", StringComparison.Ordinal) ? ("ms", 1_000_000UL)
            : token.EndsWith('s') ? ("s", 1_000_000_000UL)
            : throw new ScriptSyntaxException($"bad duration {ScriptText.Quote(token)} (an integer with a unit: ns, us, ms or s)");
        string digits = token[..^unit.Length];
        if (digits.Length == 0 || !digits.All(char.IsAsciiDigit)
            || !ulong.TryParse(digits, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ulong n))
            throw new ScriptSyntaxException($"bad duration {ScriptText.Quote(token)} (an integer with a unit: ns, us, ms or s)");
        ulong ns = n * scale;
        if (scale != 0 && ns / scale != n)
            throw new ScriptSyntaxException($"duration {ScriptText.Quote(token)} is above 2^64-1 ns");
        return ns;
    }

    private static ScriptCommand ParseIommu(string[] args)
    {
        var config = new IommuUnitConfig();
        int entries = config.Iotlb.Entries, ways = config.Iotlb.Ways;
        var mode = config.Iotlb.Mode;
        foreach (string option in args.AsSpan(1))
        {
            int eq = option.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
                throw new ScriptSyntaxException($"option {ScriptText.Quote(option)} is not key=value");
            string key = option[..eq], value = option[(eq + 1)..];
            switch (key)
            {
                case "iotlb":
                    entries = Positive(key, value);
                    break;
                case "ways":
                    ways = Positive(key, value);
                    break;
                case "mode":
                    mode = value switch
                    {
                        "lru" => IotlbMode.Lru,
                        "flushall" => IotlbMode.FlushAll,
                        _ => throw new ScriptSyntaxException($"bad value {ScriptText.Quote(value)} for mode (lru or flushall)"),
                    };
                    break;
                case "policy":
                    if (!FlushPolicySpec.TryParse(value, out var policy) || policy.Kind == FlushPolicyKind.Passthrough)
                        throw new ScriptSyntaxException($"bad value {ScriptText.Quote(value)} for policy (strict, lazy, lazy-single or batch:N)");
                    config = config with { Policy = policy };
                    break;
                case "cpus":
                    config = config with { Cpus = Positive(key, value) };
                    break;
                case "inv_ns":
                    config = config with { InvalidationNs = Num(value) };
                    break;
                case "flavor":
                    config = config with
                    {
                        Flavor = value switch
                        {
                            "amd" => InvalidationFlavor.Amd,
                            "vtd" => InvalidationFlavor.Vtd,
                            "amd-short" => InvalidationFlavor.AmdOneBitShort,
                            _ => throw new ScriptSyntaxException($"bad value {ScriptText.Quote(value)} for flavor (amd, vtd or amd-short)"),
                        },
                    };
                    break;
                case "unsafe":
                    config = value switch
                    {
                        "free-early" => config with { FreeTablesBeforeFlush = true },
                        "skip-context" => config with { SkipContextInvalidation = true },
                        _ => throw new ScriptSyntaxException($"bad value {ScriptText.Quote(value)} for unsafe (free-early or skip-context)"),
                    };
                    break;
                default:
                    throw new ScriptSyntaxException(
                        $"iommu does not accept key {ScriptText.Quote(key)} (keys: iotlb ways mode policy cpus inv_ns flavor unsafe)");
            }
        }
        if (entries % ways != 0)
            throw new ScriptSyntaxException($"an IOTLB of {entries} entries cannot have {ways} ways");
        return new IommuCommand(args[0], config with { Iotlb = new IotlbConfig(entries, ways, mode) });
    }

    private static int Positive(string key, string value)
    {
        ulong v = ScriptNumber.Parse(value);
        return v is >= 1 and <= int.MaxValue ? (int)v
            : throw new ScriptSyntaxException($"bad value {ScriptText.Quote(value)} for {key} (1 to {int.MaxValue})");
    }

    /// <summary>The keys each format's <c>domain</c> line accepts.</summary>
    private static string[] KeysOf(PtFormatKind format) => format switch
    {
        PtFormatKind.Amdv1 => ["vasz", "oasz", "level", "flush"],
        PtFormatKind.X86_64 => ["vasz", "oasz", "sign_extend", "flush"],
        PtFormatKind.Vtdss => ["vasz", "oasz", "flush"],
        PtFormatKind.Riscv64 => ["vasz", "oasz", "sign_extend", "napot", "flush"],
        _ => throw new ArgumentOutOfRangeException(nameof(format)),
    };

    private static ScriptCommand ParseDomain(string[] args)
    {
        string formatName = args[1];
        var format = PtFormatOps.Parse(formatName)
            ?? throw new ScriptSyntaxException($"unknown format {ScriptText.Quote(formatName)} (formats are amdv1 x86_64 vtdss riscv64)");
        var keys = KeysOf(format);
        var config = PtConfig.Default(format);
        foreach (string option in args.AsSpan(2))
        {
            int eq = option.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
                throw new ScriptSyntaxException($"option {ScriptText.Quote(option)} is not key=value");
            string key = option[..eq], value = option[(eq + 1)..];
            if (Array.IndexOf(keys, key) < 0)
                throw new ScriptSyntaxException($"{formatName} does not accept key {ScriptText.Quote(key)} (keys: {string.Join(' ', keys)})");
            config = key switch
            {
                "vasz" => config with { HwMaxVaszLg2 = SmallValue(value) },
                "oasz" => config with { HwMaxOaszLg2 = SmallValue(value) },
                "level" => config with { StartingLevel = SmallValue(value) },
                "sign_extend" => config with { Features = With(config.Features, PtFeatures.SignExtend, Bool(key, value)) },
                "napot" => config with { Features = With(config.Features, PtFeatures.RiscvSvnapot64K, Bool(key, value)) },
                _ => config with { Features = FlushFeatures(config.Features, value) },
            };
        }
        return new DomainCommand(args[0], config);
    }

    /// <summary>A small number option (vasz, oasz, level); values too big for an int saturate, init rejects them.</summary>
    private static int SmallValue(string value)
    {
        ulong v = ScriptNumber.Parse(value);
        return v > int.MaxValue ? int.MaxValue : (int)v;
    }

    private static bool Bool(string key, string value) => value switch
    {
        "0" => false,
        "1" => true,
        _ => throw new ScriptSyntaxException($"bad value {ScriptText.Quote(value)} for {key} (0 or 1)"),
    };

    private static PtFeatures With(PtFeatures features, PtFeatures bit, bool on)
        => on ? features | bit : features & ~bit;

    /// <summary>flush=range|nogaps|both|none: PT_FEAT_FLUSH_RANGE, PT_FEAT_FLUSH_RANGE_NO_GAPS, both, neither.</summary>
    private static PtFeatures FlushFeatures(PtFeatures features, string value)
    {
        var flush = value switch
        {
            "range" => PtFeatures.FlushRange,
            "nogaps" => PtFeatures.FlushRangeNoGaps,
            "both" => PtFeatures.FlushRange | PtFeatures.FlushRangeNoGaps,
            "none" => PtFeatures.None,
            _ => throw new ScriptSyntaxException($"bad value {ScriptText.Quote(value)} for flush (range, nogaps, both or none)"),
        };
        return (features & ~(PtFeatures.FlushRange | PtFeatures.FlushRangeNoGaps)) | flush;
    }
}
