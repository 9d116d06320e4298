namespace PtActors.Engine;

/// <summary>
/// The writes the IOMMU hardware made into a domain's table pages (today: dirty bits its DMA walks set), in the
/// order it made them, so that whoever owns the table can make them part of its durable history. Each entry is
/// one table item, packed as <c>page &lt;&lt; 9 | index</c> (<see cref="Pack"/>). Only a write that changed the
/// item is recorded: replaying the log over the same table in order gives the same bytes.
/// </summary>
/// <remarks>Written by the hardware model and taken by the table's owner at points where the two never run at once.</remarks>
public sealed class HardwareWriteLog
{
    private long[] _items = new long[16];

    /// <summary>Entries recorded since the last <see cref="Take"/>.</summary>
    public int Count { get; private set; }

    /// <summary>One item: its table page and its index in that page.</summary>
    public static long Pack(int page, int index) => ((long)page << 9) | (uint)index;

    /// <summary>The page and index of a packed entry.</summary>
    public static (int Page, int Index) Unpack(long entry) => ((int)(entry >> 9), (int)(entry & (TableMemory.ItemsPerPage - 1)));

    /// <summary>Records that the hardware set the dirty bit of item <paramref name="index"/> of <paramref name="page"/>.</summary>
    public void AddDirty(int page, int index)
    {
        if (Count == _items.Length)
            Array.Resize(ref _items, 2 * _items.Length);
        _items[Count++] = Pack(page, index);
    }

    /// <summary>The entries recorded since the last <see cref="Take"/> or <see cref="Clear"/>, in order; the log keeps them.</summary>
    public long[] Peek() => Count == 0 ? [] : _items.AsSpan(0, Count).ToArray();

    /// <summary>Forgets the entries recorded (once what <see cref="Peek"/> gave is durable elsewhere).</summary>
    public void Clear() => Count = 0;

    /// <summary>The entries recorded since the last call, in order; the log is empty afterwards.</summary>
    public long[] Take()
    {
        if (Count == 0)
            return [];
        var taken = _items.AsSpan(0, Count).ToArray();
        Count = 0;
        return taken;
    }
}
