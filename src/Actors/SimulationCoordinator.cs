using System.Diagnostics;
using System.Security.Cryptography;
using Akka.Actor;
using PtActors.Engine;
using PtActors.Engine.Hardware;
using PtActors.Engine.Workloads;

namespace PtActors.Actors;

/// <summary>
/// Drives a run window by window. The run splits into lanes, one per IOMMU unit: the unit, the domains attached
/// to it and the device hosts of those domains. Nothing crosses lanes, so each lane advances through its own
/// windows at its own pace, and the lanes keep both cores busy while any one of them waits. Within a lane each
/// window has three phases: the hosts generate and send their traffic; the domains apply their operations in
/// stamp order, persist and answer; the unit runs DMAs, unmaps and timeouts in stamp order and releases what its
/// flushes covered. The hosts' generation of the next window needs only the domains' answers, so it overlaps the
/// unit's processing; a commit waits for both, so the domains' tables never change while the unit's walks read
/// them. That, and every actor taking its inputs in stamp order, makes every figure but the wall-clock ones
/// depend only on the seed and the settings, whatever the thread timing.
/// </summary>
internal sealed class SimulationCoordinator : ReceiveActor
{
    /// <summary>One unit with its domains and their hosts, and where it is in its windows.</summary>
    private sealed class Lane(int index, IActorRef unit)
    {
        public readonly int Index = index;
        public readonly IActorRef Unit = unit;
        public readonly List<IActorRef> Domains = new();
        public readonly List<string> DomainNames = new();
        public readonly List<IActorRef> Hosts = new();
        /// <summary>Each host's place in the run's host order (the order --ops shares are handed out in).</summary>
        public readonly List<int> HostIndex = new();
        /// <summary>Map+unmap calls the lane's hosts had issued after generating each window (index = window − 1).</summary>
        public readonly List<long> IssuedThrough = new();
        public readonly Dictionary<IActorRef, DeviceHost.HostCounters> Counters = new();
        /// <summary>Table pages of the lane's domains at the end of each window (index = window − 1).</summary>
        public readonly List<long> PagesAtWindowEnd = new();
        /// <summary>The latest window the lane's hosts were asked to generate.</summary>
        public long Window;
        /// <summary>The latest window the lane's domains committed.</summary>
        public long CommittedWindow;
        /// <summary>Hosts, or domains, that have not yet answered the current phase.</summary>
        public int HostsPending, DomainsPending;
        /// <summary>The unit is processing or draining a window (the domains' tables must stay still).</summary>
        public bool UnitBusy;
        public bool Quiet, FinalDrain, Drained, Done;
        public int QuietWindows;

        public long SumHosts(Func<DeviceHost.HostCounters, long> counter)
        {
            long sum = 0;
            foreach (var c in Counters.Values)
                sum += counter(c);
            return sum;
        }

        /// <summary>Calls issued through window <paramref name="w"/> (a lane that stopped earlier: all it issued).</summary>
        public long IssuedThroughWindow(long w)
            => IssuedThrough.Count == 0 || w <= 0 ? 0 : IssuedThrough[(int)Math.Min(w, IssuedThrough.Count) - 1];
    }

    private readonly SimulationSettings _s;
    private readonly AckLog? _ackLog;
    private readonly IProgress<SimulationProgress>? _progress;
    private readonly TaskCompletionSource<SimulationResult> _done;
    private readonly Stopwatch _wall = Stopwatch.StartNew();
    private readonly List<IActorRef> _units = new();
    private readonly List<Lane> _lanes = new();
    private readonly Dictionary<string, Lane> _laneOfDomain = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Lane> _laneOfUnit = new(StringComparer.Ordinal);
    private readonly Dictionary<IActorRef, Lane> _laneOfHost = new();
    private readonly Dictionary<string, IommuDomain> _tables = new(StringComparer.Ordinal);
    private readonly List<Lane> _waitingForBudget = new();
    private readonly MessagePools _pools = new();
    /// <summary>Restarts of a domain from its journal while committing one window after which the run gives up.</summary>
    private const int MaxRestarts = 5;
    /// <summary>Domains whose answer to the lane's current commit is outstanding.</summary>
    private readonly HashSet<string> _awaitingCommit = new(StringComparer.Ordinal);
    /// <summary>Each domain's journal sequence number at its last commit (where a re-driven window begins).</summary>
    private readonly Dictionary<string, long> _sequenceNr = new(StringComparer.Ordinal);
    /// <summary>Restarts of a domain since its last commit.</summary>
    private readonly Dictionary<string, int> _restarts = new(StringComparer.Ordinal);
    private int _hostCount;
    private int _unbound;
    private int _lanesRunning;
    private int _awaitingCounters;
    private long _events, _opsPersisted;
    private TimeSpan _lastReport;

