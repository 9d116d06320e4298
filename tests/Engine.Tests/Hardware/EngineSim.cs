using System.Runtime.InteropServices;
using PtActors.Engine.Dma;
using PtActors.Engine.Hardware;
using PtActors.Engine.Workloads;

namespace PtActors.Engine.Tests.Hardware;

/// <summary>
/// The actor simulator's window loop in one thread, without actors or persistence: the same workloads, domain
/// models (deferred flushes), IOMMU units and <see cref="UnitWindow"/>s, wired as <c>ptactors simulate</c> wires
/// them (device d on domain d mod domains, domain d on unit d mod iommus, the k-th device of a domain on CPU k mod
/// cpus). Per window: every device generates [t0, t1); each domain applies the releases its unit sent at the end
/// of the previous window, then the window's operations in stamp order (one <see cref="DomainModel.ApplyBatch"/>),
/// and answers (under strict and batch:N an unmap once its flush completed); each unit runs the DMAs, unmap notices
/// and flushes in stamp order. Used for campaigns too large for the actor suite.
/// </summary>
internal sealed class EngineSim
{
    public sealed record Settings(string Workload, FlushPolicySpec Policy, int Iommus = 2, int Domains = 8, int Devices = 32,
        ulong Seed = 1, double? LateDma = null, int Cpus = 1, int IotlbEntries = 1024, PtFormatKind Format = PtFormatKind.X86_64,
        WorkloadOptions? Options = null, ulong IovaLimit = 0xffff_ffff);

    /// <summary>What a run did: DMA-API calls answered (<c>Errors</c> of them refused), DMAs translated, and the units' findings.</summary>
    public readonly record struct Figures(long Ops, long Dmas, long Faults, long StaleInWindow, long StaleViolations, long UseAfterFree, long IsolationBreaches, long Windows, long Errors = 0);

    private sealed class Sink : IWorkloadSink
    {
        public List<DmaOp>[] Ops = [];
        public UnitWindow[] Windows = [];
        public int Domain, Unit, Device;
        public uint Seq;

        public void Submit(in DmaOp op) => Ops[Domain].Add(op);

        public void Dma(ulong stampNs, ulong iova, bool write) => Windows[Unit].AddDma(new DmaAccess(stampNs, Device, Seq++, iova, write));
    }

    private readonly Settings _s;
    private readonly IommuUnit[] _units;
    private readonly UnitWindow[] _windows;
    private readonly DomainModel[] _models;
    private readonly List<long>[] _released;
    private readonly IDeviceWorkload[] _devices;
    private readonly uint[] _dmaSeq;
    private readonly Dictionary<long, DmaOpResult> _held = new();
    private readonly bool _holdUnmaps;
    private long _errors;

    public EngineSim(Settings s)
    {
        _s = s;
        var config = new IommuUnitConfig { Policy = s.Policy, Cpus = s.Cpus, Iotlb = new IotlbConfig(s.IotlbEntries, Math.Min(8, s.IotlbEntries)) };
        _units = new IommuUnit[s.Iommus];
        _windows = new UnitWindow[s.Iommus];
        for (int u = 0; u < s.Iommus; u++)
        {
            _units[u] = new IommuUnit("iommu" + u, config, new SimClock());
            _windows[u] = new UnitWindow(_units[u]);
        }
        _models = new DomainModel[s.Domains];
        _released = new List<long>[s.Domains];
        var domainOf = new Dictionary<IommuDomain, int>(ReferenceEqualityComparer.Instance);
        for (int d = 0; d < s.Domains; d++)
        {
            if (DomainModel.Create(PtConfig.Default(s.Format), 0x1000, s.IovaLimit, out var m) != Errno.None)
                throw new InvalidOperationException("domain refused");
            m!.DeferFlushes();
            _models[d] = m;
            _released[d] = new List<long>();
            domainOf[m.Domain] = d;
        }
        foreach (var unit in _units)
            unit.UnmapReleased = (table, id) => _released[domainOf[table]].Add(id);
        var options = (s.Options ?? new WorkloadOptions()) with { LateDmaProbability = s.LateDma };
        _devices = new IDeviceWorkload[s.Devices];
        _dmaSeq = new uint[s.Devices];
        var perDomain = new int[s.Domains];
        for (int i = 0; i < s.Devices; i++)
        {
            _devices[i] = WorkloadFactory.Create(s.Workload, i, s.Seed, options);
            int d = i % s.Domains, u = d % s.Iommus;
            var device = _units[u].Device("dev" + i);
            var err = _units[u].Attach(device, _models[d].Domain, splitMode: true, domainId: d + 1);
            if (err != Errno.None)
                throw new InvalidOperationException($"attach: {err}");
            _windows[u].Bind(i, device, perDomain[d]++ % s.Cpus);
        }
        _holdUnmaps = s.Policy.Kind is FlushPolicyKind.Strict or FlushPolicyKind.Batch;
    }

