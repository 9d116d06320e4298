using Xunit;
using Xunit.Abstractions;

namespace PtActors.Engine.Tests.Kunit;

/// <summary>
/// kunit_iommu_pt.h (the <c>&lt;fmt&gt;_iommu_test</c> suites, SPEC §5.1) one case for one, over every kunit cfg.
/// Each case runs between pt_kunit_iommu_init and pt_kunit_iommu_exit (<see cref="KunitPriv.RunIommu"/>), so
/// every case also checks that deinit frees every table page. Where kunit calls kunit_skip, the cfgs it skips are
/// separate cases that xunit reports as skipped with kunit's message (<see cref="KunitSkips"/>).
/// </summary>
public class KunitIommuPtTests(ITestOutputHelper output)
{
    private const ulong SZ_1G = 1UL << 30;
    private const ulong SZ_2G = 1UL << 31;
    private const ulong SZ_16G = 1UL << 34;
    private const ulong MapleReservedRange = 4096; // MAPLE_RESERVED_RANGE

    /// <summary>The first VA test_mixed maps.</summary>
    internal const ulong MixedStart = 0x3fe400UL << 12;

    private static ulong Align(ulong x, ulong a) => (x + a - 1) & ~(a - 1);

    private static ulong AlignDown(ulong x, ulong a) => x & ~(a - 1);

    [Theory]
    [MemberData(nameof(KunitSkips.Runs), nameof(TestIncreaseLevel), MemberType = typeof(KunitSkips))]
    [MemberData(nameof(KunitSkips.Skipped), nameof(TestIncreaseLevel), KunitSkips.NoDynamicTop, MemberType = typeof(KunitSkips),
        Skip = KunitSkips.NoDynamicTop)]
    [MemberData(nameof(KunitSkips.Skipped), nameof(TestIncreaseLevel), KunitSkips.NoGrowth, MemberType = typeof(KunitSkips),
        Skip = KunitSkips.NoGrowth)]
    public void TestIncreaseLevel(string cfg) => KunitPriv.RunIommu(cfg, priv =>
    {
        KunitSkips.AssertRuns(nameof(TestIncreaseLevel), priv);
        var d = priv.Domain;

        // Add every possible level to the max.
        while (d.MaxVaszLg2 != priv.TopRange().MaxVaszLg2)
        {
            var top = priv.TopRange();
            if (top.Va == 0)
                priv.DoMap(top.LastVa + 1, 0, priv.SmallestPgsz);
            else
                priv.DoMap(top.Va - priv.SmallestPgsz, 0, priv.SmallestPgsz);

            Assert.Equal(top.TopLevel + 1, priv.TopRange().TopLevel);
            Assert.True(d.MaxVaszLg2 >= priv.TopRange().MaxVaszLg2);
        }
    });

    [Theory]
    [MemberData(nameof(KunitCfgs.All), MemberType = typeof(KunitCfgs))]
    public void TestMapSimple(string cfg) => KunitPriv.RunIommu(cfg, priv =>
    {
        var range = priv.TopRange();
        ulong pgsizeBitmap = priv.SafePgsizeBitmap;

        // Map every reported page size.
        ulong curVa = range.Va + priv.SmallestPgsz * 256;
        for (int pgszLg2 = 0; pgszLg2 != 64; pgszLg2++)
        {
            ulong paddr = Log2.SetMod(priv.TestOa, 0, pgszLg2);
            ulong len = Log2.ToInt(pgszLg2);
            if ((pgsizeBitmap & len) == 0)
                continue;

            curVa = Align(curVa, len);
            priv.DoMap(curVa, paddr, len);
            if (len <= SZ_2G)
                priv.CheckIova(curVa, paddr, len);
            curVa += len;
        }

        // The read interface reports that every page size was created.
        var valids = priv.CountValidsPerSize();
        for (int pgszLg2 = 0; pgszLg2 != 64; pgszLg2++)
        {
            long expected = (pgsizeBitmap & Log2.ToInt(pgszLg2)) != 0 ? 1 : 0;
            Assert.True(expected == valids[pgszLg2],
                $"{priv.Name}: {valids[pgszLg2]} entries of size 2^{pgszLg2}, expected {expected}");
        }

        // Unmap works.
        range = priv.TopRange();
        curVa = range.Va + priv.SmallestPgsz * 256;
        for (int pgszLg2 = 0; pgszLg2 != 64; pgszLg2++)
        {
            ulong len = Log2.ToInt(pgszLg2);
            if ((pgsizeBitmap & len) == 0)
                continue;
            curVa = Align(curVa, len);
            priv.DoUnmap(curVa, len);
            curVa += len;
        }
        Assert.Equal(0L, priv.CountValids());
    });

