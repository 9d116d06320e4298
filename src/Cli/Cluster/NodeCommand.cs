using System.CommandLine;
using Akka.Actor;
using Akka.Configuration;
using PtActors.Actors;
using PtActors.Persistence;
using PtActors.Persistence.Postgres;
using PtActors.Cli.Simulate;

namespace PtActors.Cli.Cluster;

/// <summary>
/// <c>ptactors node --seed HOST:PORT [--port P] --postgres CONN</c>: a node of a PtActors cluster that runs lanes
/// (the role <c>lane</c>): it joins the cluster through the seed (a first node names itself), journals its lanes'
/// domains to the cluster's PostgreSQL database and runs until it is stopped (SIGINT or SIGTERM), leaving the
/// cluster on its way out so that its shards move to the other nodes.
/// </summary>
internal sealed class NodeCommand
{
    public const int ExitUsage = 2;

    private readonly TextWriter _stdout;
    private readonly TextWriter _stderr;
    private readonly Option<string> _seed;
    private readonly Option<int?> _port;
    private readonly Option<string?> _postgres;
    private readonly Option<string?> _publicHost;

    public NodeCommand(TextWriter stdout, TextWriter stderr)
    {
        _stdout = stdout;
        _stderr = stderr;
        _seed = new Option<string>("--seed")
        {
            Description = "The cluster's seed nodes, HOST:PORT[,HOST:PORT...] (the same list on every node; the first one starts the cluster, naming itself first); this node listens on the address of this machine that reaches the first HOST",
            HelpName = "HOST:PORT[,HOST:PORT...]",
            Required = true,
        };
        _port = SimulateCommand.Valued<int?>("--port", "P", "The port this node listens on, 1..65535 [default: the seed's port]",
            static (string text, out string expected) =>
            {
                expected = "a port, 1..65535";
                return int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int p) && p is >= 1 and <= 65535 ? p : null;
            });
        _postgres = SimulateCommand.PostgresOption("The cluster's PostgreSQL database: this node's lanes journal their domains there (the database must exist; the tables are created)");
        _postgres.Required = true;
        _publicHost = SimulateCommand.Valued<string?>("--public-host", "HOST[:PORT]",
            "The address the other nodes reach this one at, when it is not one this machine listens on (behind NAT, in a container): the node then listens on every interface, on --port, and tells the cluster it is at HOST:PORT [default PORT: the one it listens on]",
            static (string text, out string expected) =>
            {
                expected = "HOST or HOST:PORT (a host name or IPv4 address, a port 1..65535)";
                return LaneSharding.ParseHostPort(text.Contains(':', StringComparison.Ordinal) ? text : text + ":1", out _) is null ? null : text;
            });
        Command = new Command("node", "Run a node of a PtActors cluster: it runs the lanes `simulate --cluster` starts on it, until it is stopped.")
        {
            _seed, _port, _postgres, _publicHost,
        };
        Command.Validators.Add(result =>
        {
            if (result.GetResult(_seed) is { Tokens: [var seed] } && LaneSharding.ParseSeeds(seed.Value, out string? problem) is null)
                result.AddError($"--seed: {problem}");
        });
        Command.SetAction((parse, ct) => RunAsync(parse.GetValue(_seed)!, parse.GetValue(_port), parse.GetValue(_postgres)!, parse.GetValue(_publicHost), ct));
    }

    public Command Command { get; }

    private async Task<int> RunAsync(string seed, int? port, string postgres, string? publicHost, CancellationToken ct)
    {
        var seeds = LaneSharding.SeedList(seed);
        var (_, seedPort) = LaneSharding.ParseHostPort(seeds[0], out _)!.Value;
        int listen = port ?? seedPort;
        // This node listens on the address of this machine the first seed is reached from (the seed's own on its
        // machine) — or, reached at a public address, on every interface, telling the cluster the public one.
        (string Host, int Port)? advertised = publicHost is null ? null
            : publicHost.Contains(':', StringComparison.Ordinal) ? LaneSharding.ParseHostPort(publicHost, out _)!.Value
            : (publicHost, listen);
        string host = advertised is null ? LaneSharding.LocalAddressTowards(seeds[0]) : "0.0.0.0";
        var (shownHost, shownPort) = advertised ?? (host, listen);
        var (problem, why) = await PostgresDatabase.CheckAsync(postgres, forReading: false, ct).ConfigureAwait(false);
        if (problem != PostgresDatabase.Problem.None)
        {
            _stderr.WriteLine($"ptactors node: cannot use --postgres: {why}");
            return ExitUsage;
        }
        var config = ConfigurationFactory.ParseString("akka.loglevel = WARNING\nakka.stdout-loglevel = WARNING\nakka.log-dead-letters = off")
            .WithFallback(LaneSharding.NodeConfig(host, listen, advertised, seeds, LaneSharding.Role))
            .WithFallback(Simulator.LaneWire);
        ActorSystem system;
        try
        {
            system = PersistentActorSystem.Create(LaneSharding.SystemName, PersistenceBackend.Postgres(postgres), config);
        }
        catch (Exception e)
        {
            // The port taken, the host not an address of this machine: the node cannot start.
            _stderr.WriteLine($"ptactors node: cannot start on {host}:{listen}: {PostgresDatabase.Redact(e.Message, postgres)}");
            return ExitUsage;
        }
        try
        {
            await PersistentActorSystem.ReadyAsync(system, TimeSpan.FromSeconds(60)).ConfigureAwait(false);
            LaneSharding.StartRegion(system);
            var up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Akka.Cluster.Cluster.Get(system).RegisterOnMemberUp(() => up.TrySetResult());
            await up.Task.WaitAsync(ct).ConfigureAwait(false);
            string listening = advertised is null ? "" : $", listening on {host}:{listen}";
            _stdout.WriteLine($"node akka.tcp://{LaneSharding.SystemName}@{shownHost}:{shownPort} is up (role {LaneSharding.Role}, seed {seed}{listening}); stop it with Ctrl-C or SIGTERM");
            _stdout.Flush();
            await Task.Delay(Timeout.Infinite, ct).ConfigureAwait(false);
            return 0;
        }
        catch (OperationCanceledException)
        {
            // Stopped: leave the cluster (the shards move to the other nodes), then end.
            _stdout.WriteLine("node stopping: leaving the cluster");
            await CoordinatedShutdown.Get(system).Run(CoordinatedShutdown.ClrExitReason.Instance).ConfigureAwait(false);
            return 0;
        }
        finally
        {
            await system.Terminate().ConfigureAwait(false);
        }
    }
}
