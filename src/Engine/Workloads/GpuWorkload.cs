using PtActors.Engine.Dma;

namespace PtActors.Engine.Workloads;

/// <summary>
/// An accelerator (<c>gpu</c>). It keeps <see cref="WorkloadOptions.GpuBuffers"/> long-lived buffers mapped — 2 MiB each,
/// the first one 1 GiB on a few devices (<see cref="WorkloadOptions.GpuHugeProbability"/>, drawn once) — all DmaMapped at
/// start from size-aligned PAs, so the domain can use large pages. Heavy DMA: one every
/// <see cref="WorkloadOptions.GpuDmaIntervalNs"/> to a random 64-byte-aligned offset of a random live buffer, half of
/// them writes. Rarely (every <see cref="WorkloadOptions.GpuRemapMeanNs"/> on average, ±100 %) one buffer is unmapped
/// and, once the unmap replied, mapped again from its other PA bank, so a stale translation would reach the old
/// PA. A buffer whose map fails is dropped and stays unmapped until a later remap picks it.
/// </summary>
public sealed class GpuWorkload : DeviceWorkload
{
    /// <summary>Size of the ordinary buffers.</summary>
    public const ulong BufferBytes = 2UL << 20;

    /// <summary>Size of the huge buffer.</summary>
    public const ulong HugeBufferBytes = 1UL << 30;

    private const byte EvMap = 1;
    private const byte EvActivate = 2;
    private const byte EvDma = 3;
    private const byte EvRemap = 4;
    private const byte EvUnmap = 5;

    private const byte Free = 0, Mapping = 1, Mapped = 2, Live = 3, Unmapping = 4;

    private readonly int _n;
    private readonly ulong _dmaIntervalNs;
    private readonly byte[] _state;
    private readonly ulong[] _iova;
    private readonly byte[] _bank;
    private readonly int[] _live;      // live buffers, for picking DMA targets
    private readonly int[] _livePos;   // index in _live, or -1
    private int _liveCount;

    internal GpuWorkload(int device, ulong seed, WorkloadOptions options)
        : base(WorkloadFactory.Gpu, device, seed, options)
    {
        _n = options.GpuBuffers;
        _dmaIntervalNs = options.GpuDmaIntervalNs;
        HasHugeBuffer = Chance(Xoshiro256StarStar.Threshold(options.GpuHugeProbability));
        _state = new byte[_n];
        _iova = new ulong[_n];
        _bank = new byte[_n];
        _live = new int[_n];
        _livePos = new int[_n];
        Array.Fill(_livePos, -1);
    }

    /// <summary>Whether buffer 0 is a 1 GiB one.</summary>
    public bool HasHugeBuffer { get; }

    /// <summary>Buffers live (mapped and known to the device) now.</summary>
    public int LiveBuffers => _liveCount;

    private ulong Size(int b) => b == 0 && HasHugeBuffer ? HugeBufferBytes : BufferBytes;

    /// <summary>
    /// The PA of buffer <paramref name="b"/> in its current bank: the huge one at region + 1 GiB or + 2 GiB, the others
    /// from region + 4 GiB, bank 1 after all of bank 0.
    /// </summary>
    private ulong Pa(int b)
    {
        if (b == 0 && HasHugeBuffer)
            return Region.Base + ((1UL + _bank[b]) << 30);
        return Region.Base + (4UL << 30) + (((ulong)_bank[b] * (ulong)_n + (ulong)b) << 21);
    }

    private protected override void Start(ulong t0)
    {
        for (int b = 0; b < _n; b++)
            Schedule(t0, EvMap, b);
        Schedule(t0 + NextBelow(Options.GpuDmaIntervalNs), EvDma);
        Schedule(t0 + 1 + NextBelow(2 * Options.GpuRemapMeanNs), EvRemap);
    }

    private protected override void Handle(in WorkEvent ev)
    {
        int b = ev.Slot;
        switch (ev.Kind)
        {
            case EvMap:
                if (_state[b] != Free)
                    break;
                if (Budget == 0)
                {
                    Defer(in ev);
                    break;
                }
                _state[b] = Mapping;
                Submit(DmaOpKind.DmaMap, 0, Pa(b), Size(b), ReadWrite, b);
                break;
            case EvActivate:
                if (_state[b] != Mapped)
                    break;
                _state[b] = Live;
                _livePos[b] = _liveCount;
                _live[_liveCount++] = b;
                break;
            case EvDma:
                if (Now < HeldUntil)
                {
                    // Its unit's translations (or its CPU) are behind: the accesses until the hold ends in this window
                    // are not made.
                    ulong n = (Math.Min(HeldUntil, WindowEnd) - Now + _dmaIntervalNs - 1) / _dmaIntervalNs;
                    if (_liveCount > 0)
                        CountThrottled((long)n);
                    Schedule(Now + n * _dmaIntervalNs, EvDma);
                    break;
                }
                // While the next DMA comes before anything else the device has scheduled, it runs here rather than
                // as an event of its own (a DMA changes nothing the others depend on).
                while (true)
                {
                    ulong next = Now + _dmaIntervalNs;
                    if (_liveCount > 0)
                    {
                        int t = _live[(int)NextBelow((ulong)_liveCount)];
                        DmaInto(_iova[t], Size(t), write: (NextRandom() >> 63) != 0);
                    }
                    if (!TryRunNext(next))
                    {
                        Schedule(next, EvDma);
                        break;
                    }
                }
                break;
            case EvRemap:
            {
                Schedule(Now + 1 + NextBelow(2 * Options.GpuRemapMeanNs), EvRemap);
                int t = (int)NextBelow((ulong)_n);
                if (_state[t] == Live)
                {
                    RemoveLive(t);
                    _state[t] = Unmapping;
                    Schedule(Now, EvUnmap, t, prio: PrioRelease);
                }
                else if (_state[t] == Free)
                {
                    Schedule(Now, EvMap, t);
                }
                break;
            }
            case EvUnmap:
                if (Budget == 0)
                {
                    Defer(in ev);
                    break;
                }
                Submit(DmaOpKind.Unmap, _iova[b], 0, Size(b), IommuProt.None, b);
                break;
        }
    }

    private void RemoveLive(int b)
    {
        int pos = _livePos[b];
        int last = _live[--_liveCount];
        _live[pos] = last;
        _livePos[last] = pos;
        _livePos[b] = -1;
    }

    private protected override void OnReply(in PendingOp op, in DmaOpResult result)
    {
        int b = op.Tag;
        if (op.Kind == DmaOpKind.DmaMap)
        {
            if (result.Error != Errno.None)
            {
                _state[b] = Free;
                CountDroppedBuffer();
                return;
            }
            _state[b] = Mapped;
            _iova[b] = result.Iova;
            Schedule(ReplySeenAt(op, result), EvActivate, b);
            return;
        }
        // Unmapped: map it again from the other bank.
        CountUnit();
        _state[b] = Free;
        _bank[b] ^= 1;
        Schedule(ReplySeenAt(op, result), EvMap, b);
    }
}
