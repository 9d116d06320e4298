using PtActors.Engine.Dma;
using PtActors.Engine.Workloads;
using Xunit;

namespace PtActors.Engine.Tests.Workloads;

/// <summary>One DMA access as a device emitted it.</summary>
internal readonly record struct DmaAccess(ulong StampNs, ulong Iova, bool Write);

/// <summary>Records one device's output and checks the stream invariants as it comes: stamps inside the window, non-decreasing.</summary>
internal sealed class RecordingSink(FakeDomain domain, int device, bool record = true) : IWorkloadSink
{
    private ulong _t0, _t1, _last;

    public List<DmaOp> Ops { get; } = new();
    public List<DmaAccess> Dmas { get; } = new();
    public long OpCount { get; private set; }
    public long DmaCount { get; private set; }
    public int MaxOutstanding { get; private set; }
    public long[] ByKind { get; } = new long[5];

    public void Begin(ulong t0, ulong t1)
    {
        _t0 = t0;
        _t1 = t1;
    }

    public void Submit(in DmaOp op)
    {
        Check(op.StampNs);
        Assert.Equal(device, op.Device);
        OpCount++;
        ByKind[(int)op.Kind]++;
        if (record)
            Ops.Add(op);
        int outstanding = domain.Accept(op);
        MaxOutstanding = Math.Max(MaxOutstanding, outstanding);
    }

    public void Dma(ulong stampNs, ulong iova, bool write)
    {
        Check(stampNs);
        DmaCount++;
        if (record)
            Dmas.Add(new DmaAccess(stampNs, iova, write));
        domain.Access(device, iova);
    }

    private void Check(ulong stamp)
    {
        if (stamp < _t0 || stamp >= _t1)
            Assert.Fail($"Device {device}: stamp {stamp} outside the window [{_t0}, {_t1}).");
        if (stamp < _last)
            Assert.Fail($"Device {device}: stamp {stamp} after {_last}.");
        _last = stamp;
    }
}

/// <summary>
/// A tiny stand-in for the domain: DmaMap IOVAs from a counter (size aligned, far above the explicit windows),
/// explicit Maps refused with EADDRINUSE when they overlap a live mapping, unmaps that take a whole 2 MiB
/// explicit mapping (a large page) or split a smaller one, replies held for 0 to <c>maxDelay</c> windows.
/// </summary>
internal sealed class FakeDomain(int maxDelayWindows = 0, ulong seed = 1, double mapFailure = 0)
{
    private readonly List<(DmaOp Op, int Due)> _queue = new();
    private readonly Dictionary<ulong, (ulong Size, bool Explicit)> _live = new();
    private readonly SortedSet<ulong> _starts = new();
    private readonly Dictionary<int, int> _outstanding = new();
    private Xoshiro256StarStar _rng = new(seed);
    private readonly ulong _failThreshold = Xoshiro256StarStar.Threshold(mapFailure);
    private ulong _next = 1UL << 40;
    private int _window;

    private readonly Dictionary<long, ulong> _iovas = new();

    public long Faults { get; private set; }
    public long Hits { get; private set; }

    /// <summary>The IOVA the reply to each of <paramref name="ops"/> carried (they must have been answered).</summary>
    public ulong[] MappedIovas(IEnumerable<DmaOp> ops) => ops.Select(o => _iovas[o.Id]).ToArray();
    public long AddressInUse { get; private set; }

    /// <summary>Takes an op; returns how many ops its device has outstanding now.</summary>
    public int Accept(in DmaOp op)
    {
        int delay = maxDelayWindows == 0 ? 0 : (int)_rng.NextBelow((ulong)maxDelayWindows + 1);
        _queue.Add((op, _window + delay));
        _outstanding.TryGetValue(op.Device, out int n);
        _outstanding[op.Device] = ++n;
        return n;
    }

    public void Access(int device, ulong iova)
    {
        if (Find(iova) is not null)
            Hits++;
        else
            Faults++;
    }

    /// <summary>The live mapping holding <paramref name="iova"/> (mappings are disjoint: the last one starting at or below it).</summary>
    private ulong? Find(ulong iova)
    {
        ulong start = _starts.GetViewBetween(0, iova).Max; // 0 when empty: never a mapping's start
        return _live.TryGetValue(start, out var m) && iova - start < m.Size ? start : null;
    }

    private bool Overlaps(ulong iova, ulong size)
    {
        ulong start = _starts.GetViewBetween(0, iova + size - 1).Max;
        return _live.TryGetValue(start, out var m) && start + m.Size > iova;
    }

    private void Add(ulong iova, ulong size, bool isExplicit)
    {
        _live.Add(iova, (size, isExplicit));
        _starts.Add(iova);
    }

