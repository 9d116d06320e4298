using Xunit;

namespace PtActors.Engine.Tests.Unit;

/// <summary>SPEC §2.0 (iommu.c core: iommu_pgsize, iommu_map unroll, __iommu_unmap loop, iova_to_phys), §2.1-2.3, §1.11.</summary>
public class CoreWrapperTests
{
    private const ulong X86Bitmap = 0x4020_1000;
    private const ulong K4 = 0x1000, M1 = 0x10_0000, M2 = 0x20_0000, G1 = 0x4000_0000;

    // ------------------------------------------------------------------ iommu_pgsize

    [Fact]
    public void Pgsize_X86Map1MAt1MFor3M_Is4KTimes256Then2MTimes1()
    {
        ulong pg = IommuDomain.Pgsize(X86Bitmap, M1, M1, 3 * M1, out ulong count);
        Assert.Equal((K4, 256UL), (pg, count));
        pg = IommuDomain.Pgsize(X86Bitmap, M2, M2, 2 * M1, out count);
        Assert.Equal((M2, 1UL), (pg, count));
    }

    [Fact]
    public void Pgsize_StopsAtTheBoundaryOnlyWhenABiggerPageFitsAfterIt()
    {
        // 1M at 1M for 2M: offset (1M) + 2M > 2M, so no stop: 512 × 4K.
        Assert.Equal(K4, IommuDomain.Pgsize(X86Bitmap, M1, M1, M2, out ulong count));
        Assert.Equal(512UL, count);
        // 1M at 1M for exactly 3M stops after 1M (see above); for 3M + 4K too.
        Assert.Equal(K4, IommuDomain.Pgsize(X86Bitmap, M1, M1, 3 * M1 + K4, out count));
        Assert.Equal(256UL, count);
        // Aligned start: the largest size that fits, as many as fit before the next bigger boundary.
        Assert.Equal(M2, IommuDomain.Pgsize(X86Bitmap, M2, M2, G1, out count));
        Assert.Equal(512UL, count);   // offset (1G - 2M) + 1G > 1G: no stop
        Assert.Equal(M2, IommuDomain.Pgsize(X86Bitmap, M2, M2, 2 * G1, out count));
        Assert.Equal(511UL, count);   // stop at the 1G boundary
        Assert.Equal(M2, IommuDomain.Pgsize(X86Bitmap, M2, M2, G1 - M2, out count));
        Assert.Equal(511UL, count);
        Assert.Equal(M2, IommuDomain.Pgsize(X86Bitmap, M2, M2, 3 * M2, out count));
        Assert.Equal(3UL, count);
        Assert.Equal(G1, IommuDomain.Pgsize(X86Bitmap, 0, 0, 3 * G1 + M2, out count));
        Assert.Equal(3UL, count);
    }

    [Fact]
    public void Pgsize_IovaPaddrMisalignment_NeverStopsForABiggerPage()
    {
        Assert.Equal(K4, IommuDomain.Pgsize(X86Bitmap, 0, K4, 4 * M1, out ulong count));
        Assert.Equal(1024UL, count);
        // VA 512K-aligned, PA 4K-aligned (kunit test_pgsize_boundary).
        Assert.Equal(K4, IommuDomain.Pgsize(0xf_ff7f_ffff_f000, 0xfef8_0000, 0x20_8b95_d000, 0x2_0000, out count));
        Assert.Equal(32UL, count);
        // Same low bits, different high bits: iova ^ paddr aligned to 2M, so the boundary stop applies.
        Assert.Equal(K4, IommuDomain.Pgsize(X86Bitmap, M1, G1 + M1, 3 * M1, out count));
        Assert.Equal(256UL, count);
    }

