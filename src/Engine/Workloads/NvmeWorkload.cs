using PtActors.Engine.Dma;

namespace PtActors.Engine.Workloads;

/// <summary>
/// A solid-state disk (<c>nvme</c>) driven as Linux's nvme driver drives one (drivers/nvme/host/pci.c).
/// <para>
/// <b>Coherent memory.</b> When the device starts, the driver allocates its queue pair with <c>dma_alloc_coherent</c>:
/// a submission queue of <see cref="WorkloadOptions.NvmeQueueDepth"/> 64-byte entries, a completion queue of as many
/// 16-byte entries, and (when commands can span more than two pages) a pool of one PRP-list page per queue slot (the
/// driver's <c>dma_pool</c>). Each is one DmaMap of whole pages at the top half of the device's physical region, made
/// once (within the in-flight budget) and never unmapped: the device reads and writes them for its whole life.
/// </para>
/// <para>
/// <b>Per command.</b> Commands arrive every 1/<see cref="WorkloadOptions.NvmeIops"/> s on average (±50 %), a read
/// (the device writes memory) or a write, of <see cref="WorkloadOptions.NvmeIoBytes"/> (by default a mix: 4 KiB·2^k,
/// k in 0..5, 4 KiB to 128 KiB) scattered over 1 to 8 segments of whole pages at random page-aligned PAs of the bottom
/// half of the region. The driver maps every segment (<c>dma_map_sg</c>: one DmaMap each, prot rw) in one go — the
/// command waits, in arrival order, until the in-flight budget covers all of them — then writes the command into the
/// next submission-queue slot (and, past two pages, its PRP list into the slot's list page) and rings the doorbell.
/// Once every map has replied the device fetches the command (a DMA read of its submission-queue entry), reads the
/// PRP list when there is one, and transfers the data: one DMA per page touched (a translation each), at 4 bytes/ns.
/// When the transfer is done it posts the completion (a DMA write of the completion-queue entry) and the driver
/// unmaps every segment (<c>dma_unmap_sg</c>). A segment whose map fails is dropped and the command goes on with the
/// others; commands beyond the queue depth are dropped (counted). A coherent allocation whose map fails is counted
/// as a dropped buffer and the device then moves data without touching it.
/// </para>
/// </summary>
public sealed class NvmeWorkload : DeviceWorkload
{
    /// <summary>Segments per command at most.</summary>
    public const int MaxSegments = 8;

    /// <summary>Transfer speed in bytes per nanosecond (4 GB/s).</summary>
    public const ulong BytesPerNs = 4;

    /// <summary>Bytes of a submission-queue entry.</summary>
    public const ulong SqEntryBytes = 64;

    /// <summary>Bytes of a completion-queue entry.</summary>
    public const ulong CqEntryBytes = 16;

    /// <summary>The largest command, in bytes (a PRP list of one page describes at most 512 pages).</summary>
    public const ulong MaxIoBytes = 2UL << 20;

    private const byte EvArrival = 1;
    private const byte EvStart = 2;
    private const byte EvTransfer = 3;
    private const byte EvComplete = 4;
    private const byte EvSetup = 5;

    // The coherent allocations, in the order the driver makes them (their map tags follow the segments').
    private const int Sq = 0, Cq = 1, PrpPool = 2;
    private const int CoherentTagBase = 1 << 20;

    private readonly ulong _meanIntervalNs;
    private readonly ulong _readThreshold;
    private readonly int _maxSeg;
    private readonly ulong _dataPages;       // pages of the region data buffers come from (its bottom half)
    private readonly int _queueDepth;
    private readonly int _fixedPages;        // pages of every command with --io-size, else 0 (the mix)
    private readonly ulong[] _coherentBytes; // SQ, CQ, PRP pool (0: not allocated)
    private readonly ulong[] _coherentIova;  // each one's IOVA once mapped (0: not, or its map failed)
    private int _setupNext;                  // the next coherent allocation to map
    private int _sqTail;                     // the next submission-queue slot the driver fills
    private int _cqTail;                     // the next completion-queue slot the device posts to

    // Command slots: those freed and not reused yet (a stack: reused last-in first-out), then the never-used ones from
    // the lowest up. The state of the slots used so far; it grows with the number of commands outstanding at once.
    private ushort[] _freed = new ushort[4];
    private int _freedCount;
    private int _fresh;
    private Command[] _commands = new Command[4];
    // Segment s of command c: its PA until its map is submitted, then its IOVA once mapped.
    private ulong[] _segAddr = new ulong[4 * MaxSegments];

    /// <summary>One command's progress.</summary>
    private struct Command
    {
        public ulong SeenAt;       // the latest time one of its map replies is seen
        public ushort Pages;       // its size in 4 KiB pages, split over Segments
        public ushort SqSlot;      // the submission-queue slot it was written to
        public byte Segments;
        public byte MapsLeft;
        public byte UnmapsLeft;
        public byte Mapped;        // bit s: segment s is mapped and not yet being unmapped
        public bool UnmapsSent;
        public bool Posted;        // its completion entry is written
        public bool IsWrite;

