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
        int Index = 0);

    /// <summary>Operations of one window from one device host (the sender gets their results).</summary>
    public sealed record Submit(long Window, ReadOnlyMemory<DmaOp> Ops)
    {
        /// <summary>Operations of a whole array.</summary>
        public Submit(long window, DmaOp[] ops) : this(window, new ReadOnlyMemory<DmaOp>(ops))
        {
        }
    }

    /// <summary>The flushes covering these unmaps completed at <c>AtNs</c>: their IOVAs, pages and locks may go.</summary>
    public sealed record Release(ReadOnlyMemory<long> UnmapIds, ulong AtNs)
    {
        /// <summary>Releases of a whole array.</summary>
        public Release(long[] unmapIds, ulong atNs) : this(new ReadOnlyMemory<long>(unmapIds), atNs)
        {
        }
    }

    /// <summary>Every input of the window is in: apply, persist, answer. The sender gets <see cref="Committed"/>.</summary>
    public sealed record Commit(long Window);

    /// <summary>Results of operations a host submitted (durable when sent).</summary>
    public sealed record Results(long Window, string Domain, ReadOnlyMemory<DmaOpResult> Items)
    {
        /// <summary>Results of a whole array.</summary>
        public Results(long window, string domain, DmaOpResult[] items) : this(window, domain, new ReadOnlyMemory<DmaOpResult>(items))
        {
        }
    }

    /// <summary>
    /// Durable unmaps, and flushes the table asked for, for the IOTLB side; <c>Leaves</c> holds the translations
    /// of the notices that list theirs (<see cref="UnmapNotice.LeafStart"/>).
    /// </summary>
    public sealed record Unmapped(long Window, string Domain, ReadOnlyMemory<UnmapNotice> Notices, FlushNotice[] Flushes)
    {
        /// <summary>The leaf list the notices index (empty when every notice carries its translation inline).</summary>
        public LeafSegment[] Leaves { get; init; } = [];

        /// <summary>Notices of a whole array.</summary>
        public Unmapped(long window, string domain, UnmapNotice[] notices, FlushNotice[] flushes)
            : this(window, domain, new ReadOnlyMemory<UnmapNotice>(notices), flushes)
        {
        }
    }

    /// <summary>Sent to the IOTLB side once recovered: the table its walks read (as hardware reads memory).</summary>
    public sealed record Ready(string Domain, IommuDomain Table);

    /// <summary>The window is applied and durable.</summary>
    public sealed record Committed(long Window, string Domain, int Ops, int Events);

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
    private readonly Dictionary<long, (IActorRef Host, DmaOpResult Result)> _heldReplies = new();
    private readonly List<(IActorRef Host, Outbox<DmaOpResult> Results)> _replies = new();
    private readonly Outbox<UnmapNotice> _notices;
    private readonly List<long> _acked = new();
    private ulong _releasedAt;
    private DomainModel _model;
    private long _batchesSinceSnapshot;
    private long _dropped;

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

        Recover<SnapshotOffer>(offer =>
        {
            _model = DomainRecovery.FromSnapshot(offer.Snapshot);
        });
        Recover<DomainBatch>(batch => DomainRecovery.Replay(_model, batch, _outcome));
        Recover<RecoveryCompleted>(_ => _settings.Iotlb?.Tell(new Ready(_settings.Domain, _model.Domain)));

        Command<Submit>(s =>
        {
            if (s.Ops.Length > 0)
                _inbox.Add((Sender, s.Ops));
        });
        Command<Release>(r =>
        {
            _released.AddRange(r.UnmapIds.Span);
            _settings.Pools?.Releases.Return(r.UnmapIds);
            if (r.AtNs > _releasedAt)
                _releasedAt = r.AtNs;
        });
        Command<Commit>(OnCommit);
        Command<GetSummary>(_ => Sender.Tell(MakeSummary()));
        Command<SaveSnapshotSuccess>(s => DeleteSnapshots(new SnapshotSelectionCriteria(s.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(f => _log.Warning("Snapshot of {0} failed: {1}", PersistenceId, f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(_ => { });
    }

    /// <inheritdoc/>
    public override string PersistenceId => PtActors.Persistence.PersistenceIds.For(_settings.RunId, _settings.Domain);

    private static DomainModel NewModel(Settings s) => DomainRecovery.NewModel(s.Domain, s.Config, s.IovaStart, s.IovaLimit);

    private void OnCommit(Commit commit)
    {
        var coordinator = Sender;
        // What the unit's walks wrote into the tables since the last commit (its window is processed: nothing
        // writes now) becomes part of this commit's first event.
        var hardware = _model.TakeHardwareWrites();
        if (_inbox.Count == 0 && _released.Count == 0 && hardware.Length == 0)
        {
            coordinator.Tell(new Committed(commit.Window, _settings.Domain, 0, 0));
            return;
        }

        var ops = InStampOrder();
        var events = new List<DomainBatch>();
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
            ulong digest = _model.ApplyBatch(hw, rel, _releasedAt, slice.Span, _outcome);
            events.Add(new DomainBatch(rel, _releasedAt, slice, digest) { HardwareWrites = hw });
            offset += n;
        }
        while (offset < ops.Length);
        var flushes = _outcome.Flushes.Count == 0 ? [] : _outcome.Flushes.ToArray();
        int persisted = 0;
        // Nothing else is handled until every event of PersistAll is written, so _outcome stays as it is.
        PersistAll(events, _ =>
        {
            if (++persisted < events.Count)
                return;
            Answer(commit.Window, flushes, released);
            _batchesSinceSnapshot += events.Count;
            if (_settings.SnapshotEvery > 0 && _batchesSinceSnapshot >= _settings.SnapshotEvery)
            {
                // Captured before the coordinator hears of the commit: once it does, the unit may walk (and set
                // dirty bits in) the tables, and those writes belong to the next commit's event.
                _batchesSinceSnapshot = 0;
                SaveSnapshot(_model.Capture());
            }
            coordinator.Tell(new Committed(commit.Window, _settings.Domain, _outcome.Results.Count, events.Count));
        });
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
        // Under strict and batch:N an unmap is answered once the flush covering it completed.
        foreach (long id in released)
        {
            if (_heldReplies.Remove(id, out var held))
                Reply(held.Host, held.Result);
        }
        var notices = _outcome.Notices;
        int next = 0;
        IActorRef? host = null;
        int hostDevice = -1;
        foreach (var result in _outcome.Results)
        {
            bool noticed = next < notices.Count && notices[next].Id == result.Id;
            if (noticed)
                next++;
            int device = (int)(result.Id >> 32);
            if (device != hostDevice && !_hostOfDevice.TryGetValue(device, out host))
            {
                _dropped++; // submitted before a restart: its host was never told it ran
                hostDevice = -1;
                continue;
            }
            hostDevice = device;
            if (noticed && _settings.ReplyUnmapsAfterFlush)
                _heldReplies[result.Id] = (host!, result);
            else
                Reply(host!, result);
        }
        foreach (var (to, list) in _replies)
        {
            if (list.Count > 0)
                to.Tell(new Results(window, _settings.Domain, list.Take()));
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

    private void Reply(IActorRef host, in DmaOpResult result)
    {
        if (_settings.AckLog is not null)
            _acked.Add(result.Id);
        foreach (var (to, list) in _replies)
        {
            if (ReferenceEquals(to, host))
            {
                list.Add(result);
                return;
            }
        }
        var outbox = new Outbox<DmaOpResult>(_settings.Pools?.Results);
        outbox.Add(result);
        _replies.Add((host, outbox));
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