    public SimulationCoordinator(SimulationSettings settings, IProgress<SimulationProgress>? progress, TaskCompletionSource<SimulationResult> done,
        AckLog? ackLog = null)
    {
        _s = settings;
        _ackLog = ackLog;
        _progress = progress;
        _done = done;

        Receive<IotlbActor.Bound>(b =>
        {
            _tables[b.Domain] = b.Table;
            if (--_unbound == 0)
                Start();
        });
        Receive<DeviceHost.Generated>(g =>
        {
            var lane = _laneOfHost[Sender];
            lane.Counters[Sender] = g.Counters;
            if (--lane.HostsPending > 0)
                return;
            lane.IssuedThrough.Add(lane.SumHosts(static c => c.Issued));
            TryCommit(lane);
            ResumeLanesWaitingForBudget();
        });
        Receive<DomainActor.Committed>(c =>
        {
            var lane = _laneOfDomain[c.Domain];
            _awaitingCommit.Remove(c.Domain);
            _restarts.Remove(c.Domain);
            _sequenceNr[c.Domain] = c.SequenceNr;
            _events += c.Events;
            _opsPersisted += c.Ops;
            if (--lane.DomainsPending > 0)
                return;
            _ackLog?.Flush();
            if (lane.Drained)
            {
                LaneDone(lane);
                return;
            }
            lane.CommittedWindow = lane.Window;
            ProcessUnit(lane);
            // The next window's generation needs only the domains' answers, not the unit: it overlaps the
            // unit's processing (the next commit waits for both). Winding down stays sequential.
            if (!lane.Quiet)
                AfterCommit(lane);
        });
        Receive<IotlbActor.Processed>(p => EndWindow(_laneOfUnit[p.Unit]));
        Receive<IotlbActor.Drained>(d =>
        {
            var lane = _laneOfUnit[d.Unit];
            lane.UnitBusy = false;
            if (lane.FinalDrain)
            {
                // The drain's releases are queued at the domains: one last commit applies and persists them.
                lane.Drained = true;
                CommitDomains(lane);
            }
            else
            {
                NextWindow(lane);
            }
        });
        Receive<IotlbActor.DomainRestarted>(r =>
        {
            // The domain was rebuilt from its journal (a failed write); its unit walks the new table and re-sent
            // the releases and hardware writes of the window that died with the old incarnation. Its hosts re-send
            // their operations of that window, then the domain commits it again.
            var lane = _laneOfDomain[r.Domain];
            _tables[r.Domain] = r.Table;
            int restarts = _restarts.GetValueOrDefault(r.Domain) + 1;
            _restarts[r.Domain] = restarts;
            if (restarts >= MaxRestarts)
            {
                if (_finished)
                    return;
                _finished = true;
                _done.TrySetException(new InvalidOperationException(
                    $"domain {r.Domain} was restarted from its journal {restarts} times while committing window {lane.Window} " +
                    "(its journal writes keep failing); the run stops here (everything acknowledged so far is in the journal)"));
                Context.Stop(Self);
                return;
            }
            int i = lane.DomainNames.IndexOf(r.Domain);
            lane.Hosts[i].Tell(new DeviceHost.Resend(lane.Window, lane.Domains[i]));
        });
        Receive<DeviceHost.Resent>(r =>
        {
            var lane = _laneOfHost[Sender];
            int i = lane.Domains.IndexOf(r.Domain);
            string name = lane.DomainNames[i];
            if (_awaitingCommit.Contains(name))
                r.Domain.Tell(new DomainActor.Recommit(r.Window, _sequenceNr.GetValueOrDefault(name)));
        });
        Receive<IotlbActor.Counters>(OnCounters);
        Receive<Status.Failure>(f => _done.TrySetException(f.Cause));
        // A child that failed (stopped by the strategy below) or stopped on its own: the run cannot go on.
        Receive<Terminated>(t => Fail(t.ActorRef.Path.Name));
    }