    [Fact]
    public void Pgsize_BoundaryArithmeticIsUnsignedAndOverflowChecked()
    {
        const ulong bitmap = 0x8000_0000_0000_1000;
        // offset + 2^63 does not wrap: the stop applies (size = offset).
        Assert.Equal(K4, IommuDomain.Pgsize(bitmap, K4, K4, 0xffff_ffff_ffff_f000, out ulong count));
        Assert.Equal((0x8000_0000_0000_0000UL - K4) >> 12, count);
        // offset == 2^63: offset + 2^63 wraps to 0, which is below offset: no stop.
        Assert.Equal(K4, IommuDomain.Pgsize(bitmap, 0, 0, 0x8000_0000_0000_0000UL - K4, out count));
        Assert.Equal((0x8000_0000_0000_0000UL - K4) >> 12, count);
    }

    [Fact]
    public void Pgsize_NoSizeFits_IsABug()
        => Assert.Throws<InvalidOperationException>(() => IommuDomain.Pgsize(X86Bitmap, 0, 0, 0x800, out _));

    // ------------------------------------------------------------------ iommu_map

    [Fact]
    public void Map_X86_1MAt1MFor3M_Gives256SmallLeavesAndOne2M()
    {
        var d = UnitHelpers.Make(PtFormatKind.X86_64);
        Assert.Equal(Errno.None, d.IommuMap(M1, M1, 3 * M1, UnitHelpers.RW));
        var leaves = UnitHelpers.LeafSizes(d);
        Assert.Equal(257, leaves.Count);
        Assert.Equal(256, leaves.Count(l => l.Size == K4));
        Assert.Equal((M2, M2), leaves[^1]);
        Assert.Equal(M1, leaves[0].Va);
    }

    [Fact]
    public void Map_ArgumentChecks()
    {
        var d = UnitHelpers.Make(PtFormatKind.X86_64);
        Assert.Equal(Errno.None, d.IommuMap(0, 0, 0, UnitHelpers.RW));               // size 0: nothing
        Assert.Equal(Errno.EINVAL, d.IommuMap(0x800, 0, K4, UnitHelpers.RW));        // unaligned iova
        Assert.Equal(Errno.EINVAL, d.IommuMap(0, 0x800, K4, UnitHelpers.RW));        // unaligned paddr
        Assert.Equal(Errno.EINVAL, d.IommuMap(0, 0, 0x1800, UnitHelpers.RW));        // unaligned size
        Assert.Equal(Errno.EINVAL, d.IommuMap(0, 0, K4, IommuProt.Cache));           // neither R nor W
        Assert.Equal(Errno.ERANGE, d.IommuMap(0, 1UL << 52, K4, UnitHelpers.RW));    // paddr beyond oasz
        Assert.Equal(Errno.ERANGE, d.IommuMap(0x8000_0000_0000, 0, K4, UnitHelpers.RW)); // non-canonical
        Assert.Empty(UnitHelpers.Leaves(d));
        Assert.Equal(1, d.TablePages);
        // The upper half of a sign-extended table is usable.
        Assert.Equal(Errno.None, d.IommuMap(0xffff_ffff_ffff_f000, 0x5000, K4, UnitHelpers.RW));
        Assert.Equal(0x5000UL, d.IommuIovaToPhys(0xffff_ffff_ffff_f000));
        Assert.Equal([(0xffff_ffff_ffff_f000UL, K4)], UnitHelpers.LeafSizes(d));

        var r = UnitHelpers.Make(PtFormatKind.Riscv64);
        Assert.Equal(Errno.EINVAL, r.IommuMap(0, 0, K4, IommuProt.NoExec));
        var v = UnitHelpers.Make(PtConfig.Default(PtFormatKind.Vtdss) with
        {
            Features = PtFeatures.FlushRange | PtFeatures.VtdssForceWriteable,
        });
        Assert.Equal(Errno.EINVAL, v.IommuMap(0, 0, K4, IommuProt.Read));
    }

