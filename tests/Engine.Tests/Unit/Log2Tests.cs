using Xunit;

namespace PtActors.Engine.Tests.Unit;

/// <summary>
/// SPEC §1.6 (pt_log2.h) and the kunit test_bitops expectations. The 64-bit edges follow the fvalog2_*
/// variants: C shifts by 64 are undefined and C# masks them (x &lt;&lt; 64 == x), so lg2 == 64 must be special.
/// </summary>
public class Log2Tests
{
    [Theory]
    [InlineData(0, 1UL)]
    [InlineData(12, 0x1000UL)]
    [InlineData(39, 0x80_0000_0000UL)]
    [InlineData(63, 0x8000_0000_0000_0000UL)]
    public void ToInt_IsTwoToThePower(int a, ulong expected) => Assert.Equal(expected, Log2.ToInt(a));

    [Theory]
    [InlineData(0, 0UL)]
    [InlineData(1, 1UL)]
    [InlineData(12, 0xfffUL)]
    [InlineData(63, 0x7fff_ffff_ffff_ffffUL)]
    [InlineData(64, ulong.MaxValue)]
    public void ToMaxInt_IsTwoToThePowerMinusOne(int a, ulong expected) => Assert.Equal(expected, Log2.ToMaxInt(a));

    [Theory]
    [InlineData(0x1234UL, 4, 0x123UL)]
    [InlineData(0x1234UL, 0, 0x1234UL)]
    [InlineData(ulong.MaxValue, 63, 1UL)]
    [InlineData(ulong.MaxValue, 64, 0UL)]
    [InlineData(0x8000_0000_0000_0000UL, 64, 0UL)]
    public void Div_ShiftsRightAndFullWidthGivesZero(ulong a, int b, ulong expected) => Assert.Equal(expected, Log2.Div(a, b));

    [Theory]
    [InlineData(0x1234UL, 8, 0x34UL)]
    [InlineData(0x1234UL, 0, 0UL)]
    [InlineData(0xdead_beef_0000_1fffUL, 12, 0xfffUL)]
    [InlineData(ulong.MaxValue, 63, 0x7fff_ffff_ffff_ffffUL)]
    [InlineData(ulong.MaxValue, 64, ulong.MaxValue)]
    [InlineData(0x1234UL, 64, 0x1234UL)]
    public void Mod_KeepsLowBitsAndFullWidthKeepsAll(ulong a, int b, ulong expected) => Assert.Equal(expected, Log2.Mod(a, b));

    [Theory]
    [InlineData(0x1000UL, 0x1fffUL, 12, true)]
    [InlineData(0x1000UL, 0x2000UL, 12, false)]
    [InlineData(0x1fffUL, 0x1000UL, 12, true)]
    [InlineData(0UL, ulong.MaxValue, 63, false)]
    [InlineData(0UL, 0x7fff_ffff_ffff_ffffUL, 63, true)]
    [InlineData(0UL, ulong.MaxValue, 64, true)]
    [InlineData(0x1234UL, 0x1234UL, 0, true)]
    [InlineData(0x1234UL, 0x1235UL, 0, false)]
    public void DivEq_ComparesHighBitsAndFullWidthIsAlwaysEqual(ulong a, ulong b, int c, bool expected)
        => Assert.Equal(expected, Log2.DivEq(a, b, c));

    [Theory]
    [InlineData(0x1fffUL, 12, true)]
    [InlineData(0x1ffeUL, 12, false)]
    [InlineData(0xfffUL, 12, true)]
    [InlineData(0x1234UL, 0, true)]
    [InlineData(ulong.MaxValue, 64, true)]
    [InlineData(ulong.MaxValue - 1, 64, false)]
    [InlineData(0x7fff_ffff_ffff_ffffUL, 63, true)]
    [InlineData(0x7fff_ffff_ffff_ffffUL, 64, false)]
    public void ModEqMax_TestsForAllOnesLowBits(ulong a, int b, bool expected) => Assert.Equal(expected, Log2.ModEqMax(a, b));

    [Theory]
    [InlineData(0x1234_5678UL, 0xabUL, 8, 0x1234_56abUL)]
    [InlineData(0x1234_5678UL, 0UL, 12, 0x1234_5000UL)]
    [InlineData(0x1234_5678UL, 0UL, 0, 0x1234_5678UL)]
    [InlineData(ulong.MaxValue, 0UL, 47, 0xffff_8000_0000_0000UL)]
    [InlineData(ulong.MaxValue, 0x42UL, 64, 0x42UL)]
    [InlineData(0x1234UL, 0UL, 64, 0UL)]
    public void SetMod_ReplacesLowBitsAndFullWidthGivesTheValue(ulong a, ulong val, int b, ulong expected)
        => Assert.Equal(expected, Log2.SetMod(a, val, b));

    [Theory]
    [InlineData(0x1000UL, 12, 0x1fffUL)]
    [InlineData(0UL, 39, 0x7f_ffff_ffffUL)]
    [InlineData(0UL, 63, 0x7fff_ffff_ffff_ffffUL)]
    [InlineData(0UL, 64, ulong.MaxValue)]
    [InlineData(0x1234UL, 0, 0x1234UL)]
    public void SetModMax_SetsLowBitsAndFullWidthGivesMax(ulong a, int b, ulong expected)
        => Assert.Equal(expected, Log2.SetModMax(a, b));

    [Theory]
    [InlineData(1UL, 12, 0x1000UL)]
    [InlineData(3UL, 21, 0x60_0000UL)]
    [InlineData(1UL, 63, 0x8000_0000_0000_0000UL)]
    [InlineData(5UL, 64, 0UL)]
    [InlineData(ulong.MaxValue, 64, 0UL)]
    public void Mul_ShiftsLeftAndFullWidthGivesZero(ulong a, int b, ulong expected) => Assert.Equal(expected, Log2.Mul(a, b));

