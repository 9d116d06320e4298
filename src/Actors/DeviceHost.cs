using Akka.Actor;
using PtActors.Engine.Dma;
using PtActors.Engine.Hardware;
using PtActors.Engine.Workloads;

namespace PtActors.Actors;

/// <summary>
/// Hosts a group of simulated devices (deterministic workload state machines). Each window it lets every device
/// generate what it does in that window, sends the DMA-API operations to the devices' domains (one message per
/// domain) and the DMAs to their IOMMU units (one message per unit), and feeds the domains' replies back to the
/// devices. Many devices share one host so that 100 000 devices cost state, not actors.
/// </summary>
public sealed class DeviceHost : ReceiveActor
{
    /// <summary>One hosted device and where its traffic goes.</summary>
    public sealed record HostedDevice(IDeviceWorkload Workload, IActorRef Domain, IActorRef Iotlb, int Cpu = 0);

    /// <summary>Asks for the host's cost-model ledger (the end of a run); the answer is <see cref="Costs"/>.</summary>
    public sealed record GetCosts : ILaneMessage
    {
        /// <summary>The message.</summary>
        public static GetCosts Instance { get; } = new();
    }

    /// <summary>
    /// Copies of the host's cost-model ledgers, one per domain its devices map through (in the order of their first
    /// device): the devices' map calls on their CPUs and each domain's IOVA caches. Each ledger sees its domain's
    /// answers in the domain's own order, so the figures do not depend on how the domains' answers interleave.
    /// </summary>
    public sealed record Costs(IReadOnlyList<PtActors.Engine.Cost.HostCostLedger> Ledgers) : ILaneMessage;

    /// <summary>
    /// Generate window <c>Window</c> = [T0, T1); <c>Quiet</c> asks for no new work (the drain). At most
    /// <c>Budget</c> map and unmap calls may be issued (negative: no limit); calls beyond it are not issued and
    /// their devices are told so (ECANCELED), so that a run issues exactly the operations it was asked for.
    /// <c>Held</c> (the cost model's back-pressure; null: none): for each CPU, how long from T0 its devices start no
    /// new work because the CPU, or the lane's unit, is that far behind; CPUs past its end are not held.
    /// </summary>
    public sealed record Generate(long Window, ulong T0, ulong T1, bool Quiet, long Budget = -1, long[]? Held = null) : ILaneMessage;

    /// <summary>The window's traffic is sent. Counters are cumulative.</summary>
    public sealed record Generated(long Window, HostCounters Counters) : ILaneMessage;

    /// <summary>
    /// <c>Domain</c> was restarted from its journal while committing <c>Window</c>: re-send it what this host
    /// submitted for that window (kept until the next <see cref="Generate"/>, which means the window was committed)
    /// and which devices it hosts there. The sender gets <see cref="Resent"/>.
    /// </summary>
    public sealed record Resend(long Window, IActorRef Domain) : ILaneMessage;

    /// <summary>The window's operations were re-sent.</summary>
    public sealed record Resent(long Window, IActorRef Domain) : ILaneMessage;

    /// <summary>A host's cumulative counters.</summary>
    /// <para><c>LockWaitHistogram</c> and <c>LockWaits</c> count only the operations that took a range lock (every
    /// operation but a DmaMap, unless its range is empty or wraps): how long each waited, and how many waited at all.
    /// <c>CpuNs</c>: the CPU time the cost model gave the host's devices' map calls so far, CPU by CPU.</para>
    public sealed record HostCounters(long Maps, long Unmaps, long Others, ulong BytesMapped, long Errors, long Dmas, long Submitted, long Inflight, long[] LockWaitHistogram, long Issued, long Cancelled, long LockWaits = 0,
        double[]? CpuNs = null);

