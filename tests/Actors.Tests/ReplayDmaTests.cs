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
}
