using System.Globalization;
using System.Text.RegularExpressions;
using Akka.Configuration;
using Akka.Configuration.Hocon;
using PtActors.Engine.Cost;

namespace PtActors.Persistence;

/// <summary>
/// The cost model's configuration: the defaults in config/cost-model.conf (embedded), and a user's file of the
/// same shape (<c>ptactors.cost { invalidation-ns = 2000 }</c>) that overrides any of them.
/// </summary>
public static class CostModelConfig
{
    /// <summary>The embedded file of defaults.</summary>
    public const string FileName = "cost-model.conf";

    private const string Root = "ptactors.cost";

    /// <summary>Every key, in the file's order.</summary>
    public static IReadOnlyList<string> Keys { get; } =
    [
        "map-call-ns", "map-page-ns", "unmap-call-ns", "unmap-page-ns", "dma-call-ns", "iova-cache-hit-ns",
        "iova-cache-miss-ns", "iova-free-ns", "iova-magazine-size", "iova-cache-max-order", "flush-queue-ns",
        "invalidation-submit-ns", "invalidation-ns", "walk-read-ns", "iotlb-hit-ns", "translations-in-flight",
    ];

    /// <summary>The defaults, from the embedded config/cost-model.conf.</summary>
    public static CostModel Defaults()
    {
        if (!TryApply(CostModel.Default, PersistenceConfig.Template(FileName), FileName, out var model, out string? error))
            throw new InvalidOperationException("the embedded " + FileName + " is broken: " + error);
        return model;
    }

    /// <summary>
    /// The defaults overridden by the file at <paramref name="path"/>; false with <paramref name="error"/> (naming
    /// the file, the line where it can be found, and the key) when the file cannot be read or holds anything but
    /// known keys under <c>ptactors.cost</c> with valid values.
    /// </summary>
    public static bool TryLoad(string path, out CostModel model, out string? error)
    {
        model = CostModel.Default;
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            error = $"{path}: cannot read it: {e.Message}";
            return false;
        }
        return TryApply(Defaults(), text, path, out model, out error);
    }

    /// <summary>Applies the keys of the HOCON <paramref name="text"/> (from <paramref name="source"/>) to <paramref name="baseline"/>.</summary>
    public static bool TryApply(CostModel baseline, string text, string source, out CostModel model, out string? error)
    {
        ArgumentNullException.ThrowIfNull(baseline);
        ArgumentNullException.ThrowIfNull(text);
        model = baseline;
        Config config;
        try
        {
            config = ConfigurationFactory.ParseString(text);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            error = $"{source}: not valid HOCON: {FirstLine(e.Message)}";
            return false;
        }
        if (config.IsEmpty)
        {
            model = baseline;
            error = null;
            return true;
        }
        // Nothing may sit outside ptactors.cost: a key there is a mistake the user would not see otherwise.
        foreach (var (key, _) in Flatten(config.Root, ""))
        {
            if (!key.StartsWith(Root + ".", StringComparison.Ordinal))
            {
                error = $"{Where(source, text, LastSegment(key))}: '{key}' is not a cost key (every key goes under {Root})";
                return false;
            }
            string name = key[(Root.Length + 1)..];
            if (!Keys.Contains(name))
            {
                error = $"{Where(source, text, name)}: unknown cost key '{name}' (known: {string.Join(", ", Keys)})";
                return false;
            }
        }
        var m = baseline;
        foreach (var (key, value) in Flatten(config.Root, ""))
        {
            string name = key[(Root.Length + 1)..];
            string raw = value.GetString() ?? "";
            if (!double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out double number))
            {
                error = $"{Where(source, text, name)}: {name} must be a number, not '{raw}'";
                return false;
            }
            if (!TrySet(ref m, name, number, out error))
            {
                error = $"{Where(source, text, name)}: {error}";
                return false;
            }
        }
        if (m.Problem() is { } problem)
        {
            error = $"{source}: {problem}";
            return false;
        }
        model = m;
        error = null;
        return true;
    }

    private static bool TrySet(ref CostModel m, string name, double v, out string? error)
    {
        error = null;
        switch (name)
        {
            case "iova-magazine-size":
            case "iova-cache-max-order":
            case "translations-in-flight":
                if (v != Math.Floor(v) || v < int.MinValue || v > int.MaxValue)
                {
                    error = $"{name} must be a whole number, not {v.ToString(CultureInfo.InvariantCulture)}";
                    return false;
                }
                int n = (int)v;
                m = name switch
                {
                    "iova-magazine-size" => m with { IovaMagazineSize = n },
                    "iova-cache-max-order" => m with { IovaCacheMaxOrder = n },
                    _ => m with { TranslationsInFlight = n },
                };
                break;
            default:
                m = name switch
                {
                    "map-call-ns" => m with { MapCallNs = v },
                    "map-page-ns" => m with { MapPageNs = v },
                    "unmap-call-ns" => m with { UnmapCallNs = v },
                    "unmap-page-ns" => m with { UnmapPageNs = v },
                    "dma-call-ns" => m with { DmaCallNs = v },
                    "iova-cache-hit-ns" => m with { IovaCacheHitNs = v },
                    "iova-cache-miss-ns" => m with { IovaCacheMissNs = v },
                    "iova-free-ns" => m with { IovaFreeNs = v },
                    "flush-queue-ns" => m with { FlushQueueNs = v },
                    "invalidation-submit-ns" => m with { InvalidationSubmitNs = v },
                    "invalidation-ns" => m with { InvalidationNs = v },
                    "walk-read-ns" => m with { WalkReadNs = v },
                    "iotlb-hit-ns" => m with { IotlbHitNs = v },
                    _ => throw new InvalidOperationException("unhandled cost key " + name),
                };
                break;
        }
        return true;
    }

    /// <summary>Every leaf of the tree as (dotted key, value), in the file's order.</summary>
    private static IEnumerable<(string Key, HoconValue Value)> Flatten(HoconValue node, string prefix)
    {
        if (node.IsObject())
        {
            foreach (var (name, child) in node.GetObject().Items)
            {
                foreach (var leaf in Flatten(child, prefix.Length == 0 ? name : prefix + "." + name))
                    yield return leaf;
            }
        }
        else
        {
            yield return (prefix, node);
        }
    }

    private static string LastSegment(string key) => key[(key.LastIndexOf('.') + 1)..];

    /// <summary><paramref name="source"/>:LINE where <paramref name="name"/> first appears as a key, or just the source.</summary>
    private static string Where(string source, string text, string name)
    {
        var lines = text.Split('\n');
        var pattern = new Regex(@"(^|[\s{.""])" + Regex.Escape(name) + @"[""]?\s*[=:{]", RegexOptions.CultureInvariant);
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i];
            int hash = line.IndexOf('#', StringComparison.Ordinal);
            if (hash >= 0)
                line = line[..hash];
            if (pattern.IsMatch(line))
                return $"{source}:{i + 1}";
        }
        return source;
    }

    private static string FirstLine(string message)
    {
        int nl = message.IndexOf('\n', StringComparison.Ordinal);
        return (nl < 0 ? message : message[..nl]).Trim();
    }
}
