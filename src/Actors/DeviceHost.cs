using Akka.Actor;
using PtActors.Engine.Dma;
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
    public sealed record HostedDevice(IDeviceWorkload Workload, IActorRef Domain, IActorRef Iotlb);

    /// <summary>
    /// Generate window <c>Window</c> = [T0, T1); <c>Quiet</c> asks for no new work (the drain). At most
    /// <c>Budget</c> map and unmap calls may be issued (negative: no limit); calls beyond it are not issued and
    /// their devices are told so (ECANCELED), so that a run issues exactly the operations it was asked for.
    /// </summary>
    public sealed record Generate(long Window, ulong T0, ulong T1, bool Quiet, long Budget = -1);

    /// <summary>The window's traffic is sent. Counters are cumulative.</summary>
    public sealed record Generated(long Window, HostCounters Counters);

    /// <summary>A host's cumulative counters.</summary>
    public sealed record HostCounters(long Maps, long Unmaps, long Others, ulong BytesMapped, long Errors, long Dmas, long Submitted, long Inflight, long[] LockWaitHistogram, long Issued, long Cancelled);

    private readonly Dictionary<int, HostedDevice> _devices = new();
    private readonly Sink _sink = new();
    private readonly long[] _lockWaits = new long[LockWaitBuckets];
    private long _maps, _unmaps, _others, _errors, _dmas, _submitted, _issued, _cancelled;
    private ulong _bytesMapped;

    /// <summary>Lock-wait histogram: bucket k counts waits in [2^(k-1), 2^k) µs (bucket 0: below 1 µs).</summary>
    public const int LockWaitBuckets = 40;

    /// <summary>Props.</summary>
    public static Props Props(IReadOnlyList<HostedDevice> devices) => Akka.Actor.Props.Create(() => new DeviceHost(devices));

    /// <summary>Creates a host of <paramref name="devices"/>.</summary>
    public DeviceHost(IReadOnlyList<HostedDevice> devices)
    {
        foreach (var d in devices)
            _devices.Add(d.Workload.Device, d);

        Receive<Generate>(g =>
        {
            if (!g.Quiet)
            {
                _sink.Budget = g.Budget;
                foreach (var (_, d) in _devices)
                {
                    _sink.Current = d;
                    d.Workload.Generate(g.T0, g.T1, _sink);
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
                foreach (var (domain, ops) in _sink.Ops)
                {
                    if (ops.Count == 0)
                        continue;
                    _submitted += ops.Count;
                    // Each device generated its operations in stamp order; the domain wants them all in order.
                    var batch = ops.ToArray();
                    Array.Sort(batch);
                    domain.Tell(new DomainActor.Submit(g.Window, batch));
                    ops.Clear();
                }
                foreach (var (unit, dmas) in _sink.Dmas)
                {
                    if (dmas.Count == 0)
                        continue;
                    _dmas += dmas.Count;
                    unit.Tell(new IotlbActor.Dmas(g.Window, dmas.ToArray()));
                    dmas.Clear();
                }
            }
            Sender.Tell(new Generated(g.Window, Counters()));
        });

        Receive<DomainActor.Results>(r =>
        {
            foreach (var result in r.Items)
            {
                Count(result);
                if (_devices.TryGetValue((int)(result.Id >> 32), out var d))
                    d.Workload.OnResult(result);
            }
        });
    }

    /// <summary>Counts a domain's answer by the kind of operation it answers.</summary>
    private void Count(in DmaOpResult r)
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
        ulong us = r.LockWaitNs / 1000;
        int bucket = us == 0 ? 0 : Math.Min(LockWaitBuckets - 1, 64 - System.Numerics.BitOperations.LeadingZeroCount(us));
        _lockWaits[bucket]++;
    }

    private HostCounters Counters()
    {
        long inflight = 0;
        foreach (var (_, d) in _devices)
            inflight += d.Workload.Inflight;
        return new HostCounters(_maps, _unmaps, _others, _bytesMapped, _errors, _dmas, _submitted, inflight, (long[])_lockWaits.Clone(), _issued, _cancelled);
    }

    /// <summary>Collects a window's traffic per destination.</summary>
    private sealed class Sink : IWorkloadSink
    {
        public HostedDevice Current = null!;
        public long Budget = -1;
        public long Issued;
        public readonly List<DmaOp> Refused = new();
        public readonly Dictionary<IActorRef, List<DmaOp>> Ops = new();
        public readonly Dictionary<IActorRef, List<IotlbActor.DmaAccess>> Dmas = new();
        private readonly Dictionary<int, uint> _dmaSeq = new();

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
            if (!Ops.TryGetValue(Current.Domain, out var list))
                Ops[Current.Domain] = list = new List<DmaOp>();
            list.Add(op);
        }

        public void Dma(ulong stampNs, ulong iova, bool write)
        {
            if (!Dmas.TryGetValue(Current.Iotlb, out var list))
                Dmas[Current.Iotlb] = list = new List<IotlbActor.DmaAccess>();
            int device = Current.Workload.Device;
            _dmaSeq.TryGetValue(device, out uint seq);
            _dmaSeq[device] = seq + 1;
            list.Add(new IotlbActor.DmaAccess(stampNs, device, seq, iova, write));
        }
    }
}
