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
public sealed record ReplayConfig(PtFormatKind Format, IommuUnitConfig Unit, bool ApplyRecordedHardwareWrites);

/// <summary>An operation whose replay differs from the recording.</summary>
/// <param name="Domain">The domain's name.</param>
/// <param name="Recorded">What the run answered.</param>
/// <param name="Replayed">What the replay answered.</param>
public readonly record struct ReplayDifference(string Domain, DmaOpResult Recorded, DmaOpResult Replayed)
{
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
    /// <summary>The units' counters, summed.</summary>
    public IommuUnitStats Stats { get; } = new();
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
}

/// <summary>
/// Replays a recording open-loop through fresh domains and units: each domain's journalled operations are
/// applied in the windows the run applied them in, in their journal order, and the units run the notices, flush
/// policies and timeouts as the simulator's units do; releases come from the replay's own units, not from the
/// journal. Alongside, a second model per domain recovers the journal as recorded, which gives the run's answer to
/// every operation (checked against the journal's digests) to compare the replay's with. With the recorded
/// configuration the two agree operation for operation and the tables end byte-identical; with another one the
/// report counts what the recorded order cannot do under it.
/// <para>
/// DMA-API maps take their IOVA from the replay's allocator; an unmap of a buffer whose IOVA the replay placed
/// elsewhere is sent to the replay's IOVA (a driver unmaps the handle it got). No DMAs are replayed: the DMA
/// figures of a replay are absent, not zero.
/// </para>
/// </summary>
public sealed class Replayer
{
    private const ulong IovaStart = 0x1000, IovaLimit = 0xffff_ffff;
    private const int BootDomainId = int.MaxValue;

    private readonly Recording _rec;
    private readonly ReplayConfig _cfg;
    private readonly ReplayReport _report = new();
    private readonly IommuUnit[] _units;
    private readonly UnitWindow[] _windows;
    private readonly DomainState[] _domains;
    private readonly BatchOutcome _outcome = new(), _recorded = new();
    private readonly List<DmaOp> _rewritten = new();

    private sealed class DomainState(RecordedDomain recorded, DomainModel model, DomainModel recovery, int unit)
    {
        public readonly RecordedDomain Recorded = recorded;
        public readonly DomainModel Model = model;
        public readonly DomainModel Recovery = recovery;
        public readonly int Unit = unit;
        public readonly List<long> Released = new();
        public ulong ReleasedAt;
        public int Next;   // the next batch of the journal to apply
        /// <summary>Where the replay placed each DMA-API buffer the run placed elsewhere (run IOVA → replay IOVA).</summary>
        public readonly Dictionary<ulong, ulong> Moved = new();
        public readonly Dictionary<long, DmaOpResult> RecordedPending = new(), ReplayedPending = new();
    }

    private Replayer(Recording rec, ReplayConfig cfg)
    {
        _rec = rec;
        _cfg = cfg;
        if (rec.Iommus <= 0)
            throw new ArgumentException($"a recording needs at least one IOMMU unit, not {rec.Iommus}");
        _units = new IommuUnit[rec.Iommus];
        _windows = new UnitWindow[rec.Iommus];
        for (int u = 0; u < rec.Iommus; u++)
        {
            _units[u] = new IommuUnit("iommu" + u.ToString(System.Globalization.CultureInfo.InvariantCulture), cfg.Unit, new SimClock());
            _windows[u] = new UnitWindow(_units[u]);
        }
        _domains = new DomainState[rec.Domains.Count];
        var byTable = new Dictionary<IommuDomain, DomainState>(ReferenceEqualityComparer.Instance);
        IommuDomain? boot = null;
        for (int d = 0; d < _domains.Length; d++)
        {
            var r = rec.Domains[d];
            var model = NewModel(r.Name, cfg.Format, "replay");
            var recovery = NewModel(r.Name, rec.Format, "recorded");
            recovery.RecordHardwareWrites();
            int u = d % rec.Iommus;
            var state = new DomainState(r, model, recovery, u);
            _domains[d] = state;
            byTable[model.Domain] = state;
            _report.Tables[r.Name] = model.Domain;
            // As the simulator's unit attaches them: through the unit's boot domain first (its context cached),
            // then to the domain; the k-th device of a domain unmaps on CPU k mod cpus.
            for (int i = 0; i < r.Devices.Length; i++)
            {
                int dev = r.Devices[i];
                var device = _units[u].Device("dev" + dev.ToString(System.Globalization.CultureInfo.InvariantCulture));
                _windows[u].Bind(dev, device, i % Math.Max(1, cfg.Unit.Cpus));
                if (boot is null && IommuDomain.Create(PtConfig.Default(cfg.Format), new TableMemory(), out boot) != Errno.None)
                    throw new ArgumentException($"the {cfg.Format} format refuses its default configuration");
                var err = _units[u].Attach(device, boot!, splitMode: true, domainId: BootDomainId);
                if (err == Errno.None)
                    err = _units[u].Attach(device, model.Domain, splitMode: true, domainId: d + 1);
                if (err != Errno.None)
                    throw new ArgumentException($"attaching dev{dev} to {r.Name} failed: {err}");
            }
        }
        foreach (var unit in _units)
            unit.UnmapReleased = (table, id) => byTable[table].Released.Add(id);
    }

