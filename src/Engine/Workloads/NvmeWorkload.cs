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

    private readonly ulong _meanIntervalNs;
    private readonly ulong _readThreshold;
    private readonly int _maxSeg;
    private readonly ulong _regionPages;
    private readonly int _queueDepth;

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
        public byte PagesLg2;      // its size: 4 KiB << PagesLg2, split over Segments
        public byte Segments;
        public byte MapsLeft;
        public byte UnmapsLeft;
        public byte Mapped;        // bit s: segment s is mapped and not yet being unmapped
        public bool UnmapsSent;
        public bool IsWrite;

        /// <summary>Bytes of segment <paramref name="s"/>: whole pages, the first (pages mod segments) one page larger.</summary>
        public readonly ulong SegmentBytes(int s)
        {
            int pages = 1 << PagesLg2;
            int segPages = pages / Segments + (s < pages % Segments ? 1 : 0);
            return (ulong)segPages << 12;
        }
    }

    internal NvmeWorkload(int device, ulong seed, WorkloadOptions options)
        : base(WorkloadFactory.Nvme, device, seed, options)
    {
        _meanIntervalNs = Math.Max(1, 1_000_000_000UL / (ulong)options.NvmeIops);
        _readThreshold = Xoshiro256StarStar.Threshold(options.NvmeReadFraction);
        _maxSeg = Math.Min(MaxSegments, options.Inflight);
        _regionPages = Region.Size >> 12;
        _queueDepth = options.NvmeQueueDepth;
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
            {
                ref var cmd = ref _commands[c];
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
                break;
            }
            case EvTransfer:
            {
                ref var cmd = ref _commands[c];
                ulong bytes = 0;
                for (int s = 0; s < cmd.Segments; s++)
                {
                    if ((cmd.Mapped & (1 << s)) == 0)
                        continue;
                    ulong size = cmd.SegmentBytes(s);
                    DmaInto(_segAddr[c * MaxSegments + s], size, write: !cmd.IsWrite);
                    bytes += size;
                }
                if (bytes == 0)
                {
                    Release(c); // every segment failed to map: nothing to transfer or unmap
                    break;
                }
                Schedule(Now + Math.Max(1, bytes / BytesPerNs), EvComplete, c, prio: PrioRelease);
                break;
            }
            case EvComplete:
            {
                ref var cmd = ref _commands[c];
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

    private void Arrive()
    {
        int c = TakeCommand();
        if (c < 0)
        {
            CountDropped();
            return;
        }
        ref var cmd = ref _commands[c];
        int pagesLg2 = (int)NextBelow(6);
        ulong pages = 1UL << pagesLg2;
        int segs = 1 + (int)NextBelow(Math.Min(pages, (ulong)_maxSeg));
        cmd = new Command { PagesLg2 = (byte)pagesLg2, Segments = (byte)segs };
        for (int s = 0; s < segs; s++)
        {
            ulong segPages = cmd.SegmentBytes(s) >> 12;
            _segAddr[c * MaxSegments + s] = Region.Base + (NextBelow(_regionPages - segPages + 1) << 12);
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
