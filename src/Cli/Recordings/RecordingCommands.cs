using System.CommandLine;
using System.Globalization;
using Akka.Actor;
using Microsoft.Data.Sqlite;
using PtActors.Actors;
using PtActors.Cli.Simulate;
using PtActors.Persistence;
using PtActors.Persistence.Runs;

namespace PtActors.Cli.Recordings;

/// <summary>
/// <c>ptactors runs</c> and <c>ptactors verify</c>: what a database holds, read without writing.
/// </summary>
/// <remarks>
/// Exit codes: 0 done (verify: every run verifies); 1 verify found a run that does not; 2 a bad option, a database
/// that is missing or not a ptactors database (for --postgres also: no server answers, the login is refused), an
/// unknown run id or an unreadable ack log (nothing is read further); 70 the database could not be read.
/// </remarks>
internal sealed partial class RecordingCommands
{
    public const int ExitUsage = 2;
    public const int ExitNotVerified = 1;

    private readonly TextWriter _stdout;
    private readonly TextWriter _stderr;

    public RecordingCommands(TextWriter stdout, TextWriter stderr)
    {
        _stdout = stdout;
        _stderr = stderr;

        var runsDb = DbOption(required: false);
        var runsPostgres = PostgresOption();
        Runs = new Command("runs", "List the runs a database holds: id, start, status (completed, interrupted, failed), operations acknowledged, configuration.")
        {
            runsDb, runsPostgres,
        };
        Runs.Validators.Add(result => OneDatabase(result, runsDb, runsPostgres));
        Runs.SetAction((parse, ct) => ListAsync(Source.Of(parse, runsDb, runsPostgres), ct));

        var verifyDb = DbOption(required: false);
        var verifyPostgres = PostgresOption();
        var run = new Option<string?>("--run") { Description = "Verify only this run [default: every run]", HelpName = "ID" };
        var ackLog = new Option<string?>("--ack-log")
        {
            Description = "Also check that every operation this log (simulate --ack-log) says was acknowledged is in the journal",
            HelpName = "FILE",
        };
        Verify = new Command("verify", "Recover every domain of each run twice (snapshot plus tail, events alone), compare and audit them; one line per run.")
        {
            verifyDb, verifyPostgres, run, ackLog,
        };
        Verify.Validators.Add(result => OneDatabase(result, verifyDb, verifyPostgres));
        Verify.SetAction((parse, ct) => VerifyAsync(Source.Of(parse, verifyDb, verifyPostgres), parse.GetValue(run), parse.GetValue(ackLog), ct));
    }

    /// <summary>The database a reader reads: a SQLite file (<c>--db</c>) or a PostgreSQL database (<c>--postgres</c>).</summary>
    private sealed record Source(string? Db, string? Postgres)
    {
        public static Source Of(ParseResult parse, Option<string> db, Option<string?> postgres) => new(parse.GetValue(db), parse.GetValue(postgres));

        public bool IsPostgres => Postgres is not null;

        /// <summary>How messages name it: the file as given, or the connection string with its password masked.</summary>
        public string Name => Postgres is { } conn ? "postgres:" + PtActors.Persistence.Postgres.PostgresDatabase.Mask(conn) : Db!;

        /// <summary>The option that names it, for "ptactors runs --db" hints.</summary>
        public string Option => IsPostgres ? "--postgres" : "--db";
    }

    private static void OneDatabase(System.CommandLine.Parsing.CommandResult result, Option db, Option postgres)
    {
        bool hasDb = result.GetResult(db) is { Implicit: false };
        bool hasPostgres = result.GetResult(postgres) is { Implicit: false };
        if (hasDb && hasPostgres)
            result.AddError("--db and --postgres cannot be used together: read a SQLite file or a PostgreSQL database");
        else if (!hasDb && !hasPostgres)
            result.AddError("--db FILE or --postgres CONN is required: the database to read");
    }

    public Command Runs { get; }

    public Command Verify { get; }

    /// <summary><c>--db FILE</c>; runs and verify take <c>--postgres CONN</c> instead, so there it is not required by itself.</summary>
    private static Option<string> DbOption(bool required = true) => new("--db")
    {
        Description = "The SQLite database a simulate run wrote",
        HelpName = "FILE",
        Required = required,
    };

    private static Option<string?> PostgresOption() =>
        SimulateCommand.PostgresOption("The PostgreSQL database a simulate --postgres run wrote, instead of --db");

