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
        bool ReplyUnmapsAfterFlush = false);

    /// <summary>Operations of one window from one device host (the sender gets their results).</summary>
    public sealed record Submit(long Window, DmaOp[] Ops);

    /// <summary>The flushes covering these unmaps completed at <c>AtNs</c>: their IOVAs, pages and locks may go.</summary>
    public sealed record Release(long[] UnmapIds, ulong AtNs);

    /// <summary>Every input of the window is in: apply, persist, answer. The sender gets <see cref="Committed"/>.</summary>
    public sealed record Commit(long Window);

    /// <summary>Results of operations a host submitted (durable when sent).</summary>
    public sealed record Results(long Window, string Domain, DmaOpResult[] Items);

    /// <summary>Durable unmaps, and flushes the table asked for, for the IOTLB side.</summary>
    public sealed record Unmapped(long Window, string Domain, UnmapNotice[] Notices, FlushNotice[] Flushes);

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
    private readonly List<(DmaOp Op, IActorRef Host)> _inbox = new();
    private readonly List<long> _released = new();
    private readonly Dictionary<long, IActorRef> _hosts = new();
    private readonly List<AppliedOp> _ran = new();
    private readonly Dictionary<long, (IActorRef Host, DmaOpResult Result)> _heldReplies = new();
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
        _model = NewModel(settings);

        Recover<SnapshotOffer>(offer =>
        {
            _model = DomainModel.Restore((DomainModelSnapshot)offer.Snapshot);
            _model.DeferFlushes();
        });
        Recover<DomainBatch>(batch =>
        {
            _model.Replay(batch, _ran);
            _model.TakeFlushes(); // they were sent (or lost with the crash) when the batch was first applied
        });
        Recover<RecoveryCompleted>(_ => _settings.Iotlb?.Tell(new Ready(_settings.Domain, _model.Domain)));

        Command<Submit>(s =>
        {
            foreach (var op in s.Ops)
                _inbox.Add((op, Sender));
        });
        Command<Release>(r =>
        {
            _released.AddRange(r.UnmapIds);
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

    private static DomainModel NewModel(Settings s)
    {
        var err = DomainModel.Create(s.Config, s.IovaStart, s.IovaLimit, out var model);
        if (err != Errno.None)
            throw new ArgumentException($"Domain '{s.Domain}': the {s.Config.Format} cfg is refused ({err}).");
        model!.DeferFlushes();
        return model;
    }

    private void OnCommit(Commit commit)
    {
        var coordinator = Sender;
        if (_inbox.Count == 0 && _released.Count == 0)
        {
            coordinator.Tell(new Committed(commit.Window, _settings.Domain, 0, 0));
            return;
        }

        // Stamp order, whatever order the hosts' messages arrived in.
        _inbox.Sort(static (a, b) => a.Op.CompareTo(b.Op));
        foreach (var (op, host) in _inbox)
            _hosts[op.Id] = host;

        var events = new List<DomainBatch>();
        _ran.Clear();
        var released = _released.ToArray();
        int max = Math.Max(1, _settings.MaxOpsPerEvent);
        int offset = 0;
        do
        {
            int n = Math.Min(max, _inbox.Count - offset);
            var ops = new DmaOp[n];
            for (int i = 0; i < n; i++)
                ops[i] = _inbox[offset + i].Op;
            var rel = offset == 0 ? released : [];
            ulong digest = _model.ApplyBatch(rel, _releasedAt, ops, _ran);
            events.Add(new DomainBatch(rel, _releasedAt, ops, digest));
            offset += n;
        }
        while (offset < _inbox.Count);
        _inbox.Clear();
        _released.Clear();

        var ran = _ran.ToArray();
        var flushes = _model.TakeFlushes();
        int persisted = 0;
        PersistAll(events, _ =>
        {
            if (++persisted < events.Count)
                return;
            Answer(commit.Window, ran, flushes, released);
            coordinator.Tell(new Committed(commit.Window, _settings.Domain, ran.Length, events.Count));
            _batchesSinceSnapshot += events.Count;
            if (_settings.SnapshotEvery > 0 && _batchesSinceSnapshot >= _settings.SnapshotEvery)
            {
                _batchesSinceSnapshot = 0;
                SaveSnapshot(_model.Capture());
            }
        });
    }

    /// <summary>Results to the hosts that submitted, grouped per host in stamp order; notices to the IOTLB side.</summary>
    private void Answer(long window, AppliedOp[] ran, FlushNotice[] flushes, long[] released)
    {
        var perHost = new Dictionary<IActorRef, List<DmaOpResult>>();
        var notices = new List<UnmapNotice>();
        void Reply(IActorRef host, in DmaOpResult result)
        {
            if (!perHost.TryGetValue(host, out var list))
                perHost[host] = list = new List<DmaOpResult>();
            list.Add(result);
        }

        // Under strict and batch:N an unmap is answered once the flush covering it completed.
        foreach (long id in released)
        {
            if (_heldReplies.Remove(id, out var held))
                Reply(held.Host, held.Result);
        }
        foreach (var a in ran)
        {
            if (a.Notice is { } n)
                notices.Add(n);
            if (!_hosts.Remove(a.Op.Id, out var host))
            {
                _dropped++; // submitted before a restart: its host was never told it ran
                continue;
            }
            if (a.Notice is not null && _settings.ReplyUnmapsAfterFlush)
                _heldReplies[a.Op.Id] = (host, a.Result);
            else
                Reply(host, a.Result);
        }
        foreach (var (host, list) in perHost)
            host.Tell(new Results(window, _settings.Domain, list.ToArray()));
        if (notices.Count > 0 || flushes.Length > 0)
            _settings.Iotlb?.Tell(new Unmapped(window, _settings.Domain, notices.ToArray(), flushes));
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
