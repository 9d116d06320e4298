using PtActors.Engine.Formats;
using Xunit;

namespace PtActors.Engine.Tests.Kunit;

/// <summary>
/// struct pt_range as the kunit walks use it: the VA span being walked plus the top it is walked from.
/// <see cref="MaxVaszLg2"/> is the range's own max_vasz_lg2 (that of the top, SPEC §1.7).
/// </summary>
public readonly record struct PtRange(ulong Va, ulong LastVa, int TopLevel, int MaxVaszLg2)
{
    /// <summary>pt_range_to_index for a table at <paramref name="level"/> on the path of <see cref="Va"/>.</summary>
    public int ToIndex(int level)
    {
        int isz = PtGeometry.ItemLg2(level);
        return level == TopLevel
            ? (int)(Log2.Mod(Va, MaxVaszLg2) >> isz)
            : (int)Log2.Mod(Va >> isz, PtGeometry.NumItemsLg2);
    }

    /// <summary>pt_range_to_end_index (exclusive).</summary>
    public int ToEndIndex(int level)
    {
        int isz = PtGeometry.ItemLg2(level);
        if (Va == LastVa)
            return ToIndex(level) + 1;
        if (level == TopLevel)
            return (int)(Log2.Mod(LastVa, MaxVaszLg2) >> isz) + 1;
        if (Log2.DivEq(Va, LastVa, PtGeometry.NumItemsLg2 + isz))
            return (int)Log2.Mod(LastVa >> isz, PtGeometry.NumItemsLg2) + 1;
        return PtGeometry.NumItems;
    }
}

/// <summary>
/// struct kunit_iommu_priv and the helpers of kunit_iommu.h / kunit_iommu_pt.h: one domain initialised the way
/// pt_kunit_priv_init does it, the values it derives (smallest page size, test_oa, safe_pgsize_bitmap), and
/// do_map / do_unmap / check_iova / count_valids.
/// </summary>
public sealed class KunitPriv
{
    /// <summary>kunit test_oa before it is reduced to max_oasz_lg2.</summary>
    public const ulong TestOaPattern = 0x74a71445deadbeef;

    /// <summary>IOMMU_READ | IOMMU_WRITE, what do_map maps with.</summary>
    public const IommuProt ReadWrite = IommuProt.Read | IommuProt.Write;

    private KunitPriv(string name, PtConfig cfg, TableMemory memory, IommuDomain domain)
    {
        Name = name;
        Cfg = cfg;
        Memory = memory;
        Domain = domain;
        Ops = domain.FormatOps;

        // info.pgsize_bitmap (size_t is 64 bits here, so the truncation is a no-op).
        PgsizeBitmap = domain.PgsizeBitmap;
        SmallestPgszLg2 = Log2.Ffs(PgsizeBitmap);
        SmallestPgsz = Log2.ToInt(SmallestPgszLg2);
        LargestPgszLg2 = Log2.Fls(PgsizeBitmap) - 1;
        TestOa = Log2.Mod(TestOaPattern, domain.MaxOaszLg2);
        // "We run out of VA space if the mappings get too big" (va_lg2sz is capped at 32 on 32-bit only).
        SafePgsizeBitmap = Log2.Mod(PgsizeBitmap, domain.MaxVaszLg2 - 1);
    }

    /// <summary>The kunit parameter name (<c>amdv1_cfg_0</c>, ...).</summary>
    public string Name { get; }

    /// <summary>The cfg handed to init.</summary>
    public PtConfig Cfg { get; }

    /// <summary>The table memory; fresh per test, so its page count is NR_SECONDARY_PAGETABLE's delta.</summary>
    public TableMemory Memory { get; }

    /// <summary>The domain (priv->domain / priv->common).</summary>
    public IommuDomain Domain { get; }

    /// <summary>The format layer.</summary>
    public PtFormatOps Ops { get; }

    /// <summary>priv->info.pgsize_bitmap.</summary>
    public ulong PgsizeBitmap { get; }

    /// <summary>priv->smallest_pgsz_lg2.</summary>
    public int SmallestPgszLg2 { get; }

    /// <summary>priv->smallest_pgsz.</summary>
    public ulong SmallestPgsz { get; }

    /// <summary>priv->largest_pgsz_lg2.</summary>
    public int LargestPgszLg2 { get; }

    /// <summary>priv->test_oa.</summary>
    public ulong TestOa { get; }

    /// <summary>priv->safe_pgsize_bitmap.</summary>
    public ulong SafePgsizeBitmap { get; }

    /// <summary>pt_feature(common, PT_FEAT_SIGN_EXTEND).</summary>
    public bool SignExtend => Domain.HasFeature(PtFeatures.SignExtend);

