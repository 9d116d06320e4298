using System.Runtime.InteropServices;
using PtActors.Engine.Dma;
using PtActors.Engine.Hardware;

namespace PtActors.Engine.Replay;

/// <summary>One domain of a recording: its journal's batches in order, and the devices attached to it.</summary>
/// <param name="Name">The domain's name (<c>dom0003</c>).</param>
/// <param name="Devices">The devices attached to it, in the run's order (the k-th unmaps on CPU k mod cpus).</param>
/// <param name="Batches">Its journal: every batch, in sequence order.</param>
public sealed record RecordedDomain(string Name, int[] Devices, IReadOnlyList<DomainBatch> Batches);

/// <summary>
/// A recording as the replay needs it: the run's shape (domain d on unit d mod <paramref name="Iommus"/>) and each
/// domain's journal.
/// </summary>
/// <param name="Format">The page-table format it was recorded with.</param>
/// <param name="Iommus">IOMMU units.</param>
/// <param name="WindowNs">The run's window length.</param>
/// <param name="Domains">Every domain, in domain order.</param>
/// <param name="WindDown">How each lane wound down (a completed run); null: not recorded (an interrupted run), every lane then drains once after its last window.</param>
public sealed record Recording(PtFormatKind Format, int Iommus, ulong WindowNs, IReadOnlyList<RecordedDomain> Domains, IReadOnlyList<LaneWindDown>? WindDown);

/// <summary>What to replay a recording under.</summary>
/// <param name="Format">The page-table format of the replay's domains.</param>
/// <param name="Unit">The units' configuration: policy, CPUs, IOTLB size, deliberately broken behaviour.</param>
/// <param name="ApplyRecordedHardwareWrites">
/// Apply the accessed/dirty bits the run's DMAs wrote (journalled with each batch). Only meaningful when the
/// replay's tables evolve as the run's did (same format, policy and CPUs: the writes name table pages by number).
/// </param>
/// <param name="CompareWithRecording">Compare every answer with the run's (false: the recording's batches carry no answers to compare with, e.g. an imported trace).</param>
/// <param name="Journal">If set, one list per domain receives the batches the replay applied, as a domain actor would journal them (window, final flag, releases, operations, digest).</param>
/// <param name="Results">If set, one list per domain receives the replay's answers, in the order the domain gave them.</param>
/// <param name="RecordedDmas">If set, the DMAs each unit translated in the run (one list per unit, in window order), fed to the replay's units window by window.</param>
/// <param name="Synth">If set, DMAs synthesized over the replay's own mappings (not with <paramref name="RecordedDmas"/>).</param>
public sealed record ReplayConfig(PtFormatKind Format, IommuUnitConfig Unit, bool ApplyRecordedHardwareWrites, bool CompareWithRecording = true,
    List<DomainBatch>[]? Journal = null, List<DmaOpResult>[]? Results = null,
    IReadOnlyList<IReadOnlyList<WindowDmas>>? RecordedDmas = null, SynthDmas? Synth = null);

/// <summary>An operation whose replay differs from the recording.</summary>
/// <param name="Domain">The domain's name.</param>
/// <param name="Recorded">What the run answered.</param>
/// <param name="Replayed">What the replay answered.</param>
public readonly record struct ReplayDifference(string Domain, DmaOpResult Recorded, DmaOpResult Replayed)
{
    /// <summary>The domain's index in the run (orders differences found by lanes replayed in parallel).</summary>
    public int DomainIndex { get; init; }

    /// <summary>The window of the batch being applied when the difference showed.</summary>
    public long Window { get; init; }

    /// <summary>Whether this difference comes before <paramref name="other"/> (by window, then domain).</summary>
    public bool Before(in ReplayDifference other) => Window != other.Window ? Window < other.Window : DomainIndex < other.DomainIndex;

    /// <summary>One line: the operation (device and sequence number), its kind and both answers.</summary>
    public override string ToString()
    {
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        return string.Create(inv, $"{Domain} op {Recorded.Id >> 32}:{(uint)Recorded.Id} {Recorded.Kind}: recorded {Describe(Recorded)}, replayed {Describe(Replayed)}");

        static string Describe(in DmaOpResult r) => string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"{(r.Error == Errno.None ? "ok" : r.Error.ToString())} iova=0x{r.Iova:x} bytes={r.Bytes} lock_wait_ns={r.LockWaitNs}");
    }
}

