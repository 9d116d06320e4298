using Xunit;
using Xunit.Abstractions;

namespace PtActors.Engine.Tests.Unit;

/// <summary>TableMemory: deterministic lowest-free-first allocation, accounting, limits and memory cost.</summary>
public class TableMemoryTests
{
    private readonly ITestOutputHelper _out;

    public TableMemoryTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public void Allocate_ReturnsZeroedPages_EvenWhenReusingADirtyPage()
    {
        var mem = new TableMemory();
        int p = mem.Allocate();
        Assert.Equal(0, p);
        Assert.Equal(TableMemory.ItemsPerPage, mem[p].Length);
        Assert.All(mem[p], v => Assert.Equal(0UL, v));
        mem[p].AsSpan().Fill(0xdead_beef_dead_beef);
        mem.Free(p);
        int q = mem.Allocate();
        Assert.Equal(p, q);
        Assert.All(mem[q], v => Assert.Equal(0UL, v));
    }

    [Fact]
    public void Free_KeepsContentsUntilReallocated()
    {
        var mem = new TableMemory();
        int p = mem.Allocate();
        mem[p][7] = 0x1234;
        mem.Free(p);
        Assert.False(mem.IsAllocated(p));
        Assert.Equal(0x1234UL, mem[p][7]);
    }

    [Fact]
    public void Allocate_LowestFreeFirst_Free5Then2_Gives2Then5ThenNew()
    {
        var mem = new TableMemory();
        for (int i = 0; i < 8; i++)
            Assert.Equal(i, mem.Allocate());
        mem.Free(5);
        mem.Free(2);
        Assert.Equal(2, mem.Allocate());
        Assert.Equal(5, mem.Allocate());
        Assert.Equal(8, mem.Allocate());
    }

    [Fact]
    public void Allocate_LowestFreeFirst_AcrossBitmapWords()
    {
        var mem = new TableMemory();
        for (int i = 0; i < 200; i++)
            Assert.Equal(i, mem.Allocate());
        mem.Free(129);
        mem.Free(199);
        mem.Free(70);
        mem.Free(3);
        mem.Free(64);
        Assert.Equal(3, mem.Allocate());
        Assert.Equal(64, mem.Allocate());
        Assert.Equal(70, mem.Allocate());
        Assert.Equal(129, mem.Allocate());
        Assert.Equal(199, mem.Allocate());
        Assert.Equal(200, mem.Allocate());
        // Freeing a low page after the search moved past it is still found first.
        mem.Free(150);
        mem.Free(1);
        Assert.Equal(1, mem.Allocate());
        Assert.Equal(150, mem.Allocate());
    }

    [Fact]
    public void SameSequence_SameLayout_WhateverTheFreeOrder()
    {
        static int[] Run(int[] freeOrder)
        {
            var mem = new TableMemory();
            for (int i = 0; i < 10; i++)
                mem.Allocate();
            foreach (int p in freeOrder)
                mem.Free(p);
            return [mem.Allocate(), mem.Allocate(), mem.Allocate()];
        }
        Assert.Equal(Run([7, 1, 4]), Run([4, 7, 1]));
        Assert.Equal([1, 4, 7], Run([1, 7, 4]));
    }

    [Fact]
    public void DoubleFree_AndFreeOfUnknownPages_Throw()
    {
        var mem = new TableMemory();
        int p = mem.Allocate();
        mem.Free(p);
        Assert.Throws<InvalidOperationException>(() => mem.Free(p));
        Assert.Throws<InvalidOperationException>(() => mem.Free(1));
        Assert.Throws<InvalidOperationException>(() => mem.Free(-1));
        Assert.Equal(0, mem.AllocatedPages);
        Assert.Equal(1, mem.Frees);
    }

    [Fact]
    public void PageLimit_ReturnsMinusOneAndRecoversAfterAFree()
    {
        var mem = new TableMemory(pageLimit: 2);
        Assert.Equal(2, mem.PageLimit);
        Assert.Equal(0, mem.Allocate());
        Assert.Equal(1, mem.Allocate());
        Assert.Equal(-1, mem.Allocate());
        Assert.Equal(2, mem.AllocatedPages);
        Assert.Equal(2L, mem.Allocations);
        mem.Free(0);
        Assert.Equal(0, mem.Allocate());
        mem.PageLimit = 3;
        Assert.Equal(2, mem.Allocate());
        Assert.Equal(-1, mem.Allocate());
        mem.PageLimit = 0;
        Assert.Equal(-1, mem.Allocate());
    }

    [Fact]
    public void PaToPage_PageToPa_RoundTrip()
    {
        var mem = new TableMemory();
        Assert.Equal(TableMemory.DefaultBase, mem.Base);
        Assert.Equal(0x1_0000_0000UL, mem.PageToPa(0));
        Assert.Equal(0x1_0000_3000UL, mem.PageToPa(3));
        for (int i = 0; i < 5000; i += 37)
            Assert.Equal(i, mem.PaToPage(mem.PageToPa(i)));
        Assert.Equal(3, mem.PaToPage(0x1_0000_3fffUL));
        Assert.Equal(0x1_0000_0000UL + (0x7fff_ffffUL << 12), mem.PageToPa(int.MaxValue));

        var low = new TableMemory(baseAddress: 0x20_0000);
        Assert.Equal(0x20_0000UL, low.PageToPa(0));
        Assert.Equal(0x20_5000UL, low.PageToPa(5));
        Assert.Equal(5, low.PaToPage(0x20_5000));
        Assert.Throws<ArgumentException>(() => new TableMemory(baseAddress: 0x1234));
    }

