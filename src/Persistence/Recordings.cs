using Akka.Actor;
using Akka.Persistence.Query;
using Akka.Persistence.Sql.Query;
using Akka.Streams;
using Akka.Streams.Dsl;
using PtActors.Engine.Dma;

namespace PtActors.Persistence;

/// <summary>
/// Reads what a database's journal holds about a recording through Akka.Persistence.Query (the SQL read journal:
/// <see cref="PersistenceConfig.SqlReadJournalId"/>), without recovering any actor and without writing.
/// </summary>
public static class Recordings
{
    /// <summary>The events and operations the journals of <paramref name="persistenceIds"/> hold (domain batches).</summary>
    public static async Task<(long Events, long Ops)> CountAsync(ActorSystem system, IEnumerable<string> persistenceIds, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(system);
        var journal = PersistenceQuery.Get(system).ReadJournalFor<SqlReadJournal>(PersistenceConfig.SqlReadJournalId);
        var materializer = system.Materializer();
        long events = 0, ops = 0;
        foreach (string id in persistenceIds)
        {
            var (e, o) = await journal.CurrentEventsByPersistenceId(id, 0, long.MaxValue)
                .RunAggregate((Events: 0L, Ops: 0L), static (acc, envelope) => envelope.Event is DomainBatch batch
                    ? (acc.Events + 1, acc.Ops + batch.Ops.Length)
                    : acc, materializer)
                .WaitAsync(cancellationToken).ConfigureAwait(false);
            events += e;
            ops += o;
        }
        return (events, ops);
    }

    /// <summary>
    /// The domain batches the journal of <paramref name="persistenceId"/> holds, in sequence order (a recording's
    /// operations as the domain applied them). Any other event there is refused: a domain journal holds batches only.
    /// </summary>
    public static Task<List<DomainBatch>> ReadBatchesAsync(ActorSystem system, string persistenceId, CancellationToken cancellationToken = default)
        => ReadEventsAsync<DomainBatch>(system, persistenceId, "a domain batch", cancellationToken);

    /// <summary>
    /// The DMAs the journal of <paramref name="persistenceId"/> holds (an IOMMU unit's, journalled by
    /// <c>simulate --record-dmas</c>), one entry per window in sequence order. Any other event there is refused.
    /// </summary>
    public static Task<List<PtActors.Engine.Replay.WindowDmas>> ReadWindowDmasAsync(ActorSystem system, string persistenceId, CancellationToken cancellationToken = default)
        => ReadEventsAsync<PtActors.Engine.Replay.WindowDmas>(system, persistenceId, "a unit's DMAs of a window", cancellationToken);

    /// <summary>
    /// Every event of <paramref name="persistenceId"/>'s journal, in sequence order, each a <typeparamref name="T"/>
    /// (<paramref name="what"/> names one in the error for any other). A damaged event is an
    /// <see cref="InvalidDataException"/> naming the journal, the event and the serializer's refusal.
    /// </summary>
    private static async Task<List<T>> ReadEventsAsync<T>(ActorSystem system, string persistenceId, string what, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(system);
        var journal = PersistenceQuery.Get(system).ReadJournalFor<SqlReadJournal>(PersistenceConfig.SqlReadJournalId);
        var items = new List<T>();
        try
        {
            await journal.CurrentEventsByPersistenceId(persistenceId, 0, long.MaxValue)
                .RunForeach(envelope =>
                {
                    if (envelope.Event is not T item)
                        throw new InvalidDataException($"{persistenceId} event {envelope.SequenceNr} is a {envelope.Event?.GetType().Name ?? "null"}, not {what}");
                    items.Add(item);
                }, system.Materializer())
                .WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (Damaged(e) is { } damaged)
        {
            // The journal layer wraps the serializer's refusal of a damaged event: name the journal and the damage.
            throw new InvalidDataException($"{persistenceId} event {items.Count + 1}: {damaged.Message}", e);
        }
        return items;
    }

    /// <summary>The serializer's refusal of a damaged payload inside <paramref name="e"/>'s inner exceptions, or null.</summary>
    private static System.Runtime.Serialization.SerializationException? Damaged(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            if (x is System.Runtime.Serialization.SerializationException s)
                return s;
        }
        return null;
    }

}
