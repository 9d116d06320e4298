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
    /// <summary>What a lane is made of: the run's settings, its plan, and what its actors share with the run.</summary>
    /// <param name="Settings">The run's settings.</param>
    /// <param name="Plan">The lane: its unit and the domains attached to it.</param>
    /// <param name="Unit">The unit's configuration (the run's policy, CPUs, IOTLB, costs).</param>
    /// <param name="Options">The workloads' options.</param>
    /// <param name="Pools">The message-array pools of the lane's messages.</param>
    /// <param name="AckLog">If set, where domains log what they acknowledge.</param>
    /// <param name="Coordinator">Where <see cref="Ready"/>, <see cref="Failed"/> and the unit's bindings go.</param>
    internal sealed record Spec(SimulationSettings Settings, RunTopology.LanePlan Plan, IommuUnitConfig Unit, WorkloadOptions Options,
        MessagePools Pools, AckLog? AckLog, IActorRef Coordinator);

    /// <summary>The lane's actors are up: its unit, then its domains and their hosts in the plan's domain order.</summary>
    public sealed record Ready(int Lane, IActorRef Unit, IReadOnlyList<IActorRef> Domains, IReadOnlyList<IActorRef> Hosts) : ILaneMessage;

    /// <summary>
    /// Actor <paramref name="Actor"/> of lane <paramref name="Lane"/> failed (<paramref name="Error"/>: what it threw,
    /// on one line) or stopped on its own (<paramref name="Error"/> null): the run cannot go on.
    /// </summary>
    public sealed record Failed(int Lane, string Actor, string? Error) : ILaneMessage;

    private readonly Spec _spec;
    private Exception? _childFailure;

    public static Props Props(Spec spec) => Akka.Actor.Props.Create(() => new LaneActor(spec));

    public LaneActor(Spec spec)
    {
        _spec = spec;
        // The unit tells the lane (which attached the domains) when a domain's table is bound or rebound.
        Receive<IotlbActor.Bound>(b => _spec.Coordinator.Forward(b));
        Receive<IotlbActor.DomainRestarted>(r => _spec.Coordinator.Forward(r));
        Receive<Terminated>(t =>
        {
            _spec.Coordinator.Tell(new Failed(_spec.Plan.Index, t.ActorRef.Path.Name, Describe(_childFailure)));
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

    protected override void PreStart()
    {
        var s = _spec.Settings;
        var plan = _spec.Plan;
        string? dmaJournal = s.RecordDmas ? DmaRecorder.PersistenceIdOf(s.RunId, plan.UnitName) : null;
        var unit = Context.Watch(Context.ActorOf(IotlbActor.Props(plan.UnitName, _spec.Unit, _spec.Pools, dmaJournal), plan.UnitName));
        var domains = new List<IActorRef>(plan.Domains.Count);
        var hosts = new List<IActorRef>(plan.Domains.Count);
        foreach (var d in plan.Domains)
        {
            var settings = new DomainActor.Settings(s.RunId, d.Name, PtActors.Engine.PtConfig.Default(s.Format),
                MaxOpsPerEvent: s.MaxOpsPerEvent, SnapshotEvery: s.SnapshotEvery, Iotlb: unit,
                ReplyUnmapsAfterFlush: s.Policy.Kind is FlushPolicyKind.Strict or FlushPolicyKind.Batch, Pools: _spec.Pools,
                AckLog: _spec.AckLog, Index: d.Index);
            var domain = Context.Watch(Context.ActorOf(DomainActor.SupervisedProps(settings), d.Name));
            unit.Tell(new IotlbActor.AttachDevices(d.Name, d.Index + 1, domain, d.Devices.ToArray()));
            var hosted = new List<DeviceHost.HostedDevice>(d.Devices.Count);
            for (int i = 0; i < d.Devices.Count; i++)
            {
                // The k-th device of a domain runs on CPU k mod --cpus (as its unit queues its unmaps).
                int dev = d.Devices[i];
                hosted.Add(new DeviceHost.HostedDevice(WorkloadFactory.Create(s.Workload, dev, s.Seed, _spec.Options), domain, unit, i % s.Cpus));
            }
            var host = Context.Watch(Context.ActorOf(DeviceHost.Props(hosted, _spec.Pools, s.Cost, s.Policy.Kind == FlushPolicyKind.Passthrough), d.HostName));
            domains.Add(domain);
            hosts.Add(host);
        }
        _spec.Coordinator.Tell(new Ready(plan.Index, unit, domains, hosts));
    }
}
