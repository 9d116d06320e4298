using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using Akka.Actor;
using Microsoft.Data.Sqlite;
using PtActors.Actors;
using PtActors.Cli.Simulate;
using PtActors.Engine;
using PtActors.Engine.Dma;
using PtActors.Engine.Formats;
using PtActors.Engine.Hardware;
using PtActors.Engine.Replay;
using PtActors.Persistence;
using PtActors.Persistence.Runs;
using PtActors.Persistence.Traces;

namespace PtActors.Cli.Recordings;

/// <summary>
/// <c>ptactors import-ftrace TRACE [--db FILE | --postgres CONN] [--run-id ID]</c>: a Linux ftrace or <c>trace-cmd report</c> of the
/// iommu (and dma) events becomes a recording like any other: each device its own domain, every map and unmap
/// applied through the engine under a flush policy in the window its timestamp falls in, the domains' journals and
/// the run stored in the database (listed by <c>runs</c>, checked by <c>verify</c>, replayed by <c>replay</c>).
/// </summary>
/// <remarks>
/// Malformed lines are reported as <c>TRACE:LINE: reason</c> on standard error and skipped. Exit codes: 0 imported;
/// 2 a bad option, an unreadable trace, a database that is not a ptactors one, or a run id already in it (nothing is
/// written); 70 the database could not be written.
/// </remarks>
internal sealed partial class RecordingCommands
{
    /// <summary>Operations of one journal event (as the domain actor's default).</summary>
    private const int OpsPerEvent = 256;

    /// <summary>Unmapped-size mismatches listed one by one (all are counted).</summary>
    private const int MismatchesListed = 20;

    private Command? _importFtrace;

    public Command ImportFtrace => _importFtrace ??= BuildImportFtrace();

    private Command BuildImportFtrace()
    {
        var trace = new Argument<string>("TRACE") { Description = "The ftrace text (trace file or trace-cmd report output) with iommu:map/unmap, io_page_fault and dma events" };
        var db = SimulateCommand.Valued<string?>("--db", "FILE", $"The SQLite database to record into (created if missing) [default: {PersistenceBackend.Default.Target}]", SimulateValues.FilePath);
        var postgres = SimulateCommand.PostgresOption("The PostgreSQL database to record into, instead of --db (the database must exist; the tables are created)");
        var runId = SimulateCommand.Valued<string?>("--run-id", "ID", "Run id [default: ftrace- and UTC yyyyMMdd-HHmmss and 4 random hex digits]", SimulateValues.RunId);
        var policy = SimulateCommand.Valued<FlushPolicySpec?>("--policy", "strict|lazy|lazy-single|batch:N",
            "The flush policy the recording is made under (a trace does not say; Linux's default DMA domain is lazy) [default: lazy]", SimulateValues.UnitPolicy);
        var format = SimulateCommand.Valued<PtFormatKind?>("--format", "amdv1|x86_64|vtdss|riscv64", "Page-table format of the domains [default: x86_64]", SimulateValues.Format);
        var command = new Command("import-ftrace",
            "Import a Linux ftrace / trace-cmd report of iommu map/unmap events as a recording (one domain per device), replayable with `replay`.")
        {
            trace, db, postgres, runId, policy, format,
        };
        command.Validators.Add(result =>
        {
            if (result.GetResult(db) is { Implicit: false } && result.GetResult(postgres) is { Implicit: false })
                result.AddError("--db and --postgres cannot be used together: record into a SQLite file or a PostgreSQL database");
        });
        command.SetAction((parse, ct) => ImportFtraceAsync(parse.GetValue(trace)!, new Source(parse.GetValue(db) ?? (parse.GetValue(postgres) is null ? PersistenceBackend.Default.Target! : null), parse.GetValue(postgres)),
            parse.GetValue(runId), parse.GetValue(policy) ?? new FlushPolicySpec(FlushPolicyKind.Lazy), parse.GetValue(format) ?? PtFormatKind.X86_64, ct));
        return command;
    }

