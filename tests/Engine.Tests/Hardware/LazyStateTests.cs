using PtActors.Engine.Hardware;
using Xunit;

namespace PtActors.Engine.Tests.Hardware;

/// <summary>
/// The unit's state is allocated as it is used: flush-queue slots as the ring fills, one re-armed timer per
/// domain instead of an event per arming, nothing per operation; and the structures behind that keep the
/// order and results of what they replace.
/// </summary>
public class LazyStateTests
{
    private const IommuProt RW = IommuProt.Read | IommuProt.Write;

    // ------------------------------------------------------------------ FlushQueue

    [Fact]
    public void AFlushQueueAllocatesItsSlotsAsItFills()
    {
        var fq = new FlushQueue(256);
        Assert.Equal(0, fq.AllocatedSlots);
        Assert.True(fq.IsEmpty);
        Assert.Equal(0, fq.Count);
        Assert.False(fq.IsFull);
        fq.Add().Id = 0;
        Assert.Equal(8, fq.AllocatedSlots);
        for (int i = 1; i < 20; i++)
            fq.Add().Id = i;
        Assert.Equal(32, fq.AllocatedSlots);
        Assert.Equal(20, fq.Count);
    }

    [Fact]
    public void AFlushQueueKeepsFifoOrderAcrossWrapAndGrowth()
    {
        var fq = new FlushQueue(64);
        long next = 0, expect = 0;
        for (int round = 0; round < 50; round++)
        {
            // Add a few more than are removed, so the ring wraps while it grows.
            for (int i = 0; i < 3 && !fq.IsFull; i++)
                fq.Add().Id = next++;
            for (int i = 0; i < fq.Count; i++)
                Assert.Equal(expect + i, fq[i].Id);
            Assert.Equal(expect, fq.Oldest.Id);
            fq.RemoveOldest();
            expect++;
        }
        Assert.True(fq.AllocatedSlots <= 64);
    }

    [Fact]
    public void AFlushQueueIsFullAtOneSlotShortOfItsSizeAndRefusesMore()
    {
        var fq = new FlushQueue(16);
        for (int i = 0; i < 15; i++)
        {
            Assert.False(fq.IsFull);
            fq.Add().Id = i;
        }
        Assert.True(fq.IsFull);
        Assert.Equal(16, fq.AllocatedSlots);
        Assert.Throws<InvalidOperationException>(() => fq.Add());
        fq.RemoveOldest();
        Assert.False(fq.IsFull);
        fq.Add().Id = 15;
        Assert.Equal(1, fq.Oldest.Id);
    }

    [Fact]
    public void AFlushQueueSlotKeepsItsPageListForReuseWhenTheRingGrows()
    {
        var fq = new FlushQueue(64);
        var pages = new PageList();
        fq.Add().Pages = pages;
        fq.RemoveOldest();
        for (int i = 0; i < 10; i++)
            fq.Add();                                   // grows from 8 to 16 slots
        var reused = new List<PageList>();
        while (!fq.IsEmpty)
        {
            if (fq.Oldest.Pages is { } p)
                reused.Add(p);
            fq.RemoveOldest();
        }
        for (int i = 0; i < 15; i++)                   // every slot, once
        {
            if (fq.Add().Pages is { } p)
                reused.Add(p);
        }
        Assert.Contains(pages, reused);
    }

    [Fact]
    public void AFlushQueueSizeMustBeAPowerOfTwo()
    {
        Assert.Throws<ArgumentException>(() => new FlushQueue(1));
        Assert.Throws<ArgumentException>(() => new FlushQueue(24));
    }

    // ------------------------------------------------------------------ SimClock re-arming

    [Fact]
    public void ReschedulingAnEventReplacesItsEarlierArming()
    {
        var clock = new SimClock();
        var fired = new List<ulong>();
        var ev = new TimerEvent(fired.Add);
        Assert.True(ev.Cancelled);                      // not armed yet
        clock.Reschedule(ev, 1000);
        clock.Reschedule(ev, 3000);
        Assert.False(ev.Cancelled);
        Assert.Equal(3000UL, ev.DueNs);
        Assert.Equal(2, clock.PendingEvents);           // as a cancelled event and a new one would be
        Assert.Equal(0, clock.AdvanceTo(2000));
        Assert.Empty(fired);
        Assert.Equal(1, clock.AdvanceTo(5000));
        Assert.Equal([3000UL], fired);
        Assert.True(ev.Cancelled);
        clock.RescheduleIn(ev, 10);                     // a fired event can be armed again
        Assert.Equal(1, clock.Advance(10));
        Assert.Equal([3000UL, 5010UL], fired);
    }

