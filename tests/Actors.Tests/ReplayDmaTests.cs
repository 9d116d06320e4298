using PtActors.Engine;
using PtActors.Engine.Hardware;
using PtActors.Engine.Replay;
using PtActors.Persistence;
using Xunit;
using Xunit.Abstractions;

namespace PtActors.Actors.Tests;

/// <summary>DMAs in replays: synthesized over the replay's mappings (seeded), and absent without them.</summary>
public class ReplayDmaTests(ITestOutputHelper output)
{
    internal static SimulationSettings Small(string workload, FlushPolicySpec policy, string run, long ops = 6_000) => new()
    {
        Iommus = 2,
        Domains = 4,
        Devices = 16,
        Workload = workload,
        Format = PtFormatKind.X86_64,
        Policy = policy,
        Ops = ops,
        Seed = 5,
        RunId = run,
        Cpus = 2,
    };

    internal static async Task<(SimulationResult Result, LoadedRecording Recording)> RecordAsync(PersistenceBackend backend, SimulationSettings settings)
    {
        var result = await new Simulator().RunAsync(settings, backend, null, CancellationToken.None);
        var system = PersistentActorSystem.Create("replay", backend);
        try
        {
            var runs = await RunVerifier.ListRunsAsync(system);
            var run = Assert.Single(runs.Runs, r => r.RunId == settings.RunId);
            return (result, await RecordingReplay.LoadAsync(system, run, runs.EndOf(run.RunId)));
        }
        finally
        {
            await system.Terminate();
        }
    }

    private static FlushPolicySpec Policy(string text)
    {
        Assert.True(FlushPolicySpec.TryParse(text, out var spec));
        return spec;
    }

    private static (long Dmas, long Hits, long Misses, long Stale, long Violations, long Uaf, long Faults) Figures(ReplayReport r)
        => (r.Dmas!.Value, r.Stats.Hits, r.Stats.Misses, r.Stats.StaleInWindow, r.Stats.StaleViolations, r.Stats.UseAfterFree, r.Stats.Faults);

    [Fact]
    public async Task SynthesizedDmasAreDeterministicAndLeaveTheRecordedAnswersAlone()
    {
        using var db = new TempDb();
        var (result, recording) = await RecordAsync(db.Backend, Small("nic", Policy("lazy"), "synth"));
        var recorded = recording.Recorded;

        var plain = RecordingReplay.Replay(recording, recorded);
        Assert.Null(plain.Dmas);   // absent, not zero

        var a = RecordingReplay.Replay(recording, recorded, synth: new SynthDmas(2, 7));
        var b = RecordingReplay.Replay(recording, recorded, synth: new SynthDmas(2, 7));
        var c = RecordingReplay.Replay(recording, recorded, synth: new SynthDmas(2, 8));
        var four = RecordingReplay.Replay(recording, recorded, synth: new SynthDmas(4, 7));
        output.WriteLine($"seed 7: {Figures(a)}; seed 8: {Figures(c)}; 4 per page: {Figures(four)}");
        Assert.Equal(Figures(a), Figures(b));
        Assert.True(a.Dmas > 0);
        Assert.Equal(a.Stats.Hits + a.Stats.Misses, a.Dmas);   // every DMA looks up the IOTLB once
        // The seed places the DMAs, not how many there are (N per mapped page).
        Assert.Equal(a.Dmas, c.Dmas);
        Assert.NotEqual(Figures(a), Figures(c));
        Assert.Equal(2 * a.Dmas, four.Dmas);
        // DMAs do not change what the domains answer: the recorded configuration still gives the run's answers and tables.
        foreach (var r in new[] { a, c, four })
        {
            Assert.Equal(0, r.ResultsDiffer);
            Assert.Equal(0, r.Unmatched);
            Assert.Equal(result.TableHash, DomainHashes.Canonical(r.Tables));
            Assert.Equal(plain.Stats.Invalidations, r.Stats.Invalidations);
        }
    }

