using Xunit;

namespace PtActors.Engine.Tests.Unit;

/// <summary>
/// SPEC §3 gather helpers (literal C arithmetic) and the domain-level gather behaviour of
/// SCRIPT-FORMAT Readings 2 and 3 (the later gather_range_pending).
/// </summary>
public class GatherTests
{
    private const ulong M = ulong.MaxValue;

    // ------------------------------------------------------------------ IotlbGather alone

    [Fact]
    public void Init_IsTheEmptyGather()
    {
        var g = new IotlbGather();
        Assert.Equal(M, g.Start);
        Assert.Equal(0UL, g.End);
        Assert.Equal(0UL, g.PgSize);
        Assert.False(g.Queued);
        Assert.Equal(0, g.FreeCount);
        Assert.False(g.HasRange);
        Assert.False(g.IsPending);

        g.AddRange(0x1000, 0x1000);
        g.AddFreePage(7);
        g.PgSize = 0x1000;
        g.Queued = true;
        Assert.True(g.IsPending);
        g.Init();
        Assert.Equal(M, g.Start);
        Assert.Equal(0UL, g.End);
        Assert.Equal(0UL, g.PgSize);
        Assert.False(g.Queued);
        Assert.Equal(0, g.FreeCount);
        Assert.False(g.IsPending);
    }

    [Theory]
    [InlineData(0UL, 0x1000UL)]
    [InlineData(0x5000UL, 0x1000UL)]
    [InlineData(0xffff_ffff_ffff_f000UL, 0x1000UL)]
    [InlineData(0UL, 0UL)]
    public void IsDisjoint_EmptyGatherIsNeverDisjoint(ulong iova, ulong size)
        => Assert.False(new IotlbGather().IsDisjoint(iova, size));

    [Theory]
    [InlineData(0x2000UL, 0x1000UL, false)]   // adjacent above
    [InlineData(0UL, 0x1000UL, false)]        // adjacent below
    [InlineData(0x1800UL, 0x1000UL, false)]   // overlapping
    [InlineData(0x1000UL, 0x1000UL, false)]   // identical
    [InlineData(0UL, 0x10000UL, false)]       // covering
    [InlineData(0x2001UL, 0x1000UL, true)]    // one byte of gap above
    [InlineData(0x3000UL, 0x1000UL, true)]
    [InlineData(0UL, 0x800UL, true)]          // gap below: end + 1 = 0x800 < 0x1000
    [InlineData(0UL, 0xfffUL, true)]          // one byte of gap below
    public void IsDisjoint_AdjacencyIsNotDisjoint(ulong iova, ulong size, bool expected)
    {
        var g = new IotlbGather();
        g.AddRange(0x1000, 0x1000);
        Assert.Equal(expected, g.IsDisjoint(iova, size));
    }

    [Fact]
    public void IsDisjoint_EndPlusOneWrapsAsInC()
    {
        // Query end + 1 wraps to 0: 0 < start, so a query ending at 2^64-1 is "disjoint" even when adjacent.
        var g = new IotlbGather();
        g.AddRange(0xffff_ffff_ffff_e000, 0x1000);
        Assert.True(g.IsDisjoint(0xffff_ffff_ffff_f000, 0x1000));

        // Gather end + 1 wraps to 0: any query start > 0 is "disjoint", even one inside the gathered range.
        var h = new IotlbGather();
        h.AddRange(0xffff_ffff_ffff_e000, 0x2000);
        Assert.Equal(M, h.End);
        Assert.True(h.IsDisjoint(0xffff_ffff_ffff_f000, 0x1000));
        Assert.True(h.IsDisjoint(0x1000, 0x1000));
        Assert.True(h.IsDisjoint(0, 0x1000));

        // A gather holding exactly [0, 0] has end == 0 and reads as empty: never disjoint.
        var z = new IotlbGather();
        z.AddRange(0, 1);
        Assert.Equal(0UL, z.Start);
        Assert.Equal(0UL, z.End);
        Assert.True(z.HasRange);
        Assert.False(z.IsDisjoint(0x10_0000, 0x1000));
    }

    [Fact]
    public void AddRange_TakesMinStartAndMaxEnd()
    {
        var g = new IotlbGather();
        g.AddRange(0x5000, 0x1000);
        Assert.Equal((0x5000UL, 0x5fffUL), (g.Start, g.End));
        g.AddRange(0x1000, 0x1000);
        Assert.Equal((0x1000UL, 0x5fffUL), (g.Start, g.End));
        g.AddRange(0x3000, 0x1000);
        Assert.Equal((0x1000UL, 0x5fffUL), (g.Start, g.End));
        g.AddRange(0x3000, 0x10000);
        Assert.Equal((0x1000UL, 0x12fffUL), (g.Start, g.End));
        Assert.True(g.HasRange);
    }

