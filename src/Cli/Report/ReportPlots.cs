using System.Globalization;
using ScottPlot;

namespace PtActors.Cli.Report;

/// <summary>One plot of the report: its PNG, or why it could not be drawn.</summary>
internal sealed record ReportPlot(string Name, string Title, string Caption, byte[]? Png, string? Missing);

/// <summary>Draws the report's plots with ScottPlot (PNG, fixed size, no fonts fetched).</summary>
internal static class ReportPlots
{
    private const int Width = 1200, Height = 520;

    /// <summary>Every plot of the report for <paramref name="runs"/>, in page order.</summary>
    public static List<ReportPlot> All(IReadOnlyList<ReportRun> runs)
    {
        return
        [
            PerConfiguration(runs, "throughput_ratio", "Throughput ratio per configuration",
                "What the devices moved ÷ what they offered (1 = no slowdown by the IOMMU), from the cost model (docs/model.md).",
                "replays carry no cost model"),
            PerConfiguration(runs, "cpu_utilization", "CPU utilization per configuration",
                "Mean share of the run's time the CPUs spent in DMA-API calls (docs/model.md).", "replays carry no cost model"),
            AgainstIotlb(runs, "iotlb_hit_rate", "IOTLB hit rate against IOTLB entries", "IOTLB hits ÷ lookups over all units."),
            AgainstIotlb(runs, "throughput_ratio", "Throughput ratio against IOTLB entries", "What the devices moved ÷ what they offered."),
            Timeline(runs, invalidations: true),
            Timeline(runs, invalidations: false),
            Distribution(runs, "lock_wait_histogram", "Range-lock waits", "Operations per lock-wait bucket (upper bound, simulated µs; 0: below 1 µs)."),
            Distribution(runs, "stale_window_histogram", "Stale windows", "Unmapped ranges per stale-window bucket: unmap to the completion of the invalidation covering it (upper bound, simulated µs)."),
            Distribution(runs, "op_latency_histogram", "Map and unmap latency", "Map and unmap calls per latency bucket, waits for invalidations included (upper bound, simulated µs; docs/model.md)."),
        ];
    }

    private static ReportPlot PerConfiguration(IReadOnlyList<ReportRun> runs, string key, string title, string caption, string why)
    {
        string name = key + ".png";
        var have = new List<ReportRun>();
        foreach (var r in runs)
        {
            if (r.Figures.ContainsKey(key))
                have.Add(r);
        }
        if (have.Count == 0)
            return new ReportPlot(name, title, caption, null, $"No plot of {key}: it is missing or null in every input ({why}).");
        var plot = new Plot();
        var values = new double[have.Count];
        var positions = new double[have.Count];
        var labels = new string[have.Count];
        for (int i = 0; i < have.Count; i++)
        {
            values[i] = have[i].Figures[key];
            positions[i] = i;
            labels[i] = have[i].Label;
        }
        // Horizontal bars, first configuration on top: labels of any length stay readable.
        for (int i = 0; i < positions.Length; i++)
            positions[i] = have.Count - 1 - i;
        var bars = plot.Add.Bars(positions, values);
        bars.Horizontal = true;
        bars.Color = Colors.SteelBlue;
        plot.Axes.Left.SetTicks(positions, labels);
        plot.Axes.Margins(left: 0);
        plot.Title(title);
        plot.XLabel(key);
        int height = Math.Max(260, 90 + 34 * have.Count);
        return new ReportPlot(name, title, caption + Absent(runs, have, key), plot.GetImageBytes(Width, height, ImageFormat.Png), null);
    }