    /// <summary>
    /// "Test to convert a table pointer into an OA by mapping something small, unmapping it so as to leave
    /// behind a table pointer, then mapping something larger that will convert the table into an OA."
    /// </summary>
    [Theory]
    [MemberData(nameof(KunitSkips.Runs), nameof(TestMapTableToOa), MemberType = typeof(KunitSkips))]
    [MemberData(nameof(KunitSkips.Skipped), nameof(TestMapTableToOa), KunitSkips.NeedsPgsizeFix, MemberType = typeof(KunitSkips),
        Skip = KunitSkips.NeedsPgsizeFix)]
    public void TestMapTableToOa(string cfg) => KunitPriv.RunIommu(cfg, priv =>
    {
        KunitSkips.AssertRuns(nameof(TestMapTableToOa), priv); // amdv1 vasz=32: KunitSkips.NeedsPgsizeFix

        ulong limitedPgbitmap = priv.PgsizeBitmap % SZ_16G; // (SZ_2G on 32-bit)
        var range = priv.TopRange();

        ulong maxPgsize = 1UL << (Log2.Fls(limitedPgbitmap) - 1);
        Assert.True((priv.PgsizeBitmap & maxPgsize) != 0);

        for (int pgszLg2 = 0; pgszLg2 != 64; pgszLg2++)
        {
            ulong paddr = Log2.SetMod(priv.TestOa, 0, pgszLg2);
            ulong len = Log2.ToInt(pgszLg2);

            if ((priv.PgsizeBitmap & len) == 0)
                continue;
            if (len > maxPgsize)
                break;

            ulong curVa = Align(range.Va + priv.SmallestPgsz * 256, maxPgsize);
            for (ulong offset = 0; offset != maxPgsize; offset += len)
                priv.DoMap(curVa + offset, paddr + offset, len);
            priv.CheckIova(curVa, paddr, maxPgsize);
            Assert.Equal((long)Log2.Div(maxPgsize, pgszLg2), priv.CountValidsSingle(len));

            if (len == maxPgsize)
            {
                priv.DoUnmap(curVa, maxPgsize);
            }
            else
            {
                priv.DoUnmap(curVa, maxPgsize / 2);
                for (ulong offset = maxPgsize / 2; offset != maxPgsize; offset += len)
                    priv.DoUnmap(curVa + offset, len);
            }

            Assert.Equal(0L, priv.CountValids());
        }
    });

