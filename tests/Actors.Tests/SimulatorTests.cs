using PtActors.Engine;
using PtActors.Engine.Hardware;
using PtActors.Persistence;
using Xunit;

namespace PtActors.Actors.Tests;

public class SimulatorTests
{
    private static SimulationSettings Small(string workload = "mixed", FlushPolicySpec? policy = null, string run = "t") => new()
    {
        Iommus = 2,
        Domains = 4,
        Devices = 16,
        Workload = workload,
        Policy = policy ?? new FlushPolicySpec(FlushPolicyKind.Lazy),
        Ops = 4000,
        Seed = 42,
        RunId = run,
    };

    private static SimulationResult WithoutWallClock(SimulationResult r) => r with { OpsPerSec = 0, WallS = 0 };

    [Fact]
    public async Task TheSameSeedGivesTheSameFigures()
    {
        var runner = new Simulator();
        var a = await runner.RunAsync(Small(), PersistenceBackend.InMemory, null, CancellationToken.None);
        var b = await runner.RunAsync(Small(), PersistenceBackend.InMemory, null, CancellationToken.None);
        Assert.Equal(4000, a.Ops);                // exactly the operations asked for
        Assert.True(a.Dmas > 0);
        Assert.True(a.Maps > 0 && a.Unmaps > 0);
        Assert.Equal(a.Ops, a.Maps + a.Unmaps);
        Assert.Equal(WithoutWallClock(a), WithoutWallClock(b));
        Assert.Equal(0, a.StaleViolations);
        Assert.Equal(0, a.UseAfterFree);
        Assert.Equal(0, a.IsolationBreaches);
    }

    [Fact]
    public async Task TwoRunsInOneSqliteFileGiveTheSameFigures()
    {
        string dir = Path.Combine(Path.GetTempPath(), "ptactors-sim-" + Guid.NewGuid().ToString("N"));
        string db = Path.Combine(dir, "runs.db");
        try
        {
            var runner = new Simulator();
            var a = await runner.RunAsync(Small(run: "run-a"), PersistenceBackend.Sqlite(db), null, CancellationToken.None);
            var b = await runner.RunAsync(Small(run: "run-b"), PersistenceBackend.Sqlite(db), null, CancellationToken.None);
            Assert.Equal(WithoutWallClock(a) with { RunId = "" }, WithoutWallClock(b) with { RunId = "" });
            Assert.True(a.EventsPersisted > 0);
            Assert.True(a.OpsPersisted >= a.Ops);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task AnotherSeedGivesOtherFigures()
    {
        var runner = new Simulator();
        var a = await runner.RunAsync(Small(), PersistenceBackend.InMemory, null, CancellationToken.None);
        var b = await runner.RunAsync(Small() with { Seed = 43 }, PersistenceBackend.InMemory, null, CancellationToken.None);
        Assert.NotEqual(a.TableHash, b.TableHash);
    }

    [Theory]
    [InlineData("nic", "strict")]
    [InlineData("nic", "lazy")]
    [InlineData("nvme", "batch:8")]
    [InlineData("random", "lazy-single")]
    [InlineData("gpu", "strict")]
    public async Task EachWorkloadRunsUnderEachPolicy(string workload, string policy)
    {
        Assert.True(FlushPolicySpec.TryParse(policy, out var spec));
        var r = await new Simulator().RunAsync(Small(workload, spec), PersistenceBackend.InMemory, null, CancellationToken.None);
        Assert.Equal(4000, r.Ops);
        Assert.Equal(0, r.StaleViolations);
        Assert.Equal(0, r.UseAfterFree);
        if (policy == "strict")
            Assert.Equal(0, r.StaleInWindow);
    }

    [Fact]
    public async Task AJournalWriteFailureStopsTheRunWithAClearErrorInsteadOfHanging()
    {
        // Every write fails: the first commit of a domain fails, the domain restarts from its (empty) journal,
        // and the run must end with an error that names the domain, not wait forever for its answer.
        var run = new Simulator().RunAsync(Small(), PersistenceBackend.Test, null,
            system => Akka.Persistence.TestKit.TestJournal.FromRef(Akka.Persistence.Persistence.Instance.Apply(system).JournalFor(null)).OnWrite.Fail().Wait(),
            CancellationToken.None);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => run.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Matches("^domain dom[0-9]{4} was restarted from its journal after a failed write", e.Message);
    }
}
