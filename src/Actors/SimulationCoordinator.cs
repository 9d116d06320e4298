using System.Diagnostics;
using System.Security.Cryptography;
using Akka.Actor;
using PtActors.Engine;
using PtActors.Engine.Hardware;
using PtActors.Engine.Workloads;

namespace PtActors.Actors;

/// <summary>
/// Drives a run window by window. Each window has three phases with a barrier after each: the device hosts
/// generate and send their traffic; the domains apply their operations in stamp order, persist and answer; the
/// IOMMU units run DMAs, unmaps and timeouts in stamp order and release what their flushes covered. The
/// phases never overlap, which is what lets the units' walks read the domains' tables directly, and what makes
/// every figure but the wall-clock ones depend only on the seed and the settings.
/// </summary>
internal sealed class SimulationCoordinator : ReceiveActor
{
    internal sealed record Finished(SimulationResult Result);

    private readonly SimulationSettings _s;
    private readonly IProgress<SimulationProgress>? _progress;
    private readonly TaskCompletionSource<SimulationResult> _done;
    private readonly Stopwatch _wall = Stopwatch.StartNew();
    private readonly List<IActorRef> _units = new();
    private readonly List<IActorRef> _domains = new();
    private readonly List<IActorRef> _hosts = new();
    private readonly Dictionary<string, IommuDomain> _tables = new(StringComparer.Ordinal);
    private readonly Dictionary<IActorRef, DeviceHost.HostCounters> _counters = new();
    private long _window;
    private int _awaiting;
    private bool _quiet;
    private int _quietWindows;
    private bool _drained;
    private bool _finalDrain;
    private long _events, _opsPersisted, _tablePagesMax;
    private TimeSpan _lastReport;

    public SimulationCoordinator(SimulationSettings settings, IProgress<SimulationProgress>? progress, TaskCompletionSource<SimulationResult> done)
    {
        _s = settings;
        _progress = progress;
        _done = done;

        Receive<IotlbActor.Bound>(b =>
        {
            _tables[b.Domain] = b.Table;
            if (--_awaiting == 0)
                NextWindow();
        });
        Receive<DeviceHost.Generated>(g =>
        {
            _counters[Sender] = g.Counters;
            if (--_awaiting == 0)
                CommitDomains();
        });
        Receive<DomainActor.Committed>(c =>
        {
            _events += c.Events;
            _opsPersisted += c.Ops;
            if (--_awaiting == 0)
            {
                if (_drained)
                    Finish();
                else
                    ProcessUnits();
            }
        });
        Receive<IotlbActor.Processed>(p =>
        {
            if (--_awaiting == 0)
                EndWindow();
        });
        Receive<IotlbActor.Drained>(_ =>
        {
            if (--_awaiting > 0)
                return;
            if (_finalDrain)
            {
                // The drain's releases are queued at the domains: one last commit applies and persists them.
                _drained = true;
                CommitDomains();
            }
            else
            {
                NextWindow();
            }
        });
        Receive<IotlbActor.Counters>(OnCounters);
        Receive<Status.Failure>(f => _done.TrySetException(f.Cause));
    }

    protected override void PreStart()
    {
        try
        {
            Setup();
        }
        catch (Exception e)
        {
            _done.TrySetException(e);
            Context.Stop(Self);
        }
    }

    private static string DomainName(int d) => "dom" + d.ToString("D4", System.Globalization.CultureInfo.InvariantCulture);

