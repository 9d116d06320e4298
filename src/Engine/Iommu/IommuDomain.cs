using PtActors.Engine.Formats;

namespace PtActors.Engine;

/// <summary>What an IOTLB sync did: nothing, a range invalidation, or a flush of the whole domain.</summary>
public enum FlushKind : byte
{
    None,
    Range,
    All,
}

/// <summary>The result of one <see cref="IommuDomain.IotlbSync"/>: the flush issued and the table pages it freed.</summary>
public readonly record struct IotlbFlush(FlushKind Kind, ulong Start, ulong End, int FreedPages);

/// <summary>
/// The driver side of an IOTLB sync (the iotlb_sync domain op): it sees each flush before the gather's
/// table pages are freed. The hardware model hangs its invalidations here.
/// </summary>
public interface IIotlbSyncHandler
{
    /// <summary>Called with the gather about to be flushed; its parked pages are freed right after.</summary>
    void OnIotlbSync(IommuDomain domain, IotlbGather gather, FlushKind kind);
}

/// <summary>Receives the dirty runs of <see cref="IommuDomain.ReadAndClearDirty"/> (iova_bitmap_set).</summary>
public interface IDirtySink
{
    /// <summary>Records <paramref name="length"/> dirty bytes of IOVA at <paramref name="iova"/>.</summary>
    void Set(ulong iova, ulong length);
}

/// <summary>An inclusive VA range.</summary>
public readonly record struct VaRange(ulong Va, ulong Last);

/// <summary>
/// One paging domain: an iommupt page table of one format plus the iommu core's wrappers around it.
/// The page-table operations (<see cref="MapPages"/>, <see cref="UnmapPages"/>, ...) have the exact
/// results of iommu_pt.h; the core wrappers (<see cref="IommuMap"/>, <see cref="IommuUnmap"/>, ...) those
/// of the 6.19 iommu.c. Create one with <see cref="Create"/>. Not thread-safe: one owner mutates it.
/// </summary>
public abstract partial class IommuDomain
{
    private IotlbGather? _pendingGather;

    private protected IommuDomain(TableMemory memory, in PtConfig config)
    {
        Memory = memory;
        Config = config;
    }

    /// <summary>The memory the table pages live in.</summary>
    public TableMemory Memory { get; }

    /// <summary>The cfg the domain was created from.</summary>
    public PtConfig Config { get; }

    /// <summary>The format.</summary>
    public abstract PtFormatKind Format { get; }

    /// <summary>The format's name.</summary>
    public abstract string FormatName { get; }

    /// <summary>The format's item layer, for callers that inspect table pages directly.</summary>
    public PtFormatOps FormatOps => PtFormatOps.For(Format);

    /// <summary>Features as pt_feature() answers them: enabled and supported, plus the forced ones.</summary>
    public PtFeatures Features { get; private protected set; }

    /// <summary>common.max_vasz_lg2 (with DYNAMIC_TOP the most the table can grow to).</summary>
    public int MaxVaszLg2 { get; private protected set; }

    /// <summary>common.max_oasz_lg2.</summary>
    public int MaxOaszLg2 { get; private protected set; }

    /// <summary>The current top level (inclusive: a 4-level table has top level 3).</summary>
    public int TopLevel { get; private protected set; }

    /// <summary>The page holding the top table.</summary>
    public int TopPage { get; private protected set; }

    /// <summary>Physical address of the top table.</summary>
    public ulong TopPa => Memory.PageToPa(TopPage);

    /// <summary>domain.pgsize_bitmap. A caller may narrow it, as the core may (the benchmark does).</summary>
    public ulong PgsizeBitmap { get; set; }

    /// <summary>Table pages this domain holds now: the top, every reachable table, and pages parked on gathers.</summary>
    public int TablePages { get; private protected set; }

    /// <summary>The driver's iotlb_sync hook; null frees pages only (the kunit harness).</summary>
    public IIotlbSyncHandler? SyncHandler { get; set; }

    /// <summary>Called when the top level grows (driver_ops.change_top); no flush is implied.</summary>
    public Action<IommuDomain>? TopChanged { get; set; }

    /// <summary>The domain's own pending gather, for callers that batch unmaps (<c>unmap_fast</c>).</summary>
    public IotlbGather PendingGather => _pendingGather ??= new IotlbGather();

    /// <summary>True when the pending gather exists and holds something.</summary>
    public bool HasPendingGather => _pendingGather is { IsPending: true };

