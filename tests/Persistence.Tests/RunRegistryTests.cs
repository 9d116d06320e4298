using System.Diagnostics;
using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Persistence.TestKit;
using Akka.Streams;
using Akka.Streams.Dsl;
using Microsoft.Data.Sqlite;
using PtActors.Persistence.Runs;
using PtActors.Persistence.Sqlite;
using Xunit;
using Xunit.Abstractions;
using static PtActors.Persistence.Tests.RegistryAsk;

namespace PtActors.Persistence.Tests;

public sealed class SqliteRecoveryTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Runs_survive_a_restart_of_the_actor_system()
    {
        using var dir = new TempDir();
        string db = dir.File("pt.db");
        var expected = new List<RunStarted>();
        var interceptor = new SqlitePragmaInterceptor();

        var sys1 = PersistentActorSystem.Create("sqlite-1", PersistenceBackend.Sqlite(db), Quiet, interceptor);
        try
        {
            var registry = sys1.ActorOf(RunRegistry.Props(snapshotEvery: 4), "runs");
            for (int i = 0; i < 10; i++)
                expected.Add(await Record(registry, $"run-{i}", $"hash-{i}", 1_700_000_000_000 + i));
            Assert.Equal(expected, await ListRuns(registry));
            // A repeat of the same run is acknowledged again; a different run under a taken id is refused.
            Assert.Equal(expected[3], await Record(registry, "run-3", "hash-3", 1_700_000_000_003));
            Assert.IsType<RunRejected>(await registry.Ask<object>(new RecordRun("run-3", "other", 5), AskTimeout));
            Assert.IsType<RunRejected>(await registry.Ask<object>(new RecordRun("bad/id", "h", 5), AskTimeout));
            // Snapshots are saved in the background (the write runs on a pool thread): wait for the one after
            // the eighth event before stopping the system, so that its row is there to be checked below.
            await WaitForSnapshot(sys1, RunRegistry.Id, atLeast: 8);
        }
        finally
        {
            await sys1.Terminate();
        }
        Assert.True(interceptor.ConnectionsConfigured > 0, "synchronous=NORMAL was never applied");
        Assert.Equal("wal", SqliteDatabase.ReadJournalMode(db));

        var sys2 = PersistentActorSystem.Create("sqlite-2", PersistenceBackend.Sqlite(db), Quiet);
        try
        {
            var registry = sys2.ActorOf(RunRegistry.Props(snapshotEvery: 4), "runs");
            Assert.Equal(expected, await ListRuns(registry));

            var readJournal = PersistenceQuery.Get(sys2).ReadJournalFor<SqlReadJournal>(PersistenceConfig.SqlReadJournalId);
            var envelopes = await readJournal.CurrentEventsByPersistenceId(RunRegistry.Id, 0, long.MaxValue)
                .RunWith(Sink.Seq<EventEnvelope>(), sys2.Materializer());
            Assert.Equal(expected, envelopes.Select(e => (RunStarted)e.Event));
            Assert.Equal(Enumerable.Range(1, 10).Select(i => (long)i), envelopes.Select(e => e.SequenceNr));
            Assert.Equal(expected, (await Journals.ReadAsync(sys2, RunRegistry.Id, AskTimeout)).Cast<RunStarted>());

            expected.Add(await Record(registry, "after-restart", "h", 7));
            Assert.Equal(expected, await ListRuns(registry));
        }
        finally
        {
            await sys2.Terminate();
        }

        AssertStoredRowsHaveNoClrNames(db);
    }

    private static async Task WaitForSnapshot(ActorSystem system, string persistenceId, long atLeast)
    {
        var store = Akka.Persistence.Persistence.Instance.Apply(system).SnapshotStoreFor(null);
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var loaded = await store.Ask<Akka.Persistence.LoadSnapshotResult>(
                new Akka.Persistence.LoadSnapshot(persistenceId, Akka.Persistence.SnapshotSelectionCriteria.Latest, long.MaxValue), AskTimeout);
            if (loaded.Snapshot is { } s && s.Metadata.SequenceNr >= atLeast)
                return;
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(30), $"no snapshot of {persistenceId} at or after {atLeast} within 30 s");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task A_path_that_needs_escaping_works_end_to_end()
    {
        using var dir = new TempDir();
        string db = dir.File("we ird;dir 'q' \"dq\" ü/run ${x} #1.db");
        for (int round = 0; round < 2; round++)
        {
            var sys = PersistentActorSystem.Create("escape", PersistenceBackend.Sqlite(db), Quiet);
            try
            {
                var registry = sys.ActorOf(RunRegistry.Props(), "runs");
                var before = await ListRuns(registry);
                Assert.Equal(round, before.Count);
                await Record(registry, $"r{round}");
            }
            finally
            {
                await sys.Terminate();
            }
        }
        Assert.True(File.Exists(db));
        Assert.Equal("wal", SqliteDatabase.ReadJournalMode(db));
    }

    [Fact]
    public void Starting_on_an_unusable_path_fails_before_the_system_starts()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("f"), "");
        string db = dir.File("f/pt.db");
        var e = Assert.Throws<SqliteDatabaseException>(() => PersistentActorSystem.Create("bad", PersistenceBackend.Sqlite(db)));
        Assert.Contains(db, e.Message);
    }

    /// <summary>Not a pass/fail check: prints the write rates (see the final report / docs).</summary>
    [Fact]
    public async Task Write_throughput_is_measured()
    {
        using var dir = new TempDir();
        const int n = 400;
        foreach (bool normal in new[] { true, false })
        {
            string db = dir.File(normal ? "normal.db" : "full.db");
            var sys = normal
                ? PersistentActorSystem.Create("tp", PersistenceBackend.Sqlite(db), Quiet)
                : ActorSystem.Create("tp", Quiet.WithFallback(PersistenceConfig.Sqlite(SqliteDatabase.Prepare(db))));
            try
            {
                var registry = sys.ActorOf(RunRegistry.Props(snapshotEvery: 0), "runs");
                await Record(registry, "warm-up");
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < n; i++) await Record(registry, $"seq-{i}");
                double sequential = n / sw.Elapsed.TotalSeconds;
                sw.Restart();
                await Task.WhenAll(Enumerable.Range(0, n).Select(i => Record(registry, $"pipe-{i}")));
                double pipelined = n / sw.Elapsed.TotalSeconds;
                Assert.Equal(2 * n + 1, (await ListRuns(registry)).Count);
                output.WriteLine($"WAL + synchronous={(normal ? "NORMAL" : "FULL  ")}: one Persist per event, {sequential:F0} events/s awaited one by one, {pipelined:F0} events/s pipelined");
            }
            finally
            {
                await sys.Terminate();
            }
        }
    }

    private static void AssertStoredRowsHaveNoClrNames(string db)
    {
        using var conn = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = db, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        conn.Open();
        var tables = new List<string>();
        using (var cmd = conn.CreateCommand())
        {
            cmd.CommandText = "SELECT name FROM sqlite_master WHERE type = 'table'";
            using var r = cmd.ExecuteReader();
            while (r.Read()) tables.Add(r.GetString(0));
        }
        Assert.Contains("journal", tables);
        Assert.Contains("snapshot", tables);
        var manifests = new HashSet<string>();
        foreach (var table in tables)
        {
            using var cmd = conn.CreateCommand();
            cmd.CommandText = $"SELECT * FROM \"{table}\"";
            using var r = cmd.ExecuteReader();
            while (r.Read())
            {
                for (int i = 0; i < r.FieldCount; i++)
                {
                    string text = r.GetValue(i) switch
                    {
                        byte[] b => System.Text.Encoding.UTF8.GetString(b),
                        var v => Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture) ?? "",
                    };
                    Assert.DoesNotContain("PtActors", text, StringComparison.Ordinal);
                    Assert.DoesNotContain("System.", text, StringComparison.Ordinal);
                    if (r.GetName(i) == "manifest") manifests.Add(text);
                }
            }
        }
        Assert.Contains(RunCodecs.RunStartedManifest, manifests);
        Assert.Contains(RunCodecs.SnapshotManifest, manifests);
    }
}

