using Akka.Actor;
using Akka.Persistence;
using PtActors.Engine;
using PtActors.Engine.Dma;

namespace PtActors.Actors;

/// <summary>
/// How a domain's state is rebuilt from its journal, written once for the domain actor and for every reader of
/// a recording (<see cref="RunVerifier"/>): a fresh model, or a snapshot's, then every event replayed in order.
/// </summary>
public static class DomainRecovery
{
    /// <summary>A fresh domain as the simulator creates it (flushes handed to the unit, hardware writes kept).</summary>
    public static DomainModel NewModel(string domain, in PtConfig config, ulong iovaStart, ulong iovaLimit)
    {
        var err = DomainModel.Create(config, iovaStart, iovaLimit, out var model);
        if (err != Errno.None)
            throw new ArgumentException($"Domain '{domain}': the {config.Format} cfg is refused ({err}).");
        return Attach(model!);
    }

    /// <summary>The model a snapshot holds, attached as <see cref="NewModel"/>'s.</summary>
    public static DomainModel FromSnapshot(object snapshot)
        => Attach(DomainModel.Restore(snapshot as DomainModelSnapshot
            ?? throw new InvalidOperationException($"a domain's snapshot is a {snapshot.GetType().Name}, not a domain snapshot")));

    /// <summary>
    /// Replays one journalled batch (throws when the engine no longer gives the recorded results). The notices and
    /// flushes it gives (in <paramref name="scratch"/>) were sent, or lost with a crash, when the batch was first
    /// applied; the unit never sees them again.
    /// </summary>
    public static void Replay(DomainModel model, DomainBatch batch, BatchOutcome scratch) => model.Replay(batch, scratch);

    private static DomainModel Attach(DomainModel model)
    {
        model.DeferFlushes();
        model.RecordHardwareWrites();
        return model;
    }
}

/// <summary>A domain rebuilt from its journal, with what its journal held.</summary>
/// <param name="Domain">The domain's name.</param>
/// <param name="Model">Its state.</param>
/// <param name="Events">Events replayed (the tail only, when recovered from a snapshot).</param>
/// <param name="Ops">Operations in those events.</param>
/// <param name="LastSequenceNr">The journal's last sequence number (0: nothing was ever written).</param>
/// <param name="SnapshotSequenceNr">The sequence number of the snapshot used, 0 when none.</param>
/// <param name="OpIds">The ids of every operation replayed, when asked for.</param>
public sealed record RecoveredDomain(string Domain, DomainModel Model, long Events, long Ops, long LastSequenceNr, long SnapshotSequenceNr, HashSet<long>? OpIds);

/// <summary>
/// Recovers one domain's journal and stops, without ever writing: from its latest snapshot plus the events after
/// it, or (<c>fromSnapshot: false</c>) from the events alone.
/// </summary>
internal sealed class DomainRecoveryActor : ReceivePersistentActor
{
    private readonly string _persistenceId;
    private readonly bool _fromSnapshot;
    private readonly TaskCompletionSource<RecoveredDomain> _done;
    private readonly BatchOutcome _scratch = new();
    private DomainModel _model;
    private long _events, _ops, _snapshotSeq;
    private readonly HashSet<long>? _ids;

    public DomainRecoveryActor(string persistenceId, string domain, PtConfig config, ulong iovaStart, ulong iovaLimit,
        bool fromSnapshot, bool collectIds, TaskCompletionSource<RecoveredDomain> done)
    {
        _persistenceId = persistenceId;
        _fromSnapshot = fromSnapshot;
        _done = done;
        _ids = collectIds ? new HashSet<long>() : null;
        _model = DomainRecovery.NewModel(domain, config, iovaStart, iovaLimit);

        Recover<SnapshotOffer>(offer =>
        {
            _model = DomainRecovery.FromSnapshot(offer.Snapshot);
            _snapshotSeq = offer.Metadata.SequenceNr;
        });
        Recover<DomainBatch>(batch =>
        {
            DomainRecovery.Replay(_model, batch, _scratch);
            _events++;
            _ops += batch.Ops.Length;
            if (_ids is not null)
            {
                foreach (ref readonly var op in batch.Ops.Span)
                    _ids.Add(op.Id);
            }
        });
        Recover<RecoveryCompleted>(_ =>
        {
            _done.TrySetResult(new RecoveredDomain(domain, _model, _events, _ops, LastSequenceNr, _snapshotSeq, _ids));
            Context.Stop(Self);
        });
    }

    public static Props Props(string persistenceId, string domain, PtConfig config, ulong iovaStart, ulong iovaLimit,
        bool fromSnapshot, bool collectIds, TaskCompletionSource<RecoveredDomain> done)
        => Akka.Actor.Props.Create(() => new DomainRecoveryActor(persistenceId, domain, config, iovaStart, iovaLimit, fromSnapshot, collectIds, done));

    public override string PersistenceId => _persistenceId;

    public override Recovery Recovery => _fromSnapshot ? Recovery.Default : new Recovery(SnapshotSelectionCriteria.None);

    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        _done.TrySetException(new InvalidOperationException(
            $"{_persistenceId} cannot be recovered at event {LastSequenceNr + 1}: {reason.Message.ReplaceLineEndings(" ")}", reason));
    }
}
