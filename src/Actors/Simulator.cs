using Akka.Actor;
using Akka.Configuration;
using PtActors.Persistence;

namespace PtActors.Actors;

/// <summary>The actor simulator: an actor system on the chosen persistence backend, one coordinator, one run.</summary>
public sealed class Simulator : ISimulationRunner
{
    /// <summary>
    /// Akka logs nothing to the console: an actor's failure would print its stack trace there, and the coordinator
    /// reports every failure as the run's one error line instead.
    /// </summary>
    private static readonly Config Quiet = ConfigurationFactory.ParseString(
        "akka.loglevel = OFF\nakka.stdout-loglevel = OFF\nakka.log-dead-letters = off\nakka.log-dead-letters-during-shutdown = off\n" +
        "akka.actor.default-dispatcher.throughput = 64");

    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(60);

    /// <inheritdoc/>
    public Task<SimulationResult> RunAsync(SimulationSettings settings, PersistenceBackend backend,
        IProgress<SimulationProgress>? progress, CancellationToken cancellationToken)
        => RunAsync(settings, backend, progress, beforeStart: null, cancellationToken);

    /// <summary>The same, calling <paramref name="beforeStart"/> with the actor system before the run starts (tests arm fault injection there).</summary>
    internal async Task<SimulationResult> RunAsync(SimulationSettings settings, PersistenceBackend backend,
        IProgress<SimulationProgress>? progress, Action<ActorSystem>? beforeStart, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(settings);
        PersistenceIds.ThrowIfInvalid(settings.RunId, "run id");
        var system = PersistentActorSystem.Create("ptactors", backend, Quiet);
        try
        {
            // The run (and its clock) starts on a backend that answers: for SQLite, its tables exist and the
            // plugin's first reads are done, so a broken database fails here and one-time start-up is not a run's.
            await PersistentActorSystem.ReadyAsync(system, ReadyTimeout).ConfigureAwait(false);
            beforeStart?.Invoke(system);
            var done = new TaskCompletionSource<SimulationResult>(TaskCreationOptions.RunContinuationsAsynchronously);
            using var reg = cancellationToken.Register(() => done.TrySetCanceled(cancellationToken));
            system.ActorOf(Props.Create(() => new SimulationCoordinator(settings, progress, done)), "coordinator");
            return await done.Task.ConfigureAwait(false);
        }
        finally
        {
            await system.Terminate().ConfigureAwait(false);
        }
    }
}

/// <summary>Where the CLI gets its runner.</summary>
public static class SimulatorFactory
{
    /// <summary>The actor simulator.</summary>
    public static ISimulationRunner Create() => new Simulator();
}
