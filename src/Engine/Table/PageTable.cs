using System.Runtime.CompilerServices;
using PtActors.Engine.Formats;

namespace PtActors.Engine;

/// <summary>
/// The generic page table (iommu_pt.h) over one format. Every walk is written once here; the format
/// only decodes and encodes items. Walk state lives in fields: a domain has one owner at a time.
/// </summary>
internal sealed partial class PageTable<TFmt> : IommuDomain where TFmt : struct, IPtFormat
{
    private const int NumItems = PtGeometry.NumItems;

    private bool _dynamicTop;
    private bool _signExtend;

    // Walk state of the operation in progress.
    private ulong _last;
    private int _rTop;      // top level of the range being walked
    private int _rMax;      // max_vasz_lg2 of that range
    private ulong _unmapped;
    private ulong _oa;
    private ulong _attrs;
    private int _leafLg2;
    private int _leafLevel;
    private IotlbGather? _walkGather;
    private IDirtySink? _dirtySink;
    private bool _dirtyNoClear;

    private readonly PageList _freeList = new();
    private readonly PageList _collect = new();
    private readonly IotlbGather _mapGather = new();
    private readonly IotlbGather _dirtyGather = new();

    public PageTable(TableMemory memory, in PtConfig config) : base(memory, config)
    {
    }

    public override PtFormatKind Format => TFmt.Kind;

    public override string FormatName => TFmt.Name;

    public override VaRange TopRange
    {
        get
        {
            int max = TopRangeMax(TopLevel);
            int bits = _signExtend ? max - 1 : max;
            return new VaRange(0, Log2.ToMaxInt(bits));
        }
    }

    public override VaRange? UpperRange
    {
        get
        {
            if (!_signExtend)
                return null;
            int max = TopRangeMax(TopLevel);
            return new VaRange(Log2.SetMod(ulong.MaxValue, 0, max - 1), ulong.MaxValue);
        }
    }

    public override int TopRangeVaszLg2 => TopRangeMax(TopLevel);

    // ---------------------------------------------------------------- init

    private protected override Errno Init()
    {
        var err = InitState();
        if (err != Errno.None)
            return err;
        int page = AllocTable();
        if (page < 0)
            return Errno.ENOMEM;
        TopPage = page;
        return Errno.None;
    }

    private protected override Errno InitState()
    {
        var cfg = Config;
        if (cfg.HwMaxVaszLg2 > TFmt.MaxVaLg2 || cfg.HwMaxVaszLg2 <= 0 || cfg.HwMaxOaszLg2 <= 0)
            return Errno.EINVAL;

        var features = cfg.Features;
        var err = TFmt.FormatInit(cfg, features, out int top, out int maxVasz, out int maxOasz);
        if (err != Errno.None)
            return err;
        if (cfg.HwMaxOaszLg2 > TFmt.MaxOaLg2)
            return Errno.EINVAL;

        // pt_init_common, as the kunit (CONFIG_DEBUG_GENERIC_PT) build compiles it: every generic feature
        // is supported but DMA_INCOHERENT (unless the format has it) and SIGN_EXTEND (unless the format has
        // it, in which case DYNAMIC_TOP and FULL_VA are not); format-private bits only of this format.
        const PtFeatures generic = PtFeatures.DmaIncoherent | PtFeatures.FullVa | PtFeatures.DynamicTop
            | PtFeatures.SignExtend | PtFeatures.FlushRange | PtFeatures.FlushRangeNoGaps;
        var orig = TFmt.SupportedFeatures;
        var supported = generic | (orig & ~generic);
        if ((orig & PtFeatures.DmaIncoherent) == 0)
            supported &= ~PtFeatures.DmaIncoherent;
        supported &= (orig & PtFeatures.SignExtend) != 0
            ? ~(PtFeatures.DynamicTop | PtFeatures.FullVa)
            : ~PtFeatures.SignExtend;

        MaxVaszLg2 = maxVasz;
        TopLevel = top;
        Features = features | TFmt.ForcedFeatures;
        _dynamicTop = HasFeature(PtFeatures.DynamicTop);
        _signExtend = HasFeature(PtFeatures.SignExtend);

        int topMax = TopRangeMax(top);
        if (top == TFmt.MaxTopLevel || maxVasz == topMax)
            Features &= ~PtFeatures.DynamicTop | TFmt.ForcedFeatures;
        if (topMax == 64)
            Features |= PtFeatures.FullVa;
        if ((Features & ~TFmt.ForcedFeatures & ~supported) != 0)
            return Errno.EOPNOTSUPP;
        _dynamicTop = HasFeature(PtFeatures.DynamicTop);
        if (!_dynamicTop && top != TFmt.MaxTopLevel && maxVasz > PtGeometry.NumItemsLg2 + PtGeometry.ItemLg2(top))
            return Errno.EOPNOTSUPP;
        MaxOaszLg2 = Math.Min(maxOasz == 0 ? TFmt.MaxOaLg2 : maxOasz, TFmt.MaxOaLg2);
        if (_signExtend && (HasFeature(PtFeatures.FullVa) || _dynamicTop))
            return Errno.EINVAL;

        PgsizeBitmap = ComputePgsizeBitmap();
        return Errno.None;
    }

