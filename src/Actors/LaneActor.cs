using Akka.Actor;
using PtActors.Engine.Hardware;
using PtActors.Engine.Workloads;

namespace PtActors.Actors;

/// <summary>
/// One lane of a run where it runs: it creates the lane's IOMMU unit, the domains attached to it and the hosts
/// driving their devices, all on its own node, and tells the coordinator where they are
/// (<see cref="Ready"/>). From then on the coordinator drives them through the window protocol as it drives any
/// lane, whether the lane lives in its process or not: a lane exchanges messages only within itself (its unit
/// walks its domains' tables directly, as hardware walks memory), so it is the unit of placement.
/// <para>
/// It supervises the lane's actors as the coordinator did: any of them that throws is stopped, not restarted (a
/// lane whose windows are in lockstep cannot take back an actor that lost its state; a domain's own restarts
/// from its journal happen below, in its backoff supervisor), and the lane then reports <see cref="Failed"/>
/// naming it and stops.
/// </para>
/// </summary>
internal sealed class LaneActor : ReceiveActor
{
    /// <summary>
    /// Start lane <paramref name="Lane"/> of the run <paramref name="Settings"/> describe, for
    /// <paramref name="Coordinator"/> (where <see cref="Ready"/>, <see cref="Failed"/> and the unit's bindings go).
    /// Everything else the lane needs follows from the settings. A second Start of the same lane (a redelivery)
    /// is answered with <see cref="Ready"/> again.
    /// </summary>
    public sealed record Start(SimulationSettings Settings, int Lane, IActorRef Coordinator) : ILaneMessage;

    /// <summary>The lane's actors are up: its unit, then its domains and their hosts in the plan's domain order.</summary>
    public sealed record Ready(int Lane, IActorRef Unit, IReadOnlyList<IActorRef> Domains, IReadOnlyList<IActorRef> Hosts) : ILaneMessage;

    /// <summary>
    /// Actor <paramref name="Actor"/> of lane <paramref name="Lane"/> failed (<paramref name="Error"/>: what it threw,
    /// on one line) or stopped on its own (<paramref name="Error"/> null): the run cannot go on.
    /// </summary>
    public sealed record Failed(int Lane, string Actor, string? Error) : ILaneMessage;

    private readonly AckLog? _ackLog;
    private readonly MessagePools _pools = new();
    private Start? _start;
    private Ready? _ready;
    private Exception? _childFailure;

    /// <param name="ackLog">If set, where the lane's domains log what they acknowledge (a file of this node).</param>
    public static Props Props(AckLog? ackLog = null) => Akka.Actor.Props.Create(() => new LaneActor(ackLog));

    public LaneActor(AckLog? ackLog)
    {
        _ackLog = ackLog;
        Receive<Start>(OnStart);
        // The unit tells the lane (which attached the domains) when a domain's table is bound or rebound.
        Receive<IotlbActor.Bound>(b => _start?.Coordinator.Forward(b));
        Receive<IotlbActor.DomainRestarted>(r => _start?.Coordinator.Forward(r));
        Receive<Terminated>(t =>
        {
            _start?.Coordinator.Tell(new Failed(_start.Lane, t.ActorRef.Path.Name, Describe(_childFailure)));
            Context.Stop(Self);
        });
    }

    /// <summary>What an actor that failed with <paramref name="failure"/> threw, on one line (null: it did not fail).</summary>
    internal static string? Describe(Exception? failure)
    {
        var cause = failure is ActorInitializationException { InnerException: { } inner } ? inner : failure;
        return cause?.Message.ReplaceLineEndings(" ");
    }

    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(e =>
    {
        _childFailure = e;
        return Directive.Stop;
    });

    private void OnStart(Start start)
    {
        if (_start is not null)
        {
            if (start.Lane != _start.Lane || start.Settings.RunId != _start.Settings.RunId)
                throw new InvalidOperationException($"lane {_start.Lane} of run '{_start.Settings.RunId}' cannot also be lane {start.Lane} of run '{start.Settings.RunId}'");
            start.Coordinator.Tell(_ready);
            return;
        }
        var s = start.Settings;
        var topology = new RunTopology(s);
        if (start.Lane < 0 || start.Lane >= topology.Lanes.Count)
            throw new ArgumentOutOfRangeException(nameof(start), start.Lane, $"the run has {topology.Lanes.Count} lanes");
        var options = s.WorkloadOptions();
        options.Validate();
        _start = start;
        var plan = topology.Lanes[start.Lane];
        string? dmaJournal = s.RecordDmas ? DmaRecorder.PersistenceIdOf(s.RunId, plan.UnitName) : null;
        var unit = Context.Watch(Context.ActorOf(IotlbActor.Props(plan.UnitName, s.UnitConfig(), _pools, dmaJournal), plan.UnitName));
        var domains = new List<IActorRef>(plan.Domains.Count);
        var hosts = new List<IActorRef>(plan.Domains.Count);
        foreach (var d in plan.Domains)
        {
            var settings = new DomainActor.Settings(s.RunId, d.Name, PtActors.Engine.PtConfig.Default(s.Format),
                MaxOpsPerEvent: s.MaxOpsPerEvent, SnapshotEvery: s.SnapshotEvery, Iotlb: unit,
                ReplyUnmapsAfterFlush: s.Policy.Kind is FlushPolicyKind.Strict or FlushPolicyKind.Batch, Pools: _pools,
                AckLog: _ackLog, Index: d.Index);
            var domain = Context.Watch(Context.ActorOf(DomainActor.SupervisedProps(settings), d.Name));
            unit.Tell(new IotlbActor.AttachDevices(d.Name, d.Index + 1, domain, d.Devices.ToArray()));
            var hosted = new List<DeviceHost.HostedDevice>(d.Devices.Count);
            for (int i = 0; i < d.Devices.Count; i++)
            {
                // The k-th device of a domain runs on CPU k mod --cpus (as its unit queues its unmaps).
                int dev = d.Devices[i];
                hosted.Add(new DeviceHost.HostedDevice(WorkloadFactory.Create(s.Workload, dev, s.Seed, options), domain, unit, i % s.Cpus));
            }
            var host = Context.Watch(Context.ActorOf(DeviceHost.Props(hosted, _pools, s.Cost, s.Policy.Kind == FlushPolicyKind.Passthrough), d.HostName));
            domains.Add(domain);
            hosts.Add(host);
        }
        _ready = new Ready(plan.Index, unit, domains, hosts);
        start.Coordinator.Tell(_ready);
    }
}