    [Fact]
    public void Map_OverAnyExistingLeaf_IsEaddrinuse()
    {
        var d = UnitHelpers.Make(PtFormatKind.X86_64);
        Assert.Equal(Errno.None, d.IommuMap(M2, 0, M2, UnitHelpers.RW));
        Assert.Equal(Errno.EADDRINUSE, d.IommuMap(M2, 0, M2, UnitHelpers.RW));          // same size
        Assert.Equal(Errno.EADDRINUSE, d.IommuMap(M2 + K4, 0, K4, UnitHelpers.RW));     // smaller, under it
        Assert.Equal(Errno.EADDRINUSE, d.IommuMap(0, 0, G1, UnitHelpers.RW));           // larger, over it
        Assert.Equal([(M2, M2)], UnitHelpers.LeafSizes(d));
    }

    [Fact]
    public void Map_FailingMidwayWithEaddrinuse_LeavesTheTableExactlyAsBefore()
    {
        var d = UnitHelpers.Make(PtFormatKind.X86_64);
        Assert.Equal(Errno.None, d.IommuMap(0x1_0000, 0x1_0000, K4, UnitHelpers.RW));
        var before = UnitHelpers.Leaves(d);
        int pages = d.TablePages;
        // 16 × 4K from 0x8000: 0x8000..0xffff go in, 0x10000 collides; the core unmaps what it mapped.
        Assert.Equal(Errno.EADDRINUSE, d.IommuMap(0x8000, 0x8000, 0x1_0000, UnitHelpers.RW));
        Assert.Equal(before, UnitHelpers.Leaves(d));
        Assert.Equal(pages, d.TablePages);
        Assert.Equal(0UL, d.IommuIovaToPhys(0x8000));
    }

    [Fact]
    public void Map_FailingInALaterChunk_UnrollsEarlierChunks_AndFreesTablesItFilled()
    {
        var mem = new TableMemory();
        var d = UnitHelpers.Make(PtConfig.Default(PtFormatKind.X86_64), mem);
        Assert.Equal(Errno.None, d.IommuMap(M2, 0x7000_0000, K4, UnitHelpers.RW));
        var before = UnitHelpers.Leaves(d);
        int pages = d.TablePages;
        Assert.Equal(4, pages);
        // 512 × 4K over [0, 2M) fill a new level-0 table, then 0x200000 collides; the unroll covers
        // that whole table, so it is freed again.
        Assert.Equal(Errno.EADDRINUSE, d.IommuMap(0, K4, M2 + K4, UnitHelpers.RW));
        Assert.Equal(before, UnitHelpers.Leaves(d));
        Assert.Equal(pages, d.TablePages);
        Assert.Equal(pages, mem.AllocatedPages);
    }

    [Fact]
    public void Map_FailingInThe2MChunk_UnrollsThe4KChunk_LeavingOnlyAnEmptyTable()
    {
        var d = UnitHelpers.Make(PtFormatKind.X86_64);
        Assert.Equal(Errno.None, d.IommuMap(M2 + 0x5000, 0, K4, UnitHelpers.RW));
        var before = UnitHelpers.Leaves(d);
        Assert.Equal(4, d.TablePages);
        // map(1M, 1M, 3M): 256 × 4K then a 2M leaf at 2M, which collides with the 4K leaf's table.
        Assert.Equal(Errno.EADDRINUSE, d.IommuMap(M1, M1, 3 * M1, UnitHelpers.RW));
        Assert.Equal(before, UnitHelpers.Leaves(d));
        // The level-0 table for [0, 2M) created by the first chunk is only partly covered by the unroll
        // (iommu_unmap(1M, 1M)), so as in the kernel it stays, empty.
        Assert.Equal(5, d.TablePages);
    }

