using PtActors.Engine.Dma;

namespace PtActors.Engine.Cost;

/// <summary>
/// The CPU side of the cost model for the devices of one domain: what their map calls cost on their CPUs, with
/// the domain's per-CPU IOVA caches (two magazines per CPU and size class, a shared depot of full magazines,
/// as drivers/iommu/iova.c keeps them), and the bytes each CPU's devices mapped. The unmaps' CPU time is the
/// unit's (<see cref="UnitCostLedger"/>), where the invalidations they wait for are timed.
/// </summary>
public sealed class HostCostLedger
{
    private readonly CostModel _model;
    private readonly int[,] _cached;     // [cpu, order]: IOVAs a CPU's two magazines hold
    private readonly int[] _depot;       // [order]: full magazines in the domain's depot

    /// <summary>A ledger for devices on CPUs 0 .. <paramref name="cpus"/> − 1.</summary>
    public HostCostLedger(CostModel model, int cpus)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        int orders = Math.Max(0, model.IovaCacheMaxOrder + 1);
        _cached = new int[Math.Max(1, cpus), Math.Max(1, orders)];
        _depot = new int[Math.Max(1, orders)];
        CpuNs = new double[Math.Max(1, cpus)];
        BytesByCpu = new double[Math.Max(1, cpus)];
    }

    /// <summary>The costs.</summary>
    public CostModel Model => _model;

    /// <summary>CPU time each CPU spent in map calls.</summary>
    public double[] CpuNs { get; private set; }

    /// <summary>Data bytes the devices on each CPU moved by DMA (<see cref="Moved"/>): what they offered, before the model's slowdown.</summary>
    public double[] BytesByCpu { get; private set; }

    /// <summary>Transfers (packets, commands, accesses) those bytes came in.</summary>
    public long Transfers { get; private set; }

    /// <summary>Work items the devices did not start because their CPU or unit was behind (<see cref="Moved"/>).</summary>
    public long Throttled { get; private set; }

    /// <summary>Data bytes the devices would have moved in the time they were held back (<see cref="PtActors.Engine.Workloads.WorkloadStats.HeldBytes"/>): with <see cref="BytesByCpu"/>, what they offered.</summary>
    public double HeldBytes { get; private set; }

    /// <summary>Latency of each map call (its CPU work: nothing a map does waits for the IOMMU).</summary>
    public LatencyHistogram MapLatency { get; private set; } = new();

    /// <summary>IOVA allocations.</summary>
    public long IovaAllocs { get; private set; }

    /// <summary>IOVA allocations neither the CPU's magazines nor the depot could serve.</summary>
    public long IovaCacheMisses { get; private set; }

    /// <summary>A map call of kind <paramref name="kind"/> answered on CPU <paramref name="cpu"/> with <paramref name="bytes"/> mapped (<paramref name="ok"/> false: it failed).</summary>
    public void Mapped(int cpu, DmaOpKind kind, ulong bytes, bool ok)
    {
        cpu %= CpuNs.Length;
        double ns = _model.MapNs(bytes);
        if (kind == DmaOpKind.DmaMap)
            ns += _model.DmaCallNs + Allocate(cpu, bytes);
        CpuNs[cpu] += ns;
        MapLatency.Add(ns);
    }

    /// <summary>
    /// The devices on CPU <paramref name="cpu"/> moved <paramref name="bytes"/> of data in <paramref name="transfers"/>
    /// transfers, and held back <paramref name="throttled"/> items, in windows worth <paramref name="heldBytes"/> of data
    /// (<see cref="PtActors.Engine.Workloads.WorkloadStats.HeldBytes"/>), because their CPU or unit was behind.
    /// </summary>
    public void Moved(int cpu, double bytes, long transfers, long throttled = 0, double heldBytes = 0)
    {
        BytesByCpu[cpu % BytesByCpu.Length] += bytes;
        Transfers += transfers;
        Throttled += throttled;
        HeldBytes += heldBytes;
    }

    /// <summary>
    /// Passthrough (no IOMMU): a DMA-API call on CPU <paramref name="cpu"/> is dma-direct's work only, no IOVA and
    /// no page table.
    /// </summary>
    public void Direct(int cpu)
    {
        cpu %= CpuNs.Length;
        CpuNs[cpu] += _model.DmaCallNs;
        MapLatency.Add(_model.DmaCallNs);
    }

    /// <summary>A DMA-API unmap on CPU <paramref name="cpu"/> returns the IOVA of <paramref name="bytes"/> to the caches.</summary>
    public void Freed(int cpu, ulong bytes)
    {
        int order = Order(bytes);
        if (order < 0)
            return;
        cpu %= CpuNs.Length;
        int capacity = 2 * _model.IovaMagazineSize;
        if (_cached[cpu, order] < capacity)
        {
            _cached[cpu, order]++;
            return;
        }
        // Both magazines full: one goes to the depot, the CPU starts an empty one with this IOVA.
        _depot[order]++;
        _cached[cpu, order] = _model.IovaMagazineSize + 1;
    }

    private double Allocate(int cpu, ulong bytes)
    {
        IovaAllocs++;
        int order = Order(bytes);
        if (order >= 0)
        {
            if (_cached[cpu, order] > 0)
            {
                _cached[cpu, order]--;
                return _model.IovaCacheHitNs;
            }
            if (_depot[order] > 0)
            {
                _depot[order]--;
                _cached[cpu, order] = _model.IovaMagazineSize - 1;
                return _model.IovaCacheHitNs;
            }
        }
        IovaCacheMisses++;
        return _model.IovaCacheMissNs;
    }

    /// <summary>The size class of an IOVA of <paramref name="bytes"/> (log2 of its pages rounded up), or −1 when too large to cache.</summary>
    private int Order(ulong bytes)
    {
        ulong pages = Math.Max(1, (bytes + 4095) >> 12);
        int order = 64 - System.Numerics.BitOperations.LeadingZeroCount(pages - 1);
        return order <= _model.IovaCacheMaxOrder ? order : -1;
    }

    /// <summary>
    /// Everything a ledger holds, for carrying it to another node (<see cref="Capture"/>, <see cref="Restore"/>):
    /// <c>Cached</c> is the IOVAs each CPU's magazines hold, CPU by CPU, <c>Orders</c> size classes each.
    /// </summary>
    public sealed record State(int Orders, int[] Cached, int[] Depot, double[] CpuNs, double[] BytesByCpu, long Transfers,
        LatencyHistogram MapLatency, long IovaAllocs, long IovaCacheMisses, long Throttled = 0, double HeldBytes = 0);

    /// <summary>A copy of everything the ledger holds.</summary>
    public State Capture()
    {
        int cpus = _cached.GetLength(0), orders = _cached.GetLength(1);
        var cached = new int[cpus * orders];
        for (int c = 0; c < cpus; c++)
            for (int o = 0; o < orders; o++)
                cached[c * orders + o] = _cached[c, o];
        return new State(orders, cached, (int[])_depot.Clone(), (double[])CpuNs.Clone(), (double[])BytesByCpu.Clone(), Transfers,
            MapLatency.Clone(), IovaAllocs, IovaCacheMisses, Throttled, HeldBytes);
    }

    /// <summary>The ledger <paramref name="state"/> was captured from (under <paramref name="model"/>); null with <paramref name="problem"/> when it cannot be one.</summary>
    public static HostCostLedger? Restore(CostModel model, State state, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(state);
        int cpus = state.CpuNs.Length, orders = Math.Max(1, Math.Max(0, model.IovaCacheMaxOrder + 1));
        problem = cpus == 0 || state.BytesByCpu.Length != cpus ? $"{cpus} CPUs and {state.BytesByCpu.Length} byte counts"
            : state.Orders != orders || state.Depot.Length != orders ? $"{state.Orders} size classes and a depot of {state.Depot.Length}, the model has {orders}"
            : state.Cached.Length != cpus * orders ? $"{state.Cached.Length} magazine counts for {cpus} CPUs × {orders} size classes"
            : null;
        if (problem is not null)
            return null;
        var l = new HostCostLedger(model, cpus)
        {
            CpuNs = (double[])state.CpuNs.Clone(),
            BytesByCpu = (double[])state.BytesByCpu.Clone(),
            Transfers = state.Transfers,
            MapLatency = state.MapLatency.Clone(),
            IovaAllocs = state.IovaAllocs,
            IovaCacheMisses = state.IovaCacheMisses,
            Throttled = state.Throttled,
            HeldBytes = state.HeldBytes,
        };
        for (int c = 0; c < cpus; c++)
            for (int o = 0; o < orders; o++)
                l._cached[c, o] = state.Cached[c * orders + o];
        state.Depot.CopyTo(l._depot, 0);
        return l;
    }

    /// <summary>A copy of the ledger's figures (for handing to another thread).</summary>
    public HostCostLedger Snapshot()
    {
        var c = (HostCostLedger)MemberwiseClone();
        c.CpuNs = (double[])CpuNs.Clone();
        c.BytesByCpu = (double[])BytesByCpu.Clone();
        c.MapLatency = MapLatency.Clone();
        return c;
    }
}
