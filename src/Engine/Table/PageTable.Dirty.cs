using PtActors.Engine.Formats;

namespace PtActors.Engine;

/// <summary>read_and_clear_dirty: the range walk reporting and clearing write-dirty leaves.</summary>
internal sealed partial class PageTable<TFmt>
{
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
}
