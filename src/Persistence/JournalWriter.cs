using Akka.Actor;
using Akka.Persistence;

namespace PtActors.Persistence;

/// <summary>
/// Writes a list of events to one persistence id that must be empty (a recording made outside the simulator's
/// actors, e.g. an imported trace). Replies <see cref="Written"/> once every event is durable, or a
/// <see cref="Status.Failure"/> naming what went wrong (the id already holds events; a write failed).
/// </summary>
public sealed class JournalWriter : ReceivePersistentActor
{
    /// <summary>Writes <c>Events</c>, in order, after the events written so far.</summary>
    public sealed record Write(IReadOnlyList<object> Events);

    /// <summary>The events are in the journal; <c>SequenceNr</c> is the last one's.</summary>
    public sealed record Written(long SequenceNr);

    private readonly string _id;
    private IActorRef _writing = ActorRefs.Nobody;
    private bool _fresh;

    public JournalWriter(string persistenceId)
    {
        _id = persistenceId;
        Recover<RecoveryCompleted>(_ => _fresh = LastSequenceNr == 0);
        Recover<object>(_ => { });
        Command<Write>(w =>
        {
            if (!_fresh && !_started)
            {
                Sender.Tell(new Status.Failure(new InvalidOperationException($"{_id} already holds {LastSequenceNr} events: nothing was written")));
                return;
            }
            _started = true;
            if (w.Events.Count == 0)
            {
                Sender.Tell(new Written(LastSequenceNr));
                return;
            }
            _writing = Sender;
            int left = w.Events.Count;
            PersistAll(w.Events, _ =>
            {
                if (--left == 0)
                {
                    _writing.Tell(new Written(LastSequenceNr));
                    _writing = ActorRefs.Nobody;
                }
            });
        });
    }

    private bool _started;

    /// <inheritdoc/>
    public override string PersistenceId => _id;

    public static Props Props(string persistenceId) => Akka.Actor.Props.Create(() => new JournalWriter(persistenceId));

    /// <inheritdoc/>
    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        _writing.Tell(new Status.Failure(new InvalidOperationException($"{_id}: writing event {sequenceNr} failed: {cause.Message}", cause)));
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    /// <inheritdoc/>
    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        _writing.Tell(new Status.Failure(new InvalidOperationException($"{_id}: the journal rejected event {sequenceNr}: {cause.Message}", cause)));
        base.OnPersistRejected(cause, @event, sequenceNr);
    }
}
