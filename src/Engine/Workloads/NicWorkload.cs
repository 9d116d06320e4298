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
    // Free buffers: those freed and not reused yet (a stack: reused last-in first-out), then the never-used ones
    // from the lowest up. Lazy, so that a device costs what it uses rather than its ring size; a mapped buffer's
    // IOVA travels in its events.
    private int[] _freedRx = new int[8];
    private int[] _freedTx = new int[8];
    private int _freedRxCount;
    private int _freedTxCount;
    private int _freshRx;
    private int _freshTx;
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
        _freshTx = _ring;
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
                Dma(ev.Arg + (NextBelow(BufferSize(b) >> 6) << 6), write: b < _ring);
                Schedule(Now + Math.Max(1, _intervalPs / 1000), EvUnmap, b, arg: ev.Arg, prio: PrioRelease);
                break;
            }
            case EvUnmap:
                if (Budget == 0)
                {
                    Defer(in ev);
                    break;
                }
                Submit(DmaOpKind.Unmap, ev.Arg, 0, BufferSize(ev.Slot), IommuProt.None, ev.Slot);
                break;
        }
    }

    private void Arrive()
    {
        ulong n = _packet++;
        Schedule(ArrivalNs(n + 1), EvArrival);
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
        int b = op.Tag;
        if (op.Kind == DmaOpKind.DmaMap && result.Error == Errno.None)
        {
            Schedule(ReplySeenAt(op, result), EvTransfer, b, arg: result.Iova);
            return;
        }
        if (op.Kind == DmaOpKind.DmaMap)
            CountDroppedBuffer();
        else
            CountUnit();
        if (b < _ring)
            Push(ref _freedRx, ref _freedRxCount, b);
        else
            Push(ref _freedTx, ref _freedTxCount, b);
    }

    /// <summary>A free buffer of the RX or TX ring (the last freed first, else the lowest never used); -1 if none or no budget.</summary>
    private int TakeBuffer(bool rx)
    {
        if (Budget == 0)
            return -1;
        if (rx)
        {
            if (_freedRxCount > 0)
                return _freedRx[--_freedRxCount];
            return _freshRx < _ring ? _freshRx++ : -1;
        }
        if (_freedTxCount > 0)
            return _freedTx[--_freedTxCount];
        return _freshTx < 2 * _ring ? _freshTx++ : -1;
    }

    private static void Push(ref int[] stack, ref int count, int buffer)
    {
        if (count == stack.Length)
            Array.Resize(ref stack, stack.Length * 2);
        stack[count++] = buffer;
    }
}
