using PtActors.Cli.Script;
using Xunit;

namespace PtActors.Cli.Tests;

/// <summary>The union of the dirty intervals: sorted, touching or overlapping merged, inclusive ends, clamped.</summary>
public class DirtyRunsTests
{
    private static List<(ulong, ulong)> Runs(params (ulong Iova, ulong Length)[] sets)
    {
        var runs = new DirtyRuns();
        foreach (var (iova, length) in sets)
            runs.Set(iova, length);
        return runs.Merge();
    }

    [Fact]
    public void NoIntervalsNoRuns() => Assert.Empty(Runs());

    [Fact]
    public void SortsAndKeepsGaps()
        => Assert.Equal([(0x1000UL, 0x1fffUL), (0x3000UL, 0x3fffUL)], Runs((0x3000, 0x1000), (0x1000, 0x1000)));

    [Fact]
    public void MergesTouchingIntervals()
        => Assert.Equal([(0x0UL, 0x2fffUL)], Runs((0x2000, 0x1000), (0x0, 0x1000), (0x1000, 0x1000)));

    [Fact]
    public void MergesOverlappingAndContainedIntervals()
        => Assert.Equal([(0x0UL, 0x1fffffUL)], Runs((0x0, 0x200000), (0x1000, 0x1000), (0x1ff000, 0x1000)));

    [Fact]
    public void ClampsAtTheTopOfTheAddressSpace()
        => Assert.Equal([(0xfffffffffff00000UL, ulong.MaxValue)], Runs((0xfffffffffff00000, 0x200000)));

    [Fact]
    public void ARunEndingAtTheTopAbsorbsLaterIntervals()
        => Assert.Equal([(0xffffffffffe00000UL, ulong.MaxValue)],
            Runs((0xffffffffffe00000, 0x200000), (0xfffffffffffff000, 0x1000)));

    [Fact]
    public void ZeroLengthIsIgnored() => Assert.Empty(Runs((0x1000, 0)));

    [Fact]
    public void ClearForgetsEverything()
    {
        var runs = new DirtyRuns();
        runs.Set(0, 0x1000);
        runs.Clear();
        Assert.Empty(runs.Merge());
    }
}