    private void Setup()
    {
        var unitConfig = new IommuUnitConfig
        {
            Policy = _s.Policy,
            Cpus = _s.Cpus,
            Iotlb = new IotlbConfig(_s.IotlbEntries, Math.Min(8, _s.IotlbEntries)),
        };
        for (int u = 0; u < _s.Iommus; u++)
            _units.Add(Context.ActorOf(IotlbActor.Props("iommu" + u, unitConfig), "iommu" + u));

        var devicesOf = new List<int>[_s.Domains];
        for (int d = 0; d < _s.Domains; d++)
            devicesOf[d] = new List<int>();
        for (int dev = 0; dev < _s.Devices; dev++)
            devicesOf[dev % _s.Domains].Add(dev);

        var options = new WorkloadOptions { Inflight = _s.Inflight, LateDmaProbability = _s.LateDma };
        options.Validate();
        _awaiting = _s.Domains;
        for (int d = 0; d < _s.Domains; d++)
        {
            var unit = _units[d % _s.Iommus];
            var settings = new DomainActor.Settings(_s.RunId, DomainName(d), PtConfig.Default(_s.Format),
                MaxOpsPerEvent: _s.MaxOpsPerEvent, Iotlb: unit,
                ReplyUnmapsAfterFlush: _s.Policy.Kind is FlushPolicyKind.Strict or FlushPolicyKind.Batch);
            var domain = Context.ActorOf(DomainActor.SupervisedProps(settings), DomainName(d));
            _domains.Add(domain);
            unit.Tell(new IotlbActor.AttachDevices(DomainName(d), d + 1, domain, devicesOf[d].ToArray()));
            var hosted = new List<DeviceHost.HostedDevice>();
            foreach (int dev in devicesOf[d])
                hosted.Add(new DeviceHost.HostedDevice(WorkloadFactory.Create(_s.Workload, dev, _s.Seed, options), domain, unit));
            _hosts.Add(Context.ActorOf(DeviceHost.Props(hosted), "host" + d.ToString("D4", System.Globalization.CultureInfo.InvariantCulture)));
        }
        if (_s.Domains == 0)
            NextWindow();
    }

    private void NextWindow()
    {
        _window++;
        ulong t0 = (ulong)(_window - 1) * _s.WindowNs, t1 = (ulong)_window * _s.WindowNs;
        _awaiting = _hosts.Count;
        // --ops N: share what is left of N between the hosts, in a fixed order, so exactly N calls are issued.
        long remaining = _s.Ops is { } n ? Math.Max(0, n - Issued()) : -1;
        long share = remaining < 0 ? -1 : remaining / Math.Max(1, _hosts.Count);
        long extra = remaining < 0 ? 0 : remaining % Math.Max(1, _hosts.Count);
        for (int i = 0; i < _hosts.Count; i++)
            _hosts[i].Tell(new DeviceHost.Generate(_window, t0, t1, _quiet, remaining < 0 ? -1 : share + (i < extra ? 1 : 0)));
    }

    /// <summary>A host counter summed over the hosts.</summary>
    private long SumHosts(Func<DeviceHost.HostCounters, long> counter)
    {
        long sum = 0;
        foreach (var c in _counters.Values)
            sum += counter(c);
        return sum;
    }

    private long Issued() => SumHosts(static c => c.Issued);

    private void CommitDomains()
    {
        _awaiting = _domains.Count;
        foreach (var d in _domains)
            d.Tell(new DomainActor.Commit(_window));
    }

    private void ProcessUnits()
    {
        _awaiting = _units.Count;
        foreach (var u in _units)
            u.Tell(new IotlbActor.Process(_window, (ulong)_window * _s.WindowNs));
    }

    private long Acknowledged() => SumHosts(static c => c.Maps + c.Unmaps);

    private long Inflight() => SumHosts(static c => c.Inflight);

    private void EndWindow()
    {
        ulong now = (ulong)_window * _s.WindowNs;
        long acked = Acknowledged();
        _tablePagesMax = Math.Max(_tablePagesMax, TablePagesNow());
        ReportProgress(acked, now, force: false);
        if (!_quiet && ((_s.Ops is { } target && Issued() >= target) || (_s.DurationNs is { } d && now >= d)))
            _quiet = true;
        if (_quiet)
        {
            // Winding down: flush what the policies hold so that operations waiting on an unmap's lock can run;
            // once nothing is outstanding, one last commit makes the final releases durable.
            _finalDrain = Inflight() == 0 || ++_quietWindows > 10_000;
            _awaiting = _units.Count;
            foreach (var u in _units)
                u.Tell(new IotlbActor.Drain(now));
            return;
        }
        NextWindow();
    }

