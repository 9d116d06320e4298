using PtActors.Engine.Formats;

namespace PtActors.Engine;

/// <summary>iova_to_phys and set_dirty: the single-entry software walk to the leaf translating an IOVA.</summary>
internal sealed partial class PageTable<TFmt>
{
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
}
