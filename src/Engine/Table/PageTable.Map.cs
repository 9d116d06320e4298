using PtActors.Engine.Formats;

namespace PtActors.Engine;

/// <summary>map_pages and its walks: top growth, the single-page fast path, __map_range, __map_range_leaf, clear_contig.</summary>
internal sealed partial class PageTable<TFmt>
{
    private const ulong PageSize = 4096;

    public override Errno MapPages(ulong iova, ulong paddr, ulong pgsize, ulong pgcount, IommuProt prot, ref ulong mapped)
    {
        if ((prot & (IommuProt.Read | IommuProt.Write)) == 0)
            return Errno.EINVAL;
        if (MaxOaszLg2 < 64 && (paddr >> MaxOaszLg2) != 0)
            return Errno.ERANGE;
        var err = TFmt.SetProt(prot, Features, out ulong attrs);
        if (err != Errno.None)
            return err;

        ulong len = pgsize * pgcount;
        if (len == 0)
            return Errno.EINVAL;
        ulong last = iova + (len - 1);
        if (last < iova)
            return Errno.EOVERFLOW;

        bool singlePage = false;
        int leafLg2, leafLevel;
        if (pgsize == PageSize && pgcount == 1)
        {
            if (((iova | paddr) & (PageSize - 1)) != 0)
                return Errno.ENXIO;
            leafLg2 = 12;
            leafLevel = 0;
            singlePage = true;
        }
        else
        {
            leafLg2 = BestPgsize.Compute(PgsizeBitmap, iova, last, paddr);
            if (leafLg2 == 0)
                return Errno.ENXIO;
            leafLevel = PtGeometry.PgszLg2ToLevel(leafLg2);
        }

        err = CheckMapRange(iova, last, leafLevel);
        if (err != Errno.None)
            return err;

        var gather = _mapGather;
        gather.Init();
        _walkGather = gather;
        _oa = paddr;
        _attrs = attrs;
        _leafLg2 = leafLg2;
        _leafLevel = leafLevel;
        BeginWalk(last);

        err = Errno.EAGAIN;
        if (singlePage)
            err = MapSinglePage(iova);
        if (err == Errno.EAGAIN)
        {
            err = leafLevel == TopLevel
                ? MapLeaf(TopLevel, TopPage, iova)
                : MapInterior(TopLevel, TopPage, iova);
        }
        _walkGather = null;

        // Tables replaced by large leaves: flush the walk caches that may still point at them.
        if (gather.FreeCount > 0)
            IotlbSync(gather);
        mapped += _oa - paddr;
        return err;
    }

    /// <summary>check_map_range: range check, growing the top (DYNAMIC_TOP) for a VA or a leaf above it.</summary>
    private Errno CheckMapRange(ulong va, ulong last, int leafLevel)
    {
        while (true)
        {
            var err = CheckRange(va, last, TopRangeMax(TopLevel));
            if (!_dynamicTop)
                return err;
            if (err == Errno.None && leafLevel <= TopLevel)
                return Errno.None;
            err = IncreaseTop(va, last, leafLevel);
            if (err == Errno.None)
                return Errno.None;
            if (err != Errno.EAGAIN)
                return err;
        }
    }

    /// <summary>increase_top: new top tables, one per level, each with the old tree at index 0.</summary>
    private Errno IncreaseTop(ulong va, ulong last, int leafLevel)
    {
        int level = TopLevel;
        int table = TopPage;
        _collect.Clear();
        while (true)
        {
            if (CheckRange(va, last, TopRangeMax(level)) == Errno.None && leafLevel <= level)
                break;
            level++;
            Errno err = Errno.None;
            if (level > TFmt.MaxTopLevel || PtGeometry.ItemLg2(level) >= MaxVaszLg2)
                err = Errno.ERANGE;
            int page = err == Errno.None ? AllocTable() : -1;
            if (page < 0)
            {
                var made = _collect.Items;
                for (int i = 0; i < made.Length; i++)
                    FreeTable(made[i]);
                _collect.Clear();
                return err == Errno.None ? Errno.ENOMEM : err;
            }
            _collect.Add(page);
            Memory[page][0] = TFmt.MakeTable(Memory.PageToPa(table), level, Features);
            table = page;
        }
        if (_collect.Count == 0)
            return Errno.EAGAIN;
        _collect.Clear();
        TopPage = table;
        TopLevel = level;
        TopChanged?.Invoke(this);
        return Errno.None;
    }