        /// <summary>Bytes of segment <paramref name="s"/>: whole pages, the first (pages mod segments) one page larger.</summary>
        public readonly ulong SegmentBytes(int s)
        {
            int segPages = Pages / Segments + (s < Pages % Segments ? 1 : 0);
            return (ulong)segPages << 12;
        }
    }

    internal NvmeWorkload(int device, ulong seed, WorkloadOptions options)
        : base(WorkloadFactory.Nvme, device, seed, options)
    {
        _meanIntervalNs = Math.Max(1, 1_000_000_000UL / (ulong)options.NvmeIops);
        _readThreshold = Xoshiro256StarStar.Threshold(options.NvmeReadFraction);
        _maxSeg = Math.Min(MaxSegments, options.Inflight);
        _dataPages = (Region.Size / 2) >> 12;
        _queueDepth = options.NvmeQueueDepth;
        _fixedPages = (int)(options.NvmeIoBytes >> 12);
        int maxPages = _fixedPages != 0 ? _fixedPages : 32;
        _coherentBytes =
        [
            PageAlign((ulong)_queueDepth * SqEntryBytes),
            PageAlign((ulong)_queueDepth * CqEntryBytes),
            maxPages > 2 ? (ulong)_queueDepth << 12 : 0,
        ];
        _coherentIova = new ulong[_coherentBytes.Length];
    }

    private static ulong PageAlign(ulong bytes) => (bytes + 4095) & ~4095UL;

    /// <summary>Coherent allocations mapped so far (submission queue, completion queue, PRP-list pool).</summary>
    public int CoherentMapped { get; private set; }

    /// <summary>The PA of coherent allocation <paramref name="which"/>: one after the other from the middle of the region.</summary>
    private ulong CoherentPa(int which)
    {
        ulong pa = Region.Base + Region.Size / 2;
        for (int i = 0; i < which; i++)
            pa += _coherentBytes[i];
        return pa;
    }

    private int _setupAnswered;     // answers to the coherent allocations' maps

    /// <inheritdoc/>
    public override bool SettingUp => _setupAnswered < _coherentBytes.Length;

    private protected override void Start(ulong t0)
    {
        Schedule(t0, EvSetup, prio: PrioRelease);
        Schedule(t0 + NextBelow(_meanIntervalNs), EvArrival);
    }

    private protected override void Handle(in WorkEvent ev)
    {
        int c = ev.Slot;
        switch (ev.Kind)
        {
            case EvSetup:
                // The queue pair and the PRP-list pool, while the budget lasts; the rest in the next window.
                while (_setupNext < _coherentBytes.Length && Budget > 0)
                {
                    int which = _setupNext++;
                    if (_coherentBytes[which] != 0)
                        Submit(DmaOpKind.DmaMap, 0, CoherentPa(which), _coherentBytes[which], ReadWrite, CoherentTagBase + which);
                }
                if (_setupNext < _coherentBytes.Length)
                    Defer(in ev);
                break;
            case EvArrival:
                if (Now < HeldUntil)
                {
                    // Held back: this command and every one arriving until the hold ends in this window are not
                    // submitted; their arrivals drawn here as they would have been, without an event each.
                    ulong limit = Math.Min(HeldUntil, WindowEnd), next = Now;
                    long held = 0;
                    while (next < limit)
                    {
                        held++;
                        next += Jitter(_meanIntervalNs);
                    }
                    CountThrottled(held);
                    Schedule(next, EvArrival);
                    break;
                }
                Schedule(Now + Jitter(_meanIntervalNs), EvArrival);
                Arrive();
                break;
            case EvStart:
            {
                ref var cmd = ref _commands[c];
                if (Now < HeldUntil)
                {
                    // The driver maps a queued command on its CPU: once the CPU has caught up, as far as it is known now.
                    HoldOff(in ev);
                    break;
                }
                if (Budget < cmd.Segments)
                {
                    Defer(in ev);
                    break;
                }
                for (int s = 0; s < cmd.Segments; s++)
                {
                    int i = c * MaxSegments + s;
                    Submit(DmaOpKind.DmaMap, 0, _segAddr[i], cmd.SegmentBytes(s), ReadWrite, i);
                }
                cmd.MapsLeft = cmd.Segments;
                cmd.SqSlot = (ushort)_sqTail;
                _sqTail = _sqTail + 1 == _queueDepth ? 0 : _sqTail + 1;
                break;
            }
            case EvTransfer:
                Transfer(c);
                break;
            case EvComplete:
            {
                ref var cmd = ref _commands[c];
                if (!cmd.Posted)
                {
                    cmd.Posted = true;
                    if (_coherentIova[Cq] != 0)
                        Dma(_coherentIova[Cq] + (ulong)_cqTail * CqEntryBytes, write: true);
                    _cqTail = _cqTail + 1 == _queueDepth ? 0 : _cqTail + 1;
                }
                for (int s = 0; s < cmd.Segments; s++)
                {
                    if ((cmd.Mapped & (1 << s)) == 0)
                        continue;
                    if (Budget == 0)
                    {
                        Defer(in ev);
                        return;
                    }
                    cmd.Mapped &= (byte)~(1 << s);
                    cmd.UnmapsLeft++;
                    int i = c * MaxSegments + s;
                    Submit(DmaOpKind.Unmap, _segAddr[i], 0, cmd.SegmentBytes(s), IommuProt.None, i);
                }
                cmd.UnmapsSent = true;
                FinishIfDone(c);
                break;
            }
        }
    }