    [Fact]
    public void AddRange_SizeZeroRecordsEndIovaMinusOneWithWrap()
    {
        var g = new IotlbGather();
        g.AddRange(0x5000, 0);
        Assert.Equal(0x5000UL, g.Start);
        Assert.Equal(0x4fffUL, g.End);
        Assert.False(g.HasRange);
        Assert.False(g.IsPending);

        var w = new IotlbGather();
        w.AddRange(0, 0);
        Assert.Equal(0UL, w.Start);
        Assert.Equal(M, w.End);
        Assert.True(w.HasRange);

        var x = new IotlbGather();
        x.AddRange(0x1000, 0x1000);
        x.AddRange(0x8000, 0);          // end = max(0x1fff, 0x7fff)
        Assert.Equal((0x1000UL, 0x7fffUL), (x.Start, x.End));
    }

    [Fact]
    public void FreeList_SpliceAndTake()
    {
        var g = new IotlbGather();
        var list = new PageList();
        for (int i = 0; i < 10; i++)
            list.Add(i * 3);
        g.AddFreePage(100);
        g.Splice(list);
        Assert.Equal(0, list.Count);
        Assert.Equal(11, g.FreeCount);
        Assert.Equal(100, g.FreeList[0]);
        Assert.Equal(27, g.FreeList[10]);
        Assert.True(g.IsPending);
        Assert.False(g.HasRange);
        var target = new PageList();
        g.TakeFreeList(target);
        Assert.Equal(0, g.FreeCount);
        Assert.Equal(11, target.Count);
    }

    // ------------------------------------------------------------------ domain level

    private static IommuDomain Vtdss(PtFeatures flush, TableMemory? mem = null)
        => UnitHelpers.Make(PtConfig.Default(PtFormatKind.Vtdss) with { Features = flush }, mem);

    /// <summary>512 4 KiB leaves filling the level-0 table of [base, base + 2M) (PA misaligned to forbid a 2M leaf).</summary>
    private static void MapFull4KTable(IommuDomain d, ulong va)
        => Assert.Equal(Errno.None, d.IommuMap(va, va + 0x1000, 0x20_0000, UnitHelpers.RW));

    [Theory]
    [InlineData(PtFeatures.None)]
    [InlineData(PtFeatures.FlushRange)]
    [InlineData(PtFeatures.FlushRangeNoGaps)]
    [InlineData(PtFeatures.FlushRange | PtFeatures.FlushRangeNoGaps)]
    public void UnmapFast_RecordsIovaAndUnmapped_WhateverTheFlushFeatures(PtFeatures flush)
    {
        var d = Vtdss(flush);
        Assert.Equal(Errno.None, d.IommuMap(0x20_0000, 0x4000_0000, 0x20_0000, UnitHelpers.RW));
        var g = d.PendingGather;
        // The request is 4 KiB; the 2 MiB leaf is removed whole and (iova, unmapped) is recorded.
        Assert.Equal(0x20_0000UL, d.IommuUnmapFast(0x20_0000, 0x1000, g));
        Assert.Equal(0x20_0000UL, g.Start);
        Assert.Equal(0x3f_ffffUL, g.End);
        Assert.True(d.HasPendingGather);
        var f = d.IotlbSync(g);
        var kind = flush == PtFeatures.None ? FlushKind.All : FlushKind.Range;
        Assert.Equal(kind, f.Kind);
        Assert.Equal(0, f.FreedPages);
        if (kind == FlushKind.Range)
            Assert.Equal((0x20_0000UL, 0x3f_ffffUL), (f.Start, f.End));
        Assert.False(d.HasPendingGather);
        Assert.Equal(new IotlbFlush(FlushKind.None, M, 0, 0), d.IotlbSync(g));
    }