    /// <summary>Runs windows of 100 µs until at least <paramref name="ops"/> map and unmap calls were answered, then drains.</summary>
    public Figures Run(long ops)
    {
        const ulong Window = 100_000;
        var sink = new Sink { Ops = new List<DmaOp>[_s.Domains], Windows = _windows };
        for (int d = 0; d < _s.Domains; d++)
            sink.Ops[d] = new List<DmaOp>();
        var outcome = new BatchOutcome();
        long done = 0, w = 0;
        ulong t0 = 0;
        while (done < ops)
        {
            ulong t1 = t0 + Window;
            for (int i = 0; i < _devices.Length; i++)
            {
                sink.Device = i;
                sink.Domain = i % _s.Domains;
                sink.Unit = sink.Domain % _s.Iommus;
                sink.Seq = _dmaSeq[i];
                _devices[i].Generate(t0, t1, sink);
                _dmaSeq[i] = sink.Seq;
            }
            for (int d = 0; d < _s.Domains; d++)
            {
                var list = sink.Ops[d];
                list.Sort();
                done += Commit(d, t0, CollectionsMarshal.AsSpan(list), outcome);
                list.Clear();
            }
            for (int u = 0; u < _s.Iommus; u++)
                _windows[u].Run(t1);
            t0 = t1;
            w++;
        }
        foreach (var unit in _units)
        {
            unit.Clock.AdvanceTo(t0);
            unit.Drain();
        }
        for (int d = 0; d < _s.Domains; d++)
            done += Commit(d, t0, [], outcome);
        long dmas = 0, faults = 0, inWindow = 0, violations = 0, uaf = 0, breaches = 0;
        for (int u = 0; u < _s.Iommus; u++)
        {
            var st = _units[u].Stats;
            dmas += _windows[u].DmasRun;
            faults += st.Faults;
            inWindow += st.StaleInWindow;
            violations += st.StaleViolations;
            uaf += st.UseAfterFree;
            breaches += st.IsolationBreaches;
        }
        return new Figures(done, dmas, faults, inWindow, violations, uaf, breaches, w, _errors);
    }

    /// <summary>One domain's commit; returns the map and unmap calls it answered.</summary>
    private long Commit(int d, ulong releasedAtNs, ReadOnlySpan<DmaOp> ops, BatchOutcome outcome)
    {
        var released = _released[d];
        if (released.Count == 0 && ops.IsEmpty)
            return 0;
        outcome.Clear();
        _models[d].ApplyBatch([], CollectionsMarshal.AsSpan(released), releasedAtNs, ops, outcome);
        long answered = 0;
        foreach (long id in released)
        {
            if (_held.Remove(id, out var r))
                answered += Answer(r);
        }
        released.Clear();
        int n = 0;
        foreach (var r in outcome.Results)
        {
            bool noticed = n < outcome.Notices.Count && outcome.Notices[n].Id == r.Id;
            if (noticed)
                n++;
            if (noticed && _holdUnmaps)
                _held[r.Id] = r;
            else
                answered += Answer(r);
        }
        var window = _windows[d % _s.Iommus];
        var table = _models[d].Domain;
        var leaves = CollectionsMarshal.AsSpan(outcome.Leaves);
        foreach (var notice in outcome.Notices)
            window.AddUnmap(notice, table, leaves);
        foreach (var f in outcome.Flushes)
            window.AddFlush(f, table);
        return answered;
    }

    private long Answer(in DmaOpResult r)
    {
        _devices[(int)(r.Id >> 32)].OnResult(r);
        if (r.Kind is not (DmaOpKind.DmaMap or DmaOpKind.Map or DmaOpKind.Unmap))
            return 0;
        if (r.Error != Errno.None)
            _errors++;
        return 1;
    }
}
