using PtActors.Engine.Hardware;
using Xunit;

namespace PtActors.Engine.Tests.Hardware;

public class IommuUnitTests
{
    private const IommuProt RW = IommuProt.Read | IommuProt.Write;

    private static (IommuUnit Unit, IommuDomain Domain, IommuDevice Dev) Setup(
        IommuUnitConfig config, PtFormatKind format = PtFormatKind.X86_64, SimClock? clock = null)
    {
        var unit = new IommuUnit("iommu0", config, clock ?? new SimClock());
        Assert.Equal(Errno.None, IommuDomain.Create(PtConfig.Default(format), new TableMemory(), out var d));
        var dev = unit.Device("dev0");
        Assert.Equal(Errno.None, unit.Attach(dev, d!));
        return (unit, d!, dev);
    }

    [Fact]
    public void StrictMissThenHitThenUnmapFlushesAndFaults()
    {
        var (unit, d, dev) = Setup(new IommuUnitConfig());
        Assert.Equal(Errno.None, d.IommuMap(0x100000, 0x4000_0000, 0x2000, RW));
        Assert.Equal(new DmaResult(DmaOutcome.Miss, 0x4000_0123), unit.Dma(dev, 0x100123, write: false));
        Assert.Equal(new DmaResult(DmaOutcome.Hit, 0x4000_0456), unit.Dma(dev, 0x100456, write: true));
        Assert.Equal(0x2000UL, unit.Unmap(d, 0x100000, 0x2000));
        Assert.Equal(1, unit.Stats.Invalidations);
        Assert.Equal(0x2000, unit.Stats.InvalidatedBytes);
        Assert.Equal(0, unit.Stats.OverInvalidatedBytes);
        Assert.Equal(DmaOutcome.Fault, unit.Dma(dev, 0x100123, write: false).Outcome);
        Assert.Equal(0, unit.Stats.StaleInWindow + unit.Stats.StaleViolations + unit.Stats.UseAfterFree);
        var fault = Assert.Single(unit.Faults);
        Assert.Equal(new IoPageFault("dev0", 0x100123, IoPageFault.Read, FaultReason.Unmapped, 0), fault);
    }

    [Fact]
    public void PermissionFailureIsAFault()
    {
        var (unit, d, dev) = Setup(new IommuUnitConfig(), PtFormatKind.Vtdss);
        Assert.Equal(Errno.None, d.IommuMap(0x1000, 0x1000, 0x1000, IommuProt.Read));
        Assert.Equal(DmaOutcome.Miss, unit.Dma(dev, 0x1000, write: false).Outcome);
        var r = unit.Dma(dev, 0x1000, write: true);
        Assert.Equal(new DmaResult(DmaOutcome.Fault, 0, FaultReason.Permission), r);
    }

    [Fact]
    public void LazyLeavesAStaleWindowUntilTheTimeoutFlush()
    {
        var clock = new SimClock();
        var (unit, d, dev) = Setup(new IommuUnitConfig { Policy = new FlushPolicySpec(FlushPolicyKind.Lazy) }, clock: clock);
        Assert.Equal(Errno.None, d.IommuMap(0x200000, 0x200000, 0x200000, RW));   // one 2 MiB leaf
        Assert.Equal(DmaOutcome.Miss, unit.Dma(dev, 0x200000, false).Outcome);
        clock.Advance(1000);
        Assert.Equal(0x200000UL, unit.Unmap(d, 0x200000, 0x200000));
        Assert.Equal(0, unit.Stats.Invalidations);
        clock.Advance(4000);
        Assert.Equal(DmaOutcome.Stale, unit.Dma(dev, 0x201000, false).Outcome);
        Assert.Equal(1, unit.Stats.StaleInWindow);
        Assert.Equal(4000, unit.Stats.MaxStaleWindowNs);
        Assert.Equal("dev0@0x201000@t=5000ns", unit.Stats.FirstStaleInWindow);
        clock.Advance(10_000_000);
        Assert.Equal(1, unit.Stats.TimedFlushes);
        Assert.Equal(1, unit.Stats.DomainInvalidations);
        Assert.Equal(DmaOutcome.Fault, unit.Dma(dev, 0x201000, false).Outcome);
        Assert.Equal(0, unit.Stats.StaleViolations);
    }

