using System.Net;
using System.Net.Sockets;
using Akka.Actor;
using Akka.Configuration;
using PtActors.Engine.Hardware;
using PtActors.Persistence;
using Xunit;

namespace PtActors.Actors.Tests;

/// <summary>
/// Lanes as sharded entities: a run whose lanes start on another cluster node (loopback, in this process) gives
/// the figures of the same run in one process.
/// </summary>
public class ClusterLaneTests
{
    private static readonly Config Logging = ConfigurationFactory.ParseString("akka.loglevel = WARNING\nakka.stdout-loglevel = WARNING\nakka.log-dead-letters = off");

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [Theory]
    [InlineData("mixed", "lazy")]
    [InlineData("nic", "strict")]
    public async Task ARunWhoseLanesRunOnAnotherNodeGivesTheFiguresOfOneProcess(string workload, string policy)
    {
        Assert.True(FlushPolicySpec.TryParse(policy, out var spec));
        var settings = new SimulationSettings
        {
            Iommus = 2, Domains = 4, Devices = 16, Workload = workload, Policy = spec, Ops = 3000, Seed = 11, RunId = "c", Cpus = 2,
        };
        var plain = await new Simulator().RunAsync(settings, PersistenceBackend.InMemory, null, CancellationToken.None);

        int nodePort = FreePort(), coordinatorPort = FreePort();
        string seed = "127.0.0.1:" + nodePort;
        var node = PersistentActorSystem.Create(LaneSharding.SystemName, PersistenceBackend.InMemory,
            Logging.WithFallback(LaneSharding.NodeConfig("127.0.0.1", nodePort, [seed], LaneSharding.Role)).WithFallback(Simulator.LaneWire));
        try
        {
            LaneSharding.StartRegion(node);
            var clustered = await new Simulator(Logging.WithFallback(LaneSharding.NodeConfig("127.0.0.1", coordinatorPort, [seed], "coordinator")), cluster: true)
                .RunAsync(settings, PersistenceBackend.InMemory, null, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(120));
            Assert.Equal(plain with { OpsPerSec = 0, WallS = 0 }, clustered with { OpsPerSec = 0, WallS = 0 });
            // Back-pressure took part (devices were held back, from CPU backlogs folded over both lanes' reports), and
            // held them back alike on one process and across nodes.
            Assert.True(plain.Cost!.Throttled > 0, $"{workload} {policy}: nothing held back");
            // The lanes ran on the lane node (the coordinator's node has no lane region, only a proxy): its journal
            // holds every domain's events, as many as the run persisted.
            var journal = Akka.Persistence.Persistence.Instance.Apply(node).JournalFor(null);
            long events = 0;
            for (int d = 0; d < settings.Domains; d++)
            {
                var reply = await journal.Ask<object>((IActorRef to) => new Akka.Persistence.ReplayMessages(0, 0, 0, PersistenceIds.For("c", SimulationSettings.DomainName(d)), to),
                    TimeSpan.FromSeconds(10), CancellationToken.None);
                events += Assert.IsType<Akka.Persistence.RecoverySuccess>(reply).HighestSequenceNr;
            }
            Assert.Equal(plain.EventsPersisted, events);
            // And the run stopped its lanes when it ended.
            for (int i = 0; ; i++)
            {
                var state = await Akka.Cluster.Sharding.ClusterSharding.Get(node).ShardRegion(LaneSharding.TypeName)
                    .Ask<Akka.Cluster.Sharding.CurrentShardRegionState>(Akka.Cluster.Sharding.GetShardRegionState.Instance, TimeSpan.FromSeconds(10));
                if (state.Shards.All(shard => shard.EntityIds.Count == 0))
                    break;
                Assert.True(i < 50, "the run's lanes still run on the node 5 s after the run");
                await Task.Delay(100);
            }
        }
        finally
        {
            await node.Terminate();
        }
    }

    [Fact]
    public async Task ARunThatJoinsNoClusterFailsWithAClearErrorAndRecordsNothing()
    {
        // Nothing listens at the seed: the run cannot join.
        string seed = "127.0.0.1:" + FreePort();
        var settings = new SimulationSettings { RunId = "nojoin", Ops = 100, ClusterSeed = seed };
        var simulator = new Simulator(Logging) { JoinTimeout = TimeSpan.FromSeconds(3) };
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => simulator.RunAsync(settings, PersistenceBackend.InMemory, null, CancellationToken.None));
        Assert.Equal($"could not join the cluster through {seed} within 3 s: no node answered there (is a `ptactors node --seed {seed}` running, and reachable from this machine?)", e.Message);
    }

    [Fact]
    public async Task ARunOnAClusterWithoutALaneNodeFailsWithAClearError()
    {
        // A cluster of one node that runs no lanes (a coordinator's role): joined, but nowhere to run.
        int seedPort = FreePort();
        string seed = "127.0.0.1:" + seedPort;
        var other = ActorSystem.Create(LaneSharding.SystemName,
            Logging.WithFallback(LaneSharding.NodeConfig("127.0.0.1", seedPort, [seed], "coordinator")).WithFallback(Simulator.LaneWire));
        try
        {
            var settings = new SimulationSettings { RunId = "nolane", Ops = 100, ClusterSeed = seed };
            var simulator = new Simulator(Logging) { JoinTimeout = TimeSpan.FromSeconds(10) };
            var e = await Assert.ThrowsAsync<InvalidOperationException>(() => simulator.RunAsync(settings, PersistenceBackend.InMemory, null, CancellationToken.None));
            Assert.Equal($"the cluster joined through {seed} has no lane node up (start one with `ptactors node --seed ...`)", e.Message);
        }
        finally
        {
            await other.Terminate();
        }
    }
}
