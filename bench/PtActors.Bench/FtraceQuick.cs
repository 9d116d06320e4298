using System.Diagnostics;
using System.Text;
using PtActors.Persistence.Traces;

namespace PtActors.Bench;

/// <summary><c>-- ftrace [LINES]</c>: imports a generated trace five times and prints lines/s of each run.</summary>
public static class FtraceQuick
{
    /// <summary>Runs it.</summary>
    public static void Run(int lines, TextWriter output)
    {
        byte[] text = Encoding.UTF8.GetBytes(FtraceImportBenchmarks.Generate(lines));
        if (Environment.GetEnvironmentVariable("PTA_FTRACE_PARSE_ONLY") == "1")
        {
            string[] five = Encoding.UTF8.GetString(text, 0, 2000).Split('\n')[..5];
            foreach (var l in five)
            {
                for (int r = 0; r < 2; r++)
                {
                    var q0 = Process.GetCurrentProcess().TotalProcessorTime;
                    int k = 0;
                    for (int i = 0; i < 200_000; i++) k += (int)FtraceLine.Parse(l).Kind;
                    output.WriteLine($"{(Process.GetCurrentProcess().TotalProcessorTime - q0).TotalMilliseconds * 5:F0} ns/line: {l[..60]}");
                }
            }
            string[] all = Encoding.UTF8.GetString(text).Split('\n');
            for (int run = 0; run < 4; run++)
            {
                var k0 = Process.GetCurrentProcess().TotalProcessorTime;
                long colons = 0;
                foreach (var l in all) colons += l.AsSpan().IndexOf(':') + l.AsSpan().LastIndexOf('=') + l.AsSpan().IndexOf('[');
                output.WriteLine($"calibration (3 scans per line): {(Process.GetCurrentProcess().TotalProcessorTime - k0).TotalMilliseconds:F0} ms CPU ({colons})");
                var c0 = Process.GetCurrentProcess().TotalProcessorTime;
                int maps = 0;
                foreach (var l in all) if (FtraceLine.Parse(l).Kind == FtraceKind.Map) maps++;
                var c = Process.GetCurrentProcess().TotalProcessorTime - c0;
                output.WriteLine($"parse only: {c.TotalMilliseconds:F0} ms CPU, {maps} maps");
            }
        }
        for (int run = 0; run < 6; run++)
        {
            var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
            var sw = Stopwatch.StartNew();
            using var reader = new StreamReader(new MemoryStream(text, writable: false), Encoding.UTF8);
            var t = TraceImport.Import(reader, "bench.trace");
            sw.Stop();
            var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu0;
            output.WriteLine($"run {run}: {lines} lines in {sw.Elapsed.TotalMilliseconds:F0} ms wall = {lines / sw.Elapsed.TotalSeconds / 1e6:F2} M lines/s, "
                + $"{cpu.TotalMilliseconds:F0} ms CPU = {lines / cpu.TotalSeconds / 1e6:F2} M lines/s per CPU; {t.Summary(0)}");
        }
    }
}
