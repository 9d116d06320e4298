using PtActors.Engine.Hardware;
using Xunit;

namespace PtActors.Engine.Tests.Hardware;

/// <summary>
/// The dirty bit the hardware sets on a DMA write: on the leaf the table has now, recorded in the domain's
/// hardware-write log, and never into an item an unmap already cleared (a write through a stale IOTLB entry).
/// </summary>
public class HardwareDirtyTests
{
    private const IommuProt RW = IommuProt.Read | IommuProt.Write;

    private static (IommuUnit Unit, IommuDomain Domain, IommuDevice Dev, SimClock Clock) Lazy(PtFormatKind format)
    {
        var clock = new SimClock();
        var unit = new IommuUnit("iommu0", new IommuUnitConfig { Policy = new FlushPolicySpec(FlushPolicyKind.Lazy) }, clock);
        Assert.Equal(Errno.None, IommuDomain.Create(PtConfig.Default(format), new TableMemory(), out var d));
        var dev = unit.Device("dev0");
        Assert.Equal(Errno.None, unit.Attach(dev, d!));
        d!.HardwareWrites = new HardwareWriteLog();
        return (unit, d, dev, clock);
    }

    [Theory]
    [InlineData(PtFormatKind.Amdv1)]
    [InlineData(PtFormatKind.X86_64)]
    [InlineData(PtFormatKind.Vtdss)]
    [InlineData(PtFormatKind.Riscv64)]
    public void AWriteThroughAStaleEntryChangesNothingInTheTable(PtFormatKind format)
    {
        var (unit, d, dev, clock) = Lazy(format);
        // 2 MiB-aligned IOVA, 4 KiB leaf: the leaf's item is cleared by the unmap, its page stays (lazy).
        Assert.Equal(Errno.None, d.IommuMap(0x4000_0000, 0x8000_0000, 0x1000, RW));
        Assert.Equal(DmaOutcome.Miss, unit.Dma(dev, 0x4000_0000, write: false).Outcome); // a clean IOTLB entry
        using var before = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        clock.Advance(100);
        Assert.Equal(0x1000UL, unit.Unmap(d, 0x4000_0000, 0x1000));
        d.WriteMemory(before);
        string cleared = Convert.ToHexStringLower(before.GetHashAndReset());

        clock.Advance(100);
        Assert.Equal(DmaOutcome.Stale, unit.Dma(dev, 0x4000_0000, write: true).Outcome);
        d.WriteMemory(before);
        Assert.Equal(cleared, Convert.ToHexStringLower(before.GetHashAndReset()));
        Assert.Equal(0, d.HardwareWrites!.Count);
        Assert.Equal(Errno.ENOENT, d.TryIovaToPhys(0x4000_0000, out _));
        // Nothing was turned into a table pointer or a leaf: the whole table is still empty.
        Assert.Equal(0, d.CountLeaves(new long[64]));
    }

    [Fact]
    public void AWriteSetsTheLeafsDirtyBitOnceAndLogsIt()
    {
        var (unit, d, dev, _) = Lazy(PtFormatKind.Amdv1);
        Assert.Equal(Errno.None, d.IommuMap(0x10000, 0x20000, 0x1000, RW));
        Assert.Equal(DmaOutcome.Miss, unit.Dma(dev, 0x10000, write: false).Outcome);
        Assert.Equal(0, d.HardwareWrites!.Count);
        Assert.Equal(DmaOutcome.Hit, unit.Dma(dev, 0x10008, write: true).Outcome);   // clean entry: sets D
        Assert.Equal(DmaOutcome.Hit, unit.Dma(dev, 0x10010, write: true).Outcome);   // already dirty
        var log = d.HardwareWrites.Take();
        Assert.Single(log);

        // Replaying the log over a copy of the table before the writes gives the same bytes.
        Assert.Equal(Errno.None, IommuDomain.Create(PtConfig.Default(PtFormatKind.Amdv1), new TableMemory(), out var copy));
        Assert.Equal(Errno.None, copy!.IommuMap(0x10000, 0x20000, 0x1000, RW));
        copy.ApplyHardwareWrites(log);
        using var h = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        d.WriteMemory(h);
        string live = Convert.ToHexStringLower(h.GetHashAndReset());
        copy.WriteMemory(h);
        Assert.Equal(live, Convert.ToHexStringLower(h.GetHashAndReset()));
        Assert.Throws<InvalidOperationException>(() => copy.ApplyHardwareWrites([HardwareWriteLog.Pack(4096, 0)]));
    }
}
