using PtActors.Engine;
using PtActors.Engine.Hardware;
using PtActors.Persistence;
using PtActors.Persistence.Runs;
using Xunit;

namespace PtActors.Actors.Tests;

/// <summary>
/// Real SQLite runs of every format, recovered from their journals: the recovered tables are byte-identical to
/// what the run left (dirty bits the DMA walks set included), from snapshot plus tail and from the events alone.
/// </summary>
public class RecoveryTests
{
    private static SimulationSettings Small(PtFormatKind format, string workload, FlushPolicySpec policy, string run) => new()
    {
        Iommus = 2,
        Domains = 4,
        Devices = 16,
        Workload = workload,
        Format = format,
        Policy = policy,
        Ops = 12_000,
        Seed = 7,
        RunId = run,
    };

    public static TheoryData<PtFormatKind, string, string> Cases() => new()
    {
        { PtFormatKind.Amdv1, "random", "lazy" },
        { PtFormatKind.Amdv1, "mixed", "strict" },
        { PtFormatKind.X86_64, "random", "batch:8" },
        { PtFormatKind.Vtdss, "random", "lazy" },
        { PtFormatKind.Vtdss, "mixed", "lazy-single" },
        { PtFormatKind.Riscv64, "random", "strict" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task ARecoveredRunHasTheTablesTheRunLeftByteForByte(PtFormatKind format, string workload, string policy)
    {
        Assert.True(FlushPolicySpec.TryParse(policy, out var spec));
        using var db = new TempDb();
        // Snapshots every few events, so that recovery from a snapshot plus a tail is exercised too.
        var settings = Small(format, workload, spec, "rec") with { SnapshotEvery = 7 };
        var result = await new Simulator().RunAsync(settings, db.Backend, null, CancellationToken.None);
        Assert.Equal(12_000, result.Ops);

        var (runs, report) = await VerifyOnlyRunAsync(db, "rec");
        var end = runs.EndOf("rec");
        Assert.NotNull(end);
        Assert.Equal(RunOutcome.Completed, end.Outcome);
        Assert.Equal(result.TableHash, end.TableHash);
        Assert.Equal(result.MemoryHash, report.MemoryHash);
        Assert.Equal(result.TableHash, report.TableHash);
        Assert.Equal(result.EventsPersisted, report.Events);
        Assert.Equal(result.OpsPersisted, report.Ops);
        // The end names each domain's journal length and table memory, which verify checked domain by domain.
        Assert.Equal(result.Domains.Domains, end.Domains);
        Assert.Equal(settings.Domains, end.Domains.Count);
        Assert.Equal(result.EventsPersisted, end.Domains.Sum(d => d.Events));
        Assert.Equal(end.Domains.Count, end.Domains.Select(d => d.MemoryHash).Distinct().Count());
    }

    /// <summary>Lists the database's runs (there must be one, <paramref name="runId"/>) and verifies it; the report must be clean.</summary>
    private static async Task<(RunList Runs, VerifyReport Report)> VerifyOnlyRunAsync(TempDb db, string runId)
    {
        var system = PersistentActorSystem.Create("verify", db.Backend);
        try
        {
            var runs = await RunVerifier.ListRunsAsync(system);
            var run = Assert.Single(runs.Runs);
            Assert.Equal(runId, run.RunId);
            var report = await RunVerifier.VerifyAsync(system, run, runs.EndOf(runId));
            Assert.True(report.Ok, string.Join("\n", report.Problems));
            return (runs, report);
        }
        finally
        {
            await system.Terminate();
        }
    }

    [Fact]
    public async Task DirtyBitsTheHardwareSetAreInTheJournal()
    {
        // amdv1 tracks dirty bits and the random workload reads and clears them: without the hardware's writes in
        // the journal, the recovered tables lack the bits and replaying a read_and_clear_dirty diverges.
        Assert.True(FlushPolicySpec.TryParse("lazy", out var spec));
        using var db = new TempDb();
        var settings = Small(PtFormatKind.Amdv1, "random", spec, "dirty");
        var result = await new Simulator().RunAsync(settings, db.Backend, null, CancellationToken.None);
        Assert.True(result.Dmas > 0);

        var (_, report) = await VerifyOnlyRunAsync(db, "dirty");
        Assert.Equal(result.MemoryHash, report.MemoryHash);
    }

    [Fact]
    public async Task ARunIdAlreadyInTheDatabaseIsRefusedAndNothingIsWritten()
    {
        Assert.True(FlushPolicySpec.TryParse("lazy", out var spec));
        using var db = new TempDb();
        var settings = Small(PtFormatKind.X86_64, "nic", spec, "same") with { Ops = 2000 };
        var first = await new Simulator().RunAsync(settings, db.Backend, null, CancellationToken.None);
        var e = await Assert.ThrowsAsync<RunIdTakenException>(() => new Simulator().RunAsync(settings with { Seed = 99 }, db.Backend, null, CancellationToken.None));
        Assert.Contains("'same'", e.Message, StringComparison.Ordinal);

        var (_, report) = await VerifyOnlyRunAsync(db, "same");
        Assert.Equal(first.EventsPersisted, report.Events);   // the refused run added nothing
    }
}