    /// <summary>pt_top_range: the VA range of the current top (the lower half when sign-extended).</summary>
    public abstract VaRange TopRange { get; }

    /// <summary>pt_upper_range (sign-extended tables only; otherwise null).</summary>
    public abstract VaRange? UpperRange { get; }

    /// <summary>max_vasz_lg2 of the current top range.</summary>
    public abstract int TopRangeVaszLg2 { get; }

    /// <summary>pt_feature.</summary>
    public bool HasFeature(PtFeatures feature) => (Features & feature) == feature;

    /// <summary>
    /// pt_iommu_&lt;fmt&gt;_init: validates <paramref name="config"/> exactly as the kernel does and allocates the
    /// top table. On failure nothing is allocated and <paramref name="domain"/> is null.
    /// </summary>
    public static Errno Create(in PtConfig config, TableMemory memory, out IommuDomain? domain)
    {
        domain = null;
        IommuDomain d = config.Format switch
        {
            PtFormatKind.Amdv1 => new PageTable<Amdv1Format>(memory, config),
            PtFormatKind.X86_64 => new PageTable<X86_64Format>(memory, config),
            PtFormatKind.Vtdss => new PageTable<VtdssFormat>(memory, config),
            PtFormatKind.Riscv64 => new PageTable<Riscv64Format>(memory, config),
            _ => throw new ArgumentOutOfRangeException(nameof(config)),
        };
        var err = d.Init();
        if (err != Errno.None)
            return err;
        domain = d;
        return Errno.None;
    }

    private protected abstract Errno Init();

    /// <summary>The domain's own state (its memory is captured separately, see <see cref="TableMemory.Capture"/>).</summary>
    public DomainSnapshot Capture() => new(Config, TopLevel, TopPage, PgsizeBitmap, TablePages);

    /// <summary>
    /// Rebuilds a domain over <paramref name="memory"/> (restored from the same point) from its snapshot: the cfg is
    /// validated again exactly as init does, then the top, level, bitmap and page count are taken over.
    /// </summary>
    public static Errno Restore(DomainSnapshot snapshot, TableMemory memory, out IommuDomain? domain)
    {
        domain = null;
        IommuDomain d = snapshot.Config.Format switch
        {
            PtFormatKind.Amdv1 => new PageTable<Amdv1Format>(memory, snapshot.Config),
            PtFormatKind.X86_64 => new PageTable<X86_64Format>(memory, snapshot.Config),
            PtFormatKind.Vtdss => new PageTable<VtdssFormat>(memory, snapshot.Config),
            PtFormatKind.Riscv64 => new PageTable<Riscv64Format>(memory, snapshot.Config),
            _ => throw new ArgumentOutOfRangeException(nameof(snapshot)),
        };
        var err = d.InitState();
        if (err != Errno.None)
            return err;
        if (!memory.IsAllocated(snapshot.TopPage))
            throw new ArgumentException($"Snapshot top page {snapshot.TopPage} is not allocated in the restored memory.", nameof(snapshot));
        d.TopLevel = snapshot.TopLevel;
        d.TopPage = snapshot.TopPage;
        d.PgsizeBitmap = snapshot.PgsizeBitmap;
        d.TablePages = snapshot.TablePages;
        domain = d;
        return Errno.None;
    }

    /// <summary>Init without allocating the top: the validation and the derived fields.</summary>
    private protected abstract Errno InitState();

    /// <summary>
    /// Feeds a canonical form of the table to <paramref name="hash"/>: format, top level, then a depth-first walk
    /// writing every present item as (level, index, value) with child-table addresses replaced by their walk
    /// order and accessed/dirty bits cleared — equal mappings hash equal whatever the allocation history.
    /// </summary>
    public abstract void WriteCanonical(IByteSink sink);

    /// <summary>Feeds <see cref="WriteCanonical(IByteSink)"/>'s form to <paramref name="hash"/>.</summary>
    public void WriteCanonical(System.Security.Cryptography.IncrementalHash hash) => WriteCanonical(new HashSink(hash));

    /// <summary>Appends <see cref="WriteMemory(IByteSink)"/>'s image to <paramref name="hash"/>.</summary>
    public void WriteMemory(System.Security.Cryptography.IncrementalHash hash) => WriteMemory(new HashSink(hash));