    /// <summary>
    /// pt_kunit_priv_init: init must succeed (-EOVERFLOW, "This configuration cannot be tested on 32 bit", cannot
    /// happen on a 64-bit host).
    /// </summary>
    public static KunitPriv Init(string name)
    {
        var cfg = KunitCfgs.Get(name);
        var memory = new TableMemory();
        var err = IommuDomain.Create(cfg, memory, out var domain);
        if (err != Errno.None || domain is null)
            Assert.Fail($"{name}: pt_iommu_init returned {err}");
        return new KunitPriv(name, cfg, memory, domain!);
    }

    /// <summary>
    /// One case of the iommu suite: pt_kunit_iommu_init, the test, then pt_kunit_iommu_exit, which deinits the
    /// domain and asserts that no table page leaked (NR_SECONDARY_PAGETABLE back to its value before init).
    /// A test that skips returns early and still gets the exit check, as in kunit.
    /// </summary>
    public static void RunIommu(string name, Action<KunitPriv> test)
    {
        var priv = Init(name);
        test(priv);
        priv.Domain.Deinit();
        Assert.Equal(0, priv.Memory.AllocatedPages);
    }

    /// <summary>One case of the format suite: pt_kunit_generic_pt_init, the test, pt_kunit_generic_pt_exit (deinit only).</summary>
    public static void RunFmt(string name, Action<KunitPriv> test)
    {
        var priv = Init(name);
        test(priv);
        priv.Domain.Deinit();
    }

    /// <summary>pt_top_range(common).</summary>
    public PtRange TopRange()
    {
        var top = Domain.TopRange;
        return new PtRange(top.Va, top.Last, Domain.TopLevel, Domain.TopRangeVaszLg2);
    }

    /// <summary>pt_upper_range(common): the sign-extended upper half, or the top range without SIGN_EXTEND.</summary>
    public PtRange UpperRange()
    {
        var top = TopRange();
        return Domain.UpperRange is { } upper ? top with { Va = upper.Va, LastVa = upper.Last } : top;
    }

    /// <summary>pt_make_range(common, va, last_va): the current top range with the span replaced (unchecked).</summary>
    public PtRange MakeRange(ulong va, ulong lastVa) => TopRange() with { Va = va, LastVa = lastVa };

    /// <summary>do_map: iommu_map(va, pa, len, IOMMU_READ | IOMMU_WRITE) must succeed.</summary>
    public void DoMap(ulong va, ulong pa, ulong len)
    {
        var err = Domain.IommuMap(va, pa, len, ReadWrite);
        if (err != Errno.None)
            Assert.Fail($"{Name}: errno {err} from map_pages: iommu_map(va=0x{va:x}, pa=0x{pa:x}, len=0x{len:x})");
    }

    /// <summary>do_unmap: iommu_unmap(va, len) must return exactly len.</summary>
    public void DoUnmap(ulong va, ulong len)
    {
        ulong ret = Domain.IommuUnmap(va, len);
        if (ret != len)
            Assert.Fail($"{Name}: iommu_unmap(va=0x{va:x}, len=0x{len:x}) returned 0x{ret:x}, expected 0x{len:x}");
    }

    /// <summary>check_iova: every smallest page of [va, va+len) translates to the matching page of pa.</summary>
    public void CheckIova(ulong va, ulong pa, ulong len)
    {
        int lg2 = SmallestPgszLg2;
        ulong pfn = Log2.Div(va, lg2);
        ulong endPfn = pfn + Log2.Div(len, lg2);
        for (; pfn != endPfn; pfn++)
        {
            ulong iova = pfn * SmallestPgsz;
            ulong res = Domain.IommuIovaToPhys(iova);
            if (res != pa)
                Assert.Fail($"{Name}: iommu_iova_to_phys(0x{iova:x}) = 0x{res:x}, expected 0x{pa:x} (check_iova va=0x{va:x} len=0x{len:x})");
            pa += SmallestPgsz;
        }
    }

    /// <summary>
    /// The walk of count_valids over pt_top_range (the lower half only when sign-extended): every OA entry,
    /// a contiguous entry once, bucketed by pt_entry_oa_lg2sz.
    /// </summary>
    public long[] CountValidsPerSize()
    {
        var perSize = new long[64];
        var range = TopRange();
        CountLevel(range.TopLevel, Memory[Domain.TopPage], range.ToIndex(range.TopLevel), range.ToEndIndex(range.TopLevel), perSize);
        return perSize;
    }

    /// <summary>count_valids: the number of valid entries (contiguous entries count once).</summary>
    public long CountValids()
    {
        long total = 0;
        foreach (long n in CountValidsPerSize())
            total += n;
        return total;
    }