/// <summary>What one replay did and how it compares with the recording.</summary>
public sealed class ReplayReport
{
    /// <summary>Map and unmap calls answered.</summary>
    public long Ops { get; internal set; }
    public long Maps { get; internal set; }
    public long Unmaps { get; internal set; }
    public ulong BytesMapped { get; internal set; }
    /// <summary>Map and unmap calls answered with an error.</summary>
    public long Errors { get; internal set; }
    /// <summary>Operations that waited for a range lock.</summary>
    public long LockWaits { get; internal set; }
    /// <summary>
    /// Operations that take a range lock (every kind but a DMA-API map), by wait: bucket 0 below 1 µs, bucket b
    /// from 2^(b−1) µs (as <c>simulate</c> counts them, for the same percentiles).
    /// </summary>
    public long[] LockWaitHistogram { get; } = new long[LockWaitBuckets];

    /// <summary>Buckets of <see cref="LockWaitHistogram"/>.</summary>
    public const int LockWaitBuckets = 40;
    /// <summary>The units' counters, summed (the DMA ones — hits, misses, stale hits, use-after-free walks, faults — count only when <see cref="Dmas"/> is set).</summary>
    public IommuUnitStats Stats { get; } = new();
    /// <summary>DMAs the units translated; null when the replay had none to feed them (its DMA figures are absent, not zero).</summary>
    public long? Dmas { get; internal set; }
    /// <summary>Table pages of every domain at the end of the fullest window.</summary>
    public long TablePagesMax { get; internal set; }
    /// <summary>Windows replayed.</summary>
    public long Windows { get; internal set; }
    /// <summary>The replay's domains at the end, by name (for <see cref="DomainHashes"/>).</summary>
    public Dictionary<string, IommuDomain> Tables { get; } = new(StringComparer.Ordinal);

    /// <summary>Operations whose answer differs from the recording in any field (the IOVA a dma_map got included).</summary>
    public long ResultsDiffer { get; internal set; }
    /// <summary>The first of those, in replay order.</summary>
    public ReplayDifference? FirstDifference { get; internal set; }
    /// <summary>DMA-API maps whose answer differs only in the IOVA the allocator chose (expected under another policy: IOVAs come back at other times).</summary>
    public long IovaPlacedElsewhere { get; internal set; }
    /// <summary>Explicit maps that waited for an earlier unmap's flush the run did not wait for: the recorded order reuses the IOVA before its flush completes under this configuration.</summary>
    public long IovaReusedBeforeFlush { get; internal set; }
    public ReplayDifference? FirstIovaReusedBeforeFlush { get; internal set; }
    /// <summary>Unmaps that removed something in the run and nothing in the replay.</summary>
    public long UnmapNotMapped { get; internal set; }
    public ReplayDifference? FirstUnmapNotMapped { get; internal set; }
    /// <summary>Maps that succeeded in the run and fail in the replay (the format cannot hold them, or what they needed is not there).</summary>
    public long MapRefused { get; internal set; }
    public ReplayDifference? FirstMapRefused { get; internal set; }
    /// <summary>Operations answered in one and not (yet) in the other when the replay ended.</summary>
    public long Unmatched { get; internal set; }

    /// <summary>Where each lane drained (the recorded wind-down, or after the last recorded window): what a recording of this replay keeps.</summary>
    public IReadOnlyList<LaneWindDown> WindDown { get; internal set; } = [];

    /// <summary>Counts the replay's answers.</summary>
    internal void Count(ReadOnlySpan<DmaOpResult> results)
    {
        foreach (ref readonly var r in results)
        {
            if (r.Kind is DmaOpKind.DmaMap or DmaOpKind.Map)
            {
                Maps++;
                if (r.Error == Errno.None)
                    BytesMapped += r.Bytes;
            }
            else if (r.Kind == DmaOpKind.Unmap)
            {
                Unmaps++;
            }
            if (r.Kind is DmaOpKind.DmaMap or DmaOpKind.Map or DmaOpKind.Unmap)
                Ops++;
            if (r.Error != Errno.None)
                Errors++;
            if (r.Kind == DmaOpKind.DmaMap)
                continue;   // a DMA-API map allocates its IOVA and takes no range lock
            if (r.LockWaitNs > 0)
                LockWaits++;
            ulong us = r.LockWaitNs / 1000;
            LockWaitHistogram[us == 0 ? 0 : Math.Min(LockWaitBuckets - 1, 64 - System.Numerics.BitOperations.LeadingZeroCount(us))]++;
        }
    }