    private static DomainModel NewModel(string name, PtFormatKind format, string which)
    {
        if (DomainModel.Create(PtConfig.Default(format), IovaStart, IovaLimit, out var model) != Errno.None)
            throw new ArgumentException($"{name}: the {which} format {format} refuses its default configuration");
        model!.DeferFlushes();
        return model;
    }

    /// <summary>Replays <paramref name="recording"/> under <paramref name="config"/>.</summary>
    /// <exception cref="ReplayException">The recording cannot be replayed (named: domain and event).</exception>
    public static ReplayReport Run(Recording recording, ReplayConfig config, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(recording);
        ArgumentNullException.ThrowIfNull(config);
        return new Replayer(recording, config).Run(cancellationToken);
    }

    private ReplayReport Run(CancellationToken ct)
    {
        long last = 0;
        foreach (var d in _domains)
        {
            long previous = 0;
            for (int i = 0; i < d.Recorded.Batches.Count; i++)
            {
                long w = d.Recorded.Batches[i].Window;
                if (w <= 0)
                    throw new ReplayException($"{d.Recorded.Name} event {i + 1} has no window: it was recorded before batches carried theirs (domain-batch version 4), so it cannot be replayed");
                if (w < previous)
                    throw new ReplayException($"{d.Recorded.Name} event {i + 1} is of window {w}, after an event of window {previous}");
                previous = w;
            }
            last = Math.Max(last, previous);
        }
        var windDown = new LaneWindDown[_units.Length];
        for (int u = 0; u < windDown.Length; u++)
        {
            windDown[u] = _rec.WindDown is { } recorded && u < recorded.Count && recorded[u].Final > 0
                ? recorded[u]
                : new LaneWindDown(last, last);
            last = Math.Max(last, windDown[u].Final);
        }

        ulong ns = _rec.WindowNs;
        for (long w = 1; w <= last; w++)
        {
            if ((w & 255) == 0)
                ct.ThrowIfCancellationRequested();
            foreach (var d in _domains)
                Commit(d, w, final: false);
            ulong end = (ulong)w * ns;
            for (int u = 0; u < _units.Length; u++)
            {
                _windows[u].Run(end);
                StampReleases(u);
                if (w >= windDown[u].QuietAfter && w <= windDown[u].Final)
                {
                    _units[u].Clock.AdvanceTo(end);
                    _units[u].Drain();
                    StampReleases(u);
                }
            }
            long pages = 0;
            foreach (var d in _domains)
                pages += d.Model.Domain.TablePages;
            _report.TablePagesMax = Math.Max(_report.TablePagesMax, pages);
            foreach (var d in _domains)
            {
                if (windDown[d.Unit].Final == w)
                    Commit(d, w, final: true);
            }
        }
        // Under another policy, operations the run answered before its end may still wait for a flush when the
        // recorded windows are over (an unmap's lock held longer): wind down as the simulator does, a drain and a
        // commit of its releases per window, until nothing is left (at most MaxQuietWindows more).
        long w2 = last;
        while (w2 - last < MaxQuietWindows && !Idle())
        {
            w2++;
            ulong end = (ulong)w2 * ns;
            for (int u = 0; u < _units.Length; u++)
            {
                _windows[u].Run(end);
                _units[u].Clock.AdvanceTo(end);
                _units[u].Drain();
                StampReleases(u);
            }
            foreach (var d in _domains)
                Commit(d, w2, final: true);
        }
        _report.Windows = w2;
        foreach (var d in _domains)
        {
            if (d.Next < d.Recorded.Batches.Count)
                throw new ReplayException($"{d.Recorded.Name} event {d.Next + 1} (window {d.Recorded.Batches[d.Next].Window}) was not applied: its lane had wound down");
            _report.Unmatched += d.RecordedPending.Count + d.ReplayedPending.Count;
        }
        for (int u = 0; u < _units.Length; u++)
            Add(_report.Stats, _units[u].Stats);
        return _report;
    }

    /// <summary>Windows a replay winds down at most after the recorded ones, as the simulator's lanes do.</summary>
    public const int MaxQuietWindows = 10_000;

    /// <summary>Whether no unit has anything to run and no domain anything released to apply.</summary>
    private bool Idle()
    {
        foreach (var w in _windows)
        {
            if (!w.IsEmpty)
                return false;
        }
        foreach (var d in _domains)
        {
            if (d.Released.Count > 0)
                return false;
        }
        return true;
    }