    [Fact]
    public void Map_Enomem_IsUnrolledToo()
    {
        var mem = new TableMemory();
        var d = UnitHelpers.Make(PtConfig.Default(PtFormatKind.X86_64), mem);
        // [0x1ff000, 0x201000) needs L2, L1 and two level-0 tables; allow only three more pages.
        mem.PageLimit = mem.AllocatedPages + 3;
        Assert.Equal(Errno.ENOMEM, d.IommuMap(0x1f_f000, 0x1f_f000, 2 * K4, UnitHelpers.RW));
        Assert.Empty(UnitHelpers.Leaves(d));
        Assert.Equal(0UL, d.IommuIovaToPhys(0x1f_f000));
        // The unroll (iommu_unmap(0x1ff000, 4K)) covers no table fully: the three tables stay.
        Assert.Equal(4, d.TablePages);
        Assert.Equal(4, mem.AllocatedPages);
        mem.PageLimit = int.MaxValue;
        Assert.Equal(Errno.None, d.IommuMap(0x1f_f000, 0x1f_f000, 2 * K4, UnitHelpers.RW));
        Assert.Equal(2, UnitHelpers.Leaves(d).Count);
    }

    [Fact]
    public void Map_PgsizeBoundaryCase_Gives32SmallLeaves()
    {
        Span<long> buckets = stackalloc long[64];
        foreach (var kind in new[] { PtFormatKind.Amdv1, PtFormatKind.X86_64, PtFormatKind.Vtdss, PtFormatKind.Riscv64 })
        {
            var d = UnitHelpers.Make(kind);
            const ulong pa = 0x20_8b95_d000UL;
            Assert.Equal(Errno.None, d.IommuMap(0xfef8_0000, pa, 0x2_0000, UnitHelpers.RW));
            Assert.Equal(32, d.CountLeaves(buckets));
            Assert.Equal(32, buckets[12]);
            for (ulong off = 0; off < 0x2_0000; off += K4)
                Assert.Equal(pa + off + 0x123, d.IommuIovaToPhys(0xfef8_0000 + off + 0x123));
        }
    }

    [Fact]
    public void Map_Amdv1_AlignedSizesAreSingleContiguousEntries()
    {
        var d = UnitHelpers.Make(PtFormatKind.Amdv1);
        Assert.Equal(Errno.None, d.IommuMap(0, 0, 0x2000, UnitHelpers.RW));
        Assert.Equal(Errno.None, d.IommuMap(0x1_0000, 0x8_0000, 0x1_0000, UnitHelpers.RW));
        Assert.Equal(Errno.None, d.IommuMap(0x40_0000, 0xc0_0000, 0x40_0000, UnitHelpers.RW));
        Assert.Equal([(0UL, 0x2000UL), (0x1_0000UL, 0x1_0000UL), (0x40_0000UL, 0x40_0000UL)], UnitHelpers.LeafSizes(d));
        Assert.Equal(0x8_3456UL, d.IommuIovaToPhys(0x1_3456));
        Assert.Equal(0xff_ffffUL, d.IommuIovaToPhys(0x7f_ffff));
    }

    // ------------------------------------------------------------------ amdv1 dynamic top (§1.11, Reading 5)

    [Fact]
    public void Amdv1_MapAbove39Bits_GrowsExactlyOneLevel_OldTreeAtIndex0()
    {
        var d = UnitHelpers.Make(PtFormatKind.Amdv1);
        Assert.Equal(Errno.None, d.IommuMap(0x1000, 0x5000, K4, UnitHelpers.RW));
        int oldTop = d.TopPage;
        int pages = d.TablePages;
        Assert.Equal(unchecked((ulong)-(long)Errno.ERANGE), d.IommuIovaToPhys(1UL << 39)); // beyond the top now
        Assert.Equal(Errno.None, d.IommuMap(1UL << 39, 0, K4, UnitHelpers.RW));
        Assert.Equal(3, d.TopLevel);
        Assert.Equal(new VaRange(0, (1UL << 48) - 1), d.TopRange);
        Assert.Equal(0x5000UL, d.IommuIovaToPhys(0x1000));
        // The new top's item 0 points at the old top table.
        var ops = d.FormatOps;
        ulong item0 = d.Memory[d.TopPage][0];
        Assert.Equal(PtEntryType.Table, ops.Load(item0, 3));
        Assert.Equal(d.Memory.PageToPa(oldTop), ops.TablePa(item0));
        // New top + L2, L1, L0 for the new mapping.
        Assert.Equal(pages + 4, d.TablePages);
    }