    private readonly Dictionary<int, Slot> _devices = new();
    private readonly List<Slot> _order = new();
    private readonly List<Destination<DmaOp>> _domains = new();
    private readonly List<Destination<DmaAccess>> _units = new();
    private readonly Sink _sink = new();
    private readonly long[] _lockWaits = new long[LockWaitBuckets];
    /// <summary>Operations submitted that take no range lock although not DmaMaps (an empty or wrapping range): rare.</summary>
    private readonly HashSet<long> _lockless = new();
    /// <summary>Results of unmaps whose device may see them only once their flush completed (strict, batch:N).</summary>
    private readonly Dictionary<long, DmaOpResult> _held = new();
    /// <summary>The window the operations each domain was last sent belong to.</summary>
    private long _submittedWindow;
    private long _maps, _unmaps, _others, _errors, _dmas, _submitted, _issued, _cancelled, _lockWaitsAboveZero;
    private ulong _bytesMapped;
    private readonly List<PtActors.Engine.Cost.HostCostLedger> _costs = new();
    private readonly bool _passthrough;
    private readonly int _cpus;
    /// <summary>CPU time of the devices' set-up maps, per CPU: timed, but no back-pressure.</summary>
    private readonly double[] _setupNs;
    /// <summary>The lock-wait histogram and CPU times last sent (null: changed since).</summary>
    private long[]? _sentLockWaits;
    private double[]? _sentCpuNs;

    /// <summary>Lock-wait histogram: bucket k counts waits in [2^(k-1), 2^k) µs (bucket 0: below 1 µs).</summary>
    public const int LockWaitBuckets = 40;

    /// <summary>Props.</summary>
    public static Props Props(IReadOnlyList<HostedDevice> devices, MessagePools? pools = null, PtActors.Engine.Cost.CostModel? cost = null,
        bool passthrough = false)
        => Akka.Actor.Props.Create(() => new DeviceHost(devices, pools, cost, passthrough));

