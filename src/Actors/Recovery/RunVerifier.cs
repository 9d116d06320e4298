using Akka.Actor;
using PtActors.Engine;
using PtActors.Engine.Dma;
using PtActors.Engine.Formats;
using PtActors.Persistence;
using PtActors.Persistence.Runs;

namespace PtActors.Actors;

/// <summary>What <see cref="RunVerifier.VerifyAsync"/> found for one run.</summary>
/// <param name="RunId">The run.</param>
/// <param name="Domains">Domains recovered.</param>
/// <param name="Events">Events in their journals.</param>
/// <param name="Ops">Operations in those events.</param>
/// <param name="TableHash">The canonical hash of the recovered tables (<c>table_hash</c>); empty when a domain could not be recovered.</param>
/// <param name="MemoryHash">The hash of the recovered table memory (<c>memory_hash</c>).</param>
/// <param name="AckedChecked">Acknowledged operations checked against the journals (0 without an ack log).</param>
/// <param name="AckedMissing">Of those, how many the journals do not hold: operations lost after their acknowledgement.</param>
/// <param name="Problems">What is wrong; empty when the run verifies.</param>
public sealed record VerifyReport(string RunId, int Domains, long Events, long Ops, string TableHash, string MemoryHash, long AckedChecked,
    long AckedMissing, IReadOnlyList<string> Problems)
{
    /// <summary>DMAs in the units' DMA journals of a <c>simulate --record-dmas</c> run; null when the run recorded none.</summary>
    public long? Dmas { get; init; }

    /// <summary>True when nothing is wrong.</summary>
    public bool Ok => Problems.Count == 0;
}