    /// <summary>get_info as first merged (without the later vasz fix): see SCRIPT-FORMAT reading 4.</summary>
    private ulong ComputePgsizeBitmap()
    {
        ulong bitmap = 0;
        if (_dynamicTop)
        {
            for (int level = 0; level <= TFmt.MaxTopLevel; level++)
            {
                if (PtGeometry.ItemLg2(level) >= MaxVaszLg2)
                    break;
                bitmap |= TFmt.PossibleSizes(level, Features);
            }
        }
        else
        {
            for (int level = 0; level <= TopLevel; level++)
                bitmap |= TFmt.PossibleSizes(level, Features);
        }
        return Log2.Mod(bitmap, MaxOaszLg2);
    }

    // ---------------------------------------------------------------- ranges and indexes

    /// <summary>max_vasz_lg2 of the top range of a table whose top is at <paramref name="level"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int TopRangeMax(int level)
        => _dynamicTop && level != TFmt.MaxTopLevel
            ? Math.Min(MaxVaszLg2, PtGeometry.NumItemsLg2 + PtGeometry.ItemLg2(level))
            : MaxVaszLg2;

    /// <summary>pt_check_range, including its literal sign-extension prefix check.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Errno CheckRange(ulong va, ulong last, int max)
    {
        if (max >= 64)
            return Errno.None;
        ulong prefix = _signExtend ? ((va >> (max - 1)) != 0 ? ulong.MaxValue : 0) : 0;
        ulong want = prefix >> max;
        return (va >> max) != want || (last >> max) != want ? Errno.ERANGE : Errno.None;
    }

    /// <summary>make_range: len 0 → EINVAL, wrap → EOVERFLOW, outside the top range → ERANGE.</summary>
    private Errno MakeRange(ulong iova, ulong len, out ulong last)
    {
        last = 0;
        if (len == 0)
            return Errno.EINVAL;
        last = iova + (len - 1);
        if (last < iova)
            return Errno.EOVERFLOW;
        return CheckRange(iova, last, TopRangeMax(TopLevel));
    }