    [Fact]
    public void UnmapFast_ZeroResultIsRecordedLiterally()
    {
        var d = Vtdss(PtFeatures.FlushRange);
        var g = d.PendingGather;
        // A hole at 0x5000: (0x5000, 0) → start 0x5000, end 0x4fff: nothing pending.
        Assert.Equal(0UL, d.IommuUnmapFast(0x5000, 0x1000, g));
        Assert.Equal(0x5000UL, g.Start);
        Assert.Equal(0x4fffUL, g.End);
        Assert.False(g.IsPending);
        Assert.Equal(FlushKind.None, d.IotlbSync(g).Kind);

        // A hole at 0: end = 0 - 1 wraps to 2^64 - 1, so the sync covers everything.
        Assert.Equal(0UL, d.IommuUnmapFast(0, 0x1000, g));
        Assert.True(g.IsPending);
        Assert.Equal(new IotlbFlush(FlushKind.Range, 0, M, 0), d.IotlbSync(g));

        // After a real unmap, a zero result above it extends end to iova - 1.
        Assert.Equal(Errno.None, d.IommuMap(0x1000, 0x1000, 0x1000, UnitHelpers.RW));
        Assert.Equal(0x1000UL, d.IommuUnmapFast(0x1000, 0x1000, g));
        Assert.Equal(0UL, d.IommuUnmapFast(0x9000, 0x1000, g));
        Assert.Equal(new IotlbFlush(FlushKind.Range, 0x1000, 0x8fff, 0), d.IotlbSync(g));
    }

    [Fact]
    public void UnmapFast_UnalignedOrOutOfRange_RecordsNothing()
    {
        var d = Vtdss(PtFeatures.FlushRange);
        var g = d.PendingGather;
        Assert.Equal(0UL, d.IommuUnmapFast(0x800, 0x1000, g));
        Assert.Equal(0UL, d.IommuUnmapFast(0x1000, 0x800, g));
        Assert.Equal(0UL, d.IommuUnmapFast(0x1_0000_0000_0000, 0x1000, g)); // beyond 48 bits
        Assert.Equal(0UL, d.IommuUnmapFast(0x1000, 0, g));
        Assert.Equal(M, g.Start);
        Assert.Equal(0UL, g.End);
    }

    [Fact]
    public void ParkedPages_CountInTablePagesUntilTheSync_WhichReportsThem()
    {
        var mem = new TableMemory();
        var d = Vtdss(PtFeatures.FlushRange, mem);
        MapFull4KTable(d, 0);
        Assert.Equal(4, d.TablePages);  // top (L3), L2, L1, L0
        var g = d.PendingGather;
        Assert.Equal(0x20_0000UL, d.IommuUnmapFast(0, 0x20_0000, g));
        Assert.Equal(1, g.FreeCount);
        Assert.Equal(4, d.TablePages);
        Assert.Equal(4, mem.AllocatedPages);
        var f = d.IotlbSync(g);
        Assert.Equal(new IotlbFlush(FlushKind.Range, 0, 0x1f_ffff, 1), f);
        Assert.Equal(3, d.TablePages);
        Assert.Equal(3, mem.AllocatedPages);
        Assert.Equal(0, g.FreeCount);
    }

    [Fact]
    public void FlushRange_DisjointRangesMergeIntoOne()
    {
        var d = Vtdss(PtFeatures.FlushRange);
        MapFull4KTable(d, 0);
        Assert.Equal(Errno.None, d.IommuMap(0x4000_0000, 0, 0x1000, UnitHelpers.RW));
        var g = d.PendingGather;
        int before = d.TablePages;
        Assert.Equal(0x20_0000UL, d.IommuUnmapFast(0, 0x20_0000, g));
        Assert.Equal(0x1000UL, d.IommuUnmapFast(0x4000_0000, 0x1000, g));
        Assert.Equal(before, d.TablePages);
        Assert.Equal(new IotlbFlush(FlushKind.Range, 0, 0x4000_0fff, 1), d.IotlbSync(g));
        Assert.Equal(before - 1, d.TablePages);
    }

    [Theory]
    [InlineData(PtFeatures.FlushRangeNoGaps)]
    [InlineData(PtFeatures.FlushRange | PtFeatures.FlushRangeNoGaps)]
    public void NoGaps_DisjointRangeFirstSyncsSilently_AndTheNextSyncCountsOnlyItsOwnPages(PtFeatures flush)
    {
        var mem = new TableMemory();
        var d = Vtdss(flush, mem);
        MapFull4KTable(d, 0);
        Assert.Equal(Errno.None, d.IommuMap(0x4000_0000, 0, 0x1000, UnitHelpers.RW));
        var g = d.PendingGather;
        int before = d.TablePages;
        Assert.Equal(0x20_0000UL, d.IommuUnmapFast(0, 0x20_0000, g));
        Assert.Equal(1, g.FreeCount);
        Assert.Equal(before, d.TablePages);

        // Adjacent: not disjoint, merged.
        Assert.Equal(0UL, d.IommuUnmapFast(0x20_0000, 0x1000, g)); // hole: (0x200000, 0) → end stays
        Assert.Equal((0UL, 0x1f_ffffUL), (g.Start, g.End));
        Assert.Equal(1, g.FreeCount);

        // Disjoint: the pending gather is synced first (its parked page freed), then the range recorded.
        Assert.Equal(0x1000UL, d.IommuUnmapFast(0x4000_0000, 0x1000, g));
        Assert.Equal(before - 1, d.TablePages);
        Assert.Equal(before - 1, mem.AllocatedPages);
        Assert.Equal(0, g.FreeCount);
        Assert.Equal((0x4000_0000UL, 0x4000_0fffUL), (g.Start, g.End));
        Assert.Equal(new IotlbFlush(FlushKind.Range, 0x4000_0000, 0x4000_0fff, 0), d.IotlbSync(g));
        Assert.Equal(FlushKind.None, d.IotlbSync(g).Kind);
    }

