using PtActors.Engine.Hardware;
using Xunit;

namespace PtActors.Engine.Tests.Hardware;

/// <summary>
/// The split mode the actor simulator uses: the domain's owner unmaps and keeps the freed pages; the unit runs
/// the flush policy and reports, by id, when each unmap's flush completed.
/// </summary>
public class SplitModeTests
{
    private const IommuProt RW = IommuProt.Read | IommuProt.Write;

    private static (IommuUnit, IommuDomain, SimClock, List<long>) Setup(FlushPolicySpec policy)
    {
        var clock = new SimClock();
        var unit = new IommuUnit("iommu0", new IommuUnitConfig { Policy = policy }, clock);
        Assert.Equal(Errno.None, IommuDomain.Create(PtConfig.Default(PtFormatKind.X86_64), new TableMemory(), out var d));
        Assert.Equal(Errno.None, unit.Attach(unit.Device("dev0"), d!));
        var released = new List<long>();
        unit.UnmapReleased = (_, id) => released.Add(id);
        for (ulong i = 0; i < 8; i++)
            Assert.Equal(Errno.None, d!.IommuMap(i << 12, i << 12, 0x1000, RW));
        return (unit, d!, clock, released);
    }

    private static void OwnerUnmaps(IommuUnit unit, IommuDomain d, long id, ulong iova)
    {
        var g = new IotlbGather();
        Assert.Equal(0x1000UL, d.IommuUnmapFast(iova, 0x1000, g));
        unit.Unmapped(d, id, iova, 0x1000);
    }

    [Fact]
    public void StrictReleasesAtOnce()
    {
        var (unit, d, _, released) = Setup(FlushPolicySpec.Strict);
        OwnerUnmaps(unit, d, 7, 0x3000);
        Assert.Equal([7L], released);
        Assert.Equal(1, unit.Stats.Invalidations);
        Assert.Equal(0x1000, unit.Stats.InvalidatedBytes);
    }

    [Fact]
    public void LazyReleasesAfterTheQueueFlush()
    {
        var (unit, d, clock, released) = Setup(new FlushPolicySpec(FlushPolicyKind.Lazy));
        OwnerUnmaps(unit, d, 7, 0x3000);
        OwnerUnmaps(unit, d, 8, 0x4000);
        Assert.Empty(released);
        clock.Advance(10_000_000);
        Assert.Equal([7L, 8L], released);
        Assert.Equal(1, unit.Stats.DomainInvalidations);
    }

    [Fact]
    public void BatchReleasesTheWholeBatchAtItsSync()
    {
        var (unit, d, _, released) = Setup(new FlushPolicySpec(FlushPolicyKind.Batch, 2));
        OwnerUnmaps(unit, d, 1, 0x1000);
        Assert.Empty(released);
        OwnerUnmaps(unit, d, 2, 0x2000);
        Assert.Equal([1L, 2L], released);
        Assert.Equal(1, unit.Stats.Invalidations);
        Assert.Equal(0x4000, unit.Stats.InvalidatedBytes);           // 0x1000-0x2fff needs the 16 KiB block at 0
    }

    private sealed class Oracle(ulong iova, ulong pa) : IPreStateOracle
    {
        public bool TryTranslate(IommuDomain domain, ulong va, out ulong translated, out IommuProt prot)
        {
            bool hit = (va & ~0xfffUL) == iova;
            translated = hit ? pa | (va & 0xfff) : 0;
            prot = hit ? RW : IommuProt.None;
            return hit;
        }
    }

    [Fact]
    public void ADmaStampedBeforeAnUnmapSeesThePreviousTranslation()
    {
        var (unit, d, _, _) = Setup(FlushPolicySpec.Strict);
        var dev = unit.FindDevice("dev0")!;
        Assert.Equal(0x1000UL, d.IommuUnmapFast(0x5000, 0x1000, new IotlbGather()));  // applied, not yet told
        Assert.Equal(DmaOutcome.Fault, unit.Dma(dev, 0x5010, false).Outcome);
        unit.PreState = new Oracle(0x5000, 0x5000);
        Assert.Equal(new DmaResult(DmaOutcome.Miss, 0x5010), unit.Dma(dev, 0x5010, false));
        unit.PreState = null;
        unit.Unmapped(d, 9, 0x5000, 0x1000);                                            // the flush removes it again
        Assert.Equal(DmaOutcome.Fault, unit.Dma(dev, 0x5010, false).Outcome);
    }
}
