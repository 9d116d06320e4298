using PtActors.Engine.Dma;

namespace PtActors.Engine.Workloads;

/// <summary>
/// The machinery the device kinds share. A device is a discrete-event state machine: its future actions sit in a
/// heap ordered by (stamp, priority, order); <see cref="Generate"/> runs those stamped before the window's end
/// (an action stamped before the window starts, e.g. one a late reply unblocked, runs at the window's start);
/// <see cref="OnResult"/> schedules what a reply lets the device do next. Timing:
/// <list type="bullet">
/// <item>A reply is acted on one window length after its operation ran (<c>stamp + LockWaitNs + (t1 − t0)</c>):
/// the soonest the simulator delivers replies, keeping the spacing of the operations.</item>
/// <item>Every DMA-API operation takes one unit of the inflight budget until its reply; an action that needs
/// budget when there is none is either dropped (new work, counted) or deferred to the next window (releases:
/// unmaps are never dropped, and on equal stamps they run before new work).</item>
/// <item>After every unmap, with the late-DMA probability, the device DMAs into the range it just unmapped 1 to
/// <see cref="WorkloadOptions.LateDmaMaxDelayNs"/> ns later. That draw comes from a stream of its own, so the late-DMA
/// probability does not change the rest of the workload.</item>
/// </list>
/// Operation ids are <see cref="DmaOp.MakeId"/>(device, n) for the device's n-th operation (n wraps after 2^32).
/// Deterministic given (seed, device index, options) and the same replies in the same order.
/// Not thread-safe: one owner (the device's actor) calls <see cref="Generate"/> and <see cref="OnResult"/>. No
/// allocation once warmed up: state lives in arrays sized at construction, the event heap and the table of
/// outstanding operations only grow.
/// </summary>
public abstract class DeviceWorkload : IDeviceWorkload
{
    private protected const byte PrioRelease = 0;
    private protected const byte PrioWork = 1;
    private protected const IommuProt ReadWrite = IommuProt.Read | IommuProt.Write;
    private const byte LateDmaKind = 255;

    private readonly EventHeap _events = new(256);
    private readonly Dictionary<uint, PendingOp> _pending;
    private readonly ulong _lateThreshold;
    private readonly ulong _lateMaxDelayNs;
    private Xoshiro256StarStar _rng;
    private Xoshiro256StarStar _lateRng;
    private IWorkloadSink? _sink;
    private ulong _t1;
    private ulong _lastT1;
    private ulong _windowNs;
    private ulong _order;
    private uint _seq;
    private bool _started;

    private long _submitted, _completed, _errors, _addressInUse, _droppedBuffers, _dropped, _deferred, _dmas,
        _lateDmas, _faultDmas, _unmaps, _readDirties, _overlapAttempts, _mismatchedUnmaps, _units;

    /// <summary>What the device remembers of an operation until its reply.</summary>
    private protected readonly record struct PendingOp(DmaOpKind Kind, ulong StampNs, ulong Iova, ulong Size, int Tag);

    private protected DeviceWorkload(string kind, int device, ulong seed, WorkloadOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegative(device);
        options.Validate();
        Kind = kind;
        Device = device;
        Options = options;
        MaxInflight = options.Inflight;
        Region = WorkloadFactory.PaRegionOf(device, options);
        _pending = new Dictionary<uint, PendingOp>(Math.Min(2 * options.Inflight, 4096));
        _rng = Xoshiro256StarStar.ForStream(seed, (ulong)device << 1);
        _lateRng = Xoshiro256StarStar.ForStream(seed, ((ulong)device << 1) | 1);
        _lateThreshold = Xoshiro256StarStar.Threshold(options.LateDmaFor(kind));
        _lateMaxDelayNs = options.LateDmaMaxDelayNs;
        LateDmaProbability = options.LateDmaFor(kind);
    }

    /// <inheritdoc/>
    public int Device { get; }

    /// <inheritdoc/>
    public string Kind { get; }

    /// <summary>The options the device was made with.</summary>
    public WorkloadOptions Options { get; }

    /// <summary>The physical region all its buffers come from (disjoint from every other device's).</summary>
    public PaRegion Region { get; }

    /// <summary>The late-DMA probability in effect.</summary>
    public double LateDmaProbability { get; }

    /// <inheritdoc/>
    public int Inflight { get; private set; }

    /// <inheritdoc/>
    public int MaxInflight { get; }

    /// <inheritdoc/>
    public long Submitted => _submitted;

    /// <inheritdoc/>
    public long Completed => _completed;

    /// <inheritdoc/>
    public WorkloadStats Stats => new(_submitted, _completed, _errors, _addressInUse, _droppedBuffers, _dropped, _deferred,
        _dmas, _lateDmas, _faultDmas, _unmaps, _readDirties, _overlapAttempts, _mismatchedUnmaps, _units);

    /// <inheritdoc/>
    public void Generate(ulong t0, ulong t1, IWorkloadSink sink)
    {
        ArgumentNullException.ThrowIfNull(sink);
        if (t1 <= t0)
            throw new ArgumentException($"Device {Device}: the window [{t0}, {t1}) is empty.", nameof(t1));
        if (t0 < _lastT1)
            throw new ArgumentException($"Device {Device}: the window [{t0}, {t1}) starts before the previous one ended ({_lastT1}).", nameof(t0));
        _sink = sink;
        _t1 = t1;
        _windowNs = t1 - t0;
        Now = t0;
        if (!_started)
        {
            _started = true;
            Start(t0);
        }
        while (_events.Count > 0 && _events.PeekStamp < t1)
        {
            var ev = _events.Pop();
            if (ev.Stamp > Now)
                Now = ev.Stamp;
            if (ev.Kind == LateDmaKind)
            {
                _lateDmas++;
                Dma(ev.Arg, ev.Slot != 0);
                continue;
            }
            Handle(in ev);
        }
        _sink = null;
        _lastT1 = t1;
    }

