using Xunit;

namespace PtActors.Engine.Tests.Unit;

/// <summary>SPEC §2.4 set_dirty / read_and_clear_dirty with SCRIPT-FORMAT Reading 6 for the runs.</summary>
public class DirtyTests
{
    private const ulong K4 = 0x1000, M2 = 0x20_0000;

    private static List<(ulong Start, ulong End)> Read(IommuDomain d, ulong iova, ulong size, bool noClear = false)
    {
        var sink = new UnitHelpers.DirtyRuns();
        Assert.Equal(Errno.None, d.ReadAndClearDirty(iova, size, noClear, sink));
        return sink.Runs();
    }

    private static List<(ulong Iova, ulong Length)> ReadRaw(IommuDomain d, ulong iova, ulong size, bool noClear = true)
    {
        var sink = new UnitHelpers.DirtyRuns();
        Assert.Equal(Errno.None, d.ReadAndClearDirty(iova, size, noClear, sink));
        return sink.Raw;
    }

    private static bool ItemDirty(IommuDomain d, ulong va, int level)
    {
        var at = UnitHelpers.ItemAt(d, va, level);
        Assert.NotNull(at);
        var (table, index) = at!.Value;
        return (table[index] & d.FormatOps.DirtyBit) != 0;
    }

    [Fact]
    public void Vtdss_SingleItemLeaf_RunStartsAtTheQueryIova_AndHasTheFullItemSize()
    {
        var d = UnitHelpers.Make(PtFormatKind.Vtdss);
        Assert.Equal(Errno.None, d.IommuMap(M2, 0x4000_0000, M2, UnitHelpers.RW));
        Assert.Equal(Errno.None, d.SetDirty(M2 + 0x5000));
        Assert.Equal([(M2 + K4, M2)], ReadRaw(d, M2 + K4, K4));
        Assert.Equal([(M2 + K4, 0x40_0fffUL)], Read(d, M2 + K4, K4, noClear: true));
        Assert.Equal([(M2, 0x3f_ffffUL)], Read(d, M2, K4, noClear: true));
        Assert.Equal([(M2, 0x3f_ffffUL)], Read(d, 0, 0x100_0000, noClear: true));
    }

    [Fact]
    public void Vtdss_4KLeaf_QueryInsideTheItem_StartsThere()
    {
        var d = UnitHelpers.Make(PtFormatKind.Vtdss);
        Assert.Equal(Errno.None, d.IommuMap(K4, 0, K4, UnitHelpers.RW));
        Assert.Equal(Errno.None, d.SetDirty(0x1abc));
        Assert.Equal([(0x1800UL, K4)], ReadRaw(d, 0x1800, 0x100));
        Assert.Equal([(0x1800UL, 0x27ffUL)], Read(d, 0x1800, 0x100));
        Assert.Empty(Read(d, 0x1800, 0x100));
    }

    [Fact]
    public void Amdv1_Contiguous_IsWholeFromThereButNotPastTheQuerysLastItem()
    {
        var d = UnitHelpers.Make(PtFormatKind.Amdv1);
        Assert.Equal(Errno.None, d.IommuMap(0x1_0000, 0x8_0000, 0x1_0000, UnitHelpers.RW));
        Assert.Equal(Errno.None, d.SetDirty(0x1_3000));
        Assert.Equal([(0x1_0000UL, 0x1_ffffUL)], Read(d, 0, 0x10_0000, noClear: true));
        Assert.Equal([(0x1_3000UL, 0x1_3fffUL)], Read(d, 0x1_3000, K4, noClear: true));
        Assert.Equal([(0x1_3000UL, 0x1_ffffUL)], Read(d, 0x1_3000, 0x10_0000, noClear: true));
        Assert.Equal([(0x1_0000UL, 0x1_0fffUL)], Read(d, 0x1_0000, K4, noClear: true));
        Assert.Equal([(0x1_8000UL, 0x1_bfffUL)], Read(d, 0x1_8000, 0x4000, noClear: true));
        Assert.Equal([(0x1_0000UL, 0x1_ffffUL)], Read(d, 0x1_0000, 0x1_0000, noClear: true));
        // One item past the entry: whole entry (not one item short).
        Assert.Equal([(0x1_0000UL, 0x1_0000UL)], ReadRaw(d, 0x1_0000, 0x1_1000));
    }

    [Fact]
    public void Amdv1_ContiguousAboveLevel0_QueryInsideAnItem_RunsFromTheQueryIovaToTheEntryOrQueryEnd()
    {
        // A 4 MiB entry = 2 level-1 items [0x400000, 0x7fffff]; the query starts inside item 2.
        // Reading 6: from there (the query IOVA) to the entry's end, but not past the query's last item.
        var d = UnitHelpers.Make(PtFormatKind.Amdv1);
        Assert.Equal(Errno.None, d.IommuMap(0x40_0000, 0xc0_0000, 0x40_0000, UnitHelpers.RW));
        Assert.Equal(Errno.None, d.SetDirty(0x70_0000));
        Assert.Equal([(0x40_0000UL, 0x7f_ffffUL)], Read(d, 0, 0x100_0000, noClear: true));
        Assert.Equal([(0x60_0000UL, 0x7f_ffffUL)], Read(d, 0x60_0000, 0x100_0000, noClear: true));
        // Last item of the query is item 2 (ends 0x5fffff).
        Assert.Equal([(0x50_0000UL, 0x5f_ffffUL)], Read(d, 0x50_0000, 0x10_0000, noClear: true));
        // The query reaches past the entry: the run stops at the entry's end (0x7fffff).
        Assert.Equal([(0x50_0000UL, 0x7f_ffffUL)], Read(d, 0x50_0000, 0x40_0000, noClear: true));
    }

