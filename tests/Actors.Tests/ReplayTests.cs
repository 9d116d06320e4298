using PtActors.Engine;
using PtActors.Engine.Hardware;
using PtActors.Engine.Replay;
using PtActors.Persistence;
using Xunit;
using Xunit.Abstractions;

namespace PtActors.Actors.Tests;

/// <summary>
/// simulate → replay: a recording replayed through fresh domains and units under the configuration it was
/// recorded with answers every operation as the run did and ends with the run's tables; under other
/// configurations the replay reports what differs.
/// </summary>
public class ReplayTests(ITestOutputHelper output)
{
    private static SimulationSettings Small(PtFormatKind format, string workload, FlushPolicySpec policy, string run, long ops = 6_000) => new()
    {
        Iommus = 2,
        Domains = 4,
        Devices = 16,
        Workload = workload,
        Format = format,
        Policy = policy,
        Ops = ops,
        Seed = 11,
        RunId = run,
        Cpus = 2,
    };

    private static async Task<(SimulationResult Result, LoadedRecording Recording)> RecordAsync(TempDb db, SimulationSettings settings)
    {
        var result = await new Simulator().RunAsync(settings, db.Backend, null, CancellationToken.None);
        var system = PersistentActorSystem.Create("replay", db.Backend);
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

    public static TheoryData<PtFormatKind, string, string> Cases() => new()
    {
        { PtFormatKind.Amdv1, "mixed", "lazy" },
        { PtFormatKind.X86_64, "random", "strict" },
        { PtFormatKind.X86_64, "nvme", "lazy-single" },
        { PtFormatKind.Vtdss, "mixed", "batch:8" },
        { PtFormatKind.Riscv64, "random", "lazy" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task TheRecordedConfigurationGivesEveryResultAndTheTablesOfTheRun(PtFormatKind format, string workload, string policy)
    {
        Assert.True(FlushPolicySpec.TryParse(policy, out var spec));
        using var db = new TempDb();
        var (result, recording) = await RecordAsync(db, Small(format, workload, spec, "rec"));
        Assert.Equal(result.OpsPersisted, recording.Operations);
        Assert.Equal(result.WindDown, new RunWindDown(recording.Recording.WindDown!));

        var report = RecordingReplay.Replay(recording, recording.Recorded);
        output.WriteLine($"{format} {workload} {policy}: ops={report.Ops} differ={report.ResultsDiffer} first={report.FirstDifference} invalidations={report.Stats.Invalidations} (run {result.Invalidations})");
        Assert.Null(report.FirstDifference);
        Assert.Equal(0, report.ResultsDiffer);
        Assert.Equal(0, report.Unmatched);
        Assert.Equal(result.Maps, report.Maps);
        Assert.Equal(result.Unmaps, report.Unmaps);
        Assert.Equal(result.BytesMapped, report.BytesMapped);
        Assert.Equal(result.LockWaits, report.LockWaits);
        Assert.Equal(result.TableHash, DomainHashes.Canonical(report.Tables));
        Assert.Equal(result.MemoryHash, DomainHashes.Memory(report.Tables));
    }

    [Fact]
    public async Task TheJournalAReplayWouldWriteIsTheRunsJournal()
    {
        Assert.True(FlushPolicySpec.TryParse("lazy", out var lazy));
        using var db = new TempDb();
        var (_, recording) = await RecordAsync(db, Small(PtFormatKind.Amdv1, "mixed", lazy, "j"));
        var journal = recording.Recording.Domains.Select(_ => new List<PtActors.Engine.Dma.DomainBatch>()).ToArray();
        var unit = new IommuUnitConfig { Policy = lazy, Cpus = 2, Iotlb = new IotlbConfig(1024, 8) };
        var report = Replayer.Run(recording.Recording, new ReplayConfig(PtFormatKind.Amdv1, unit, ApplyRecordedHardwareWrites: true, Journal: journal));
        Assert.Equal(0, report.ResultsDiffer);
        for (int d = 0; d < journal.Length; d++)
        {
            var recorded = recording.Recording.Domains[d].Batches;
            Assert.Equal(recorded.Count, journal[d].Count);
            for (int i = 0; i < recorded.Count; i++)
            {
                var (a, b) = (recorded[i], journal[d][i]);
                Assert.Equal((a.Window, a.Final, a.ReleasedAtNs, a.ResultDigest), (b.Window, b.Final, b.ReleasedAtNs, b.ResultDigest));
                Assert.Equal(a.Released, b.Released);
                Assert.Equal(a.HardwareWrites, b.HardwareWrites);
                Assert.Equal(a.Ops.ToArray(), b.Ops.ToArray());
            }
        }
    }

    [Fact]
    public async Task AnotherPolicyIsReportedNotSilentlyDiverging()
    {
        Assert.True(FlushPolicySpec.TryParse("lazy", out var lazy));
        using var db = new TempDb();
        var (result, recording) = await RecordAsync(db, Small(PtFormatKind.X86_64, "nic", lazy, "nic", ops: 8_000));
        var byPolicy = new Dictionary<string, ReplayReport>();
        foreach (string p in new[] { "strict", "lazy", "batch:32" })
        {
            Assert.True(FlushPolicySpec.TryParse(p, out var spec));
            byPolicy[p] = RecordingReplay.Replay(recording, recording.Recorded with { Policy = spec });
            output.WriteLine($"{p}: invalidations={byPolicy[p].Stats.Invalidations} differ={byPolicy[p].ResultsDiffer} unmapNotMapped={byPolicy[p].UnmapNotMapped} first={byPolicy[p].FirstDifference}");
        }
        Assert.Equal(0, byPolicy["lazy"].ResultsDiffer);
        Assert.Equal(result.Invalidations, byPolicy["lazy"].Stats.Invalidations);
        // Strict invalidates per unmap, lazy per flush-queue flush, batch:32 per 32 unmaps.
        Assert.True(byPolicy["strict"].Stats.Invalidations > byPolicy["batch:32"].Stats.Invalidations);
        Assert.True(byPolicy["batch:32"].Stats.Invalidations > byPolicy["lazy"].Stats.Invalidations);
        // Every unmap still finds its buffer (a DMA-API driver unmaps the handle it got).
        Assert.All(byPolicy.Values, r => Assert.Equal(0, r.UnmapNotMapped));
        Assert.All(byPolicy.Values, r => Assert.Equal(result.Maps, r.Maps));
    }
}
