using System.Security.Cryptography;
using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using PtActors.Engine;
using PtActors.Engine.Dma;

namespace PtActors.Actors;

/// <summary>
/// The persistent actor of one paging domain: it owns the domain's <see cref="DomainModel"/> (page table, IOVA
/// allocator, range locks) and applies what devices submit in stamp order, one window at a time. A window's
/// operations are applied, persisted as group-commit events of at most <see cref="Settings.MaxOpsPerEvent"/>
/// operations, and only then answered: a failed write acknowledges nothing, and the actor (run under a backoff
/// supervisor) restarts from the journal. Unmaps go to the IOTLB side once durable; the flushes it reports back
/// (<see cref="Release"/>) are applied at the start of the next commit, and persisted with it.
/// </summary>
public sealed class DomainActor : ReceivePersistentActor
{
    /// <summary>What a domain actor is created with.</summary>
    public sealed record Settings(
        string RunId,
        string Domain,
        PtConfig Config,
        ulong IovaStart = 0x1000,
        ulong IovaLimit = 0xffff_ffff,
        int MaxOpsPerEvent = 256,
        int SnapshotEvery = 500,
        IActorRef? Iotlb = null,
        bool ReplyUnmapsAfterFlush = false,
        MessagePools? Pools = null,
        AckLog? AckLog = null,
        int Index = 0,
        Rebuilding? Rebuild = null);

    /// <summary>
    /// Shared by the domains of a lane being rebuilt after its node was lost (<see cref="LaneActor.Start"/> with a
    /// catch-up): until <see cref="Over"/>, a domain (re)starting recovers its journal without applying it and
    /// checks the events the re-executed calls produce against it; afterwards it recovers as usual.
    /// </summary>
    public sealed class Rebuilding
    {
        private volatile bool _over;

        /// <summary>Whether the lane has caught up.</summary>
        public bool Over
        {
            get => _over;
            set => _over = value;
        }
    }

    /// <summary>
    /// The lane re-executed every call (<see cref="Rebuilding"/>): the domain answers <see cref="CaughtUp"/> if it
    /// consumed its whole journal, and fails otherwise (the journal holds what the coordinator never asked for).
    /// </summary>
    public sealed record EndCatchUp : INoSerializationVerificationNeeded
    {
        /// <summary>The one instance.</summary>
        public static readonly EndCatchUp Instance = new();
    }

    /// <summary>The domain consumed its journal (<c>Events</c> of it) while its lane caught up.</summary>
    public sealed record CaughtUp(string Domain, long Events) : INoSerializationVerificationNeeded;

    /// <summary>Operations of one window from one device host (the sender gets their results).</summary>
    public sealed record Submit(long Window, ReadOnlyMemory<DmaOp> Ops) : INoSerializationVerificationNeeded
    {
        /// <summary>Operations of a whole array.</summary>
        public Submit(long window, DmaOp[] ops) : this(window, new ReadOnlyMemory<DmaOp>(ops))
        {
        }
    }

    /// <summary>The flushes covering these unmaps completed at <c>AtNs</c>: their IOVAs, pages and locks may go.</summary>
    public sealed record Release(ReadOnlyMemory<long> UnmapIds, ulong AtNs) : INoSerializationVerificationNeeded
    {
        /// <summary>Releases of a whole array.</summary>
        public Release(long[] unmapIds, ulong atNs) : this(new ReadOnlyMemory<long>(unmapIds), atNs)
        {
        }
    }

    /// <summary>
    /// Every input of the window is in: apply, persist, answer. The sender gets <see cref="Committed"/>.
    /// <c>Final</c>: the lane's last commit, after its unit's final drain (journalled as such, for replay).
    /// </summary>
    public sealed record Commit(long Window, bool Final = false) : ILaneMessage;

    /// <summary>
    /// Results of operations a host submitted (durable when sent). <c>Held</c>: results of unmaps the device may
    /// see only once the flush covering them completed (strict, batch:N): the host keeps them until a later
    /// <c>Released</c> names them. The host hands the released ones to their devices first, then <c>Items</c>.
    /// </summary>
    public sealed record Results(long Window, string Domain, ReadOnlyMemory<DmaOpResult> Items) : INoSerializationVerificationNeeded
    {
        /// <summary>Results of a whole array.</summary>
        public Results(long window, string domain, DmaOpResult[] items) : this(window, domain, new ReadOnlyMemory<DmaOpResult>(items))
        {
        }