    [Fact]
    public void Amdv1_ContiguousAtLevel0_QueryInsideAnItem_StopsAtTheQuerysLastItem()
    {
        var d = UnitHelpers.Make(PtFormatKind.Amdv1);
        Assert.Equal(Errno.None, d.IommuMap(0x1_0000, 0x8_0000, 0x1_0000, UnitHelpers.RW));
        Assert.Equal(Errno.None, d.SetDirty(0x1_3000));
        // Query [0x13800, 0x138ff] lies in item 0x13: the run is [0x13800, 0x13fff].
        Assert.Equal([(0x1_3800UL, 0x1_3fffUL)], Read(d, 0x1_3800, 0x100, noClear: true));
        // Query [0x1f800, 0x2f7ff] reaches past the entry's end 0x1ffff.
        Assert.Equal([(0x1_f800UL, 0x1_ffffUL)], Read(d, 0x1_f800, 0x1_0000, noClear: true));
    }

    [Fact]
    public void Amdv1_SetDirtyMarksOnlyTheAddressedItem_AnyItemMakesTheEntryDirty_ClearCleansAll()
    {
        var d = UnitHelpers.Make(PtFormatKind.Amdv1);
        Assert.Equal(Errno.None, d.IommuMap(0x1_0000, 0x8_0000, 0x1_0000, UnitHelpers.RW));
        Assert.Equal(Errno.None, d.SetDirty(0x1_f000));
        Assert.Equal(Errno.None, d.SetDirty(0x1_3000));
        for (ulong va = 0x1_0000; va < 0x2_0000; va += K4)
            Assert.Equal(va == 0x1_f000 || va == 0x1_3000, ItemDirty(d, va, 0));

        // Dirty through the last item only is still reported for the first.
        Assert.Equal([(0x1_0000UL, 0x1_0fffUL)], Read(d, 0x1_0000, K4, noClear: true));
        Assert.True(ItemDirty(d, 0x1_f000, 0));
        // Clearing (even through a one-item query) cleans every item of the entry.
        Assert.Equal([(0x1_0000UL, 0x1_0fffUL)], Read(d, 0x1_0000, K4));
        for (ulong va = 0x1_0000; va < 0x2_0000; va += K4)
            Assert.False(ItemDirty(d, va, 0));
        Assert.Empty(Read(d, 0, 0x10_0000));
        // The item bits other than D are untouched.
        Assert.Equal(0x8_5000UL, d.IommuIovaToPhys(0x1_5000));
        Assert.Equal([(0x1_0000UL, 0x1_0000UL)], UnitHelpers.LeafSizes(d));
    }

    [Fact]
    public void NoClear_LeavesBits_ClearRemovesThem_ATouchBringsThemBack()
    {
        var d = UnitHelpers.Make(PtFormatKind.Vtdss);
        Assert.Equal(Errno.None, d.IommuMap(0, 0, 0x4000, UnitHelpers.RW));
        Assert.Equal(Errno.None, d.SetDirty(K4));
        Assert.Equal([(K4, 0x1fffUL)], Read(d, 0, 0x4000, noClear: true));
        Assert.True(ItemDirty(d, K4, 0));
        Assert.Equal([(K4, 0x1fffUL)], Read(d, 0, 0x4000, noClear: true));
        Assert.Equal([(K4, 0x1fffUL)], Read(d, 0, 0x4000));
        Assert.False(ItemDirty(d, K4, 0));
        Assert.Empty(Read(d, 0, 0x4000));
        Assert.Equal(Errno.None, d.SetDirty(K4 + 0x10));
        Assert.Equal([(K4, 0x1fffUL)], Read(d, 0, 0x4000));
        // A null sink still clears.
        Assert.Equal(Errno.None, d.SetDirty(0x3000));
        Assert.Equal(Errno.None, d.ReadAndClearDirty(0, 0x4000, noClear: false, null));
        Assert.Empty(Read(d, 0, 0x4000));
    }