public sealed class InMemoryTests
{
    [Fact]
    public async Task In_memory_journal_recovers_a_new_incarnation()
    {
        var sys = PersistentActorSystem.Create("inmem", PersistenceBackend.InMemory, Quiet);
        try
        {
            var registry = sys.ActorOf(RunRegistry.Props(snapshotEvery: 3), "runs");
            var expected = new List<RunStarted>();
            for (int i = 0; i < 7; i++) expected.Add(await Record(registry, $"m{i}", "", -i));
            Assert.True(await registry.GracefulStop(AskTimeout));

            var again = sys.ActorOf(RunRegistry.Props(snapshotEvery: 3), "runs-again");
            Assert.Equal(expected, await ListRuns(again));
            Assert.Equal(expected, (await Journals.ReadAsync(sys, RunRegistry.Id, AskTimeout)).Cast<RunStarted>());
        }
        finally
        {
            await sys.Terminate();
        }
    }
}

public sealed class JournalFailureTests(ITestOutputHelper output)
    : Akka.TestKit.Xunit2.TestKit(Quiet.WithFallback(PersistenceConfig.Test()), "journal-failure", output)
{
    private static readonly TimeSpan MinBackoff = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromMilliseconds(200);

    private ITestJournal Journal => TestJournal.FromRef(Akka.Persistence.Persistence.Instance.Apply(Sys).JournalFor(null));

    [Fact]
    public async Task A_failed_write_is_not_acknowledged_and_the_restarted_state_equals_the_journal()
    {
        var registry = Sys.ActorOf(RunRegistry.SupervisedProps(minBackoff: MinBackoff, maxBackoff: MaxBackoff), "runs-sup");
        var a = await Record(registry, "a");

        await Journal.OnWrite.Fail();
        registry.Tell(new RecordRun("b", "h", 2), TestActor);
        // The caller hears that the write failed (never that the run was recorded), then nothing more.
        Assert.Contains("could not write", ExpectMsg<Status.Failure>().Cause.Message, StringComparison.Ordinal);
        ExpectNoMsg(TimeSpan.FromMilliseconds(500));

        await Journal.OnWrite.Pass();
        var runs = await RunsWhenBack(registry);
        var journal = (await Journals.ReadAsync(Sys, RunRegistry.Id, AskTimeout)).Cast<RunStarted>().ToList();
        Assert.Equal(journal, runs);
        Assert.Equal([a], runs);

        var c = await Record(registry, "c");
        Assert.Equal([a, c], await ListRuns(registry));
    }

    [Fact]
    public async Task A_rejected_write_is_not_acknowledged_and_changes_nothing()
    {
        var registry = Sys.ActorOf(RunRegistry.SupervisedProps(minBackoff: MinBackoff, maxBackoff: MaxBackoff), "runs-sup");
        var a = await Record(registry, "a");

        await Journal.OnWrite.Reject();
        registry.Tell(new RecordRun("b", "h", 2), TestActor);
        Assert.Contains("rejected", ExpectMsg<Status.Failure>().Cause.Message, StringComparison.Ordinal);
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));
        await Journal.OnWrite.Pass();

        var runs = await RunsWhenBack(registry);
        Assert.Equal([a], runs);
        Assert.Equal(runs, (await Journals.ReadAsync(Sys, RunRegistry.Id, AskTimeout)).Cast<RunStarted>());
        // "b" was not recorded, so it can be recorded now.
        var b = await Record(registry, "b", "h", 2);
        Assert.Equal([a, b], await ListRuns(registry));
    }

    [Fact]
    public async Task A_failed_recovery_is_retried_by_the_backoff_supervisor()
    {
        var first = Sys.ActorOf(RunRegistry.Props(), "runs-first");
        var a = await Record(first, "a");
        Assert.True(await first.GracefulStop(AskTimeout));

        await Journal.OnRecovery.Fail();
        var registry = Sys.ActorOf(RunRegistry.SupervisedProps(minBackoff: MinBackoff, maxBackoff: MaxBackoff), "runs-sup");
        registry.Tell(GetRuns.Instance, TestActor);
        ExpectNoMsg(TimeSpan.FromMilliseconds(300));

        await Journal.OnRecovery.Pass();
        Assert.Equal([a], await RunsWhenBack(registry));
    }

    /// <summary>Asks until the restarted child answers (the supervisor drops messages while no child runs).</summary>
    private static async Task<IReadOnlyList<RunStarted>> RunsWhenBack(IActorRef registry)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            try
            {
                return (await registry.Ask<RunList>(GetRuns.Instance, TimeSpan.FromMilliseconds(300))).Runs;
            }
            catch (AskTimeoutException) when (DateTime.UtcNow < deadline)
            {
            }
        }
    }
}