    /// <summary>__map_single_page: a 4 KiB leaf under tables that already exist; EAGAIN sends it to the full walk.</summary>
    private Errno MapSinglePage(ulong va)
    {
        int level = TopLevel, page = TopPage;
        while (true)
        {
            var table = Memory[page];
            int index = FirstIndex(level, va);
            ulong pte = table[index];
            var type = TFmt.Load(pte, level);
            if (level == 0)
            {
                if (type != PtEntryType.Empty)
                    return Errno.EADDRINUSE;
                table[index] = TFmt.MakeLeaf(_oa, 0, 12, _attrs);
                _oa += PageSize;
                return Errno.None;
            }
            if (type != PtEntryType.Table)
                return Errno.EAGAIN;
            page = ChildPage(pte);
            level--;
        }
    }

    /// <summary>__map_range: an interior level on the way to the leaf level; allocates missing tables.</summary>
    private Errno MapInterior(int level, int page, ulong va)
    {
        var table = Memory[page];
        int index = FirstIndex(level, va);
        int end = EndIndex(level, va, index);
        ulong itemVa = va;
        while (true)
        {
            ulong pte = table[index];
            var type = TFmt.Load(pte, level);
            int child;
            if (type == PtEntryType.Table)
            {
                child = ChildPage(pte);
            }
            else
            {
                if (type != PtEntryType.Empty)
                    return Errno.EADDRINUSE;
                child = AllocTable();
                if (child < 0)
                    return Errno.ENOMEM;
                table[index] = TFmt.MakeTable(Memory.PageToPa(child), level, Features);
            }
            var err = _leafLevel == level - 1
                ? MapLeaf(level - 1, child, itemVa)
                : MapInterior(level - 1, child, itemVa);
            if (err != Errno.None)
                return err;
            index++;
            if (index >= end)
                return Errno.None;
            itemVa = IndexToVa(level, itemVa, index);
        }
    }

    /// <summary>__map_range_leaf: install leaves of one size; anything in the way goes through clear_contig.</summary>
    private Errno MapLeaf(int level, int page, ulong va)
    {
        var table = Memory[page];
        int isz = PtGeometry.ItemLg2(level);
        int index = FirstIndex(level, va);
        int end = EndIndex(level, va, index);
        int leafLg2 = _leafLg2;
        int step = 1 << (leafLg2 - isz);
        bool needContig = step > 1;
        int start = index;
        ulong oa = _oa, attrs = _attrs, size = 1UL << leafLg2;
        var err = Errno.None;
        do
        {
            if (needContig || TFmt.Load(table[index], level) != PtEntryType.Empty)
            {
                ulong itemVa = index == start ? va : IndexToVa(level, va, index);
                err = ClearContig(level, table, index, step, itemVa);
                if (err != Errno.None)
                    break;
            }
            ulong entry = TFmt.MakeLeaf(oa, level, leafLg2, attrs);
            if (step == 1)
                table[index] = entry;
            else
                table.AsSpan(index, step).Fill(entry);
            oa += size;
            index += step;
        }
        while (index < end);
        _oa = oa;
        return err;
    }

    /// <summary>
    /// clear_contig: every item under a new leaf must be empty or a table holding no leaf at all; such
    /// tables are unlinked and freed through the map's gather. Any leaf fails with EADDRINUSE.
    /// </summary>
    private Errno ClearContig(int level, ulong[] table, int index, int step, ulong va)
    {
        int isz = PtGeometry.ItemLg2(level);
        for (int i = index; i < index + step; i++)
        {
            ulong pte = table[i];
            var type = TFmt.Load(pte, level);
            if (type == PtEntryType.Table)
            {
                int child = ChildPage(pte);
                _collect.Clear();
                var err = CollectTables(level - 1, child, checkMapped: true);
                if (err != Errno.None)
                {
                    _collect.Clear();
                    return err;
                }
                table[i] = 0;
                _collect.Add(child);
                ulong itemVa = i == index ? va : IndexToVa(level, va, i);
                GatherRangePages(_walkGather!, itemVa, 1UL << isz, _collect);
            }
            else if (type != PtEntryType.Empty)
            {
                return Errno.EADDRINUSE;
            }
        }
        return Errno.None;
    }
}