    private void BeginWalk(ulong last)
    {
        _last = last;
        _rTop = TopLevel;
        _rMax = TopRangeMax(TopLevel);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int FirstIndex(int level, ulong va)
    {
        int isz = PtGeometry.ItemLg2(level);
        return level == _rTop
            ? (int)(Log2.Mod(va, _rMax) >> isz)
            : (int)((va >> isz) & (NumItems - 1));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int EndIndex(int level, ulong va, int index)
    {
        ulong last = _last;
        if (va == last)
            return index + 1;
        int isz = PtGeometry.ItemLg2(level);
        if (level == _rTop)
            return (int)(Log2.Mod(last, _rMax) >> isz) + 1;
        if (((va ^ last) >> (isz + PtGeometry.NumItemsLg2)) == 0)
            return (int)((last >> isz) & (NumItems - 1)) + 1;
        return NumItems;
    }

    /// <summary>pt_index_to_va: the VA of item <paramref name="index"/> of the table <paramref name="va"/> lies in.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong IndexToVa(int level, ulong va, int index)
    {
        int isz = PtGeometry.ItemLg2(level);
        int tableLg2 = level == _rTop ? _rMax : Math.Min(MaxVaszLg2, isz + PtGeometry.NumItemsLg2);
        return Log2.SetMod(va, (ulong)index << isz, tableLg2);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int ChildPage(ulong pte) => Memory.PaToPage(TFmt.TablePa(pte));

    /// <summary>pt_entry_fully_covered for an item of 2^<paramref name="lg2"/> bytes at <paramref name="va"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool FullyCovered(ulong va, int lg2)
    {
        if (Log2.Mod(va, lg2) != 0)
            return false;
        if (!Log2.DivEq(va, _last, lg2))
            return true;
        return Log2.ModEqMax(_last, lg2);
    }

    // ---------------------------------------------------------------- iova_to_phys / set_dirty

    public override Errno TryIovaToPhys(ulong iova, out ulong pa)
    {
        pa = 0;
        var err = FindLeaf(iova, out var table, out int index, out int level);
        if (err != Errno.None)
            return err;
        ulong pte = table[index];
        int lg2 = PtGeometry.ItemLg2(level) + TFmt.NumContigLg2(pte, level);
        pa = TFmt.EntryOa(pte, level) | Log2.Mod(iova, lg2);
        return Errno.None;
    }

    public override Errno SetDirty(ulong iova)
    {
        if (!TFmt.HasDirty)
            return Errno.EOPNOTSUPP;
        var err = FindLeaf(iova, out var table, out int index, out _);
        if (err != Errno.None)
            return err;
        return PtDirty<TFmt>.MakeWriteDirty(table, index, table[index]) ? Errno.None : Errno.EAGAIN;
    }

    /// <summary>
    /// The single-entry walk of iova_to_phys and set_dirty: the table and index of the leaf item translating
    /// <paramref name="iova"/>; ERANGE outside the table, ENOENT at a hole.
    /// </summary>
    private Errno FindLeaf(ulong iova, out ulong[] table, out int index, out int level)
    {
        table = [];
        index = 0;
        level = TopLevel;
        var err = CheckRange(iova, iova, TopRangeMax(TopLevel));
        if (err != Errno.None)
            return err;
        BeginWalk(iova);
        int page = TopPage;
        while (true)
        {
            table = Memory[page];
            index = FirstIndex(level, iova);
            ulong pte = table[index];
            switch (TFmt.Load(pte, level))
            {
                case PtEntryType.Table:
                    page = ChildPage(pte);
                    level--;
                    continue;
                case PtEntryType.Oa:
                    return Errno.None;
                default:
                    return Errno.ENOENT;
            }
        }
    }

    // ---------------------------------------------------------------- the hardware walk

    public override void WalkForDma(ref DmaWalk walk)
    {
        walk.Result = PtEntryType.Empty;
        walk.Depth = 0;
        ulong va = walk.Va;
        int top = TopLevel, level, page;
        int rMax = TopRangeMax(top);
        if (walk.StartLevel < 0)
        {
            if (CheckRange(va, va, rMax) != Errno.None)
                return;
            level = top;
            page = TopPage;
        }
        else
        {
            level = walk.StartLevel;
            page = walk.StartPage;
        }
        while (true)
        {
            var table = Memory[page];
            int isz = PtGeometry.ItemLg2(level);
            int index = level == top && walk.StartLevel < 0
                ? (int)(Log2.Mod(va, rMax) >> isz)
                : (int)((va >> isz) & (NumItems - 1));
            if (walk.Depth < 8)
            {
                walk.Levels[walk.Depth] = level;
                walk.Pages[walk.Depth] = page;
                walk.Depth++;
            }
            ulong pte = Volatile.Read(ref table[index]);
            switch (TFmt.Load(pte, level))
            {
                case PtEntryType.Table:
                    ulong childPa = TFmt.TablePa(pte);
                    if (level == 0 || !Memory.Contains(childPa))
                        return; // garbage read from a reused page: the walk faults
                    page = Memory.PaToPage(childPa);
                    level--;
                    continue;
                case PtEntryType.Oa:
                    int lg2 = isz + TFmt.NumContigLg2(pte, level);
                    walk.Result = PtEntryType.Oa;
                    walk.SizeLg2 = lg2;
                    walk.EntryVa = Log2.SetMod(va, 0, lg2);
                    walk.EntryOa = TFmt.EntryOa(pte, level);
                    walk.Perms = TFmt.LeafPermissions(pte);
                    walk.LeafPage = page;
                    walk.LeafIndex = index;
                    return;
                default:
                    return;
            }
        }
    }

    public override void SetItemDirty(int page, int index, int level, ulong entryOa)
    {
        if (!TFmt.HasDirty)
            return;
        var table = Memory[page];
        ulong pte;
        do
        {
            pte = Volatile.Read(ref table[index]);
            if (TFmt.Load(pte, level) != PtEntryType.Oa || TFmt.EntryOa(pte, level) != entryOa)
                return;
        }
        while (!PtDirty<TFmt>.MakeWriteDirty(table, index, pte));
    }

    // ---------------------------------------------------------------- read_and_clear_dirty

    public override Errno ReadAndClearDirty(ulong iova, ulong size, bool noClear, IDirtySink? sink)
    {
        if (!TFmt.HasDirty)
            return Errno.EOPNOTSUPP;
        var err = MakeRange(iova, size, out ulong last);
        if (err != Errno.None)
            return err;
        BeginWalk(last);
        _dirtySink = sink;
        _dirtyNoClear = noClear;
        _dirtyGather.Init();
        DirtyWalk(TopLevel, TopPage, iova);
        _dirtySink = null;
        // The caller's flush that lets the IOMMU set the cleaned D bits again.
        if (_dirtyGather.IsPending)
            IotlbSync(_dirtyGather);
        return Errno.None;
    }

    private void DirtyWalk(int level, int page, ulong va)
    {
        var table = Memory[page];
        int index = FirstIndex(level, va);
        int end = EndIndex(level, va, index);
        int isz = PtGeometry.ItemLg2(level);
        ulong itemVa = va;
        while (true)
        {
            ulong pte = table[index];
            var type = TFmt.Load(pte, level);
            if (type == PtEntryType.Table)
            {
                DirtyWalk(level - 1, ChildPage(pte), itemVa);
                index++;
            }
            else if (type == PtEntryType.Oa)
            {
                int n = TFmt.NumContigLg2(pte, level);
                int blockEnd = (index & ~((1 << n) - 1)) + (1 << n);
                if (PtDirty<TFmt>.IsWriteDirty(table, index, level))
                {
                    // Reading 6: a single item counts whole; a contiguous entry counts from here to its end,
                    // but not past the query's last item.
                    ulong len = n == 0
                        ? 1UL << isz
                        : IndexToVa(level, itemVa, Math.Min(blockEnd, end) - 1) + (1UL << isz) - itemVa;
                    _dirtySink?.Set(itemVa, len);
                    if (!_dirtyNoClear)
                    {
                        PtDirty<TFmt>.MakeWriteClean(table, index, level);
                        _dirtyGather.AddRange(itemVa, len);
                    }
                }
                index = blockEnd;
            }
            else
            {
                index++;
            }
            if (index >= end)
                return;
            itemVa = IndexToVa(level, itemVa, index);
        }
    }

    // ---------------------------------------------------------------- count / visit / deinit

    public override long CountLeaves(Span<long> bySizeLg2)
    {
        if (bySizeLg2.Length < 64)
            throw new ArgumentException("Needs 64 buckets.", nameof(bySizeLg2));
        bySizeLg2.Clear();
        long total = 0;
        CountLevel(TopLevel, TopPage, bySizeLg2, ref total);
        return total;
    }

    private void CountLevel(int level, int page, Span<long> buckets, ref long total)
    {
        var table = Memory[page];
        for (int i = 0; i < NumItems;)
        {
            ulong pte = table[i];
            switch (TFmt.Load(pte, level))
            {
                case PtEntryType.Table:
                    CountLevel(level - 1, ChildPage(pte), buckets, ref total);
                    i++;
                    break;
                case PtEntryType.Oa:
                    int n = TFmt.NumContigLg2(pte, level);
                    buckets[PtGeometry.ItemLg2(level) + n]++;
                    total++;
                    i = (i & ~((1 << n) - 1)) + (1 << n);
                    break;
                default:
                    i++;
                    break;
            }
        }
    }

    public override void ForEachLeaf(Action<ulong, int, ulong> visit) => VisitLeaves(TopLevel, TopPage, 0, visit);

    private void VisitLeaves(int level, int page, ulong tableVa, Action<ulong, int, ulong> visit)
    {
        var table = Memory[page];
        int isz = PtGeometry.ItemLg2(level);
        bool top = level == TopLevel;
        for (int i = 0; i < NumItems;)
        {
            ulong pte = table[i];
            ulong va = tableVa + Log2.Mul((ulong)i, isz);
            if (top && _signExtend && i >= 1 << (TopRangeMax(level) - 1 - isz))
                va |= ~Log2.ToMaxInt(TopRangeMax(level)); // the upper half sign-extends
            switch (TFmt.Load(pte, level))
            {
                case PtEntryType.Table:
                    VisitLeaves(level - 1, ChildPage(pte), va, visit);
                    i++;
                    break;
                case PtEntryType.Oa:
                    int n = TFmt.NumContigLg2(pte, level);
                    visit(va, isz + n, pte);
                    i = (i & ~((1 << n) - 1)) + (1 << n);
                    break;
                default:
                    i++;
                    break;
            }
        }
    }

    public override void WriteCanonical(System.Security.Cryptography.IncrementalHash hash)
    {
        Span<byte> head = stackalloc byte[2];
        head[0] = (byte)TFmt.Kind;
        head[1] = (byte)TopLevel;
        hash.AppendData(System.Text.Encoding.ASCII.GetBytes(TFmt.Name));
        hash.AppendData(head);
        int ordinal = 0;
        CanonicalLevel(TopLevel, TopPage, hash, ref ordinal);
    }

    private void CanonicalLevel(int level, int page, System.Security.Cryptography.IncrementalHash hash, ref int ordinal)
    {
        var table = Memory[page];
        Span<byte> rec = stackalloc byte[12];
        for (int i = 0; i < NumItems; i++)
        {
            ulong pte = table[i];
            var type = TFmt.Load(pte, level);
            if (type == PtEntryType.Empty)
                continue;
            ulong value = type == PtEntryType.Table
                ? TFmt.MakeTable((ulong)(uint)++ordinal << 12, level, Features)
                : pte & ~TFmt.AccessedDirtyMask;
            rec[0] = (byte)level;
            rec[1] = 0;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(rec[2..], (ushort)i);
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(rec[4..], value);
            hash.AppendData(rec);
            if (type == PtEntryType.Table)
                CanonicalLevel(level - 1, ChildPage(pte), hash, ref ordinal);
        }
    }

    public override void Deinit()
    {
        _collect.Clear();
        _collect.Add(TopPage);
        CollectTables(TopLevel, TopPage, checkMapped: false);
        var pages = _collect.Items;
        for (int i = 0; i < pages.Length; i++)
            FreeTable(pages[i]);
        _collect.Clear();
        TopPage = -1;
    }

    /// <summary>
    /// __collect_tables over a whole table: every table below goes onto <see cref="_collect"/>. With
    /// <paramref name="checkMapped"/> any leaf fails the walk with EADDRINUSE.
    /// </summary>
    private Errno CollectTables(int level, int page, bool checkMapped)
    {
        if (!checkMapped && !PtGeometry.CanHaveTable(level))
            return Errno.None;
        var table = Memory[page];
        for (int i = 0; i < NumItems;)
        {
            ulong pte = table[i];
            switch (TFmt.Load(pte, level))
            {
                case PtEntryType.Table:
                    int child = ChildPage(pte);
                    _collect.Add(child);
                    var err = CollectTables(level - 1, child, checkMapped);
                    if (err != Errno.None)
                        return err;
                    i++;
                    break;
                case PtEntryType.Oa:
                    if (checkMapped)
                        return Errno.EADDRINUSE;
                    int n = TFmt.NumContigLg2(pte, level);
                    i = (i & ~((1 << n) - 1)) + (1 << n);
                    break;
                default:
                    i++;
                    break;
            }
        }
        return Errno.None;
    }
}
