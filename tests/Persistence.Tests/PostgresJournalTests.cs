using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using Npgsql;
using PtActors.Engine.Dma;
using PtActors.Engine.Replay;
using PtActors.Persistence.Domains;
using PtActors.Persistence.Postgres;
using PtActors.Persistence.Runs;
using PtActors.Persistence.Serialization;
using PtActors.Tests.Shared;
using Xunit;
using static PtActors.Persistence.Tests.RegistryAsk;

namespace PtActors.Persistence.Tests;

/// <summary>
/// The journal and snapshot store on a real PostgreSQL server (<see cref="PostgresServer"/>: the one .ci/run started,
/// or one started here), each test in a database of its own.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresJournalTests(PostgresServer server)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    [PostgresFact]
    public async Task Domain_batches_and_snapshots_round_trip_through_PtSerializer()
    {
        string conn = server.CreateDatabase();
        const string pid = "run-1/dom0";
        var model = DomainDriver.NewModel();
        var driver = new DomainDriver(seed: 33);
        driver.Run(10, model);
        var snapshot = model.Capture();
        int cut = driver.Journal.Count;
        driver.Run(5, model);

        var sys1 = PersistentActorSystem.Create("pg-dom-1", PersistenceBackend.Postgres(conn), Quiet);
        try
        {
            await PersistentActorSystem.ReadyAsync(sys1, Timeout);
            var store = sys1.ActorOf(Props.Create(() => new DomainCodecTests.DomainStore(pid)));
            for (int i = 0; i < driver.Journal.Count; i++)
            {
                Assert.Equal("ok", await store.Ask<string>(driver.Journal[i], Timeout));
                if (i == cut - 1)
                    Assert.Equal("ok", await store.Ask<string>(snapshot, Timeout));
            }
        }
        finally
        {
            await sys1.Terminate();
        }

        // A second system reads them back from the server: the snapshot, then the events after it.
        var sys2 = PersistentActorSystem.Create("pg-dom-2", PersistenceBackend.Postgres(conn), Quiet);
        try
        {
            var store = sys2.ActorOf(Props.Create(() => new DomainCodecTests.DomainStore(pid)));
            var recovered = await store.Ask<DomainCodecTests.DomainStore.Recovered>(DomainCodecTests.DomainStore.Query.Instance, Timeout);
            Assert.NotNull(recovered.Snapshot);
            DomainDriver.AssertSnapshotsEqual(snapshot, recovered.Snapshot!);
            Assert.Equal(driver.Journal.Count - cut, recovered.Events.Count);
            var restored = DomainModel.Restore(recovered.Snapshot!);
            var scratch = new BatchOutcome();
            foreach (var (expected, actual) in driver.Journal.Skip(cut).Zip(recovered.Events))
            {
                DomainDriver.AssertBatchesEqual(expected, actual);
                restored.Replay(actual, scratch);
            }
            DomainDriver.AssertSameState(model, restored);
            Assert.Equal(driver.Journal.Count, (await Journals.ReadAsync(sys2, pid, Timeout)).Count);
        }
        finally
        {
            await sys2.Terminate();
            NpgsqlConnection.ClearAllPools();
        }

        // On the server, every row is ours: PtSerializer's id and the stable manifests, not Newtonsoft JSON.
        Assert.Equal((long)driver.Journal.Count, PostgresServer.Scalar(conn,
            $"SELECT count(*) FROM journal WHERE persistence_id = '{pid}' AND identifier = {PtSerializer.Id} AND manifest = '{DomainCodecs.BatchManifest}'"));
        Assert.Equal(0L, PostgresServer.Scalar(conn, $"SELECT count(*) FROM journal WHERE identifier <> {PtSerializer.Id}"));
        Assert.Equal(1L, PostgresServer.Scalar(conn,
            $"SELECT count(*) FROM snapshot WHERE persistence_id = '{pid}' AND serializer_id = {PtSerializer.Id} AND manifest = '{DomainCodecs.SnapshotManifest}'"));
    }

    [PostgresFact]
    public async Task Run_registry_events_survive_a_restart_and_read_back_through_the_query_journal()
    {
        string conn = server.CreateDatabase();
        var expected = new List<RunStarted>();
        var end = new RunEnded("run-2", RunOutcome.Completed, 1_700_000_000_100, 12345, "ab", "cd", "")
        {
            WindDown = [new LaneWindDown(10, 12)],
        };
        var sys1 = PersistentActorSystem.Create("pg-runs-1", PersistenceBackend.Postgres(conn), Quiet);
        try
        {
            var registry = sys1.ActorOf(RunRegistry.Props(snapshotEvery: 3), "runs");
            for (int i = 0; i < 5; i++)
                expected.Add(await Record(registry, $"run-{i}", $"hash-{i}", 1_700_000_000_000 + i));
            Assert.IsType<RunEndRecorded>(await registry.Ask<object>(new RecordRunEnd(end), AskTimeout));
            // A different run under a taken id is refused.
            Assert.IsType<RunRejected>(await registry.Ask<object>(new RecordRun("run-3", "other", 5), AskTimeout));
        }
        finally
        {
            await sys1.Terminate();
        }

        var sys2 = PersistentActorSystem.Create("pg-runs-2", PersistenceBackend.Postgres(conn), Quiet);
        try
        {
            var registry = sys2.ActorOf(RunRegistry.Props(snapshotEvery: 3), "runs");
            var list = await registry.Ask<RunList>(GetRuns.Instance, AskTimeout);
            Assert.Equal(expected, list.Runs);
            Assert.Equal([end], list.Ends);

            var readJournal = PersistenceQuery.Get(sys2).ReadJournalFor<SqlReadJournal>(PersistenceConfig.SqlReadJournalId);
            var envelopes = await readJournal.CurrentEventsByPersistenceId(RunRegistry.Id, 0, long.MaxValue)
                .RunWith(Sink.Seq<EventEnvelope>(), sys2.Materializer());
            Assert.Equal(expected.Cast<object>().Append(end), envelopes.Select(e => e.Event));
            Assert.Equal(Enumerable.Range(1, 6).Select(i => (long)i), envelopes.Select(e => e.SequenceNr));
        }
        finally
        {
            await sys2.Terminate();
            NpgsqlConnection.ClearAllPools();
        }
    }

    [PostgresFact]
    public async Task A_reader_cannot_write_and_creates_no_table()
    {
        string conn = server.CreateDatabase();
        // An empty database is not a ptactors one for a reader (and the check created nothing).
        Assert.Equal(PostgresDatabase.Problem.NotAPtactorsDatabase, (await PostgresDatabase.CheckAsync(conn, forReading: true)).Problem);
        Assert.Equal(PostgresDatabase.Problem.None, (await PostgresDatabase.CheckAsync(conn, forReading: false)).Problem);

        var reader = PersistentActorSystem.Create("pg-reader", PersistenceBackend.Postgres(conn), Quiet, forReading: true);
        try
        {
            // auto-initialize is off: the read fails on the missing table instead of creating it.
            await Assert.ThrowsAsync<InvalidOperationException>(() => PersistentActorSystem.ReadyAsync(reader, Timeout));
        }
        finally
        {
            await reader.Terminate();
            NpgsqlConnection.ClearAllPools();
        }
        Assert.Equal(0L, PostgresServer.Scalar(conn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"));

        var e = Assert.Throws<PostgresException>(() =>
            PostgresServer.Scalar(PostgresDatabase.ReadOnlyConnectionString(conn), "CREATE TABLE x (a int)"));
        Assert.Equal(PostgresErrorCodes.ReadOnlySqlTransaction, e.SqlState);
    }

    [PostgresFact]
    public async Task A_bad_connection_is_named_without_its_password()
    {
        var good = new NpgsqlConnectionStringBuilder(server.ConnectionString);
        string password = good.Password!;

        var wrongPassword = new NpgsqlConnectionStringBuilder(server.ConnectionString) { Password = password + "x" }.ConnectionString;
        var (problem, why) = await PostgresDatabase.CheckAsync(wrongPassword, forReading: false);
        Assert.Equal(PostgresDatabase.Problem.AuthenticationFailed, problem);
        Assert.Equal($"authentication failed for user '{good.Username}' on {good.Host}:{good.Port}", why);

        var missing = new NpgsqlConnectionStringBuilder(server.ConnectionString) { Database = "no_such_database" }.ConnectionString;
        (problem, why) = await PostgresDatabase.CheckAsync(missing, forReading: true);
        Assert.Equal(PostgresDatabase.Problem.DatabaseMissing, problem);
        Assert.Equal($"database 'no_such_database' does not exist on {good.Host}:{good.Port}", why);

        int closedPort = ClosedPort();
        var unreachable = new NpgsqlConnectionStringBuilder(server.ConnectionString) { Port = closedPort }.ConnectionString;
        (problem, why) = await PostgresDatabase.CheckAsync(unreachable, forReading: false);
        Assert.Equal(PostgresDatabase.Problem.Unreachable, problem);
        Assert.StartsWith($"cannot reach a PostgreSQL server at 127.0.0.1:{closedPort}: ", why);
        Assert.DoesNotContain(password, why);
    }

    [Fact]
    public void Mask_hides_the_password_and_unparsable_text()
    {
        Assert.Equal("Host=h;Port=5;Username=u;Password=***;Database=d",
            PostgresDatabase.Mask("Host=h;Port=5;Username=u;Password=s3cret;Database=d"));
        Assert.Equal("Host=h;Database=d", PostgresDatabase.Mask("Host=h;Database=d"));
        Assert.Equal("(not a connection string)", PostgresDatabase.Mask("Host=h;Password=s3cret;NoSuchKey=1"));
        Assert.Equal("error at x *** y", PostgresDatabase.Redact("error at x s3cret\ny", "Host=h;Password=s3cret"));
    }

    /// <summary>A loopback port nothing listens on (bound, then released).</summary>
    internal static int ClosedPort()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