        /// <summary>Results the host keeps until their unmap's flush completed.</summary>
        public ReadOnlyMemory<DmaOpResult> Held { get; init; }

        /// <summary>Unmaps whose flush completed: their held results go to the devices now, in this order.</summary>
        public ReadOnlyMemory<long> Released { get; init; }
    }

    /// <summary>
    /// A host re-sends, to a domain restarted from its journal, the operations it submitted for <c>Window</c>
    /// (empty when it submitted none) and names every device it hosts on the domain (the new incarnation routes
    /// results by device).
    /// </summary>
    public sealed record Resubmit(long Window, ReadOnlyMemory<DmaOp> Ops, int[] Devices) : INoSerializationVerificationNeeded;

    /// <summary>
    /// The unit re-sends, to a domain restarted from its journal, what the hardware wrote into the old table since
    /// the last commit (lost with the old incarnation unless its first event of the window was written).
    /// </summary>
    public sealed record Rebound(long[] HardwareWrites) : INoSerializationVerificationNeeded;

    /// <summary>
    /// Commit window <c>Window</c> again after a restart: its inputs were re-sent; the journal held
    /// <c>SequenceNrBefore</c> events before the window's first (what <see cref="Committed"/> reported last), so
    /// the events of the window the journal already holds are not applied twice. The sender gets <see cref="Committed"/>.
    /// </summary>
    public sealed record Recommit(long Window, long SequenceNrBefore, bool Final = false) : ILaneMessage;

    /// <summary>
    /// Durable unmaps, and flushes the table asked for, for the IOTLB side; <c>Leaves</c> holds the translations
    /// of the notices that list theirs (<see cref="UnmapNotice.LeafStart"/>).
    /// </summary>
    public sealed record Unmapped(long Window, string Domain, ReadOnlyMemory<UnmapNotice> Notices, FlushNotice[] Flushes) : INoSerializationVerificationNeeded
    {
        /// <summary>Notices of a whole array.</summary>
        public Unmapped(long window, string domain, UnmapNotice[] notices, FlushNotice[] flushes)
            : this(window, domain, new ReadOnlyMemory<UnmapNotice>(notices), flushes)
        {
        }

        /// <summary>The leaf list the notices index (empty when every notice carries its translation inline).</summary>
        public LeafSegment[] Leaves { get; init; } = [];
    }

    /// <summary>Sent to the IOTLB side once recovered: the table its walks read (as hardware reads memory).</summary>
    public sealed record Ready(string Domain, IommuDomain Table) : INoSerializationVerificationNeeded;

    /// <summary>The window is applied and durable; <c>SequenceNr</c>: the journal's last sequence number now.</summary>
    public sealed record Committed(long Window, string Domain, int Ops, int Events, long SequenceNr = 0) : ILaneMessage;

    /// <summary>Asks for a <see cref="Summary"/>.</summary>
    public sealed record GetSummary
    {
        /// <summary>The one instance.</summary>
        public static readonly GetSummary Instance = new();
    }

    /// <summary>The domain's state in brief; <c>TableHash</c> is the canonical SHA-256 of the table.</summary>
    public sealed record Summary(string Domain, string TableHash, int TablePages, ulong MappedBytes, int Parked, int Waiting, long LastSequenceNr, long Dropped);

    private readonly Settings _settings;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly List<(IActorRef Host, ReadOnlyMemory<DmaOp> Ops)> _inbox = new();
    private readonly List<long> _released = new();
    private readonly Dictionary<int, IActorRef> _hostOfDevice = new();
    private readonly BatchOutcome _outcome = new();
    private readonly List<Reply> _replies = new();
    /// <summary>What the events replayed at recovery produced (the latest <see cref="MaxTail"/>): a window the old incarnation wrote but never answered is answered from them.</summary>
    private readonly List<Replayed> _tail = new();
    /// <summary>Hardware writes the unit re-sent after a restart (<see cref="Rebound"/>), for the re-driven window.</summary>
    private long[]? _reboundHardware;
    private readonly Outbox<UnmapNotice> _notices;
    private readonly List<long> _acked = new();
    private ulong _releasedAt;
    private DomainModel _model;
    private long _batchesSinceSnapshot;
    private long _dropped;
    /// <summary>
    /// While its lane is rebuilt after a lost node: the journal's events not yet matched by the re-executed calls
    /// (recovered, not applied; null once rebuilt or when not rebuilding).
    /// </summary>
    private readonly Queue<DomainBatch>? _journalled;

