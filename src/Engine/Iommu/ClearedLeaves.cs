namespace PtActors.Engine;

/// <summary>
/// One translation an unmap removed: [<c>Iova</c>, +<c>Size</c>) went to [<c>Pa</c>, +<c>Size</c>) with
/// <c>Prot</c>. Adjacent leaves that continue each other (IOVA and PA contiguous, same permissions) are one segment.
/// </summary>
public readonly record struct LeafSegment(ulong Iova, ulong Size, ulong Pa, IommuProt Prot)
{
    /// <summary>True when <paramref name="iova"/> lies in the segment.</summary>
    public bool Covers(ulong iova) => iova >= Iova && iova - Iova < Size;
}

/// <summary>
/// The leaves an unmap walk cleared, in IOVA order, merged into <see cref="LeafSegment"/>s: set as a domain's
/// <see cref="IommuDomain.ClearedLeaves"/> around an unmap to learn what the table translated before it (the
/// pre-state a DMA stamped before that unmap must still see). Reused from unmap to unmap; it allocates only
/// while it grows past its high-water mark.
/// </summary>
public sealed class ClearedLeaves
{
    private LeafSegment[] _items = new LeafSegment[4];

    /// <summary>Segments recorded since <see cref="Clear"/>.</summary>
    public int Count { get; private set; }

    /// <summary>The segments, in IOVA order.</summary>
    public ReadOnlySpan<LeafSegment> Segments => _items.AsSpan(0, Count);

    /// <summary>Empties it.</summary>
    public void Clear() => Count = 0;

    /// <summary>Records one cleared leaf of 2^<paramref name="sizeLg2"/> bytes (merged with the previous one when it continues it).</summary>
    public void Add(ulong iova, int sizeLg2, ulong pa, IommuProt prot)
    {
        ulong size = 1UL << sizeLg2;
        if (Count > 0)
        {
            ref var last = ref _items[Count - 1];
            if (last.Prot == prot && last.Iova + last.Size == iova && last.Pa + last.Size == pa)
            {
                last = last with { Size = last.Size + size };
                return;
            }
        }
        if (Count == _items.Length)
            Array.Resize(ref _items, 2 * _items.Length);
        _items[Count++] = new LeafSegment(iova, size, pa, prot);
    }
}