    private async Task<int> ListAsync(Source source, CancellationToken ct)
    {
        var (file, failed) = await OpenAsync("runs", source, ct).ConfigureAwait(false);
        if (failed is int rc)
            return rc;
        using var opened = file;
        return await WithSystemAsync("runs", source, file, async system =>
        {
            var list = await RunVerifier.ListRunsAsync(system).ConfigureAwait(false);
            var rows = new List<string[]> { new[] { "RUN ID", "STARTED (UTC)", "STATUS", "OPS ACKED", "CONFIGURATION" } };
            foreach (var r in list.Runs)
            {
                var end = list.EndOf(r.RunId);
                string status = end is null ? "interrupted" : end.Outcome == RunOutcome.Completed ? "completed" : "failed";
                string ops;
                if (end is { Outcome: RunOutcome.Completed })
                    ops = end.OpsAcknowledged.ToString(CultureInfo.InvariantCulture);
                else
                {
                    // Not recorded: at most what the journals hold (an operation is acknowledged only once durable).
                    var (_, persisted) = await PtActors.Persistence.Recordings.CountAsync(system, DomainIds(r), ct).ConfigureAwait(false);
                    ops = "<=" + persisted.ToString(CultureInfo.InvariantCulture);
                }
                rows.Add([r.RunId, DateTimeOffset.FromUnixTimeMilliseconds(r.StartedUnixMs).UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture),
                    status, ops, r.Config.Length == 0 ? "(not recorded)" : r.Config]);
            }
            WriteColumns(rows);
            if (list.Runs.Count == 0)
                _stdout.WriteLine("(no runs)");
            return 0;
        }).ConfigureAwait(false);
    }

    private async Task<int> VerifyAsync(Source source, string? runId, string? ackLogPath, CancellationToken ct)
    {
        var (file, failed) = await OpenAsync("verify", source, ct).ConfigureAwait(false);
        if (failed is int rc)
            return rc;
        using var opened = file;
        string db = source.Name;
        List<AckLog.Section>? sections = null;
        long torn = 0;
        if (ackLogPath is not null)
        {
            try
            {
                sections = AckLog.Read(ackLogPath, out torn);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or ArgumentException)
            {
                string message = e.Message.StartsWith(ackLogPath + ": ", StringComparison.Ordinal) ? e.Message[(ackLogPath.Length + 2)..] : e.Message;
                return Usage("verify", $"--ack-log '{ackLogPath}': {message.ReplaceLineEndings(" ")}");
            }
        }
        return await WithSystemAsync("verify", source, file, async system =>
        {
            var list = await RunVerifier.ListRunsAsync(system).ConfigureAwait(false);
            var runs = runId is null ? list.Runs : list.Runs.Where(r => r.RunId == runId).ToList();
            if (runId is not null && runs.Count == 0)
                return Usage("verify", $"--run '{runId}': no such run in '{db}' (ptactors runs {source.Option} lists them)");
            if (runs.Count == 0)
                _stdout.WriteLine("(no runs)");
            bool allOk = true;
            if (sections is not null && runId is null)
            {
                // Operations acknowledged in a run the database does not hold are lost too (or the log is damaged).
                foreach (var s in sections)
                {
                    if (list.Runs.Any(r => r.RunId == s.RunId) || s.Count == 0)
                        continue;
                    allOk = false;
                    _stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"ack log '{ackLogPath}': byte {s.Offset}: run '{Printable(s.RunId)}' is not in the database ({s.Count} operations acknowledged) FAILED"));
                }
            }
            foreach (var run in runs)
            {
                ct.ThrowIfCancellationRequested();
                Dictionary<int, List<long>>? acked = null;
                var ackProblems = new List<string>();
                if (sections is not null)
                {
                    acked = new Dictionary<int, List<long>>();
                    int domainCount = int.TryParse(SimulationSettings.ValueOf(run.Config, "domains"), NumberStyles.None, CultureInfo.InvariantCulture, out int dc) ? dc : int.MaxValue;
                    foreach (var s in sections)
                    {
                        if (s.RunId != run.RunId)
                            continue;
                        foreach (var (domain, ids) in s.ByDomain)
                        {
                            if (domain >= domainCount)
                            {
                                long at = s.FirstRecord is { } first && first.TryGetValue(domain, out long o) ? o : s.Offset;
                                ackProblems.Add(string.Create(CultureInfo.InvariantCulture,
                                    $"ack log '{ackLogPath}': byte {at}: a record of domain index {domain}, which the run does not have ({domainCount} domains)"));
                                continue;
                            }
                            if (!acked.TryGetValue(domain, out var all))
                                acked[domain] = all = new List<long>();
                            all.AddRange(ids);
                        }
                    }
                }
                var end = list.EndOf(run.RunId);
                var report = await RunVerifier.VerifyAsync(system, run, end, acked).ConfigureAwait(false);
                if (ackProblems.Count > 0)
                    report = report with { Problems = [.. report.Problems, .. ackProblems] };
                allOk &= report.Ok;
                string status = end is null ? "interrupted" : end.Outcome == RunOutcome.Completed ? "completed" : "failed";
                string acks = acked is null ? "" : string.Create(CultureInfo.InvariantCulture, $" acked_checked={report.AckedChecked} acked_missing={report.AckedMissing}");
                if (report.Dmas is { } dmaCount)
                    acks = string.Create(CultureInfo.InvariantCulture, $" dmas={dmaCount}") + acks;
                _stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{run.RunId} {status} domains={report.Domains} events={report.Events} ops={report.Ops}{acks} table_hash={(report.TableHash.Length == 0 ? "-" : report.TableHash)} ") +
                    (report.Ok ? "ok" : "FAILED: " + string.Join("; ", report.Problems.Concat(JournalGaps(source, file, run)))));
            }
            if (torn > 0)
                _stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"ack log '{ackLogPath}': the last {torn} bytes (from byte {new FileInfo(ackLogPath!).Length - torn}) were a record cut short by the crash (not counted)"));
            return allOk ? 0 : ExitNotVerified;
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// For a run that does not verify: where its journal rows are not a gap-free sequence per domain (a row whose
    /// persistence id, sequence number or deleted flag was damaged moves events out of their domain), named by the
    /// journal's row (<c>ordering</c>); at most three findings, none when the rows cannot be read.
    /// </summary>
    private static List<string> JournalGaps(Source source, DatabaseFile? file, RunStarted run)
    {
        var found = new List<string>();
        var domains = new HashSet<string>(DomainIds(run), StringComparer.Ordinal);
        // A run with --record-dmas also has a DMA journal per unit: rows of the run, checked for gaps the same way.
        if (SimulationSettings.ValueOf(run.Config, "record-dmas") == "true"
            && int.TryParse(SimulationSettings.ValueOf(run.Config, "iommus"), NumberStyles.None, CultureInfo.InvariantCulture, out int units))
        {
            for (int u = 0; u < units; u++)
                domains.Add(RecordingReplay.DmaJournalId(run.RunId, u));
        }
        string prefix = run.RunId + "/";
        try
        {
            using System.Data.Common.DbConnection conn = file is not null
                ? new SqliteConnection(PtActors.Persistence.Sqlite.SqliteDatabase.ReadOnlyConnectionString(file.ReadPath))
                : new Npgsql.NpgsqlConnection(PtActors.Persistence.Postgres.PostgresDatabase.ReadOnlyConnectionString(source.Postgres!));
            conn.Open();
            using var cmd = conn.CreateCommand();
            cmd.CommandText = "SELECT ordering, persistence_id, sequence_number, deleted FROM journal WHERE substr(persistence_id, 1, length(@p)) = @p ORDER BY persistence_id, sequence_number";
            var p = cmd.CreateParameter();
            p.ParameterName = "p";
            p.Value = prefix;
            cmd.Parameters.Add(p);
            using var reader = cmd.ExecuteReader();
            string? pid = null;
            long previous = 0;
            while (reader.Read() && found.Count < 3)
            {
                long row = reader.GetInt64(0);
                string id = reader.GetString(1);
                long seq = reader.GetInt64(2);
                bool deleted = !reader.IsDBNull(3) && Convert.ToInt64(reader.GetValue(3), CultureInfo.InvariantCulture) != 0;
                if (!domains.Contains(id))
                {
                    found.Add(string.Create(CultureInfo.InvariantCulture, $"journal row {row}: persistence id '{Printable(id)}' is not a domain of the run"));
                    continue;
                }
                if (id != pid)
                {
                    pid = id;
                    previous = seq - 1;
                }
                if (seq != previous + 1)
                    found.Add(string.Create(CultureInfo.InvariantCulture, $"journal row {row}: {id} event {seq} follows event {previous}"));
                else if (deleted)
                    found.Add(string.Create(CultureInfo.InvariantCulture, $"journal row {row}: {id} event {seq} is marked deleted"));
                previous = seq;
            }
        }
        catch (Exception e) when (e is System.Data.Common.DbException or InvalidCastException or FormatException or OverflowException or IOException)
        {
            // Rows that cannot even be read this way: the verify problems above are all there is to say.
        }
        return found;
    }

    private static IEnumerable<string> DomainIds(RunStarted run)
    {
        if (!int.TryParse(SimulationSettings.ValueOf(run.Config, "domains"), NumberStyles.None, CultureInfo.InvariantCulture, out int domains))
            yield break;
        for (int d = 0; d < domains; d++)
            yield return PersistenceIds.For(run.RunId, SimulationSettings.DomainName(d));
    }

    /// <summary>An actor system on <paramref name="db"/>, ready, for <paramref name="body"/>; a failure to read is exit 70 with one line.</summary>
    private Task<int> WithSystemAsync(string command, string db, DatabaseFile file, Func<ActorSystem, Task<int>> body) =>
        WithSystemAsync(command, new Source(db, null), file, body);

    /// <summary>The same on a SQLite file (<paramref name="file"/>) or, when it is null, on <paramref name="source"/>'s PostgreSQL database.</summary>
    private async Task<int> WithSystemAsync(string command, Source source, DatabaseFile? file, Func<ActorSystem, Task<int>> body)
    {
        ActorSystem? system = null;
        string db = source.Name;
        try
        {
            var backend = file is not null ? PersistenceBackend.Sqlite(file.ReadPath) : PersistenceBackend.Postgres(source.Postgres!);
            system = PersistentActorSystem.Create("ptactors-" + command, backend,
                Akka.Configuration.ConfigurationFactory.ParseString("akka.loglevel = OFF\nakka.stdout-loglevel = OFF"), forReading: true);
            await PersistentActorSystem.ReadyAsync(system, TimeSpan.FromSeconds(60)).ConfigureAwait(false);
            return await body(system).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            _stderr.WriteLine($"ptactors {command}: cancelled");
            return 130;
        }
        catch (InvalidDataException e)
        {
            // Damaged content the journal layer found (e.g. the run registry's events): a bad input, not a crash.
            _stdout.Flush();
            _stderr.WriteLine($"ptactors {command}: cannot read '{db}': {OneLine(e, source)}");
            return ExitUsage;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _stdout.Flush();
            _stderr.WriteLine($"ptactors {command}: cannot read '{db}': {OneLine(e, source)}");
            return Program.ExitInternalError;
        }
        finally
        {
            if (system is not null)
                await system.Terminate().ConfigureAwait(false);
            SqliteConnection.ClearAllPools();
            if (source.IsPostgres)
                PtActors.Persistence.Postgres.PostgresDatabase.ClearPools();
        }
    }

    /// <summary>
    /// The SQLite file opened and checked (<see cref="DatabaseFile"/>), or for PostgreSQL the server checked: reachable,
    /// the login accepted, the database there and holding a journal. Null file and no exit code for PostgreSQL; an exit
    /// code (2, one line naming the option) when the database cannot be read.
    /// </summary>
    private async Task<(DatabaseFile? File, int? Exit)> OpenAsync(string command, Source source, CancellationToken ct)
    {
        if (source.Postgres is { } conn)
        {
            var (problem, why) = await PtActors.Persistence.Postgres.PostgresDatabase.CheckAsync(conn, forReading: true, ct).ConfigureAwait(false);
            return problem == PtActors.Persistence.Postgres.PostgresDatabase.Problem.None
                ? (null, null)
                : (null, Usage(command, $"--postgres: {why}"));
        }
        var file = DatabaseFile.Open(source.Db!, out string? fileWhy);
        return file is null ? (null, Usage(command, $"--db '{source.Db}': {fileWhy}")) : (file, null);
    }

    private static string Printable(string s)
    {
        var sb = new System.Text.StringBuilder(s.Length);
        foreach (char c in s.Length > 64 ? s[..64] + "..." : s)
            sb.Append(char.IsControl(c) || char.IsSurrogate(c) || c == '\uFFFD' ? '?' : c);
        return sb.ToString();
    }

    private static string OneLine(Exception e) => OneLine(e, new Source(null, null));

    private static string OneLine(Exception e, Source source)
    {
        var inner = e is AggregateException { InnerException: { } i } ? i : e;
        string line = inner.Message.ReplaceLineEndings(" ");
        return source.IsPostgres ? PtActors.Persistence.Postgres.PostgresDatabase.Redact(line, source.Postgres) : line;
    }

    private int Usage(string command, string message)
    {
        _stdout.Flush();
        _stderr.WriteLine($"ptactors {command}: {message}");
        return ExitUsage;
    }

    private void WriteColumns(List<string[]> rows) => TextColumns.Write(_stdout, rows);
}