    private async Task<int> ImportFtraceAsync(string tracePath, Source source, string? runId, FlushPolicySpec policy, PtFormatKind format, CancellationToken ct)
    {
        const string Cmd = "import-ftrace";
        string db = source.Name;
        if (Directory.Exists(tracePath))
            return Usage(Cmd, $"TRACE '{tracePath}': it is a directory");
        runId ??= "ftrace-" + SimulateValues.NewRunId();
        if (source.Postgres is { } conn)
        {
            // The server must answer and the database exist; a database that already holds a journal must not hold the run id.
            var (problem, why) = await PtActors.Persistence.Postgres.PostgresDatabase.CheckAsync(conn, forReading: false, ct).ConfigureAwait(false);
            if (problem != PtActors.Persistence.Postgres.PostgresDatabase.Problem.None)
                return Usage(Cmd, $"--postgres: {why}");
            var (noJournal, _) = await PtActors.Persistence.Postgres.PostgresDatabase.CheckAsync(conn, forReading: true, ct).ConfigureAwait(false);
            if (noJournal == PtActors.Persistence.Postgres.PostgresDatabase.Problem.None
                && await RunIdTakenAsync(Cmd, source, null, runId).ConfigureAwait(false) is int taken and not 0)
                return taken;
        }
        else
        {
            string file = source.Db!;
            if (!Directory.Exists(Path.GetDirectoryName(Path.GetFullPath(file))))
                return Usage(Cmd, $"--db '{file}': no such directory");
            if (File.Exists(file) && new FileInfo(file).Length > 0)
            {
                // An existing database must be a readable ptactors one, and a run id already there is refused, before
                // anything is opened for writing (opening writes).
                using var opened = DatabaseFile.Open(file, out string? whyNot);
                if (opened is null)
                    return Usage(Cmd, $"--db '{file}': {whyNot}");
                if (await RunIdTakenAsync(Cmd, source, opened, runId).ConfigureAwait(false) is int taken and not 0)
                    return taken;
            }
        }

        ImportedTrace imported;
        try
        {
            using var reader = new StreamReader(tracePath, new System.Text.UTF8Encoding(false), detectEncodingFromByteOrderMarks: true,
                new FileStreamOptions { Mode = FileMode.Open, Access = FileAccess.Read, Share = FileShare.ReadWrite, BufferSize = 1 << 16 });
            imported = TraceImport.Import(reader, tracePath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return Usage(Cmd, $"TRACE '{tracePath}': {e.Message}");
        }
        foreach (string line in imported.Malformed)
            _stderr.WriteLine(line);
        if (imported.Counts.Malformed > imported.Malformed.Count)
            _stderr.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{tracePath}: ... and {imported.Counts.Malformed - imported.Malformed.Count} more malformed lines"));

        // One domain per device (Linux gives each device, or IOMMU group, its own DMA domain), one unit.
        var settings = new SimulationSettings
        {
            RunId = runId,
            Iommus = 1,
            Domains = imported.Devices.Count,
            Devices = imported.Devices.Count,
            Workload = "ftrace",
            Format = format,
            Policy = policy,
            Cpus = 1,
            Ops = imported.Ops.Count,
            Seed = 0,
        };
        var (recording, last) = RecordingOf(imported, settings);
        var journal = new List<DomainBatch>[settings.Domains];
        var answers = new List<DmaOpResult>[settings.Domains];
        for (int d = 0; d < journal.Length; d++)
        {
            journal[d] = new List<DomainBatch>();
            answers[d] = new List<DmaOpResult>();
        }
        var unit = new IommuUnitConfig { Policy = policy, Cpus = 1, Iotlb = new IotlbConfig(settings.IotlbEntries, 8) };
        var report = Replayer.Run(recording, new ReplayConfig(format, unit, ApplyRecordedHardwareWrites: false, CompareWithRecording: false, journal, answers), ct);

        // What the engine unmapped for each traced unmap, against the kernel's unmapped_size.
        var computed = new Dictionary<long, ulong>();
        foreach (var list in answers)
        {
            foreach (var r in list)
            {
                if (r.Kind == DmaOpKind.Unmap)
                    computed[r.Id] = r.Bytes;
            }
        }
        int mismatches = 0;
        for (int i = 0; i < imported.Ops.Count; i++)
        {
            if (computed.TryGetValue(imported.Ops[i].Id, out ulong bytes) && imported.CheckUnmapped(i, bytes, out var m))
            {
                if (++mismatches <= MismatchesListed)
                    _stdout.WriteLine(imported.Describe(m));
            }
        }
        if (mismatches > MismatchesListed)
            _stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"... and {mismatches - MismatchesListed} more unmapped_size mismatches"));