    /// <summary>The latest failure of a child, as the strategy saw it (its Terminated follows).</summary>
    private Exception? _childFailure;
    private bool _finished;

    /// <summary>
    /// Any child that throws is stopped, not restarted: a unit, host or domain supervisor that lost its state
    /// cannot rejoin a run whose windows are in lockstep. Its <see cref="Terminated"/> then ends the run.
    /// </summary>
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(e =>
    {
        _childFailure = e;
        return Directive.Stop;
    });

    /// <summary>Ends the run with one error naming the actor <paramref name="name"/> that failed or stopped.</summary>
    private void Fail(string name)
    {
        if (_finished)
            return;
        _finished = true;
        var cause = _childFailure is ActorInitializationException { InnerException: { } inner } ? inner : _childFailure;
        _done.TrySetException(new InvalidOperationException(cause is null
            ? $"actor {name} stopped unexpectedly"
            : $"actor {name} failed: {OneLine(cause.Message)}"));
        Context.Stop(Self);
    }

    private static string OneLine(string text) => text.ReplaceLineEndings(" ");

    protected override void PreStart()
    {
        try
        {
            Setup();
        }
        catch (Exception e)
        {
            _finished = true;
            _done.TrySetException(e);
            Context.Stop(Self);
        }
    }

    private static string DomainName(int d) => SimulationSettings.DomainName(d);

    private void Setup()
    {
        var unitConfig = UnsafeModes.Apply(_s.Unsafe, new IommuUnitConfig
        {
            Policy = _s.Policy,
            Cpus = _s.Cpus,
            Iotlb = new IotlbConfig(_s.IotlbEntries, Math.Min(8, _s.IotlbEntries)),
        });
        for (int u = 0; u < _s.Iommus; u++)
        {
            string name = "iommu" + u.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var unit = Context.Watch(Context.ActorOf(IotlbActor.Props(name, unitConfig, _pools), name));
            _units.Add(unit);
            var lane = new Lane(u, unit);
            _lanes.Add(lane);
            _laneOfUnit[name] = lane;
        }

        var devicesOf = new List<int>[_s.Domains];
        for (int d = 0; d < _s.Domains; d++)
            devicesOf[d] = new List<int>();
        for (int dev = 0; dev < _s.Devices; dev++)
            devicesOf[dev % _s.Domains].Add(dev);

        var options = new WorkloadOptions { Inflight = _s.Inflight, LateDmaProbability = _s.LateDma };
        options.Validate();
        _unbound = _s.Domains;
        for (int d = 0; d < _s.Domains; d++)
        {
            var lane = _lanes[d % _s.Iommus];
            var settings = new DomainActor.Settings(_s.RunId, DomainName(d), PtConfig.Default(_s.Format),
                MaxOpsPerEvent: _s.MaxOpsPerEvent, SnapshotEvery: _s.SnapshotEvery, Iotlb: lane.Unit,
                ReplyUnmapsAfterFlush: _s.Policy.Kind is FlushPolicyKind.Strict or FlushPolicyKind.Batch, Pools: _pools,
                AckLog: _ackLog, Index: d);
            var domain = Context.Watch(Context.ActorOf(DomainActor.SupervisedProps(settings), DomainName(d)));
            lane.Domains.Add(domain);
            lane.DomainNames.Add(DomainName(d));
            _laneOfDomain[DomainName(d)] = lane;
            lane.Unit.Tell(new IotlbActor.AttachDevices(DomainName(d), d + 1, domain, devicesOf[d].ToArray()));
            var hosted = new List<DeviceHost.HostedDevice>();
            foreach (int dev in devicesOf[d])
                hosted.Add(new DeviceHost.HostedDevice(WorkloadFactory.Create(_s.Workload, dev, _s.Seed, options), domain, lane.Unit));
            var host = Context.Watch(Context.ActorOf(DeviceHost.Props(hosted, _pools), "host" + d.ToString("D4", System.Globalization.CultureInfo.InvariantCulture)));
            lane.Hosts.Add(host);
            lane.HostIndex.Add(_hostCount++);
            _laneOfHost[host] = lane;
        }
        if (_s.Domains == 0)
            Start();
    }

