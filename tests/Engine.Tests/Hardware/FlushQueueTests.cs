using PtActors.Engine.Hardware;
using Xunit;

namespace PtActors.Engine.Tests.Hardware;

/// <summary>The dma-iommu flush queue (SPEC §7) as the lazy policies model it.</summary>
public class FlushQueueTests
{
    private const IommuProt RW = IommuProt.Read | IommuProt.Write;

    private static (IommuUnit, IommuDomain, SimClock, List<(ulong, ulong)>) Setup(IommuUnitConfig config)
    {
        var clock = new SimClock();
        var unit = new IommuUnit("iommu0", config, clock);
        Assert.Equal(Errno.None, IommuDomain.Create(PtConfig.Default(PtFormatKind.X86_64), new TableMemory(), out var d));
        Assert.Equal(Errno.None, unit.Attach(unit.Device("dev0"), d!));
        var released = new List<(ulong, ulong)>();
        unit.IovaReleased = (_, s, l) => released.Add((s, l));
        for (ulong i = 0; i < 600; i++)
            Assert.Equal(Errno.None, d!.IommuMap(i << 12, i << 12, 0x1000, RW));
        return (unit, d!, clock, released);
    }

    [Fact]
    public void AFullRingFlushesTheDomainAndFreesWhatWasQueuedBeforeTheFlush()
    {
        var (unit, d, _, released) = Setup(new IommuUnitConfig { Policy = new FlushPolicySpec(FlushPolicyKind.Lazy) });
        for (ulong i = 0; i < 255; i++)                    // capacity is size - 1
            unit.Unmap(d, i << 12, 0x1000);
        Assert.Equal(0, unit.Stats.Invalidations);
        Assert.Empty(released);
        unit.Unmap(d, 255UL << 12, 0x1000);                // ring full: flush, then reclaim, then queue
        Assert.Equal(1, unit.Stats.DomainInvalidations);
        Assert.Equal(255, released.Count);
        Assert.Equal((0UL, 0xfffUL), released[0]);
        // The entry queued after the flush started waits for the next one.
        Assert.DoesNotContain((255UL << 12, (256UL << 12) - 1), released);
    }

    [Fact]
    public void EachCpuHasItsOwnRing()
    {
        var (unit, d, _, _) = Setup(new IommuUnitConfig { Policy = new FlushPolicySpec(FlushPolicyKind.Lazy), Cpus = 2 });
        for (ulong i = 0; i < 300; i++)
            unit.Unmap(d, i << 12, 0x1000, cpu: (int)(i & 1));
        Assert.Equal(0, unit.Stats.Invalidations);          // 150 per ring: neither is full
        for (ulong i = 300; i < 420; i++)
            unit.Unmap(d, i << 12, 0x1000, cpu: 0);
        Assert.Equal(1, unit.Stats.Invalidations);          // ring 0 reached 255
    }

    [Fact]
    public void TheTimerFlushesOnceTenMillisecondsAfterTheFirstQueuedEntry()
    {
        var (unit, d, clock, released) = Setup(new IommuUnitConfig { Policy = new FlushPolicySpec(FlushPolicyKind.Lazy) });
        unit.Unmap(d, 0, 0x1000);
        clock.Advance(5_000_000);
        unit.Unmap(d, 0x1000, 0x1000);
        clock.Advance(4_999_999);
        Assert.Equal(0, unit.Stats.Invalidations);
        clock.Advance(1);
        Assert.Equal(1, unit.Stats.TimedFlushes);
        Assert.Equal(2, released.Count);
        clock.Advance(100_000_000);
        Assert.Equal(1, unit.Stats.Invalidations);          // no timer without queued entries
    }

    [Fact]
    public void LazySingleUsesOneLargeQueueAndASecondTimeout()
    {
        var (unit, d, clock, released) = Setup(new IommuUnitConfig { Policy = new FlushPolicySpec(FlushPolicyKind.LazySingle), Cpus = 4 });
        for (ulong i = 0; i < 600; i++)
            unit.Unmap(d, i << 12, 0x1000, cpu: (int)(i & 3));
        Assert.Equal(0, unit.Stats.Invalidations);
        clock.Advance(999_999_999);
        Assert.Equal(0, unit.Stats.Invalidations);
        clock.Advance(1);
        Assert.Equal(1, unit.Stats.DomainInvalidations);
        Assert.Equal(600, released.Count);
    }

    [Fact]
    public void DrainFlushesWhatThePoliciesHold()
    {
        var (unit, d, _, released) = Setup(new IommuUnitConfig { Policy = new FlushPolicySpec(FlushPolicyKind.Lazy) });
        unit.Unmap(d, 0, 0x2000);
        unit.Drain();
        Assert.Equal(1, unit.Stats.Invalidations);
        Assert.Equal([(0UL, 0x1fffUL)], released);
    }
}