    /// <summary>Counts an answer that differs from the run's, by what it means.</summary>
    internal void Differ(in ReplayDifference difference)
    {
        var r = difference.Recorded;
        var p = difference.Replayed;
        ResultsDiffer++;
        First(FirstDifference, difference, v => FirstDifference = v);
        switch (r.Kind)
        {
            case DmaOpKind.DmaMap or DmaOpKind.Map when r.Error == Errno.None && p.Error != Errno.None:
                MapRefused++;
                First(FirstMapRefused, difference, v => FirstMapRefused = v);
                break;
            case DmaOpKind.DmaMap when p.Error == Errno.None && r.Iova != p.Iova && r with { Iova = p.Iova } == p:
                IovaPlacedElsewhere++;
                break;
            case DmaOpKind.Map when p.Error == Errno.None && p.LockWaitNs > r.LockWaitNs:
                IovaReusedBeforeFlush++;
                First(FirstIovaReusedBeforeFlush, difference, v => FirstIovaReusedBeforeFlush = v);
                break;
            case DmaOpKind.Unmap when r.Bytes > 0 && p.Bytes == 0:
                UnmapNotMapped++;
                First(FirstUnmapNotMapped, difference, v => FirstUnmapNotMapped = v);
                break;
        }
    }

    private static void First(ReplayDifference? current, in ReplayDifference candidate, Action<ReplayDifference> set)
    {
        if (current is not { } c || candidate.Before(c))
            set(candidate);
    }

    /// <summary>Adds another lane's report (tables, counts, firsts).</summary>
    internal void Add(ReplayReport lane)
    {
        Ops += lane.Ops;
        Maps += lane.Maps;
        Unmaps += lane.Unmaps;
        BytesMapped += lane.BytesMapped;
        Errors += lane.Errors;
        LockWaits += lane.LockWaits;
        for (int i = 0; i < LockWaitBuckets; i++)
            LockWaitHistogram[i] += lane.LockWaitHistogram[i];
        Stats.Add(lane.Stats);
        if (lane.Dmas is long dmas)
            Dmas = (Dmas ?? 0) + dmas;
        Windows = Math.Max(Windows, lane.Windows);
        foreach (var (name, table) in lane.Tables)
            Tables[name] = table;
        ResultsDiffer += lane.ResultsDiffer;
        IovaPlacedElsewhere += lane.IovaPlacedElsewhere;
        IovaReusedBeforeFlush += lane.IovaReusedBeforeFlush;
        UnmapNotMapped += lane.UnmapNotMapped;
        MapRefused += lane.MapRefused;
        Unmatched += lane.Unmatched;
        if (lane.FirstDifference is { } a) First(FirstDifference, a, v => FirstDifference = v);
        if (lane.FirstIovaReusedBeforeFlush is { } b) First(FirstIovaReusedBeforeFlush, b, v => FirstIovaReusedBeforeFlush = v);
        if (lane.FirstUnmapNotMapped is { } c) First(FirstUnmapNotMapped, c, v => FirstUnmapNotMapped = v);
        if (lane.FirstMapRefused is { } m) First(FirstMapRefused, m, v => FirstMapRefused = v);
    }
}

/// <summary>
/// Replays a recording open-loop through fresh domains and units: each domain's journalled operations are
/// applied in the windows the run applied them in, in their journal order, and the units run the notices, flush
/// policies and timeouts as the simulator's units do; releases come from the replay's own units, not from the
/// journal. A lane (a unit and its domains) shares nothing with another, so lanes replay in parallel.
/// <para>
/// The run's answers: when the replay builds the run's tables (same format, policy and CPUs), each batch's answers
/// are compared through the digest the journal recorded for it; at the first batch whose digest differs, the
/// replay starts again comparing answer by answer. Under any other configuration a second model per domain
/// recovers the journal in lockstep and gives the run's answer to every operation, and the report counts what
/// the recorded order cannot do under the replay's configuration.
/// </para>
/// <para>
/// DMA-API maps take their IOVA from the replay's allocator; an unmap of a buffer whose IOVA the replay placed
/// elsewhere is sent to the replay's IOVA (a driver unmaps the handle it got).
/// </para>
/// <para>
/// DMAs: the run's (<see cref="ReplayConfig.RecordedDmas"/>) go to their unit in the window they were translated in;
/// synthesized ones (<see cref="ReplayConfig.Synth"/>) come from a first pass that replays without DMAs to learn
/// when each mapping lives (DMAs do not change what the domains answer), then the replay runs again with them.
/// Without either the units translate nothing and <see cref="ReplayReport.Dmas"/> stays null: the DMA figures of
/// such a replay are absent, not zero.
/// </para>
/// </summary>
public static class Replayer
{
    private const ulong IovaStart = 0x1000, IovaLimit = 0xffff_ffff;
    private const int BootDomainId = int.MaxValue;

