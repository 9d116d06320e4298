using Akka.Actor;
using Akka.Event;
using Akka.Persistence;

namespace PtActors.Persistence.Runs;

/// <summary>
/// The persistent list of simulation runs (persistence id "runs"): one <see cref="RunStarted"/> event
/// per run, a <see cref="RunRegistrySnapshot"/> every <c>snapshotEvery</c> events. A caller is
/// answered only after its event is in the journal; a failed write answers nothing and stops the
/// actor (run it under <see cref="PersistentSupervision.Backoff"/>, which recovers it from the journal).
/// </summary>
public sealed class RunRegistry : ReceivePersistentActor
{
    public const string Id = "runs";
    public const int DefaultSnapshotEvery = 100;

    private readonly List<RunStarted> _runs = [];
    private readonly Dictionary<string, RunStarted> _byId = new(StringComparer.Ordinal);
    private readonly List<RunEnded> _ends = [];
    private readonly Dictionary<string, RunEnded> _endById = new(StringComparer.Ordinal);
    private readonly int _snapshotEvery;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    private readonly Action<string>? _recoveryFailed;

    public RunRegistry(int snapshotEvery, Action<string>? recoveryFailed = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(snapshotEvery);
        _snapshotEvery = snapshotEvery;
        _recoveryFailed = recoveryFailed;

        Recover<SnapshotOffer>(offer =>
        {
            if (offer.Snapshot is not RunRegistrySnapshot snapshot)
                throw new InvalidOperationException($"unexpected snapshot {offer.Snapshot.GetType()} for '{Id}'");
            _runs.Clear();
            _byId.Clear();
            _ends.Clear();
            _endById.Clear();
            foreach (var run in snapshot.Runs) Apply(run);
            foreach (var end in snapshot.Ends) Apply(end);
        });
        Recover<RunStarted>(Apply);
        Recover<RunEnded>(Apply);

        Command<RecordRun>(Handle);
        Command<RecordRunEnd>(Handle);
        Command<GetRuns>(_ => Sender.Tell(new RunList([.. _runs], [.. _ends])));
        Command<SaveSnapshotSuccess>(ok =>
            DeleteSnapshots(new SnapshotSelectionCriteria(ok.Metadata.SequenceNr - 1)));
        Command<SaveSnapshotFailure>(failed =>
            _log.Warning(failed.Cause, "RunRegistry: snapshot at {0} not saved; recovery replays more events", failed.Metadata.SequenceNr));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(failed =>
            _log.Warning(failed.Cause, "RunRegistry: old snapshots not deleted"));
    }

    public override string PersistenceId => Id;

    /// <summary>Tells a reader why the registry cannot be recovered (the actor stops: a question to it gets no answer).</summary>
    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        _recoveryFailed?.Invoke($"the run registry (persistence id '{Id}') cannot be recovered at event {LastSequenceNr + 1}: {reason.Message.ReplaceLineEndings(" ")}");
        base.OnRecoveryFailure(reason, message);
    }

    /// <summary>The registry itself (unsupervised).</summary>
    public static Props Props(int snapshotEvery = DefaultSnapshotEvery) =>
        Akka.Actor.Props.Create(() => new RunRegistry(snapshotEvery, null));

    /// <summary>The registry for a reader: <paramref name="recoveryFailed"/> hears why, if it cannot be recovered.</summary>
    public static Props ReaderProps(Action<string> recoveryFailed) =>
        Akka.Actor.Props.Create(() => new RunRegistry(0, recoveryFailed));

    /// <summary>The registry under a backoff supervisor that restarts it (recovering from the journal) after a failed write.</summary>
    public static Props SupervisedProps(int snapshotEvery = DefaultSnapshotEvery, TimeSpan? minBackoff = null, TimeSpan? maxBackoff = null) =>
        PersistentSupervision.Backoff(Props(snapshotEvery), Id, minBackoff, maxBackoff);

    private void Handle(RecordRun cmd)
    {
        if (!PersistenceIds.IsValidPart(cmd.RunId))
        {
            Sender.Tell(new RunRejected(cmd.RunId, $"invalid run id: use 1..{PersistenceIds.MaxPartLength} characters of A-Z a-z 0-9 . _ -"));
            return;
        }
        var run = new RunStarted(cmd.RunId, cmd.ConfigHash ?? string.Empty, cmd.StartedUnixMs, cmd.Config ?? string.Empty);
        if (_byId.TryGetValue(run.RunId, out var existing))
        {
            // An identical repeat (a caller retrying after a lost reply) is answered as recorded.
            Sender.Tell(existing == run ? new RunRecorded(existing) : new RunRejected(run.RunId, "run id already recorded for another run"));
            return;
        }
        _writing = Sender;
        Persist(run, e =>
        {
            Apply(e);
            Sender.Tell(new RunRecorded(e));
            MaybeSnapshot();
        });
    }

    private void Handle(RecordRunEnd cmd)
    {
        var end = cmd.End;
        if (!_byId.ContainsKey(end.RunId))
        {
            Sender.Tell(new RunRejected(end.RunId, "no such run"));
            return;
        }
        if (_endById.TryGetValue(end.RunId, out var existing))
        {
            Sender.Tell(existing == end ? new RunEndRecorded(existing) : new RunRejected(end.RunId, "the run's end is already recorded"));
            return;
        }
        _writing = Sender;
        Persist(end, e =>
        {
            Apply(e);
            Sender.Tell(new RunEndRecorded(e));
            MaybeSnapshot();
        });
    }

    /// <summary>Whoever waits for the event being written: told of a failed write before the actor stops.</summary>
    private IActorRef _writing = ActorRefs.Nobody;

    /// <inheritdoc/>
    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        _writing.Tell(new Status.Failure(new InvalidOperationException($"the run registry could not write to the journal: {cause.Message}", cause)));
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    /// <inheritdoc/>
    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        _writing.Tell(new Status.Failure(new InvalidOperationException($"the journal rejected the run registry's event: {cause.Message}", cause)));
        base.OnPersistRejected(cause, @event, sequenceNr);
    }

    private void MaybeSnapshot()
    {
        if (_snapshotEvery > 0 && LastSequenceNr % _snapshotEvery == 0)
            SaveSnapshot(new RunRegistrySnapshot(_runs, _ends));
    }

    private void Apply(RunStarted run)
    {
        _runs.Add(run);
        _byId[run.RunId] = run;
    }

    private void Apply(RunEnded end)
    {
        _ends.Add(end);
        _endById[end.RunId] = end;
    }
}
