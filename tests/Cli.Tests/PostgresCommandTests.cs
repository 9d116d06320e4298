using System.Text.Json;
using Npgsql;
using PtActors.Tests.Shared;
using Xunit;
using static PtActors.Cli.Tests.EndToEndTests;

namespace PtActors.Cli.Tests;

/// <summary>
/// <c>simulate</c>, <c>runs</c> and <c>verify</c> with <c>--postgres CONN</c> on a real PostgreSQL server
/// (<see cref="PostgresServer"/>), the same commands as a user types, in-process.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresCommandTests(PostgresServer server) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ptactors-pgcli-").FullName;

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        NpgsqlConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    private static readonly string[] Run =
        ["simulate", "--ops", "20000", "--iommus", "2", "--domains", "4", "--format", "amdv1", "--seed", "11"];

    /// <summary>Keys that measure the machine, not the simulation (and the run's own id).</summary>
    private static readonly HashSet<string> MachineKeys = ["wall_s", "ops_per_sec", "run_id"];

    [PostgresFact]
    public void A_seeded_run_gives_the_same_figures_as_on_SQLite_and_verifies()
    {
        string conn = server.CreateDatabase();
        string pgJson = Path.Combine(_dir, "pg.json"), sqliteJson = Path.Combine(_dir, "sqlite.json");

        var pg = Ptactors([.. Run, "--postgres", conn, "--run-id", "pg-1", "--json", pgJson]);
        Assert.True(pg.Exit == 0, pg.Stderr);
        var sqlite = Ptactors([.. Run, "--db", Path.Combine(_dir, "pt.db"), "--run-id", "sqlite-1", "--json", sqliteJson]);
        Assert.True(sqlite.Exit == 0, sqlite.Stderr);

        var a = Figures(pgJson);
        var b = Figures(sqliteJson);
        Assert.Equal(b.Keys.Order(), a.Keys.Order());
        Assert.Contains("table_hash", a.Keys);
        Assert.Equal(20000, a["ops"].GetInt64());
        foreach (var key in a.Keys.Where(k => !MachineKeys.Contains(k)))
            Assert.True(a[key].GetRawText() == b[key].GetRawText(), $"{key}: postgres {a[key].GetRawText()}, sqlite {b[key].GetRawText()}");

        // The password is masked wherever the database is named.
        string password = new NpgsqlConnectionStringBuilder(conn).Password!;
        Assert.DoesNotContain(password, pg.Stdout + pg.Stderr);
        Assert.StartsWith("run_id=pg-1 db=postgres:Host=", pg.Stdout);
        Assert.Contains("Password=***", pg.Stdout);

        long rows = JournalRows(conn);
        var runs = Ptactors(["runs", "--postgres", conn]);
        Assert.True(runs.Exit == 0, runs.Stderr);
        var row = Assert.Single(runs.Stdout.Split('\n'), l => l.StartsWith("pg-1 ", StringComparison.Ordinal));
        Assert.Contains(" completed  20000 ", row);

        var verify = Ptactors(["verify", "--postgres", conn, "--run", "pg-1"]);
        Assert.True(verify.Exit == 0, verify.Stderr + verify.Stdout);
        Assert.Equal($"pg-1 completed domains=4 events={a["events_persisted"].GetInt64()} ops={a["ops_persisted"].GetInt64()} table_hash={a["table_hash"].GetString()} ok\n",
            verify.Stdout);
        Assert.DoesNotContain(password, runs.Stdout + runs.Stderr + verify.Stdout + verify.Stderr);

        // The readers wrote nothing.
        Assert.Equal(rows, JournalRows(conn));
    }

    [PostgresFact]
    public void A_run_id_already_there_is_refused_and_nothing_is_written()
    {
        string conn = server.CreateDatabase();
        var first = Ptactors(["simulate", "--ops", "2000", "--domains", "2", "--postgres", conn, "--run-id", "taken"]);
        Assert.True(first.Exit == 0, first.Stderr);
        long rows = JournalRows(conn);
        long snapshots = (long)PostgresServer.Scalar(conn, "SELECT count(*) FROM snapshot")!;

        var again = Ptactors(["simulate", "--ops", "2000", "--domains", "3", "--postgres", conn, "--run-id", "taken"]);
        Assert.Equal(2, again.Exit);
        Assert.Equal("ptactors simulate: run id 'taken' is already in the database (run id already recorded for another run): choose another --run-id; nothing was written\n",
            again.Stderr);
        Assert.Equal(rows, JournalRows(conn));
        Assert.Equal(snapshots, (long)PostgresServer.Scalar(conn, "SELECT count(*) FROM snapshot")!);
        Assert.Equal(0, Ptactors(["verify", "--postgres", conn]).Exit);
    }

    [PostgresFact]
    public void Verify_names_an_event_missing_from_a_PostgreSQL_journal()
    {
        string conn = server.CreateDatabase();
        var run = Ptactors(["simulate", "--ops", "4000", "--domains", "2", "--postgres", conn, "--run-id", "cut"]);
        Assert.True(run.Exit == 0, run.Stderr);
        Assert.Equal(0, Ptactors(["verify", "--postgres", conn]).Exit);

        // The second event of dom0001 removed behind the simulator's back (as a damaged or tampered server would).
        long ordering = (long)PostgresServer.Scalar(conn,
            "DELETE FROM journal WHERE persistence_id = 'cut/dom0001' AND sequence_number = 2 RETURNING ordering")!;
        var verify = Ptactors(["verify", "--postgres", conn, "--run", "cut"]);
        Assert.Equal(1, verify.Exit);
        Assert.StartsWith("cut completed domains=2 ", verify.Stdout);
        Assert.Contains(" FAILED: ", verify.Stdout);
        Assert.Contains("dom0001", verify.Stdout);
        // The journal's rows are read from PostgreSQL too: the gap is named by the row after it.
        Assert.Contains("cut/dom0001 event 3 follows event 1", verify.Stdout);
        Assert.True(ordering > 0);
    }

    [PostgresFact]
    public void A_bad_connection_is_one_line_exit_2_without_the_password_and_nothing_is_written()
    {
        string conn = server.CreateDatabase();
        var good = new NpgsqlConnectionStringBuilder(conn);
        string password = good.Password!;
        int closedPort = ClosedPort();
        var cases = new (string Conn, string Why)[]
        {
            (new NpgsqlConnectionStringBuilder(conn) { Port = closedPort }.ConnectionString,
                $"cannot reach a PostgreSQL server at 127.0.0.1:{closedPort}: "),
            (new NpgsqlConnectionStringBuilder(conn) { Password = password + "-wrong" }.ConnectionString,
                $"authentication failed for user '{good.Username}' on 127.0.0.1:{good.Port}"),
            (new NpgsqlConnectionStringBuilder(conn) { Database = "ptactors_missing" }.ConnectionString,
                $"database 'ptactors_missing' does not exist on 127.0.0.1:{good.Port}"),
        };
        foreach (var (bad, why) in cases)
        {
            var sim = Ptactors(["simulate", "--ops", "1000", "--postgres", bad, "--run-id", "never", "--json", Path.Combine(_dir, "never.json")]);
            var runs = Ptactors(["runs", "--postgres", bad]);
            var verify = Ptactors(["verify", "--postgres", bad]);
            var replay = Ptactors(["replay", "--postgres", bad]);
            var import = Ptactors(["import-ftrace", TracePath, "--postgres", bad, "--run-id", "never"]);
            foreach (var (command, r) in new[] { ("simulate", sim), ("runs", runs), ("verify", verify), ("replay", replay), ("import-ftrace", import) })
            {
                Assert.True(r.Exit == 2, $"{command}: exit {r.Exit}: {r.Stderr}");
                string prefix = command == "simulate" ? "ptactors simulate: cannot use --postgres: " : $"ptactors {command}: --postgres: ";
                Assert.StartsWith(prefix + why, r.Stderr);
                Assert.Single(r.Stderr.TrimEnd('\n').Split('\n'));
                Assert.DoesNotContain(password, r.Stdout + r.Stderr);
            }
            Assert.Equal("", sim.Stdout);
        }
        Assert.False(File.Exists(Path.Combine(_dir, "never.json")));
        // Nothing reached the good database: not even the plugin's tables.
        Assert.Equal(0L, PostgresServer.Scalar(conn, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"));

        // An empty database is not one a run wrote.
        var empty = Ptactors(["runs", "--postgres", conn]);
        Assert.Equal(2, empty.Exit);
        Assert.StartsWith($"ptactors runs: --postgres: database '{good.Database}' on 127.0.0.1:{good.Port} holds no ptactors journal", empty.Stderr);
    }

    [Fact]
    public void Db_and_postgres_together_are_refused_naming_both()
    {
        const string conn = "Host=127.0.0.1;Port=1;Username=u;Password=hunter2;Database=d";
        foreach (var args in new[]
        {
            new[] { "simulate", "--ops", "10", "--db", Path.Combine(_dir, "x.db"), "--postgres", conn },
            ["runs", "--db", Path.Combine(_dir, "x.db"), "--postgres", conn],
            ["verify", "--db", Path.Combine(_dir, "x.db"), "--postgres", conn],
            ["replay", "--db", Path.Combine(_dir, "x.db"), "--postgres", conn],
            ["import-ftrace", Path.Combine(_dir, "x.trace"), "--db", Path.Combine(_dir, "x.db"), "--postgres", conn],
        })
        {
            var r = Ptactors(args);
            Assert.Equal(2, r.Exit);
            Assert.Contains("--db and --postgres cannot be used together", r.Stderr);
            Assert.DoesNotContain("hunter2", r.Stdout + r.Stderr);
        }
        Assert.Empty(Directory.GetFiles(_dir));
        var both = Ptactors(["simulate", "--in-memory", "--postgres", conn]);
        Assert.Equal(2, both.Exit);
        Assert.Contains("--in-memory and --postgres cannot be used together", both.Stderr);
        var bad = Ptactors(["runs", "--postgres", "Host=h;Password=hunter2;NoSuchKey=1"]);
        Assert.Equal(2, bad.Exit);
        Assert.DoesNotContain("hunter2", bad.Stdout + bad.Stderr);
        var none = Ptactors(["verify"]);
        Assert.Equal(2, none.Exit);
        Assert.Contains("--db FILE or --postgres CONN is required", none.Stderr);
    }

    /// <summary>The example trace of the repository (iommu and dma events of an NVMe drive and a NIC).</summary>
    private static string TracePath => ScriptHarness.OutputPath("Traces", "nvme-nic.trace");

    [PostgresFact]
    public void Replay_reads_a_PostgreSQL_recording_and_saves_back_into_it()
    {
        string conn = server.CreateDatabase();
        string db = Path.Combine(_dir, "pt.db");
        Assert.Equal(0, Ptactors([.. Run, "--postgres", conn, "--run-id", "rec"]).Exit);
        Assert.Equal(0, Ptactors([.. Run, "--db", db, "--run-id", "rec"]).Exit);
        string pgJson = Path.Combine(_dir, "pg-replay.json"), sqliteJson = Path.Combine(_dir, "sqlite-replay.json");

        var pg = Ptactors(["replay", "--postgres", conn, "--policy", "lazy,strict", "--json", pgJson]);
        Assert.True(pg.Exit == 0, pg.Stderr + pg.Stdout);
        Assert.Contains("recorded configuration: identical", pg.Stdout);
        var sqlite = Ptactors(["replay", "--db", db, "--policy", "lazy,strict", "--json", sqliteJson]);
        Assert.True(sqlite.Exit == 0, sqlite.Stderr + sqlite.Stdout);
        // The same recording read from either database replays to the same figures.
        using (var a = JsonDocument.Parse(File.ReadAllBytes(pgJson)))
        using (var b = JsonDocument.Parse(File.ReadAllBytes(sqliteJson)))
        {
            Assert.Equal(b.RootElement.GetProperty("recorded_table_hash").GetString(), a.RootElement.GetProperty("recorded_table_hash").GetString());
            var ra = a.RootElement.GetProperty("runs").EnumerateArray().ToList();
            var rb = b.RootElement.GetProperty("runs").EnumerateArray().ToList();
            Assert.Equal(2, ra.Count);
            for (int i = 0; i < ra.Count; i++)
            {
                foreach (string key in new[] { "policy", "table_hash", "identical", "invalidations", "iotlb_hit_rate" })
                    Assert.Equal(rb[i].GetProperty(key).GetRawText(), ra[i].GetProperty(key).GetRawText());
            }
        }
        string password = new NpgsqlConnectionStringBuilder(conn).Password!;
        Assert.DoesNotContain(password, pg.Stdout + pg.Stderr);

        // --save writes the replay back into PostgreSQL: listed, verified, replayable.
        var save = Ptactors(["replay", "--postgres", conn, "--run", "rec", "--policy", "strict", "--save", "rec-strict"]);
        Assert.True(save.Exit == 0, save.Stderr + save.Stdout);
        Assert.Contains("saved as run rec-strict", save.Stdout);
        var runs = Ptactors(["runs", "--postgres", conn]);
        Assert.Contains(runs.Stdout.Split('\n'), l => l.StartsWith("rec-strict ", StringComparison.Ordinal));
        var verify = Ptactors(["verify", "--postgres", conn, "--run", "rec-strict"]);
        Assert.True(verify.Exit == 0, verify.Stdout + verify.Stderr);
        Assert.Equal(0, Ptactors(["replay", "--postgres", conn, "--run", "rec-strict"]).Exit);
        // A run id already there: refused, nothing written.
        long rows = JournalRows(conn);
        var again = Ptactors(["replay", "--postgres", conn, "--run", "rec", "--save", "rec-strict"]);
        Assert.Equal(2, again.Exit);
        Assert.Contains("--save 'rec-strict': run id 'rec-strict' is already in the database", again.Stderr);
        Assert.Equal(rows, JournalRows(conn));
    }

    [PostgresFact]
    public void Import_ftrace_records_into_PostgreSQL_as_into_SQLite()
    {
        string conn = server.CreateDatabase(); // empty: the import creates the tables
        string db = Path.Combine(_dir, "trace.db");
        var pg = Ptactors(["import-ftrace", TracePath, "--postgres", conn, "--run-id", "tr"]);
        Assert.True(pg.Exit == 0, pg.Stderr);
        var sqlite = Ptactors(["import-ftrace", TracePath, "--db", db, "--run-id", "tr"]);
        Assert.True(sqlite.Exit == 0, sqlite.Stderr);
        // The same summary and table hash; the database is named with its password masked.
        string Tail(string stdout) => stdout[stdout.IndexOf(", policy ", StringComparison.Ordinal)..];
        Assert.Equal(Tail(sqlite.Stdout), Tail(pg.Stdout));
        string password = new NpgsqlConnectionStringBuilder(conn).Password!;
        Assert.DoesNotContain(password, pg.Stdout + pg.Stderr);
        Assert.Contains("Password=***", pg.Stdout);
        Assert.Equal(0, Ptactors(["verify", "--postgres", conn, "--run", "tr"]).Exit);
        var replay = Ptactors(["replay", "--postgres", conn, "--run", "tr"]);
        Assert.True(replay.Exit == 0, replay.Stderr + replay.Stdout);
        // The same run id again: refused before anything is written.
        long rows = JournalRows(conn);
        var again = Ptactors(["import-ftrace", TracePath, "--postgres", conn, "--run-id", "tr"]);
        Assert.Equal(2, again.Exit);
        Assert.Contains("run id 'tr' is already in the database", again.Stderr);
        Assert.Equal(rows, JournalRows(conn));
    }

    [PostgresFact]
    public void Verify_checks_an_ack_log_against_a_PostgreSQL_journal()
    {
        string conn = server.CreateDatabase();
        string ackLog = Path.Combine(_dir, "acks.log");
        var run = Ptactors(["simulate", "--ops", "4000", "--domains", "2", "--postgres", conn, "--run-id", "acked", "--ack-log", ackLog]);
        Assert.True(run.Exit == 0, run.Stderr);
        var ok = Ptactors(["verify", "--postgres", conn, "--run", "acked", "--ack-log", ackLog]);
        Assert.True(ok.Exit == 0, ok.Stdout + ok.Stderr);
        // An acknowledged operation removed from the journal is missed.
        PostgresServer.Scalar(conn, "DELETE FROM journal WHERE persistence_id = 'acked/dom0000' AND sequence_number = (SELECT max(sequence_number) FROM journal WHERE persistence_id = 'acked/dom0000') RETURNING ordering");
        var lost = Ptactors(["verify", "--postgres", conn, "--run", "acked", "--ack-log", ackLog]);
        Assert.Equal(1, lost.Exit);
        Assert.Contains("FAILED", lost.Stdout);
    }

    private static Dictionary<string, JsonElement> Figures(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        return doc.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.Clone());
    }

    private static long JournalRows(string conn) => (long)PostgresServer.Scalar(conn, "SELECT count(*) FROM journal")!;

    private static int ClosedPort()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
