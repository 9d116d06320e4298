using PtActors.Engine.Dma;
using Xunit;

namespace PtActors.Engine.Tests;

public class IovaAllocatorTests
{
    [Fact]
    public void AllocatesSizeAlignedTopDown()
    {
        var a = new IovaAllocator(0x1000, 0xffff_ffff);
        Assert.True(a.TryAllocate(0x1000, out ulong x));
        Assert.Equal(0xffff_f000UL, x);
        Assert.True(a.TryAllocate(0x3000, out ulong y));            // 3 pages round up to 4: 16 KiB aligned
        Assert.Equal(0xffff_b000UL & ~0x3fffUL, y);
        Assert.Equal(0UL, y & 0x3fff);
        Assert.True(a.TryAllocate(0x200000, out ulong z));
        Assert.Equal(0UL, z & 0x1fffff);
        Assert.True(z + 0x200000 <= y);
        Assert.Equal(0x1000UL + 0x4000 + 0x200000, a.AllocatedBytes);
    }

    [Fact]
    public void FreedRangesAreReusedLastInFirstOut()
    {
        var a = new IovaAllocator(0x1000, 0xffff_ffff);
        a.TryAllocate(0x1000, out ulong p1);
        a.TryAllocate(0x1000, out ulong p2);
        a.Free(p1, 0x1000);
        a.Free(p2, 0x1000);
        Assert.True(a.TryAllocate(0x1000, out ulong r));
        Assert.Equal(p2, r);
        Assert.Equal(1, a.CacheHits);
    }

    [Fact]
    public void ExhaustionFailsCleanly()
    {
        var a = new IovaAllocator(0x1000, 0x4fff);                  // four pages
        for (int i = 0; i < 4; i++)
            Assert.True(a.TryAllocate(0x1000, out _));
        Assert.False(a.TryAllocate(0x1000, out _));
        Assert.False(a.TryAllocate(0, out _));
        Assert.Throws<ArgumentException>(() => a.Free(0x100000, 0x1000));
    }

    [Fact]
    public void CaptureAndRestoreContinueIdentically()
    {
        var a = new IovaAllocator(0x1000, 0xffff_ffff);
        var rng = new Random(5);
        var live = new List<(ulong, ulong)>();
        for (int i = 0; i < 200; i++)
        {
            if (live.Count > 0 && rng.Next(2) == 0)
            {
                var (v, s) = live[^1];
                live.RemoveAt(live.Count - 1);
                a.Free(v, s);
            }
            else
            {
                ulong size = (ulong)rng.Next(1, 40) << 12;
                Assert.True(a.TryAllocate(size, out ulong v));
                live.Add((v, size));
            }
        }
        var (next, caches) = a.Capture();
        var b = IovaAllocator.Restore(a.Start, a.Limit, next, caches, a.AllocatedBytes);
        for (int i = 0; i < 50; i++)
        {
            ulong size = (ulong)rng.Next(1, 40) << 12;
            Assert.True(a.TryAllocate(size, out ulong va));
            Assert.True(b.TryAllocate(size, out ulong vb));
            Assert.Equal(va, vb);
        }
    }
}
