using CsCheck;
using PtActors.Cli.Script;
using Xunit;

namespace PtActors.Cli.Tests;

/// <summary>The number syntax: decimal or 0x hex, optional K/M/G/T/P suffix, unsigned 64-bit.</summary>
public class ScriptNumberTests
{
    [Theory]
    [InlineData("0", 0UL)]
    [InlineData("4096", 0x1000UL)]
    [InlineData("0x0", 0UL)]
    [InlineData("0X1f", 0x1fUL)]
    [InlineData("0xABCdef", 0xabcdefUL)]
    [InlineData("4K", 0x1000UL)]
    [InlineData("4k", 0x1000UL)]
    [InlineData("0x10K", 0x4000UL)]
    [InlineData("2M", 0x200000UL)]
    [InlineData("2m", 0x200000UL)]
    [InlineData("1G", 0x40000000UL)]
    [InlineData("1g", 0x40000000UL)]
    [InlineData("1T", 0x10000000000UL)]
    [InlineData("1t", 0x10000000000UL)]
    [InlineData("1P", 0x4000000000000UL)]
    [InlineData("1p", 0x4000000000000UL)]
    [InlineData("0K", 0UL)]
    [InlineData("007", 7UL)]
    [InlineData("18446744073709551615", ulong.MaxValue)]
    [InlineData("0xffffffffffffffff", ulong.MaxValue)]
    [InlineData("0x00000000000000000000ffffffffffffffff", ulong.MaxValue)]
    [InlineData("16383P", 0xfffc000000000000UL)]
    [InlineData("0x3fffffffffffffK", 0xfffffffffffffc00UL)]
    [InlineData("17179869183G", 0xffffffffc0000000UL)]
    public void Parses(string token, ulong expected) => Assert.Equal(expected, ScriptNumber.Parse(token));

    [Theory]
    [InlineData("")]
    [InlineData("0x")]
    [InlineData("0X")]
    [InlineData("x10")]
    [InlineData("K")]
    [InlineData("0xK")]
    [InlineData("4KB")]
    [InlineData("4KK")]
    [InlineData("4Q")]
    [InlineData("-1")]
    [InlineData("+1")]
    [InlineData("1.0")]
    [InlineData("1_000")]
    [InlineData("0x1g0")]
    [InlineData("0b1")]
    [InlineData("1e3")]
    [InlineData(" 1")]
    [InlineData("١")] // a non-ASCII digit
    public void RejectsBadNumbers(string token)
    {
        var e = Assert.Throws<ScriptSyntaxException>(() => ScriptNumber.Parse(token));
        Assert.Equal($"bad number '{token}'", e.Message);
    }

    [Theory]
    [InlineData("18446744073709551616")]
    [InlineData("99999999999999999999")]
    [InlineData("0x10000000000000000")]
    [InlineData("16384P")]
    [InlineData("0x40000000000000K")]
    [InlineData("17179869184G")]
    [InlineData("0xffffffffffffffffK")]
    public void RejectsValuesAbove64Bits(string token)
    {
        var e = Assert.Throws<ScriptSyntaxException>(() => ScriptNumber.Parse(token));
        Assert.Equal($"number '{token}' is above 2^64-1", e.Message);
    }

    [Fact]
    public void DecimalAndHexRoundTripEveryValue()
    {
        Gen.ULong.Sample(v =>
        {
            Assert.Equal(v, ScriptNumber.Parse(v.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Assert.Equal(v, ScriptNumber.Parse("0x" + v.ToString("x", System.Globalization.CultureInfo.InvariantCulture)));
            Assert.Equal(v, ScriptNumber.Parse("0X" + v.ToString("X", System.Globalization.CultureInfo.InvariantCulture)));
        });
    }

    [Fact]
    public void SuffixMultipliesOrOverflows()
    {
        (char Suffix, int Shift)[] suffixes = [('K', 10), ('M', 20), ('G', 30), ('T', 40), ('P', 50)];
        Gen.Select(Gen.ULong, Gen.Int[0, suffixes.Length - 1], Gen.Bool).Sample((v, i, lower) =>
        {
            var (suffix, shift) = suffixes[i];
            string token = v.ToString(System.Globalization.CultureInfo.InvariantCulture)
                + (lower ? char.ToLowerInvariant(suffix) : suffix);
            if (v > ulong.MaxValue >> shift)
                Assert.Throws<ScriptSyntaxException>(() => ScriptNumber.Parse(token));
            else
                Assert.Equal(v << shift, ScriptNumber.Parse(token));
        });
    }
}