    /// <summary>Windows a replay winds down at most after the recorded ones, as the simulator's lanes do.</summary>
    public const int MaxQuietWindows = 10_000;

    /// <summary>Replays <paramref name="recording"/> under <paramref name="config"/>.</summary>
    /// <exception cref="ReplayException">The recording cannot be replayed (named: domain and event).</exception>
    public static ReplayReport Run(Recording recording, ReplayConfig config, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(recording);
        ArgumentNullException.ThrowIfNull(config);
        if (recording.Iommus <= 0)
            throw new ArgumentException($"a recording needs at least one IOMMU unit, not {recording.Iommus}");
        long last = LastWindow(recording);
        if (config.Journal is { } journal && journal.Length != recording.Domains.Count)
            throw new ArgumentException($"the journal has {journal.Length} lists for {recording.Domains.Count} domains");
        if (config.Results is { } results && results.Length != recording.Domains.Count)
            throw new ArgumentException($"the results have {results.Length} lists for {recording.Domains.Count} domains");
        if (config.RecordedDmas is { } recorded && config.Synth is not null)
            throw new ArgumentException("a replay feeds recorded or synthesized DMAs, not both");
        if (config.RecordedDmas is { } units && units.Count > recording.Iommus)
            throw new ArgumentException($"the recorded DMAs name {units.Count} units; the recording has {recording.Iommus}");
        if (config.Synth is { PerPage: < 1 or > SynthDmas.MaxPerPage } s)
            throw new ArgumentException($"synthesized DMAs per page must be 1 to {SynthDmas.MaxPerPage}, not {s.PerPage}");
        List<SynthMapping>[]? mappings = null;
        if (config.Synth is not null)
        {
            // First pass: the replay without DMAs, to learn each mapping's lifetime under this configuration.
            mappings = new List<SynthMapping>[recording.Iommus];
            RunAll(recording, config with { Journal = null, Results = null, Synth = null }, last, null, mappings, cancellationToken);
        }
        return RunAll(recording, config, last, mappings, null, cancellationToken);
    }

    /// <summary>Replays by digest when it can, else (or when the digests differ) answer by answer.</summary>
    private static ReplayReport RunAll(Recording recording, ReplayConfig config, long last, List<SynthMapping>[]? synth, List<SynthMapping>[]? collect, CancellationToken ct)
    {
        if (config.ApplyRecordedHardwareWrites && config.CompareWithRecording)
        {
            try
            {
                return RunLanes(recording, config, last, byDigest: true, synth, collect, ct);
            }
            catch (DigestMismatch)
            {
                // Not the run's answers: replay again, answer by answer, to say which differ and how.
            }
        }
        return RunLanes(recording, config, last, byDigest: false, synth, collect, ct);
    }

    /// <summary>The last window any domain's journal has a batch in (checking that every batch has one, in order).</summary>
    private static long LastWindow(Recording rec)
    {
        long last = 0;
        foreach (var d in rec.Domains)
        {
            long previous = 0;
            for (int i = 0; i < d.Batches.Count; i++)
            {
                long w = d.Batches[i].Window;
                if (w <= 0)
                    throw new ReplayException($"{d.Name} event {i + 1} has no window: it was recorded before batches carried theirs (domain-batch version 4), so it cannot be replayed");
                if (w < previous)
                    throw new ReplayException($"{d.Name} event {i + 1} is of window {w}, after an event of window {previous}");
                previous = w;
            }
            last = Math.Max(last, previous);
        }
        return last;
    }