    /// <summary>count_valids_single: only entries of <paramref name="pgsz"/> may be present; returns their number.</summary>
    public long CountValidsSingle(ulong pgsz)
    {
        var perSize = CountValidsPerSize();
        long total = 0;
        for (int i = 0; i != perSize.Length; i++)
        {
            if (Log2.ToInt(i) == pgsz)
                total = perSize[i];
            else
                Assert.Equal(0L, perSize[i]);
        }
        return total;
    }

    private void CountLevel(int level, ulong[] table, int index, int end, long[] perSize)
    {
        int isz = PtGeometry.ItemLg2(level);
        while (index < end)
        {
            ulong pte = table[index];
            switch (Ops.Load(pte, level))
            {
                case PtEntryType.Table:
                    CountLevel(level - 1, Memory[Memory.PaToPage(Ops.TablePa(pte))], 0, PtGeometry.NumItems, perSize);
                    index++;
                    break;
                case PtEntryType.Oa:
                    // pt_next_entry: skip to the end of the contiguous block.
                    int n = Ops.NumContigLg2(pte, level);
                    perSize[isz + n]++;
                    index = (int)Log2.SetMod((ulong)index + Log2.ToInt(n), 0, n);
                    break;
                default:
                    index++;
                    break;
            }
        }
    }

    /// <summary>
    /// check_all_levels (kunit_generic_pt.h): map one smallest page at the very top of the VA space (growing a
    /// DYNAMIC_TOP table to its maximum), then walk down that path asserting each table's geometry, and call
    /// <paramref name="fn"/> bottom-up with a state at index 0 of each table (index 1 when index 0 holds the tree
    /// an increase of the top moved down).
    /// </summary>
    public void CheckAllLevels(Action<PtState> fn)
    {
        var range = TopRange();
        if (Domain.HasFeature(PtFeatures.DynamicTop) && Domain.MaxVaszLg2 > range.MaxVaszLg2)
            range = range with { LastVa = Log2.SetModMax(range.Va, Domain.MaxVaszLg2) };

        // "Map a page at the highest VA, this will populate all the levels so we can then iterate over them."
        range = range with { Va = range.LastVa - (SmallestPgsz - 1) };
        DoMap(range.Va, 0, SmallestPgsz);

        range = MakeRange(range.Va, range.LastVa);
        CheckLevel(range, range.TopLevel, Domain.TopPage, fn);
    }

    private void CheckLevel(PtRange range, int level, int page, Action<PtState> fn)
    {
        var pts = new PtState(this, range, level, Memory[page])
        {
            Index = range.ToIndex(level),
            EndIndex = range.ToEndIndex(level),
        };
        int isz = pts.ItemLg2;

        // "If we were able to use the full VA space this should always be the last index in each table."
        ulong lastIndex = SignExtend && level == range.TopLevel
            ? Log2.ToInt(range.MaxVaszLg2 - 1 - isz) - 1
            : Log2.ToInt(pts.TableOaLg2 - isz) - 1;
        Assert.Equal(lastIndex, (ulong)pts.Index);

        if (pts.CanHaveTable)
        {
            Assert.Equal(PtEntryType.Table, pts.Load());
            CheckLevel(range, level - 1, Memory.PaToPage(pts.TablePa), fn);   // pt_descend
            // "Index 0 is used by the test"
            Assert.NotEqual(0, pts.Index);
        }

        // "A format should not create a table with only one entry, at least this test approach won't work."
        Assert.True(pts.EndIndex > 1, $"end_index {pts.EndIndex} at level {level}");

        // "For increase top we end up using index 0 for the original top's tree, so use index 1 for testing instead."
        pts.Index = 0;
        if (pts.Load() == PtEntryType.Table && pts.EndIndex > 2)
            pts.Index = 1;
        fn(pts);
    }
}

/// <summary>
/// struct pt_state over one table page, with the format operations the kunit callbacks call on it
/// (pt_load_entry, pt_install_table, pt_install_leaf_entry, pt_clear_entries, pt_entry_oa, ...), built from
/// <see cref="PtFormatOps"/> and the raw table words.
/// </summary>
public sealed class PtState
{
    private readonly KunitPriv _priv;

    /// <summary>Creates a state for the table <paramref name="table"/> at <paramref name="level"/> of <paramref name="range"/>.</summary>
    public PtState(KunitPriv priv, PtRange range, int level, ulong[] table)
    {
        _priv = priv;
        Range = range;
        Level = level;
        Table = table;
    }

    /// <summary>pts->range.</summary>
    public PtRange Range { get; }

    /// <summary>pts->level.</summary>
    public int Level { get; }

    /// <summary>The table's items.</summary>
    public ulong[] Table { get; }

    /// <summary>pts->index.</summary>
    public int Index { get; set; }

