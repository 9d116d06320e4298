using PtActors.Engine.Dma;

namespace PtActors.Engine.Workloads;

/// <summary>
/// A network port (<c>nic</c>). Packets arrive back to back at line rate: one every
/// (<see cref="WorkloadOptions.FrameBytes"/> + 38)·8 / <see cref="WorkloadOptions.LinkGbps"/> ns (1538 bytes on the wire for
/// a 1500-byte frame: 492 ns at 25 GbE), a random fraction of them received (RX) and the rest transmitted (TX).
/// Per packet: DmaMap a ring buffer (RX 2 KiB, TX 4 KiB; each buffer its own page of the device's region, prot
/// rw); once the IOVA is known, one DMA (RX: the device writes, TX: it reads) at a 64-byte-aligned offset inside
/// the buffer; one wire time later, Unmap with the mapped size; the buffer returns to its ring on the reply.
/// A packet that finds its ring empty or no inflight budget is dropped (RX overrun, TX queue stop) and counted.
/// <para>
/// With <see cref="WorkloadOptions.NicPagePool"/> the RX ring is a page_pool, as modern drivers keep it: its buffers
/// are carved from pages of <see cref="WorkloadOptions.NicBufferPageBytes"/> (4 KiB: two buffers a page; 2 MiB:
/// 1024, at 2 MiB-aligned PAs, so the IOMMU can map each page with one 2 MiB leaf), each page DmaMapped once when the
/// ring fills at the start and never unmapped during the run (the pool does not shrink). An RX packet takes a
/// buffer whose page is mapped, the device writes it (one DMA), and one wire time later the buffer is back in the
/// ring: no DMA-API call per packet, so the IOTLB sees the same buffers again and again. TX maps per packet as above.
/// </para>
/// </summary>
public sealed class NicWorkload : DeviceWorkload
{
    /// <summary>RX buffer bytes (a half page, as page-pool drivers use).</summary>
    public const ulong RxBufferBytes = 2048;

    /// <summary>TX buffer bytes.</summary>
    public const ulong TxBufferBytes = 4096;

    // A buffer's events carry its index in its ring (the slot) and its ring (the kind); its IOVA travels in them too.
    private const byte EvArrival = 1;
    private const byte EvRxTransfer = 2;
    private const byte EvTxTransfer = 3;
    private const byte EvRxUnmap = 4;
    private const byte EvTxUnmap = 5;
    private const byte EvPoolFill = 6;
    private const byte EvPoolRecycle = 7;

    /// <summary>Where the page pool's pages start in the device's region (past the map-per-packet buffers).</summary>
    private const ulong PoolOffset = 1UL << 30;

    private readonly ulong _intervalPs;
    private readonly ulong _intervalWholeNs;  // _intervalPs as whole nanoseconds and the rest
    private readonly ulong _intervalRestPs;
    private readonly ulong _phasePs;
    private readonly ulong _wireNs;           // one packet's wire time in whole nanoseconds (at least 1)
    private readonly ulong _rxThreshold;
    private readonly int _ring;
    // Free buffers of each ring: those freed and not reused yet (a stack: reused last-in first-out), then the
    // never-used ones from the lowest up. Lazy, so that a device costs what it uses rather than its ring size.
    private FreeBuffers _rxFree;
    private FreeBuffers _txFree;
    private ulong _startNs;
    private ulong _packet;                    // the next packet's index
    // The next packet's arrival, n·interval + phase picoseconds after the start, as whole nanoseconds and the rest.
    private ulong _arrivalNs;
    private ulong _arrivalRestPs;
    // The page pool (null without one): each page's IOVA once mapped, the next page to map, and the RX buffers
    // whose page is mapped and that are not in flight, in ring order (a circular queue: the device fills its
    // descriptors in order, so every buffer of the ring comes round).
    private readonly ulong[]? _poolIova;
    private readonly ulong _poolPageBytes;
    private readonly int _buffersPerPage;
    private int _poolNextPage;
    private int[]? _poolFree;
    private int _poolFreeHead;
    private int _poolFreeCount;