    [Fact]
    public void TheStaleWindowOpensAtTheEarliestUnflushedUnmapCoveringTheIova()
    {
        var clock = new SimClock();
        var (unit, d, dev) = Setup(new IommuUnitConfig { Policy = new FlushPolicySpec(FlushPolicyKind.Lazy) }, clock: clock);
        Assert.Equal(Errno.None, d.IommuMap(0x600000, 0x600000, 0x1000, RW));       // another range, unmapped first
        Assert.Equal(Errno.None, d.IommuMap(0x200000, 0x200000, 0x200000, RW));     // one 2 MiB leaf
        Assert.Equal(DmaOutcome.Miss, unit.Dma(dev, 0x200000, false).Outcome);
        Assert.Equal(0x1000UL, unit.Unmap(d, 0x600000, 0x1000));                     // t=0, does not cover
        clock.Advance(1000);
        Assert.Equal(0x200000UL, unit.Unmap(d, 0x200000, 0x200000));                 // t=1000
        clock.Advance(1000);
        Assert.Equal(Errno.None, d.IommuMap(0x200000, 0x300000, 0x1000, RW));
        Assert.Equal(0x1000UL, unit.Unmap(d, 0x200000, 0x1000));                     // t=2000, covers it again
        clock.Advance(3000);
        Assert.Equal(DmaOutcome.Stale, unit.Dma(dev, 0x200010, false).Outcome);       // the 2 MiB entry, t=5000
        Assert.Equal(1, unit.Stats.StaleInWindow);
        Assert.Equal(4000, unit.Stats.MaxStaleWindowNs);
        Assert.Equal(0, unit.Stats.StaleViolations);
    }

    [Fact]
    public void LazyKeepsFreedTablesUntilTheFlushAndTheWalkCacheMayStillReadThem()
    {
        var clock = new SimClock();
        var (unit, d, dev) = Setup(new IommuUnitConfig { Policy = new FlushPolicySpec(FlushPolicyKind.Lazy) }, clock: clock);
        d.PgsizeBitmap = 0x1000;
        Assert.Equal(Errno.None, d.IommuMap(0x400000, 0x400000, 0x200000, RW));    // a whole level-0 table
        Assert.Equal(DmaOutcome.Miss, unit.Dma(dev, 0x400000, false).Outcome);     // fills the walk caches
        int tables = d.TablePages;
        Assert.Equal(0x200000UL, unit.Unmap(d, 0x400000, 0x200000));
        Assert.Equal(tables, d.TablePages);                                       // parked on the flush queue
        Assert.Equal(1, unit.QueuedTablePages(d));
        Assert.Equal(DmaOutcome.Fault, unit.Dma(dev, 0x401000, false).Outcome);    // walks the parked table: legal
        Assert.Equal(0, unit.Stats.UseAfterFree);
        clock.Advance(10_000_000);
        Assert.Equal(tables - 1, d.TablePages);
        Assert.Equal(0, unit.QueuedTablePages(d));
    }

    [Fact]
    public void FreeingTablesBeforeTheFlushIsCaughtAsUseAfterFree()
    {
        var config = new IommuUnitConfig { Policy = new FlushPolicySpec(FlushPolicyKind.Lazy), FreeTablesBeforeFlush = true };
        var (unit, d, dev) = Setup(config);
        d.PgsizeBitmap = 0x1000;
        Assert.Equal(Errno.None, d.IommuMap(0x400000, 0x400000, 0x200000, RW));
        Assert.Equal(DmaOutcome.Miss, unit.Dma(dev, 0x400000, false).Outcome);
        Assert.Equal(0x200000UL, unit.Unmap(d, 0x400000, 0x200000));
        unit.Dma(dev, 0x401000, false);
        Assert.Equal(1, unit.Stats.UseAfterFree);
        Assert.Equal("dev0@0x401000@t=0ns", unit.Stats.FirstUseAfterFree);
    }

    [Fact]
    public void AnInvalidationOneBitTooSmallIsAStaleViolation()
    {
        foreach (var (flavor, expectViolation) in new[] { (InvalidationFlavor.Amd, false), (InvalidationFlavor.AmdOneBitShort, true) })
        {
            var (unit, d, dev) = Setup(new IommuUnitConfig { Flavor = flavor });
            d.PgsizeBitmap = 0x1000;
            Assert.Equal(Errno.None, d.IommuMap(0x2000, 0x10_0000, 0x3000, RW));
            for (ulong va = 0x2000; va < 0x5000; va += 0x1000)
                Assert.Equal(DmaOutcome.Miss, unit.Dma(dev, va, false).Outcome);
            Assert.Equal(0x3000UL, unit.Unmap(d, 0x2000, 0x3000));
            var r = unit.Dma(dev, 0x4000, false);
            Assert.Equal(expectViolation ? DmaOutcome.Stale : DmaOutcome.Fault, r.Outcome);
            Assert.Equal(expectViolation ? 1 : 0, unit.Stats.StaleViolations);
            Assert.Equal(0, unit.Stats.StaleInWindow);
        }
    }

