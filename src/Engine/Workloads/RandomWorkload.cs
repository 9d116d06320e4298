using PtActors.Engine.Dma;

namespace PtActors.Engine.Workloads;

/// <summary>
/// A misbehaving or stress device (<c>random</c>, late-DMA probability 0.01 unless set). Every
/// <see cref="WorkloadOptions.RandomIntervalNs"/> on average (±50 %) it takes one action:
/// <list type="bullet">
/// <item>25 %: DmaMap of 4, 8, 12, 64, 256 KiB or 2 MiB from a PA aligned to min(size, 2 MiB);</item>
/// <item>25 %: Map at an IOVA it chooses in its own explicit window (<see cref="WorkloadFactory.ExplicitIovaWindow"/>) — 4 KiB,
/// 64 KiB or 2 MiB, size-aligned — a third of them aimed inside one of its live explicit mappings (expect EADDRINUSE);</item>
/// <item>10 %: Unmap of a live explicit mapping with a smaller size (its end inside the mapping, inside a large page
/// when one was used); when the reply shows less than the mapping was removed, the rest is unmapped after;</item>
/// <item>15 %: ReadDirty over one live mapping or over its whole explicit window (a shared lock that waits for unmaps
/// still holding theirs);</item>
/// <item>10 %: a DMA to a page of its explicit window it has not mapped (a fault);</item>
/// <item>15 %: a DMA to one of its live mappings.</item>
/// </list>
/// A mapping is used by one DMA once its reply is seen and unmapped (with its size) 1 to 50 µs later. At most 64
/// mappings at a time; an action that finds no slot or no target is dropped (counted).
/// <para>
/// A device whose whole inflight budget is outstanding waits for a reply: at such a tick it takes no action at all
/// (no operation and no DMA) and stops ticking until it sees the next reply (<see cref="DeviceWorkload"/>'s reply
/// timing), then resumes at that stamp. So its DMAs follow what it does rather than the clock. Before, it kept
/// acting every interval, dropping its operations but still issuing its fault and live DMAs; under the flush-queue
/// policies its ReadDirty over its window waits for the range locks its own unmaps hold until their queued flush
/// (the flush-queue timeout: 10 ms lazy, 1 s lazy-single), everything it submits after queues behind it, and it
/// then spent whole timeouts DMAing with no call answered (32 devices: ~2.7 M DMAs per simulated second, more than
/// half of them faults; 20 000 calls under lazy-single took ~86 M DMAs). Its releases are not affected: an expiring
/// mapping's unmap without budget is deferred as before, and late DMAs still come after each unmap.
/// </para>
/// </summary>
public sealed class RandomWorkload : DeviceWorkload
{
    /// <summary>Mappings a random device holds at most.</summary>
    public const int MaxMappings = 64;

    private const byte EvTick = 1;
    private const byte EvActivate = 2;
    private const byte EvExpire = 3;
    private const byte EvUnmapRest = 4;

    private const byte Free = 0, Mapping = 1, Mapped = 2, Live = 3, Unmapping = 4;

    private static readonly ulong[] DmaMapSizes = [4096, 8192, 12288, 65536, 262144, 2UL << 20];
    private static readonly ulong[] MapSizes = [4096, 65536, 2UL << 20];

    private readonly ulong _windowBase;
    private readonly ulong _windowSize;
    private readonly byte[] _state = new byte[MaxMappings];
    private readonly bool[] _explicit = new bool[MaxMappings];
    private readonly uint[] _gen = new uint[MaxMappings];
    private readonly ulong[] _iova = new ulong[MaxMappings];
    private readonly ulong[] _size = new ulong[MaxMappings];
    private int _used;
    private bool _stalled;   // its budget was spent at a tick: it waits for a reply to tick again
    private long _stalls;

    internal RandomWorkload(int device, ulong seed, WorkloadOptions options)
        : base(WorkloadFactory.Random, device, seed, options)
    {
        (_windowBase, _windowSize) = WorkloadFactory.ExplicitIovaWindow(device, options);
    }

    /// <summary>Mappings held now (being mapped, live or being unmapped).</summary>
    public int Mappings => _used;