    internal NicWorkload(int device, ulong seed, WorkloadOptions options)
        : base(WorkloadFactory.Nic, device, seed, options)
    {
        ulong bits = ((ulong)options.FrameBytes + 38) * 8;
        _intervalPs = Math.Max(1, (ulong)Math.Round(bits * 1000.0 / options.LinkGbps));
        _intervalWholeNs = _intervalPs / 1000;
        _intervalRestPs = _intervalPs % 1000;
        _phasePs = NextBelow(_intervalPs);
        _wireNs = Math.Max(1, _intervalWholeNs);
        _rxThreshold = Xoshiro256StarStar.Threshold(options.NicRxFraction);
        _ring = options.NicRingSize;
        if (options.NicPagePool)
        {
            _poolPageBytes = options.NicBufferPageBytes;
            _buffersPerPage = (int)(_poolPageBytes / RxBufferBytes);
            _poolIova = new ulong[(_ring + _buffersPerPage - 1) / _buffersPerPage];
            _poolFree = new int[_ring];
        }
    }

    /// <summary>RX buffers in the page pool whose page is mapped (0 without a pool).</summary>
    public int PoolBuffersMapped { get; private set; }

    /// <summary>Picoseconds between two packets (one frame's wire time).</summary>
    public ulong PacketIntervalPs => _intervalPs;

    /// <summary>Packets offered by the link so far (started and dropped).</summary>
    public long Packets => (long)_packet;

    /// <summary>The PA of buffer <paramref name="buffer"/> (RX buffers first, then TX).</summary>
    private ulong BufferPa(int buffer) => Region.Base + ((ulong)buffer << 12);

    private ulong BufferSize(int buffer) => buffer < _ring ? RxBufferBytes : TxBufferBytes;

    /// <summary>
    /// Counts the packet arriving now and returns when the next one arrives: packet n comes (n·interval + phase) / 1000 ns
    /// after the start, kept as a running quotient and remainder rather than divided out each time.
    /// </summary>
    private ulong AdvanceArrival()
    {
        _packet++;
        _arrivalNs += _intervalWholeNs;
        _arrivalRestPs += _intervalRestPs;
        if (_arrivalRestPs >= 1000)
        {
            _arrivalRestPs -= 1000;
            _arrivalNs++;
        }
        return _startNs + _arrivalNs;
    }

    private protected override void Start(ulong t0)
    {
        _startNs = t0;
        _arrivalNs = _phasePs / 1000;
        _arrivalRestPs = _phasePs % 1000;
        Schedule(_startNs + _arrivalNs, EvArrival);
        if (_poolIova is not null)
            Schedule(t0, EvPoolFill, prio: PrioRelease);
    }

    private protected override void Handle(in WorkEvent ev)
    {
        switch (ev.Kind)
        {
            case EvArrival:
                if (_poolIova is null)
                    Arrive();
                else
                    ArriveWithPool();
                break;
            case EvPoolFill:
                // Map the pool's pages while the budget lasts; the rest in the next window.
                while (_poolNextPage < _poolIova!.Length && Budget > 0)
                {
                    int page = _poolNextPage++;
                    Submit(DmaOpKind.DmaMap, 0, PoolPagePa(page), _poolPageBytes, ReadWrite, PoolTag(page));
                }
                if (_poolNextPage < _poolIova.Length)
                    Defer(in ev);
                break;
            case EvPoolRecycle:
                PoolPush(ev.Slot);
                break;
            case EvRxTransfer:
                Dma(ev.Arg + (NextBelow(RxBufferBytes >> 6) << 6), write: true);
                Schedule(Now + _wireNs, EvRxUnmap, ev.Slot, arg: ev.Arg, prio: PrioRelease);
                break;
            case EvTxTransfer:
                Dma(ev.Arg + (NextBelow(TxBufferBytes >> 6) << 6), write: false);
                Schedule(Now + _wireNs, EvTxUnmap, ev.Slot, arg: ev.Arg, prio: PrioRelease);
                break;
            case EvRxUnmap:
            case EvTxUnmap:
            {
                if (Budget == 0)
                {
                    Defer(in ev);
                    break;
                }
                int b = ev.Kind == EvRxUnmap ? ev.Slot : _ring + ev.Slot;
                Submit(DmaOpKind.Unmap, ev.Arg, 0, BufferSize(b), IommuProt.None, b);
                break;
            }
        }
    }

    private void Arrive()
    {
        ulong next = AdvanceArrival();
        if (Budget == 0)
        {
            // Dropped, and so is every packet until a reply (budget only comes back with replies, between windows):
            // while the next packet comes before anything else the device has scheduled, it is dropped here too
            // rather than as an event of its own.
            while (true)
            {
                _ = Chance(_rxThreshold); // the direction it would have had
                CountDropped();
                if (!TryRunNext(next))
                    break;
                next = AdvanceArrival();
            }
            Schedule(next, EvArrival);
            return;
        }
        Schedule(next, EvArrival);
        bool rx = Chance(_rxThreshold);
        int b = TakeBuffer(rx);
        if (b < 0)
        {
            CountDropped();
            return;
        }
        Submit(DmaOpKind.DmaMap, 0, BufferPa(b), BufferSize(b), ReadWrite, b);
    }