public sealed class ReadinessTests(ITestOutputHelper output)
    : Akka.TestKit.Xunit2.TestKit(Quiet.WithFallback(PersistenceConfig.Test()), "readiness", output)
{
    [Fact]
    public async Task A_backend_that_answers_is_ready_and_one_that_cannot_be_read_says_which_part()
    {
        await PersistentActorSystem.ReadyAsync(Sys, AskTimeout);

        var snapshots = TestSnapshotStore.FromRef(Akka.Persistence.Persistence.Instance.Apply(Sys).SnapshotStoreFor(null));
        await snapshots.OnLoad.Fail();
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => PersistentActorSystem.ReadyAsync(Sys, AskTimeout));
        Assert.StartsWith("the snapshot store cannot be read: ", e.Message);

        await snapshots.OnLoad.Pass();
        await PersistentActorSystem.ReadyAsync(Sys, AskTimeout);
    }

    [Fact]
    public async Task A_fresh_sqlite_file_is_ready_and_holds_no_events_afterwards()
    {
        using var dir = new TempDir();
        string db = dir.File("ready.db");
        var sys = PersistentActorSystem.Create("ready-sqlite", PersistenceBackend.Sqlite(db), Quiet);
        try
        {
            await PersistentActorSystem.ReadyAsync(sys, AskTimeout);
            Assert.Empty(await Journals.ReadAsync(sys, PersistentActorSystem.ReadyProbeId, AskTimeout));
        }
        finally
        {
            await sys.Terminate();
        }
    }
}