    private static ReplayReport RunLanes(Recording rec, ReplayConfig cfg, long last, bool byDigest, List<SynthMapping>[]? synth, List<SynthMapping>[]? collect, CancellationToken ct)
    {
        if (cfg.Journal is { } journal)
        {
            foreach (var list in journal)
                list.Clear();
        }
        if (cfg.Results is { } answers)
        {
            foreach (var list in answers)
                list.Clear();
        }
        var lanes = new LaneReplay[rec.Iommus];
        for (int u = 0; u < lanes.Length; u++)
        {
            var windDown = rec.WindDown is { } recorded && u < recorded.Count && recorded[u].Final > 0 ? recorded[u] : new LaneWindDown(last, last);
            lanes[u] = new LaneReplay(rec, cfg, u, windDown, byDigest, synth?[u], collect is not null);
        }
        var failures = new Exception?[lanes.Length];
        Parallel.For(0, lanes.Length, new ParallelOptions { CancellationToken = ct, MaxDegreeOfParallelism = Environment.ProcessorCount }, u =>
        {
            try
            {
                lanes[u].Run(ct);
            }
            catch (Exception e) when (e is DigestMismatch or ReplayException or OperationCanceledException)
            {
                failures[u] = e;
            }
        });
        foreach (var f in failures)
        {
            if (f is not null)
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(f).Throw();
        }

        var report = new ReplayReport();
        var windDowns = new LaneWindDown[lanes.Length];
        for (int u = 0; u < lanes.Length; u++)
            windDowns[u] = lanes[u].WindDown;
        report.WindDown = windDowns;
        var pages = new List<IReadOnlyList<long>>(lanes.Length);
        foreach (var lane in lanes)
        {
            report.Add(lane.Report);
            pages.Add(lane.PagesAtWindowEnd);
        }
        report.TablePagesMax = TablePages.Max(pages, 0);
        if (collect is not null)
        {
            for (int u = 0; u < lanes.Length; u++)
                collect[u] = lanes[u].Mappings?.Mappings ?? [];
        }
        return report;
    }

    /// <summary>The replay's answers differ from a batch's recorded digest (the by-digest pass gives way to the answer-by-answer one).</summary>
    private sealed class DigestMismatch : Exception;

    /// <summary>One unit and its domains, replayed window by window.</summary>
    private sealed class LaneReplay : IDmaPlacement
    {
        private readonly Dictionary<int, DomainState> _domainOfDevice = new();
        private readonly Recording _rec;
        private readonly ReplayConfig _cfg;
        private readonly IommuUnit _unit;
        private readonly UnitWindow _window;
        private readonly List<DomainState> _domains = new();
        private readonly LaneWindDown _windDown;

        public LaneWindDown WindDown => _domains.Count == 0 ? default : _windDown;
        private readonly bool _byDigest;
        private readonly BatchOutcome _outcome = new(), _recorded = new();
        private readonly List<DmaOp> _rewritten = new();
        public readonly ReplayReport Report = new();
        public readonly List<long> PagesAtWindowEnd = new();
        private readonly LaneDmaFeed _dmas;
        /// <summary>The mappings the lane makes (a first pass before synthesizing DMAs), or null.</summary>
        public readonly LaneMappings? Mappings;

        public LaneReplay(Recording rec, ReplayConfig cfg, int u, LaneWindDown windDown, bool byDigest, List<SynthMapping>? synth, bool collect)
        {
            _rec = rec;
            _cfg = cfg;
            _windDown = windDown;
            _byDigest = byDigest;
            _unit = new IommuUnit("iommu" + u.ToString(System.Globalization.CultureInfo.InvariantCulture), cfg.Unit, new SimClock());
            _window = new UnitWindow(_unit);
            var byTable = new Dictionary<IommuDomain, DomainState>(ReferenceEqualityComparer.Instance);
            IommuDomain? boot = null;
            for (int d = u; d < rec.Domains.Count; d += rec.Iommus)
            {
                var r = rec.Domains[d];
                var model = NewModel(r.Name, cfg.Format, "replay");
                DomainModel? recovery = null;
                if (!byDigest && cfg.CompareWithRecording)
                {
                    recovery = NewModel(r.Name, rec.Format, "recorded");
                    recovery.RecordHardwareWrites();
                }
                var state = new DomainState(r, d, model, recovery) { Slot = _domains.Count };
                _domains.Add(state);
                byTable[model.Domain] = state;
                Report.Tables[r.Name] = model.Domain;
                // As the simulator's unit attaches them: through the unit's boot domain first (its context cached),
                // then to the domain; the k-th device of a domain unmaps on CPU k mod cpus.
                for (int i = 0; i < r.Devices.Length; i++)
                {
                    int dev = r.Devices[i];
                    _domainOfDevice[dev] = state;
                    var device = _unit.Device("dev" + dev.ToString(System.Globalization.CultureInfo.InvariantCulture));
                    _window.Bind(dev, device, i % Math.Max(1, cfg.Unit.Cpus));
                    if (boot is null && IommuDomain.Create(PtConfig.Default(cfg.Format), new TableMemory(), out boot) != Errno.None)
                        throw new ArgumentException($"the {cfg.Format} format refuses its default configuration");
                    var err = _unit.Attach(device, boot!, splitMode: true, domainId: BootDomainId);
                    if (err == Errno.None)
                        err = _unit.Attach(device, model.Domain, splitMode: true, domainId: d + 1);
                    if (err != Errno.None)
                        throw new ArgumentException($"attaching dev{dev} to {r.Name} failed: {err}");
                }
            }
            _unit.UnmapReleased = (table, id) => byTable[table].Released.Add(id);
            if (collect)
                Mappings = new LaneMappings(_domains.Count);
            if (cfg.RecordedDmas is { } recorded)
            {
                _dmas = LaneDmaFeed.Recorded(u < recorded.Count ? recorded[u] : []);
            }
            else if (cfg.Synth is { } s && synth is not null)
            {
                var devices = new int[_domains.Count][];
                for (int i = 0; i < devices.Length; i++)
                    devices[i] = _domains[i].Recorded.Devices;
                _dmas = LaneDmaFeed.Synthesized(s, u, synth, devices, rec.WindowNs);
            }
            else
            {
                _dmas = LaneDmaFeed.None;
            }
            if (_dmas.Active)
                Report.Dmas = 0;
        }

