using PtActors.Engine.Formats;

namespace PtActors.Engine;

/// <summary>unmap_pages: the seed patch's recursive range walk.</summary>
internal sealed partial class PageTable<TFmt>
{
    public override ulong UnmapPages(ulong iova, ulong pgsize, ulong pgcount, IotlbGather gather)
    {
        if (MakeRange(iova, pgsize * pgcount, out ulong last) != Errno.None)
            return 0;
        BeginWalk(last);
        _unmapped = 0;
        _freeList.Clear();
        UnmapLevel(TopLevel, TopPage, iova);
        ulong unmapped = _unmapped;
        // The later gather_range_pending records what was unmapped, (iova, unmapped).
        GatherRangePages(gather, iova, unmapped, _freeList);
        return unmapped;
    }

    /// <summary>
    /// __unmap_range. A start inside a leaf entry removes nothing (EINVAL); an end inside one removes the whole
    /// entry; a hole (EMPTY) stops the walk at every level; a table fully covered by the range is unlinked
    /// and parked on the free list only after its own walk succeeded.
    /// </summary>
    private Errno UnmapLevel(int level, int page, ulong va)
    {
        var table = Memory[page];
        int isz = PtGeometry.ItemLg2(level);
        int index = FirstIndex(level, va);
        int end = EndIndex(level, va, index);
        int start = index;
        int numOas = 0;
        var err = Errno.None;
        ulong pte = table[index];
        var type = TFmt.Load(pte, level);

        if (type == PtEntryType.Oa && Log2.Mod(va, isz + TFmt.NumContigLg2(pte, level)) != 0)
            return Errno.EINVAL;

        while (true)
        {
            if (type == PtEntryType.Oa)
            {
                int n = TFmt.NumContigLg2(pte, level);
                var leaves = ClearedLeaves;
                if (n == 0)
                {
                    // A run of single-item leaves (the common 4 KiB case): clear until something else or the end.
                    int runStart = index;
                    if (leaves is null)
                    {
                        do
                        {
                            table[index] = 0;
                            index++;
                        }
                        while (index < end && IsSingleItemLeaf(table[index], level));
                    }
                    else
                    {
                        do
                        {
                            ulong item = table[index];
                            leaves.Add(index == start ? va : IndexToVa(level, va, index), isz, TFmt.EntryOa(item, level), TFmt.LeafPermissions(item));
                            table[index] = 0;
                            index++;
                        }
                        while (index < end && IsSingleItemLeaf(table[index], level));
                    }
                    numOas += index - runStart;
                }
                else
                {
                    int count = 1 << n;
                    leaves?.Add(index == start ? va : IndexToVa(level, va, index), isz + n, TFmt.EntryOa(pte, level), TFmt.LeafPermissions(pte));
                    table.AsSpan(index, count).Clear();
                    numOas += count;
                    index += count;
                }
            }
            else if (type == PtEntryType.Table)
            {
                ulong itemVa = index == start ? va : IndexToVa(level, va, index);
                int child = ChildPage(pte);
                bool fully = FullyCovered(itemVa, isz);
                err = UnmapLevel(level - 1, child, itemVa);
                if (err != Errno.None)
                    break;
                if (fully)
                {
                    _freeList.Add(child);
                    table[index] = 0;
                }
                index++;
            }
            else
            {
                err = Errno.EINVAL;
                break;
            }
            if (index >= end)
                break;
            pte = table[index];
            type = TFmt.Load(pte, level);
        }

        _unmapped += Log2.Mul((ulong)(uint)numOas, isz);
        return err;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static bool IsSingleItemLeaf(ulong pte, int level)
        => TFmt.Load(pte, level) == PtEntryType.Oa && TFmt.NumContigLg2(pte, level) == 0;
}