    private protected override void OnReply(in PendingOp op, in DmaOpResult result)
    {
        if (op.Tag >= PoolTagBase)
        {
            // A page of the pool is mapped (or could not be: its buffers stay out of the ring).
            int page = op.Tag - PoolTagBase;
            if (result.Error != Errno.None)
            {
                CountDroppedBuffer();
                return;
            }
            _poolIova![page] = result.Iova;
            int first = page * _buffersPerPage, last = Math.Min(_ring, first + _buffersPerPage);
            for (int buffer = first; buffer < last; buffer++)
                PoolPush(buffer);
            PoolBuffersMapped += last - first;
            return;
        }
        int b = op.Tag;
        bool rx = b < _ring;
        if (op.Kind == DmaOpKind.DmaMap && result.Error == Errno.None)
        {
            Schedule(ReplySeenAt(op, result), rx ? EvRxTransfer : EvTxTransfer, rx ? b : b - _ring, arg: result.Iova);
            return;
        }
        if (op.Kind == DmaOpKind.DmaMap)
            CountDroppedBuffer();
        else
            CountUnit();
        if (rx)
            _rxFree.Release(b);
        else
            _txFree.Release(b - _ring);
    }

    private void PoolPush(int buffer)
    {
        _poolFree![(_poolFreeHead + _poolFreeCount) % _poolFree.Length] = buffer;
        _poolFreeCount++;
    }

    private const int PoolTagBase = 1 << 20;

    private static int PoolTag(int page) => PoolTagBase + page;

    private ulong PoolPagePa(int page) => Region.Base + PoolOffset + (ulong)page * _poolPageBytes;

    /// <summary>
    /// A packet with a page-pool RX ring: RX takes a mapped pool buffer (no DMA-API call) or is dropped when none is
    /// free; TX maps per packet, as without a pool (and needs budget).
    /// </summary>
    private void ArriveWithPool()
    {
        ulong next = AdvanceArrival();
        Schedule(next, EvArrival);
        bool rx = Chance(_rxThreshold);
        if (rx)
        {
            if (_poolFreeCount == 0)
            {
                CountDropped();
                return;
            }
            int buffer = _poolFree![_poolFreeHead];
            _poolFreeHead = (_poolFreeHead + 1) % _poolFree.Length;
            _poolFreeCount--;
            int page = buffer / _buffersPerPage;
            ulong iova = _poolIova![page] + (ulong)(buffer % _buffersPerPage) * RxBufferBytes;
            Dma(iova + (NextBelow(RxBufferBytes >> 6) << 6), write: true);
            Schedule(Now + _wireNs, EvPoolRecycle, buffer, prio: PrioRelease);
            return;
        }
        int b = TakeBuffer(rx: false);
        if (b < 0)
        {
            CountDropped();
            return;
        }
        Submit(DmaOpKind.DmaMap, 0, BufferPa(b), BufferSize(b), ReadWrite, b);
    }

    /// <summary>A free buffer of the RX or TX ring (the last freed first, else the lowest never used); -1 if none or no budget.</summary>
    private int TakeBuffer(bool rx)
    {
        if (Budget == 0)
            return -1;
        if (rx)
            return _rxFree.Take(_ring);
        int i = _txFree.Take(_ring);
        return i < 0 ? -1 : _ring + i;
    }

    /// <summary>The free buffers of one ring, by index in the ring (below 65536).</summary>
    private struct FreeBuffers
    {
        private ushort[]? _freed;   // freed and not reused yet, the last freed on top
        private int _freedCount;
        private int _fresh;         // the lowest never used

        /// <summary>The last freed buffer, else the lowest never used of a ring of <paramref name="ring"/>; -1 if none.</summary>
        public int Take(int ring)
        {
            if (_freedCount > 0)
                return _freed![--_freedCount];
            return _fresh < ring ? _fresh++ : -1;
        }

        public void Release(int buffer)
        {
            _freed ??= new ushort[8];
            if (_freedCount == _freed.Length)
                Array.Resize(ref _freed, _freed.Length * 2);
            _freed[_freedCount++] = (ushort)buffer;
        }
    }
}