        public void Run(CancellationToken ct)
        {
            if (_domains.Count == 0)
                return;
            ulong ns = _rec.WindowNs;
            long last = _windDown.Final;
            for (long w = 1; w <= last; w++)
            {
                if ((w & 255) == 0)
                    ct.ThrowIfCancellationRequested();
                foreach (var d in _domains)
                    Commit(d, w, final: false);
                ulong end = (ulong)w * ns;
                _dmas.Feed(w, _window, _unit.Name, this);
                _window.Run(end);
                RetireMoved();
                StampReleases();
                if (w >= _windDown.QuietAfter)
                {
                    _unit.Clock.AdvanceTo(end);
                    _unit.Drain();
                    StampReleases();
                }
                long pages = 0;
                foreach (var d in _domains)
                    pages += d.Model.Domain.TablePages;
                PagesAtWindowEnd.Add(pages);
                if (w == last)
                {
                    foreach (var d in _domains)
                        Commit(d, w, final: true);
                }
            }
            // Under another policy, operations the run answered before its end may still wait for a flush when the
            // recorded windows are over (an unmap's lock held longer): wind down as the simulator does, a drain and
            // a commit of its releases per window, until nothing is left.
            long w2 = last;
            while (w2 - last < MaxQuietWindows && !(Idle() && _dmas.Drained(w2)))
            {
                w2++;
                ulong end = (ulong)w2 * ns;
                _dmas.Feed(w2, _window, _unit.Name, this);
                _window.Run(end);
                RetireMoved();
                _unit.Clock.AdvanceTo(end);
                _unit.Drain();
                StampReleases();
                foreach (var d in _domains)
                    Commit(d, w2, final: true);
            }
            Report.Windows = w2;
            Mappings?.End(w2);
            if (_dmas.Active)
                Report.Dmas = _window.DmasRun;
            foreach (var d in _domains)
            {
                if (d.Next < d.Recorded.Batches.Count)
                    throw new ReplayException($"{d.Recorded.Name} event {d.Next + 1} (window {d.Recorded.Batches[d.Next].Window}) was not applied: its lane had wound down");
                Report.Unmatched += d.RecordedPending.Count + d.ReplayedPending.Count;
            }
            Report.Stats.Add(_unit.Stats);
        }

        private bool Idle()
        {
            if (!_window.IsEmpty)
                return false;
            foreach (var d in _domains)
            {
                if (d.Released.Count > 0)
                    return false;
            }
            return true;
        }

        /// <summary>
        /// The releases the unit made are sent when it finishes a window or a drain, stamped with its clock then
        /// (as the simulator's unit sends them); a domain applies them with the latest such stamp.
        /// </summary>
        private void StampReleases()
        {
            ulong now = _unit.Clock.NowNs;
            foreach (var d in _domains)
            {
                if (d.Released.Count > 0)
                    d.ReleasedAt = Math.Max(d.ReleasedAt, now);
            }
        }

        /// <summary>Applies the domain's journalled batches of window <paramref name="w"/> (the regular or the final commit), with the releases its unit sent since its last commit.</summary>
        private void Commit(DomainState d, long w, bool final)
        {
            var batches = d.Recorded.Batches;
            bool any = false;
            while (d.Next < batches.Count && batches[d.Next].Window == w && batches[d.Next].Final == final)
            {
                Apply(d, batches[d.Next], any ? [] : CollectionsMarshal.AsSpan(d.Released), w, final);
                d.Next++;
                any = true;
            }
            if (!any && d.Released.Count > 0)
                Apply(d, null, CollectionsMarshal.AsSpan(d.Released), w, final);
            d.Released.Clear();
        }