    /// <summary>
    /// Creates a host of <paramref name="devices"/>; message arrays come from (and go back to) <paramref name="pools"/>;
    /// the devices' map calls are timed by <paramref name="cost"/> (the default model when null). Under
    /// <paramref name="passthrough"/> there is no IOMMU: the host answers every DMA-API call itself, as dma-direct
    /// does (a map's address is the physical one), and its devices' DMAs reach memory untranslated (counted, sent to
    /// no unit); the domains and units see nothing.
    /// </summary>
    public DeviceHost(IReadOnlyList<HostedDevice> devices, MessagePools? pools = null, PtActors.Engine.Cost.CostModel? cost = null,
        bool passthrough = false)
    {
        _passthrough = passthrough;
        int cpus = 1;
        foreach (var d in devices)
            cpus = Math.Max(cpus, d.Cpu + 1);
        _cpus = cpus;
        _setupNs = new double[cpus];
        var model = cost ?? PtActors.Engine.Cost.CostModel.Default;
        var domains = new Dictionary<IActorRef, Destination<DmaOp>>();
        var units = new Dictionary<IActorRef, Destination<DmaAccess>>();
        foreach (var d in devices)
        {
            if (!domains.TryGetValue(d.Domain, out var domain))
            {
                _domains.Add(domains[d.Domain] = domain = new Destination<DmaOp>(d.Domain, new Outbox<DmaOp>(pinned: true)));
                _costs.Add(domain.Costs = new PtActors.Engine.Cost.HostCostLedger(model, cpus));
            }
            domain.Devices.Add(d.Workload.Device);
            if (!units.TryGetValue(d.Iotlb, out var unit))
                _units.Add(units[d.Iotlb] = unit = new Destination<DmaAccess>(d.Iotlb, new Outbox<DmaAccess>(pools?.Dmas)));
            var slot = new Slot(d.Workload, domain, unit, d.Cpu);
            _devices.Add(d.Workload.Device, slot);
            _order.Add(slot);
        }

        _sink.Lockless = _lockless;
        Receive<Generate>(g =>
        {
            // A new window: the previous one is committed, its operations will not be asked for again.
            foreach (var domain in _domains)
                domain.Sent = ReadOnlyMemory<DmaOp>.Empty;
            _submittedWindow = g.Window;
            if (!g.Quiet)
            {
                _sink.Budget = g.Budget;
                var held = g.Held;
                foreach (var slot in _order)
                {
                    _sink.Current = slot;
                    ulong heldUntil = held is not null && slot.Cpu < held.Length && held[slot.Cpu] > 0 ? g.T0 + (ulong)held[slot.Cpu] : 0;
                    slot.Workload.Generate(g.T0, g.T1, _sink, heldUntil);
                }
                _issued += _sink.Issued;
                _sink.Issued = 0;
                // Calls past the budget were never issued: tell their devices, after they finished generating.
                foreach (var op in _sink.Refused)
                {
                    _cancelled++;
                    _devices[op.Device].Workload.OnResult(new DmaOpResult(op.Id, PtActors.Engine.Errno.ECANCELED, 0, 0, 0));
                }
                _sink.Refused.Clear();
                if (_passthrough)
                    AnswerDirectly();
                foreach (var domain in _domains)
                {
                    if (domain.Box.Count == 0)
                        continue;
                    _submitted += domain.Box.Count;
                    // Each device generated its operations in stamp order; the domain wants them all in order.
                    domain.Box.Items.Sort();
                    domain.Sent = domain.Box.Take();
                    domain.Target.Tell(new DomainActor.Submit(g.Window, domain.Sent));
                }
                foreach (var unit in _units)
                {
                    if (unit.Box.Count == 0)
                        continue;
                    _dmas += unit.Box.Count;
                    unit.Target.Tell(new IotlbActor.Dmas(g.Window, unit.Box.Take()));
                }
            }
            Sender.Tell(new Generated(g.Window, Counters()));
        });

        Receive<GetCosts>(_ =>
        {
            var copies = new PtActors.Engine.Cost.HostCostLedger[_costs.Count];
            var copyOf = new Dictionary<PtActors.Engine.Cost.HostCostLedger, PtActors.Engine.Cost.HostCostLedger>(ReferenceEqualityComparer.Instance);
            for (int i = 0; i < copies.Length; i++)
                copyOf[_costs[i]] = copies[i] = _costs[i].Snapshot();
            // What each device moved so far, on its CPU, in its domain's copy.
            foreach (var d in _devices.Values)
            {
                var stats = d.Workload.Stats;
                copyOf[d.Domain.Costs!].Moved(d.Cpu, stats.BytesMoved, stats.Transfers, stats.Throttled, stats.HeldBytes);
            }
            Sender.Tell(new Costs(copies));
        });
        Receive<Resend>(r =>
        {
            foreach (var domain in _domains)
            {
                if (domain.Target.Equals(r.Domain))
                {
                    var ops = _submittedWindow == r.Window ? domain.Sent : ReadOnlyMemory<DmaOp>.Empty;
                    domain.Target.Tell(new DomainActor.Resubmit(r.Window, ops, domain.Devices.ToArray()));
                }
            }
            Sender.Tell(new Resent(r.Window, r.Domain));
        });

        Receive<DomainActor.Results>(r =>
        {
            // Unmaps whose flush completed first (their results came with an earlier message), then the new results.
            foreach (long id in r.Released.Span)
            {
                if (_held.Remove(id, out var held))
                    Deliver(held);
            }
            foreach (ref readonly var result in r.Held.Span)
                _held.Add(result.Id, result);
            foreach (ref readonly var result in r.Items.Span)
                Deliver(result);
            pools?.Results.Return(r.Items);
            pools?.Results.Return(r.Held);
            pools?.Releases.Return(r.Released);
        });
    }

