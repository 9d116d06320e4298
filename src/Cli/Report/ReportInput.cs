using System.Globalization;
using System.Text;
using System.Text.Json;

namespace PtActors.Cli.Report;

/// <summary>A bad input file: the message names the file, the line and what was wrong.</summary>
internal sealed class ReportInputException(string message) : Exception(message);

/// <summary>One bucket of a distribution: its upper bound (µs) and count.</summary>
internal readonly record struct Bucket(double LeUs, long Count);

/// <summary>One point of a run's timeline.</summary>
internal readonly record struct TimePoint(double TUs, long Invalidations, long Hits, long Misses, long Dmas);

/// <summary>One configuration read from a <c>simulate</c> or <c>replay</c> JSON file.</summary>
internal sealed class ReportRun
{
    /// <summary>The file it came from.</summary>
    public required string File { get; init; }
    /// <summary>Its parameters (policy, iotlb, cpus, …) as written, in file order.</summary>
    public List<(string Key, string Value)> Parameters { get; } = [];
    /// <summary>Its numeric figures; a key holding null is absent.</summary>
    public Dictionary<string, double> Figures { get; } = new(StringComparer.Ordinal);
    /// <summary>Its string figures (run_id, policy when not a parameter, …).</summary>
    public Dictionary<string, string> Strings { get; } = new(StringComparer.Ordinal);
    /// <summary>Its distributions, by key; absent when missing or null.</summary>
    public Dictionary<string, List<Bucket>> Distributions { get; } = new(StringComparer.Ordinal);
    /// <summary>Its timeline, or null.</summary>
    public List<TimePoint>? Timeline { get; set; }
    /// <summary>How the report names it.</summary>
    public string Label { get; set; } = "";

    /// <summary>A parameter's value, or null.</summary>
    public string? Parameter(string key)
    {
        foreach (var (k, v) in Parameters)
        {
            if (k == key)
                return v;
        }
        return null;
    }
}

/// <summary>
/// Reads the JSON files <c>ptactors simulate --json</c> and <c>ptactors replay --json</c> write: a single run (its
/// figures at the top level) or a comparison (<c>runs</c>: one object per configuration). Every error names the
/// file and the line.
/// </summary>
internal static class ReportInput
{
    /// <summary>The parameters a comparison varies, in label order.</summary>
    public static readonly string[] ParameterKeys = ["workload", "policy", "iotlb", "cpus", "format", "buffer_page", "nic_buffers"];

    /// <summary>The distributions a run carries.</summary>
    public static readonly string[] DistributionKeys = ["lock_wait_histogram", "stale_window_histogram", "op_latency_histogram"];

