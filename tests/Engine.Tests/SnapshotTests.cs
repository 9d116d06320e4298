using System.Security.Cryptography;
using PtActors.Engine;
using Xunit;

namespace PtActors.Engine.Tests;

public class SnapshotTests
{
    private const IommuProt RW = IommuProt.Read | IommuProt.Write;

    private static IommuDomain Make(PtFormatKind format, TableMemory? memory = null)
    {
        Assert.Equal(Errno.None, IommuDomain.Create(PtConfig.Default(format), memory ?? new TableMemory(), out var d));
        return d!;
    }

    private static void Workload(IommuDomain d, int seed, int ops)
    {
        var rng = new Random(seed);
        for (int i = 0; i < ops; i++)
        {
            ulong va = (ulong)rng.Next(0, 4096) << 12;
            ulong size = (ulong)rng.Next(1, 64) << 12;
            if (rng.Next(3) == 0)
                d.IommuUnmap(va, size);
            else
                d.IommuMap(va, va + 0x1_0000_0000, size, RW);
        }
    }

    private static void AssertSameMemory(TableMemory a, TableMemory b)
    {
        Assert.Equal(a.TotalPages, b.TotalPages);
        Assert.Equal(a.AllocatedPages, b.AllocatedPages);
        for (int i = 0; i < a.TotalPages; i++)
        {
            Assert.Equal(a.IsAllocated(i), b.IsAllocated(i));
            if (a.IsAllocated(i))
                Assert.Equal(a[i], b[i]);
        }
    }

    [Theory]
    [InlineData(PtFormatKind.Amdv1)]
    [InlineData(PtFormatKind.X86_64)]
    [InlineData(PtFormatKind.Vtdss)]
    [InlineData(PtFormatKind.Riscv64)]
    public void RestoreRebuildsByteIdenticalTablesThatEvolveIdentically(PtFormatKind format)
    {
        var mem = new TableMemory();
        var d = Make(format, mem);
        Workload(d, 1, 400);
        var memSnap = mem.Capture();
        var domSnap = d.Capture();

        var mem2 = TableMemory.Restore(memSnap);
        Assert.Equal(Errno.None, IommuDomain.Restore(domSnap, mem2, out var d2));
        AssertSameMemory(mem, mem2);
        Assert.Equal(d.TopLevel, d2!.TopLevel);
        Assert.Equal(d.TablePages, d2.TablePages);

        Workload(d, 2, 400);
        Workload(d2, 2, 400);
        AssertSameMemory(mem, mem2);
        d.Deinit();
        d2.Deinit();
        Assert.Equal(0, mem.AllocatedPages);
        Assert.Equal(0, mem2.AllocatedPages);
    }

    [Fact]
    public void RestoreRejectsASnapshotWhoseTopIsNotAllocated()
    {
        var mem = new TableMemory();
        var d = Make(PtFormatKind.X86_64, mem);
        var snap = d.Capture() with { TopPage = 7 };
        Assert.Throws<ArgumentException>(() => IommuDomain.Restore(snap, TableMemory.Restore(mem.Capture()), out _));
    }

    private static string Hash(IommuDomain d)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        d.WriteCanonical(h);
        return Convert.ToHexStringLower(h.GetHashAndReset());
    }

    [Theory]
    [InlineData(PtFormatKind.Amdv1)]
    [InlineData(PtFormatKind.X86_64)]
    [InlineData(PtFormatKind.Vtdss)]
    public void CanonicalHashIgnoresAllocationOrderAndDirtyBits(PtFormatKind format)
    {
        var a = Make(format);
        var b = Make(format);
        // Same final mappings, tables allocated in a different order.
        Assert.Equal(Errno.None, a.IommuMap(0x4000_0000, 0x1000, 0x1000, RW));
        Assert.Equal(Errno.None, a.IommuMap(0x8000_0000, 0x2000, 0x1000, RW));
        Assert.Equal(Errno.None, b.IommuMap(0x8000_0000, 0x2000, 0x1000, RW));
        Assert.Equal(Errno.None, b.IommuMap(0x4000_0000, 0x1000, 0x1000, RW));
        if (format != PtFormatKind.X86_64)
            Assert.Equal(Errno.None, b.SetDirty(0x4000_0000));
        Assert.Equal(Hash(a), Hash(b));

        Assert.Equal(Errno.None, b.IommuMap(0xc000_0000, 0x3000, 0x1000, RW));
        Assert.NotEqual(Hash(a), Hash(b));
    }
}