    /// <summary>Ticks at which the device found its whole inflight budget outstanding and waited for a reply.</summary>
    public long Stalls => _stalls;

    /// <summary>Whether the device is waiting for a reply to tick again.</summary>
    public bool Stalled => _stalled;

    private protected override void Start(ulong t0) => Schedule(t0 + NextBelow(Options.RandomIntervalNs), EvTick);

    private protected override void Handle(in WorkEvent ev)
    {
        int s = ev.Slot;
        switch (ev.Kind)
        {
            case EvTick:
                if (Now < HeldUntil)
                {
                    // Its CPU or unit is behind: the tick waits for the hold to end.
                    CountThrottled(1);
                    Schedule(HeldUntil, EvTick);
                    break;
                }
                if (Budget == 0)
                {
                    // Blocked: no action, no DMA, no next tick until a reply comes (OnReply re-arms it).
                    _stalled = true;
                    _stalls++;
                    break;
                }
                Schedule(Now + Jitter(Options.RandomIntervalNs), EvTick);
                Act();
                break;
            case EvActivate:
                if (_gen[s] != (uint)ev.Arg || _state[s] != Mapped)
                    break;
                _state[s] = Live;
                DmaInto(_iova[s], _size[s], write: (NextRandom() >> 63) != 0);
                Schedule(Now + 1000 + NextBelow(49_000), EvExpire, s, ev.Arg, PrioRelease);
                break;
            case EvExpire:
            case EvUnmapRest:
                if (_gen[s] != (uint)ev.Arg || _state[s] != (ev.Kind == EvExpire ? Live : Unmapping))
                    break;
                if (Budget == 0)
                {
                    Defer(in ev);
                    break;
                }
                _state[s] = Unmapping;
                Submit(DmaOpKind.Unmap, _iova[s], 0, _size[s], IommuProt.None, s);
                break;
        }
    }

    private void Act()
    {
        ulong r = NextBelow(100);
        if (r < 25)
            DmaMap();
        else if (r < 50)
            ExplicitMap();
        else if (r < 60)
            MismatchedUnmap();
        else if (r < 75)
            ReadDirty();
        else if (r < 85)
            FaultDma();
        else
            LiveDma();
    }

    private int FreeSlot()
    {
        if (_used == MaxMappings || Budget == 0)
            return -1;
        for (int i = 0; i < MaxMappings; i++)
        {
            if (_state[i] == Free)
                return i;
        }
        return -1;
    }

    /// <summary>A random slot in <paramref name="state"/> (explicit ones only when <paramref name="explicitOnly"/>), or -1.</summary>
    private int PickSlot(byte state, bool explicitOnly, ulong minSize = 0)
    {
        int start = (int)NextBelow(MaxMappings);
        for (int k = 0; k < MaxMappings; k++)
        {
            int i = (start + k) & (MaxMappings - 1);
            if (_state[i] == state && (!explicitOnly || _explicit[i]) && _size[i] >= minSize)
                return i;
        }
        return -1;
    }

    private void Take(int s, bool isExplicit, ulong iova, ulong size)
    {
        _state[s] = Mapping;
        _explicit[s] = isExplicit;
        _iova[s] = iova;
        _size[s] = size;
        _used++;
    }

    private void DmaMap()
    {
        int s = FreeSlot();
        if (s < 0)
        {
            CountDropped();
            return;
        }
        ulong size = DmaMapSizes[NextBelow((ulong)DmaMapSizes.Length)];
        Take(s, false, 0, size);
        Submit(DmaOpKind.DmaMap, 0, RandomPa(size), size, ReadWrite, s);
    }

    private void ExplicitMap()
    {
        int s = FreeSlot();
        if (s < 0)
        {
            CountDropped();
            return;
        }
        ulong size = MapSizes[NextBelow((ulong)MapSizes.Length)];
        int target = NextBelow(3) == 0 ? PickSlot(Live, explicitOnly: true) : -1;
        ulong iova;
        if (target >= 0)
        {
            // Inside a live mapping of ours: at most its size, at an aligned offset inside it.
            if (size > _size[target])
                size = _size[target];
            iova = _iova[target] + (NextBelow(_size[target] / size) * size);
            CountOverlapAttempt();
        }
        else
        {
            iova = _windowBase + NextBelow(_windowSize / size) * size;
        }
        Take(s, true, iova, size);
        Submit(DmaOpKind.Map, iova, RandomPa(size), size, ReadWrite, s);
    }