    [Fact]
    public void IsolationBreachNeedsAStaleDeviceContext()
    {
        foreach (bool broken in new[] { false, true })
        {
            var (unit, d, dev) = Setup(new IommuUnitConfig { SkipContextInvalidation = broken });
            Assert.Equal(Errno.None, d.IommuMap(0x1000, 0x1000, 0x1000, RW));
            Assert.Equal(Errno.None, unit.Detach(dev));
            Assert.Equal(Errno.ENODEV, unit.Detach(dev));
            var r = unit.Dma(dev, 0x1000, false);
            Assert.Equal(broken ? DmaOutcome.Miss : DmaOutcome.Fault, r.Outcome);
            Assert.Equal(broken ? 1 : 0, unit.Stats.IsolationBreaches);
        }
    }

    [Fact]
    public void BatchSyncsEveryNUnmapsAndAfterAnIdleMillisecond()
    {
        var clock = new SimClock();
        var (unit, d, _) = Setup(new IommuUnitConfig { Policy = new FlushPolicySpec(FlushPolicyKind.Batch, 3) }, clock: clock);
        for (ulong i = 0; i < 4; i++)
            Assert.Equal(Errno.None, d.IommuMap(i << 12, i << 12, 0x1000, RW));
        for (ulong i = 0; i < 3; i++)
            unit.Unmap(d, i << 12, 0x1000);
        Assert.Equal(1, unit.Stats.Invalidations);
        Assert.Equal(0x3000 + 0x1000, unit.Stats.InvalidatedBytes);                // 0x0-0x2fff → 16 KiB block
        Assert.Equal(0x1000, unit.Stats.OverInvalidatedBytes);
        unit.Unmap(d, 0x3000, 0x1000);
        Assert.Equal(1, unit.Stats.Invalidations);
        clock.Advance(999_999);
        Assert.Equal(1, unit.Stats.Invalidations);
        clock.Advance(1);
        Assert.Equal(2, unit.Stats.Invalidations);
        Assert.Equal(1, unit.Stats.TimedFlushes);
    }

    [Theory]
    [InlineData(0x1000UL)]        // a 4 KiB leaf at level 0
    [InlineData(0x200000UL)]      // a 2 MiB leaf at level 1
    public void AWriteThroughAStaleEntryLeavesTheClearedItemEmpty(ulong size)
    {
        // vtdss has no present bit: an item is empty exactly when it is zero. Setting the dirty bit of the
        // cleared item made it a leaf to PA 0 (level 0) or a table at PA 0 (level 1) — found by the isolation campaign.
        var clock = new SimClock();
        var (unit, d, dev) = Setup(new IommuUnitConfig { Policy = new FlushPolicySpec(FlushPolicyKind.Lazy) }, PtFormatKind.Vtdss, clock);
        Assert.Equal(Errno.None, d.IommuMap(0x200000, 0x4000_0000, size, RW));
        Assert.Equal(new DmaResult(DmaOutcome.Miss, 0x4000_0010), unit.Dma(dev, 0x200010, write: false));
        Assert.Equal(size, unit.Unmap(d, 0x200000, size));
        Assert.Equal(new DmaResult(DmaOutcome.Stale, 0x4000_0010), unit.Dma(dev, 0x200010, write: true));
        Assert.Equal(Errno.ENOENT, d.TryIovaToPhys(0x200010, out _));
        clock.Advance(10_000_000);                                                    // the flush-queue timeout
        Assert.Equal(Errno.None, d.IommuMap(0x200000, 0x5000_0000, size, RW));
        Assert.Equal(new DmaResult(DmaOutcome.Miss, 0x5000_0010), unit.Dma(dev, 0x200010, write: true));
        Assert.Equal(0, unit.Stats.StaleViolations);
    }