    /// <inheritdoc/>
    public void OnResult(in DmaOpResult result)
    {
        if ((int)(result.Id >> 32) != Device)
            throw new ArgumentException($"Device {Device} got the reply to operation {result.Id:x} of device {result.Id >> 32}.", nameof(result));
        if (!_pending.Remove((uint)result.Id, out var op))
            throw new InvalidOperationException($"Device {Device}: operation {result.Id:x} is not outstanding.");
        Inflight--;
        _completed++;
        if (result.Error != Errno.None)
        {
            _errors++;
            if (result.Error == Errno.EADDRINUSE)
                _addressInUse++;
        }
        OnReply(in op, in result);
    }

    /// <summary>The stamp of the action being handled (the window start between windows).</summary>
    private protected ulong Now { get; private set; }

    /// <summary>Budget left: operations the device may still submit before a reply.</summary>
    private protected int Budget => MaxInflight - Inflight;

    /// <summary>Schedules the first actions; called once, at the start of the first window.</summary>
    private protected abstract void Start(ulong t0);

    /// <summary>Runs one action at <see cref="Now"/>.</summary>
    private protected abstract void Handle(in WorkEvent ev);

    /// <summary>Acts on the reply to <paramref name="op"/>.</summary>
    private protected abstract void OnReply(in PendingOp op, in DmaOpResult result);

    /// <summary>When the device acts on a reply: one window after the operation ran.</summary>
    private protected ulong ReplySeenAt(in PendingOp op, in DmaOpResult result) => op.StampNs + result.LockWaitNs + _windowNs;

    /// <summary>Schedules action <paramref name="kind"/> at <paramref name="stamp"/> (never before the action being handled).</summary>
    private protected void Schedule(ulong stamp, byte kind, int slot = 0, ulong arg = 0, byte prio = PrioWork)
    {
        _events.Push(new WorkEvent
        {
            Stamp = Math.Max(stamp, Now),
            Order = _order++,
            Arg = arg,
            Slot = slot,
            Kind = kind,
            Prio = prio,
        });
    }

    /// <summary>Postpones <paramref name="ev"/> to the next window (no budget left), keeping its place among its peers.</summary>
    private protected void Defer(in WorkEvent ev)
    {
        _deferred++;
        var e = ev;
        e.Stamp = _t1;
        _events.Push(e);
    }

    /// <summary>Submits an operation at <see cref="Now"/>; the caller checked <see cref="Budget"/>.</summary>
    private protected void Submit(DmaOpKind kind, ulong iova, ulong paddr, ulong size, IommuProt prot, int tag)
    {
        if (Inflight >= MaxInflight)
            throw new InvalidOperationException($"Device {Device} would exceed its {MaxInflight} operations in flight.");
        uint seq = _seq++;
        var op = new DmaOp(Now, DmaOp.MakeId(Device, seq), kind, iova, paddr, size, prot);
        _pending.Add(seq, new PendingOp(kind, Now, iova, size, tag));
        Inflight++;
        _submitted++;
        _sink!.Submit(in op);
        if (kind == DmaOpKind.Unmap)
        {
            _unmaps++;
            if (_lateThreshold != 0 && _lateRng.Chance(_lateThreshold))
            {
                ulong delay = 1 + _lateRng.NextBelow(_lateMaxDelayNs);
                ulong offset = _lateRng.NextBelow(Math.Max(1, size >> 6)) << 6;
                int write = (int)(_lateRng.Next() >> 63);
                Schedule(Now + delay, LateDmaKind, write, iova + offset);
            }
        }
        else if (kind == DmaOpKind.ReadDirty)
        {
            _readDirties++;
        }
    }

    /// <summary>Emits a DMA access at <see cref="Now"/>.</summary>
    private protected void Dma(ulong iova, bool write)
    {
        _dmas++;
        _sink!.Dma(Now, iova, write);
    }

    /// <summary>A DMA to a random 64-byte-aligned offset of [<paramref name="iova"/>, +<paramref name="size"/>).</summary>
    private protected void DmaInto(ulong iova, ulong size, bool write) => Dma(iova + (NextBelow(Math.Max(1, size >> 6)) << 6), write);

    private protected ulong NextRandom() => _rng.Next();

    private protected ulong NextBelow(ulong n) => _rng.NextBelow(n);

    private protected bool Chance(ulong threshold) => _rng.Chance(threshold);

    /// <summary>A value in [mean/2, 3·mean/2): jittered intervals without transcendental functions.</summary>
    private protected ulong Jitter(ulong mean) => Math.Max(1, mean / 2 + NextBelow(Math.Max(1, mean)));

    private protected void CountDropped() => _dropped++;

    private protected void CountDroppedBuffer() => _droppedBuffers++;

    private protected void CountFaultDma() => _faultDmas++;

    private protected void CountOverlapAttempt() => _overlapAttempts++;

    private protected void CountMismatchedUnmap() => _mismatchedUnmaps++;

    private protected void CountUnit() => _units++;
}