    /// <summary>"Test unmapping a small page at the start of a large page. This always unmaps the large page."</summary>
    [Theory]
    [MemberData(nameof(KunitSkips.Runs), nameof(TestUnmapSplit), MemberType = typeof(KunitSkips))]
    [MemberData(nameof(KunitSkips.Skipped), nameof(TestUnmapSplit), KunitSkips.NeedsTwoPageSizes, MemberType = typeof(KunitSkips),
        Skip = KunitSkips.NeedsTwoPageSizes)]
    public void TestUnmapSplit(string cfg) => KunitPriv.RunIommu(cfg, priv =>
    {
        KunitSkips.AssertRuns(nameof(TestUnmapSplit), priv);
        var topRange = priv.TopRange();
        ulong pgsizeBitmap = priv.SafePgsizeBitmap;
        int count = 0;

        for (int pgszLg2 = 0; pgszLg2 != 64; pgszLg2++)
        {
            ulong baseLen = Log2.ToInt(pgszLg2);
            if ((pgsizeBitmap & baseLen) == 0)
                continue;

            for (int nextPgszLg2 = pgszLg2 + 1; nextPgszLg2 != 64; nextPgszLg2++)
            {
                ulong nextLen = Log2.ToInt(nextPgszLg2);
                ulong vaddr = topRange.Va;
                ulong paddr = 0;

                if ((pgsizeBitmap & nextLen) == 0)
                    continue;

                priv.DoMap(vaddr, paddr, nextLen);
                Assert.Equal(nextLen, priv.Domain.IommuUnmap(vaddr, baseLen));

                // Make sure unmap doesn't keep going.
                priv.DoMap(vaddr, paddr, nextLen);
                priv.DoMap(vaddr + nextLen, paddr, nextLen);
                Assert.Equal(nextLen, priv.Domain.IommuUnmap(vaddr, baseLen));
                Assert.Equal(nextLen, priv.Domain.IommuUnmap(vaddr + nextLen, nextLen));

                count++;
            }
        }

        Assert.True(count > 0, $"{priv.Name}: no pair of page sizes was tested");
    });

    /// <summary>
    /// The maple tree of test_random_map: the inclusive intervals mapped so far, each stored as its own entry
    /// (insertion fails on an overlap), iterated in address order.
    /// </summary>
    private sealed class IntervalTree
    {
        private readonly List<(ulong Start, ulong Last)> _ranges = [];

        /// <summary>mtree_insert_range: false (-EEXIST) when [start, last] overlaps a stored interval.</summary>
        public bool InsertRange(ulong start, ulong last)
        {
            int at = 0;
            foreach (var (s, l) in _ranges)
            {
                if (s <= last && l >= start)
                    return false;
                if (s < start)
                    at++;
            }
            _ranges.Insert(at, (start, last));
            return true;
        }

        /// <summary>mas_for_each + mas_erase: removes and returns, in order, each interval overlapping [start, last].</summary>
        public IEnumerable<(ulong Start, ulong Last)> EraseOverlapping(ulong start, ulong last)
        {
            while (true)
            {
                int i = _ranges.FindIndex(r => r.Start <= last && r.Last >= start);
                if (i < 0)
                    yield break;
                var r = _ranges[i];
                _ranges.RemoveAt(i);
                yield return r;
            }
        }
    }

    private static void UnmapCollisions(KunitPriv priv, IntervalTree mt, ulong start, ulong last)
    {
        foreach (var (masStart, masLast) in mt.EraseOverlapping(start, last))
        {
            ulong len = masLast - masStart + 1;
            ulong paddr = Log2.Mod(masStart, priv.Domain.MaxOaszLg2);
            priv.CheckIova(masStart, paddr, len);
            priv.DoUnmap(masStart, len);
        }
    }

    private static PtRange ClampRange(KunitPriv priv, PtRange range)
    {
        if (range.LastVa - range.Va > SZ_1G)
            range = range with { LastVa = range.Va + SZ_1G };
        Assert.NotEqual(ulong.MaxValue, range.LastVa);
        if (range.Va <= MapleReservedRange)
            range = range with { Va = Align(MapleReservedRange, priv.SmallestPgsz) };
        return range;
    }

    /// <summary>get_random_u32_below(ceil): uniform in [0, ceil).</summary>
    private static ulong RandomU32Below(Random rng, ulong ceil) => ceil == 0 ? 0 : (ulong)rng.NextInt64((long)ceil);

