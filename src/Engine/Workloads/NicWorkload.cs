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
/// </summary>
public sealed class NicWorkload : DeviceWorkload
{
    /// <summary>RX buffer bytes (a half page, as page-pool drivers use).</summary>
    public const ulong RxBufferBytes = 2048;

    /// <summary>TX buffer bytes.</summary>
    public const ulong TxBufferBytes = 4096;

    private const byte EvArrival = 1;
    private const byte EvTransfer = 2;
    private const byte EvUnmap = 3;

    private readonly ulong _intervalPs;
    private readonly ulong _phasePs;
    private readonly ulong _rxThreshold;
    private readonly int _ring;
    private readonly ulong[] _iova;   // per buffer: its IOVA once mapped
    private readonly int[] _freeRx;
    private readonly int[] _freeTx;
    private int _freeRxCount;
    private int _freeTxCount;
    private ulong _startNs;
    private ulong _packet;            // the next packet's index

    internal NicWorkload(int device, ulong seed, WorkloadOptions options)
        : base(WorkloadFactory.Nic, device, seed, options)
    {
        ulong bits = ((ulong)options.FrameBytes + 38) * 8;
        _intervalPs = Math.Max(1, (ulong)Math.Round(bits * 1000.0 / options.LinkGbps));
        _phasePs = NextBelow(_intervalPs);
        _rxThreshold = Xoshiro256StarStar.Threshold(options.NicRxFraction);
        _ring = options.NicRingSize;
        _iova = new ulong[2 * _ring];
        _freeRx = new int[_ring];
        _freeTx = new int[_ring];
        for (int i = 0; i < _ring; i++)
        {
            _freeRx[i] = _ring - 1 - i;          // lowest buffer first
            _freeTx[i] = 2 * _ring - 1 - i;
        }
        _freeRxCount = _freeTxCount = _ring;
    }

    /// <summary>Picoseconds between two packets (one frame's wire time).</summary>
    public ulong PacketIntervalPs => _intervalPs;

    /// <summary>Packets offered by the link so far (started and dropped).</summary>
    public long Packets => (long)_packet;

    /// <summary>The PA of buffer <paramref name="buffer"/> (RX buffers first, then TX).</summary>
    private ulong BufferPa(int buffer) => Region.Base + ((ulong)buffer << 12);

    private ulong BufferSize(int buffer) => buffer < _ring ? RxBufferBytes : TxBufferBytes;

    private ulong ArrivalNs(ulong n) => _startNs + (ulong)(((UInt128)n * _intervalPs + _phasePs) / 1000);

    private protected override void Start(ulong t0)
    {
        _startNs = t0;
        Schedule(ArrivalNs(0), EvArrival);
    }

    private protected override void Handle(in WorkEvent ev)
    {
        switch (ev.Kind)
        {
            case EvArrival:
                Arrive();
                break;
            case EvTransfer:
            {
                int b = ev.Slot;
                Dma(_iova[b] + (NextBelow(BufferSize(b) >> 6) << 6), write: b < _ring);
                Schedule(Now + Math.Max(1, _intervalPs / 1000), EvUnmap, b, prio: PrioRelease);
                break;
            }
            case EvUnmap:
                if (Budget == 0)
                {
                    Defer(in ev);
                    break;
                }
                Submit(DmaOpKind.Unmap, _iova[ev.Slot], 0, BufferSize(ev.Slot), IommuProt.None, ev.Slot);
                break;
        }
    }

    private void Arrive()
    {
        ulong n = _packet++;
        Schedule(ArrivalNs(n + 1), EvArrival);
        bool rx = Chance(_rxThreshold);
        ref int free = ref rx ? ref _freeRxCount : ref _freeTxCount;
        if (free == 0 || Budget == 0)
        {
            CountDropped();
            return;
        }
        int b = (rx ? _freeRx : _freeTx)[--free];
        Submit(DmaOpKind.DmaMap, 0, BufferPa(b), BufferSize(b), ReadWrite, b);
    }

    private protected override void OnReply(in PendingOp op, in DmaOpResult result)
    {
        int b = op.Tag;
        if (op.Kind == DmaOpKind.DmaMap && result.Error == Errno.None)
        {
            _iova[b] = result.Iova;
            Schedule(ReplySeenAt(op, result), EvTransfer, b);
            return;
        }
        if (op.Kind == DmaOpKind.DmaMap)
            CountDroppedBuffer();
        else
            CountUnit();
        if (b < _ring)
            _freeRx[_freeRxCount++] = b;
        else
            _freeTx[_freeTxCount++] = b;
    }
}