    [Theory]
    [InlineData(0UL, 0)]
    [InlineData(1UL, 1)]
    [InlineData(4UL, 3)]
    [InlineData(0x1000UL, 13)]
    [InlineData(0x1fffUL, 13)]
    [InlineData(0xffff_ffffUL, 32)]
    [InlineData(0x8000_0000_0000_0000UL, 64)]
    [InlineData(ulong.MaxValue, 64)]
    public void Fls64_IsOneBasedHighestSetBit(ulong a, int expected) => Assert.Equal(expected, Log2.Fls(a));

    [Theory]
    [InlineData(0u, 0)]
    [InlineData(1u, 1)]
    [InlineData(4u, 3)]
    [InlineData(0x8000_0000u, 32)]
    [InlineData(uint.MaxValue, 32)]
    public void Fls32_IsOneBasedHighestSetBit(uint a, int expected) => Assert.Equal(expected, Log2.Fls(a));

    [Theory]
    [InlineData(1UL, 0)]
    [InlineData(4UL, 2)]
    [InlineData(0x1000UL, 12)]
    [InlineData(0x3000UL, 12)]
    [InlineData(0x8000_0000UL, 31)]
    [InlineData(0x8000_0000_0000_0000UL, 63)]
    [InlineData(ulong.MaxValue, 0)]
    public void Ffs64_IsZeroBasedLowestSetBit(ulong a, int expected) => Assert.Equal(expected, Log2.Ffs(a));

    [Theory]
    [InlineData(1u, 0)]
    [InlineData(4u, 2)]
    [InlineData(0x8000_0000u, 31)]
    public void Ffs32_IsZeroBasedLowestSetBit(uint a, int expected) => Assert.Equal(expected, Log2.Ffs(a));

    [Fact]
    public void Ffz_OfLowOnesIsTheirCount()
    {
        // kunit: ffz_t(u64, BIT_ULL(i) - 1) == i for i in 0..62 (and the u32 flavour for 0..30).
        for (int i = 0; i < 64; i++)
            Assert.Equal(i, Log2.Ffz((1UL << i) - 1));
        for (int i = 0; i < 32; i++)
            Assert.Equal(i, Log2.Ffz((1u << i) - 1));
    }

    [Theory]
    [InlineData(0UL, 0)]
    [InlineData(0xfffffffffffffffeUL, 0)]
    [InlineData(0x7fff_ffff_ffff_ffffUL, 63)]
    [InlineData(0xe07UL, 3)]
    public void Ffz64_IsZeroBasedLowestClearBit(ulong a, int expected) => Assert.Equal(expected, Log2.Ffz(a));

    [Theory]
    [InlineData(63, 0, ulong.MaxValue)]
    [InlineData(63, 63, 0x8000_0000_0000_0000UL)]
    [InlineData(0, 0, 1UL)]
    [InlineData(11, 0, 0xfffUL)]
    [InlineData(51, 12, 0x000f_ffff_ffff_f000UL)]
    [InlineData(38, 12, 0x7f_ffff_f000UL)]
    [InlineData(62, 61, 0x6000_0000_0000_0000UL)]
    [InlineData(21, 21, 0x20_0000UL)]
    public void GenMask_SetsBitsLowToHighInclusive(int h, int l, ulong expected) => Assert.Equal(expected, Log2.GenMask(h, l));

    [Fact]
    public void RandomValues_ModByFfsIsZeroAndModByFfzIsAllOnes()
    {
        // kunit test_bitops: log2_mod(v, ffs(v)) == 0 and log2_mod(v, ffz(v)) == 2^ffz(v) - 1.
        var rnd = new Random(1234);
        for (int i = 0; i < 256; i++)
        {
            ulong v = (ulong)rnd.NextInt64() ^ ((ulong)rnd.Next() << 40);
            if (v == 0)
                continue;
            Assert.Equal(0UL, Log2.Mod(v, Log2.Ffs(v)));
            int z = Log2.Ffz(v);
            Assert.Equal(Log2.ToMaxInt(z), Log2.Mod(v, z));
            uint w = (uint)v;
            if (w != 0)
                Assert.Equal(0UL, Log2.Mod(w, Log2.Ffs(w)));
        }
        // All ones: ffz is 64 and the whole value is the low run.
        Assert.Equal(64, Log2.Ffz(ulong.MaxValue));
        Assert.Equal(ulong.MaxValue, Log2.Mod(ulong.MaxValue, Log2.Ffz(ulong.MaxValue)));
        Assert.True(Log2.ModEqMax(ulong.MaxValue, Log2.Ffz(ulong.MaxValue)));
    }

    [Fact]
    public void FullWidthHelpersAgreeWithTheArithmeticTheyStandFor()
    {
        // The fvalog2 identities at lg2 == 64, checked against plain 128-bit arithmetic.
        var values = new ulong[] { 0, 1, 0x1234, 0x8000_0000_0000_0000, ulong.MaxValue };
        foreach (ulong a in values)
        {
            for (int b = 0; b <= 64; b++)
            {
                UInt128 pow = UInt128.One << b;
                Assert.Equal((ulong)(a / pow), Log2.Div(a, b));
                Assert.Equal((ulong)(a % pow), Log2.Mod(a, b));
                Assert.Equal((ulong)((UInt128)a * pow % (UInt128.One << 64)), Log2.Mul(a, b));
                Assert.Equal((ulong)(pow - 1), Log2.ToMaxInt(b));
                Assert.Equal((ulong)((a / pow * pow) | (pow - 1)), Log2.SetModMax(a, b));
                Assert.Equal((ulong)(a / pow * pow), Log2.SetMod(a, 0, b));
            }
        }
    }
}