    [Fact]
    public void AReArmedEventFiresInTheOrderOfItsLatestArming()
    {
        var clock = new SimClock();
        var order = new List<string>();
        var a = new TimerEvent(_ => order.Add("a"));
        clock.Reschedule(a, 1000);
        clock.Schedule(1000, _ => order.Add("b"));
        clock.Reschedule(a, 1000);                      // now after b, as a new event would be
        clock.Schedule(1000, _ => order.Add("c"));
        Assert.Equal(3, clock.Advance(1000));
        Assert.Equal(["b", "a", "c"], order);
    }

    [Fact]
    public void CancellingAReArmedEventKeepsEveryArmingFromFiring()
    {
        var clock = new SimClock();
        int fired = 0;
        var ev = new TimerEvent(_ => fired++);
        clock.Reschedule(ev, 100);
        clock.Reschedule(ev, 200);
        ev.Cancel();
        Assert.Equal(0, clock.Advance(1000));
        Assert.Equal(0, fired);
        Assert.Equal(0, clock.PendingEvents);
    }

    // ------------------------------------------------------------------ IOTLB and walk cache

    [Fact]
    public void InvalidateDomainRemovesOnlyThatDomainsEntries()
    {
        var tlb = new Iotlb(new IotlbConfig());
        for (ulong i = 0; i < 8; i++)
        {
            tlb.Fill(1, i << 12, 12, i << 12, IommuProt.Read);
            tlb.Fill(2, i << 12, 12, i << 12, IommuProt.Read);
        }
        tlb.Fill(1, 0x4000_0000, 30, 0x8000_0000, IommuProt.Read);
        Assert.Equal(9, tlb.InvalidateDomain(1));
        Assert.Equal(8, tlb.Count);
        Assert.Equal(-1, tlb.Lookup(1, 0x4000_1000));
        Assert.True(tlb.Lookup(2, 0x3000) >= 0);
        Assert.Equal(0, tlb.InvalidateDomain(1));
    }

    [Fact]
    public void MarkingALargeRangeSuspectSweepsWithoutRemoving()
    {
        var tlb = new Iotlb(new IotlbConfig());
        for (ulong i = 0; i < 8; i++)
            tlb.Fill(1, i << 12, 12, i << 12, IommuProt.Read);
        tlb.Fill(2, 0x1000, 12, 0x1000, IommuProt.Read);
        // 1 GiB of 4 KiB entries is far beyond the probe limit: the whole cache is swept.
        Assert.Equal(8, tlb.InvalidateRange(1, 0, 0x3fff_ffff, remove: false));
        Assert.Equal(9, tlb.Count);
        for (ulong i = 0; i < 8; i++)
            Assert.True(tlb[tlb.Lookup(1, i << 12)].Suspect);
        Assert.False(tlb[tlb.Lookup(2, 0x1000)].Suspect);
    }

    [Fact]
    public void FillReplacesTheSameTagThenAFreeWayThenTheLeastRecentlyUsed()
    {
        var tlb = new Iotlb(new IotlbConfig(4, 4));         // one set of four ways
        int a = tlb.Fill(1, 0x1000, 12, 0x1000, IommuProt.Read);
        int b = tlb.Fill(1, 0x2000, 12, 0x2000, IommuProt.Read);
        tlb.Remove(a);                                       // a free way before b's
        Assert.Equal(b, tlb.Fill(1, 0x2000, 12, 0x9000, IommuProt.Read));
        Assert.Equal(0x9000UL, tlb[b].Pa);
        Assert.Equal(a, tlb.Fill(1, 0x3000, 12, 0x3000, IommuProt.Read));
        int c = tlb.Fill(1, 0x4000, 12, 0x4000, IommuProt.Read);
        int d = tlb.Fill(1, 0x5000, 12, 0x5000, IommuProt.Read);
        Assert.Equal(4, tlb.Count);
        Assert.Equal(0, tlb.Evictions);
        tlb.Lookup(1, 0x2000);                               // b is now the most recent; 0x3000 the least
        Assert.Equal(a, tlb.Fill(1, 0x6000, 12, 0x6000, IommuProt.Read));
        Assert.Equal(1, tlb.Evictions);
        Assert.Equal(-1, tlb.Lookup(1, 0x3000));
        Assert.True(new[] { b, c, d }.All(s => tlb[s].SizeLg2 == 12));
    }