    private void Start()
    {
        foreach (var lane in _lanes)
        {
            if (lane.Domains.Count == 0)
            {
                lane.Done = true;
                continue;
            }
            _lanesRunning++;
            NextWindow(lane);
        }
        if (_lanesRunning == 0)
            Finish();
    }

    private void NextWindow(Lane lane)
    {
        lane.Window++;
        ulong t0 = (ulong)(lane.Window - 1) * _s.WindowNs, t1 = (ulong)lane.Window * _s.WindowNs;
        lane.HostsPending = lane.Hosts.Count;
        // --ops N: what is left of N after the previous window (every lane has generated it) is shared between
        // all the run's hosts, the remainder going to the first ones in host order; exactly N calls are issued.
        long remaining = _s.Ops is { } n ? Math.Max(0, n - IssuedThroughWindow(lane.Window - 1)) : -1;
        long share = remaining < 0 ? -1 : remaining / Math.Max(1, _hostCount);
        long extra = remaining < 0 ? 0 : remaining % Math.Max(1, _hostCount);
        for (int i = 0; i < lane.Hosts.Count; i++)
            lane.Hosts[i].Tell(new DeviceHost.Generate(lane.Window, t0, t1, lane.Quiet, remaining < 0 ? -1 : share + (lane.HostIndex[i] < extra ? 1 : 0)));
    }

    /// <summary>Calls issued in the whole run through window <paramref name="w"/>.</summary>
    private long IssuedThroughWindow(long w)
    {
        long sum = 0;
        foreach (var lane in _lanes)
            sum += lane.IssuedThroughWindow(w);
        return sum;
    }

    /// <summary>Whether every lane still running has generated window <paramref name="w"/>.</summary>
    private bool AllGenerated(long w)
    {
        foreach (var lane in _lanes)
        {
            if (!lane.Done && lane.IssuedThrough.Count < w)
                return false;
        }
        return true;
    }

    private void ResumeLanesWaitingForBudget()
    {
        for (int i = 0; i < _waitingForBudget.Count;)
        {
            var lane = _waitingForBudget[i];
            if (AllGenerated(lane.Window))
            {
                _waitingForBudget.RemoveAt(i);
                ContinueOrWindDown(lane);
            }
            else
            {
                i++;
            }
        }
    }

    /// <summary>A host counter summed over every lane.</summary>
    private long SumHosts(Func<DeviceHost.HostCounters, long> counter)
    {
        long sum = 0;
        foreach (var lane in _lanes)
            sum += lane.SumHosts(counter);
        return sum;
    }

    /// <summary>Commits the lane's current window once its hosts have generated it and its unit is idle.</summary>
    private void TryCommit(Lane lane)
    {
        if (lane.HostsPending == 0 && !lane.UnitBusy && lane.CommittedWindow < lane.Window)
            CommitDomains(lane);
    }

    private void CommitDomains(Lane lane)
    {
        lane.DomainsPending = lane.Domains.Count;
        foreach (var name in lane.DomainNames)
            _awaitingCommit.Add(name);
        foreach (var d in lane.Domains)
            d.Tell(new DomainActor.Commit(lane.Window));
    }

    private void ProcessUnit(Lane lane)
    {
        lane.UnitBusy = true;
        lane.Unit.Tell(new IotlbActor.Process(lane.Window, (ulong)lane.Window * _s.WindowNs));
    }

    private long Acknowledged() => SumHosts(static c => c.Maps + c.Unmaps);