    /// <summary>Props under a backoff supervisor that restarts the domain from its journal when it stops.</summary>
    public static Props SupervisedProps(Settings settings)
        => PtActors.Persistence.PersistentSupervision.Backoff(Akka.Actor.Props.Create(() => new DomainActor(settings)), settings.Domain);

    /// <summary>Props of the bare actor.</summary>
    public static Props Props(Settings settings) => Akka.Actor.Props.Create(() => new DomainActor(settings));

    /// <summary>Creates the actor; its state comes from the journal.</summary>
    public DomainActor(Settings settings)
    {
        _settings = settings;
        _notices = new Outbox<UnmapNotice>(settings.Pools?.Notices);
        _model = NewModel(settings);
        if (settings.Rebuild is { Over: false })
            _journalled = new Queue<DomainBatch>();

        Recover<SnapshotOffer>(offer =>
        {
            _model = DomainRecovery.FromSnapshot(offer.Snapshot);
            _tail.Clear();
            _batchesSinceSnapshot = 0;
        });
        Recover<DomainBatch>(batch =>
        {
            if (_journalled is not null)
            {
                _journalled.Enqueue(batch);
                return;
            }
            DomainRecovery.Replay(_model, batch, _outcome);
            if (_tail.Count == 2 * MaxTail)
                _tail.RemoveRange(0, MaxTail);
            _tail.Add(new Replayed(batch, _outcome.Results.ToArray(), _outcome.Notices.ToArray(), _outcome.Leaves.ToArray(), _outcome.Flushes.ToArray()));
            _releasedAt = Math.Max(_releasedAt, batch.ReleasedAtNs);
            _batchesSinceSnapshot++;
        });
        Recover<RecoveryCompleted>(_ => _settings.Iotlb?.Tell(new Ready(_settings.Domain, _model.Domain)));

        Command<Submit>(s =>
        {
            if (s.Ops.Length > 0)
                _inbox.Add((Sender, s.Ops));
        });
        Command<Resubmit>(r =>
        {
            if (r.Ops.Length > 0)
                _inbox.Add((Sender, r.Ops));
            foreach (int device in r.Devices)
                _hostOfDevice[device] = Sender;
        });
        Command<Release>(r =>
        {
            // The unit keeps the array until this domain's next commit is acknowledged (it may have to re-send it).
            _released.AddRange(r.UnmapIds.Span);
            if (r.AtNs > _releasedAt)
                _releasedAt = r.AtNs;
        });
        Command<Rebound>(r => _reboundHardware = r.HardwareWrites);
        Command<Commit>(c => CommitWindow(c.Window, c.Final, Sender, -1));
        Command<Recommit>(c => CommitWindow(c.Window, c.Final, Sender, c.SequenceNrBefore));
        Command<GetSummary>(_ => Sender.Tell(MakeSummary()));
        Command<EndCatchUp>(_ =>
        {
            if (_journalled is { Count: > 0 } left)
                throw new InvalidOperationException($"{_settings.Domain}: its journal holds {left.Count} events past what its lane re-executed after its node was lost (from sequence number {Position + 1}): they were never asked for");
            Sender.Tell(new CaughtUp(_settings.Domain, LastSequenceNr));
        });
        Command<SaveSnapshotSuccess>(s => DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning("Snapshot of {0} failed: {1}", PersistenceId, f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(_ => { });
    }

    /// <summary>
    /// Rebuilding after a lost node, the journal is read from its first event (no snapshot: the re-execution starts
    /// from an empty table); otherwise from the latest snapshot.
    /// </summary>
    public override Recovery Recovery => _journalled is not null ? new Recovery(SnapshotSelectionCriteria.None) : base.Recovery;

    /// <summary>The journal position of the state (while rebuilding, of the events the re-execution has matched so far).</summary>
    private long Position => LastSequenceNr - (_journalled?.Count ?? 0);

    /// <inheritdoc/>
    public override string PersistenceId => PtActors.Persistence.PersistenceIds.For(_settings.RunId, _settings.Domain);

    private static DomainModel NewModel(Settings s) => DomainRecovery.NewModel(s.Domain, s.Config, s.IovaStart, s.IovaLimit);

    /// <summary>Replayed events kept (up to twice as many before the oldest are dropped).</summary>
    private const int MaxTail = 4096;

    /// <summary>An event replayed at recovery and what it produced.</summary>
    private sealed record Replayed(DomainBatch Batch, DmaOpResult[] Results, UnmapNotice[] Notices, LeafSegment[] Leaves, FlushNotice[] Flushes);

    /// <summary>What one host is sent at the end of a commit.</summary>
    private sealed class Reply(IActorRef host, MessagePools? pools)
    {
        public readonly IActorRef Host = host;
        public readonly Outbox<DmaOpResult> Items = new(pools?.Results);
        public readonly Outbox<DmaOpResult> Held = new(pools?.Results);
        public readonly Outbox<long> Released = new(pools?.Releases);
    }

    /// <summary>
    /// Applies, persists and answers window <paramref name="window"/>. <paramref name="sequenceNrBefore"/> ≥ 0: the
    /// window is re-driven after a restart (its inputs were re-sent); the events of it the journal already holds
    /// (a write reported failed may still have been stored, in part or in full) are not applied again: the
    /// recovery replayed them, and their results come from that replay.
    /// </summary>
    private void CommitWindow(long window, bool final, IActorRef coordinator, long sequenceNrBefore)
    {
        bool redo = sequenceNrBefore >= 0;
        int written = redo ? checked((int)(LastSequenceNr - sequenceNrBefore)) : 0;
        if (written < 0)
            throw new InvalidOperationException($"{_settings.Domain}: its journal ends at {LastSequenceNr}, before window {window} began ({sequenceNrBefore}).");
        // What the unit's walks wrote into the tables since the last commit (its window is processed: nothing
        // writes now) becomes part of this commit's first event. The log keeps it until that event is written: a
        // failed write leaves it there for the unit to hand to the next incarnation (re-driven: what it handed).
        var log = _model.Domain.HardwareWrites;
        long[] hardware;
        if (redo)
        {
            hardware = _reboundHardware ?? [];
            _reboundHardware = null;
        }
        else
        {
            hardware = log?.Peek() ?? [];
        }
        if (_inbox.Count == 0 && _released.Count == 0 && hardware.Length == 0 && written == 0)
        {
            _tail.Clear();
            coordinator.Tell(new Committed(window, _settings.Domain, 0, 0, Position));
            return;
        }

        var ops = InStampOrder();
        var events = new List<DomainBatch>();
        int verified = 0;
        _outcome.Clear();
        var released = _released.ToArray();
        _released.Clear();
        int max = Math.Max(1, _settings.MaxOpsPerEvent);
        int offset = 0;
        do
        {
            int n = Math.Min(max, ops.Length - offset);
            var slice = ops.Slice(offset, n);
            var rel = offset == 0 ? released : [];
            var hw = offset == 0 ? hardware : [];
            if (events.Count < written)
            {
                // Already in the journal: the recovery applied it; answer from what its replay produced.
                var replayed = WrittenEvent(window, events.Count, written, slice.Span, rel);
                _outcome.Results.AddRange(replayed.Results);
                int leafBase = _outcome.Leaves.Count;   // its notices index its own leaf list: rebase them
                foreach (var notice in replayed.Notices)
                    _outcome.Notices.Add(notice.LeafCount == 0 ? notice : notice with { LeafStart = notice.LeafStart + leafBase });
                _outcome.Leaves.AddRange(replayed.Leaves);
                _outcome.Flushes.AddRange(replayed.Flushes);
                events.Add(replayed.Batch);
            }
            else
            {
                ulong digest = _model.ApplyBatch(hw, rel, _releasedAt, slice.Span, _outcome);
                var e = new DomainBatch(rel, _releasedAt, slice, digest) { HardwareWrites = hw, Window = window, Final = final };
                if (_journalled is { Count: > 0 })
                {
                    // Rebuilding: the journal holds this event already; it must be the same one.
                    CheckJournalled(_journalled.Dequeue(), e);
                    verified++;
                }
                events.Add(e);
            }
            offset += n;
        }
        while (offset < ops.Length);
        if (written > events.Count)
            throw new InvalidOperationException($"{_settings.Domain}: its journal holds {written} events after window {window} began; the window makes {events.Count}.");
        var flushes = _outcome.Flushes.Count == 0 ? [] : _outcome.Flushes.ToArray();
        _tail.Clear();
        int skip = written + verified;
        var toWrite = skip == 0 ? events : events.GetRange(skip, events.Count - skip);
        if (toWrite.Count == 0)
        {
            Done();
            return;
        }
        int persisted = 0;
        // Nothing else is handled until every event of PersistAll is written, so _outcome stays as it is.
        PersistAll(toWrite, _ =>
        {
            if (++persisted == toWrite.Count)
                Done();
        });

        void Done()
        {
            log?.Clear();
            Answer(window, flushes, released);
            _batchesSinceSnapshot += toWrite.Count;
            if (_settings.SnapshotEvery > 0 && _batchesSinceSnapshot >= _settings.SnapshotEvery && _journalled is not { Count: > 0 })
            {
                // Captured before the coordinator hears of the commit: once it does, the unit may walk (and set
                // dirty bits in) the tables, and those writes belong to the next commit's event.
                _batchesSinceSnapshot = 0;
                SaveSnapshot(_model.Capture());
            }
            coordinator.Tell(new Committed(window, _settings.Domain, _outcome.Results.Count, events.Count, Position));
        }
    }

    /// <summary>
    /// Rebuilding after a lost node: <paramref name="made"/>, the event the re-executed calls produced, must be
    /// <paramref name="journalled"/>, the one the journal holds at that position (same window, inputs and results).
    /// </summary>
    private void CheckJournalled(DomainBatch journalled, DomainBatch made)
    {
        string? differs =
            journalled.Window != made.Window ? $"window {journalled.Window} in the journal, {made.Window} re-executed"
            : journalled.Final != made.Final ? "its final flag"
            : !journalled.Ops.Span.SequenceEqual(made.Ops.Span) ? $"its operations ({journalled.Ops.Length} in the journal, {made.Ops.Length} re-executed)"
            : !journalled.Released.AsSpan().SequenceEqual(made.Released) ? "its released unmaps"
            : journalled.ReleasedAtNs != made.ReleasedAtNs ? "its release time"
            : !journalled.HardwareWrites.AsSpan().SequenceEqual(made.HardwareWrites) ? "the hardware's writes"
            : journalled.ResultDigest != made.ResultDigest ? "its results' digest"
            : null;
        if (differs is not null)
            throw new InvalidOperationException($"{_settings.Domain}: re-executing its lost lane, event {Position} differs from the journal's: {differs}");
    }

    /// <summary>
    /// The <paramref name="index"/>-th event of a re-driven window, of which the journal holds the first
    /// <paramref name="written"/>: the matching replayed event, checked against the re-sent inputs.
    /// </summary>
    private Replayed WrittenEvent(long window, int index, int written, ReadOnlySpan<DmaOp> ops, long[] released)
    {
        if (_tail.Count < written)
            throw new InvalidOperationException($"{_settings.Domain}: window {window} has {written} events in the journal, more than recovery kept ({_tail.Count}).");
        var replayed = _tail[_tail.Count - written + index];
        if (!replayed.Batch.Ops.Span.SequenceEqual(ops) || !replayed.Batch.Released.AsSpan().SequenceEqual(released))
            throw new InvalidOperationException($"{_settings.Domain}: the journal's event {LastSequenceNr - written + index + 1} is not what window {window} re-sent.");
        return replayed;
    }

    /// <summary>
    /// The window's operations in stamp order, whatever order the hosts' messages arrived in (a host sends its
    /// operations already in order, so one host's batch is used as it is); remembers which host each device
    /// submits through.
    /// </summary>
    private ReadOnlyMemory<DmaOp> InStampOrder()
    {
        ReadOnlyMemory<DmaOp> ops;
        if (_inbox.Count == 1 && IsSorted(_inbox[0].Ops.Span))
        {
            ops = _inbox[0].Ops;
        }
        else
        {
            int total = 0;
            foreach (var (_, batch) in _inbox)
                total += batch.Length;
            // On the pinned heap like the hosts' batches: the array becomes journal events (see Outbox).
            var all = GC.AllocateUninitializedArray<DmaOp>(total, pinned: true);
            int at = 0;
            foreach (var (_, batch) in _inbox)
            {
                batch.Span.CopyTo(all.AsSpan(at));
                at += batch.Length;
            }
            if (!IsSorted(all))
                Array.Sort(all);
            ops = all;
        }
        foreach (var (host, batch) in _inbox)
        {
            int device = -1;
            foreach (ref readonly var op in batch.Span)
            {
                if (op.Device != device)
                {
                    device = op.Device;
                    _hostOfDevice[device] = host;
                }
            }
        }
        _inbox.Clear();
        return ops;

        static bool IsSorted(ReadOnlySpan<DmaOp> ops)
        {
            for (int i = 1; i < ops.Length; i++)
            {
                if (ops[i - 1].CompareTo(ops[i]) > 0)
                    return false;
            }
            return true;
        }
    }

    /// <summary>Results to the hosts that submitted, grouped per host in stamp order; notices to the IOTLB side.</summary>
    private void Answer(long window, FlushNotice[] flushes, long[] released)
    {
        if (_settings.ReplyUnmapsAfterFlush)
        {
            // Under strict and batch:N an unmap's result reaches its device once the flush covering it completed:
            // its host held it until now (a map-time flush, negative, has nobody waiting).
            foreach (long id in released)
            {
                if (id >= 0 && HostOf((int)(id >> 32)) is { } host)
                {
                    ReplyTo(host).Released.Add(id);
                    if (_settings.AckLog is not null)
                        _acked.Add(id);
                }
            }
        }
        var notices = _outcome.Notices;
        int next = 0;
        IActorRef? host0 = null;
        int hostDevice = -1;
        Reply? to = null;
        foreach (var result in _outcome.Results)
        {
            bool noticed = next < notices.Count && notices[next].Id == result.Id;
            if (noticed)
                next++;
            int device = (int)(result.Id >> 32);
            if (device != hostDevice)
            {
                if (!_hostOfDevice.TryGetValue(device, out host0))
                {
                    _dropped++; // submitted before a restart: its host was never told it ran
                    hostDevice = -1;
                    continue;
                }
                hostDevice = device;
                to = ReplyTo(host0);
            }
            if (noticed && _settings.ReplyUnmapsAfterFlush)
            {
                to!.Held.Add(result);
            }
            else
            {
                to!.Items.Add(result);
                if (_settings.AckLog is not null)
                    _acked.Add(result.Id);
            }
        }
        foreach (var r in _replies)
        {
            if (r.Items.Count > 0 || r.Held.Count > 0 || r.Released.Count > 0)
                r.Host.Tell(new Results(window, _settings.Domain, r.Items.Take()) { Held = r.Held.Take(), Released = r.Released.Take() });
        }
        if (_settings.AckLog is { } log)
        {
            // Sent: logged for the crash campaign (the coordinator hands the log to the OS once the window is committed).
            log.Acknowledged(_settings.Index, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_acked));
            _acked.Clear();
        }
        if (notices.Count > 0 || flushes.Length > 0)
        {
            foreach (var n in notices)
                _notices.Add(n);
            var leaves = _outcome.Leaves.Count == 0 ? [] : _outcome.Leaves.ToArray();
            _settings.Iotlb?.Tell(new Unmapped(window, _settings.Domain, _notices.Take(), flushes) { Leaves = leaves });
        }
    }

    private IActorRef? HostOf(int device) => _hostOfDevice.GetValueOrDefault(device);

    private Reply ReplyTo(IActorRef host)
    {
        foreach (var r in _replies)
        {
            if (ReferenceEquals(r.Host, host))
                return r;
        }
        var reply = new Reply(host, _settings.Pools);
        _replies.Add(reply);
        return reply;
    }

    private Summary MakeSummary()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        _model.Domain.WriteCanonical(hash);
        return new Summary(_settings.Domain, Convert.ToHexStringLower(hash.GetHashAndReset()), _model.Domain.TablePages,
            _model.MappedBytes, _model.Parked, _model.Waiting, LastSequenceNr, _dropped);
    }

    /// <inheritdoc/>
    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        // The state already holds the rejected batch: stop, so the supervisor restarts it from the journal.
        _log.Error(cause, "Journal rejected batch {0} of {1}; restarting from the journal.", sequenceNr, PersistenceId);
        Context.Stop(Self);
    }
}