    private bool Remove(ulong iova, out (ulong Size, bool Explicit) m)
    {
        if (!_live.Remove(iova, out m))
            return false;
        _starts.Remove(iova);
        return true;
    }

    /// <summary>Ends the window: replies (in stamp order) to every op due, to the devices.</summary>
    public void EndWindow(IReadOnlyList<IDeviceWorkload> devices)
    {
        var due = new List<DmaOp>();
        _queue.RemoveAll(e =>
        {
            if (e.Due > _window)
                return false;
            due.Add(e.Op);
            return true;
        });
        due.Sort();
        foreach (var op in due)
        {
            var r = Apply(op);
            _iovas[op.Id] = r.Iova;
            _outstanding[op.Device]--;
            devices[op.Device].OnResult(r);
        }
        _window++;
    }

    private static ulong Pages(ulong size) => (size + 0xfff) & ~0xfffUL;

    private DmaOpResult Apply(in DmaOp op)
    {
        switch (op.Kind)
        {
            case DmaOpKind.DmaMap:
            {
                if (_failThreshold != 0 && _rng.Chance(_failThreshold))
                    return new DmaOpResult(op.Id, Errno.ENOMEM, 0, 0, 0);
                ulong align = System.Numerics.BitOperations.RoundUpToPowerOf2(Pages(op.Size));
                ulong iova = (_next + align - 1) & ~(align - 1);
                _next = iova + Pages(op.Size);
                Add(iova, Pages(op.Size), false);
                return new DmaOpResult(op.Id, Errno.None, iova, Pages(op.Size), 0);
            }
            case DmaOpKind.Map:
                if (Overlaps(op.Iova, op.Size))
                {
                    AddressInUse++;
                    return new DmaOpResult(op.Id, Errno.EADDRINUSE, op.Iova, 0, 0);
                }
                Add(op.Iova, op.Size, true);
                return new DmaOpResult(op.Id, Errno.None, op.Iova, op.Size, 0);
            case DmaOpKind.Unmap:
            {
                if (!Remove(op.Iova, out var m))
                    return new DmaOpResult(op.Id, Errno.None, op.Iova, 0, 0);
                ulong bytes = m.Size;
                if (m.Explicit && m.Size != 2UL << 20 && op.Size < m.Size)
                {
                    bytes = op.Size; // small pages: only the prefix goes
                    Add(op.Iova + bytes, m.Size - bytes, true);
                }
                return new DmaOpResult(op.Id, Errno.None, op.Iova, bytes, 0);
            }
            default:
                return new DmaOpResult(op.Id, Errno.None, op.Iova, 0, 0);
        }
    }
}

/// <summary>Runs devices window by window against a <see cref="FakeDomain"/>.</summary>
internal sealed class WorkloadRun
{
    public WorkloadRun(IDeviceWorkload[] devices, FakeDomain? domain = null, bool record = true)
    {
        Devices = devices;
        Domain = domain ?? new FakeDomain();
        Sinks = new RecordingSink[devices.Length];
        for (int i = 0; i < devices.Length; i++)
        {
            Assert.Equal(i, devices[i].Device);
            Sinks[i] = new RecordingSink(Domain, i, record);
        }
    }

    public IDeviceWorkload[] Devices { get; }
    public FakeDomain Domain { get; }
    public RecordingSink[] Sinks { get; }
    public ulong Now { get; private set; }

    public static WorkloadRun Of(string kind, int devices, ulong seed, WorkloadOptions? options = null, FakeDomain? domain = null, bool record = true)
    {
        var d = new IDeviceWorkload[devices];
        for (int i = 0; i < devices; i++)
            d[i] = WorkloadFactory.Create(kind, i, seed, options);
        return new WorkloadRun(d, domain, record);
    }

    /// <summary>Runs <paramref name="count"/> windows; <paramref name="held"/> gives window w's hold from its start (the cost model's back-pressure).</summary>
    public WorkloadRun Windows(int count, ulong windowNs = 100_000, Action<int>? afterGenerate = null, Func<int, ulong>? held = null)
    {
        for (int w = 0; w < count; w++)
        {
            ulong t0 = Now, t1 = Now + windowNs;
            for (int i = 0; i < Devices.Length; i++)
            {
                Sinks[i].Begin(t0, t1);
                ulong hold = held?.Invoke(w) ?? 0;
                Devices[i].Generate(t0, t1, Sinks[i], hold == 0 ? 0 : t0 + hold);
                Assert.InRange(Devices[i].Inflight, 0, Devices[i].MaxInflight);
            }
            afterGenerate?.Invoke(w);
            Domain.EndWindow(Devices);
            Now = t1;
        }
        return this;
    }
}
