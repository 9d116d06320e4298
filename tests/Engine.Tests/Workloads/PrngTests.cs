using PtActors.Engine.Workloads;
using Xunit;

namespace PtActors.Engine.Tests.Workloads;

public class PrngTests
{
    [Fact]
    public void SplitMix64MatchesTheReference()
    {
        // Vigna's splitmix64.c from seed 1234567 (the values Java's SplittableRandom documents too).
        var sm = new SplitMix64(1234567);
        ulong[] expected = [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431, 16408922859458223821];
        foreach (ulong e in expected)
            Assert.Equal(e, sm.Next());
    }

    [Fact]
    public void Xoshiro256StarStarFirstOutputsArePinned()
    {
        // Computed with an independent implementation of xoshiro256** 1.0 seeded by four SplitMix64 outputs.
        var a = new Xoshiro256StarStar(0);
        Assert.Equal(0x99ec5f36cb75f2b4UL, a.Next());
        Assert.Equal(0xbf6e1f784956452aUL, a.Next());
        Assert.Equal(0x1a5f849d4933e6e0UL, a.Next());
        Assert.Equal(0x6aa594f1262d2d2cUL, a.Next());

        var b = new Xoshiro256StarStar(42);
        Assert.Equal(0x15780b2e0c2ec716UL, b.Next());
        Assert.Equal(0x6104d9866d113a7eUL, b.Next());
        Assert.Equal(0xae17533239e499a1UL, b.Next());
        Assert.Equal(0xecb8ad4703b360a1UL, b.Next());

        var s = Xoshiro256StarStar.ForStream(42, 7);
        Assert.Equal(0x24bfb39aeb008c15UL, s.Next());
        Assert.Equal(0xd858489e7fc02496UL, s.Next());
        Assert.Equal(0x3deebe24036964f3UL, s.Next());
    }

    [Fact]
    public void BoundedDrawsAndThresholds()
    {
        var r = new Xoshiro256StarStar(7);
        var seen = new bool[10];
        for (int i = 0; i < 1000; i++)
        {
            ulong v = r.NextBelow(10);
            Assert.InRange(v, 0UL, 9UL);
            seen[v] = true;
        }
        Assert.All(seen, Assert.True);
        Assert.Equal(0UL, r.NextBelow(0));

        Assert.Equal(0UL, Xoshiro256StarStar.Threshold(0));
        Assert.Equal(0UL, Xoshiro256StarStar.Threshold(double.NaN));
        Assert.Equal(ulong.MaxValue, Xoshiro256StarStar.Threshold(1));
        Assert.Equal(1UL << 63, Xoshiro256StarStar.Threshold(0.5));
        Assert.False(r.Chance(0));
        Assert.True(r.Chance(ulong.MaxValue));

        int hits = 0;
        ulong t = Xoshiro256StarStar.Threshold(0.25);
        for (int i = 0; i < 100_000; i++)
            hits += r.Chance(t) ? 1 : 0;
        Assert.InRange(hits, 24_000, 26_000);
    }

    [Fact]
    public void StreamsAreIndependent()
    {
        var a = Xoshiro256StarStar.ForStream(1, 0);
        var b = Xoshiro256StarStar.ForStream(1, 1);
        var c = Xoshiro256StarStar.ForStream(2, 0);
        ulong x = a.Next(), y = b.Next(), z = c.Next();
        Assert.NotEqual(x, y);
        Assert.NotEqual(x, z);
        Assert.NotEqual(y, z);
    }
}