    /// <summary>
    /// Passthrough: answers the window's calls as dma-direct would, in each domain's stamp order — a map gets its
    /// physical address, an unmap succeeds, an explicit-IOVA map or a dirty read has no IOMMU to go to
    /// (EOPNOTSUPP) — and lets the window's DMAs through untranslated.
    /// </summary>
    private void AnswerDirectly()
    {
        foreach (var domain in _domains)
        {
            if (domain.Box.Count == 0)
                continue;
            _submitted += domain.Box.Count;
            domain.Box.Items.Sort();
            var answers = new List<DmaOpResult>(domain.Box.Count);
            foreach (ref readonly var op in domain.Box.Items)
            {
                answers.Add(op.Kind switch
                {
                    DmaOpKind.DmaMap => new DmaOpResult(op.Id, PtActors.Engine.Errno.None, op.Paddr, (op.Size + 4095) & ~4095UL, 0, op.Kind),
                    DmaOpKind.Unmap => new DmaOpResult(op.Id, PtActors.Engine.Errno.None, op.Iova, op.Size, 0, op.Kind),
                    _ => new DmaOpResult(op.Id, PtActors.Engine.Errno.EOPNOTSUPP, 0, 0, 0, op.Kind),
                });
            }
            domain.Box.Clear();
            foreach (var answer in answers)
            {
                Count(answer, locked: false);
                if (_devices.TryGetValue((int)(answer.Id >> 32), out var d))
                {
                    domain.Costs!.Direct(d.Cpu);
                    if (d.Workload.SettingUp)
                        _setupNs[d.Cpu % _setupNs.Length] += domain.Costs.Model.DmaCallNs;
                    d.Workload.OnResult(answer);
                }
            }
        }
        foreach (var unit in _units)
        {
            _dmas += unit.Box.Count;
            unit.Box.Clear();
        }
    }

    private void Deliver(in DmaOpResult result)
    {
        Count(result);
        if (_devices.TryGetValue((int)(result.Id >> 32), out var d))
        {
            Cost(d, result);
            d.Workload.OnResult(result);
        }
    }

    /// <summary>
    /// Times an answered call on its device's CPU (the cost model): maps here, unmaps on the unit. A device's set-up
    /// maps (<see cref="IDeviceWorkload.SettingUp"/>) count in its CPU's time but not in the demand that holds devices
    /// back (a driver sets its rings up before traffic flows).
    /// </summary>
    private void Cost(Slot device, in DmaOpResult r)
    {
        if (!device.Workload.SettingUp)
        {
            CostCall(device, r);
            return;
        }
        var cpuNs = device.Domain.Costs!.CpuNs;
        double before = cpuNs[device.Cpu % cpuNs.Length];
        CostCall(device, r);
        _setupNs[device.Cpu % _setupNs.Length] += cpuNs[device.Cpu % cpuNs.Length] - before;
    }

    private void CostCall(Slot device, in DmaOpResult r)
    {
        switch (r.Kind)
        {
            case DmaOpKind.DmaMap:
                device.DmaMaps = true;
                device.Domain.Costs!.Mapped(device.Cpu, r.Kind, r.Bytes, r.Error == PtActors.Engine.Errno.None);
                break;
            case DmaOpKind.Map:
                device.Domain.Costs!.Mapped(device.Cpu, r.Kind, r.Bytes, r.Error == PtActors.Engine.Errno.None);
                break;
            case DmaOpKind.Unmap when device.DmaMaps && r.Error == PtActors.Engine.Errno.None:
                device.Domain.Costs!.Freed(device.Cpu, r.Bytes);
                break;
        }
    }

    /// <summary>Counts a domain's answer by the kind of operation it answers.</summary>
    private void Count(in DmaOpResult r, bool locked = true)
    {
        if (r.Error != PtActors.Engine.Errno.None)
            _errors++;
        switch (r.Kind)
        {
            case DmaOpKind.DmaMap:
            case DmaOpKind.Map:
                _maps++;
                if (r.Error == PtActors.Engine.Errno.None)
                    _bytesMapped += r.Bytes;
                break;
            case DmaOpKind.Unmap:
                _unmaps++;
                break;
            default:
                _others++;
                break;
        }
        // Only an operation that took a range lock (possibly at once) waited or not: a DmaMap allocates its IOVA
        // and never locks, nor does an operation on an empty or wrapping range.
        bool lockless = _lockless.Count > 0 && _lockless.Remove(r.Id);
        if (!locked || lockless || r.Kind == DmaOpKind.DmaMap)
            return;
        if (r.LockWaitNs > 0)
            _lockWaitsAboveZero++;
        ulong us = r.LockWaitNs / 1000;
        int bucket = us == 0 ? 0 : Math.Min(LockWaitBuckets - 1, 64 - System.Numerics.BitOperations.LeadingZeroCount(us));
        _lockWaits[bucket]++;
        _sentLockWaits = null;
    }

