using PtActors.Engine.Formats;

namespace PtActors.Engine;

/// <summary>Whole-table walks: leaf counts, the leaf visit, the canonical hash, deinit and __collect_tables.</summary>
internal sealed partial class PageTable<TFmt>
{
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

    public override void WriteCanonical(IByteSink hash)
    {
        Span<byte> head = stackalloc byte[2];
        head[0] = (byte)TFmt.Kind;
        head[1] = (byte)TopLevel;
        hash.Append(System.Text.Encoding.ASCII.GetBytes(TFmt.Name));
        hash.Append(head);
        int ordinal = 0;
        CanonicalLevel(TopLevel, TopPage, hash, ref ordinal);
    }

    private void CanonicalLevel(int level, int page, IByteSink hash, ref int ordinal)
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
            hash.Append(rec);
            if (type == PtEntryType.Table)
                CanonicalLevel(level - 1, ChildPage(pte), hash, ref ordinal);
        }
    }

    public override void CollectTablePages(List<int> pages)
    {
        _collect.Clear();
        _collect.Add(TopPage);
        CollectTables(TopLevel, TopPage, checkMapped: false);
        pages.AddRange(_collect.Items);
        _collect.Clear();
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