    /// <summary>The device fetches command <paramref name="c"/>, reads its PRP list if it has one, and moves its data a page at a time.</summary>
    private void Transfer(int c)
    {
        ref var cmd = ref _commands[c];
        if (cmd.Mapped == 0)
        {
            Release(c); // every segment failed to map: the driver fails the request before the device sees it
            return;
        }
        if (_coherentIova[Sq] != 0)
            Dma(_coherentIova[Sq] + (ulong)cmd.SqSlot * SqEntryBytes, write: false);
        if (cmd.Pages > 2 && _coherentIova[PrpPool] != 0)
            Dma(_coherentIova[PrpPool] + ((ulong)cmd.SqSlot << 12), write: false);
        ulong bytes = 0;
        for (int s = 0; s < cmd.Segments; s++)
        {
            if ((cmd.Mapped & (1 << s)) == 0)
                continue;
            ulong iova = _segAddr[c * MaxSegments + s];
            ulong size = cmd.SegmentBytes(s);
            for (ulong offset = 0; offset < size; offset += 4096)
                Dma(iova + offset, write: !cmd.IsWrite);
            bytes += size;
        }
        CountMoved(bytes);
        Schedule(Now + Math.Max(1, bytes / BytesPerNs), EvComplete, c, prio: PrioRelease);
    }

    private void Arrive()
    {
        int c = TakeCommand();
        if (c < 0)
        {
            CountDropped();
            return;
        }
        ref var cmd = ref _commands[c];
        int pages = _fixedPages != 0 ? _fixedPages : 1 << (int)NextBelow(6);
        int segs = 1 + (int)NextBelow((ulong)Math.Min(pages, _maxSeg));
        cmd = new Command { Pages = (ushort)pages, Segments = (byte)segs };
        for (int s = 0; s < segs; s++)
        {
            ulong segPages = cmd.SegmentBytes(s) >> 12;
            _segAddr[c * MaxSegments + s] = Region.Base + (NextBelow(_dataPages - segPages + 1) << 12);
        }
        cmd.IsWrite = !Chance(_readThreshold);
        Schedule(Now, EvStart, c);
    }

    /// <summary>A free command slot (the last freed first, else the lowest never used); -1 when the queue is full.</summary>
    private int TakeCommand()
    {
        if (_freedCount > 0)
            return _freed[--_freedCount];
        if (_fresh == _queueDepth)
            return -1;
        if (_fresh == _commands.Length)
        {
            int size = Math.Min(_queueDepth, 2 * _commands.Length);
            Array.Resize(ref _commands, size);
            Array.Resize(ref _segAddr, size * MaxSegments);
            Array.Resize(ref _freed, size);
        }
        return _fresh++;
    }

    private void Release(int c) => _freed[_freedCount++] = (ushort)c;

    private protected override void OnReply(in PendingOp op, in DmaOpResult result)
    {
        if (op.Tag >= CoherentTagBase)
            _setupAnswered++;
        if (op.Tag >= CoherentTagBase)
        {
            if (result.Error == Errno.None)
            {
                _coherentIova[op.Tag - CoherentTagBase] = result.Iova;
                CoherentMapped++;
            }
            else
            {
                CountDroppedBuffer();
            }
            return;
        }
        int i = op.Tag, c = i / MaxSegments, s = i % MaxSegments;
        ref var cmd = ref _commands[c];
        if (op.Kind == DmaOpKind.DmaMap)
        {
            if (result.Error == Errno.None)
            {
                cmd.Mapped |= (byte)(1 << s);
                _segAddr[i] = result.Iova;
            }
            else
            {
                CountDroppedBuffer();
            }
            cmd.SeenAt = Math.Max(cmd.SeenAt, ReplySeenAt(op, result));
            if (--cmd.MapsLeft == 0)
                Schedule(cmd.SeenAt, EvTransfer, c);
            return;
        }
        cmd.UnmapsLeft--;
        FinishIfDone(c);
    }

    private void FinishIfDone(int c)
    {
        ref var cmd = ref _commands[c];
        if (!cmd.UnmapsSent || cmd.UnmapsLeft != 0)
            return;
        cmd.UnmapsSent = false;
        CountUnit();
        Release(c);
    }
}
