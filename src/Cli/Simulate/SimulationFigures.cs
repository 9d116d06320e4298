using System.Globalization;
using System.Text.Json;
using PtActors.Actors;

namespace PtActors.Cli.Simulate;

/// <summary>
/// Every figure of a <see cref="SimulationResult"/> under its JSON key, in one order: what <c>--json FILE</c> writes
/// and what the summary table shows.
/// </summary>
internal static class SimulationFigures
{
    /// <summary>The keys and values, in output order (a value is a string, long, ulong or double).</summary>
    public static IReadOnlyList<(string Key, object? Value)> Of(SimulationResult r) =>
    [
        ("run_id", r.RunId),
        ("unsafe", UnsafeModes.Name(r.Unsafe)),
        ("ops", r.Ops),
        ("dmas", r.Dmas),
        ("ops_per_sec", r.OpsPerSec),
        ("wall_s", r.WallS),
        ("sim_s", r.SimS),
        ("maps", r.Maps),
        ("unmaps", r.Unmaps),
        ("bytes_mapped", r.BytesMapped),
        ("iotlb_hit_rate", r.IotlbHitRate),
        ("invalidations", r.Invalidations),
        ("invalidations_per_unmap", r.InvalidationsPerUnmap),
        ("over_invalidated_bytes", r.OverInvalidatedBytes),
        ("stale_in_window", r.StaleInWindow),
        ("stale_violations", r.StaleViolations),
        ("use_after_free", r.UseAfterFree),
        ("isolation_breaches", r.IsolationBreaches),
        ("lock_wait_p50_us", r.LockWaitP50Us),
        ("lock_wait_p99_us", r.LockWaitP99Us),
        ("lock_waits", r.LockWaits),
        ("table_pages_max", r.TablePagesMax),
        ("events_persisted", r.EventsPersisted),
        ("ops_persisted", r.OpsPersisted),
        ("table_hash", r.TableHash),
        ("memory_hash", r.MemoryHash),
        ("faults", r.Faults),
        ("errors", r.Errors),
        ("throughput_ratio", r.Cost?.ThroughputRatio),
        ("device_gbps", r.Cost?.DeviceGbps),
        ("device_iops", r.Cost?.DeviceIops),
        ("cpu_utilization", r.Cost?.CpuUtilization),
        ("inv_queue_utilization", r.Cost?.InvQueueUtilization),
        ("op_latency_p50_us", r.Cost?.OpLatencyP50Us),
        ("op_latency_p99_us", r.Cost?.OpLatencyP99Us),
        ("translation_stall_us", r.Cost?.TranslationStallUs),
        ("throttled", r.Cost?.Throttled),
    ];

    /// <summary>
    /// The distributions <c>--json</c> writes after the figures (not in the summary table): each an array of
    /// <c>{"le_us": upper bound of the bucket in simulated µs, "count": n}</c>, non-empty buckets in order.
    /// </summary>
    public static IReadOnlyList<(string Key, IReadOnlyList<(double LeUs, long Count)>? Buckets)> Distributions(SimulationResult r) =>
    [
        ("lock_wait_histogram", LockWaitBuckets(r.LockWaitHistogram)),
        ("stale_window_histogram", r.Cost is null ? null : Buckets(r.Cost.StaleWindow)),
        ("op_latency_histogram", r.Cost is null ? null : Buckets(r.Cost.OpLatency)),
    ];

    private static List<(double, long)>? LockWaitBuckets(PtActors.Engine.Cost.BucketCounts? histogram)
    {
        if (histogram is null)
            return null;
        var list = new List<(double, long)>();
        for (int k = 0; k < histogram.Length; k++)
        {
            // Bucket 0 counts waits below 1 µs (written as 0), bucket k ≥ 1 those in [2^(k-1), 2^k) µs.
            if (histogram[k] > 0)
                list.Add((k == 0 ? 0 : Math.Pow(2, k), histogram[k]));
        }
        return list;
    }

    private static List<(double, long)> Buckets(PtActors.Engine.Cost.LatencyHistogram h)
    {
        var list = new List<(double, long)>();
        foreach (var (upperNs, count) in h.Buckets())
            list.Add((upperNs / 1000, count));
        return list;
    }

    /// <summary>
    /// Writes the figures as one JSON object (UTF-8, no BOM, indented, a final newline). Numbers are JSON numbers
    /// (doubles in their shortest round-trip form); a double that is not finite is written as null.
    /// </summary>
    public static void WriteJson(Stream stream, SimulationResult result)
    {
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
            WriteRun(json, [], result);
        stream.WriteByte((byte)'\n');
    }