    /// <summary>
    /// Appends the table's memory exactly as it is to <paramref name="hash"/>: format, top level and page, how many
    /// pages the memory has created, then every allocated page's number and its 4 KiB (accessed and dirty bits
    /// and page numbers included). Equal only for byte-identical tables with the same allocation state, which is
    /// what a recovery must rebuild.
    /// </summary>
    public void WriteMemory(IByteSink hash)
    {
        Span<byte> head = stackalloc byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(head, (int)Format);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(head[4..], TopLevel);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(head[8..], TopPage);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(head[12..], Memory.TotalPages);
        hash.Append(head);
        Span<byte> number = stackalloc byte[4];
        for (int page = 0; page < Memory.TotalPages; page++)
        {
            if (!Memory.IsAllocated(page))
                continue;
            System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(number, page);
            hash.Append(number);
            hash.Append(System.Runtime.InteropServices.MemoryMarshal.AsBytes(Memory[page].AsSpan()));
        }
    }

    /// <summary>
    /// map_pages: install <paramref name="pgsize"/> × <paramref name="pgcount"/> bytes at <paramref name="iova"/>.
    /// Adds the bytes installed to <paramref name="mapped"/> (never zeroes it), also on failure.
    /// </summary>
    public abstract Errno MapPages(ulong iova, ulong paddr, ulong pgsize, ulong pgcount, IommuProt prot, ref ulong mapped);

    /// <summary>
    /// unmap_pages: the recursive range walk of the seed patch. Returns the bytes of VA unmapped
    /// (<c>iova + result</c> is where it stopped; may exceed the request), never an error.
    /// Freed table pages go onto <paramref name="gather"/>.
    /// </summary>
    public abstract ulong UnmapPages(ulong iova, ulong pgsize, ulong pgcount, IotlbGather gather);

    /// <summary>
    /// The engine's iova_to_phys: <see cref="Errno.None"/> with the full output address, <see cref="Errno.ENOENT"/>
    /// when nothing maps <paramref name="iova"/>, <see cref="Errno.ERANGE"/> outside the table's range.
    /// </summary>
    public abstract Errno TryIovaToPhys(ulong iova, out ulong pa);

    /// <summary>read_and_clear_dirty: report (and unless <paramref name="noClear"/>, clear) the write-dirty leaves.</summary>
    public abstract Errno ReadAndClearDirty(ulong iova, ulong size, bool noClear, IDirtySink? sink);

    /// <summary>set_dirty: set the dirty bit of the one item translating <paramref name="iova"/>.</summary>
    public abstract Errno SetDirty(ulong iova);

    /// <summary>
    /// Counts every present leaf entry of the whole table (both halves when sign-extended); a contiguous
    /// entry counts once in the bucket of its full size. <paramref name="bySizeLg2"/> needs 64 slots.
    /// </summary>
    public abstract long CountLeaves(Span<long> bySizeLg2);

    /// <summary>
    /// Visits every present leaf entry of the whole table in VA order: (entry VA, entry size lg2, first item).
    /// </summary>
    public abstract void ForEachLeaf(Action<ulong, int, ulong> visit);

    /// <summary>
    /// The IOMMU's own walk for a DMA: reads PTEs through the format's decode, starting at the top or at the
    /// table the walk cache gave, touching no walk state of the domain (it may run beside a map or unmap).
    /// </summary>
    public abstract void WalkForDma(ref DmaWalk walk);

    /// <summary>
    /// Sets the hardware dirty bit of the item a DMA write hit (formats that track dirty bits) — only while that
    /// item is still the present leaf at <paramref name="level"/> starting at <paramref name="entryOa"/> that the
    /// translation came from. A write through a stale IOTLB entry whose leaf was cleared (or replaced) since
    /// sets nothing: the hardware's atomic A/D update never turns an empty item into a non-empty one.
    /// </summary>
    public abstract void SetItemDirty(int page, int index, int level, ulong entryOa);

    /// <summary>
    /// Where the hardware's writes into this table are recorded (<see cref="HardwareSetDirty"/>), or null when
    /// nobody keeps them (a table that is never recovered from a journal).
    /// </summary>
    public HardwareWriteLog? HardwareWrites { get; set; }

    /// <summary>
    /// While set, every leaf an unmap walk clears is recorded here (with the translation it held), in IOVA order;
    /// null (the default) records nothing.
    /// </summary>
    public ClearedLeaves? ClearedLeaves { get; set; }

