using System.Diagnostics;
using System.Security.Cryptography;
using Akka.Actor;
using PtActors.Engine;
using PtActors.Engine.Hardware;
using PtActors.Engine.Workloads;

namespace PtActors.Actors;

/// <summary>
/// The actor that runs a simulation: it builds the run's <see cref="RunTopology"/> (a unit per lane, the domains
/// attached to it, a host per domain), lets a <see cref="LaneSchedule"/> decide what each lane does next, turns
/// the schedule's requests into messages to its children and their answers into the schedule's inputs, and hands
/// what the children counted to <see cref="RunFigures"/> at the end. The schedule keeps every figure but the
/// wall-clock ones a function of the seed and the settings alone, whatever the thread timing; see it for the
/// order of a lane's windows.
/// </summary>
internal sealed class SimulationCoordinator : ReceiveActor, ILaneDriver, IWithTimers
{
    /// <summary>
    /// Send a sharded lane's Start again: it has not answered yet (Ready, or CatchingUp when rebuilt after its node was
    /// lost): the region may have routed it to a node that died since.
    /// </summary>
    private sealed record RetryStart(int Lane) : INoSerializationVerificationNeeded;

    /// <summary>How often a sharded lane's Start is sent again until the lane answers.</summary>
    private static readonly TimeSpan StartRetry = TimeSpan.FromSeconds(2);

    /// <summary>Retries after which a lane that never answers ends the run (no node to run it on).</summary>
    private const int MaxStartRetries = 60;

    /// <inheritdoc/>
    public ITimerScheduler Timers { get; set; } = null!;

    /// <summary>The actors of one lane, indexed like the schedule's slots.</summary>
    private sealed class LaneActors
    {
        /// <summary>The lane's actor (creates the others where it runs).</summary>
        public IActorRef Lane = ActorRefs.Nobody;
        public IActorRef Unit = ActorRefs.Nobody;
        public readonly List<IActorRef> Domains = new();
        public readonly List<string> DomainNames = new();
        public readonly List<IActorRef> Hosts = new();
        /// <summary>Each host's latest cumulative counters (null until it first generated).</summary>
        public readonly List<DeviceHost.HostCounters?> Counters = new();
        /// <summary>Table pages of the lane's domains at the end of each window (index = window − 1).</summary>
        public readonly List<long> PagesAtWindowEnd = new();
        /// <summary>Every call sent to the lane and the answers awaited (to rebuild it if its node is lost; kept on a cluster only).</summary>
        public required LaneLog Log;
        /// <summary>
        /// Calls sent to the lane's actors so far; the rest of <see cref="Log"/> waits for the lane, rebuilt after
        /// its node was lost, to be <see cref="LaneActor.Ready"/> again.
        /// </summary>
        public int Sent;
        /// <summary>The lane was lost and is being rebuilt on another node.</summary>
        public bool Rebuilding;
        /// <summary>The lane answered its first Start.</summary>
        public bool Ready;
        /// <summary>Its latest line in the run's lane restarts.</summary>
        public int Note;
        /// <summary>Start re-sent since it last answered.</summary>
        public int Retries;
        /// <summary>The lane answered the end-of-run requests (its unit's counters; its hosts' costs).</summary>
        public bool CountersIn;
        public int CostsIn;
    }

    private readonly SimulationSettings _s;
    private readonly AckLog? _ackLog;
    private readonly IProgress<SimulationProgress>? _progress;
    private readonly TaskCompletionSource<SimulationResult> _done;
    private readonly Stopwatch _wall = Stopwatch.StartNew();
    private readonly List<LaneActors> _lanes = new();
    private readonly Dictionary<string, (int Lane, int Slot)> _slotOfDomain = new(StringComparer.Ordinal);
    private readonly Dictionary<IActorRef, (int Lane, int Slot)> _slotOfDomainRef = new();
    private readonly Dictionary<IActorRef, (int Lane, int Slot)> _slotOfHost = new();
    private readonly Dictionary<string, int> _laneOfUnit = new(StringComparer.Ordinal);
    /// <summary>The images of every domain's table at the run's end, by name (from the units' counters).</summary>
    private readonly Dictionary<string, DomainImage> _images = new(StringComparer.Ordinal);
    private LaneSchedule _schedule = null!;
    /// <summary>Domains whose table is bound to its unit (the schedule starts once every one is).</summary>
    private readonly HashSet<string> _bound = new(StringComparer.Ordinal);
    private int _awaitingCounters;
    private long _events, _opsPersisted;
    private TimeSpan _lastReport;