    [Fact]
    public void AWriteHitSetsTheDirtyBitOfTheLeafItWasFilledFrom()
    {
        var (unit, d, dev) = Setup(new IommuUnitConfig(), PtFormatKind.Vtdss);
        Assert.Equal(Errno.None, d.IommuMap(0x200000, 0x4000_0000, 0x200000, RW));
        Assert.Equal(DmaOutcome.Miss, unit.Dma(dev, 0x200000, write: false).Outcome);
        Assert.Equal(DmaOutcome.Hit, unit.Dma(dev, 0x3ff000, write: true).Outcome);
        var runs = new List<(ulong, ulong)>();
        Assert.Equal(Errno.None, d.ReadAndClearDirty(0, 0x1000000, noClear: true, new Sink(runs)));
        Assert.Equal([(0x200000UL, 0x200000UL)], runs);
    }

    [Fact]
    public void ABatchThatANoGapsTableSyncedPartWayIsReleased()
    {
        var config = PtConfig.Default(PtFormatKind.X86_64);
        config = config with { Features = config.Features | PtFeatures.FlushRangeNoGaps };
        var unit = new IommuUnit("iommu0", new IommuUnitConfig { Policy = new FlushPolicySpec(FlushPolicyKind.Batch, 4) }, new SimClock());
        Assert.Equal(Errno.None, IommuDomain.Create(config, new TableMemory(), out var d));
        Assert.Equal(Errno.None, unit.Attach(unit.Device("dev0"), d!));
        var released = new List<(ulong, ulong)>();
        unit.IovaReleased = (_, s, l) => released.Add((s, l));
        Assert.Equal(Errno.None, d!.IommuMap(0x10000, 0x10000, 0x1000, RW));
        Assert.Equal(Errno.None, d.IommuMap(0x80000, 0x80000, 0x1000, RW));
        unit.Unmap(d, 0x10000, 0x1000);
        Assert.Empty(released);
        unit.Unmap(d, 0x80000, 0x1000);                 // disjoint: the table syncs the first range now
        Assert.Equal(1, unit.Stats.Invalidations);
        Assert.Equal([(0x10000UL, 0x10fffUL)], released);
        unit.Drain();
        Assert.Equal([(0x10000UL, 0x10fffUL), (0x80000UL, 0x80fffUL)], released);
    }

    [Fact]
    public void ADmaWriteSetsTheDirtyBitTheDirtyReadReports()
    {
        var (unit, d, dev) = Setup(new IommuUnitConfig(), PtFormatKind.Amdv1);
        Assert.Equal(Errno.None, d.IommuMap(0x10000, 0x80000, 0x10000, RW));          // a 64 KiB contiguous entry
        Assert.Equal(DmaOutcome.Miss, unit.Dma(dev, 0x13000, write: false).Outcome);
        var runs = new List<(ulong, ulong)>();
        var sink = new Sink(runs);
        Assert.Equal(Errno.None, d.ReadAndClearDirty(0, 0x100000, noClear: true, sink));
        Assert.Empty(runs);
        Assert.Equal(DmaOutcome.Hit, unit.Dma(dev, 0x13000, write: true).Outcome);
        Assert.Equal(Errno.None, d.ReadAndClearDirty(0, 0x100000, noClear: false, sink));
        Assert.Equal([(0x10000UL, 0x10000UL)], runs);
        // Clearing flushed the IOTLB, so the next write walks and sets the bit again.
        Assert.Equal(DmaOutcome.Miss, unit.Dma(dev, 0x14000, write: true).Outcome);
        runs.Clear();
        Assert.Equal(Errno.None, d.ReadAndClearDirty(0, 0x100000, noClear: true, sink));
        Assert.Single(runs);
    }

    [Fact]
    public void AttachMovesADeviceAndADomainBelongsToOneUnit()
    {
        var clock = new SimClock();
        var (unit, d, dev) = Setup(new IommuUnitConfig(), clock: clock);
        Assert.Equal(Errno.None, IommuDomain.Create(PtConfig.Default(PtFormatKind.X86_64), new TableMemory(), out var d2));
        Assert.Equal(Errno.None, d2!.IommuMap(0x1000, 0x7000, 0x1000, RW));
        Assert.Equal(Errno.None, unit.Attach(dev, d2));
        Assert.Same(d2, dev.Domain);
        Assert.Equal(new DmaResult(DmaOutcome.Miss, 0x7000), unit.Dma(dev, 0x1000, false));
        Assert.NotEqual(unit.DomainId(d), unit.DomainId(d2));
        var other = new IommuUnit("iommu1", new IommuUnitConfig(), clock);
        Assert.Equal(Errno.EBUSY, other.Attach(other.Device("x"), d));
    }

    private sealed class Sink(List<(ulong, ulong)> runs) : IDirtySink
    {
        public void Set(ulong iova, ulong length) => runs.Add((iova, length));
    }
}