    /// <summary>Reads every configuration of <paramref name="path"/>.</summary>
    public static List<ReportRun> Read(string path)
    {
        byte[] bytes;
        try
        {
            bytes = System.IO.File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ReportInputException($"{path}: cannot read it: {e.Message}");
        }
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new ReportInputException($"{path}:{(e.LineNumber ?? 0) + 1}: not valid JSON: {FirstSentence(e.Message)}");
        }
        using (doc)
        {
            var lines = new LineIndex(bytes);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new ReportInputException($"{path}:1: expected a JSON object (what simulate --json or replay --json writes), found {Kind(root)}");
            var runs = new List<ReportRun>();
            if (root.TryGetProperty("runs", out var list))
            {
                if (list.ValueKind != JsonValueKind.Array)
                    throw new ReportInputException($"{path}:{lines.Of(bytes, "runs")}: runs must be an array of objects, found {Kind(list)}");
                int i = 0;
                foreach (var item in list.EnumerateArray())
                {
                    if (item.ValueKind != JsonValueKind.Object)
                        throw new ReportInputException($"{path}:{lines.Of(bytes, "runs")}: runs[{i}] must be an object, found {Kind(item)}");
                    runs.Add(ReadRun(path, $"runs[{i}].", item, lines, bytes, i));
                    i++;
                }
                if (runs.Count == 0)
                    throw new ReportInputException($"{path}:{lines.Of(bytes, "runs")}: runs is empty: there is nothing to report");
            }
            else
            {
                runs.Add(ReadRun(path, "", root, lines, bytes, 0));
            }
            return runs;
        }
    }

    private static ReportRun ReadRun(string path, string where, JsonElement obj, LineIndex lines, byte[] bytes, int nth)
    {
        var run = new ReportRun { File = path };
        foreach (var p in obj.EnumerateObject())
        {
            string key = p.Name;
            var v = p.Value;
            string Here() => $"{path}:{lines.Of(bytes, key, nth)}: {where}{key}";
            if (Array.IndexOf(ParameterKeys, key) >= 0)
            {
                if (v.ValueKind is JsonValueKind.String)
                    run.Parameters.Add((key, v.GetString()!));
                else if (v.ValueKind is JsonValueKind.Number)
                    run.Parameters.Add((key, v.GetRawText()));
                else if (v.ValueKind is not JsonValueKind.Null)
                    throw new ReportInputException($"{Here()} must be a string or a number, found {Kind(v)}");
                continue;
            }
            if (Array.IndexOf(DistributionKeys, key) >= 0)
            {
                if (v.ValueKind == JsonValueKind.Null)
                    continue;
                if (v.ValueKind != JsonValueKind.Array)
                    throw new ReportInputException($"{Here()} must be an array of {{\"le_us\", \"count\"}} or null, found {Kind(v)}");
                var buckets = new List<Bucket>();
                int j = 0;
                foreach (var b in v.EnumerateArray())
                {
                    if (b.ValueKind != JsonValueKind.Object || !b.TryGetProperty("le_us", out var le) || le.ValueKind != JsonValueKind.Number
                        || !b.TryGetProperty("count", out var count) || !count.TryGetInt64(out long n) || n < 0)
                        throw new ReportInputException($"{Here()}[{j}] must be {{\"le_us\": number, \"count\": whole number ≥ 0}}");
                    buckets.Add(new Bucket(le.GetDouble(), n));
                    j++;
                }
                run.Distributions[key] = buckets;
                continue;
            }
            if (key == "timeline")
            {
                if (v.ValueKind == JsonValueKind.Null)
                    continue;
                if (v.ValueKind != JsonValueKind.Array)
                    throw new ReportInputException($"{Here()} must be an array of points or null, found {Kind(v)}");
                var points = new List<TimePoint>();
                int j = 0;
                foreach (var t in v.EnumerateArray())
                {
                    if (t.ValueKind != JsonValueKind.Object || !t.TryGetProperty("t_us", out var tus) || tus.ValueKind != JsonValueKind.Number
                        || !Count(t, "invalidations", out long inv) || !Count(t, "iotlb_hits", out long hits)
                        || !Count(t, "iotlb_misses", out long misses) || !Count(t, "dmas", out long dmas))
                        throw new ReportInputException($"{Here()}[{j}] must be {{\"t_us\": number, \"invalidations\", \"iotlb_hits\", \"iotlb_misses\", \"dmas\": whole numbers ≥ 0}}");
                    points.Add(new TimePoint(tus.GetDouble(), inv, hits, misses, dmas));
                    j++;
                }
                run.Timeline = points;
                continue;
            }
            switch (v.ValueKind)
            {
                case JsonValueKind.Number:
                    run.Figures[key] = v.GetDouble();
                    break;
                case JsonValueKind.String:
                    if (ReportFigures.IsNumeric(key))
                        throw new ReportInputException($"{Here()} must be a number or null, found a string");
                    run.Strings[key] = v.GetString()!;
                    break;
                case JsonValueKind.Null:
                    break;
                default:
                    if (ReportFigures.IsNumeric(key))
                        throw new ReportInputException($"{Here()} must be a number or null, found {Kind(v)}");
                    break; // a key the report does not use
            }
        }
        return run;
    }

    private static bool Count(JsonElement obj, string key, out long value)
    {
        value = 0;
        return obj.TryGetProperty(key, out var v) && v.TryGetInt64(out value) && value >= 0;
    }

    private static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };

    private static string FirstSentence(string message)
    {
        int at = message.IndexOf(" Path:", StringComparison.Ordinal);
        return (at > 0 ? message[..at] : message).Trim();
    }

    /// <summary>Line numbers of keys: the line of the <c>nth</c> occurrence of <c>"key":</c> (1 when not found).</summary>
    private sealed class LineIndex(byte[] bytes)
    {
        private readonly int[] _lineStarts = Starts(bytes);

        private static int[] Starts(byte[] bytes)
        {
            var starts = new List<int> { 0 };
            for (int i = 0; i < bytes.Length; i++)
            {
                if (bytes[i] == (byte)'\n')
                    starts.Add(i + 1);
            }
            return [.. starts];
        }

        public int Of(byte[] text, string key, int nth = 0)
        {
            byte[] needle = Encoding.UTF8.GetBytes("\"" + key + "\"");
            int from = 0, found = -1;
            for (int k = 0; k <= nth; k++)
            {
                int at = text.AsSpan(from).IndexOf(needle);
                if (at < 0)
                    break;
                found = from + at;
                from = found + needle.Length;
            }
            if (found < 0)
                return 1;
            int line = Array.BinarySearch(_lineStarts, found);
            return (line >= 0 ? line : ~line - 1) + 1;
        }
    }
}

/// <summary>The figures the report plots and tabulates.</summary>
internal static class ReportFigures
{
    /// <summary>The summary table's columns.</summary>
    public static readonly string[] Table =
    [
        "throughput_ratio", "cpu_utilization", "iotlb_hit_rate", "invalidations", "invalidations_per_unmap", "stale_in_window",
        "stale_violations", "use_after_free", "op_latency_p99_us", "device_gbps",
    ];

    private static readonly HashSet<string> Numeric = new(StringComparer.Ordinal)
    {
        "ops", "dmas", "ops_per_sec", "wall_s", "sim_s", "maps", "unmaps", "bytes_mapped", "iotlb_hit_rate", "invalidations",
        "invalidations_per_unmap", "over_invalidated_bytes", "stale_in_window", "stale_violations", "use_after_free",
        "isolation_breaches", "lock_wait_p50_us", "lock_wait_p99_us", "lock_waits", "table_pages_max", "events_persisted",
        "ops_persisted", "faults", "errors", "throughput_ratio", "device_gbps", "device_iops", "cpu_utilization",
        "inv_queue_utilization", "op_latency_p50_us", "op_latency_p99_us", "translation_stall_us", "throttled",
    };

    /// <summary>Whether <paramref name="key"/> is a figure that must be a number (or null).</summary>
    public static bool IsNumeric(string key) => Numeric.Contains(key);

    /// <summary>A figure as the summary table shows it.</summary>
    public static string Display(ReportRun run, string key)
        => run.Figures.TryGetValue(key, out double v) ? v.ToString(v == Math.Floor(v) && Math.Abs(v) < 1e15 ? "0" : "0.####", CultureInfo.InvariantCulture) : "–";
}
