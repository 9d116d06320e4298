using System.CommandLine;
using System.Globalization;
using Akka.Actor;
using Microsoft.Data.Sqlite;
using PtActors.Actors;
using PtActors.Persistence;
using PtActors.Persistence.Runs;

namespace PtActors.Cli.Recordings;

/// <summary>
/// <c>ptactors runs</c> and <c>ptactors verify</c>: what a database holds, read without writing.
/// </summary>
/// <remarks>
/// Exit codes: 0 done (verify: every run verifies); 1 verify found a run that does not; 2 a bad option, a database
/// that is missing or not a ptactors database, an unknown run id or an unreadable ack log (nothing is read further);
/// 70 the database could not be read.
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

        var runsDb = DbOption();
        Runs = new Command("runs", "List the runs a database holds: id, start, status (completed, interrupted, failed), operations acknowledged, configuration.")
        {
            runsDb,
        };
        Runs.SetAction((parse, ct) => ListAsync(parse.GetValue(runsDb)!, ct));

        var verifyDb = DbOption();
        var run = new Option<string?>("--run") { Description = "Verify only this run [default: every run]", HelpName = "ID" };
        var ackLog = new Option<string?>("--ack-log")
        {
            Description = "Also check that every operation this log (simulate --ack-log) says was acknowledged is in the journal",
            HelpName = "FILE",
        };
        Verify = new Command("verify", "Recover every domain of each run twice (snapshot plus tail, events alone), compare and audit them; one line per run.")
        {
            verifyDb, run, ackLog,
        };
        Verify.SetAction((parse, ct) => VerifyAsync(parse.GetValue(verifyDb)!, parse.GetValue(run), parse.GetValue(ackLog), ct));
    }

    public Command Runs { get; }

    public Command Verify { get; }

    private static Option<string> DbOption() => new("--db")
    {
        Description = "The SQLite database a simulate run wrote",
        HelpName = "FILE",
        Required = true,
    };

    private async Task<int> ListAsync(string db, CancellationToken ct)
    {
        using var file = DatabaseFile.Open(db, out string? why);
        if (file is null)
            return Usage("runs", $"--db '{db}': {why}");
        return await WithSystemAsync("runs", db, file, async system =>
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

    private async Task<int> VerifyAsync(string db, string? runId, string? ackLogPath, CancellationToken ct)
    {
        using var file = DatabaseFile.Open(db, out string? why);
        if (file is null)
            return Usage("verify", $"--db '{db}': {why}");
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
        return await WithSystemAsync("verify", db, file, async system =>
        {
            var list = await RunVerifier.ListRunsAsync(system).ConfigureAwait(false);
            var runs = runId is null ? list.Runs : list.Runs.Where(r => r.RunId == runId).ToList();
            if (runId is not null && runs.Count == 0)
                return Usage("verify", $"--run '{runId}': no such run in '{db}' (ptactors runs --db lists them)");
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
                    (report.Ok ? "ok" : "FAILED: " + string.Join("; ", report.Problems.Concat(JournalGaps(file.ReadPath, run)))));
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
    private static List<string> JournalGaps(string readPath, RunStarted run)
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
            using var conn = new SqliteConnection(PtActors.Persistence.Sqlite.SqliteDatabase.ReadOnlyConnectionString(readPath));
            conn.Open();
            using var cmd = conn.CreateCommand();
            cmd.CommandText = "SELECT ordering, persistence_id, sequence_number, deleted FROM journal WHERE substr(persistence_id, 1, length($p)) = $p ORDER BY persistence_id, sequence_number";
            cmd.Parameters.AddWithValue("$p", prefix);
            using var reader = cmd.ExecuteReader();
            string? pid = null;
            long previous = 0;
            while (reader.Read() && found.Count < 3)
            {
                long row = reader.GetInt64(0);
                string id = reader.GetString(1);
                long seq = reader.GetInt64(2);
                bool deleted = !reader.IsDBNull(3) && reader.GetInt64(3) != 0;
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
        catch (Exception e) when (e is SqliteException or InvalidCastException or FormatException or OverflowException)
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
    private async Task<int> WithSystemAsync(string command, string db, DatabaseFile file, Func<ActorSystem, Task<int>> body)
    {
        ActorSystem? system = null;
        try
        {
            system = PersistentActorSystem.Create("ptactors-" + command, PersistenceBackend.Sqlite(file.ReadPath),
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
            _stderr.WriteLine($"ptactors {command}: cannot read '{db}': {OneLine(e)}");
            return ExitUsage;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _stdout.Flush();
            _stderr.WriteLine($"ptactors {command}: cannot read '{db}': {OneLine(e)}");
            return Program.ExitInternalError;
        }
        finally
        {
            if (system is not null)
                await system.Terminate().ConfigureAwait(false);
            SqliteConnection.ClearAllPools();
        }
    }

    private static string Printable(string s)
    {
        var sb = new System.Text.StringBuilder(s.Length);
        foreach (char c in s.Length > 64 ? s[..64] + "..." : s)
            sb.Append(char.IsControl(c) || char.IsSurrogate(c) || c == '\uFFFD' ? '?' : c);
        return sb.ToString();
    }

    private static string OneLine(Exception e)
    {
        var inner = e is AggregateException { InnerException: { } i } ? i : e;
        return inner.Message.ReplaceLineEndings(" ");
    }

    private int Usage(string command, string message)
    {
        _stdout.Flush();
        _stderr.WriteLine($"ptactors {command}: {message}");
        return ExitUsage;
    }

    private void WriteColumns(List<string[]> rows)
    {
        int columns = rows[0].Length;
        var width = new int[columns];
        foreach (var row in rows)
        {
            for (int c = 0; c < columns - 1; c++)
                width[c] = Math.Max(width[c], row[c].Length);
        }
        foreach (var row in rows)
        {
            var line = new System.Text.StringBuilder();
            for (int c = 0; c < columns; c++)
            {
                line.Append(c < columns - 1 ? row[c].PadRight(width[c] + 2) : row[c]);
            }
            _stdout.WriteLine(line.ToString().TrimEnd());
        }
    }
}
