using PtActors.Engine.Dma;

namespace PtActors.Engine.Workloads;

/// <summary>
/// A solid-state disk (<c>nvme</c>). Commands arrive every 1/<see cref="WorkloadOptions.NvmeIops"/> s on average (±50 %),
/// each a read (the device writes memory) or a write of 4 KiB·2^k, k in 0..5 (4 KiB to 128 KiB), scattered over 1 to 8
/// segments of whole pages at random page-aligned PAs of the device's region. A command DmaMaps every segment (prot
/// rw) in one go — it waits, in arrival order, until the inflight budget covers all of them; once every map has
/// replied, one DMA per mapped segment; after the transfer (4 bytes/ns), an Unmap per segment. A segment whose map
/// fails is dropped and the command goes on with the others; commands beyond the queue depth are dropped.
/// </summary>
public sealed class NvmeWorkload : DeviceWorkload
{
    /// <summary>Segments per command at most.</summary>
    public const int MaxSegments = 8;

    /// <summary>Transfer speed in bytes per nanosecond (4 GB/s).</summary>
    public const ulong BytesPerNs = 4;

    private const byte EvArrival = 1;
    private const byte EvStart = 2;
    private const byte EvTransfer = 3;
    private const byte EvComplete = 4;

    private const byte SegMapping = 1, SegMapped = 2, SegFailed = 3, SegUnmapping = 4, SegDone = 5;

    private readonly ulong _meanIntervalNs;
    private readonly ulong _readThreshold;
    private readonly int _maxSeg;
    private readonly ulong _regionPages;
    private readonly int[] _free;
    private int _freeCount;

    // Per command.
    private readonly byte[] _segs;
    private readonly byte[] _mapsLeft;
    private readonly byte[] _unmapsLeft;
    private readonly bool[] _unmapsSent;
    private readonly bool[] _isWrite;
    private readonly ulong[] _seenAt;

    // Per segment (command · MaxSegments + index).
    private readonly byte[] _segState;
    private readonly ulong[] _segPa;
    private readonly ulong[] _segSize;
    private readonly ulong[] _segIova;

    internal NvmeWorkload(int device, ulong seed, WorkloadOptions options)
        : base(WorkloadFactory.Nvme, device, seed, options)
    {
        _meanIntervalNs = Math.Max(1, 1_000_000_000UL / (ulong)options.NvmeIops);
        _readThreshold = Xoshiro256StarStar.Threshold(options.NvmeReadFraction);
        _maxSeg = Math.Min(MaxSegments, options.Inflight);
        _regionPages = Region.Size >> 12;
        int q = options.NvmeQueueDepth;
        _free = new int[q];
        for (int i = 0; i < q; i++)
            _free[i] = q - 1 - i;
        _freeCount = q;
        _segs = new byte[q];
        _mapsLeft = new byte[q];
        _unmapsLeft = new byte[q];
        _unmapsSent = new bool[q];
        _isWrite = new bool[q];
        _seenAt = new ulong[q];
        _segState = new byte[q * MaxSegments];
        _segPa = new ulong[q * MaxSegments];
        _segSize = new ulong[q * MaxSegments];
        _segIova = new ulong[q * MaxSegments];
    }

    private protected override void Start(ulong t0) => Schedule(t0 + NextBelow(_meanIntervalNs), EvArrival);

    private protected override void Handle(in WorkEvent ev)
    {
        int c = ev.Slot;
        switch (ev.Kind)
        {
            case EvArrival:
                Schedule(Now + Jitter(_meanIntervalNs), EvArrival);
                Arrive();
                break;
            case EvStart:
                if (Budget < _segs[c])
                {
                    Defer(in ev);
                    break;
                }
                for (int s = 0; s < _segs[c]; s++)
                {
                    int i = c * MaxSegments + s;
                    _segState[i] = SegMapping;
                    Submit(DmaOpKind.DmaMap, 0, _segPa[i], _segSize[i], ReadWrite, i);
                }
                _mapsLeft[c] = _segs[c];
                break;
            case EvTransfer:
            {
                ulong bytes = 0;
                for (int s = 0; s < _segs[c]; s++)
                {
                    int i = c * MaxSegments + s;
                    if (_segState[i] != SegMapped)
                        continue;
                    DmaInto(_segIova[i], _segSize[i], write: !_isWrite[c]);
                    bytes += _segSize[i];
                }
                if (bytes == 0)
                {
                    _free[_freeCount++] = c; // every segment failed to map: nothing to transfer or unmap
                    break;
                }
                Schedule(Now + Math.Max(1, bytes / BytesPerNs), EvComplete, c, prio: PrioRelease);
                break;
            }
            case EvComplete:
                for (int s = 0; s < _segs[c]; s++)
                {
                    int i = c * MaxSegments + s;
                    if (_segState[i] != SegMapped)
                        continue;
                    if (Budget == 0)
                    {
                        Defer(in ev);
                        return;
                    }
                    _segState[i] = SegUnmapping;
                    _unmapsLeft[c]++;
                    Submit(DmaOpKind.Unmap, _segIova[i], 0, _segSize[i], IommuProt.None, i);
                }
                _unmapsSent[c] = true;
                FinishIfDone(c);
                break;
        }
    }

    private void Arrive()
    {
        if (_freeCount == 0)
        {
            CountDropped();
            return;
        }
        int c = _free[--_freeCount];
        ulong pages = 1UL << (int)NextBelow(6);
        int segs = 1 + (int)NextBelow(Math.Min(pages, (ulong)_maxSeg));
        ulong per = pages / (ulong)segs, extra = pages % (ulong)segs;
        for (int s = 0; s < segs; s++)
        {
            int i = c * MaxSegments + s;
            ulong segPages = per + ((ulong)s < extra ? 1UL : 0);
            _segSize[i] = segPages << 12;
            _segPa[i] = Region.Base + (NextBelow(_regionPages - segPages + 1) << 12);
            _segState[i] = 0;
        }
        _segs[c] = (byte)segs;
        _isWrite[c] = !Chance(_readThreshold);
        _mapsLeft[c] = 0;
        _unmapsLeft[c] = 0;
        _unmapsSent[c] = false;
        _seenAt[c] = 0;
        Schedule(Now, EvStart, c);
    }

    private protected override void OnReply(in PendingOp op, in DmaOpResult result)
    {
        int i = op.Tag, c = i / MaxSegments;
        if (op.Kind == DmaOpKind.DmaMap)
        {
            if (result.Error == Errno.None)
            {
                _segState[i] = SegMapped;
                _segIova[i] = result.Iova;
            }
            else
            {
                _segState[i] = SegFailed;
                CountDroppedBuffer();
            }
            _seenAt[c] = Math.Max(_seenAt[c], ReplySeenAt(op, result));
            if (--_mapsLeft[c] == 0)
                Schedule(_seenAt[c], EvTransfer, c);
            return;
        }
        _segState[i] = SegDone;
        _unmapsLeft[c]--;
        FinishIfDone(c);
    }

    private void FinishIfDone(int c)
    {
        if (!_unmapsSent[c] || _unmapsLeft[c] != 0)
            return;
        _unmapsSent[c] = false;
        CountUnit();
        _free[_freeCount++] = c;
    }
}
