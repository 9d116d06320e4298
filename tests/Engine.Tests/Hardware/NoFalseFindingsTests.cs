using System.Diagnostics;
using System.Globalization;
using PtActors.Engine.Hardware;
using PtActors.Engine.Workloads;
using Xunit;
using Xunit.Abstractions;

namespace PtActors.Engine.Tests.Hardware;

/// <summary>
/// No false findings (issue 15, item 6): correct runs of every workload under every flush policy, through the
/// actor simulator's window loop in one thread (<see cref="EngineSim"/>: the same workloads, domain models and
/// <see cref="UnitWindow"/>), report no stale violation, no use after free and no isolation breach — a DMA stamped
/// before an unmap of its window is translated through what that unmap removed, never reported as a flush that
/// missed. Sizes: the environment variable <c>PTACTORS_CAMPAIGN_CALLS</c> sets the map and unmap calls of every
/// (workload, policy) run (the campaign by hand, 10^6); unset, the CI sizes of <see cref="CiCalls"/>. gpu runs with
/// a remap every 20 µs on average instead of 2 ms and a DMA every 1 µs instead of 100 ns (<see cref="GpuOptions"/>), in a 1 TiB IOVA space (<see cref="GpuIovaLimit"/>). Figures: docs/reliability.md.
/// </summary>
public sealed class NoFalseFindingsTests(ITestOutputHelper output)
{
    /// <summary>The environment variable that sets the calls per workload and policy.</summary>
    public const string CallsVariable = "PTACTORS_CAMPAIGN_CALLS";

    public static TheoryData<string> Workloads => new() { "nic", "nvme", "mixed", "random", "gpu" };

    private static readonly string[] Policies = ["strict", "lazy", "lazy-single", "batch:16"];

    /// <summary>
    /// gpu's options here: a remap every 20 µs on average (default 2 ms) and a DMA every 1 µs (default 100 ns). With
    /// the defaults a GPU DMAs ~6 500 times per map or unmap call (long-lived buffers, rare remaps), so 10^6 calls
    /// would take ~6.5·10^9 DMAs; a 20 µs remap alone still leaves ~240 per call. These keep what the check needs —
    /// a steady stream of DMAs into buffers that are unmapped, flushed (or queued) and mapped again from their other
    /// PA bank, late DMAs after 5 % of the unmaps — at ~25 DMAs per call.
    /// </summary>
    public static readonly WorkloadOptions GpuOptions = new() { GpuRemapMeanNs = 20_000, GpuDmaIntervalNs = 1000 };

    /// <summary>
    /// gpu's DMA-API IOVA space per domain here: 1 TiB (default 4 GiB). Under lazy-single an unmapped IOVA stays
    /// allocated until its flush (the 1 s timeout or 32 768 queued unmaps, ~64 GiB of 2 MiB buffers); at a remap
    /// every 20 µs 4 GiB ran out and 970 366 of 1 000 064 calls were refused, with 643 251 DMAs; in 1 TiB, 89 838 of
    /// 1 000 140 (why any still are was not investigated).
    /// </summary>
    public const ulong GpuIovaLimit = (1UL << 40) - 1;

    /// <summary>Calls per policy in CI (the class runs in ~30 s).</summary>
    private static long CiCalls(string workload, string policy) => (workload, policy) switch
    {
        ("gpu", _) => 20_000,
        ("random", "lazy" or "lazy-single") => 20_000,
        _ => 250_000,
    };

    /// <summary><see cref="CallsVariable"/> when set (a positive integer), else null.</summary>
    private static long? CampaignCalls()
    {
        string? text = Environment.GetEnvironmentVariable(CallsVariable);
        if (string.IsNullOrWhiteSpace(text))
            return null;
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long n) || n < 1)
            throw new InvalidOperationException($"{CallsVariable}={text}: expected a positive number of calls.");
        return n;
    }

    [Theory]
    [MemberData(nameof(Workloads))]
    public void EveryPolicyReportsNoFalseFinding(string workload)
    {
        long? campaign = CampaignCalls();
        foreach (var policy in Policies)
        {
            Assert.True(FlushPolicySpec.TryParse(policy, out var spec));
            long target = campaign ?? CiCalls(workload, policy);
            // Late DMAs (into a buffer just unmapped) are where stale hits happen: on for every kind.
            double? late = workload == "random" ? null : 0.05;
            var options = workload == "gpu" ? GpuOptions : null;
            var sw = Stopwatch.StartNew();
            var settings = new EngineSim.Settings(workload, spec, Seed: 7, LateDma: late, Options: options);
            if (workload == "gpu")
                settings = settings with { IovaLimit = GpuIovaLimit };
            var f = new EngineSim(settings).Run(target);
            output.WriteLine($"| {workload} | {policy} | {f.Ops} | {f.Dmas} | {f.Faults} | {f.StaleInWindow} | {f.StaleViolations} | {f.UseAfterFree} | {f.IsolationBreaches} | {f.Windows} | {f.Errors} | {sw.Elapsed.TotalSeconds:F1} |");
            Assert.True(f.Ops >= target, $"{policy}: {f.Ops} calls");
            Assert.True(f.Dmas > 0);
            if (workload == "gpu")
                Assert.True(f.Errors * 5 < f.Ops, $"{policy}: {f.Errors} of {f.Ops} calls refused"); // most calls map buffers DMAs use (lazy-single: ~9 % refused)
            Assert.Equal(0, f.StaleViolations);
            Assert.Equal(0, f.UseAfterFree);
            Assert.Equal(0, f.IsolationBreaches);
            if (policy == "strict")
                Assert.Equal(0, f.StaleInWindow);
        }
    }
}