    [Fact]
    public async Task PoliciesCompareAsExpectedWithSynthesizedDmas()
    {
        using var db = new TempDb();
        var (_, recording) = await RecordAsync(db.Backend, Small("nic", Policy("lazy"), "cmp"));
        var synth = new SynthDmas(2, SynthDmas.DefaultSeed);
        var reports = new Dictionary<string, ReplayReport>();
        foreach (string p in new[] { "strict", "batch:8", "lazy" })
        {
            var r = RecordingReplay.Replay(recording, recording.Recorded with { Policy = Policy(p) }, synth: synth);
            reports[p] = r;
            output.WriteLine($"{p}: invalidations={r.Stats.Invalidations} {Figures(r)}");
        }
        Assert.True(reports["strict"].Stats.Invalidations > reports["batch:8"].Stats.Invalidations, "strict issues the most invalidation commands");
        Assert.True(reports["batch:8"].Stats.Invalidations > reports["lazy"].Stats.Invalidations, "lazy issues the fewest");
        Assert.True(reports["lazy"].Stats.StaleInWindow > 0, "lazy: DMAs hit translations of unmaps not yet flushed");
        Assert.Equal(0, reports["strict"].Stats.StaleInWindow);
        foreach (var r in reports.Values)
        {
            Assert.Equal(0, r.Stats.StaleViolations);
            Assert.Equal(0, r.Stats.UseAfterFree);
            Assert.Equal(reports["lazy"].Dmas, r.Dmas);
        }
    }

    [Fact]
    public async Task SynthesizedDmasAreRefusedOutOfBoundsOrBesideRecordedOnes()
    {
        using var db = new TempDb();
        var (_, recording) = await RecordAsync(db.Backend, Small("random", Policy("strict"), "bounds", ops: 1_000));
        Assert.Throws<ArgumentException>(() => RecordingReplay.Replay(recording, recording.Recorded, synth: new SynthDmas(0, 1)));
        Assert.Throws<ArgumentException>(() => RecordingReplay.Replay(recording, recording.Recorded, synth: new SynthDmas(SynthDmas.MaxPerPage + 1, 1)));
        var withDmas = recording with { Dmas = [[], []] };
        var e = Assert.Throws<ArgumentException>(() => RecordingReplay.Replay(withDmas, withDmas.Recorded, synth: new SynthDmas(1, 1)));
        Assert.Contains("has recorded DMAs", e.Message);
        // Recorded DMAs, even none, make the DMA figures present.
        Assert.Equal(0, RecordingReplay.Replay(withDmas, withDmas.Recorded).Dmas);
    }

    public static TheoryData<string, string, string> RecordedCases() => new()
    {
        { "mixed", "lazy", "none" },
        { "random", "strict", "none" },
        { "nvme", "batch:8", "none" },
        { "mixed", "lazy", "free-early" },
    };

    [Theory]
    [MemberData(nameof(RecordedCases))]
    public async Task RecordedDmasReplayToTheRunsDmaFigures(string workload, string policy, string unsafeMode)
    {
        using var db = new TempDb();
        var settings = Small(workload, Policy(policy), "dmas") with { RecordDmas = true, Unsafe = UnsafeModes.Parse(unsafeMode)!.Value };
        var (result, recording) = await RecordAsync(db.Backend, settings);
        Assert.True(recording.Settings.RecordDmas);
        Assert.Contains(" record-dmas=true", recording.Run.Config);
        Assert.NotNull(recording.Dmas);
        Assert.Equal(settings.Iommus, recording.Dmas!.Count);
        Assert.Equal(result.Dmas, recording.DmaCount);
        Assert.True(result.Dmas > 0);
        foreach (var unit in recording.Dmas)
        {
            for (int i = 1; i < unit.Count; i++)
                Assert.True(unit[i].Window > unit[i - 1].Window);
        }

        var r = RecordingReplay.Replay(recording, recording.Recorded);
        output.WriteLine($"{workload} {policy} {unsafeMode}: run dmas={result.Dmas} hit={result.IotlbHitRate} stale={result.StaleInWindow} violations={result.StaleViolations} uaf={result.UseAfterFree} faults={result.Faults}; replay {Figures(r)}");
        Assert.Equal(0, r.ResultsDiffer);
        Assert.Equal(result.TableHash, DomainHashes.Canonical(r.Tables));
        Assert.Equal(result.Dmas, r.Dmas);
        Assert.Equal(result.IotlbHitRate, r.Stats.Hits + r.Stats.Misses == 0 ? 0 : (double)r.Stats.Hits / (r.Stats.Hits + r.Stats.Misses));
        Assert.Equal(result.StaleInWindow, r.Stats.StaleInWindow);
        Assert.Equal(result.StaleViolations, r.Stats.StaleViolations);
        Assert.Equal(result.UseAfterFree, r.Stats.UseAfterFree);
        Assert.Equal(result.IsolationBreaches, r.Stats.IsolationBreaches);
        Assert.Equal(result.Faults, r.Stats.Faults);
        Assert.Equal(result.Invalidations, r.Stats.Invalidations);
        if (unsafeMode == "free-early")
            Assert.True(r.Stats.UseAfterFree > 0, "free-early: walks read freed table pages");
    }