    private void MismatchedUnmap()
    {
        int s = Budget == 0 ? -1 : PickSlot(Live, explicitOnly: true, minSize: 2 * 4096);
        if (s < 0)
        {
            CountDropped();
            return;
        }
        // A power-of-two prefix strictly smaller than the mapping.
        int pagesLg2 = System.Numerics.BitOperations.Log2(_size[s] >> 12);
        ulong size = 4096UL << (int)NextBelow((ulong)pagesLg2);
        _state[s] = Unmapping;
        CountMismatchedUnmap();
        Submit(DmaOpKind.Unmap, _iova[s], 0, size, IommuProt.None, s);
    }

    private void ReadDirty()
    {
        if (Budget == 0)
        {
            CountDropped();
            return;
        }
        int s = (NextRandom() >> 63) != 0 ? PickSlot(Live, explicitOnly: false) : -1;
        if (s >= 0)
            Submit(DmaOpKind.ReadDirty, _iova[s], 0, _size[s], IommuProt.None, -1);
        else
            Submit(DmaOpKind.ReadDirty, _windowBase, 0, _windowSize, IommuProt.None, -1);
    }

    private void FaultDma()
    {
        for (int attempt = 0; attempt < 4; attempt++)
        {
            ulong iova = _windowBase + (NextBelow(_windowSize >> 6) << 6);
            if (Covered(iova))
                continue;
            CountFaultDma();
            Dma(iova, write: (NextRandom() >> 63) != 0);
            return;
        }
        CountDropped();
    }

    private bool Covered(ulong iova)
    {
        for (int i = 0; i < MaxMappings; i++)
        {
            if (_state[i] != Free && _explicit[i] && iova - _iova[i] < _size[i])
                return true;
        }
        return false;
    }

    private void LiveDma()
    {
        int s = PickSlot(Live, explicitOnly: false);
        if (s < 0)
        {
            CountDropped();
            return;
        }
        DmaInto(_iova[s], _size[s], write: (NextRandom() >> 63) != 0);
    }

    /// <summary>A PA of the device's region aligned to min(<paramref name="size"/> rounded up to a power of two, 2 MiB).</summary>
    private ulong RandomPa(ulong size)
    {
        ulong align = Math.Min(System.Numerics.BitOperations.RoundUpToPowerOf2(size), 2UL << 20);
        ulong slots = (Region.Size - size) / align;
        return Region.Base + NextBelow(slots) * align;
    }

    private void Release(int s)
    {
        _state[s] = Free;
        _gen[s]++;
        _used--;
    }

    private protected override void OnReply(in PendingOp op, in DmaOpResult result)
    {
        int s = op.Tag;
        if (_stalled)
        {
            // A unit of budget came back: tick again once the device sees this reply.
            _stalled = false;
            Schedule(ReplySeenAt(op, result), EvTick);
        }
        switch (op.Kind)
        {
            case DmaOpKind.DmaMap:
            case DmaOpKind.Map:
                if (result.Error != Errno.None)
                {
                    if (op.Kind == DmaOpKind.DmaMap)
                        CountDroppedBuffer();
                    Release(s);
                    return;
                }
                if (op.Kind == DmaOpKind.DmaMap)
                    _iova[s] = result.Iova;
                _state[s] = Mapped;
                Schedule(ReplySeenAt(op, result), EvActivate, s, _gen[s]);
                break;
            case DmaOpKind.Unmap:
                if (_explicit[s] && result.Error == Errno.None && result.Bytes != 0 && result.Bytes < _size[s])
                {
                    // Less than the mapping went (a mismatched unmap over small pages): unmap the rest.
                    _iova[s] += result.Bytes;
                    _size[s] -= result.Bytes;
                    Schedule(ReplySeenAt(op, result), EvUnmapRest, s, _gen[s], PrioRelease);
                    return;
                }
                CountUnit();
                Release(s);
                break;
        }
    }
}
