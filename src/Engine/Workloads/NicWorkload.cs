using PtActors.Engine.Dma;

namespace PtActors.Engine.Workloads;

/// <summary>
/// A network port (<c>nic</c>) driven as a Linux Ethernet driver drives one (mlx5, ice: a queue pair per CPU,
/// descriptor rings and completion queues in coherent memory). Packets arrive back to back at line rate: one every
/// (<see cref="WorkloadOptions.FrameBytes"/> + 38)·8 / <see cref="WorkloadOptions.LinkGbps"/> ns (1538 bytes on the wire
/// for a 1500-byte frame: 492 ns at 25 GbE), a random fraction of them received (RX) and the rest transmitted (TX),
/// each on one of the port's <see cref="WorkloadOptions.NicQueues"/> queues (receive-side scaling: drawn at random when
/// there are several).
/// <para>
/// <b>Coherent memory.</b> When the port comes up, the driver allocates each queue's RX descriptor ring (16-byte
/// descriptors), TX descriptor ring (64-byte), and the RX and TX completion queues (64-byte entries), one
/// <c>dma_alloc_coherent</c> (a DmaMap of whole pages, in the top half of the device's region) each, mapped within the
/// in-flight budget as the port starts and never unmapped. Per packet the device reads the next descriptor of its
/// ring and, once the data has moved, writes the next entry of its completion queue: two DMAs into memory that stays
/// mapped, as real NICs make.
/// </para>
/// <para>
/// <b>Buffers mapped per packet</b> (the default): DmaMap a buffer of the queue's ring (RX: 2 KiB, or the frame rounded
/// up to whole pages past 2 KiB; TX: the frame in whole pages; each buffer at its own page-aligned PA, prot rw); once
/// the IOVA is known, the descriptor read, the data — one DMA per 4 KiB page the frame touches (RX: the device writes,
/// TX: it reads) — and the completion write; one wire time later, Unmap with the mapped size; the buffer returns to its
/// ring on the reply. A packet that finds its ring empty or no in-flight budget is dropped (RX overrun, TX queue stop)
/// and counted.
/// </para>
/// <para>
/// <b>Page pool</b> (<see cref="WorkloadOptions.NicPagePool"/>): each RX queue keeps a page_pool, as modern drivers do:
/// its buffers are carved from pages of <see cref="WorkloadOptions.NicBufferPageBytes"/> (4 KiB: two 2 KiB buffers a
/// page; 2 MiB: 1024, at 2 MiB-aligned PAs so the IOMMU can map each page with one 2 MiB leaf; a jumbo frame's buffer
/// takes a compound page of its size when 4 KiB pages are too small), each page DmaMapped once when the ring fills at
/// the start and never unmapped during the run (the pool does not shrink). An RX packet takes the next buffer of its
/// queue's ring whose page is mapped, the device reads the descriptor, writes the frame and the completion, and one
/// wire time later the buffer is back in the ring: no DMA-API call per packet, so the IOTLB sees the same buffers
/// again and again. TX maps per packet as above.
/// </para>
/// </summary>
public sealed class NicWorkload : DeviceWorkload
{
    /// <summary>RX buffer bytes for frames up to 2 KiB (a half page, as page-pool drivers use).</summary>
    public const ulong RxBufferBytes = 2048;

    /// <summary>Bytes of an RX descriptor (one data segment).</summary>
    public const ulong RxDescriptorBytes = 16;

    /// <summary>Bytes of a TX descriptor (a 64-byte work-queue entry).</summary>
    public const ulong TxDescriptorBytes = 64;

    /// <summary>Bytes of a completion-queue entry.</summary>
    public const ulong CompletionBytes = 64;

    /// <summary>Queues per port at most.</summary>
    public const int MaxQueues = 64;

    // A buffer's events carry its index (queue·ring + index in the queue's ring) as the slot and its IOVA as the argument.
    private const byte EvArrival = 1;
    private const byte EvRxTransfer = 2;
    private const byte EvTxTransfer = 3;
    private const byte EvRxUnmap = 4;
    private const byte EvTxUnmap = 5;
    private const byte EvPoolFill = 6;
    private const byte EvPoolRecycle = 7;
    private const byte EvSetup = 8;

    // Coherent allocations of a queue, in the order the driver makes them.
    private const int RxRing = 0, RxCq = 1, TxRing = 2, TxCq = 3, PerQueue = 4;

