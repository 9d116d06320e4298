using PtActors.Engine.Dma;

namespace PtActors.Engine.Workloads;

/// <summary>What a device remembers of an operation until its reply.</summary>
/// <param name="Kind">The operation.</param>
/// <param name="StampNs">When it ran.</param>
/// <param name="Tag">The device's own reference (a buffer, a segment, a slot), in [<see cref="PendingOpTable.MinTag"/>, <see cref="PendingOpTable.MaxTag"/>].</param>
internal readonly record struct PendingOp(DmaOpKind Kind, ulong StampNs, int Tag);

/// <summary>
/// A device's outstanding operations by sequence number: a ring of 16-byte slots indexed by <c>seq mod capacity</c>.
/// A device numbers its operations in order and most replies come back within a window, so the outstanding ones are
/// nearly consecutive and each sits in its own slot: adding and removing are one probe, with the ring full. When the
/// outstanding ones spread wider than the ring, an operation whose slot is taken goes to the next free one, and a
/// lookup scans on from its slot (at most the whole ring; free slots do not end the scan, so removals need no
/// tombstones or shifting). The ring starts small and doubles only when full: a device with <c>--inflight</c> N never
/// holds more than N. No allocation once grown. Sequence numbers held at once must be distinct (an operation would
/// have to stay outstanding while 2^32 others are submitted).
/// </summary>
internal sealed class PendingOpTable
{
    /// <summary>The lowest tag the table stores.</summary>
    public const int MinTag = -(1 << 23);

    /// <summary>The highest tag the table stores.</summary>
    public const int MaxTag = (1 << 23) - 1;

    private const int MinCapacity = 4;

    /// <summary>A slot: free when its kind (the low byte of <see cref="TagAndKind"/>) is 0, which no <see cref="DmaOpKind"/> is.</summary>
    private struct Slot
    {
        public ulong StampNs;
        public uint Seq;
        public int TagAndKind; // tag << 8 | kind

        public readonly bool Holds(uint seq) => Seq == seq && !IsFree;

        public readonly bool IsFree => (byte)TagAndKind == 0;
    }

    private Slot[] _slots;
    private int _mask;

    /// <summary>An empty table with room for <paramref name="capacity"/> operations (rounded up to a power of two, at least 4).</summary>
    public PendingOpTable(int capacity = MinCapacity)
    {
        int size = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(MinCapacity, capacity));
        _slots = new Slot[size];
        _mask = size - 1;
    }

    /// <summary>Operations held.</summary>
    public int Count { get; private set; }

    /// <summary>Operations it can hold before it grows.</summary>
    public int Capacity => _slots.Length;

    /// <summary>Remembers <paramref name="op"/> as operation <paramref name="seq"/> (not outstanding already).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The tag is out of range, or the kind is not a <see cref="DmaOpKind"/>.</exception>
    public void Add(uint seq, in PendingOp op)
    {
        if (op.Tag < MinTag || op.Tag > MaxTag)
            throw new ArgumentOutOfRangeException(nameof(op), op.Tag, $"Tags are {MinTag} to {MaxTag}.");
        if (op.Kind == 0)
            throw new ArgumentOutOfRangeException(nameof(op), op.Kind, "Not an operation kind.");
        if (Count == _slots.Length)
            Grow();
        Place(new Slot { StampNs = op.StampNs, Seq = seq, TagAndKind = (op.Tag << 8) | (byte)op.Kind });
        Count++;
    }

    /// <summary>Forgets operation <paramref name="seq"/>, returning what was remembered of it; false if it is not outstanding.</summary>
    public bool Remove(uint seq, out PendingOp op)
    {
        int i = Find(seq);
        if (i < 0)
        {
            op = default;
            return false;
        }
        ref var slot = ref _slots[i];
        op = new PendingOp((DmaOpKind)(byte)slot.TagAndKind, slot.StampNs, slot.TagAndKind >> 8);
        slot = default;
        Count--;
        return true;
    }

    /// <summary>Whether operation <paramref name="seq"/> is outstanding.</summary>
    public bool Contains(uint seq) => Find(seq) >= 0;

    /// <summary>The slot holding <paramref name="seq"/>, or -1.</summary>
    private int Find(uint seq)
    {
        var slots = _slots;
        int mask = _mask;
        int i = (int)seq & mask;
        if (slots[i].Holds(seq))
            return i;
        for (int probes = 1; probes < slots.Length; probes++)
        {
            i = (i + 1) & mask;
            if (slots[i].Holds(seq))
                return i;
        }
        return -1;
    }

    /// <summary>Puts <paramref name="slot"/> in its own slot or the next free one (the caller made room).</summary>
    private void Place(in Slot slot)
    {
        var slots = _slots;
        int i = (int)slot.Seq & _mask;
        while (!slots[i].IsFree)
            i = (i + 1) & _mask;
        slots[i] = slot;
    }

    private void Grow()
    {
        var old = _slots;
        _slots = new Slot[old.Length * 2];
        _mask = _slots.Length - 1;
        foreach (var s in old)
        {
            if (!s.IsFree)
                Place(in s);
        }
    }
}