    /// <summary>pts->end_index.</summary>
    public int EndIndex { get; set; }

    /// <summary>pts->entry: the item as last loaded or installed.</summary>
    public ulong Entry { get; private set; }

    /// <summary>pts->type as last loaded.</summary>
    public PtEntryType Type { get; private set; }

    private PtFormatOps Ops => _priv.Ops;

    private PtFeatures Features => _priv.Domain.Features;

    /// <summary>pt_table_item_lg2sz.</summary>
    public int ItemLg2 => PtGeometry.ItemLg2(Level);

    /// <summary>pt_table_oa_lg2sz: the range's max_vasz at the top, else min(common max_vasz, table span).</summary>
    public int TableOaLg2 => Level == Range.TopLevel
        ? Range.MaxVaszLg2
        : Math.Min(_priv.Domain.MaxVaszLg2, PtGeometry.NumItemsLg2 + ItemLg2);

    /// <summary>pt_can_have_table.</summary>
    public bool CanHaveTable => PtGeometry.CanHaveTable(Level);

    /// <summary>pt_can_have_leaf.</summary>
    public bool CanHaveLeaf => Ops.CanHaveLeaf(Level);

    /// <summary>pt_possible_sizes.</summary>
    public ulong PossibleSizes => Ops.PossibleSizes(Level, Features);

    /// <summary>pt_table_pa of the loaded entry.</summary>
    public ulong TablePa => Ops.TablePa(Entry);

    /// <summary>pt_entry_oa of the loaded entry.</summary>
    public ulong EntryOa => Ops.EntryOa(Entry, Level);

    /// <summary>pt_item_oa of the loaded entry at <see cref="Index"/>.</summary>
    public ulong ItemOa => Ops.ItemOa(Entry, Level, Index);

    /// <summary>pt_entry_num_contig_lg2 of the loaded entry.</summary>
    public int NumContigLg2 => Ops.NumContigLg2(Entry, Level);

    /// <summary>A copy (<c>struct pt_state sub_pts = *pts</c>).</summary>
    public PtState Clone() => new(_priv, Range, Level, Table) { Index = Index, EndIndex = EndIndex, Entry = Entry, Type = Type };

    /// <summary>pt_load_entry: read the item at <see cref="Index"/> and decode its type.</summary>
    public PtEntryType Load()
    {
        Entry = Table[Index];
        Type = Ops.Load(Entry, Level);
        return Type;
    }

    /// <summary>
    /// pt_install_table: cmpxchg the item from the cached <see cref="Entry"/> to a table pointer; on success
    /// the cached entry becomes the new value (which is why a second install also succeeds).
    /// </summary>
    public bool InstallTable(ulong tablePa)
    {
        ulong entry = Ops.MakeTable(tablePa, Level, Features);
        if (Table[Index] != Entry)
            return false;
        Table[Index] = entry;
        Entry = entry;
        return true;
    }

    /// <summary>pt_install_leaf_entry: write a leaf of 2^<paramref name="oaszLg2"/> bytes into every item it spans.</summary>
    public void InstallLeaf(ulong oa, int oaszLg2, ulong attrs)
    {
        ulong entry = Ops.MakeLeaf(oa, Level, oaszLg2, attrs);
        Table.AsSpan(Index, 1 << (oaszLg2 - ItemLg2)).Fill(entry);
        Entry = entry;
    }

    /// <summary>pt_clear_entries: zero 2^<paramref name="numContigLg2"/> items from <see cref="Index"/>.</summary>
    public void ClearEntries(int numContigLg2) => Table.AsSpan(Index, 1 << numContigLg2).Clear();

    /// <summary>pt_attr_from_entry.</summary>
    public ulong AttrFromEntry() => Ops.AttrFromEntry(Entry);

    // The dirty primitives. The format layer exposes the dirty bit; the per-entry semantics are those of SPEC §2.4
    // (and of fmt/amdv1.h, fmt/vtdss.h): a contiguous entry is dirty if any of its items is, cleaning clears every
    // item of the entry, and making an item dirty is a cmpxchg on that one item.

    /// <summary>pt_entry_is_write_dirty of the loaded entry (the engine's format layer).</summary>
    public bool IsWriteDirty() => Ops.IsWriteDirty(Table, Index, Level);

    /// <summary>pt_entry_make_write_clean of the loaded entry.</summary>
    public void MakeWriteClean() => Ops.MakeWriteClean(Table, Index, Level);

    /// <summary>pt_entry_make_write_dirty: cmpxchg the item at <see cref="Index"/> from the loaded entry to entry | D.</summary>
    public bool MakeWriteDirty() => Ops.MakeWriteDirty(Table, Index, Entry);
}