        var end = RecordingStore.CompletedEnd(runId, report.Ops, report.Tables, journal, settings.Domains == 0 ? [] : [new LaneWindDown(last, last)]);
        int stored = await StoreRecordingAsync(Cmd, source, settings, journal, end, $"cannot write to '{db}'", ct).ConfigureAwait(false);
        if (stored != 0)
            return stored;
        _stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"recorded as run {runId} in {db}: {settings.Domains} devices (one domain each), {PtFormatOps.For(format).Name}, policy {policy}, table_hash {end.TableHash}"));
        _stdout.WriteLine(imported.Summary(mismatches));
        return 0;
    }

    /// <summary>
    /// Stores a recording made here (an import, a saved replay) through <see cref="RecordingStore"/> on a database
    /// opened for writing only now; 0, or the exit code after one line on stderr (<paramref name="failure"/> says
    /// what could not be done).
    /// </summary>
    private async Task<int> StoreRecordingAsync(string command, Source source, SimulationSettings settings, IReadOnlyList<List<DomainBatch>> journal,
        RunEnded end, string failure, CancellationToken ct)
    {
        ActorSystem? system = null;
        try
        {
            var backend = source.Postgres is { } conn ? PersistenceBackend.Postgres(conn) : PersistenceBackend.Sqlite(source.Db!);
            system = PersistentActorSystem.Create("ptactors-" + command, backend,
                Akka.Configuration.ConfigurationFactory.ParseString("akka.loglevel = OFF\nakka.stdout-loglevel = OFF"));
            await RecordingStore.SaveAsync(system, settings, journal, end, ct).ConfigureAwait(false);
            return 0;
        }
        catch (RunIdTakenException e)
        {
            return Usage(command, e.Message);
        }
        catch (OperationCanceledException)
        {
            _stderr.WriteLine($"ptactors {command}: cancelled (run {settings.RunId} is listed as interrupted)");
            return 130;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _stdout.Flush();
            _stderr.WriteLine($"ptactors {command}: {failure}: {OneLine(e, source)}");
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

    /// <summary>0 when <paramref name="runId"/> is not in <paramref name="source"/>'s run registry, else the exit code after saying so.</summary>
    private Task<int> RunIdTakenAsync(string command, Source source, DatabaseFile? file, string runId)
        => WithSystemAsync(command, source, file, async system =>
        {
            var list = await RunVerifier.ListRunsAsync(system).ConfigureAwait(false);
            return list.Runs.Any(r => r.RunId == runId)
                ? Usage(command, $"run id '{runId}' is already in the database '{source.Name}': choose another --run-id; nothing was written")
                : 0;
        });

    /// <summary>
    /// The trace's operations as a recording: each device's in the window its stamp falls in (windows of the
    /// simulator's length), at most <see cref="OpsPerEvent"/> per event; and the last window holding any.
    /// </summary>
    private static (Recording Recording, long Last) RecordingOf(ImportedTrace imported, SimulationSettings settings)
    {
        var perDevice = new List<DmaOp>[imported.Devices.Count];
        for (int d = 0; d < perDevice.Length; d++)
            perDevice[d] = new List<DmaOp>();
        foreach (var op in imported.Ops)
            perDevice[op.Device].Add(op);
        long last = 0;
        var domains = new List<RecordedDomain>(perDevice.Length);
        for (int d = 0; d < perDevice.Length; d++)
        {
            var ops = CollectionsMarshal.AsSpan(perDevice[d]);
            var batches = new List<DomainBatch>();
            int start = 0;
            while (start < ops.Length)
            {
                long window = (long)(ops[start].StampNs / settings.WindowNs) + 1;
                int end = start + 1;
                while (end < ops.Length && end - start < OpsPerEvent && (long)(ops[end].StampNs / settings.WindowNs) + 1 == window)
                    end++;
                batches.Add(new DomainBatch([], 0, ops[start..end].ToArray(), 0) { Window = window });
                last = Math.Max(last, window);
                start = end;
            }
            domains.Add(new RecordedDomain(SimulationSettings.DomainName(d), [d], batches));
        }
        return (new Recording(settings.Format, settings.Iommus, settings.WindowNs, domains, null), last);
    }
}
