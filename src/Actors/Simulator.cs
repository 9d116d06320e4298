using Akka.Actor;
using Akka.Configuration;
using PtActors.Persistence;
using PtActors.Persistence.Runs;

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

    internal static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(60);

    /// <summary>The lane protocol's serializer bindings (config/lanes.conf).</summary>
    public static readonly Config LaneWire = ConfigurationFactory.ParseString(PtActors.Persistence.PersistenceConfig.Template("lanes.conf"));

    private readonly Config _config;
    private readonly bool _cluster;

    /// <summary>How long a run waits for its node to join the cluster and the lane region to be reachable.</summary>
    /// <summary>How long a cluster run waits to join and to see a lane node up (tests shorten it).</summary>
    internal TimeSpan JoinTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// A simulator whose actor systems also get <paramref name="extra"/> (HOCON over the defaults; null: none);
    /// <paramref name="cluster"/>: <paramref name="extra"/> makes the system a cluster member (config/cluster.conf and
    /// its node's address and seeds), and the run's lanes are sharded over the cluster's lane nodes.
    /// </summary>
    public Simulator(Config? extra = null, bool cluster = false)
    {
        _cluster = cluster;
        var config = Quiet.WithFallback(LaneWire);
        _config = extra is null ? config : extra.WithFallback(config);
    }

    /// <summary>
    /// Joins the cluster (through <paramref name="seed"/>, or the configured seed nodes) as the run's coordinator and
    /// returns a proxy of the lane region, once at least one lane node is up; a clear error if either does not happen
    /// within <see cref="JoinTimeout"/>.
    /// </summary>
    private async Task<IActorRef> JoinAsync(ActorSystem system, string? seed, CancellationToken cancellationToken)
    {
        var cluster = Akka.Cluster.Cluster.Get(system);
        string through = seed ?? "its seed nodes";
        var member = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        cluster.RegisterOnMemberUp(() => member.TrySetResult());
        try
        {
            await member.Task.WaitAsync(JoinTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new InvalidOperationException(
                $"could not join the cluster through {through} within {JoinTimeout.TotalSeconds:0} s: no node answered there (is a `ptactors node --seed {seed ?? "HOST:PORT"}` running, and reachable from this machine?)");
        }
        var deadline = DateTime.UtcNow + JoinTimeout;
        while (!HasLaneNode(cluster.State))
        {
            if (DateTime.UtcNow >= deadline)
                throw new InvalidOperationException($"the cluster joined through {through} has no lane node up (start one with `ptactors node --seed ...`)");
            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }
        return LaneSharding.StartProxy(system);

        static bool HasLaneNode(Akka.Cluster.ClusterEvent.CurrentClusterState state)
        {
            foreach (var m in state.Members)
            {
                if (m.Status == Akka.Cluster.MemberStatus.Up && m.HasRole(LaneSharding.Role))
                    return true;
            }
            return false;
        }
    }

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
        bool cluster = _cluster || settings.ClusterSeed is not null;
        var config = settings.ClusterSeed is { } seed
            ? _config.WithFallback(LaneSharding.NodeConfig(LaneSharding.LocalAddressTowards(LaneSharding.SeedList(seed)[0]), 0, LaneSharding.SeedList(seed), "coordinator"))
            : _config;
        var system = PersistentActorSystem.Create(LaneSharding.SystemName, backend, config);
        try
        {
            // The run (and its clock) starts on a backend that answers: for SQLite, its tables exist and the
            // plugin's first reads are done, so a broken database fails here and one-time start-up is not a run's.
            await PersistentActorSystem.ReadyAsync(system, ReadyTimeout).ConfigureAwait(false);
            // On a cluster, joined and with a lane node to run on before the run is recorded as started.
            IActorRef? lanes = cluster ? await JoinAsync(system, settings.ClusterSeed, cancellationToken).ConfigureAwait(false) : null;
            // The run is in the registry before anything of it is written; a run id already there is refused.
            var registry = system.ActorOf(RunRegistry.Props(), "runs");
            await RecordStartAsync(registry, settings).ConfigureAwait(false);
            beforeStart?.Invoke(system);
            var done = new TaskCompletionSource<SimulationResult>(TaskCreationOptions.RunContinuationsAsynchronously);
            using var reg = cancellationToken.Register(() => done.TrySetCanceled(cancellationToken));
            if (cluster)
            {
                // Removed from the cluster under the run (the split-brain resolver downs the side that lost the majority:
                // e.g. this process when most lane nodes died at once): the actor system stops, and with it the run.
                _ = system.WhenTerminated.ContinueWith(_ => done.TrySetException(new InvalidOperationException(
                    "this process was removed from the cluster (it lost contact with the majority of its members): the run stops here " +
                    "(everything acknowledged so far is in the journal; `verify` checks it)")), TaskScheduler.Default);
            }
            using var ackLog = settings.AckLogPath is { } path ? AckLog.Open(path, settings.RunId) : null;
            system.ActorOf(Props.Create(() => new SimulationCoordinator(settings, progress, done, ackLog, lanes)), "coordinator");
            SimulationResult result;
            try
            {
                result = await done.Task.ConfigureAwait(false);
            }
            catch (Exception e)
            {
                string why = e is OperationCanceledException ? "cancelled" : e.Message;
                await TryRecordEndAsync(registry, new RunEnded(settings.RunId, RunOutcome.Failed, NowMs(), 0, "", "", why)).ConfigureAwait(false);
                throw;
            }
            await RecordEndAsync(registry, new RunEnded(settings.RunId, RunOutcome.Completed, NowMs(), result.Ops, result.TableHash, result.MemoryHash, "")
            {
                WindDown = result.WindDown.Lanes,
                Domains = result.Domains.Domains,
            })
                .ConfigureAwait(false);
            return result;
        }
        finally
        {
            await system.Terminate().ConfigureAwait(false);
            if (backend.Kind == PersistenceBackendKind.Postgres)
                PtActors.Persistence.Postgres.PostgresDatabase.ClearPools(); // no idle server connections left behind
        }
    }

    internal static long NowMs() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    /// <summary>Records the run's start (durable when this returns); throws <see cref="RunIdTakenException"/> for a run id in use.</summary>
    internal static async Task RecordStartAsync(IActorRef registry, SimulationSettings settings)
    {
        string config = settings.Describe();
        string hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(config)))[..16];
        var reply = await registry.Ask<object>(new RecordRun(settings.RunId, hash, NowMs(), config), ReadyTimeout).ConfigureAwait(false);
        if (reply is RunRejected rejected)
            throw new RunIdTakenException(settings.RunId, rejected.Reason);
    }

    internal static async Task RecordEndAsync(IActorRef registry, RunEnded end)
    {
        var reply = await registry.Ask<object>(new RecordRunEnd(end), ReadyTimeout).ConfigureAwait(false);
        if (reply is RunRejected rejected)
            throw new InvalidOperationException($"the run's end could not be recorded: {rejected.Reason}");
    }

    /// <summary>Records a failed run's end if the journal still takes writes (it may be why the run failed).</summary>
    private static async Task TryRecordEndAsync(IActorRef registry, RunEnded end)
    {
        try
        {
            await registry.Ask<object>(new RecordRunEnd(end), TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidOperationException or AskTimeoutException or TaskCanceledException)
        {
            // The run's own error is what the user needs; the run is listed as interrupted.
        }
    }
}

/// <summary>Where the CLI gets its runner.</summary>
public static class SimulatorFactory
{
    /// <summary>The actor simulator.</summary>
    public static ISimulationRunner Create() => new Simulator();
}
