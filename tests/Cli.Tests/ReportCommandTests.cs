using System.Diagnostics;
using System.Text.RegularExpressions;
using SkiaSharp;
using Xunit;

namespace PtActors.Cli.Tests;

/// <summary>A test that needs a headless browser: skipped, saying why, where none is installed.</summary>
public sealed class BrowserFactAttribute : FactAttribute
{
    public BrowserFactAttribute()
    {
        if (Browser.Path is null)
            Skip = "no headless browser (chromium, chromium-headless-shell): " +
                (Environment.GetEnvironmentVariable("PTACTORS_TEST_BROWSER_SKIP") ?? "none on PATH; .ci/run installs Debian's chromium");
    }
}

/// <summary>The headless browser on PATH, if any.</summary>
internal static class Browser
{
    public static string? Path { get; } = Find();

    private static string? Find()
    {
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(System.IO.Path.PathSeparator))
        {
            foreach (string name in new[] { "chromium-headless-shell", "chromium", "chromium-browser", "google-chrome" })
            {
                string candidate = System.IO.Path.Combine(dir, name);
                if (File.Exists(candidate))
                    return candidate;
            }
        }
        return null;
    }

    /// <summary>Renders <paramref name="html"/> in a fresh profile and returns the screenshot's path.</summary>
    public static string Screenshot(string html, string dir, int width, int height)
    {
        string shot = System.IO.Path.Combine(dir, "shot-" + Guid.NewGuid().ToString("N") + ".png");
        var psi = new ProcessStartInfo(Path!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[]
        {
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            "--user-data-dir=" + System.IO.Path.Combine(dir, "profile-" + Guid.NewGuid().ToString("N")),
            $"--window-size={width},{height}", "--screenshot=" + shot, new Uri(html).AbsoluteUri,
        })
            psi.ArgumentList.Add(arg);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        _ = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(120)))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException("the browser did not finish its screenshot in 120 s");
        }
        Assert.True(File.Exists(shot), $"no screenshot (exit {p.ExitCode}): {stderr.Result}");
        return shot;
    }
}