    /// <summary>
    /// Writes a comparison: <c>{"runs": [...]}</c>, one object per configuration with its parameters (under the
    /// options' names in snake_case, values as written) followed by every figure and distribution of its run.
    /// </summary>
    public static void WriteComparisonJson(Stream stream, IReadOnlyList<(IReadOnlyList<(string Key, object Value)> Parameters, SimulationResult Result)> runs)
    {
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteStartArray("runs");
            foreach (var (parameters, result) in runs)
                WriteRun(json, parameters, result);
            json.WriteEndArray();
            json.WriteEndObject();
        }
        stream.WriteByte((byte)'\n');
    }

    private static void WriteRun(Utf8JsonWriter json, IReadOnlyList<(string Key, object Value)> parameters, SimulationResult result)
    {
        json.WriteStartObject();
        foreach (var (key, value) in parameters)
        {
            if (value is int n)
                json.WriteNumber(key, n);
            else
                json.WriteString(key, value.ToString());
        }
        foreach (var (key, value) in Of(result))
            WriteValue(json, key, value);
        foreach (var (key, buckets) in Distributions(result))
        {
            if (buckets is null)
            {
                json.WriteNull(key);
                continue;
            }
            json.WriteStartArray(key);
            foreach (var (le, count) in buckets)
            {
                json.WriteStartObject();
                json.WriteNumber("le_us", le);
                json.WriteNumber("count", count);
                json.WriteEndObject();
            }
            json.WriteEndArray();
        }
        WriteTimeline(json, result.Timeline);
        json.WriteEndObject();
    }

    /// <summary>
    /// <c>timeline</c>: the units over simulated time, an array of <c>{"t_us": end of the interval, "invalidations",
    /// "iotlb_hits", "iotlb_misses", "dmas": counts in the interval}</c> (null where not collected).
    /// </summary>
    private static void WriteTimeline(Utf8JsonWriter json, RunTimeline? timeline)
    {
        if (timeline is null)
        {
            json.WriteNull("timeline");
            return;
        }
        json.WriteStartArray("timeline");
        foreach (var p in timeline.Points)
        {
            json.WriteStartObject();
            json.WriteNumber("t_us", p.TUs);
            json.WriteNumber("invalidations", p.Invalidations);
            json.WriteNumber("iotlb_hits", p.IotlbHits);
            json.WriteNumber("iotlb_misses", p.IotlbMisses);
            json.WriteNumber("dmas", p.Dmas);
            json.WriteEndObject();
        }
        json.WriteEndArray();
    }

    /// <summary>One figure: a string, a JSON number, or null (a value that is absent, or a double that is not finite).</summary>
    public static void WriteValue(Utf8JsonWriter json, string key, object? value)
    {
        switch (value)
        {
            case null:
                json.WriteNull(key);
                break;
            case string s:
                json.WriteString(key, s);
                break;
            case long l:
                json.WriteNumber(key, l);
                break;
            case ulong u:
                json.WriteNumber(key, u);
                break;
            case double d when double.IsFinite(d):
                json.WriteNumber(key, d);
                break;
            case double:
                json.WriteNull(key);
                break;
            default:
                throw new InvalidOperationException($"figure {key} has an unexpected type");
        }
    }

    /// <summary>A figure as the summary table shows it (invariant; integers in full, doubles to a useful precision).</summary>
    public static string Display(string key, object? value) => value switch
    {
        null => "-",
        string s => s,
        long l => l.ToString(CultureInfo.InvariantCulture),
        ulong u => u.ToString(CultureInfo.InvariantCulture),
        double d when !double.IsFinite(d) => "-",
        double d => key switch
        {
            "iotlb_hit_rate" => d.ToString("0.000000", CultureInfo.InvariantCulture),
            "ops_per_sec" => d.ToString("0", CultureInfo.InvariantCulture),
            "wall_s" => d.ToString("0.000", CultureInfo.InvariantCulture),
            "sim_s" => d.ToString("0.000000###", CultureInfo.InvariantCulture),
            "throughput_ratio" or "cpu_utilization" or "inv_queue_utilization" => d.ToString("0.0000", CultureInfo.InvariantCulture),
            _ => d.ToString("0.###", CultureInfo.InvariantCulture),
        },
        _ => value.ToString() ?? "",
    };
}