    [Fact]
    public void Runs_AreMergedWhenTouching_AndSplitByClean()
    {
        var d = UnitHelpers.Make(PtFormatKind.Vtdss);
        Assert.Equal(Errno.None, d.IommuMap(0, 0, 0x4000, UnitHelpers.RW));
        Assert.Equal(Errno.None, d.IommuMap(0x1f_f000, 0, 0x2000, UnitHelpers.RW)); // spans two level-0 tables
        Assert.Equal(Errno.None, d.SetDirty(K4));
        Assert.Equal(Errno.None, d.SetDirty(0x2000));
        Assert.Equal([(K4, K4), (0x2000UL, K4)], ReadRaw(d, 0, 0x4000));
        Assert.Equal([(K4, 0x2fffUL)], Read(d, 0, 0x4000));
        Assert.Equal(Errno.None, d.SetDirty(0));
        Assert.Equal(Errno.None, d.SetDirty(0x2000));
        Assert.Equal([(0UL, 0xfffUL), (0x2000UL, 0x2fffUL)], Read(d, 0, 0x4000));
        Assert.Equal(Errno.None, d.SetDirty(0x1f_f000));
        Assert.Equal(Errno.None, d.SetDirty(0x20_0000));
        // Across the table boundary and over the hole between, which is skipped.
        Assert.Equal([(0x1f_f000UL, 0x20_0fffUL)], Read(d, 0, 0x40_0000));
    }

    [Theory]
    [InlineData(PtFormatKind.X86_64)]
    [InlineData(PtFormatKind.Riscv64)]
    public void FormatsWithoutDirty_AreEopnotsuppBeforeAnyRangeCheck(PtFormatKind kind)
    {
        var d = UnitHelpers.Make(kind);
        Assert.Equal(Errno.None, d.IommuMap(0, 0, K4, UnitHelpers.RW));
        var sink = new UnitHelpers.DirtyRuns();
        Assert.Equal(Errno.EOPNOTSUPP, d.ReadAndClearDirty(0, K4, false, sink));
        Assert.Equal(Errno.EOPNOTSUPP, d.ReadAndClearDirty(0, 0, false, sink));
        Assert.Equal(Errno.EOPNOTSUPP, d.ReadAndClearDirty(0x8000_0000_0000_0000, K4, true, sink));
        Assert.Equal(Errno.EOPNOTSUPP, d.ReadAndClearDirty(ulong.MaxValue, 2, false, sink));
        Assert.Equal(Errno.EOPNOTSUPP, d.SetDirty(0));
        Assert.Equal(Errno.EOPNOTSUPP, d.SetDirty(0x5000));
        Assert.Equal(Errno.EOPNOTSUPP, d.SetDirty(0x8000_0000_0000_0000));
        Assert.Empty(sink.Raw);
    }

    [Theory]
    [InlineData(PtFormatKind.Amdv1, 1UL << 39)]
    [InlineData(PtFormatKind.Vtdss, 1UL << 48)]
    public void Touch_UnmappedIsEnoent_OutOfRangeIsErange(PtFormatKind kind, ulong beyond)
    {
        var d = UnitHelpers.Make(kind);
        Assert.Equal(Errno.ENOENT, d.SetDirty(0x5000));
        Assert.Equal(Errno.None, d.IommuMap(0x5000, 0, K4, UnitHelpers.RW));
        Assert.Equal(Errno.None, d.SetDirty(0x5fff));
        Assert.Equal(Errno.ENOENT, d.SetDirty(0x6000));
        Assert.Equal(Errno.ERANGE, d.SetDirty(beyond));
        Assert.Equal(Errno.ERANGE, d.SetDirty(ulong.MaxValue));
    }

    [Theory]
    [InlineData(PtFormatKind.Amdv1, 1UL << 39)]
    [InlineData(PtFormatKind.Vtdss, 1UL << 48)]
    public void ReadAndClear_RangeErrors(PtFormatKind kind, ulong beyond)
    {
        var d = UnitHelpers.Make(kind);
        var sink = new UnitHelpers.DirtyRuns();
        Assert.Equal(Errno.EINVAL, d.ReadAndClearDirty(0, 0, false, sink));
        Assert.Equal(Errno.EOVERFLOW, d.ReadAndClearDirty(ulong.MaxValue - 0xfff, 0x2000, false, sink));
        Assert.Equal(Errno.ERANGE, d.ReadAndClearDirty(beyond, K4, false, sink));
        Assert.Equal(Errno.ERANGE, d.ReadAndClearDirty(beyond - K4, 2 * K4, false, sink));
        // Holes only: no error, nothing reported.
        Assert.Equal(Errno.None, d.ReadAndClearDirty(0, beyond, false, sink));
        Assert.Empty(sink.Raw);
    }

    [Fact]
    public void Clearing_UsesAnInternalGatherThatNeverShowsInSync()
    {
        var d = UnitHelpers.Make(PtConfig.Default(PtFormatKind.Vtdss) with { Features = PtFeatures.FlushRange | PtFeatures.FlushRangeNoGaps });
        Assert.Equal(Errno.None, d.IommuMap(0, 0, M2, UnitHelpers.RW));
        Assert.Equal(Errno.None, d.SetDirty(0));
        Assert.Single(Read(d, 0, M2));
        Assert.False(d.HasPendingGather);
        Assert.Equal(FlushKind.None, d.IotlbSync(d.PendingGather).Kind);
    }
}