public sealed class ReportCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ptactors-report-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Exit, string Stdout, string Stderr) Ptactors(params string[] args) => EndToEndTests.Ptactors(args);

    private static readonly string[] PlotFiles =
    [
        "throughput_ratio.png", "cpu_utilization.png", "iotlb_hit_rate_vs_iotlb.png", "throughput_ratio_vs_iotlb.png",
        "timeline_invalidations.png", "timeline_iotlb_hit_rate.png", "lock_wait_histogram.png", "stale_window_histogram.png",
        "op_latency_histogram.png",
    ];

    private string Write(string name, string json)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, json);
        return path;
    }

    /// <summary>A comparison of two policies at two IOTLB sizes, every key the report plots present.</summary>
    private string Comparison()
    {
        var runs = new List<string>();
        foreach (var (policy, ratio, cpu) in new[] { ("strict", 0.4, 1.0), ("lazy", 0.95, 0.5) })
        {
            foreach (int iotlb in new[] { 64, 1024 })
            {
                double hit = iotlb == 64 ? 0.6 : 0.9;
                runs.Add($$"""
                    {"policy": "{{policy}}", "iotlb": {{iotlb}}, "cpus": 4, "format": "x86_64", "run_id": "c-{{policy}}-{{iotlb}}",
                     "ops": 1000, "iotlb_hit_rate": {{hit}}, "invalidations": {{(policy == "strict" ? 500 : 3)}},
                     "throughput_ratio": {{ratio}}, "cpu_utilization": {{cpu}}, "table_hash": "ab",
                     "lock_wait_histogram": [{"le_us": 0, "count": 90}, {"le_us": 2, "count": 10}],
                     "stale_window_histogram": [{"le_us": 1.25, "count": 40}, {"le_us": 10240, "count": 7}],
                     "op_latency_histogram": [{"le_us": 0.32, "count": 1000}, {"le_us": 1.28, "count": {{(policy == "strict" ? 400 : 20)}}}],
                     "timeline": [{"t_us": 100, "invalidations": 5, "iotlb_hits": 60, "iotlb_misses": 40, "dmas": 100},
                                  {"t_us": 200, "invalidations": 9, "iotlb_hits": 70, "iotlb_misses": 30, "dmas": 100}]}
                    """);
            }
        }
        return Write("cmp.json", "{\n\"runs\": [\n" + string.Join(",\n", runs) + "\n]\n}\n");
    }

    [Fact]
    public void AComparisonGivesEveryPlotInOneSelfContainedPage()
    {
        string outDir = Path.Combine(_dir, "out");
        var r = Ptactors("report", "--json", Comparison(), "--out", outDir);
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Exit);
        Assert.Contains("report: 4 configurations from 1 file, 9 plots, 0 missing", r.Stdout, StringComparison.Ordinal);
        foreach (string png in PlotFiles)
        {
            byte[] bytes = File.ReadAllBytes(Path.Combine(outDir, png));
            Assert.True(bytes.Length > 5000, $"{png}: {bytes.Length} bytes");
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], bytes[..4]);
            using var image = SKBitmap.Decode(bytes);
            Assert.True(image.Width >= 600 && image.Height >= 200, png);
        }
        string html = File.ReadAllText(Path.Combine(outDir, "index.html"));
        Assert.Equal(PlotFiles.Length, Regex.Matches(html, "<img alt=\"[^\"]+\" src=\"data:image/png;base64,[A-Za-z0-9+/=]{1000,}\">").Count);
        Assert.DoesNotContain("http://", html, StringComparison.Ordinal); // nothing fetched: no network
        Assert.DoesNotContain("https://", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", html, StringComparison.Ordinal);
        Assert.DoesNotContain("class=\"missing\"", html, StringComparison.Ordinal);
        // Labels name what varies, not what every configuration shares.
        Assert.Contains("<td>policy=strict iotlb=64</td>", html, StringComparison.Ordinal);
        Assert.DoesNotContain("cpus=4</td>", html, StringComparison.Ordinal);
    }

    [Fact]
    public void AMissingKeyGetsASentenceInsteadOfAPlotAndNoPng()
    {
        string single = Write("single.json", """
            {"run_id": "one", "ops": 10, "iotlb_hit_rate": 0.5, "invalidations": 2, "throughput_ratio": null,
             "cpu_utilization": 0.25, "lock_wait_histogram": [{"le_us": 0, "count": 10}], "stale_window_histogram": null,
             "timeline": null}
            """);
        string outDir = Path.Combine(_dir, "out");
        var r = Ptactors("report", "--json", single, "--out", outDir);
        Assert.Equal(0, r.Exit);
        Assert.Equal(["cpu_utilization.png", "index.html", "lock_wait_histogram.png"],
            Directory.GetFiles(outDir).Select(f => Path.GetFileName(f)!).Order(StringComparer.Ordinal).ToArray());
        string html = File.ReadAllText(Path.Combine(outDir, "index.html"));
        Assert.Contains("No plot of throughput_ratio: it is missing or null in every input", html, StringComparison.Ordinal);
        Assert.Contains("No plot of iotlb_hit_rate against IOTLB entries: the inputs do not compare IOTLB sizes", html, StringComparison.Ordinal);
        Assert.Contains("No plot of invalidations over time: timeline is missing or null in every input", html, StringComparison.Ordinal);
        Assert.Contains("No plot of stale_window_histogram: it is missing, null or empty in every input", html, StringComparison.Ordinal);
        Assert.Contains("No plot of op_latency_histogram: it is missing, null or empty in every input", html, StringComparison.Ordinal);
        Assert.Contains("<td>–</td>", html, StringComparison.Ordinal); // the absent ratio in the table, not 0
    }

    [Theory]
    [InlineData("{\n\"runs\": [\n{\"policy\": \"strict\",}\n]\n}\n", ":3: not valid JSON")]
    [InlineData("[1, 2]", ":1: expected a JSON object")]
    [InlineData("{\n  \"runs\": {}\n}", ":2: runs must be an array of objects, found an object")]
    [InlineData("{\n  \"runs\": []\n}", ":2: runs is empty")]
    [InlineData("{\n  \"ops\": 1,\n  \"throughput_ratio\": \"fast\"\n}", ":3: throughput_ratio must be a number or null, found a string")]
    [InlineData("{\"runs\": [{\"iotlb\": 64},\n {\"iotlb\": 128,\n \"cpu_utilization\": true}]}", ":3: runs[1].cpu_utilization must be a number or null, found a boolean")]
    [InlineData("{\n\"lock_wait_histogram\": [{\"le_us\": 1, \"count\": -1}]\n}", ":2: lock_wait_histogram[0] must be {\"le_us\": number, \"count\": whole number ≥ 0}")]
    [InlineData("{\n\n\"timeline\": [{\"t_us\": 1}]\n}", ":3: timeline[0] must be")]
    public void ABadFileIsNamedWithItsLineAndNothingIsWritten(string json, string expected)
    {
        string good = Comparison();
        string bad = Write("bad.json", json);
        string outDir = Path.Combine(_dir, "out");
        var r = Ptactors("report", "--json", good, bad, "--out", outDir);
        Assert.Equal(2, r.Exit);
        Assert.StartsWith($"ptactors report: {bad}{expected}", r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", r.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(outDir));
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void AMissingFileOrMissingOptionIsAUsageError()
    {
        string missing = Path.Combine(_dir, "nope.json");
        var r = Ptactors("report", "--json", missing, "--out", Path.Combine(_dir, "out"));
        Assert.Equal(2, r.Exit);
        Assert.StartsWith($"ptactors report: {missing}: cannot read it", r.Stderr, StringComparison.Ordinal);

        r = Ptactors("report", "--json", Comparison());
        Assert.Equal(2, r.Exit);
        Assert.Contains("--out", r.Stderr, StringComparison.Ordinal);

        string file = Write("a-file", "x");
        r = Ptactors("report", "--json", Comparison(), "--out", file);
        Assert.Equal(2, r.Exit);
        Assert.Contains("is a file, not a directory", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void ASimulateComparisonAndARunReportTogether()
    {
        string cmp = Path.Combine(_dir, "sim.json");
        var s = Ptactors("simulate", "--in-memory", "--workload", "nvme", "--iommus", "1", "--domains", "2", "--devices", "8", "--ops", "2000",
            "--policy", "strict,lazy,passthrough", "--iotlb", "64,256", "--json", cmp);
        Assert.True(s.Exit == 0, s.Stderr);
        string one = Path.Combine(_dir, "one.json");
        s = Ptactors("simulate", "--in-memory", "--ops", "2000", "--iommus", "1", "--domains", "2", "--devices", "8", "--json", one);
        Assert.True(s.Exit == 0, s.Stderr);
        string outDir = Path.Combine(_dir, "out");
        var r = Ptactors("report", "--json", cmp, one, "--out", outDir);
        Assert.True(r.Exit == 0, r.Stderr);
        Assert.Contains("report: 7 configurations from 2 files, 9 plots, 0 missing", r.Stdout, StringComparison.Ordinal);
        string html = File.ReadAllText(Path.Combine(outDir, "index.html"));
        Assert.Contains("<td>sim policy=passthrough iotlb=256</td>", html, StringComparison.Ordinal);
    }

    [BrowserFact]
    public void TheBrowserShowsThePlots()
    {
        string full = Path.Combine(_dir, "full");
        Assert.Equal(0, Ptactors("report", "--json", Comparison(), "--out", full).Exit);
        string empty = Path.Combine(_dir, "empty");
        Assert.Equal(0, Ptactors("report", "--json", Write("bare.json", "{\"run_id\": \"bare\", \"ops\": 1}"), "--out", empty).Exit);

        var withPlots = Measure(Browser.Screenshot(Path.Combine(full, "index.html"), _dir, 1320, 6000));
        var withoutPlots = Measure(Browser.Screenshot(Path.Combine(empty, "index.html"), _dir, 1320, 6000));
        // The bars are ScottPlot's SteelBlue; the series colours are many: the page shows the images, not their alt text.
        Assert.True(withPlots.SteelBlue > 20_000, $"{withPlots.SteelBlue} steel-blue pixels");
        Assert.True(withPlots.Colours > 200, $"{withPlots.Colours} colours");
        Assert.True(withoutPlots.SteelBlue < 100, $"{withoutPlots.SteelBlue} steel-blue pixels without plots");
        Assert.True(withPlots.NonWhite > 4 * withoutPlots.NonWhite, $"{withPlots.NonWhite} vs {withoutPlots.NonWhite} non-white pixels");
    }

    private static (int SteelBlue, int Colours, int NonWhite) Measure(string png)
    {
        using var image = SKBitmap.Decode(png);
        Assert.NotNull(image);
        int steel = 0, nonWhite = 0;
        var colours = new HashSet<uint>();
        for (int y = 0; y < image.Height; y++)
        {
            for (int x = 0; x < image.Width; x++)
            {
                var c = image.GetPixel(x, y);
                colours.Add((uint)c);
                if (Math.Abs(c.Red - 70) < 12 && Math.Abs(c.Green - 130) < 12 && Math.Abs(c.Blue - 180) < 12)
                    steel++;
                if (c.Red < 240 || c.Green < 240 || c.Blue < 240)
                    nonWhite++;
            }
        }
        return (steel, colours.Count, nonWhite);
    }
}