    private void ReportProgress(long acked, ulong now, bool force)
    {
        var elapsed = _wall.Elapsed;
        if (_progress is null || (!force && elapsed - _lastReport < TimeSpan.FromMilliseconds(250)))
            return;
        _lastReport = elapsed;
        long dmas = SumHosts(static c => c.Dmas);
        _progress.Report(new SimulationProgress(_window, now / 1e9, acked, _s.Ops ?? 0, dmas,
            acked / Math.Max(elapsed.TotalSeconds, 1e-9)));
    }

    private void Finish()
    {
        _awaiting = _units.Count;
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
        if (--_awaiting > 0)
            return;

        double wall = _wall.Elapsed.TotalSeconds;
        long maps = 0, unmaps = 0, errors = 0, dmas = 0;
        ulong bytes = 0;
        var waits = new long[DeviceHost.LockWaitBuckets];
        foreach (var h in _counters.Values)
        {
            maps += h.Maps;
            unmaps += h.Unmaps;
            errors += h.Errors;
            dmas += h.Dmas;
            bytes += h.BytesMapped;
            for (int i = 0; i < waits.Length; i++)
                waits[i] += h.LockWaitHistogram[i];
        }
        long hits = 0, misses = 0, inv = 0, over = 0, inWindow = 0, violations = 0, uaf = 0, breaches = 0, faults = 0;
        foreach (var u in _unitCounters)
        {
            hits += u.Stats.Hits;
            misses += u.Stats.Misses;
            inv += u.Stats.Invalidations;
            over += u.Stats.OverInvalidatedBytes;
            inWindow += u.Stats.StaleInWindow;
            violations += u.Stats.StaleViolations;
            uaf += u.Stats.UseAfterFree;
            breaches += u.Stats.IsolationBreaches;
            faults += u.Stats.Faults;
        }
        long ops = maps + unmaps;
        ReportProgress(ops, (ulong)_window * _s.WindowNs, force: true);
        _done.TrySetResult(new SimulationResult
        {
            RunId = _s.RunId,
            Ops = ops,
            Dmas = dmas,
            OpsPerSec = ops / Math.Max(wall, 1e-9),
            WallS = wall,
            SimS = _window * (double)_s.WindowNs / 1e9,
            Maps = maps,
            Unmaps = unmaps,
            BytesMapped = bytes,
            IotlbHitRate = hits + misses == 0 ? 0 : (double)hits / (hits + misses),
            Invalidations = inv,
            InvalidationsPerUnmap = unmaps == 0 ? 0 : (double)inv / unmaps,
            OverInvalidatedBytes = over,
            StaleInWindow = inWindow,
            StaleViolations = violations,
            UseAfterFree = uaf,
            IsolationBreaches = breaches,
            LockWaitP50Us = Percentile(waits, 0.50),
            LockWaitP99Us = Percentile(waits, 0.99),
            TablePagesMax = Math.Max(_tablePagesMax, TablePagesNow()),
            EventsPersisted = _events,
            OpsPersisted = _opsPersisted,
            TableHash = TableHash(),
            Faults = faults,
            Errors = errors,
        });
        Context.Stop(Self);
    }

    private long TablePagesNow()
    {
        long pages = 0;
        foreach (var t in _tables.Values)
            pages += t.TablePages;
        return pages;
    }

    /// <summary>The upper bound (µs) of the histogram bucket holding the given quantile.</summary>
    private static double Percentile(long[] histogram, double q)
    {
        long total = 0;
        foreach (long n in histogram)
            total += n;
        if (total == 0)
            return 0;
        long rank = (long)Math.Ceiling(q * total), seen = 0;
        for (int k = 0; k < histogram.Length; k++)
        {
            seen += histogram[k];
            if (seen >= rank)
                return k == 0 ? 0 : Math.Pow(2, k) ;
        }
        return Math.Pow(2, histogram.Length);
    }

    private string TableHash()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var name in _tables.Keys.Order(StringComparer.Ordinal))
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(name));
            _tables[name].WriteCanonical(hash);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