    [Fact]
    public void Amdv1_GrowthByLeafSize_StaysWhenTheMapFails()
    {
        var d = UnitHelpers.Make(PtFormatKind.Amdv1);
        Assert.Equal(Errno.None, d.IommuMap(0, 0, K4, UnitHelpers.RW));
        int pages = d.TablePages;
        // A 1 TiB leaf lives at level 3: the top grows 2 → 3, then the leaf collides with the 4K leaf.
        Assert.Equal(Errno.EADDRINUSE, d.IommuMap(0, 0, 1UL << 40, UnitHelpers.RW));
        Assert.Equal(3, d.TopLevel);
        Assert.Equal(pages + 1, d.TablePages);
        Assert.Equal([(0UL, K4)], UnitHelpers.LeafSizes(d));
    }

    [Fact]
    public void Amdv1_GrowthStaysWhenTheMapRunsOutOfMemory()
    {
        var mem = new TableMemory();
        var d = UnitHelpers.Make(PtConfig.Default(PtFormatKind.Amdv1), mem);
        mem.PageLimit = mem.AllocatedPages + 1; // room for the new top only
        Assert.Equal(Errno.ENOMEM, d.IommuMap(1UL << 39, 0, K4, UnitHelpers.RW));
        Assert.Equal(3, d.TopLevel);
        Assert.Equal(2, d.TablePages);
        Assert.Empty(UnitHelpers.Leaves(d));
    }

    [Fact]
    public void Amdv1_GrowsToLevel5AndTheFull64BitRange()
    {
        var d = UnitHelpers.Make(PtFormatKind.Amdv1);
        Assert.Equal(Errno.None, d.IommuMap(0xffff_ffff_ffff_f000, 0x1000, K4, UnitHelpers.RW));
        Assert.Equal(5, d.TopLevel);
        Assert.Equal(new VaRange(0, ulong.MaxValue), d.TopRange);
        Assert.Equal(0x1fffUL, d.IommuIovaToPhys(ulong.MaxValue));
        Assert.Equal(K4, d.IommuUnmap(0xffff_ffff_ffff_f000, K4));
    }

    [Fact]
    public void Amdv1_UnmapPhysAndTouchBeyondTheCurrentTopSeeOutOfRange()
    {
        var d = UnitHelpers.Make(PtFormatKind.Amdv1);
        Assert.Equal(0UL, d.IommuUnmap(1UL << 39, K4));
        Assert.Equal(Errno.ERANGE, d.TryIovaToPhys(1UL << 39, out _));
        Assert.Equal(Errno.ERANGE, d.SetDirty(1UL << 39));
        Assert.Equal(2, d.TopLevel);
    }

    // ------------------------------------------------------------------ unmap

    [Fact]
    public void Unmap_StopsAtAHole()
    {
        var d = UnitHelpers.Make(PtFormatKind.X86_64);
        Assert.Equal(Errno.None, d.IommuMap(0, 0, K4, UnitHelpers.RW));
        Assert.Equal(Errno.None, d.IommuMap(0x2000, 0x2000, K4, UnitHelpers.RW));
        Assert.Equal(K4, d.IommuUnmap(0, 0x3000));
        Assert.Equal([(0x2000UL, K4)], UnitHelpers.LeafSizes(d));
        Assert.Equal(0UL, d.IommuUnmap(0x1000, 0x2000));  // starts at a hole
        Assert.Equal(K4, d.IommuUnmap(0x2000, K4));
    }