    /// <summary>
    /// A DMA write through item <paramref name="index"/> of <paramref name="page"/>: the hardware sets its dirty
    /// bit (<see cref="SetItemDirty"/>, only while it is still the leaf the translation came from) and, when that
    /// changed the item, records the write in
    /// <see cref="HardwareWrites"/>.
    /// </summary>
    public void HardwareSetDirty(int page, int index, int level, ulong entryOa)
    {
        var log = HardwareWrites;
        if (log is null)
        {
            SetItemDirty(page, index, level, entryOa);
            return;
        }
        ulong before = Memory[page][index];
        SetItemDirty(page, index, level, entryOa);
        if (Memory[page][index] != before)
            log.AddDirty(page, index);
    }

    /// <summary>
    /// Sets the dirty bit of item <paramref name="index"/> of <paramref name="page"/> as it is (formats that track
    /// dirty bits): for replaying a <see cref="HardwareWriteLog"/>, whose entries were checked when made.
    /// </summary>
    public abstract void ReplayItemDirty(int page, int index);

    /// <summary>
    /// Applies a log of hardware writes (<see cref="HardwareWriteLog.Take"/>) again, in order: recovery makes the
    /// table what the hardware left it. Throws when an entry names no allocated table page (a log that does not
    /// belong to this table).
    /// </summary>
    public void ApplyHardwareWrites(ReadOnlySpan<long> writes)
    {
        foreach (long w in writes)
        {
            var (page, index) = HardwareWriteLog.Unpack(w);
            if (w < 0 || !Memory.IsAllocated(page))
                throw new InvalidOperationException($"A hardware write names table page {page}, which is not allocated.");
            ReplayItemDirty(page, index);
        }
    }

    /// <summary>
    /// Appends the top page and every table page reachable from it, each as often as the table links it (a page
    /// linked twice appears twice), in walk order. Changes nothing.
    /// </summary>
    public abstract void CollectTablePages(List<int> pages);

    /// <summary>deinit: frees the top and every reachable table page. The domain is unusable afterwards.</summary>
    public abstract void Deinit();

    /// <summary>
    /// iommu_iotlb_sync: the driver flushes what the gather recorded, then the parked table pages are freed
    /// and the gather is re-initialised.
    /// </summary>
    public IotlbFlush IotlbSync(IotlbGather gather)
    {
        var kind = gather.IsPending ? SyncFlushKind : FlushKind.None;
        SyncHandler?.OnIotlbSync(this, gather, kind);
        var pages = gather.FreeList;
        for (int i = 0; i < pages.Length; i++)
            FreeTable(pages[i]);
        var result = new IotlbFlush(kind, gather.Start, gather.End, pages.Length);
        gather.Init();
        return result;
    }

    /// <summary>How a sync of this domain flushes: one range with a flush-range feature, everything without.</summary>
    public FlushKind SyncFlushKind
        => (Features & (PtFeatures.FlushRange | PtFeatures.FlushRangeNoGaps)) != 0 ? FlushKind.Range : FlushKind.All;

    /// <summary>
    /// gather_range_pending (the later gather_range_pages): unless the gather is queued, a NO_GAPS table
    /// first syncs a pending range that the new one does not touch, then the range is always recorded;
    /// the freed pages are always parked.
    /// </summary>
    private protected void GatherRangePages(IotlbGather gather, ulong iova, ulong len, PageList freeList)
    {
        if (!gather.Queued)
        {
            if ((Features & PtFeatures.FlushRangeNoGaps) != 0 && gather.IsDisjoint(iova, len))
                IotlbSync(gather);
            gather.AddRange(iova, len);
        }
        gather.Splice(freeList);
    }

    /// <summary>
    /// Frees table pages that a flush queue held past the flush that covered them (pages taken off a gather
    /// with <see cref="IotlbGather.TakeFreeList"/>).
    /// </summary>
    public void ReleaseTablePages(PageList pages)
    {
        var items = pages.Items;
        for (int i = 0; i < items.Length; i++)
            FreeTable(items[i]);
        pages.Clear();
    }

    /// <summary>Allocates a table page for this domain; -1 when memory is exhausted.</summary>
    private protected int AllocTable()
    {
        int page = Memory.Allocate();
        if (page >= 0)
            TablePages++;
        return page;
    }

    /// <summary>Returns a table page of this domain to the allocator.</summary>
    private protected void FreeTable(int page)
    {
        Memory.Free(page);
        TablePages--;
    }
}