    /// <summary>
    /// "Randomly map and unmap ranges that can large physical pages. If a random range overlaps with existing
    /// ranges then unmap them. This hits all the special cases." The kernel's randomness is a seeded
    /// System.Random here, drawn in the same order.
    /// </summary>
    [Theory]
    [MemberData(nameof(KunitCfgs.All), MemberType = typeof(KunitCfgs))]
    public void TestRandomMap(string cfg) => KunitPriv.RunIommu(cfg, priv =>
    {
        var rng = new Random(0x5eed_0001);
        var mt = new IntervalTree();
        int maps = 0, collisions = 0;

        // Shrink the range so randomization is more likely to have intersections.
        var topRange = ClampRange(priv, priv.TopRange());
        var upperRange = ClampRange(priv, priv.UpperRange());

        for (int iter = 0; iter != 1000; iter++)
        {
            var range = topRange;
            // ULONG_MAX >= PT_VADDR_MAX holds on a 64-bit host.
            if (priv.SignExtend && rng.Next(2) == 1)
                range = upperRange;

            ulong start = RandomU32Below(rng, Math.Min(uint.MaxValue, range.LastVa - range.Va));
            ulong end = RandomU32Below(rng, Math.Min(uint.MaxValue, range.LastVa - start));

            start = AlignDown(start, priv.SmallestPgsz);
            end = Align(end, priv.SmallestPgsz);
            start += range.Va;
            end += start;
            if (start < range.Va || end > range.LastVa + 1 || start >= end)
                continue;

            // Try overmapping to test the failure handling.
            ulong paddr = Log2.Mod(start, priv.Domain.MaxOaszLg2);
            var ret = priv.Domain.IommuMap(start, paddr, end - start, KunitPriv.ReadWrite);
            maps++;
            if (ret != Errno.None)
            {
                collisions++;
                Assert.Equal(Errno.EADDRINUSE, ret);
                UnmapCollisions(priv, mt, start, end - 1);
                priv.DoMap(start, paddr, end - start);
            }

            Assert.True(mt.InsertRange(start, end - 1), $"mtree_insert_range [0x{start:x}, 0x{end - 1:x}] overlaps");

            priv.CheckIova(start, paddr, end - start);
        }

        output.WriteLine($"{priv.Name}: {maps} maps, {collisions} failed with EADDRINUSE");
        UnmapCollisions(priv, mt, 0, ulong.MaxValue);
        Assert.Equal(0L, priv.CountValids());
    });

    /// <summary>See https://lore.kernel.org/r/b9b18a03-63a2-4065-a27e-d92dd5c860bc@amd.com</summary>
    [Theory]
    [MemberData(nameof(KunitSkips.Runs), nameof(TestPgsizeBoundary), MemberType = typeof(KunitSkips))]
    [MemberData(nameof(KunitSkips.Skipped), nameof(TestPgsizeBoundary), KunitSkips.NoRequiredRange, MemberType = typeof(KunitSkips),
        Skip = KunitSkips.NoRequiredRange)]
    public void TestPgsizeBoundary(string cfg) => KunitPriv.RunIommu(cfg, priv =>
    {
        KunitSkips.AssertRuns(nameof(TestPgsizeBoundary), priv);
        priv.DoMap(0xfef80000, 0x208b95d000, 0xfef9ffff - 0xfef80000 + 1);
    });

    /// <summary>See https://lore.kernel.org/r/20250826143816.38686-1-eugkoira@amazon.com</summary>
    [Theory]
    [MemberData(nameof(KunitSkips.Runs), nameof(TestMixed), MemberType = typeof(KunitSkips))]
    [MemberData(nameof(KunitSkips.Skipped), nameof(TestMixed), KunitSkips.RangeTooSmall, MemberType = typeof(KunitSkips),
        Skip = KunitSkips.RangeTooSmall)]
    [MemberData(nameof(KunitSkips.Skipped), nameof(TestMixed), KunitSkips.IncompatiblePsize, MemberType = typeof(KunitSkips),
        Skip = KunitSkips.IncompatiblePsize)]
    public void TestMixed(string cfg) => KunitPriv.RunIommu(cfg, priv =>
    {
        KunitSkips.AssertRuns(nameof(TestMixed), priv);
        ulong start = MixedStart;
        ulong end = 0x4c0600UL << 12;
        ulong len = end - start;
        ulong oa = start;

        priv.DoMap(start, oa, len);
        // 14 2M, 3 1G, 3 2M
        Assert.Equal(20L, priv.CountValids());
        priv.CheckIova(start, oa, len);
    });

    // test_restore_free (SPEC §5.1 item 8) is not ported: it exists only in pran005/linux, not in torvalds/linux,
    // and it rewrites common->features after init, which the engine does not expose.
}