    /// <summary>The lane region (a proxy of it) when the lanes are sharded over a cluster; null: lanes are this actor's children.</summary>
    private readonly IActorRef? _laneRegion;

    public SimulationCoordinator(SimulationSettings settings, IProgress<SimulationProgress>? progress, TaskCompletionSource<SimulationResult> done,
        AckLog? ackLog = null, IActorRef? laneRegion = null)
    {
        _s = settings;
        _laneRegion = laneRegion;
        _ackLog = ackLog;
        _progress = progress;
        _done = done;

        Receive<LaneActor.Ready>(OnLaneReady);
        Receive<LaneActor.Failed>(f => Fail(f.Actor, f.Error));
        Receive<IotlbActor.Bound>(b =>
        {
            _bound.Add(b.Domain);
            TryStart();
        });
        Receive<DeviceHost.Generated>(g =>
        {
            var (lane, slot) = _slotOfHost[Sender];
            _lanes[lane].Log.Answered(LaneCallKind.Generate, slot);
            _lanes[lane].Counters[slot] = g.Counters;
            _schedule.HostGenerated(lane, slot, g.Counters.Issued, g.Counters.Inflight, g.Counters.CpuNs);
        });
        Receive<DomainActor.Committed>(c =>
        {
            var (lane, slot) = _slotOfDomain[c.Domain];
            _lanes[lane].Log.Answered(LaneCallKind.Commit, slot);
            _events += c.Events;
            _opsPersisted += c.Ops;
            _journalLength[c.Domain] = c.SequenceNr;
            _schedule.DomainCommitted(lane, slot, c.SequenceNr);
        });
        Receive<IotlbActor.Processed>(p =>
        {
            int lane = _laneOfUnit[p.Unit];
            _lanes[lane].Log.Answered(LaneCallKind.Process, -1);
            _timeline[lane].Add(new RunTimeline.Sample(p.Window, p.EndNs, p.Invalidations, p.Hits, p.Misses, p.Dmas));
            // The lane's domains do not commit while their unit processes: their tables are as the window left them.
            _lanes[lane].PagesAtWindowEnd.Add(p.TablePages);
            ReportProgress(Acknowledged(), force: false);
            _schedule.UnitProcessed(lane, p.CpuNs, p.TimerCpuNs, p.TranslationBehindNs);
        });
        Receive<IotlbActor.Drained>(d =>
        {
            int lane = _laneOfUnit[d.Unit];
            _lanes[lane].Log.Answered(LaneCallKind.Drain, -1);
            _schedule.UnitDrained(lane);
        });
        Receive<RetryStart>(r =>
        {
            var lane = _lanes[r.Lane];
            if (++lane.Retries > MaxStartRetries)
            {
                Stop(new InvalidOperationException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"lane {r.Lane} could not be {(lane.Ready ? "rebuilt" : "started")} on any node for {MaxStartRetries * StartRetry.TotalSeconds:0} s (is a lane node up?): the run stops here (everything acknowledged so far is in the journal; `verify` checks it)")));
                return;
            }
            if (!lane.Ready || lane.Rebuilding)
                SendStart(r.Lane);
        });
        Receive<LaneActor.CatchingUp>(c =>
        {
            Timers.Cancel(("start", c.Lane));
            _lanes[c.Lane].Retries = 0;
            // A lost lane started again on another node and re-executes its calls: watched from now on.
            _lanes[c.Lane].Lane = Context.Watch(Sender);
        });
        Receive<IotlbActor.DomainRestarted>(r =>
        {
            // The domain was rebuilt from its journal (a failed write); its unit walks the new table and re-sent
            // the releases and hardware writes of the window that died with the old incarnation.
            var (lane, slot) = _slotOfDomain[r.Domain];
            _schedule.DomainRestarted(lane, slot);
        });
        Receive<DeviceHost.Resent>(r =>
        {
            var (lane, slot) = _slotOfDomainRef[r.Domain];
            _schedule.HostResent(lane, slot, r.Window);
        });
        Receive<IotlbActor.Counters>(OnCounters);
        Receive<IotlbActor.ImagePart>(p =>
        {
            if (_imageParts.Add(p) is { } image)
                _images[image.Name] = image;
        });
        Receive<DeviceHost.Costs>(OnHostCosts);
        Receive<Status.Failure>(f => _done.TrySetException(f.Cause));
        // A lane that failed (stopped by the strategy below) or stopped on its own: the run cannot go on. (A lane
        // whose own actor failed says so first, with Failed.)
        Receive<Terminated>(t =>
        {
            if (_laneRegion is not null && t.AddressTerminated)
            {
                // A sharded lane's node was lost (killed, or unreachable and downed): rebuild the lane elsewhere.
                int lane = _lanes.FindIndex(l => l.Lane.Equals(t.ActorRef));
                if (lane >= 0)
                    Rebuild(lane, t.ActorRef);
                return;
            }
            Fail(t.ActorRef.Path.Name, LaneActor.Describe(_childFailure));
        });
    }

    /// <summary>The latest failure of a child, as the strategy saw it (its Terminated follows).</summary>
    private Exception? _childFailure;
    private bool _finished;

    /// <summary>
    /// A lane that throws is stopped, not restarted (its actors supervise theirs the same way; see
    /// <see cref="LaneActor"/>). Its <see cref="Terminated"/> then ends the run.
    /// </summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(e =>
    {
        _childFailure = e;
        return Directive.Stop;
    });

    /// <summary>Ends the run with one error naming the actor <paramref name="name"/> that failed (<paramref name="error"/>) or stopped (null).</summary>
    private void Fail(string name, string? error)
        => Stop(new InvalidOperationException(error is null ? $"actor {name} stopped unexpectedly" : $"actor {name} failed: {error}"));

    /// <summary>Ends the run with <paramref name="error"/> (the first error wins).</summary>
    private void Stop(Exception error)
    {
        if (_finished)
            return;
        _finished = true;
        _done.TrySetException(error);
        StopLanes();
        Context.Stop(Self);
    }

    protected override void PreStart()
    {
        try
        {
            Setup();
        }
        catch (Exception e)
        {
            Stop(e);
        }
    }

    private void Setup()
    {
        var topology = new RunTopology(_s);
        var hostOrder = new List<int[]>(topology.Lanes.Count);
        foreach (var plan in topology.Lanes)
        {
            _laneOfUnit[plan.UnitName] = _lanes.Count;
            _timeline[_lanes.Count] = new List<RunTimeline.Sample>();
            // In one process a lane is never lost with a node: nothing to keep for a rebuild.
            _lanes.Add(new LaneActors { Log = new LaneLog(keep: _laneRegion is not null) });
            var order = new int[plan.Domains.Count];
            for (int i = 0; i < order.Length; i++)
                order[i] = plan.Domains[i].HostIndex;
            hostOrder.Add(order);
        }
        _schedule = new LaneSchedule(this, _s.WindowNs, _s.Ops, _s.DurationNs, hostOrder, _s.Cpus);

        // Refused here, before any lane starts, rather than by every lane.
        _s.WorkloadOptions().Validate();
        _lanesStarting = topology.Lanes.Count;
        foreach (var plan in topology.Lanes)
        {
            foreach (var d in plan.Domains)
            {
                _slotOfDomain[d.Name] = (plan.Index, _lanes[plan.Index].DomainNames.Count);
                _lanes[plan.Index].DomainNames.Add(d.Name);
            }
            var start = new LaneActor.Start(_s, plan.Index, Self);
            if (_laneRegion is not null)
            {
                // A sharded lane starts on the node that owns its shard; it is watched once it answers (Ready).
                _laneRegion.Tell(start);
                Timers.StartPeriodicTimer(("start", plan.Index), new RetryStart(plan.Index), StartRetry);
                continue;
            }
            var lane = Context.Watch(Context.ActorOf(LaneActor.Props(_ackLog), "lane" + plan.Index.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            lane.Tell(start);
            _lanes[plan.Index].Lane = lane;
        }
        TryStart();
    }

    /// <summary>
    /// Sharded lanes are not this actor's children: stop them when the run ends (its figures gathered, or failed).
    /// In one process the lanes stop with this actor.
    /// </summary>
    private void StopLanes()
    {
        if (_laneRegion is null)
            return;
        foreach (var lane in _lanes)
        {
            if (!lane.Lane.IsNobody())
                lane.Lane.Tell(PoisonPill.Instance);
        }
    }

    /// <summary>Lanes whose actors are not up yet.</summary>
    private int _lanesStarting;

    /// <summary>What happened to lanes lost with their nodes (for the run's result).</summary>
    private readonly List<string> _laneRestarts = new();

    /// <summary>
    /// Lane <paramref name="index"/> was lost with its node: start it again (the region places it on a node that is
    /// up) from every call sent to it so far, which it re-executes, checking its domains' journals as it goes; the
    /// calls the schedule makes meanwhile wait for it to be ready. Losing it again while it catches up starts it once more.
    /// </summary>
    private void Rebuild(int index, IActorRef lost)
    {
        var lane = _lanes[index];
        if (!lane.Rebuilding)
        {
            foreach (var host in lane.Hosts)
                _slotOfHost.Remove(host);
            foreach (var domain in lane.Domains)
                _slotOfDomainRef.Remove(domain);
            lane.Rebuilding = true;
            if (_finishing)
            {
                // Its end-of-run answers (given or not) are asked for again once it is back.
                _unitCounters.RemoveAll(c => _laneOfUnit[c.Unit] == index);
                foreach (var name in lane.DomainNames)
                    _images.Remove(name);
                _hostCosts.RemoveAll(h => h.Lane == index);
                _awaitingCounters -= (lane.CountersIn ? 0 : 1) + lane.Hosts.Count - lane.CostsIn;
                lane.CountersIn = false;
                lane.CostsIn = 0;
            }
        }
        lane.Note = _laneRestarts.Count;
        _laneRestarts.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"lane {index} ({lost.Path.Name}) was lost with its node {lost.Path.Address} after {lane.Sent} calls; rebuilt from the journal on another node"));
        SendStart(index);
        Timers.StartPeriodicTimer(("start", index), new RetryStart(index), StartRetry);
    }

    /// <summary>
    /// Sends sharded lane <paramref name="index"/> its Start: with every call sent to it so far when it is being
    /// rebuilt after its node was lost.
    /// </summary>
    private void SendStart(int index)
    {
        var lane = _lanes[index];
        _laneRegion!.Tell(new LaneActor.Start(_s, index, Self, lane.Rebuilding ? lane.Log.CatchUpAt(lane.Sent) : null));
    }

    private bool _finishing;

    private void OnLaneReady(LaneActor.Ready ready)
    {
        var lane = _lanes[ready.Lane];
        // A Start sent again (a lost lane's retries) is answered again: the lane is up already.
        if (lane.Ready && !lane.Rebuilding)
            return;
        lane.Ready = true;
        Timers.Cancel(("start", ready.Lane));
        lane.Retries = 0;
        if (_laneRegion is not null)
            lane.Lane = Context.Watch(Sender);
        lane.Unit = ready.Unit;
        bool rebuilt = lane.Rebuilding;
        if (rebuilt)
        {
            lane.Domains.Clear();
            lane.Hosts.Clear();
        }
        for (int slot = 0; slot < ready.Domains.Count; slot++)
        {
            lane.Domains.Add(ready.Domains[slot]);
            _slotOfDomainRef[ready.Domains[slot]] = (ready.Lane, slot);
            lane.Hosts.Add(ready.Hosts[slot]);
            if (!rebuilt)
                lane.Counters.Add(null);
            _slotOfHost[ready.Hosts[slot]] = (ready.Lane, slot);
        }
        if (rebuilt)
        {
            // Caught up: the calls made while it was away go now, then (if the run was finishing) its counters.
            lane.Rebuilding = false;
            _laneRestarts[lane.Note] += " " + ready.Unit.Path.Address;
            while (lane.Sent < lane.Log.Calls.Count)
                lane.Log.Calls[lane.Sent++].Send(lane.Unit, lane.Domains, lane.Hosts, Self);
            if (_finishing)
                RequestCounters(lane);
            // It said Ready once every domain was bound (a lane lost before the schedule started counts too).
            foreach (var name in lane.DomainNames)
                _bound.Add(name);
            TryStart();
            return;
        }
        _lanesStarting--;
        TryStart();
    }

    /// <summary>Sends (or, while the lane is being rebuilt, keeps for later) <paramref name="call"/> to lane <paramref name="index"/>.</summary>
    private void Call(int index, LaneCall call)
    {
        var lane = _lanes[index];
        lane.Log.Add(call, lane.DomainNames.Count);
        if (lane.Rebuilding)
            return;
        call.Send(lane.Unit, lane.Domains, lane.Hosts, Self);
        lane.Sent++;
    }

    /// <summary>Starts the schedule once every lane is up and every domain's table is bound to its unit.</summary>
    private void TryStart()
    {
        if (_lanesStarting == 0 && _bound.Count == _slotOfDomain.Count && !_started)
        {
            _started = true;
            _schedule.Start();
        }
    }

    private bool _started;

    // ILaneDriver: the schedule's requests, as messages to the lane's actors.

    void ILaneDriver.Generate(int lane, int slot, long window, ulong t0, ulong t1, bool quiet, long budget, long[]? held)
        => Call(lane, new LaneCall(LaneCallKind.Generate, window, slot, budget, quiet, t0, t1, held));

    void ILaneDriver.Commit(int lane, long window, bool final) => Call(lane, new LaneCall(LaneCallKind.Commit, window, Flag: final));

    void ILaneDriver.Committed(int lane, long window) => _ackLog?.Flush();

    void ILaneDriver.Process(int lane, long window, ulong endNs) => Call(lane, new LaneCall(LaneCallKind.Process, window, T1: endNs));

    void ILaneDriver.Drain(int lane, ulong atNs) => Call(lane, new LaneCall(LaneCallKind.Drain, 0, T1: atNs));

    // A restarted domain's window is re-driven within its lane; a lane being rebuilt re-executes the whole commit
    // instead (and answers it), so these go only to a lane that is up.
    void ILaneDriver.Resend(int lane, int slot, long window)
    {
        if (!_lanes[lane].Rebuilding)
            _lanes[lane].Hosts[slot].Tell(new DeviceHost.Resend(window, _lanes[lane].Domains[slot]));
    }

    void ILaneDriver.Recommit(int lane, int slot, long window, long sequenceNr, bool final)
    {
        if (!_lanes[lane].Rebuilding)
            _lanes[lane].Domains[slot].Tell(new DomainActor.Recommit(window, sequenceNr, final));
    }

    void ILaneDriver.GiveUp(int lane, int slot, int restarts, long window)
        => Stop(new InvalidOperationException(
            $"domain {_lanes[lane].DomainNames[slot]} was restarted from its journal {restarts} times while committing window {window} " +
            "(its journal writes keep failing); the run stops here (everything acknowledged so far is in the journal)"));

    void ILaneDriver.Finished()
    {
        _finishing = true;
        _awaitingCounters = 0;
        _unitCounters.Clear();
        _hostCosts.Clear();
        foreach (var lane in _lanes)
        {
            // A lane being rebuilt is asked once it is back (and counted then).
            if (!lane.Rebuilding)
                RequestCounters(lane);
        }
    }

    /// <summary>Asks <paramref name="lane"/>'s unit for its counters and its hosts for their costs.</summary>
    private void RequestCounters(LaneActors lane)
    {
        _awaitingCounters += 1 + lane.Hosts.Count;
        lane.Unit.Tell(new IotlbActor.GetCounters());
        foreach (var host in lane.Hosts)
            host.Tell(DeviceHost.GetCosts.Instance);
    }

    private readonly List<(int Lane, int Slot, PtActors.Engine.Cost.HostCostLedger Ledger)> _hostCosts = new();

    private void OnHostCosts(DeviceHost.Costs c)
    {
        if (_slotOfHost.TryGetValue(Sender, out var at))
        {
            _lanes[at.Lane].CostsIn++;
            foreach (var ledger in c.Ledgers)
                _hostCosts.Add((at.Lane, at.Slot, ledger));
        }
        if (--_awaitingCounters == 0 && !_lanes.Exists(static l => l.Rebuilding))
            Finish();
    }

    private IEnumerable<DeviceHost.HostCounters> HostCounters()
    {
        foreach (var lane in _lanes)
        {
            foreach (var c in lane.Counters)
            {
                if (c is not null)
                    yield return c;
            }
        }
    }

    private long Acknowledged()
    {
        long acked = 0;
        foreach (var c in HostCounters())
            acked += c.Maps + c.Unmaps;
        return acked;
    }

    private long LanePages(LaneActors lane)
    {
        long pages = 0;
        foreach (var name in lane.DomainNames)
            pages += _images[name].TablePages;
        return pages;
    }

    private void ReportProgress(long acked, bool force)
    {
        var elapsed = _wall.Elapsed;
        if (_progress is null || (!force && elapsed - _lastReport < TimeSpan.FromMilliseconds(250)))
            return;
        _lastReport = elapsed;
        long dmas = 0;
        foreach (var c in HostCounters())
            dmas += c.Dmas;
        long window = _schedule.Windows;
        _progress.Report(new SimulationProgress(window, window * (double)_s.WindowNs / 1e9, acked, _s.Ops ?? 0, dmas,
            acked / Math.Max(elapsed.TotalSeconds, 1e-9)));
    }

    private readonly List<IotlbActor.Counters> _unitCounters = new();

    /// <summary>Each lane's unit's totals at its windows' ends (the run's timeline).</summary>
    private readonly Dictionary<int, List<RunTimeline.Sample>> _timeline = new();

    /// <summary>Each domain's last journalled sequence number (from its latest <see cref="DomainActor.Committed"/>).</summary>
    private readonly Dictionary<string, long> _journalLength = new(StringComparer.Ordinal);

    private readonly ImageParts.Assembler _imageParts = new();

    private void OnCounters(IotlbActor.Counters c)
    {
        var lane = _lanes[_laneOfUnit[c.Unit]];
        // Its domains' images came first, in pieces.
        foreach (var name in lane.DomainNames)
        {
            if (!_images.ContainsKey(name))
            {
                Stop(new InvalidOperationException($"unit {c.Unit} sent its counters without the image of domain {name}'s table"));
                return;
            }
        }
        lane.CountersIn = true;
        _unitCounters.Add(c);
        if (--_awaitingCounters == 0 && !_lanes.Exists(static l => l.Rebuilding))
            Finish();
    }

    private void Finish()
    {
        double wall = _wall.Elapsed.TotalSeconds;
        long finalPages = 0;
        var pages = new List<IReadOnlyList<long>>(_lanes.Count);
        foreach (var lane in _lanes)
        {
            finalPages += LanePages(lane);
            pages.Add(lane.PagesAtWindowEnd);
        }
        // Hosts answer in any order: sort the ledgers by lane and host so that the figures' sums are reproducible.
        var units = new List<(int Lane, PtActors.Engine.Cost.UnitCostLedger Ledger)>(_unitCounters.Count);
        foreach (var u in _unitCounters)
        {
            if (u.Costs is not null)
                units.Add((_laneOfUnit[u.Unit], u.Costs));
        }
        units.Sort(static (a, b) => a.Lane.CompareTo(b.Lane));
        // A stable sort: one host's ledgers keep their domain order.
        var sorted = _hostCosts.OrderBy(static h => h.Lane).ThenBy(static h => h.Slot).ToList();
        _hostCosts.Clear();
        _hostCosts.AddRange(sorted);
        var hosts = new List<(int Lane, PtActors.Engine.Cost.HostCostLedger Ledger)>(_hostCosts.Count);
        foreach (var (lane, _, ledger) in _hostCosts)
            hosts.Add((lane, ledger));
        var result = RunFigures.Aggregate(new RunFigures.Inputs(_s, HostCounters().ToList(), _unitCounters,
            pages, finalPages, _images.Values, _events, _opsPersisted, _schedule.Windows, wall));
        var timeline = new List<(IReadOnlyList<RunTimeline.Sample>, RunTimeline.Sample)>(_unitCounters.Count);
        foreach (var u in _unitCounters)
        {
            var samples = _timeline[_laneOfUnit[u.Unit]];
            long dmas = 0;
            foreach (var sample in samples)
                dmas = Math.Max(dmas, sample.Dmas);  // the run's end drains flushes; it runs no DMA
            timeline.Add((samples, new RunTimeline.Sample(long.MaxValue, 0, u.Stats.Invalidations, u.Stats.Hits, u.Stats.Misses, dmas)));
        }
        result = result with
        {
            Cost = PtActors.Engine.Cost.CostFigures.Compute(_s.Cpus, hosts, units, result.SimS * 1e9),
            Timeline = RunTimeline.Build(timeline),
        };
        var windDown = new PtActors.Engine.Replay.LaneWindDown[_lanes.Count];
        for (int l = 0; l < windDown.Length; l++)
        {
            var (quietAfter, final) = _schedule.WindDownOf(l);
            windDown[l] = new PtActors.Engine.Replay.LaneWindDown(quietAfter, final);
        }
        var names = new string[_s.Domains];
        for (int d = 0; d < names.Length; d++)
            names[d] = SimulationSettings.DomainName(d);
        var domains = PtActors.Engine.Replay.RunDomainEnds.Of(names, d => _journalLength.GetValueOrDefault(names[d]), _images);
        result = result with { WindDown = new PtActors.Engine.Replay.RunWindDown(windDown), Domains = domains, LaneRestarts = _laneRestarts.ToArray() };
        ReportProgress(result.Ops, force: true);
        _done.TrySetResult(result);
        _finished = true;
        StopLanes();
        Context.Stop(Self);
    }
}