    private static ReportPlot AgainstIotlb(IReadOnlyList<ReportRun> runs, string key, string title, string caption)
    {
        string name = key + "_vs_iotlb.png";
        var sizes = new SortedSet<double>();
        foreach (var r in runs)
        {
            if (r.Parameter("iotlb") is { } t && double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double n))
                sizes.Add(n);
        }
        if (sizes.Count < 2)
            return new ReportPlot(name, title, caption, null,
                $"No plot of {key} against IOTLB entries: the inputs do not compare IOTLB sizes (give simulate or replay --iotlb with several sizes).");
        // One series per combination of the other parameters.
        var files = new HashSet<string>(StringComparer.Ordinal);
        foreach (var r in runs)
            files.Add(r.File);
        var series = new SortedDictionary<string, List<(double X, double Y)>>(StringComparer.Ordinal);
        foreach (var r in runs)
        {
            if (r.Parameter("iotlb") is not { } t || !double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double x)
                || !r.Figures.TryGetValue(key, out double y))
                continue;
            // Its file too when there are several: two files may hold the same parameters for different workloads.
            var others = new List<string>();
            if (files.Count > 1)
                others.Add(Path.GetFileNameWithoutExtension(r.File));
            foreach (var (k, v) in r.Parameters)
            {
                if (k != "iotlb")
                    others.Add($"{k}={v}");
            }
            string label = others.Count == 0 ? Path.GetFileName(r.File) : string.Join(' ', others);
            if (!series.TryGetValue(label, out var points))
                series[label] = points = [];
            points.Add((x, y));
        }
        if (series.Count == 0)
            return new ReportPlot(name, title, caption, null, $"No plot of {key} against IOTLB entries: {key} is missing or null in every input that gives an IOTLB size.");
        var plot = new Plot();
        foreach (var (label, points) in series)
        {
            points.Sort();
            var xs = new double[points.Count];
            var ys = new double[points.Count];
            for (int i = 0; i < points.Count; i++)
            {
                xs[i] = Math.Log2(points[i].X);
                ys[i] = points[i].Y;
            }
            var sp = plot.Add.Scatter(xs, ys);
            sp.LegendText = label;
            sp.MarkerSize = 8;
            sp.LineWidth = 2;
        }
        var ticks = new List<double>();
        var tickLabels = new List<string>();
        foreach (double s in sizes)
        {
            ticks.Add(Math.Log2(s));
            tickLabels.Add(s.ToString(CultureInfo.InvariantCulture));
        }
        plot.Axes.Bottom.SetTicks([.. ticks], [.. tickLabels]);
        plot.Title(title);
        plot.XLabel("IOTLB entries per unit (log scale)");
        plot.YLabel(key);
        plot.ShowLegend(Edge.Right);
        return new ReportPlot(name, title, caption, plot.GetImageBytes(Width, Height, ImageFormat.Png), null);
    }

    private static ReportPlot Timeline(IReadOnlyList<ReportRun> runs, bool invalidations)
    {
        string name = invalidations ? "timeline_invalidations.png" : "timeline_iotlb_hit_rate.png";
        string title = invalidations ? "Invalidations over simulated time" : "IOTLB hit rate over simulated time";
        string caption = invalidations
            ? "Invalidation commands per interval of the run's timeline (the last interval includes the run's end drain)."
            : "IOTLB hits ÷ lookups per interval (intervals without lookups are left out).";
        var plot = new Plot();
        int drawn = 0;
        foreach (var r in runs)
        {
            if (r.Timeline is not { Count: > 0 } timeline)
                continue;
            var xs = new List<double>();
            var ys = new List<double>();
            foreach (var p in timeline)
            {
                if (invalidations)
                {
                    xs.Add(p.TUs / 1000);
                    ys.Add(p.Invalidations);
                }
                else if (p.Hits + p.Misses > 0)
                {
                    xs.Add(p.TUs / 1000);
                    ys.Add((double)p.Hits / (p.Hits + p.Misses));
                }
            }
            if (xs.Count == 0)
                continue;
            var sp = plot.Add.Scatter(xs.ToArray(), ys.ToArray());
            sp.LegendText = r.Label;
            sp.MarkerSize = 3;
            drawn++;
        }
        if (drawn == 0)
            return new ReportPlot(name, title, caption, null, invalidations
                ? "No plot of invalidations over time: timeline is missing or null in every input (replays and files written before simulate recorded a timeline have none)."
                : "No plot of the IOTLB hit rate over time: no input has a timeline with IOTLB lookups (a replay, a run under passthrough, or a file written before simulate recorded a timeline).");
        plot.Title(title);
        plot.XLabel("simulated time (ms)");
        plot.YLabel(invalidations ? "invalidation commands per interval" : "IOTLB hit rate");
        if (drawn > 1)
            plot.ShowLegend(Edge.Right);
        return new ReportPlot(name, title, caption, plot.GetImageBytes(Width, Height, ImageFormat.Png), null);
    }

    private static ReportPlot Distribution(IReadOnlyList<ReportRun> runs, string key, string title, string caption)
    {
        string name = key + ".png";
        var bounds = new SortedSet<double>();
        foreach (var r in runs)
        {
            if (r.Distributions.TryGetValue(key, out var buckets))
            {
                foreach (var b in buckets)
                    bounds.Add(b.LeUs);
            }
        }
        if (bounds.Count == 0)
            return new ReportPlot(name, title, caption, null,
                $"No plot of {key}: it is missing, null or empty in every input (replays carry no stale-window distribution; a run without lock waits or unmaps has no buckets).");
        // Buckets on a categorical axis (their bounds grow geometrically), one series per configuration.
        var index = new Dictionary<double, int>();
        var ticks = new List<double>();
        var labels = new List<string>();
        foreach (double b in bounds)
        {
            index[b] = index.Count;
            ticks.Add(index[b]);
            labels.Add(b.ToString("0.###", CultureInfo.InvariantCulture));
        }
        var plot = new Plot();
        foreach (var r in runs)
        {
            if (!r.Distributions.TryGetValue(key, out var buckets) || buckets.Count == 0)
                continue;
            var xs = new double[buckets.Count];
            var ys = new double[buckets.Count];
            for (int i = 0; i < buckets.Count; i++)
            {
                xs[i] = index[buckets[i].LeUs];
                ys[i] = buckets[i].Count;
            }
            var sp = plot.Add.Scatter(xs, ys);
            sp.LegendText = r.Label;
            sp.MarkerSize = 6;
        }
        // At most ~16 tick labels: every k-th bucket.
        int step = Math.Max(1, (ticks.Count + 15) / 16);
        var shownTicks = new List<double>();
        var shownLabels = new List<string>();
        for (int i = 0; i < ticks.Count; i += step)
        {
            shownTicks.Add(ticks[i]);
            shownLabels.Add(labels[i]);
        }
        plot.Axes.Bottom.SetTicks([.. shownTicks], [.. shownLabels]);
        plot.Title(title);
        plot.XLabel("bucket upper bound (simulated µs)");
        plot.YLabel("count");
        plot.ShowLegend(Edge.Right);
        return new ReportPlot(name, title, caption, plot.GetImageBytes(Width, Height, ImageFormat.Png), null);
    }

    private static string Absent(IReadOnlyList<ReportRun> runs, List<ReportRun> have, string key)
    {
        if (have.Count == runs.Count)
            return "";
        var missing = new List<string>();
        foreach (var r in runs)
        {
            if (!have.Contains(r))
                missing.Add(r.Label);
        }
        return $" Not shown ({key} missing or null): {string.Join(", ", missing)}.";
    }
}
