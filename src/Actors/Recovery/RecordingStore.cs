using Akka.Actor;
using PtActors.Engine;
using PtActors.Engine.Dma;
using PtActors.Persistence;
using PtActors.Persistence.Runs;

namespace PtActors.Actors;

/// <summary>
/// Stores a recording made outside the simulator's actors (an imported trace) as <c>simulate</c> stores its runs:
/// the run in the registry first (a run id already there is refused), then each domain's journal, then the run's
/// end. Listed by <c>runs</c>, checked by <c>verify</c>, replayed by <c>replay</c> like any other.
/// </summary>
public static class RecordingStore
{
    /// <summary>Events per write: each is one group commit.</summary>
    private const int EventsPerWrite = 1000;

    private static readonly TimeSpan WriteTimeout = TimeSpan.FromMinutes(2);

    /// <summary>
    /// The end of a completed recording made here: its hashes over <paramref name="tables"/> (every domain's table as
    /// the recording leaves it), and each domain's journal length and memory-hash prefix.
    /// </summary>
    public static RunEnded CompletedEnd(string runId, long ops, IReadOnlyDictionary<string, IommuDomain> tables,
        IReadOnlyList<List<DomainBatch>> journals, IReadOnlyList<PtActors.Engine.Replay.LaneWindDown> windDown)
    {
        ArgumentNullException.ThrowIfNull(tables);
        ArgumentNullException.ThrowIfNull(journals);
        var names = new string[journals.Count];
        for (int d = 0; d < names.Length; d++)
            names[d] = SimulationSettings.DomainName(d);
        return new RunEnded(runId, RunOutcome.Completed, Simulator.NowMs(), ops, DomainHashes.Canonical(tables), DomainHashes.Memory(tables), "")
        {
            WindDown = windDown,
            Domains = PtActors.Engine.Replay.RunDomainEnds.Of(names, d => journals[d].Count, tables).Domains,
        };
    }

    /// <summary>Writes run <paramref name="settings"/>'s <paramref name="journals"/> (one per domain, in domain order) and <paramref name="end"/>.</summary>
    /// <exception cref="RunIdTakenException">The run id is in the database already (nothing was written).</exception>
    public static async Task SaveAsync(ActorSystem system, SimulationSettings settings, IReadOnlyList<List<DomainBatch>> journals, RunEnded end,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(system);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(journals);
        ArgumentNullException.ThrowIfNull(end);
        if (journals.Count != settings.Domains)
            throw new ArgumentException($"{journals.Count} journals for {settings.Domains} domains");
        await PersistentActorSystem.ReadyAsync(system, Simulator.ReadyTimeout).ConfigureAwait(false);
        var registry = system.ActorOf(RunRegistry.Props(), "runs");
        await Simulator.RecordStartAsync(registry, settings).ConfigureAwait(false);
        for (int d = 0; d < journals.Count; d++)
        {
            string id = PersistenceIds.For(settings.RunId, SimulationSettings.DomainName(d));
            var writer = system.ActorOf(JournalWriter.Props(id));
            var batches = journals[d];
            int offset = 0;
            do
            {
                cancellationToken.ThrowIfCancellationRequested();
                int n = Math.Min(EventsPerWrite, batches.Count - offset);
                var events = new object[n];
                for (int i = 0; i < n; i++)
                    events[i] = batches[offset + i];
                var reply = await writer.Ask<object>(new JournalWriter.Write(events), WriteTimeout, cancellationToken).ConfigureAwait(false);
                if (reply is Status.Failure failure)
                    throw new InvalidOperationException(failure.Cause.Message, failure.Cause);
                offset += n;
            }
            while (offset < batches.Count);
            writer.Tell(PoisonPill.Instance);
        }
        await Simulator.RecordEndAsync(registry, end).ConfigureAwait(false);
    }
}