    [Fact]
    public void WalkCacheLevelsEmptiedByInvalidationFillAgain()
    {
        var wc = new WalkCache(new WalkCacheConfig(Level1: 8, Level2: 7, Level3: 1, Upper: 1, Ways: 1));
        for (ulong i = 0; i < 16; i++)
            wc.Fill(1, 1, i << 21, (int)i);
        wc.Fill(1, 2, 0, 100);
        wc.Fill(1, 3, 0, 200);
        Assert.Equal(1, wc.Lookup(1, 15UL << 21, 3, out int page, out _));
        Assert.Equal(15, page);
        Assert.True(wc.Invalidate(1, 0, ulong.MaxValue) >= 3);
        Assert.Equal(-1, wc.Lookup(1, 15UL << 21, 3, out _, out _));
        Assert.Equal(0, wc.MarkSuspect(1, 0, ulong.MaxValue));
        wc.Fill(1, 2, 0x4000_0000, 300, suspect: true);
        Assert.Equal(2, wc.Lookup(1, 0x4000_1000, 3, out page, out bool suspect));
        Assert.Equal(300, page);
        Assert.True(suspect);
    }

    // ------------------------------------------------------------------ the unit

    [Fact]
    public void ARangeFlushKeepsTheUnmapsItDidNotCoverInTheirStaleWindow()
    {
        // Split mode, batch:4 on a NO_GAPS format: a disjoint unmap first syncs the pending range, so the
        // flush covers the earlier unmap only; the later one's stale hit is still in its window.
        var clock = new SimClock();
        var unit = new IommuUnit("iommu0", new IommuUnitConfig { Policy = new FlushPolicySpec(FlushPolicyKind.Batch, 4) }, clock);
        var config = PtConfig.Default(PtFormatKind.X86_64) with { Features = PtFeatures.FlushRangeNoGaps | PtFeatures.SignExtend };
        Assert.Equal(Errno.None, IommuDomain.Create(config, new TableMemory(), out var d));
        Assert.True(d!.HasFeature(PtFeatures.FlushRangeNoGaps));
        var dev = unit.Device("dev0");
        Assert.Equal(Errno.None, unit.Attach(dev, d!, splitMode: true));
        Assert.Equal(Errno.None, d!.IommuMap(0x1000, 0x1000, 0x1000, RW));
        Assert.Equal(Errno.None, d.IommuMap(0x80_0000, 0x80_0000, 0x1000, RW));
        Assert.Equal(DmaOutcome.Miss, unit.Dma(dev, 0x1000, false).Outcome);
        Assert.Equal(DmaOutcome.Miss, unit.Dma(dev, 0x80_0000, false).Outcome);
        var released = new List<long>();
        unit.UnmapReleased = (_, id) => released.Add(id);

        Assert.Equal(0x1000UL, d.IommuUnmapFast(0x1000, 0x1000, new IotlbGather()));
        unit.Unmapped(d, 1, 0x1000, 0x1000);
        clock.Advance(100);
        Assert.Equal(0x1000UL, d.IommuUnmapFast(0x80_0000, 0x1000, new IotlbGather()));
        unit.Unmapped(d, 2, 0x80_0000, 0x1000);
        Assert.Equal([1L], released);
        Assert.Equal(1, unit.Stats.Invalidations);

        clock.Advance(50);
        Assert.Equal(DmaOutcome.Stale, unit.Dma(dev, 0x80_0000, false).Outcome);
        Assert.Equal(1, unit.Stats.StaleInWindow);
        Assert.Equal(50, unit.Stats.MaxStaleWindowNs);
        Assert.Equal(0, unit.Stats.StaleViolations);
        Assert.Equal(DmaOutcome.Fault, unit.Dma(dev, 0x1000, false).Outcome);
    }

