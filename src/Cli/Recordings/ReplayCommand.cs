using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using PtActors.Actors;
using PtActors.Cli.Simulate;
using PtActors.Engine;
using PtActors.Engine.Formats;
using PtActors.Engine.Hardware;
using PtActors.Engine.Replay;
using PtActors.Persistence.Runs;

namespace PtActors.Cli.Recordings;

/// <summary>
/// <c>ptactors replay</c>: a recording replayed open-loop under other flush policies, IOTLB sizes, formats or CPU
/// counts, compared side by side; the recorded configuration is always replayed too and must give the run's
/// answers and tables.
/// </summary>
/// <remarks>
/// Exit codes: 0 every configuration replayed and the recorded one is identical to the run; 1 the recorded
/// configuration is not (the first differing operation is named); 2 a bad option, database or run, or a recording
/// that cannot be replayed (nothing is written); 70 the database could not be read; 74 the --json file could not be
/// written.
/// </remarks>
internal sealed partial class RecordingCommands
{
    /// <summary>Configurations one replay compares at most (the cross product of --policy and --iotlb).</summary>
    public const int MaxReplayConfigurations = 64;

    private Command? _replay;

    public Command Replay => _replay ??= BuildReplay();

    private Command BuildReplay()
    {
        var db = DbOption(required: false);
        var postgres = PostgresOption();
        var run = new Option<string?>("--run") { Description = "The run to replay [default: the database's only run]", HelpName = "ID" };
        var policies = SimulateCommand.Valued<Listed<FlushPolicySpec>?>("--policy", "P[,P...]",
            $"Flush policies to replay under: strict, lazy, lazy-single, batch:N (N at most {SimulateValues.MaxBatch}) [default: the recorded one]", SimulateValues.List(SimulateValues.UnitPolicy));
        var iotlbs = SimulateCommand.Valued<Listed<int>?>("--iotlb", "N[,N...]",
            $"IOTLB entries per unit, each a multiple of 8 up to {SimulateValues.MaxIotlbEntries} [default: the recorded size]", SimulateValues.List(SimulateValues.IotlbEntries));
        var format = SimulateCommand.Valued<PtFormatKind?>("--format", "amdv1|x86_64|vtdss|riscv64", "Page-table format of the replay's domains [default: the recorded one]", SimulateValues.Format);
        var cpus = SimulateCommand.Valued<int?>("--cpus", "N", $"CPUs for the per-CPU flush queues, at most {SimulateValues.MaxCpus} [default: the recorded number]",
            (string text, out string expected) => SimulateValues.Count(text, SimulateValues.MaxCpus, out expected));
        var json = SimulateCommand.Valued<string?>("--json", "FILE", "Also write every configuration's figures to FILE as JSON", SimulateValues.FilePath);
        var synthDmas = SimulateCommand.Valued<int?>("--synth-dmas", "N",
            $"Add N seeded DMAs per mapped 4 KiB page over each mapping's lifetime, 1 to {SynthDmas.MaxPerPage} (for a recording without recorded DMAs)",
            (string text, out string expected) => SimulateValues.Count(text, SynthDmas.MaxPerPage, out expected));
        var seed = SimulateCommand.Valued<ulong?>("--seed", "N", $"Seed of --synth-dmas [default: {SynthDmas.DefaultSeed}]", SimulateValues.Seed);
        var save = SimulateCommand.Valued<string?>("--save", "RUNID",
            "Record the replay (one configuration) in the database as run RUNID: listed by runs, checked by verify, replayable", SimulateValues.RunId);
        var command = new Command("replay",
            "Replay a recorded run open-loop (each operation in its recorded window and order) through fresh domains and units, " +
            "once per configuration (the cross product of the lists), without persisting; compare them side by side.")
        {
            db, postgres, run, policies, iotlbs, format, cpus, synthDmas, seed, json, save,
        };
        command.Validators.Add(result =>
        {
            OneDatabase(result, db, postgres);
            // Values with errors of their own are left to those errors.
            var policyList = result.GetResult(policies) is { Tokens: [var pt] } ? SimulateValues.List(SimulateValues.UnitPolicy)(pt.Value, out _) : null;
            var iotlbList = result.GetResult(iotlbs) is { Tokens: [var it] } ? SimulateValues.List(SimulateValues.IotlbEntries)(it.Value, out _) : null;
            long p = policyList?.Items.Length ?? 1, i = iotlbList?.Items.Length ?? 1;
            if (p * i > MaxReplayConfigurations)
                result.AddError($"--policy x --iotlb make {p * i} configurations: at most {MaxReplayConfigurations}");
            if (p * i > 1 && result.GetResult(save) is { Implicit: false })
                result.AddError($"--save records one configuration: --policy x --iotlb make {p * i}");
            if (result.GetResult(seed) is { Implicit: false } && result.GetResult(synthDmas) is null or { Implicit: true })
                result.AddError("--seed seeds --synth-dmas: give --synth-dmas N too");
        });
        command.SetAction((parse, ct) => ReplayAsync(Source.Of(parse, db, postgres), parse.GetValue(run), parse.GetValue(policies)?.Items, parse.GetValue(iotlbs)?.Items,
            parse.GetValue(format), parse.GetValue(cpus), parse.GetValue(json), parse.GetValue(save),
            parse.GetValue(synthDmas) is int n ? new SynthDmas(n, parse.GetValue(seed) ?? SynthDmas.DefaultSeed) : null, ct));
        return command;
    }