    /// <summary>Where the page pool's pages start in the device's region (past the map-per-packet buffers).</summary>
    private const ulong PoolOffset = 2UL << 30;

    private const int PoolTagBase = 1 << 20;
    private const int CoherentTagBase = 1 << 22;

    private readonly ulong _intervalPs;
    private readonly ulong _intervalWholeNs;  // _intervalPs as whole nanoseconds and the rest
    private readonly ulong _intervalRestPs;
    private readonly ulong _phasePs;
    private readonly ulong _wireNs;           // one packet's wire time in whole nanoseconds (at least 1)
    private readonly ulong _rxThreshold;
    private readonly int _ring;
    private readonly int _queues;
    private readonly ulong _frameBytes;
    private readonly ulong _rxBytes;          // an RX buffer
    private readonly ulong _txBytes;          // a TX buffer
    private readonly ulong _bufferStride;     // PA distance between two map-per-packet buffers
    // Free buffers of each queue's rings: those freed and not reused yet (a stack: reused last-in first-out), then
    // the never-used ones from the lowest up. Lazy, so that a device costs what it uses rather than its ring size.
    private readonly FreeBuffers[] _rxFree;
    private readonly FreeBuffers[] _txFree;
    // Coherent memory: each allocation's bytes and IOVA (0 until mapped, or if its map failed), the next to map, and
    // each queue's next descriptor and completion slots.
    private readonly ulong[] _coherentBytes;
    private readonly ulong[] _coherentIova;
    private readonly int[] _ringHead;         // per queue and allocation: the next descriptor / completion slot
    private int _setupNext;
    private int _rxInUse, _txInUse;           // buffers taken from the map-per-packet rings and not yet back
    private int _poolFreeTotal;               // page-pool buffers free over all queues
    private ulong _startNs;
    private ulong _packet;                    // the next packet's index
    // The next packet's arrival, n·interval + phase picoseconds after the start, as whole nanoseconds and the rest.
    private ulong _arrivalNs;
    private ulong _arrivalRestPs;
    // The page pools (null without): each page's IOVA once mapped (queue by queue), the next page to map, and per
    // queue the RX buffers whose page is mapped and that are not in flight, in ring order (a circular queue: the device
    // fills its descriptors in order, so every buffer of the ring comes round).
    private readonly ulong[]? _poolIova;
    private readonly ulong _poolPageBytes;
    private readonly int _buffersPerPage;
    private readonly int _pagesPerQueue;
    private int _poolNextPage;
    private readonly int[]? _poolFree;        // queue q's circular queue is [q·ring, (q+1)·ring)
    private readonly int[]? _poolFreeHead;
    private readonly int[]? _poolFreeCount;

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
        _queues = options.NicQueues;
        _frameBytes = (ulong)options.FrameBytes;
        _rxBytes = _frameBytes <= RxBufferBytes ? RxBufferBytes : PageAlign(_frameBytes);
        _txBytes = PageAlign(_frameBytes);
        _bufferStride = Math.Max(_rxBytes, _txBytes);
        _rxFree = new FreeBuffers[_queues];
        _txFree = new FreeBuffers[_queues];
        _coherentBytes = new ulong[_queues * PerQueue];
        for (int q = 0; q < _queues; q++)
        {
            _coherentBytes[q * PerQueue + RxRing] = PageAlign((ulong)_ring * RxDescriptorBytes);
            _coherentBytes[q * PerQueue + RxCq] = PageAlign((ulong)_ring * CompletionBytes);
            _coherentBytes[q * PerQueue + TxRing] = PageAlign((ulong)_ring * TxDescriptorBytes);
            _coherentBytes[q * PerQueue + TxCq] = PageAlign((ulong)_ring * CompletionBytes);
        }
        _coherentIova = new ulong[_coherentBytes.Length];
        _ringHead = new int[_coherentBytes.Length];
        if (options.NicPagePool)
        {
            _poolPageBytes = Math.Max(options.NicBufferPageBytes, System.Numerics.BitOperations.RoundUpToPowerOf2(_rxBytes));
            _buffersPerPage = (int)(_poolPageBytes / _rxBytes);
            _pagesPerQueue = (_ring + _buffersPerPage - 1) / _buffersPerPage;
            _poolIova = new ulong[_queues * _pagesPerQueue];
            _poolFree = new int[_queues * _ring];
            _poolFreeHead = new int[_queues];
            _poolFreeCount = new int[_queues];
        }
    }

    private static ulong PageAlign(ulong bytes) => (bytes + 4095) & ~4095UL;

    private int _setupAnswered;               // answers to the coherent allocations' and the pools' maps

    /// <inheritdoc/>
    public override bool SettingUp => _setupAnswered < _coherentBytes.Length + (_poolIova?.Length ?? 0);

    /// <summary>RX buffers in the page pools whose page is mapped (0 without a pool).</summary>
    public int PoolBuffersMapped { get; private set; }

    /// <summary>Coherent allocations mapped so far (four per queue: RX and TX descriptor rings and completion queues).</summary>
    public int CoherentMapped { get; private set; }

    /// <summary>Picoseconds between two packets (one frame's wire time).</summary>
    public ulong PacketIntervalPs => _intervalPs;

    /// <summary>Packets offered by the link so far (started and dropped).</summary>
    public long Packets => (long)_packet;

    /// <summary>The PA of buffer <paramref name="buffer"/> (RX buffers first, then TX; each its own pages).</summary>
    private ulong BufferPa(int buffer) => Region.Base + (ulong)buffer * _bufferStride;

    private ulong BufferSize(int buffer) => buffer < _queues * _ring ? _rxBytes : _txBytes;

    /// <summary>The PA of coherent allocation <paramref name="which"/>: one after the other from the middle of the region.</summary>
    private ulong CoherentPa(int which)
    {
        ulong pa = Region.Base + Region.Size / 2;
        for (int i = 0; i < which; i++)
            pa += _coherentBytes[i];
        return pa;
    }

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

    /// <summary>
    /// Drops every packet that arrives before anything else the device has scheduled (and before the window ends),
    /// counted at once without drawing their direction: called when no packet could be taken, whatever its direction
    /// and queue (no in-flight budget, or every ring empty). Returns the arrival of the first packet not dropped.
    /// </summary>
    private ulong DropWhileBlocked(ulong next)
    {
        ulong first = SkipArrivals(next, InlineLimit, out long count);
        CountDropped(count);
        return first;
    }

    /// <summary>
    /// Skips the packets arriving from <paramref name="next"/> (the next arrival) up to <paramref name="limit"/>
    /// (exclusive), <paramref name="count"/> of them, without drawing their direction; returns the arrival of the
    /// first packet not skipped.
    /// </summary>
    private ulong SkipArrivals(ulong next, ulong limit, out long count)
    {
        count = 0;
        if (next >= limit)
            return next;
        // Packet j from the next one arrives (P + j·I) / 1000 ns after the start (P: the next one's offset in ps).
        ulong p = _arrivalNs * 1000 + _arrivalRestPs;
        ulong span = (limit - _startNs) * 1000 - p;
        ulong n = (span + _intervalPs - 1) / _intervalPs;
        count = (long)n;
        p += n * _intervalPs;
        _packet += n;
        _arrivalNs = p / 1000;
        _arrivalRestPs = p % 1000;
        return _startNs + _arrivalNs;
    }

    /// <summary>Whether no packet arriving now could be taken, whatever its direction and queue.</summary>
    private bool Blocked()
    {
        bool txBlocked = Budget == 0 || _txInUse == _queues * _ring;
        if (_poolIova is not null)
            return _poolFreeTotal == 0 && txBlocked;
        return Budget == 0 || (txBlocked && _rxInUse == _queues * _ring);
    }

    private protected override void Start(ulong t0)
    {
        _startNs = t0;
        _arrivalNs = _phasePs / 1000;
        _arrivalRestPs = _phasePs % 1000;
        Schedule(t0, EvSetup, prio: PrioRelease);
        Schedule(_startNs + _arrivalNs, EvArrival);
        if (_poolIova is not null)
            Schedule(t0, EvPoolFill, prio: PrioRelease);
    }

    private protected override void Handle(in WorkEvent ev)
    {
        switch (ev.Kind)
        {
            case EvArrival:
                Arrive();
                break;
            case EvSetup:
                // Every queue's rings and completion queues while the budget lasts; the rest in the next window.
                while (_setupNext < _coherentBytes.Length && Budget > 0)
                {
                    int which = _setupNext++;
                    Submit(DmaOpKind.DmaMap, 0, CoherentPa(which), _coherentBytes[which], ReadWrite, CoherentTagBase + which);
                }
                if (_setupNext < _coherentBytes.Length)
                    Defer(in ev);
                break;
            case EvPoolFill:
                // Map the pools' pages while the budget lasts; the rest in the next window.
                while (_poolNextPage < _poolIova!.Length && Budget > 0)
                {
                    int page = _poolNextPage++;
                    Submit(DmaOpKind.DmaMap, 0, PoolPagePa(page), _poolPageBytes, ReadWrite, PoolTagBase + page);
                }
                if (_poolNextPage < _poolIova.Length)
                    Defer(in ev);
                break;
            case EvPoolRecycle:
                PoolPush(ev.Slot);
                break;
            case EvRxTransfer:
                Packet(ev.Slot / _ring, rx: true, ev.Arg);
                Schedule(Now + _wireNs, EvRxUnmap, ev.Slot, arg: ev.Arg, prio: PrioRelease);
                break;
            case EvTxTransfer:
                Packet(ev.Slot / _ring, rx: false, ev.Arg);
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
                int b = ev.Kind == EvRxUnmap ? ev.Slot : _queues * _ring + ev.Slot;
                Submit(DmaOpKind.Unmap, ev.Arg, 0, BufferSize(b), IommuProt.None, b);
                break;
            }
        }
    }

    /// <summary>
    /// What the device does for one packet on queue <paramref name="q"/> whose buffer is at <paramref name="iova"/>:
    /// reads the descriptor, moves the frame a page at a time, writes the completion.
    /// </summary>
    private void Packet(int q, bool rx, ulong iova)
    {
        Coherent(q * PerQueue + (rx ? RxRing : TxRing), rx ? RxDescriptorBytes : TxDescriptorBytes, write: false);
        if (_frameBytes <= 4096)
        {
            // One page: at a 64-byte-aligned offset inside the buffer.
            ulong size = rx ? _rxBytes : _txBytes;
            Dma(iova + (NextBelow(Math.Min(size, 4096) >> 6) << 6), write: rx);
        }
        else
        {
            for (ulong offset = 0; offset < _frameBytes; offset += 4096)
                Dma(iova + offset, write: rx);
        }
        Coherent(q * PerQueue + (rx ? RxCq : TxCq), CompletionBytes, write: true);
        CountMoved(_frameBytes);
    }

    /// <summary>A DMA to the next entry of coherent ring <paramref name="which"/> (none if its allocation is not mapped).</summary>
    private void Coherent(int which, ulong entryBytes, bool write)
    {
        int slot = _ringHead[which];
        _ringHead[which] = slot + 1 == _ring ? 0 : slot + 1;
        if (_coherentIova[which] != 0)
            Dma(_coherentIova[which] + (ulong)slot * entryBytes, write);
    }

    /// <summary>The queue of the packet arriving now: 0, or one drawn at random among several.</summary>
    private int Queue() => _queues == 1 ? 0 : (int)NextBelow((ulong)_queues);

    private void Arrive()
    {
        if (Now < HeldUntil)
        {
            // Its CPU is behind (NAPI does not refill the rings, the stack sends nothing) or its unit's translations
            // are: this packet and every one arriving until the hold ends in this window are lost.
            ulong after = SkipArrivals(AdvanceArrival(), Math.Min(HeldUntil, WindowEnd), out long held);
            CountThrottled(1 + held);
            Schedule(after, EvArrival);
            return;
        }
        while (true)
        {
            ulong next = AdvanceArrival();
            if (Blocked())
            {
                // Dropped, and so is every packet until something changes (budget comes back with replies, between
                // windows; buffers with replies or scheduled actions): those before the next scheduled action at once.
                CountDropped();
                Schedule(DropWhileBlocked(next), EvArrival);
                return;
            }
            bool rx = Chance(_rxThreshold);
            if (TryStartPacket(Queue(), rx, next))
                return;
            CountDropped();
            if (!TryRunNext(next))
            {
                Schedule(next, EvArrival);
                return;
            }
        }
    }

    /// <summary>
    /// Takes a buffer of queue <paramref name="q"/> for the packet arriving now and starts it, the next arrival
    /// scheduled at <paramref name="next"/>; false (nothing done) when the packet is dropped. With page-pool RX
    /// rings an RX packet takes its queue's next mapped pool buffer (no DMA-API call) or none is free; otherwise the
    /// packet maps a ring buffer (and needs budget).
    /// </summary>
    private bool TryStartPacket(int q, bool rx, ulong next)
    {
        if (rx && _poolIova is not null)
        {
            if (_poolFreeCount![q] == 0)
                return false;
            Schedule(next, EvArrival);
            int buffer = _poolFree![q * _ring + _poolFreeHead![q]];
            _poolFreeHead[q] = _poolFreeHead[q] + 1 == _ring ? 0 : _poolFreeHead[q] + 1;
            _poolFreeCount[q]--;
            _poolFreeTotal--;
            int i = buffer % _ring;
            ulong iova = _poolIova[q * _pagesPerQueue + i / _buffersPerPage] + (ulong)(i % _buffersPerPage) * _rxBytes;
            Packet(q, rx: true, iova);
            Schedule(Now + _wireNs, EvPoolRecycle, buffer, prio: PrioRelease);
            return true;
        }
        int b = TakeBuffer(q, rx);
        if (b < 0)
            return false;
        Schedule(next, EvArrival);
        Submit(DmaOpKind.DmaMap, 0, BufferPa(b), BufferSize(b), ReadWrite, b);
        return true;
    }

    private protected override void OnReply(in PendingOp op, in DmaOpResult result)
    {
        if (op.Tag >= PoolTagBase)
            _setupAnswered++;
        if (op.Tag >= CoherentTagBase)
        {
            if (result.Error != Errno.None)
            {
                CountDroppedBuffer();
                return;
            }
            _coherentIova[op.Tag - CoherentTagBase] = result.Iova;
            CoherentMapped++;
            return;
        }
        if (op.Tag >= PoolTagBase)
        {
            // A page of a pool is mapped (or could not be: its buffers stay out of the ring).
            int page = op.Tag - PoolTagBase;
            if (result.Error != Errno.None)
            {
                CountDroppedBuffer();
                return;
            }
            _poolIova![page] = result.Iova;
            int q = page / _pagesPerQueue, inQueue = page % _pagesPerQueue;
            int first = inQueue * _buffersPerPage, last = Math.Min(_ring, first + _buffersPerPage);
            for (int i = first; i < last; i++)
                PoolPush(q * _ring + i);
            PoolBuffersMapped += last - first;
            return;
        }
        int b = op.Tag;
        int rxBuffers = _queues * _ring;
        bool rx = b < rxBuffers;
        if (op.Kind == DmaOpKind.DmaMap && result.Error == Errno.None)
        {
            Schedule(ReplySeenAt(op, result), rx ? EvRxTransfer : EvTxTransfer, rx ? b : b - rxBuffers, arg: result.Iova);
            return;
        }
        if (op.Kind == DmaOpKind.DmaMap)
            CountDroppedBuffer();
        else
            CountUnit();
        int index = rx ? b : b - rxBuffers;
        (rx ? ref _rxFree[index / _ring] : ref _txFree[index / _ring]).Release(index % _ring);
        if (rx)
            _rxInUse--;
        else
            _txInUse--;
    }

    /// <summary>Puts RX buffer <paramref name="buffer"/> (queue·ring + index) back at the tail of its queue's pool ring.</summary>
    private void PoolPush(int buffer)
    {
        int q = buffer / _ring;
        _poolFree![q * _ring + (_poolFreeHead![q] + _poolFreeCount![q]) % _ring] = buffer;
        _poolFreeCount[q]++;
        _poolFreeTotal++;
    }

    private ulong PoolPagePa(int page) => Region.Base + PoolOffset + (ulong)page * _poolPageBytes;

    /// <summary>A free buffer of queue <paramref name="q"/>'s RX or TX ring (the last freed first, else the lowest never used); -1 if none or no budget.</summary>
    private int TakeBuffer(int q, bool rx)
    {
        if (Budget == 0)
            return -1;
        int i = rx ? _rxFree[q].Take(_ring) : _txFree[q].Take(_ring);
        if (i < 0)
            return -1;
        if (rx)
            _rxInUse++;
        else
            _txInUse++;
        return (rx ? 0 : _queues * _ring) + q * _ring + i;
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