    /// <summary>
    /// The releases unit <paramref name="u"/> made are sent when it finishes a window or a drain, stamped with its
    /// clock then (as the simulator's unit sends them); a domain applies them with the latest such stamp.
    /// </summary>
    private void StampReleases(int u)
    {
        ulong now = _units[u].Clock.NowNs;
        foreach (var d in _domains)
        {
            if (d.Unit == u && d.Released.Count > 0)
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
            var batch = batches[d.Next];
            Apply(d, batch, any ? [] : CollectionsMarshal.AsSpan(d.Released));
            d.Next++;
            any = true;
        }
        if (!any && d.Released.Count > 0)
            Apply(d, null, CollectionsMarshal.AsSpan(d.Released));
        d.Released.Clear();
    }

    private void Apply(DomainState d, DomainBatch? batch, ReadOnlySpan<long> released)
    {
        var ops = batch is null ? [] : Rewrite(d, batch.Ops.Span);
        var hardware = batch is not null && _cfg.ApplyRecordedHardwareWrites ? batch.HardwareWrites : [];
        _outcome.Clear();
        d.Model.ApplyBatch(hardware, released, d.ReleasedAt, ops, _outcome);
        if (batch is not null)
        {
            try
            {
                d.Recovery.Replay(batch, _recorded);
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
        Count(CollectionsMarshal.AsSpan(_outcome.Results));
        var window = _windows[d.Unit];
        var leaves = CollectionsMarshal.AsSpan(_outcome.Leaves);
        foreach (var notice in _outcome.Notices)
            window.AddUnmap(notice, d.Model.Domain, leaves);
        foreach (var f in _outcome.Flushes)
            window.AddFlush(f, d.Model.Domain);
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
                _rewritten.Add(op with { Iova = moved });
            else
                _rewritten.Add(op);
        }
        return CollectionsMarshal.AsSpan(_rewritten);
    }

    private void Count(ReadOnlySpan<DmaOpResult> results)
    {
        foreach (ref readonly var r in results)
        {
            if (r.Kind is DmaOpKind.DmaMap or DmaOpKind.Map)
            {
                _report.Maps++;
                if (r.Error == Errno.None)
                    _report.BytesMapped += r.Bytes;
            }
            else if (r.Kind == DmaOpKind.Unmap)
            {
                _report.Unmaps++;
            }            if (r.Kind is DmaOpKind.DmaMap or DmaOpKind.Map or DmaOpKind.Unmap)
                _report.Ops++;
            if (r.Error != Errno.None)
                _report.Errors++;
            if (r.Kind == DmaOpKind.DmaMap)
                continue;
            if (r.LockWaitNs > 0)
                _report.LockWaits++;
            ulong us = r.LockWaitNs / 1000;
            _report.LockWaitHistogram[us == 0 ? 0 : Math.Min(ReplayReport.LockWaitBuckets - 1, 64 - System.Numerics.BitOperations.LeadingZeroCount(us))]++;
        }
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
        var difference = new ReplayDifference(d.Recorded.Name, r, p);
        _report.ResultsDiffer++;
        _report.FirstDifference ??= difference;
        switch (r.Kind)
        {
            case DmaOpKind.DmaMap or DmaOpKind.Map when r.Error == Errno.None && p.Error != Errno.None:
                _report.MapRefused++;
                _report.FirstMapRefused ??= difference;
                break;
            case DmaOpKind.DmaMap when p.Error == Errno.None && r.Iova != p.Iova:
                d.Moved[r.Iova] = p.Iova;
                if (r with { Iova = p.Iova } == p)
                    _report.IovaPlacedElsewhere++;
                break;
            case DmaOpKind.Map when p.Error == Errno.None && p.LockWaitNs > r.LockWaitNs:
                _report.IovaReusedBeforeFlush++;
                _report.FirstIovaReusedBeforeFlush ??= difference;
                break;
            case DmaOpKind.Unmap when r.Bytes > 0 && p.Bytes == 0:
                _report.UnmapNotMapped++;
                _report.FirstUnmapNotMapped ??= difference;
                break;
        }
    }

    private static void Add(IommuUnitStats sum, IommuUnitStats s)
    {
        sum.Hits += s.Hits;
        sum.Misses += s.Misses;
        sum.Faults += s.Faults;
        sum.Invalidations += s.Invalidations;
        sum.DomainInvalidations += s.DomainInvalidations;
        sum.GlobalInvalidations += s.GlobalInvalidations;
        sum.InvalidatedBytes += s.InvalidatedBytes;
        sum.OverInvalidatedBytes += s.OverInvalidatedBytes;
        sum.InvalidationBusyNs += s.InvalidationBusyNs;
        sum.Flushes += s.Flushes;
        sum.TimedFlushes += s.TimedFlushes;
        sum.StaleInWindow += s.StaleInWindow;
        sum.StaleViolations += s.StaleViolations;
        sum.MaxStaleWindowNs = Math.Max(sum.MaxStaleWindowNs, s.MaxStaleWindowNs);
        sum.UseAfterFree += s.UseAfterFree;
        sum.IsolationBreaches += s.IsolationBreaches;
    }
}

/// <summary>A recording that cannot be replayed; the message names the domain and the event.</summary>
public sealed class ReplayException(string message) : Exception(message);