        private void Apply(DomainState d, DomainBatch? batch, ReadOnlySpan<long> released, long window, bool final)
        {
            var ops = batch is null ? [] : Rewrite(d, batch.Ops.Span);
            var hardware = batch is not null && _cfg.ApplyRecordedHardwareWrites ? batch.HardwareWrites : [];
            _outcome.Clear();
            Mappings?.Submitted(d.Slot, ops);
            ulong digest = d.Model.ApplyBatch(hardware, released, d.ReleasedAt, ops, _outcome);
            Mappings?.Answered(d.Slot, window, CollectionsMarshal.AsSpan(_outcome.Results));
            _cfg.Journal?[d.Index].Add(new DomainBatch(released.ToArray(), d.ReleasedAt, ops.ToArray(), digest)
            {
                HardwareWrites = hardware.Length == 0 ? [] : (long[])hardware.Clone(),
                Window = window,
                Final = final,
            });
            _cfg.Results?[d.Index].AddRange(_outcome.Results);
            if (!_cfg.CompareWithRecording)
            {
                // Nothing to compare with.
            }
            else if (_byDigest)
            {
                if (batch is not null && digest != batch.ResultDigest)
                    throw new DigestMismatch();
            }
            else if (batch is not null)
            {
                try
                {
                    d.Recovery!.Replay(batch, _recorded);
                }
                catch (Exception e) when (e is InvalidOperationException or ArgumentException)
                {
                    throw new ReplayException($"{d.Recorded.Name} event {d.Next + 1} does not replay as recorded: {e.Message}");
                }
                Compare(d, CollectionsMarshal.AsSpan(_recorded.Results), CollectionsMarshal.AsSpan(_outcome.Results));
            }
            else
            {
                Compare(d, [], CollectionsMarshal.AsSpan(_outcome.Results));
            }
            Report.Count(CollectionsMarshal.AsSpan(_outcome.Results));
            var leaves = CollectionsMarshal.AsSpan(_outcome.Leaves);
            foreach (var notice in _outcome.Notices)
                _window.AddUnmap(notice, d.Model.Domain, leaves);
            foreach (var f in _outcome.Flushes)
                _window.AddFlush(f, d.Model.Domain);
        }

        /// <summary>The batch's operations, unmaps of buffers the replay placed elsewhere sent to where it placed them.</summary>
        private ReadOnlySpan<DmaOp> Rewrite(DomainState d, ReadOnlySpan<DmaOp> ops)
        {
            if (d.Moved.Count == 0)
                return ops;
            _rewritten.Clear();
            foreach (var op in ops)
            {
                if (op.Kind == DmaOpKind.Unmap && d.Moved.Remove(op.Iova, out ulong moved))
                {
                    _rewritten.Add(op with { Iova = moved });
                    // The window's DMAs still reach the buffer where the replay placed it (a DMA late after the unmap).
                    d.RetiredBuffers.Add((op.Iova, op.Size));
                }
                else
                    _rewritten.Add(op);
            }
            return CollectionsMarshal.AsSpan(_rewritten);
        }

        /// <summary>Matches the replay's answers with the run's (in order when they agree, by id when they do not).</summary>
        private void Compare(DomainState d, ReadOnlySpan<DmaOpResult> recorded, ReadOnlySpan<DmaOpResult> replayed)
        {
            if (recorded.SequenceEqual(replayed) && d.RecordedPending.Count == 0 && d.ReplayedPending.Count == 0)
                return;
            foreach (ref readonly var r in recorded)
            {
                if (d.ReplayedPending.Remove(r.Id, out var p))
                    Differ(d, r, p);
                else
                    d.RecordedPending[r.Id] = r;
            }
            foreach (ref readonly var p in replayed)
            {
                if (d.RecordedPending.Remove(p.Id, out var r))
                    Differ(d, r, p);
                else
                    d.ReplayedPending[p.Id] = p;
            }
        }

        private void Differ(DomainState d, in DmaOpResult r, in DmaOpResult p)
        {
            if (r == p)
                return;
            var difference = new ReplayDifference(d.Recorded.Name, r, p) { DomainIndex = d.Index, Window = CurrentWindow(d) };
            Report.Differ(difference);
            if (r.Kind == DmaOpKind.DmaMap && p.Error == Errno.None && r.Error == Errno.None && r.Iova != p.Iova)
            {
                d.Moved[r.Iova] = p.Iova;
                if (_cfg.RecordedDmas is not null)
                    MovePages(d, r.Iova, r.Bytes, (long)(p.Iova - r.Iova));
            }
        }

