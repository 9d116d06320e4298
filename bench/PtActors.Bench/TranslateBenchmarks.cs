using BenchmarkDotNet.Attributes;
using PtActors.Engine;
using PtActors.Engine.Hardware;

namespace PtActors.Bench;

/// <summary>
/// DMA translation through an IOMMU unit: an IOTLB hit, and an IOTLB miss that walks a 4-level x86_64 table
/// (no walk cache, a 2-entry IOTLB and 4096 distinct pages, so every access misses, walks and fills).
/// </summary>
[MemoryDiagnoser]
public class TranslateBenchmarks
{
    private const int Pages = 4096;
    private IommuUnit _hitUnit = null!, _missUnit = null!;
    private IommuDevice _hitDev = null!, _missDev = null!;
    private int _next;

    private static (IommuUnit, IommuDevice) Make(IommuUnitConfig config)
    {
        var unit = new IommuUnit("bench", config, new SimClock());
        if (IommuDomain.Create(PtConfig.Default(PtFormatKind.X86_64), new TableMemory(), out var d) != Errno.None)
            throw new InvalidOperationException();
        d!.PgsizeBitmap = 0x1000;
        if (d.IommuMap(0x1_0000_0000, 0x8000_0000, Pages * 0x1000UL, IommuProt.Read | IommuProt.Write) != Errno.None)
            throw new InvalidOperationException();
        var dev = unit.Device("nic0");
        unit.Attach(dev, d);
        return (unit, dev);
    }

    [GlobalSetup]
    public void Setup()
    {
        (_hitUnit, _hitDev) = Make(new IommuUnitConfig());
        _hitUnit.Dma(_hitDev, 0x1_0000_0000, write: false);
        (_missUnit, _missDev) = Make(new IommuUnitConfig { Iotlb = new IotlbConfig(2, 2), WalkCache = WalkCacheConfig.None });
    }

    /// <summary>One DMA read that hits the IOTLB.</summary>
    [Benchmark]
    public DmaResult IotlbHit() => _hitUnit.Dma(_hitDev, 0x1_0000_0040, write: false);

    /// <summary>One DMA read that misses, walks four levels and fills.</summary>
    [Benchmark]
    public DmaResult MissAndWalk()
    {
        ulong va = 0x1_0000_0000 + ((ulong)(_next++ & (Pages - 1)) << 12);
        return _missUnit.Dma(_missDev, va, write: false);
    }
}
