using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using PtActors.Engine.Replay;

namespace PtActors.Actors;

/// <summary>
/// The DMA journal of one IOMMU unit (<c>simulate --record-dmas</c>): a child of the unit's <see cref="IotlbActor"/>
/// that persists each window's DMAs as one <see cref="WindowDmas"/> event under <see cref="PersistenceIdOf"/> and
/// answers <see cref="Recorded"/> once the event is written; the unit reports its window processed only then. A
/// failed or rejected write stops the recorder; the unit starts a new one, which recovers the journal and writes
/// the window again (at most 5 times for one window, then the run ends): nothing is acknowledged that the journal
/// does not hold, and no window is journalled twice.
/// </summary>
internal sealed class DmaRecorder : ReceivePersistentActor
{
    /// <summary>Persist these DMAs (the sender gets <see cref="Recorded"/>).</summary>
    public sealed record Record(WindowDmas Dmas) : INoSerializationVerificationNeeded;

    /// <summary>The window's DMAs are in the journal.</summary>
    public sealed record Recorded(long Window) : INoSerializationVerificationNeeded;

    private readonly string _persistenceId;
    private long _lastWindow;
    private readonly ILoggingAdapter _log = Context.GetLogger();

    /// <summary>The persistence id of unit <paramref name="unit"/>'s DMA journal in run <paramref name="runId"/>: <c>RUNID/UNIT.dmas</c>.</summary>
    public static string PersistenceIdOf(string runId, string unit) => PtActors.Persistence.PersistenceIds.For(runId, unit + ".dmas");

    public static Props Props(string persistenceId) => Akka.Actor.Props.Create(() => new DmaRecorder(persistenceId));

    public DmaRecorder(string persistenceId)
    {
        _persistenceId = persistenceId;
        // A run's journal starts empty; events found at recovery (a recorder started again after a failed write)
        // are durable already: a window they hold is answered without writing it twice.
        Recover<WindowDmas>(e => _lastWindow = e.Window);
        Command<Record>(r =>
        {
            var sender = Sender;
            if (r.Dmas.Window <= _lastWindow)
            {
                sender.Tell(new Recorded(r.Dmas.Window));
                return;
            }
            Persist(r.Dmas, e =>
            {
                _lastWindow = e.Window;
                sender.Tell(new Recorded(e.Window));
            });
        });
    }

    /// <inheritdoc/>
    public override string PersistenceId => _persistenceId;

    /// <inheritdoc/>
    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        _log.Error(cause, "Journal rejected DMA event {0} of {1}.", sequenceNr, PersistenceId);
        Context.Stop(Self);
    }
}