        /// <summary>Recorded DMAs to a buffer the replay placed elsewhere go where it placed it: its pages, run page → IOVA difference.</summary>
        private static void MovePages(DomainState d, ulong iova, ulong bytes, long delta)
        {
            if (bytes == 0)
                return;
            for (ulong page = iova >> 12, last = (iova + (bytes - 1)) >> 12; page <= last && page >= iova >> 12; page++)
                d.MovedPages[page] = delta;
        }

        /// <summary>The buffers unmapped this window stop redirecting DMAs once the window's DMAs ran.</summary>
        private void RetireMoved()
        {
            foreach (var d in _domains)
            {
                foreach (var (iova, size) in d.RetiredBuffers)
                {
                    if (size == 0)
                        continue;
                    for (ulong page = iova >> 12, last = (iova + (size - 1)) >> 12; page <= last && page >= iova >> 12; page++)
                        d.MovedPages.Remove(page);
                }
                d.RetiredBuffers.Clear();
            }
        }

        /// <inheritdoc/>
        bool IDmaPlacement.AnyMoved
        {
            get
            {
                foreach (var d in _domains)
                {
                    if (d.MovedPages.Count > 0)
                        return true;
                }
                return false;
            }
        }

        /// <inheritdoc/>
        DmaAccess IDmaPlacement.Place(in DmaAccess dma)
            => _domainOfDevice.TryGetValue(dma.Device, out var d) && d.MovedPages.Count > 0 && d.MovedPages.TryGetValue(dma.Iova >> 12, out long delta)
                ? dma with { Iova = dma.Iova + (ulong)delta }
                : dma;

        private static long CurrentWindow(DomainState d)
            => d.Next < d.Recorded.Batches.Count ? d.Recorded.Batches[d.Next].Window : long.MaxValue;

        private static DomainModel NewModel(string name, PtFormatKind format, string which)
        {
            if (DomainModel.Create(PtConfig.Default(format), IovaStart, IovaLimit, out var model) != Errno.None)
                throw new ArgumentException($"{name}: the {which} format {format} refuses its default configuration");
            model!.DeferFlushes();
            return model;
        }
    }

    private sealed class DomainState(RecordedDomain recorded, int index, DomainModel model, DomainModel? recovery)
    {
        public readonly RecordedDomain Recorded = recorded;
        public readonly int Index = index;
        public readonly DomainModel Model = model;
        public readonly DomainModel? Recovery = recovery;
        /// <summary>The domain's place among its lane's domains.</summary>
        public int Slot { get; init; }
        public readonly List<long> Released = new();
        public ulong ReleasedAt;
        public int Next;   // the next batch of the journal to apply
        /// <summary>Where the replay placed each DMA-API buffer the run placed elsewhere (run IOVA → replay IOVA).</summary>
        public readonly Dictionary<ulong, ulong> Moved = new();
        /// <summary>The pages of those buffers (run page → replay IOVA − run IOVA), for recorded DMAs; and the buffers unmapped this window.</summary>
        public readonly Dictionary<ulong, long> MovedPages = new();
        public readonly List<(ulong Iova, ulong Size)> RetiredBuffers = new();
        public readonly Dictionary<long, DmaOpResult> RecordedPending = new(), ReplayedPending = new();
    }
}

/// <summary>Table pages held at once, over lanes that advance through their windows independently.</summary>
public static class TablePages
{
    /// <summary>
    /// The most table pages held at once: at the end of each window, summed over the lanes (a lane that has
    /// finished counts with what it held at its end), or <paramref name="finalPages"/> if that is more.
    /// </summary>
    public static long Max(IReadOnlyList<IReadOnlyList<long>> lanes, long finalPages)
    {
        ArgumentNullException.ThrowIfNull(lanes);
        long windows = 0;
        foreach (var pages in lanes)
            windows = Math.Max(windows, pages.Count);
        long max = 0;
        for (int w = 0; w < windows; w++)
        {
            long sum = 0;
            foreach (var pages in lanes)
            {
                if (pages.Count > 0)
                    sum += pages[Math.Min(w, pages.Count - 1)];
            }
            max = Math.Max(max, sum);
        }
        return Math.Max(max, finalPages);
    }
}

/// <summary>A recording that cannot be replayed; the message names the domain and the event.</summary>
public sealed class ReplayException(string message) : Exception(message);
