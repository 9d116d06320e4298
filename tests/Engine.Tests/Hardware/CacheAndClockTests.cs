using PtActors.Engine.Hardware;
using Xunit;

namespace PtActors.Engine.Tests.Hardware;

public class CacheAndClockTests
{
    [Fact]
    public void LargeEntriesOccupyOneSlotAndAreFoundFromAnyAddressInside()
    {
        var tlb = new Iotlb(new IotlbConfig(16, 4));
        tlb.Fill(1, 0x4000_0000, 30, 0x8000_0000, IommuProt.Read);
        tlb.Fill(1, 0x1000, 12, 0x9000, IommuProt.Read | IommuProt.Write);
        Assert.Equal(2, tlb.Count);
        int slot = tlb.Lookup(1, 0x4123_4567);
        Assert.True(slot >= 0);
        Assert.Equal(0x4000_0000UL, tlb[slot].Va);
        Assert.Equal(30, tlb[slot].SizeLg2);
        Assert.Equal(-1, tlb.Lookup(2, 0x4123_4567));   // another domain id
        Assert.Equal(-1, tlb.Lookup(1, 0x2000));
    }

    [Fact]
    public void LruEvictsTheLeastRecentlyUsedWayOfASet()
    {
        var tlb = new Iotlb(new IotlbConfig(2, 2));       // one set of two ways
        tlb.Fill(1, 0x1000, 12, 0x1000, IommuProt.Read);
        tlb.Fill(1, 0x2000, 12, 0x2000, IommuProt.Read);
        Assert.True(tlb.Lookup(1, 0x1000) >= 0);          // 0x1000 is now the most recent
        tlb.Fill(1, 0x3000, 12, 0x3000, IommuProt.Read);
        Assert.True(tlb.Lookup(1, 0x1000) >= 0);
        Assert.Equal(-1, tlb.Lookup(1, 0x2000));
        Assert.Equal(1, tlb.Evictions);
    }

    [Fact]
    public void FlushAllModeDropsEverythingWhenFull()
    {
        var tlb = new Iotlb(new IotlbConfig(4, 4, IotlbMode.FlushAll));
        for (ulong i = 0; i < 4; i++)
            tlb.Fill(1, i << 12, 12, i << 12, IommuProt.Read);
        Assert.Equal(4, tlb.Count);
        tlb.Fill(1, 0x10000, 12, 0, IommuProt.Read);
        Assert.Equal(1, tlb.Count);
        Assert.Equal(1, tlb.FullFlushes);
        Assert.Equal(-1, tlb.Lookup(1, 0));
    }

    [Fact]
    public void WalkCacheReturnsTheDeepestCachedTable()
    {
        var wc = new WalkCache(new WalkCacheConfig());
        wc.Fill(1, 3, 0x1234_5000, 10);
        wc.Fill(1, 1, 0x1234_5000, 12);
        Assert.Equal(1, wc.Lookup(1, 0x1234_6000, 3, out int page, out _));
        Assert.Equal(12, page);
        Assert.Equal(3, wc.Lookup(1, 0x7000_0000, 3, out page, out _));
        Assert.Equal(10, page);
        Assert.True(wc.Invalidate(1, 0x1220_0000, 0x1220_0fff) >= 1);
        Assert.Equal(-1, wc.Lookup(1, 0x1234_6000, 3, out _, out _));
    }

    [Fact]
    public void ClockFiresEventsInTimeOrderOnlyWhenAdvanced()
    {
        var clock = new SimClock();
        var fired = new List<(int, ulong)>();
        clock.ScheduleIn(2000, t => fired.Add((2, t)));
        clock.ScheduleIn(1000, t => fired.Add((1, t)));
        var cancelled = clock.ScheduleIn(1500, t => fired.Add((9, t)));
        cancelled.Cancel();
        Assert.Equal(0, clock.Advance(999));
        Assert.Empty(fired);
        Assert.Equal(2, clock.Advance(5000));
        Assert.Equal([(1, 1000UL), (2, 2000UL)], fired);
        Assert.Equal(5999UL, clock.NowNs);
    }
}