    [Fact]
    public void Unmap_EndInsideALargePage_ReturnsTheWholePage()
    {
        var d = UnitHelpers.Make(PtFormatKind.X86_64);
        Assert.Equal(Errno.None, d.IommuMap(0, 0, M2, UnitHelpers.RW));
        Assert.Equal(Errno.None, d.IommuMap(M2, 0, M2, UnitHelpers.RW));
        Assert.Equal(M2, d.IommuUnmap(0, K4));      // does not continue into the second page
        Assert.Equal([(M2, M2)], UnitHelpers.LeafSizes(d));
        Assert.Equal(M2, d.IommuUnmap(M2, M2));
        Assert.Empty(UnitHelpers.Leaves(d));

        var a = UnitHelpers.Make(PtFormatKind.Amdv1);
        Assert.Equal(Errno.None, a.IommuMap(0x1_0000, 0x8_0000, 0x1_0000, UnitHelpers.RW));
        Assert.Equal(0x1_0000UL, a.IommuUnmap(0x1_0000, K4)); // a contiguous entry goes whole
        Assert.Empty(UnitHelpers.Leaves(a));
    }

    [Fact]
    public void Unmap_StartInsideALeaf_ReturnsZeroAndChangesNothing()
    {
        var d = UnitHelpers.Make(PtFormatKind.X86_64);
        Assert.Equal(Errno.None, d.IommuMap(M2, G1, M2, UnitHelpers.RW));
        Assert.Equal(0UL, d.IommuUnmap(M2 + K4, K4));
        Assert.Equal(G1 + K4, d.IommuIovaToPhys(M2 + K4));
        var a = UnitHelpers.Make(PtFormatKind.Amdv1);
        Assert.Equal(Errno.None, a.IommuMap(0x1_0000, 0x8_0000, 0x1_0000, UnitHelpers.RW));
        Assert.Equal(0UL, a.IommuUnmap(0x1_8000, 0x8000));
        Assert.Equal([(0x1_0000UL, 0x1_0000UL)], UnitHelpers.LeafSizes(a));
    }

    [Fact]
    public void Unmap_SizeZeroOrUnaligned_ReturnsZero()
    {
        var d = UnitHelpers.Make(PtFormatKind.X86_64);
        Assert.Equal(Errno.None, d.IommuMap(0, 0, M2, UnitHelpers.RW));
        Assert.Equal(0UL, d.IommuUnmap(0, 0));
        Assert.Equal(0UL, d.IommuUnmap(0x800, K4));
        Assert.Equal(0UL, d.IommuUnmap(0, 0x800));
        Assert.Single(UnitHelpers.Leaves(d));
    }

    [Fact]
    public void Unmap_OneGigOf4KPages_FreesTheLevel0AndLevel1Tables()
    {
        var mem = new TableMemory();
        var d = UnitHelpers.Make(PtConfig.Default(PtFormatKind.X86_64), mem);
        d.PgsizeBitmap = K4;
        Assert.Equal(Errno.None, d.IommuMap(0, 0, G1, UnitHelpers.RW));
        Assert.Equal(1 + 1 + 1 + 512, d.TablePages);
        Assert.Equal(G1, d.IommuUnmap(0, G1));
        Assert.Equal(2, d.TablePages);  // top and the level-2 table remain
        Assert.Equal(2, mem.AllocatedPages);
        d.Deinit();
        Assert.Equal(0, mem.AllocatedPages);
    }

    // ------------------------------------------------------------------ iova_to_phys

