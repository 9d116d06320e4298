using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
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
/// Not thread-safe: one owner (the device's actor) calls <see cref="Generate"/> and <see cref="OnResult"/>. Memory
/// follows use: the event heap, the table of outstanding operations and the kinds' per-buffer state start small and
/// grow to what the device holds at once (a few KiB for the default <c>--inflight</c> 32), then no longer allocate.
/// </summary>
public abstract class DeviceWorkload : IDeviceWorkload
{
    private protected const byte PrioRelease = 0;
    private protected const byte PrioWork = 1;
    private protected const IommuProt ReadWrite = IommuProt.Read | IommuProt.Write;
    private const byte LateDmaKind = 255;

    private readonly EventHeap _events = new();
    private readonly PendingOpTable _pending = new();
    private readonly ulong _lateThreshold;
    private readonly ulong _lateMaxDelayNs;
    private Xoshiro256StarStar _rng;
    private Xoshiro256StarStar _lateRng;
    private IWorkloadSink? _sink;
    private ulong _t1;
    private ulong _lastT1;
    private ulong _windowNs;
    private ulong _heldUntil;
    private bool _heldBefore;
    private uint _seq;
    private bool _started;

    private long _submitted, _completed, _errors, _addressInUse, _droppedBuffers, _dropped, _deferred, _dmas,
        _lateDmas, _faultDmas, _unmaps, _readDirties, _overlapAttempts, _mismatchedUnmaps, _units, _bytesMoved, _transfers,
        _throttled, _heldNs, _generatedNs, _heldWindows, _heldWindowBytes, _freeWindows, _freeWindowBytes;

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
    public virtual bool SettingUp => false;

    /// <inheritdoc/>
    public WorkloadStats Stats => new(_submitted, _completed, _errors, _addressInUse, _droppedBuffers, _dropped, _deferred,
        _dmas, _lateDmas, _faultDmas, _unmaps, _readDirties, _overlapAttempts, _mismatchedUnmaps, _units, _bytesMoved, _transfers,
        _throttled, _heldNs, _generatedNs, _heldWindows, _heldWindowBytes, _freeWindows, _freeWindowBytes);