    /// <summary>
    /// A window is committed (its unit now processes it): go on to the next one. With --ops, whether the run has
    /// issued everything (and the next window's shares) depends on what every lane generated in this window: a
    /// lane ahead of the others waits for them here, at most one window ahead.
    /// </summary>
    private void AfterCommit(Lane lane)
    {
        if (_s.Ops is not null && !AllGenerated(lane.Window))
        {
            _waitingForBudget.Add(lane);
            return;
        }
        ContinueOrWindDown(lane);
    }

    /// <summary>Generate the next window, or wind down once the run has issued what it was asked to or reached its duration.</summary>
    private void ContinueOrWindDown(Lane lane)
    {
        ulong now = (ulong)lane.Window * _s.WindowNs;
        if ((_s.Ops is { } n && IssuedThroughWindow(lane.Window) >= n) || (_s.DurationNs is { } d && now >= d))
        {
            lane.Quiet = true;
            if (!lane.UnitBusy)
                Drain(lane);   // otherwise the end of the window being processed starts it
            return;
        }
        NextWindow(lane);
    }

    /// <summary>The unit processed the lane's committed window.</summary>
    private void EndWindow(Lane lane)
    {
        lane.UnitBusy = false;
        // The lane's domains do not commit while their unit processes: their tables are as the window left them.
        lane.PagesAtWindowEnd.Add(LanePages(lane));
        ReportProgress(Acknowledged(), force: false);
        if (lane.Quiet)
            Drain(lane);
        else
            TryCommit(lane);
    }

    /// <summary>
    /// Winding down: flush what the policy holds so that operations waiting on an unmap's lock can run; once
    /// nothing is outstanding, one last commit makes the final releases durable.
    /// </summary>
    private void Drain(Lane lane)
    {
        ulong now = (ulong)lane.Window * _s.WindowNs;
        lane.FinalDrain = lane.SumHosts(static c => c.Inflight) == 0 || ++lane.QuietWindows > 10_000;
        lane.UnitBusy = true;
        lane.Unit.Tell(new IotlbActor.Drain(now));
    }

    private long LanePages(Lane lane)
    {
        long pages = 0;
        foreach (var name in lane.DomainNames)
            pages += _tables[name].TablePages;
        return pages;
    }

    private void LaneDone(Lane lane)
    {
        lane.Done = true;
        if (--_lanesRunning == 0)
            Finish();
    }

    private long SimWindows()
    {
        long windows = 0;
        foreach (var lane in _lanes)
            windows = Math.Max(windows, lane.Window);
        return windows;
    }

    private void ReportProgress(long acked, bool force)
    {
        var elapsed = _wall.Elapsed;
        if (_progress is null || (!force && elapsed - _lastReport < TimeSpan.FromMilliseconds(250)))
            return;
        _lastReport = elapsed;
        long dmas = SumHosts(static c => c.Dmas);
        long window = SimWindows();
        _progress.Report(new SimulationProgress(window, window * (double)_s.WindowNs / 1e9, acked, _s.Ops ?? 0, dmas,
            acked / Math.Max(elapsed.TotalSeconds, 1e-9)));
    }

    private void Finish()
    {
        _awaitingCounters = _units.Count;
        _unitCounters.Clear();
        foreach (var u in _units)
            u.Tell(new IotlbActor.GetCounters());
    }

    private readonly List<IotlbActor.Counters> _unitCounters = new();

    private void OnCounters(IotlbActor.Counters c)
    {
        _unitCounters.Add(c);
        foreach (var (name, table) in c.Tables)
            _tables[name] = table;
        if (--_awaitingCounters > 0)
            return;

        double wall = _wall.Elapsed.TotalSeconds;
        long finalPages = 0;
        foreach (var lane in _lanes)
            finalPages += LanePages(lane);
        var result = RunFigures.Aggregate(new RunFigures.Inputs(_s, _lanes.SelectMany(static l => l.Counters.Values), _unitCounters,
            _lanes.Select(static l => (IReadOnlyList<long>)l.PagesAtWindowEnd).ToList(), finalPages, _tables, _events, _opsPersisted, SimWindows(), wall));
        ReportProgress(result.Ops, force: true);
        _done.TrySetResult(result);
        _finished = true;
        Context.Stop(Self);
    }
}