/// <summary>
/// Reads the recordings in a database back: the runs its registry lists, and every domain of a run recovered
/// twice — from its latest snapshot plus the events after it, and from the events alone — then compared and
/// audited (<see cref="DomainAudit"/>). Never writes.
/// </summary>
public static class RunVerifier
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(10);

    /// <summary>Every run the registry of <paramref name="system"/>'s journal holds, with the ends recorded.</summary>
    public static async Task<RunList> ListRunsAsync(ActorSystem system)
    {
        var failed = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var registry = system.ActorOf(RunRegistry.ReaderProps(m => failed.TrySetResult(m)));
        try
        {
            var asked = registry.Ask<RunList>(GetRuns.Instance, Timeout);
            if (await Task.WhenAny(asked, failed.Task).ConfigureAwait(false) == failed.Task)
                throw new InvalidDataException(await failed.Task.ConfigureAwait(false));
            return await asked.ConfigureAwait(false);
        }
        finally
        {
            system.Stop(registry);
        }
    }

    /// <summary>
    /// Recovers and checks every domain of <paramref name="run"/>. With <paramref name="end"/> of a completed run,
    /// the recovered hashes must equal those the run recorded; with <paramref name="acked"/> (domain index →
    /// acknowledged operation ids), every acknowledged operation must be in its domain's journal.
    /// </summary>
    public static async Task<VerifyReport> VerifyAsync(ActorSystem system, RunStarted run, RunEnded? end,
        IReadOnlyDictionary<int, List<long>>? acked = null)
    {
        var problems = new List<string>();
        string config = run.Config;
        if (!int.TryParse(SimulationSettings.ValueOf(config, "domains"), out int domains) || domains < 0
            || SimulationSettings.ValueOf(config, "format") is not { } formatName || PtFormatOps.Parse(formatName) is not { } format)
        {
            problems.Add($"the registry holds no usable configuration for this run ('{config}')");
            return new VerifyReport(run.RunId, 0, 0, 0, "", "", 0, 0, problems);
        }
        var defaults = new DomainActor.Settings(run.RunId, "", PtConfig.Default(format));
        // A completed run's end (version 3 on) records each domain's journal length and memory hash: a journal that
        // lost, gained or changed events is then named by its domain, not only by the run's hashes.
        var recorded = end is { Outcome: RunOutcome.Completed } ? end.Domains : [];
        if (recorded.Count != 0 && recorded.Count != domains)
        {
            problems.Add($"the run's end records {recorded.Count} domains, its configuration {domains}");
            recorded = [];
        }
        var fromEvents = new Dictionary<string, IommuDomain>(StringComparer.Ordinal);
        long events = 0, ops = 0, ackedChecked = 0, ackedMissing = 0;
        for (int d = 0; d < domains; d++)
        {
            string name = SimulationSettings.DomainName(d);
            string pid = PersistenceIds.For(run.RunId, name);
            RecoveredDomain full, tail;
            try
            {
                full = await RecoverAsync(system, pid, name, defaults, fromSnapshot: false, collectIds: acked is not null).ConfigureAwait(false);
                tail = await RecoverAsync(system, pid, name, defaults, fromSnapshot: true, collectIds: false).ConfigureAwait(false);
            }
            catch (Exception e) when (e is InvalidOperationException or ArgumentException or AskTimeoutException)
            {
                problems.Add($"{name}: {e.Message}");
                continue;
            }
            events += full.Events;
            ops += full.Ops;
            fromEvents[name] = full.Model.Domain;

            string a = MemoryHash(name, full.Model), b = MemoryHash(name, tail.Model);
            if (a != b)
                problems.Add($"{name}: the table memory recovered from snapshot {tail.SnapshotSequenceNr} plus {tail.Events} events differs from the one recovered from the {full.Events} events alone");
            foreach (var p in DomainAudit.Check(full.Model))
                problems.Add($"{name}: {p}");
            if (a == b)
            {
                foreach (var p in CompareState(full.Model, tail.Model))
                    problems.Add($"{name}: snapshot+tail and events alone disagree: {p}");
            }
            if (recorded.Count != 0)
            {
                var wrote = recorded[d];
                if (full.LastSequenceNr != wrote.Events || full.Events != wrote.Events)
                    problems.Add($"{name}: its journal holds {full.Events} events (last sequence number {full.LastSequenceNr}); the run wrote {wrote.Events}");
                else if (DomainHashes.PrefixOf(a) != wrote.MemoryHash)
                    problems.Add($"{name}: the table memory recovered from its {full.Events} events (hash {a[..16]}) differs from the run's ({wrote.HashText}): an event was changed");
            }
            if (acked is not null && acked.TryGetValue(d, out var ids))
            {
                long missing = 0;
                long first = 0;
                foreach (long id in ids)
                {
                    ackedChecked++;
                    if (!full.OpIds!.Contains(id))
                    {
                        if (missing++ == 0)
                            first = id;
                    }
                }
                ackedMissing += missing;
                if (missing > 0)
                    problems.Add($"{name}: {missing} acknowledged operations are not in the journal (the first: device {first >> 32} op {(uint)first})");
            }
        }
        if (acked is not null)
        {
            foreach (int d in acked.Keys)
            {
                if (d < 0 || d >= domains)
                    problems.Add($"the ack log names domain {d}, which the run does not have");
            }
        }
        long? dmas = SimulationSettings.ValueOf(config, "record-dmas") == "true"
            ? await CheckDmaJournalsAsync(system, run, problems).ConfigureAwait(false)
            : null;
        // Hashes of a run some of whose domains could not be recovered would not be the run's: none then.
        bool complete = fromEvents.Count == domains;
        string tableHash = complete ? DomainHashes.Canonical(fromEvents) : "";
        string memoryHash = complete ? DomainHashes.Memory(fromEvents) : "";
        // Checked per domain above when the end says what each held; the run's own hashes then add nothing.
        if (end is { Outcome: RunOutcome.Completed } && problems.Count == 0)
        {
            if (end.TableHash != tableHash)
                problems.Add($"the recovered table_hash {tableHash} differs from the run's {end.TableHash}");
            if (end.MemoryHash.Length > 0 && end.MemoryHash != memoryHash)
                problems.Add($"the recovered memory_hash {memoryHash} differs from the run's {end.MemoryHash}");
        }
        return new VerifyReport(run.RunId, domains, events, ops, tableHash, memoryHash, ackedChecked, ackedMissing, problems) { Dmas = dmas };
    }

    /// <summary>
    /// Reads every unit's DMA journal of a <c>simulate --record-dmas</c> run (as <c>replay</c> reads them) and checks
    /// that each decodes, that its windows increase, and that each DMA comes from a device of a domain on that unit;
    /// the DMAs in them, or null when a journal could not be read.
    /// </summary>
    private static async Task<long?> CheckDmaJournalsAsync(ActorSystem system, RunStarted run, List<string> problems)
    {
        RunTopology topology;
        try
        {
            topology = new RunTopology(RecordingReplay.SettingsOf(run));
        }
        catch (FormatException e)
        {
            problems.Add(e.Message);
            return null;
        }
        long dmas = 0;
        bool complete = true;
        foreach (var lane in topology.Lanes)
        {
            string id = RecordingReplay.DmaJournalId(run.RunId, lane.Index);
            List<PtActors.Engine.Replay.WindowDmas> windows;
            try
            {
                windows = await PtActors.Persistence.Recordings.ReadWindowDmasAsync(system, id).WaitAsync(Timeout).ConfigureAwait(false);
            }
            catch (Exception e) when (e is InvalidDataException or TimeoutException)
            {
                problems.Add($"{lane.UnitName}: its DMA journal cannot be read: {e.Message}");
                complete = false;
                continue;
            }
            var devices = new HashSet<int>();
            foreach (var domain in lane.Domains)
                devices.UnionWith(domain.Devices);
            long previous = 0;
            for (int i = 0; i < windows.Count; i++)
            {
                var w = windows[i];
                if (w.Window <= previous)
                {
                    problems.Add($"{id} event {i + 1}: window {w.Window} after window {previous}");
                    break;
                }
                previous = w.Window;
                foreach (var dma in w.Items)
                {
                    if (!devices.Contains(dma.Device))
                    {
                        problems.Add($"{id} event {i + 1}: a DMA of device {dma.Device}, which is attached to no domain of {lane.UnitName}");
                        break;
                    }
                }
                dmas += w.Items.Length;
            }
        }
        return complete ? dmas : null;
    }

    private static async Task<RecoveredDomain> RecoverAsync(ActorSystem system, string pid, string name, DomainActor.Settings s, bool fromSnapshot, bool collectIds)
    {
        var done = new TaskCompletionSource<RecoveredDomain>(TaskCreationOptions.RunContinuationsAsynchronously);
        system.ActorOf(DomainRecoveryActor.Props(pid, name, s.Config, s.IovaStart, s.IovaLimit, fromSnapshot, collectIds, done));
        return await done.Task.WaitAsync(Timeout).ConfigureAwait(false);
    }

    private static string MemoryHash(string name, DomainModel model)
        => DomainHashes.Memory([new KeyValuePair<string, IommuDomain>(name, model.Domain)]);

    /// <summary>Differences between two models' bookkeeping (mappings, parked unmaps, IOVA allocator, locks), at most a few.</summary>
    private static List<string> CompareState(DomainModel x, DomainModel y)
    {
        var a = x.Capture();
        var b = y.Capture();
        var diffs = new List<string>();
        if (!SameSet(a.Mappings, b.Mappings, static m => m.Iova))
            diffs.Add("live mappings");
        if (!SameSet(a.Parked, b.Parked, static p => p.Id, static (p, q) => p.Iova == q.Iova && p.Unmapped == q.Unmapped
                && p.AllocatedIova == q.AllocatedIova && p.AllocatedSize == q.AllocatedSize && p.Pages.AsSpan().SequenceEqual(q.Pages)))
            diffs.Add("parked unmaps");
        if (a.IovaNext != b.IovaNext || a.IovaAllocatedBytes != b.IovaAllocatedBytes || a.IovaCaches.Length != b.IovaCaches.Length)
            diffs.Add("IOVA allocator");
        else
        {
            for (int i = 0; i < a.IovaCaches.Length; i++)
            {
                if (!a.IovaCaches[i].AsSpan().SequenceEqual(b.IovaCaches[i]))
                {
                    diffs.Add("IOVA allocator caches");
                    break;
                }
            }
        }
        if (!SameSet(a.HeldLocks, b.HeldLocks, static l => l.Id) || !a.WaitingLocks.AsSpan().SequenceEqual(b.WaitingLocks))
            diffs.Add("range locks");
        if (a.MappedBytes != b.MappedBytes)
            diffs.Add("mapped bytes");
        return diffs;
    }

    private static bool SameSet<T, TKey>(T[] a, T[] b, Func<T, TKey> key, Func<T, T, bool>? equal = null) where TKey : notnull
    {
        if (a.Length != b.Length)
            return false;
        var byKey = new Dictionary<TKey, T>(a.Length);
        foreach (var item in a)
            byKey[key(item)] = item;
        foreach (var item in b)
        {
            if (!byKey.TryGetValue(key(item), out var other))
                return false;
            if (equal is null ? !EqualityComparer<T>.Default.Equals(item, other) : !equal(item, other))
                return false;
        }
        return true;
    }
}
