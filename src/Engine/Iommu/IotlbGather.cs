namespace PtActors.Engine;

/// <summary>
/// struct iommu_iotlb_gather: the IOVA range an IOTLB flush must cover, the page-size hint, and the table
/// pages that may only be freed after that flush. <see cref="IommuDomain.IotlbSync"/> flushes it, frees
/// the parked pages and re-initialises it. Reused across operations; it allocates only while its free
/// list grows past its high-water mark.
/// </summary>
public sealed class IotlbGather
{
    private int[] _freeList = new int[4];

    /// <summary>Creates an initialised (empty) gather.</summary>
    public IotlbGather() => Init();

    /// <summary>IOVA start of the range to flush (ulong.MaxValue when nothing was recorded).</summary>
    public ulong Start { get; private set; }

    /// <summary>Inclusive end of the range to flush.</summary>
    public ulong End { get; private set; }

    /// <summary>Flush granule; 0 when unset.</summary>
    public ulong PgSize { get; set; }

    /// <summary>The flush will be done later by a flush-all (the DMA flush queue).</summary>
    public bool Queued { get; set; }

    /// <summary>Table pages parked on this gather.</summary>
    public int FreeCount { get; private set; }

    /// <summary>The parked table pages (page indices in the domain's <see cref="TableMemory"/>).</summary>
    public ReadOnlySpan<int> FreeList => _freeList.AsSpan(0, FreeCount);

    /// <summary>True when a range has been recorded (start &lt;= end).</summary>
    public bool HasRange => Start <= End;

    /// <summary>True when a sync would have something to do: a range recorded or pages parked.</summary>
    public bool IsPending => Start <= End || FreeCount > 0;

    /// <summary>iommu_iotlb_gather_init. Parked pages are dropped from the list (the caller frees them first).</summary>
    public void Init()
    {
        Start = ulong.MaxValue;
        End = 0;
        PgSize = 0;
        Queued = false;
        FreeCount = 0;
    }

    /// <summary>
    /// iommu_iotlb_gather_is_disjoint: an empty gather is never disjoint and adjacent ranges are not
    /// disjoint; <c>end + 1</c> wraps as in C.
    /// </summary>
    public bool IsDisjoint(ulong iova, ulong size)
    {
        ulong start = iova, end = iova + size - 1;
        return End != 0 && (end + 1 < Start || start > End + 1);
    }

    /// <summary>iommu_iotlb_gather_add_range (unsigned 64-bit; size 0 records end = iova - 1).</summary>
    public void AddRange(ulong iova, ulong size)
    {
        ulong end = iova + size - 1;
        if (Start > iova)
            Start = iova;
        if (End < end)
            End = end;
    }

    /// <summary>Parks one table page.</summary>
    public void AddFreePage(int page)
    {
        if (FreeCount == _freeList.Length)
            Array.Resize(ref _freeList, _freeList.Length * 2);
        _freeList[FreeCount++] = page;
    }

    /// <summary>Moves every page of <paramref name="pages"/> onto this gather (iommu_pages_list_splice).</summary>
    public void Splice(PageList pages)
    {
        var span = pages.Items;
        for (int i = 0; i < span.Length; i++)
            AddFreePage(span[i]);
        pages.Clear();
    }

    /// <summary>Moves the parked pages to <paramref name="target"/> and leaves this gather's list empty.</summary>
    public void TakeFreeList(PageList target)
    {
        for (int i = 0; i < FreeCount; i++)
            target.Add(_freeList[i]);
        FreeCount = 0;
    }
}

/// <summary>A reusable list of table page indices (iommu_pages_list).</summary>
public sealed class PageList
{
    private int[] _items = new int[8];

    /// <summary>Number of pages on the list.</summary>
    public int Count { get; private set; }

    /// <summary>The pages.</summary>
    public ReadOnlySpan<int> Items => _items.AsSpan(0, Count);

    /// <summary>Adds a page.</summary>
    public void Add(int page)
    {
        if (Count == _items.Length)
            Array.Resize(ref _items, _items.Length * 2);
        _items[Count++] = page;
    }

    /// <summary>Empties the list.</summary>
    public void Clear() => Count = 0;
}