    /// <inheritdoc/>
    public void Generate(ulong t0, ulong t1, IWorkloadSink sink, ulong heldUntilNs = 0)
    {
        ArgumentNullException.ThrowIfNull(sink);
        if (t1 <= t0 || t0 < _lastT1)
            ThrowBadWindow(t0, t1);
        _sink = sink;
        _t1 = t1;
        _windowNs = t1 - t0;
        _heldUntil = heldUntilNs;
        _generatedNs += (long)(t1 - t0);
        bool held = heldUntilNs > t0;
        if (held)
            _heldNs += (long)(Math.Min(heldUntilNs, t1) - t0);
        long movedBefore = _bytesMoved;
        Now = t0;
        if (!_started)
        {
            _started = true;
            Start(t0);
        }
        while (true)
        {
            _events.EnsureOrderHeadroom(); // between two actions: no event is out of the heap
            if (!_events.TryPopBefore(t1, out var ev))
                break;
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
        if (held)
        {
            _heldWindows++;
            _heldWindowBytes += _bytesMoved - movedBefore;
        }
        else if (!_heldBefore)
        {
            // A free window after a free one: the device's steady pace. (The first free windows after a hold are
            // above it — its rings full and its budget unspent — and are not counted as its pace.)
            _freeWindows++;
            _freeWindowBytes += _bytesMoved - movedBefore;
        }
        _heldBefore = held;
    }

    [DoesNotReturn]
    private void ThrowBadWindow(ulong t0, ulong t1)
    {
        if (t1 <= t0)
            throw new ArgumentException($"Device {Device}: the window [{t0}, {t1}) is empty.", nameof(t1));
        throw new ArgumentException($"Device {Device}: the window [{t0}, {t1}) starts before the previous one ended ({_lastT1}).", nameof(t0));
    }

    /// <inheritdoc/>
    public void OnResult(in DmaOpResult result)
    {
        if ((int)(result.Id >> 32) != Device)
            ThrowForeignReply(result.Id);
        if (_sink is null)
            _events.EnsureOrderHeadroom();
        if (!_pending.Remove((uint)result.Id, out var op))
            ThrowNotOutstanding(result.Id);
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

    [DoesNotReturn]
    private void ThrowForeignReply(long id)
        => throw new ArgumentException($"Device {Device} got the reply to operation {id:x} of device {id >> 32}.", "result");

    [DoesNotReturn]
    private void ThrowNotOutstanding(long id) => throw new InvalidOperationException($"Device {Device}: operation {id:x} is not outstanding.");

    /// <summary>The stamp of the action being handled (the window start between windows).</summary>
    private protected ulong Now { get; private set; }

    /// <summary>The window's end (exclusive).</summary>
    private protected ulong WindowEnd => _t1;

    /// <summary>Until when in this window the device starts no new work (its CPU or unit is behind); at or before the window's start: not held.</summary>
    private protected ulong HeldUntil => _heldUntil;

    /// <summary>Postpones <paramref name="ev"/>, the action being handled, to the end of the hold (which may be past this window), keeping its place among its peers.</summary>
    private protected void HoldOff(in WorkEvent ev) => _events.Reinsert(in ev, _heldUntil);

    /// <summary>Counts <paramref name="count"/> work items not started because the device is held back.</summary>
    private protected void CountThrottled(long count) => _throttled += count;

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

    /// <summary>
    /// Schedules action <paramref name="kind"/> for <paramref name="slot"/> (0 to 65535) at <paramref name="stamp"/>
    /// (never before the action being handled).
    /// </summary>
    private protected void Schedule(ulong stamp, byte kind, int slot = 0, ulong arg = 0, byte prio = PrioWork)
        => _events.Push(Math.Max(stamp, Now), prio, kind, checked((ushort)slot), arg);

    /// <summary>
    /// Whether new work scheduled now at <paramref name="stamp"/> would be the next action to run in this window, before
    /// every scheduled one (it would be stamped no earlier than <see cref="Now"/>, and on equal stamps those run first).
    /// If so, <see cref="Now"/> moves to it and the caller runs it at once instead of scheduling it: the same run without
    /// an event per action (e.g. the packets a NIC without budget drops).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private protected bool TryRunNext(ulong stamp)
    {
        stamp = Math.Max(stamp, Now);
        if (stamp >= _t1 || (_events.TryPeekStamp(out ulong first) && first <= stamp))
            return false;
        Now = stamp;
        return true;
    }

    /// <summary>
    /// The stamp before which new work may run inline (<see cref="TryRunNext"/>): the first scheduled action's stamp or
    /// the window's end, whichever comes first.
    /// </summary>
    private protected ulong InlineLimit => _events.TryPeekStamp(out ulong first) && first < _t1 ? first : _t1;

    /// <summary>Postpones <paramref name="ev"/>, the action being handled, to the next window (no budget left), keeping its place among its peers.</summary>
    private protected void Defer(in WorkEvent ev)
    {
        _deferred++;
        _events.Reinsert(in ev, _t1);
    }

    /// <summary>Submits an operation at <see cref="Now"/>; the caller checked <see cref="Budget"/>.</summary>
    private protected void Submit(DmaOpKind kind, ulong iova, ulong paddr, ulong size, IommuProt prot, int tag)
    {
        if (Inflight >= MaxInflight)
            ThrowOverBudget();
        uint seq = _seq++;
        var op = new DmaOp(Now, DmaOp.MakeId(Device, seq), kind, iova, paddr, size, prot);
        _pending.Add(seq, new PendingOp(kind, Now, tag));
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

    [DoesNotReturn]
    private void ThrowOverBudget() => throw new InvalidOperationException($"Device {Device} would exceed its {MaxInflight} operations in flight.");

    /// <summary>Emits a DMA access at <see cref="Now"/>.</summary>
    private protected void Dma(ulong iova, bool write)
    {
        _dmas++;
        _sink!.Dma(Now, iova, write);
    }

    /// <summary>A 64-byte access (counted as data moved) at a random 64-byte-aligned offset of [<paramref name="iova"/>, +<paramref name="size"/>).</summary>
    private protected void DmaInto(ulong iova, ulong size, bool write)
    {
        Dma(iova + (NextBelow(Math.Max(1, size >> 6)) << 6), write);
        CountMoved(64);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private protected ulong NextRandom() => _rng.Next();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private protected ulong NextBelow(ulong n) => _rng.NextBelow(n);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private protected bool Chance(ulong threshold) => _rng.Chance(threshold);

    /// <summary>A value in [mean/2, 3·mean/2): jittered intervals without transcendental functions.</summary>
    private protected ulong Jitter(ulong mean) => Math.Max(1, mean / 2 + NextBelow(Math.Max(1, mean)));

    private protected void CountDropped() => _dropped++;

    private protected void CountDropped(long count) => _dropped += count;

    private protected void CountDroppedBuffer() => _droppedBuffers++;

    private protected void CountFaultDma() => _faultDmas++;

    private protected void CountOverlapAttempt() => _overlapAttempts++;

    private protected void CountMismatchedUnmap() => _mismatchedUnmaps++;

    private protected void CountUnit() => _units++;

    /// <summary>A transfer of <paramref name="bytes"/> of data (a packet's frame, a command's data, a GPU or random device's access) is done.</summary>
    private protected void CountMoved(ulong bytes)
    {
        _bytesMoved += (long)bytes;
        _transfers++;
    }
}