    /// <summary>The values of a comma-separated option (a class: System.CommandLine gives array-typed options arity rules of their own).</summary>


    private async Task<int> ReplayAsync(Source source, string? runId, FlushPolicySpec[]? policies, int[]? iotlbs, PtFormatKind? format, int? cpus,
        string? jsonPath, string? saveId, SynthDmas? synth, CancellationToken ct)
    {
        (SimulationSettings Settings, List<PtActors.Engine.Dma.DomainBatch>[] Journal, RunEnded End)? toSave = null;
        string db = source.Name;
        var (file, failed) = await OpenAsync("replay", source, ct).ConfigureAwait(false);
        if (failed is int openRc)
            return openRc;
        using var opened = file;
        if (jsonPath is not null)
        {
            // Checked before anything is replayed; the file itself is written through a temporary one at the end.
            string full = Path.GetFullPath(jsonPath);
            if (Directory.Exists(full))
                return Usage("replay", $"--json '{jsonPath}': it is a directory");
            if (!Directory.Exists(Path.GetDirectoryName(full)))
                return Usage("replay", $"--json '{jsonPath}': no such directory");
        }
        int rc = await WithSystemAsync("replay", source, file, async system =>
        {
            var list = await RunVerifier.ListRunsAsync(system).ConfigureAwait(false);
            RunStarted? run;
            if (runId is not null)
            {
                run = list.Runs.FirstOrDefault(r => r.RunId == runId);
                if (run is null)
                    return Usage("replay", $"--run '{runId}': no such run in '{db}' (ptactors runs {source.Option} lists them)");
            }
            else if (list.Runs.Count == 1)
            {
                run = list.Runs[0];
            }
            else
            {
                return Usage("replay", list.Runs.Count == 0
                    ? $"'{db}' holds no run"
                    : $"'{db}' holds {list.Runs.Count} runs: choose one with --run ({string.Join(", ", list.Runs.Take(8).Select(r => r.RunId))}{(list.Runs.Count > 8 ? ", ..." : "")})");
            }

            LoadedRecording recording;
            var reading = Stopwatch.StartNew();
            try
            {
                recording = await RecordingReplay.LoadAsync(system, run, list.EndOf(run.RunId), ct).ConfigureAwait(false);
            }
            catch (FormatException e)
            {
                return Usage("replay", e.Message);
            }
            if (synth is not null && recording.Dmas is not null)
                return Usage("replay", $"--synth-dmas: run '{run.RunId}' has recorded DMAs (simulate --record-dmas), which are replayed: synthesized ones cannot be added");
            var recorded = recording.Recorded;
            if (recorded.Policy.Kind == FlushPolicyKind.Passthrough)
                return Usage("replay", $"run '{run.RunId}' ran under passthrough: without an IOMMU it journalled no operations, so there is nothing to replay");
            var variants = new List<ReplayVariant>();
            foreach (var policy in policies ?? [recorded.Policy])
            {
                foreach (int iotlb in iotlbs ?? [recorded.IotlbEntries])
                    variants.Add(new ReplayVariant(policy, iotlb, format ?? recorded.Format, cpus ?? recorded.Cpus));
            }

            var end = recording.End;
            string recordedHash = end is { Outcome: RunOutcome.Completed } ? end.TableHash : "";
            _stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"replaying {run.RunId} ({(end is null ? "interrupted" : end.Outcome == RunOutcome.Completed ? "completed" : "failed")}, " +
                $"{recording.Operations} operations in {recording.Recording.Domains.Count} domains{(recording.Dmas is null ? "" : $", {recording.DmaCount} recorded DMAs")}, read in {reading.Elapsed.TotalSeconds:0.00} s) recorded with {recorded}"));

            // The recorded configuration first: it must give the run's answers and tables, whatever else is asked.
            var check = Timed(recording, recorded, synth, ct);
            var results = new List<(ReplayVariant Variant, ReplayReport Report, double WallS)>();
            foreach (var v in variants)
                results.Add(v == recorded ? check : Timed(recording, v, synth, ct));

            string checkHash = DomainHashes.Canonical(check.Report.Tables);
            bool identical = Identical(check.Report, checkHash, recordedHash);
            _stdout.WriteLine(identical
                ? $"recorded configuration: identical (every answer as recorded{(recordedHash.Length > 0 ? ", table_hash " + checkHash : "; the run did not complete, so there is no final table_hash to compare")})"
                : $"recorded configuration: NOT identical: {Why(check.Report, checkHash, recordedHash)}");

            var rows = new List<string[]>();
            var header = new List<string> { "" };
            foreach (var (v, _, _) in results)
                header.Add(Label(v, recorded));
            rows.Add([.. header]);
            Row("invalidation commands", r => r.Stats.Invalidations.ToString(CultureInfo.InvariantCulture));
            Row("per unmap", r => (r.Unmaps == 0 ? 0 : (double)r.Stats.Invalidations / r.Unmaps).ToString("0.###", CultureInfo.InvariantCulture));
            Row("over-invalidated bytes", r => r.Stats.OverInvalidatedBytes.ToString(CultureInfo.InvariantCulture));
            Row("DMAs", r => Dma(r, r.Dmas ?? 0));
            Row("IOTLB hit rate", r => r.Dmas is null ? "-" : HitRate(r).ToString("0.0000", CultureInfo.InvariantCulture));
            Row("stale hits in window", r => Dma(r, r.Stats.StaleInWindow));
            Row("violations", r => Dma(r, r.Stats.StaleViolations));
            Row("use-after-free walks", r => Dma(r, r.Stats.UseAfterFree));
            Row("faults", r => Dma(r, r.Stats.Faults));
            Row("lock waits", r => r.LockWaits.ToString(CultureInfo.InvariantCulture));
            Row("table pages high-water", r => r.TablePagesMax.ToString(CultureInfo.InvariantCulture));
            Row("IOVA reused before flush", r => r.IovaReusedBeforeFlush.ToString(CultureInfo.InvariantCulture));
            Row("unmaps of nothing", r => r.UnmapNotMapped.ToString(CultureInfo.InvariantCulture));
            Row("maps refused", r => r.MapRefused.ToString(CultureInfo.InvariantCulture));
            Row("answers differing", r => r.ResultsDiffer.ToString(CultureInfo.InvariantCulture));
            Row("  of which IOVA only", r => r.IovaPlacedElsewhere.ToString(CultureInfo.InvariantCulture));
            rows.Add(["identical", .. results.Select(x => Identical(x.Report, DomainHashes.Canonical(x.Report.Tables), recordedHash) ? "yes" : "no")]);
            WriteColumns(rows);
            if (recording.Dmas is not null)
                _stdout.WriteLine("(DMAs: the run's, as its units translated them)");
            else if (synth is not null)
                _stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"(DMAs: synthesized, {synth.PerPage} per mapped 4 KiB page over each mapping's lifetime, seed {synth.Seed})"));
            else
                _stdout.WriteLine("(- : no DMAs were replayed: the recording has none and --synth-dmas was not given, so DMA figures are absent, not zero)");
            foreach (var (v, r, _) in results)
            {
                foreach (var (what, first) in new[] { ("IOVA reused before flush", r.FirstIovaReusedBeforeFlush), ("unmap of nothing", r.FirstUnmapNotMapped), ("map refused", r.FirstMapRefused) })
                {
                    if (first is { } f)
                        _stdout.WriteLine($"{Label(v, recorded)}: first {what}: {f}");
                }
            }

            if (jsonPath is not null)
            {
                string? failure = WriteReplayJson(jsonPath, run, recording, recordedHash, results);
                if (failure is not null)
                {
                    _stdout.Flush();
                    _stderr.WriteLine($"ptactors replay: cannot write --json file '{jsonPath}': {failure}");
                    return Program.ExitOutputError;
                }
            }
            if (saveId is not null)
            {
                if (list.Runs.Any(r => r.RunId == saveId))
                    return Usage("replay", $"--save '{saveId}': run id '{saveId}' is already in the database: choose another; nothing was written");
                var v = variants[0];
                var journal = new List<PtActors.Engine.Dma.DomainBatch>[recording.Recording.Domains.Count];
                for (int d = 0; d < journal.Length; d++)
                    journal[d] = new List<PtActors.Engine.Dma.DomainBatch>();
                var saved = RecordingReplay.Replay(recording, v, ct, journal);
                var settings = recording.Settings with { RunId = saveId, Policy = v.Policy, IotlbEntries = v.IotlbEntries, Format = v.Format, Cpus = v.Cpus, AckLogPath = null, RecordDmas = false };
                var savedEnd = RecordingStore.CompletedEnd(saveId, saved.Ops, saved.Tables, journal, saved.WindDown);
                toSave = (settings, journal, savedEnd);
            }
            return identical ? 0 : ExitNotVerified;

            void Row(string name, Func<ReplayReport, string> value)
            {
                var row = new List<string> { name };
                foreach (var (_, r, _) in results)
                    row.Add(value(r));
                rows.Add([.. row]);
            }
        }).ConfigureAwait(false);
        if (toSave is not { } save || rc is not (0 or ExitNotVerified))
            return rc;
        // The reading system is gone: the database is opened for writing only now, for the saved run.
        int saveRc = await SaveReplayAsync(source, save.Settings, save.Journal, save.End, ct).ConfigureAwait(false);
        return saveRc != 0 ? saveRc : rc;
    }

    private async Task<int> SaveReplayAsync(Source source, SimulationSettings settings, List<PtActors.Engine.Dma.DomainBatch>[] journal, RunEnded end, CancellationToken ct)
    {
        int stored = await StoreRecordingAsync("replay", source, settings, journal, end, $"cannot save run {settings.RunId} to '{source.Name}'", ct).ConfigureAwait(false);
        if (stored != 0)
            return stored;
        long events = 0;
        foreach (var j in journal)
            events += j.Count;
        _stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"saved as run {settings.RunId} ({settings.Describe()}): {events} events, table_hash {end.TableHash}"));
        return 0;
    }

    private static (ReplayVariant Variant, ReplayReport Report, double WallS) Timed(LoadedRecording recording, ReplayVariant variant, SynthDmas? synth, CancellationToken ct)
    {
        var wall = Stopwatch.StartNew();
        var report = RecordingReplay.Replay(recording, variant, ct, synth: synth);
        return (variant, report, wall.Elapsed.TotalSeconds);
    }

    /// <summary>A DMA count of a replay, or "-" when it had no DMAs.</summary>
    private static string Dma(ReplayReport r, long value) => r.Dmas is null ? "-" : value.ToString(CultureInfo.InvariantCulture);

    /// <summary>The IOTLB hit rate as <c>simulate</c> computes it (0 without lookups).</summary>
    private static double HitRate(ReplayReport r)
        => r.Stats.Hits + r.Stats.Misses == 0 ? 0 : (double)r.Stats.Hits / (r.Stats.Hits + r.Stats.Misses);

    /// <summary>A column title: what differs from the recorded configuration (or "recorded").</summary>
    private static string Label(ReplayVariant v, ReplayVariant recorded)
    {
        var parts = new List<string>();
        if (v.Policy != recorded.Policy || v == recorded)
            parts.Add(v.Policy.ToString());
        if (v.IotlbEntries != recorded.IotlbEntries)
            parts.Add("iotlb=" + v.IotlbEntries.ToString(CultureInfo.InvariantCulture));
        if (v.Format != recorded.Format)
            parts.Add(PtFormatOps.For(v.Format).Name);
        if (v.Cpus != recorded.Cpus)
            parts.Add("cpus=" + v.Cpus.ToString(CultureInfo.InvariantCulture));
        return string.Join(' ', parts) + (v == recorded ? " (recorded)" : "");
    }

    private static bool Identical(ReplayReport r, string tableHash, string recordedHash)
        => r.ResultsDiffer == 0 && r.Unmatched == 0 && (recordedHash.Length == 0 || tableHash == recordedHash);

    private static string Why(ReplayReport r, string tableHash, string recordedHash)
    {
        var why = new List<string>();
        if (r.FirstDifference is { } first)
            why.Add($"{r.ResultsDiffer} answers differ, the first: {first}");
        if (r.Unmatched > 0)
            why.Add($"{r.Unmatched} operations answered in one and not the other");
        if (recordedHash.Length > 0 && tableHash != recordedHash)
            why.Add($"table_hash {tableHash} (recorded {recordedHash})");
        return string.Join("; ", why);
    }

    /// <summary>Writes the comparison as JSON (through a temporary file renamed over <paramref name="path"/>); the failure, or null.</summary>
    private static string? WriteReplayJson(string path, RunStarted run, LoadedRecording recording, string recordedHash,
        List<(ReplayVariant Variant, ReplayReport Report, double WallS)> results)
    {
        string full = Path.GetFullPath(path);
        string temp = Path.Combine(Path.GetDirectoryName(full) ?? ".", "." + Path.GetFileName(full) + "." +
            Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "." + System.Security.Cryptography.RandomNumberGenerator.GetHexString(8, lowercase: true) + ".tmp");
        try
        {
            if (Directory.Exists(full))
                return "it is a directory";
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
                {
                    json.WriteStartObject();
                    json.WriteString("run_id", run.RunId);
                    json.WriteString("recorded_config", run.Config);
                    if (recordedHash.Length > 0)
                        json.WriteString("recorded_table_hash", recordedHash);
                    else
                        json.WriteNull("recorded_table_hash");
                    json.WriteStartArray("runs");
                    foreach (var (v, r, wall) in results)
                    {
                        string hash = DomainHashes.Canonical(r.Tables);
                        json.WriteStartObject();
                        json.WriteString("policy", v.Policy.ToString());
                        json.WriteNumber("iotlb", v.IotlbEntries);
                        json.WriteString("format", PtFormatOps.For(v.Format).Name);
                        json.WriteNumber("cpus", v.Cpus);
                        json.WriteBoolean("identical", Identical(r, hash, recordedHash));
                        json.WriteNumber("answers_differing", r.ResultsDiffer);
                        json.WriteNumber("answers_differing_in_iova_only", r.IovaPlacedElsewhere);
                        json.WriteNumber("iova_reused_before_flush", r.IovaReusedBeforeFlush);
                        json.WriteNumber("unmaps_of_nothing", r.UnmapNotMapped);
                        json.WriteNumber("maps_refused", r.MapRefused);
                        foreach (var (key, value) in SimulationFigures.Of(Figures(recording, v, r, hash, wall)))
                        {
                            if (key is "run_id")
                                continue;
                            SimulationFigures.WriteValue(json, key, r.Dmas is null && NoDmas.Contains(key) ? null : value);
                        }
                        json.WriteEndObject();
                    }
                    json.WriteEndArray();
                    json.WriteEndObject();
                }
                stream.WriteByte((byte)'\n');
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            try
            {
                File.Delete(temp);
            }
            catch (Exception cleanup) when (cleanup is IOException or UnauthorizedAccessException)
            {
                // The temporary file stays; the error below is what matters.
            }
            return e.Message;
        }
    }

    /// <summary>Keys that only DMAs produce: null in a replay without DMAs (absent, not zero), the replay's figures with them.</summary>
    private static readonly HashSet<string> NoDmas = new(StringComparer.Ordinal)
    {
        "dmas", "iotlb_hit_rate", "stale_in_window", "stale_violations", "use_after_free", "isolation_breaches", "faults",
    };

    /// <summary>A replay's figures under the keys <c>simulate --json</c> writes.</summary>
    private static SimulationResult Figures(LoadedRecording recording, ReplayVariant v, ReplayReport r, string tableHash, double wall) => new()
    {
        RunId = recording.Run.RunId,
        Unsafe = recording.Settings.Unsafe,
        Ops = r.Ops,
        Dmas = r.Dmas ?? 0,
        IotlbHitRate = HitRate(r),
        StaleInWindow = r.Stats.StaleInWindow,
        StaleViolations = r.Stats.StaleViolations,
        UseAfterFree = r.Stats.UseAfterFree,
        IsolationBreaches = r.Stats.IsolationBreaches,
        Faults = r.Stats.Faults,
        OpsPerSec = r.Ops / Math.Max(wall, 1e-9),
        WallS = wall,
        SimS = r.Windows * (double)recording.Recording.WindowNs / 1e9,
        Maps = r.Maps,
        Unmaps = r.Unmaps,
        BytesMapped = r.BytesMapped,
        Invalidations = r.Stats.Invalidations,
        InvalidationsPerUnmap = r.Unmaps == 0 ? 0 : (double)r.Stats.Invalidations / r.Unmaps,
        OverInvalidatedBytes = r.Stats.OverInvalidatedBytes,
        LockWaitP50Us = RecordingReplay.LockWaitPercentile(r, 0.50),
        LockWaitP99Us = RecordingReplay.LockWaitPercentile(r, 0.99),
        LockWaits = r.LockWaits,
        TablePagesMax = r.TablePagesMax,
        TableHash = tableHash,
        MemoryHash = DomainHashes.Memory(r.Tables),
        Errors = r.Errors,
    };
}