    [Fact]
    public void FlushNone_SyncIsAFlushAllWithItsFreedPages()
    {
        var d = Vtdss(PtFeatures.None);
        MapFull4KTable(d, 0);
        var g = d.PendingGather;
        Assert.Equal(0x20_0000UL, d.IommuUnmapFast(0, 0x20_0000, g));
        var f = d.IotlbSync(g);
        Assert.Equal(FlushKind.All, f.Kind);
        Assert.Equal(1, f.FreedPages);
        Assert.Equal(FlushKind.None, d.IotlbSync(g).Kind);
    }

    [Fact]
    public void QueuedGather_ParksPagesButRecordsNoRange()
    {
        var d = Vtdss(PtFeatures.FlushRange | PtFeatures.FlushRangeNoGaps);
        MapFull4KTable(d, 0);
        var g = new IotlbGather { Queued = true };
        Assert.Equal(0x20_0000UL, d.IommuUnmapFast(0, 0x20_0000, g));
        Assert.False(g.HasRange);
        Assert.Equal(1, g.FreeCount);
        Assert.True(g.IsPending);
        Assert.Equal(1, d.IotlbSync(g).FreedPages);
    }

    [Fact]
    public void IommuUnmap_UsesItsOwnGather_AndFreesAtOnce()
    {
        var mem = new TableMemory();
        var d = Vtdss(PtFeatures.FlushRange, mem);
        MapFull4KTable(d, 0);
        Assert.Equal(0x20_0000UL, d.IommuUnmap(0, 0x20_0000));
        Assert.Equal(3, d.TablePages);
        Assert.Equal(3, mem.AllocatedPages);
        Assert.False(d.HasPendingGather);
        Assert.Equal(FlushKind.None, d.IotlbSync(d.PendingGather).Kind);
    }

    [Fact]
    public void Map_ReplacingEmptyTables_FreesThemThroughItsOwnGather()
    {
        var mem = new TableMemory();
        var d = Vtdss(PtFeatures.FlushRange, mem);
        Assert.Equal(Errno.None, d.IommuMap(0x1000, 0x1000, 0x1000, UnitHelpers.RW));
        Assert.Equal(0x1000UL, d.IommuUnmap(0x1000, 0x1000));
        Assert.Equal(4, d.TablePages);    // the emptied level-0 table stays (partly covered)
        Assert.Equal(Errno.None, d.IommuMap(0, 0, 0x20_0000, UnitHelpers.RW));
        Assert.Equal(3, d.TablePages);    // replaced by the 2M leaf, freed before map returned
        Assert.Equal(3, mem.AllocatedPages);
        Assert.False(d.HasPendingGather);
        Assert.Equal([(0UL, 0x20_0000UL)], UnitHelpers.LeafSizes(d));
    }

    private sealed class Recorder : IIotlbSyncHandler
    {
        public List<(FlushKind Kind, int Parked, int Allocated, ulong Start, ulong End)> Calls { get; } = new();

        public void OnIotlbSync(IommuDomain domain, IotlbGather gather, FlushKind kind)
            => Calls.Add((kind, gather.FreeCount, domain.Memory.AllocatedPages, gather.Start, gather.End));
    }

    [Fact]
    public void SyncHandler_SeesTheGatherBeforeItsPagesAreFreed()
    {
        var d = Vtdss(PtFeatures.FlushRange);
        var rec = new Recorder();
        d.SyncHandler = rec;
        MapFull4KTable(d, 0);
        rec.Calls.Clear();
        var g = d.PendingGather;
        d.IommuUnmapFast(0, 0x20_0000, g);
        d.IotlbSync(g);
        var call = Assert.Single(rec.Calls);
        Assert.Equal((FlushKind.Range, 1, 4, 0UL, 0x1f_ffffUL), call);
        Assert.Equal(3, d.Memory.AllocatedPages);
    }
}