    [Fact]
    public void IovaToPhys_ErangeQuirk_UnmappedZero_AndALeafAtPaZero()
    {
        var d = UnitHelpers.Make(PtFormatKind.X86_64);
        ulong erange = unchecked((ulong)-34L);
        Assert.Equal(0xffff_ffff_ffff_ffdeUL, erange);
        Assert.Equal(erange, d.IommuIovaToPhys(0x8000_0000_0000));   // non-canonical
        Assert.Equal(Errno.ERANGE, d.TryIovaToPhys(0x8000_0000_0000, out _));
        Assert.Equal(0UL, d.IommuIovaToPhys(0x5000));                 // unmapped
        Assert.Equal(Errno.ENOENT, d.TryIovaToPhys(0x5000, out _));

        Assert.Equal(Errno.None, d.IommuMap(0x5000, 0, K4, UnitHelpers.RW));
        Assert.Equal(0UL, d.IommuIovaToPhys(0x5000));                 // the kernel cannot tell
        Assert.Equal(Errno.None, d.TryIovaToPhys(0x5000, out ulong pa));
        Assert.Equal(0UL, pa);
        Assert.Equal(0xabcUL, d.IommuIovaToPhys(0x5abc));
        Assert.Equal(Errno.None, d.TryIovaToPhys(0x5fff, out pa));
        Assert.Equal(0xfffUL, pa);

        var v = UnitHelpers.Make(PtFormatKind.Vtdss);
        Assert.Equal(erange, v.IommuIovaToPhys(1UL << 48));
        var r = UnitHelpers.Make(PtFormatKind.Riscv64);
        Assert.Equal(erange, r.IommuIovaToPhys(1UL << 38));
        Assert.Equal(0UL, r.IommuIovaToPhys(0xffff_ffc0_0000_0000)); // upper half: in range, unmapped
    }

    [Fact]
    public void IovaToPhys_OfContiguousAndLargeLeaves_AddsTheOffsetWithinTheEntry()
    {
        var r = UnitHelpers.Make(PtFormatKind.Riscv64);
        Assert.Equal(Errno.None, r.IommuMap(0x1_0000, 0xa7_1445_dead_0000, 0x1_0000, UnitHelpers.RW));
        Assert.Equal([(0x1_0000UL, 0x1_0000UL)], UnitHelpers.LeafSizes(r));
        Assert.Equal(0xa7_1445_dead_f123UL, r.IommuIovaToPhys(0x1_f123));
        var x = UnitHelpers.Make(PtFormatKind.X86_64);
        Assert.Equal(Errno.None, x.IommuMap(G1, 3 * G1, G1, UnitHelpers.RW));
        Assert.Equal(3 * G1 + 0x1234_5678, x.IommuIovaToPhys(G1 + 0x1234_5678));
    }

    // ------------------------------------------------------------------ edges

    [Fact]
    public void Map_WrappingPastTheTopOfTheAddressSpace_IsEoverflow()
    {
        var a = UnitHelpers.Make(PtFormatKind.Amdv1);
        Assert.Equal(Errno.EOVERFLOW, a.IommuMap(0xffff_ffff_ffff_f000, 0, 0x2000, UnitHelpers.RW));
        Assert.Empty(UnitHelpers.Leaves(a));
        var x = UnitHelpers.Make(PtFormatKind.X86_64);
        Assert.Equal(Errno.EOVERFLOW, x.IommuMap(0xffff_ffff_ffff_f000, 0, 0x2000, UnitHelpers.RW));
        Assert.Empty(UnitHelpers.Leaves(x));
    }