    [Theory]
    [InlineData("lazy")]
    [InlineData("lazy-single")]
    [InlineData("batch:32")]
    [InlineData("strict")]
    public void BindingADomainDoesNotAllocateItsFlushQueue(string policy)
    {
        Assert.True(FlushPolicySpec.TryParse(policy, out var spec));
        var unit = new IommuUnit("iommu0", new IommuUnitConfig { Policy = spec, Cpus = 8 }, new SimClock());
        Assert.Equal(Errno.None, IommuDomain.Create(PtConfig.Default(PtFormatKind.X86_64), new TableMemory(), out var d));
        var dev = unit.Device("dev0");
        long before = GC.GetAllocatedBytesForCurrentThread();
        var err = unit.Attach(dev, d!, splitMode: true);
        long bound = GC.GetAllocatedBytesForCurrentThread() - before;
        // A few unmaps take a few slots, not the ring (the single queue has 32768).
        for (int i = 0; i < 3; i++)
            unit.Unmapped(d!, i, (ulong)(i + 1) << 12, 0x1000, cpu: i);
        long used = GC.GetAllocatedBytesForCurrentThread() - before - bound;
        Assert.Equal(Errno.None, err);
        Assert.True(bound < 2048, $"binding a {policy} domain allocated {bound} B");
        Assert.True(used < 4096, $"three {policy} unmaps allocated {used} B");
    }

    [Fact]
    public void AnAttachedDeviceCostsAFewHundredBytesAtMost()
    {
        var unit = new IommuUnit("iommu0", new IommuUnitConfig { Policy = new FlushPolicySpec(FlushPolicyKind.Lazy) }, new SimClock());
        var domains = new IommuDomain[16];
        for (int i = 0; i < domains.Length; i++)
        {
            Assert.Equal(Errno.None, IommuDomain.Create(PtConfig.Default(PtFormatKind.X86_64), new TableMemory(), out var d));
            domains[i] = d!;
            Assert.Equal(Errno.None, unit.Attach(unit.Device("bind" + i), d!, splitMode: true));
        }
        const int Devices = 4096;
        var names = Enumerable.Range(0, Devices).Select(i => "dev" + i).ToArray();
        var errors = new Errno[Devices];
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < Devices; i++)
            errors[i] = unit.Attach(unit.Device(names[i]), domains[i % domains.Length], splitMode: true);
        long perDevice = (GC.GetAllocatedBytesForCurrentThread() - before) / Devices;
        Assert.All(errors, e => Assert.Equal(Errno.None, e));
        // The device object and its entry in the by-name index (growth included); the name is the caller's.
        Assert.True(perDevice < 256, $"{perDevice} B per device");
    }

    [Theory]
    [InlineData("lazy")]
    [InlineData("lazy-single")]
    [InlineData("batch:8")]
    [InlineData("strict")]
    public void UnmapsDmasAndTimeoutsAllocateNothingOnceWarm(string policy)
    {
        Assert.True(FlushPolicySpec.TryParse(policy, out var spec));
        var clock = new SimClock();
        var unit = new IommuUnit("iommu0", new IommuUnitConfig { Policy = spec, Cpus = 2 }, clock);
        Assert.Equal(Errno.None, IommuDomain.Create(PtConfig.Default(PtFormatKind.X86_64), new TableMemory(), out var d));
        var dev = unit.Device("dev0");
        Assert.Equal(Errno.None, unit.Attach(dev, d!, splitMode: true));
        Assert.Equal(Errno.None, d!.IommuMap(0x10_0000, 0x10_0000, 64 * 0x1000, RW));
        long releases = 0;
        unit.UnmapReleased = (_, _) => releases++;
        long id = 0;
        void Run(int n)
        {
            for (int i = 0; i < n; i++)
            {
                ulong iova = 0x10_0000 + (ulong)(i % 64) * 0x1000;
                unit.Dma(dev, iova + 8, write: (i & 1) == 0);
                // The unit is only told: the page stays mapped, so the DMAs stay hits and misses, never faults.
                unit.Unmapped(d, id++, iova, 0x1000, cpu: i & 1);
                clock.Advance(5_000);
            }
        }
        Run(20_000);
        long before = GC.GetAllocatedBytesForCurrentThread();
        Run(20_000);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(releases > 0);
        Assert.True(allocated < 20_000, $"{policy}: {allocated} B for 20 000 DMAs and unmaps");
    }
}
