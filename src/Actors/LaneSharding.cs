using System.Globalization;
using Akka.Actor;
using Akka.Cluster.Sharding;

namespace PtActors.Actors;

/// <summary>
/// Lanes as sharded entities (Akka.Cluster.Sharding): nodes with the role <see cref="Role"/> host the lane region,
/// which starts a <see cref="LaneActor"/> for each lane it is sent; a coordinator reaches them through a proxy
/// of the region. A lane's entity id is <c>RUNID.LANE</c>; its shard comes from a stable hash of that id (Akka's
/// <see cref="HashCodeMessageExtractor"/>, never the process-randomised <c>string.GetHashCode</c>).
/// </summary>
public static class LaneSharding
{
    /// <summary>The sharded type's name.</summary>
    public const string TypeName = "lane";

    /// <summary>The role of the nodes that run lanes (<c>ptactors node</c>).</summary>
    public const string Role = "lane";

    /// <summary>Shards: about ten per node of a rack-sized cluster.</summary>
    public const int MaxShards = 64;

    /// <summary>
    /// The HOCON of a cluster node: config/cluster.conf with this node's <paramref name="host"/> and
    /// <paramref name="port"/>, its <paramref name="roles"/> and the <paramref name="seeds"/> (HOST:PORT) it joins.
    /// </summary>
    public static Akka.Configuration.Config NodeConfig(string host, int port, IEnumerable<string> seeds, params string[] roles)
        => NodeConfig(host, port, null, seeds, roles);

    /// <summary>
    /// The same for a node the others reach at another address than the one it listens on (behind NAT, in a
    /// container): it listens on <paramref name="host"/>:<paramref name="port"/> and tells the cluster it is at
    /// <paramref name="advertised"/> (null: where it listens).
    /// </summary>
    public static Akka.Configuration.Config NodeConfig(string host, int port, (string Host, int Port)? advertised, IEnumerable<string> seeds, params string[] roles)
    {
        ArgumentNullException.ThrowIfNull(seeds);
        var seedList = string.Join(", ", seeds.Select(seed => $"\"akka.tcp://{SystemName}@{seed}\""));
        var roleList = string.Join(", ", roles.Select(r => $"\"{r}\""));
        string publicAddress = advertised is { } a
            ? $"akka.remote.dot-netty.tcp.public-hostname = \"{a.Host}\"\nakka.remote.dot-netty.tcp.public-port = {a.Port.ToString(CultureInfo.InvariantCulture)}\n"
            : "";
        return Akka.Configuration.ConfigurationFactory.ParseString(
                $"akka.remote.dot-netty.tcp.hostname = \"{host}\"\nakka.remote.dot-netty.tcp.port = {port.ToString(CultureInfo.InvariantCulture)}\n" + publicAddress +
                $"akka.cluster.seed-nodes = [{seedList}]\nakka.cluster.roles = [{roleList}]")
            .WithFallback(Akka.Configuration.ConfigurationFactory.ParseString(PtActors.Persistence.PersistenceConfig.Template("cluster.conf")))
            // Sharding's and distributed data's serializers from the start: a node that joins receives their
            // messages before anything here asks for the extensions (which would add them only then).
            .WithFallback(Akka.Cluster.Sharding.ClusterSharding.DefaultConfig())
            .WithFallback(Akka.DistributedData.DistributedData.DefaultConfig());
    }

    /// <summary>
    /// The address of this machine that the seed node <paramref name="seed"/> (HOST:PORT) is reached from: the one the
    /// operating system routes to it from (the seed's own address when the seed runs here, 127.0.0.1 for a loopback
    /// seed). A node listens there and tells the cluster so; no packet is sent to find it.
    /// </summary>
    public static string LocalAddressTowards(string seed)
    {
        ArgumentNullException.ThrowIfNull(seed);
        int colon = seed.LastIndexOf(':');
        string host = colon <= 0 ? seed : seed[..colon];
        try
        {
            using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Dgram,
                System.Net.Sockets.ProtocolType.Udp);
            socket.Connect(host, 9);
            return ((System.Net.IPEndPoint)socket.LocalEndPoint!).Address.ToString();
        }
        catch (System.Net.Sockets.SocketException)
        {
            return host; // not resolvable or not routable from here: the join will say so
        }
    }

    /// <summary>Parses HOST:PORT (a host name or IPv4 address, a port 1..65535); null with what is wrong.</summary>
    public static (string Host, int Port)? ParseHostPort(string text, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(text);
        int colon = text.LastIndexOf(':');
        problem = null;
        if (colon <= 0 || colon == text.Length - 1)
            problem = $"'{text}' is not HOST:PORT";
        else if (!int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is < 1 or > 65535)
            problem = $"'{text[(colon + 1)..]}' is not a port (1..65535)";
        else if (text[..colon].Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '.' or '-')))
            problem = $"'{text[..colon]}' is not a host name or IPv4 address";
        else
            return (text[..colon], port);
        return null;
    }

    /// <summary>
    /// Parses a list of seed nodes, HOST:PORT[,HOST:PORT...] (the first one is the cluster's first node); null with
    /// what is wrong with the first bad one.
    /// </summary>
    public static IReadOnlyList<(string Host, int Port)>? ParseSeeds(string text, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(text);
        var seeds = new List<(string, int)>();
        foreach (string part in text.Split(','))
        {
            if (ParseHostPort(part, out problem) is not { } seed)
                return null;
            seeds.Add(seed);
        }
        problem = null;
        return seeds;
    }

    /// <summary>The seeds of <paramref name="text"/> (a list <see cref="ParseSeeds"/> accepts) as HOST:PORT strings.</summary>
    public static string[] SeedList(string text) => text.Split(',');

    /// <summary>The actor system's name on every node (a cluster's nodes share it).</summary>
    public const string SystemName = "ptactors";

    /// <summary>The entity id of lane <paramref name="lane"/> of run <paramref name="runId"/>.</summary>
    public static string EntityId(string runId, int lane) => runId + "." + lane.ToString(CultureInfo.InvariantCulture);

    /// <summary>Starts this node's lane region (a node with the role <see cref="Role"/>).</summary>
    public static IActorRef StartRegion(ActorSystem system)
    {
        ArgumentNullException.ThrowIfNull(system);
        return ClusterSharding.Get(system).Start(TypeName, LaneActor.Props(), ClusterShardingSettings.Create(system).WithRole(Role), Extractor);
    }

    /// <summary>Starts a proxy of the lane region on a node that runs no lanes (the coordinator's).</summary>
    public static IActorRef StartProxy(ActorSystem system)
    {
        ArgumentNullException.ThrowIfNull(system);
        return ClusterSharding.Get(system).StartProxy(TypeName, Role, Extractor);
    }

    /// <summary>Only a lane's <see cref="LaneActor.Start"/> goes through the region; the coordinator then talks to the lane's actors directly.</summary>
    private static readonly IMessageExtractor Extractor = HashCodeMessageExtractor.Create(MaxShards,
        static message => message is LaneActor.Start start ? EntityId(start.Settings.RunId, start.Lane) : null!,
        static message => message);
}
