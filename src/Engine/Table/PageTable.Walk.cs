using PtActors.Engine.Formats;

namespace PtActors.Engine;

/// <summary>The IOMMU's own walk for a DMA, and the dirty bit it sets on a write.</summary>
internal sealed partial class PageTable<TFmt>
{
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

    public override void ReplayItemDirty(int page, int index)
    {
        if (TFmt.HasDirty)
            Memory[page][index] |= TFmt.DirtyBit;
    }
}
