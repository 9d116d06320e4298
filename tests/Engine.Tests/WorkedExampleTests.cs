using PtActors.Engine;
using Xunit;

namespace PtActors.Engine.Tests;

/// <summary>The worked example of SCRIPT-FORMAT.md, driven through the engine API.</summary>
public class WorkedExampleTests
{
    private static IommuDomain Make(PtConfig cfg)
    {
        Assert.Equal(Errno.None, IommuDomain.Create(cfg, new TableMemory(), out var d));
        return d!;
    }

    [Fact]
    public void X86_64_MixedMapCountsTwentyEntries()
    {
        var x = Make(PtConfig.Default(PtFormatKind.X86_64));
        Assert.Equal(0x40201000UL, x.PgsizeBitmap);
        Assert.Equal(3, x.TopLevel);
        Assert.Equal(new VaRange(0, 0x7fffffffffff), x.TopRange);
        Assert.Equal(Errno.None, x.IommuMap(0x3fe400000, 0x3fe400000, 0xc2200000, IommuProt.Read | IommuProt.Write));
        Span<long> buckets = stackalloc long[64];
        Assert.Equal(20, x.CountLeaves(buckets));
        Assert.Equal(17, buckets[21]);
        Assert.Equal(3, buckets[30]);
        Assert.Equal(4, x.TablePages);
        Assert.Equal(0x200000UL, x.IommuUnmap(0x3fe400000, 0x1000));
    }

    [Fact]
    public void Amdv1_UnmapInsideLargePageRemovesNothing()
    {
        var a = Make(PtConfig.Default(PtFormatKind.Amdv1));
        Assert.Equal(0xfff7ffffff000UL, a.PgsizeBitmap);
        Assert.Equal(Errno.None, a.IommuMap(0x200000, 0x40000000, 0x200000, IommuProt.Read | IommuProt.Write));
        Assert.Equal(0UL, a.IommuUnmap(0x201000, 0x1000));
        Assert.Equal(Errno.None, a.TryIovaToPhys(0x201000, out ulong pa));
        Assert.Equal(0x40001000UL, pa);
        Assert.Equal(Errno.EADDRINUSE, a.IommuMap(0x200000, 0, 0x1000, IommuProt.Read | IommuProt.Write));
    }

    [Fact]
    public void Vtdss_NoGapsSyncsDisjointRangeFirst()
    {
        var v = Make(PtConfig.Default(PtFormatKind.Vtdss) with { Features = PtFeatures.FlushRange | PtFeatures.FlushRangeNoGaps });
        Assert.Equal(Errno.None, v.IommuMap(0, 0, 0x2000, IommuProt.Read | IommuProt.Write));
        Assert.Equal(Errno.None, v.IommuMap(0x200000, 0, 0x1000, IommuProt.Read | IommuProt.Write));
        var g = v.PendingGather;
        Assert.Equal(0x1000UL, v.IommuUnmapFast(0, 0x1000, g));
        Assert.Equal(0x1000UL, v.IommuUnmapFast(0x1000, 0x1000, g));
        Assert.Equal(5, v.TablePages);
        Assert.Equal(0x1000UL, v.IommuUnmapFast(0x200000, 0x1000, g));
        var f = v.IotlbSync(g);
        Assert.Equal(new IotlbFlush(FlushKind.Range, 0x200000, 0x200fff, 0), f);
        Assert.Equal(FlushKind.None, v.IotlbSync(g).Kind);
    }

    private sealed class Runs : IDirtySink
    {
        public readonly List<(ulong, ulong)> Items = new();
        public void Set(ulong iova, ulong length) => Items.Add((iova, length));
    }

    [Fact]
    public void Amdv1_DirtyAndTopGrowth()
    {
        var d = Make(PtConfig.Default(PtFormatKind.Amdv1));
        Assert.Equal(Errno.None, d.IommuMap(0x10000, 0x80000, 0x10000, IommuProt.Read | IommuProt.Write));
        Assert.Equal(Errno.None, d.SetDirty(0x13000));
        var r = new Runs();
        Assert.Equal(Errno.None, d.ReadAndClearDirty(0, 0x100000, noClear: true, r));
        Assert.Equal([(0x10000UL, 0x10000UL)], r.Items);
        r.Items.Clear();
        Assert.Equal(Errno.None, d.ReadAndClearDirty(0, 0x100000, noClear: false, r));
        Assert.Single(r.Items);
        r.Items.Clear();
        Assert.Equal(Errno.None, d.ReadAndClearDirty(0, 0x100000, noClear: false, r));
        Assert.Empty(r.Items);
        Assert.Equal(Errno.EINVAL, d.ReadAndClearDirty(0, 0, noClear: false, r));
        Assert.Equal(Errno.None, d.IommuMap(0xfffffffffffff000, 0x1000, 0x1000, IommuProt.Read | IommuProt.Write));
        Assert.Equal(5, d.TopLevel);
        Assert.Equal(new VaRange(0, ulong.MaxValue), d.TopRange);
        Assert.Equal(0x1000UL, d.IommuUnmap(0xfffffffffffff000, 0x1000));
    }
}