    [Fact]
    public void Contains_OnlyPagesEverCreated()
    {
        var mem = new TableMemory();
        Assert.False(mem.Contains(mem.Base));
        mem.Allocate();
        mem.Allocate();
        Assert.True(mem.Contains(mem.Base));
        Assert.True(mem.Contains(mem.Base + 0x1fff));
        Assert.False(mem.Contains(mem.Base + 0x2000));
        Assert.False(mem.Contains(mem.Base - 1));
    }

    [Fact]
    public void Accounting_AllocatedPeakTotalAllocationsFrees()
    {
        var mem = new TableMemory();
        for (int i = 0; i < 5; i++)
            mem.Allocate();
        mem.Free(1);
        mem.Free(3);
        mem.Free(4);
        Assert.Equal(2, mem.AllocatedPages);
        Assert.Equal(5, mem.PeakPages);
        mem.Allocate();
        Assert.Equal(3, mem.AllocatedPages);
        Assert.Equal(5, mem.PeakPages);
        Assert.Equal(5, mem.TotalPages);
        Assert.Equal(6L, mem.Allocations);
        Assert.Equal(3L, mem.Frees);
        Assert.True(mem.IsAllocated(0));
        Assert.True(mem.IsAllocated(1));
        Assert.False(mem.IsAllocated(3));
        Assert.False(mem.IsAllocated(5));
        Assert.False(mem.IsAllocated(-1));
        for (int i = 0; i < 4; i++)
            mem.Allocate();
        Assert.Equal(7, mem.PeakPages);
        Assert.Equal(7, mem.TotalPages);
    }

    [Fact]
    public void MemoryCost_PerPageIsTheItemsPlusAtMost64Bytes_AndReuseAllocatesNothing()
    {
        const int n = 4096;
        var warm = new TableMemory();
        for (int i = 0; i < 64; i++)
            warm.Allocate();
        warm.Free(3);
        warm.Allocate();

        var mem = new TableMemory();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < n; i++)
            mem.Allocate();
        long cost = GC.GetAllocatedBytesForCurrentThread() - before;
        double perPage = cost / (double)n;
        double overhead = perPage - 4096;
        _out.WriteLine($"{n} pages: {cost} bytes, {perPage:F1} bytes/page, overhead {overhead:F1} bytes/page (incl. internal array growth)");
        Assert.InRange(overhead, 0, 64);

        // Steady state: pages freed and allocated again are reused in place. The thread's allocation counter also
        // sees the runtime's own work on it (a loop tiering up mid-run: seen once as 5 408 bytes in CI), so the
        // cycle runs a few times and the least it allocated must be 0: a cycle that allocated per page could not.
        long reuse = long.MaxValue;
        for (int round = 0; round < 4; round++)
        {
            for (int i = 0; i < n; i++)
                mem.Free(i);
            before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < n; i++)
                mem.Allocate();
            long bytes = GC.GetAllocatedBytesForCurrentThread() - before;
            _out.WriteLine($"re-allocating {n} freed pages, round {round}: {bytes} bytes");
            reuse = Math.Min(reuse, bytes);
        }
        Assert.Equal(0L, reuse);
    }

    [Theory]
    [InlineData(PtFormatKind.Amdv1)]
    [InlineData(PtFormatKind.X86_64)]
    [InlineData(PtFormatKind.Vtdss)]
    [InlineData(PtFormatKind.Riscv64)]
    public void MemoryCost_EmptyDomainIsTheTopPagePlusAtMost1KiB(PtFormatKind kind)
    {
        // Warm up: JIT and static initialisation of the format's generic table type.
        var warm = UnitHelpers.Make(kind);
        warm.Deinit();

        var cfg = PtConfig.Default(kind);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var mem = new TableMemory();
        long afterMemory = GC.GetAllocatedBytesForCurrentThread();
        var err = IommuDomain.Create(cfg, mem, out var d);
        long after = GC.GetAllocatedBytesForCurrentThread();
        Assert.Equal(Errno.None, err);
        Assert.NotNull(d);
        long domainBytes = after - afterMemory;
        long memoryBytes = afterMemory - before;
        _out.WriteLine($"{kind}: empty domain {domainBytes} bytes = 4096 + {domainBytes - 4096}; new TableMemory {memoryBytes} bytes");
        Assert.InRange(domainBytes - 4096, 0, 1024); // measured: 600 (page header + table object, 2 page lists, 2 gathers)
        Assert.InRange(memoryBytes, 0, 1024);       // measured: 312
        Assert.Equal(1, mem.AllocatedPages);
        GC.KeepAlive(d);
    }
}
