using Xunit;

namespace PtActors.Engine.Tests.Unit;

/// <summary>
/// SPEC §1.8 pt_compute_best_pgsize against the kunit reference semantics (ref_best_pgsize): the largest p
/// in [63..1] with bit p in the bitmap, va and oa aligned to 2^p, va + 2^p - 1 &lt;= last, no wrap; 0 = none.
/// </summary>
public class BestPgsizeTests
{
    private static int Reference(ulong bitmap, ulong va, ulong last, ulong oa)
    {
        for (int p = 63; p >= 1; p--)
        {
            if ((bitmap & (1UL << p)) == 0)
                continue;
            ulong mask = (1UL << p) - 1;
            if ((va & mask) != 0 || (oa & mask) != 0)
                continue;
            ulong end = va + mask;
            if (end < va || end > last)
                continue;
            return p;
        }
        return 0;
    }

    [Theory]
    [InlineData(0x40201000UL, 0UL, 0x1fffffUL, 0UL, 21)]
    [InlineData(0x40201000UL, 0x1000UL, 0x200fffUL, 0x1000UL, 12)]
    [InlineData(0x40201000UL, 0UL, 0x1ffffeUL, 0UL, 12)]
    [InlineData(0x40201000UL, 0UL, 0x7fffffffUL, 0x200000UL, 21)]
    [InlineData(0x40201000UL, 0UL, 0xffffffffUL, 0UL, 30)]
    [InlineData(0xfff7ffffff000UL, 0x10000UL, 0x1ffffUL, 0x80000UL, 16)]
    [InlineData(0UL, 0UL, 0xffffffffUL, 0UL, 0)]
    [InlineData(0x1000UL, 0x1000UL, 0x1000UL, 0UL, 0)]
    [InlineData(0x1000UL, 0x2000UL, 0x1000UL, 0UL, 0)]
    [InlineData(0x8000_0000_0000_1000UL, 0UL, ulong.MaxValue, 0UL, 63)]
    public void WorkedCases(ulong bitmap, ulong va, ulong last, ulong oa, int expected)
    {
        Assert.Equal(expected, BestPgsize.Compute(bitmap, va, last, oa));
        Assert.Equal(expected, Reference(bitmap, va, last, oa));
    }

    [Fact]
    public void MatchesReference_RandomShiftsZeroAndOnesPrefixes()
    {
        var rnd = new Random(42);
        ulong R() => (ulong)rnd.NextInt64() ^ ((ulong)rnd.Next() << 33);
        for (int a = 1; a < 10; a++)
        for (int b = 1; b < 10; b++)
        for (int c = 1; c < 10; c++)
        {
            ulong bitmap = R();
            ulong va = R() << a, oa = R() << b, last = R() | ((1UL << c) - 1);
            if (va > last)
                (va, last) = (last, va);
            Assert.Equal(Reference(bitmap, va, last, oa), BestPgsize.Compute(bitmap, va, last, oa));
            // Ones prefix.
            va = ulong.MaxValue << a;
            oa = ulong.MaxValue << b;
            Assert.Equal(Reference(bitmap, va, ulong.MaxValue, oa), BestPgsize.Compute(bitmap, va, ulong.MaxValue, oa));
            // Bitmap 0 never yields a size.
            Assert.Equal(0, BestPgsize.Compute(0, va, ulong.MaxValue, oa));
        }
        for (int c = 1; c < 63; c++)
        {
            ulong bitmap = R();
            Assert.Equal(Reference(bitmap, 0, (1UL << c) - 1, 0), BestPgsize.Compute(bitmap, 0, (1UL << c) - 1, 0));
        }
        for (int a = 32; a < 42; a++)
        for (int b = 32; b < 42; b++)
        for (int c = 32; c < 42; c++)
        {
            ulong bitmap = R();
            ulong va = R() << a, oa = R() << b, last = R() | ((1UL << c) - 1);
            if (va > last)
                (va, last) = (last, va);
            Assert.Equal(Reference(bitmap, va, last, oa), BestPgsize.Compute(bitmap, va, last, oa));
        }
    }
}