    private HostCounters Counters()
    {
        long inflight = 0;
        foreach (var slot in _order)
            inflight += slot.Workload.Inflight;
        var cpuNs = new double[_cpus];
        bool same = _sentCpuNs is not null;
        foreach (var ledger in _costs)
        {
            for (int c = 0; c < cpuNs.Length; c++)
                cpuNs[c] += ledger.CpuNs[c];
        }
        for (int c = 0; c < cpuNs.Length; c++)
        {
            cpuNs[c] -= _setupNs[c];
            if (same && cpuNs[c] != _sentCpuNs![c])
                same = false;
        }
        // The arrays sent are never changed afterwards: a window that changed nothing (a device held back, an idle
        // one) sends the same ones again rather than copies.
        if (!same)
            _sentCpuNs = cpuNs;
        _sentLockWaits ??= (long[])_lockWaits.Clone();
        return new HostCounters(_maps, _unmaps, _others, _bytesMapped, _errors, _dmas, _submitted, inflight, _sentLockWaits, _issued, _cancelled, _lockWaitsAboveZero,
            _sentCpuNs);
    }

    /// <summary>Where one kind of a window's traffic goes, and what is collected for it.</summary>
    private sealed class Destination<T>(IActorRef target, Outbox<T> box) where T : unmanaged
    {
        public readonly IActorRef Target = target;
        public readonly Outbox<T> Box = box;
        /// <summary>What was sent for the current window (operations: kept until it is committed).</summary>
        public ReadOnlyMemory<T> Sent;
        /// <summary>The hosted devices whose traffic goes here.</summary>
        public readonly List<int> Devices = new();
        /// <summary>For a domain: the cost-model ledger of the calls answered by it.</summary>
        public PtActors.Engine.Cost.HostCostLedger? Costs;
    }

    /// <summary>A hosted device with its destinations resolved once (no per-operation lookups).</summary>
    private sealed class Slot(IDeviceWorkload workload, Destination<DmaOp> domain, Destination<DmaAccess> unit, int cpu)
    {
        public readonly IDeviceWorkload Workload = workload;
        public readonly int Cpu = cpu;
        /// <summary>Whether the device maps through the DMA API (its unmaps return IOVAs to the caches).</summary>
        public bool DmaMaps;
        public readonly Destination<DmaOp> Domain = domain;
        public readonly Destination<DmaAccess> Unit = unit;
        public uint DmaSeq;
    }

    /// <summary>Collects a window's traffic per destination.</summary>
    private sealed class Sink : IWorkloadSink
    {
        public Slot Current = null!;
        public HashSet<long> Lockless = null!;
        public long Budget = -1;
        public long Issued;
        public readonly List<DmaOp> Refused = new();

        public void Submit(in DmaOp op)
        {
            if (op.Kind is DmaOpKind.DmaMap or DmaOpKind.Map or DmaOpKind.Unmap)
            {
                if (Budget == 0)
                {
                    Refused.Add(op);
                    return;
                }
                if (Budget > 0)
                    Budget--;
                Issued++;
            }
            if (op.Kind != DmaOpKind.DmaMap && (op.Size == 0 || op.Iova + (op.Size - 1) < op.Iova))
                Lockless.Add(op.Id);
            Current.Domain.Box.Add(op);
        }

        public void Dma(ulong stampNs, ulong iova, bool write)
        {
            var slot = Current;
            slot.Unit.Box.Add(new DmaAccess(stampNs, slot.Workload.Device, slot.DmaSeq++, iova, write));
        }
    }
}
