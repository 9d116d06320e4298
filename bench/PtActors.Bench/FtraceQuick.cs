using System.Diagnostics;
using System.Text;
using PtActors.Persistence.Traces;

namespace PtActors.Bench;

/// <summary>
/// <c>-- ftrace [LINES]</c>: imports a generated trace (<see cref="FtraceImportBenchmarks.Generate"/>) six times and
/// prints, for each run, lines/s by wall clock and by the process's CPU time (the second is the steadier figure on
/// a shared machine; it includes the GC's threads).
/// </summary>
public static class FtraceQuick
{
    /// <summary>Runs it.</summary>
    public static void Run(int lines, TextWriter output)
    {
        byte[] text = Encoding.UTF8.GetBytes(FtraceImportBenchmarks.Generate(lines));
        using var self = Process.GetCurrentProcess();
        for (int run = 0; run < 6; run++)
        {
            self.Refresh();
            var cpu0 = self.TotalProcessorTime;
            var sw = Stopwatch.StartNew();
            using var reader = new StreamReader(new MemoryStream(text, writable: false), Encoding.UTF8);
            var t = TraceImport.Import(reader, "bench.trace");
            sw.Stop();
            self.Refresh();
            var cpu = self.TotalProcessorTime - cpu0;
            output.WriteLine($"run {run}: {lines} lines in {sw.Elapsed.TotalMilliseconds:F0} ms wall = {lines / sw.Elapsed.TotalSeconds / 1e6:F2} M lines/s, "
                + $"{cpu.TotalMilliseconds:F0} ms CPU = {lines / cpu.TotalSeconds / 1e6:F2} M lines/s; {t.Summary(0)}");
        }
    }
}