    [Fact]
    public async Task WithoutRecordDmasTheRecordingHasNoDmas()
    {
        using var db = new TempDb();
        var (_, recording) = await RecordAsync(db.Backend, Small("nic", Policy("lazy"), "plain", ops: 1_000));
        Assert.False(recording.Settings.RecordDmas);
        Assert.DoesNotContain("record-dmas", recording.Run.Config);
        Assert.Null(recording.Dmas);
        Assert.Null(RecordingReplay.Replay(recording, recording.Recorded).Dmas);
    }

    [Fact]
    public async Task PoliciesCompareAsExpectedWithRecordedDmas()
    {
        using var db = new TempDb();
        var (result, recording) = await RecordAsync(db.Backend, Small("mixed", Policy("lazy"), "cmp") with { RecordDmas = true });
        var reports = new Dictionary<string, ReplayReport>();
        foreach (string p in new[] { "strict", "batch:8", "lazy" })
        {
            var r = RecordingReplay.Replay(recording, recording.Recorded with { Policy = Policy(p) });
            reports[p] = r;
            output.WriteLine($"{p}: invalidations={r.Stats.Invalidations} {Figures(r)}");
        }
        Assert.True(reports["strict"].Stats.Invalidations > reports["batch:8"].Stats.Invalidations, "strict issues the most invalidation commands");
        Assert.True(reports["batch:8"].Stats.Invalidations > reports["lazy"].Stats.Invalidations, "lazy issues the fewest");
        Assert.True(reports["lazy"].Stats.StaleInWindow > 0, "lazy: late DMAs hit translations of unmaps not yet flushed");
        foreach (var r in reports.Values)
        {
            Assert.Equal(0, r.Stats.StaleViolations);
            Assert.Equal(result.Dmas, r.Dmas);
        }
    }

    [Fact]
    public async Task RecordedDmasFollowBuffersTheReplayPlacedElsewhere()
    {
        // Under strict the replay's allocator gives DMA-API buffers other IOVAs than the lazy run did; the run's DMAs
        // to a buffer go where the replay placed it, so they translate as they did in the run (no fault).
        using var db = new TempDb();
        var (result, recording) = await RecordAsync(db.Backend, Small("nic", Policy("lazy"), "moved") with { RecordDmas = true });
        Assert.Equal(0, result.Faults);
        var strict = RecordingReplay.Replay(recording, recording.Recorded with { Policy = Policy("strict") });
        output.WriteLine($"strict: iova only={strict.IovaPlacedElsewhere} {Figures(strict)}");
        Assert.True(strict.IovaPlacedElsewhere > 0, "strict places DMA-API buffers elsewhere");
        Assert.Equal(result.Dmas, strict.Dmas);
        Assert.Equal(0, strict.Stats.Faults);
        Assert.Equal(0, strict.Stats.StaleViolations);
    }

    [Fact]
    public async Task TheDmaJournalIsTheSameForTheSameSeed()
    {
        // Whatever order the hosts' messages reach a unit in, its journal holds the same events.
        using var db = new TempDb();
        var settings = Small("mixed", Policy("lazy"), "one", ops: 3_000) with { RecordDmas = true };
        var (_, one) = await RecordAsync(db.Backend, settings);
        var (_, two) = await RecordAsync(db.Backend, settings with { RunId = "two" });
        Assert.Equal(one.Dmas!.Count, two.Dmas!.Count);
        for (int u = 0; u < one.Dmas.Count; u++)
        {
            Assert.Equal(one.Dmas[u].Count, two.Dmas[u].Count);
            for (int i = 0; i < one.Dmas[u].Count; i++)
            {
                Assert.Equal(one.Dmas[u][i].Window, two.Dmas[u][i].Window);
                Assert.Equal(one.Dmas[u][i].Items, two.Dmas[u][i].Items);
            }
        }
    }
}
