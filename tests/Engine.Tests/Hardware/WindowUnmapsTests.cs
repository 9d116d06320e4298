using PtActors.Engine.Dma;
using PtActors.Engine.Hardware;
using Xunit;

namespace PtActors.Engine.Tests.Hardware;

public class WindowUnmapsTests
{
    private const IommuProt RW = IommuProt.Read | IommuProt.Write;

    private static IommuDomain Table()
    {
        Assert.Equal(Errno.None, IommuDomain.Create(PtConfig.Default(PtFormatKind.X86_64), new TableMemory(), out var d));
        return d!;
    }

    private static UnmapNotice Notice(ulong stamp, int seq, ulong iova, ulong bytes, ulong pa)
        => new(DmaOp.MakeId(1, (uint)seq), stamp, iova, bytes, pa, RW, 0);

    /// <summary>The obvious definition: the first notice at or after <paramref name="from"/> that removed the IOVA.</summary>
    private static bool Reference(List<(UnmapNotice N, IommuDomain T)> sorted, int from, IommuDomain d, ulong iova, out ulong pa)
    {
        for (int i = from; i < sorted.Count; i++)
        {
            var (n, t) = sorted[i];
            if (ReferenceEquals(t, d) && iova >= n.Iova && iova - n.Iova < n.Unmapped)
            {
                pa = n.Paddr + (iova - n.Iova);
                return true;
            }
        }
        pa = 0;
        return false;
    }

    [Fact]
    public void NoticesComeOutInStampThenIdOrder()
    {
        var t = Table();
        var w = new WindowUnmaps();
        w.Add(Notice(30, 1, 0x1000, 0x1000, 0x9000), t);
        w.Add(Notice(10, 5, 0x2000, 0x1000, 0xa000), t);
        w.Add(Notice(10, 2, 0x3000, 0x1000, 0xb000), t);
        w.Sort();
        Assert.Equal([DmaOp.MakeId(1, 2), DmaOp.MakeId(1, 5), DmaOp.MakeId(1, 1)], Enumerable.Range(0, 3).Select(p => w[p].Notice.Id));
    }

    [Fact]
    public void PreStateAgreesWithAScanOverRandomWindows()
    {
        var rng = new Random(3);
        var tables = new[] { Table(), Table() };
        var w = new WindowUnmaps();
        for (int round = 0; round < 50; round++)
        {
            w.Clear();
            var all = new List<(UnmapNotice N, IommuDomain T)>();
            int count = rng.Next(1, 60);
            for (int i = 0; i < count; i++)
            {
                ulong pages = rng.Next(4) == 0 ? (ulong)rng.Next(17, 600) : (ulong)rng.Next(1, 17);
                ulong iova = (ulong)rng.Next(0, 64) << 12;
                ulong pa = rng.Next(5) == 0 ? 0 : (ulong)rng.Next(1, 1 << 20) << 12;
                var n = Notice((ulong)rng.Next(0, 1000), i, iova, rng.Next(8) == 0 ? 0 : pages << 12, pa);
                var t = tables[rng.Next(2)];
                w.Add(n, t);
                all.Add((n, t));
            }
            w.Sort();
            var sorted = all.OrderBy(x => x.N.StampNs).ThenBy(x => x.N.Id).ToList();
            for (int q = 0; q < 200; q++)
            {
                int from = rng.Next(0, count + 1);
                var d = tables[rng.Next(2)];
                ulong iova = (ulong)rng.Next(0, 700 << 12);
                bool expected = Reference(sorted, from, d, iova, out ulong pa);
                Assert.Equal(expected, w.TryPreState(from, d, iova, out ulong got, out var prot));
                if (expected)
                {
                    Assert.Equal(pa, got);
                    Assert.Equal(RW, prot);
                }
            }
        }
    }
}
