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
    /// <para>
    /// <paramref name="CatchUp"/>: the lane was lost with its node and starts again here. Its domains recover their
    /// journals without applying them; the lane re-executes every call the coordinator had sent it on its fresh
    /// actors (each domain checks each event it would write against the journalled one, and writes only past the
    /// journal's end), tells the coordinator where it is (<see cref="CatchingUp"/> at once, <see cref="Ready"/> when
    /// done) and hands it the answers it never received.
    /// </para>
    public sealed record Start(SimulationSettings Settings, int Lane, IActorRef Coordinator, CatchUp? CatchUp = null) : ILaneMessage;

    /// <summary>A lost lane started again and is re-executing its calls (sent at once: the coordinator watches it from here).</summary>
    public sealed record CatchingUp(int Lane) : ILaneMessage;

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
    /// <summary>While the lane catches up: the calls left, the answers to hand on, and what the current call still waits for.</summary>
    private CatchUpRun? _catchUp;

    /// <param name="ackLog">If set, where the lane's domains log what they acknowledge (a file of this node).</param>
    public static Props Props(AckLog? ackLog = null) => Akka.Actor.Props.Create(() => new LaneActor(ackLog));

    public LaneActor(AckLog? ackLog)
    {
        _ackLog = ackLog;
        Receive<Start>(OnStart);
        // The unit tells the lane (which attached the domains) when a domain's table is bound or rebound.
        Receive<IotlbActor.Bound>(b =>
        {
            if (_catchUp is null)
                _start?.Coordinator.Forward(b);
            else
                _catchUp.Bound(this);
        });
        Receive<IotlbActor.DomainRestarted>(r =>
        {
            if (_catchUp is null)
            {
                _start?.Coordinator.Forward(r);
                return;
            }
            // A journal write failed while re-executing: the domain's new incarnation would recover the journal as
            // it is, not the re-execution's state at this call.
            _start!.Coordinator.Tell(new Failed(_start.Lane, r.Domain, "its journal write failed while the lane was catching up after its node was lost"));
            Context.Stop(Self);
        });
        // The answers of the calls re-executed while catching up.
        Receive<DeviceHost.Generated>(g => _catchUp?.Answer(this, HostSlot(Sender), g));
        Receive<DomainActor.Committed>(c => _catchUp?.Answer(this, DomainSlot(c.Domain), c));
        Receive<IotlbActor.Processed>(p => _catchUp?.Answer(this, -1, p));
        Receive<IotlbActor.Drained>(d => _catchUp?.Answer(this, -1, d));
        Receive<DomainActor.CaughtUp>(c => _catchUp?.DomainCaughtUp(this, c));
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
            start.Coordinator.Tell(_catchUp is null ? _ready : new CatchingUp(_start.Lane));
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
        // Rebuilding a lost lane: its domains recover without applying their journals until it has caught up.
        var catchUp = start.CatchUp is null ? null : new DomainActor.Rebuilding();
        string? dmaJournal = s.RecordDmas ? DmaRecorder.PersistenceIdOf(s.RunId, plan.UnitName) : null;
        var unit = Context.Watch(Context.ActorOf(IotlbActor.Props(plan.UnitName, s.UnitConfig(), _pools, dmaJournal), plan.UnitName));
        var domains = new List<IActorRef>(plan.Domains.Count);
        var hosts = new List<IActorRef>(plan.Domains.Count);
        foreach (var d in plan.Domains)
        {
            var settings = new DomainActor.Settings(s.RunId, d.Name, PtActors.Engine.PtConfig.Default(s.Format),
                MaxOpsPerEvent: s.MaxOpsPerEvent, SnapshotEvery: s.SnapshotEvery, Iotlb: unit,
                ReplyUnmapsAfterFlush: s.Policy.Kind is FlushPolicyKind.Strict or FlushPolicyKind.Batch, Pools: _pools,
                AckLog: _ackLog, Index: d.Index, Rebuild: catchUp);
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
            _domainSlots[d.Name] = domains.Count;
            domains.Add(domain);
            hosts.Add(host);
        }
        _ready = new Ready(plan.Index, unit, domains, hosts);
        if (catchUp is null)
        {
            start.Coordinator.Tell(_ready);
            return;
        }
        _catchUp = new CatchUpRun(start.CatchUp!, catchUp, plan.Domains.Count);
        start.Coordinator.Tell(new CatchingUp(start.Lane));
    }

    private int HostSlot(IActorRef host)
    {
        var hosts = _ready!.Hosts;
        for (int i = 0; i < hosts.Count; i++)
        {
            if (hosts[i].Equals(host))
                return i;
        }
        throw new InvalidOperationException($"lane {_start!.Lane}: an answer from {host.Path}, not one of its hosts");
    }

    private int DomainSlot(string domain)
        => _domainSlots.TryGetValue(domain, out int slot) ? slot
            : throw new InvalidOperationException($"lane {_start!.Lane}: an answer from domain {domain}, not one of its own");

    private readonly Dictionary<string, int> _domainSlots = new(StringComparer.Ordinal);

    /// <summary>
    /// A lane catching up: once every domain has recovered (its table bound to the unit), the calls run one after
    /// the other, each when the previous one's answers are all in; the answers the coordinator never received are
    /// kept, and handed to it after <see cref="Ready"/> once every domain has confirmed it consumed its whole journal.
    /// </summary>
    private sealed class CatchUpRun(CatchUp catchUp, DomainActor.Rebuilding rebuilding, int domains)
    {
        private readonly HashSet<LaneAnswer> _outstanding = new(catchUp.Outstanding);
        private readonly List<(object Answer, IActorRef From)> _handOn = new();
        private int _bound, _next = -1, _awaiting, _caughtUp;

        public void Bound(LaneActor lane)
        {
            if (++_bound == domains)
                Next(lane);
        }

        public void Answer(LaneActor lane, int slot, object answer)
        {
            if (_next < 0 || _next >= catchUp.Calls.Count)
                throw new InvalidOperationException($"lane {lane._start!.Lane}: an answer ({answer.GetType().Name}) while no call is being re-executed");
            if (_outstanding.Contains(new LaneAnswer(_next, slot)))
                _handOn.Add((answer, lane.Sender));
            if (--_awaiting == 0)
                Next(lane);
        }

        private void Next(LaneActor lane)
        {
            var ready = lane._ready!;
            while (++_next < catchUp.Calls.Count)
            {
                var call = catchUp.Calls[_next];
                _awaiting = call.Answers(domains);
                if (_awaiting == 0)
                    continue;
                call.Send(ready.Unit, ready.Domains, ready.Hosts, lane.Self);
                return;
            }
            // Every call re-executed: each domain must have consumed its journal exactly.
            if (domains == 0)
            {
                Done(lane);
                return;
            }
            foreach (var d in ready.Domains)
                d.Tell(DomainActor.EndCatchUp.Instance, lane.Self);
        }

        public void DomainCaughtUp(LaneActor lane, DomainActor.CaughtUp caughtUp)
        {
            if (++_caughtUp == domains)
                Done(lane);
        }

        private void Done(LaneActor lane)
        {
            rebuilding.Over = true;
            var coordinator = lane._start!.Coordinator;
            lane._catchUp = null;
            coordinator.Tell(lane._ready);
            foreach (var (answer, from) in _handOn)
                coordinator.Tell(answer, from);
        }
    }
}
