using BenchmarkDotNet.Running;
using PtActors.Engine.Hardware;

namespace PtActors.Bench;

/// <summary>
/// Runs the benchmarks: <c>dotnet run -c Release --project bench/PtActors.Bench -- --filter '*'</c>;
/// <c>-- nic [PACKETS]</c> runs the NIC loop under each flush policy and prints its invalidation counters;
/// <c>-- direct [WORKLOAD] [OPS]</c> runs the simulator's work in one thread without actors (the baseline of
/// the actor overhead); <c>-- ftrace [LINES]</c> times <c>TraceImport</c> on a generated trace (a quick check of
/// <c>FtraceImportBenchmarks</c>); <c>-- read DB RUN DOMAINS [PARALLEL] [BUFFER] [ISOLATION]</c> times reading a recording's
/// journals through the SQL read journal (<see cref="ReadQuick"/>); <c>-- replay DB [RUN] [ROUNDS]</c> times reading and
/// replaying a recording under its recorded configuration (<see cref="ReplayQuick"/>).
/// </summary>
public static class Program
{
    /// <summary>Entry point.</summary>
    public static void Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "nic")
        {
            int packets = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 1_000_000;
            NicLoop.Header(Console.Out);
            foreach (var policy in new[] { "strict", "lazy", "lazy-single", "batch:32" })
            {
                FlushPolicySpec.TryParse(policy, out var spec);
                NicLoop.Run(spec, packets, Console.Out);
            }
            return;
        }
        if (args.Length > 0 && args[0] == "direct")
        {
            string workload = args.Length > 1 ? args[1] : "nic";
            long ops = args.Length > 2 ? long.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 2_000_000;
            DirectSim.Run(workload, 4, 64, 1024, ops, Console.Out);
            return;
        }
        if (args.Length > 0 && args[0] == "ftrace")
        {
            int lines = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : FtraceImportBenchmarks.Lines;
            FtraceQuick.Run(lines, Console.Out);
            return;
        }
        if (args.Length > 3 && args[0] == "read")
        {
            var inv = System.Globalization.CultureInfo.InvariantCulture;
            ReadQuick.Run(args[1], args[2], int.Parse(args[3], inv), args.Length > 4 ? int.Parse(args[4], inv) : Math.Max(2, Environment.ProcessorCount),
                args.Length > 5 ? int.Parse(args[5], inv) : 500, args.Length > 6 ? args[6] : null, Console.Out);
            return;
        }
        if (args.Length > 1 && args[0] == "replay")
        {
            var inv = System.Globalization.CultureInfo.InvariantCulture;
            ReplayQuick.Run(args[1], args.Length > 2 ? args[2] : null, args.Length > 3 ? int.Parse(args[3], inv) : 5, Console.Out);
            return;
        }
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }
}