    [Theory]
    [InlineData(PtFormatKind.X86_64, 0xffff_8000_0000_0000UL)]
    [InlineData(PtFormatKind.Riscv64, 0xffff_ffc0_0000_0000UL)]
    public void SignExtendedUpperHalf_MapCountUnmap(PtFormatKind kind, ulong upper)
    {
        var mem = new TableMemory();
        var d = UnitHelpers.Make(PtConfig.Default(kind), mem);
        Assert.Equal(new VaRange(upper, ulong.MaxValue), d.UpperRange);
        Assert.Equal(Errno.None, d.IommuMap(upper, 0x1000, M2, UnitHelpers.RW));      // 4K leaves (PA misaligned)
        Assert.Equal(Errno.None, d.IommuMap(ulong.MaxValue - M2 + 1, 0, M2, UnitHelpers.RW)); // one 2M leaf
        Assert.Equal(Errno.None, d.IommuMap(0, 0, K4, UnitHelpers.RW));
        Span<long> buckets = stackalloc long[64];
        Assert.Equal(514, d.CountLeaves(buckets));
        Assert.Equal(513, buckets[12]);
        Assert.Equal(1, buckets[21]);
        var leaves = UnitHelpers.LeafSizes(d);
        Assert.Equal((0UL, K4), leaves[0]);
        Assert.Equal((upper, K4), leaves[1]);
        Assert.Equal((ulong.MaxValue - M2 + 1, M2), leaves[^1]);
        Assert.Equal(M2 - 1, d.IommuIovaToPhys(ulong.MaxValue));
        Assert.Equal(M2, d.IommuUnmap(ulong.MaxValue - M2 + 1, K4));
        Assert.Equal(M2, d.IommuUnmap(upper, M2));
        d.Deinit();
        Assert.Equal(0, mem.AllocatedPages);
    }

    [Theory]
    [InlineData(PtFormatKind.Amdv1)]
    [InlineData(PtFormatKind.X86_64)]
    [InlineData(PtFormatKind.Vtdss)]
    [InlineData(PtFormatKind.Riscv64)]
    public void Deinit_FreesEveryTablePage_WithMappingsLeft(PtFormatKind kind)
    {
        var mem = new TableMemory();
        var d = UnitHelpers.Make(PtConfig.Default(kind), mem);
        Assert.Equal(Errno.None, d.IommuMap(0x3fe4_0000, 0x3fe4_0000, 0x100_0000, UnitHelpers.RW));
        Assert.Equal(Errno.None, d.IommuMap(0x1_0000_0000 - M2, 0, 3 * M2, UnitHelpers.RW));
        Assert.Equal(Errno.None, d.IommuMap(0x5000, 0x7000, 0x3000, UnitHelpers.RW));
        Assert.Equal(mem.AllocatedPages, d.TablePages);
        Assert.True(d.TablePages > 3);
        d.Deinit();
        Assert.Equal(0, mem.AllocatedPages);
    }

    [Theory]
    [InlineData(PtFormatKind.X86_64, 48)]
    [InlineData(PtFormatKind.Riscv64, 39)]
    public void SignExtend_CheckRangePrefixIsLiteral(PtFormatKind kind, int vasz)
    {
        // SPEC §1.7 / Reading 7: prefix = (va >> (vasz-1)) != 0 ? MAX : 0, and only the bits at and above vasz are
        // compared with it. The first non-canonical VA above the lower half fails (its bits above vasz are 0) ...
        var d = UnitHelpers.Make(kind);
        ulong firstNonCanonical = 1UL << (vasz - 1);
        Assert.Equal(Errno.ERANGE, d.IommuMap(firstNonCanonical, 0, K4, UnitHelpers.RW));
        Assert.Equal(Errno.ERANGE, d.TryIovaToPhys(firstNonCanonical, out _));
        Assert.Equal(Errno.ERANGE, d.IommuMap(1UL << vasz, 0, K4, UnitHelpers.RW));
        // ... but a VA whose bits above vasz are all ones passes even with bit vasz-1 clear, and its index
        // (va mod 2^vasz) lands in the lower half: it aliases va mod 2^vasz.
        ulong quirk = Log2.SetMod(ulong.MaxValue, (1UL << (vasz - 1)) - K4, vasz);
        ulong alias = Log2.Mod(quirk, vasz);
        Assert.Equal(Errno.None, d.IommuMap(quirk, 0x7000, K4, UnitHelpers.RW));
        Assert.Equal(0x7000UL, d.IommuIovaToPhys(alias));
        Assert.Equal([(alias, K4)], UnitHelpers.LeafSizes(d));
        Assert.Equal(Errno.EADDRINUSE, d.IommuMap(alias, 0, K4, UnitHelpers.RW));
    }
}
