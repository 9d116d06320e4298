using Xunit;

namespace PtActors.Actors.Tests;

public class RunFiguresTests
{
    [Fact]
    public void APercentileIsTheUpperBoundOfTheBucketHoldingIt()
    {
        var histogram = new long[DeviceHost.LockWaitBuckets];
        Assert.Equal(0, RunFigures.Percentile(histogram, 0.5));    // nothing waited
        histogram[0] = 50;                                          // below 1 µs
        histogram[3] = 49;                                          // [4, 8) µs
        histogram[10] = 1;                                          // [512, 1024) µs
        Assert.Equal(0, RunFigures.Percentile(histogram, 0.50));
        Assert.Equal(8, RunFigures.Percentile(histogram, 0.51));
        Assert.Equal(8, RunFigures.Percentile(histogram, 0.99));
        Assert.Equal(1024, RunFigures.Percentile(histogram, 1.0));
    }

    [Fact]
    public void TablePagesMaxSumsTheLanesAtEachWindowEndAndAFinishedLaneKeepsItsLast()
    {
        long[] a = [10, 30, 5], b = [20, 1];
        // Window 1: 30, window 2: 31, window 3: 5 + 1 (b finished holding 1).
        Assert.Equal(31, RunFigures.TablePagesMax([a, b], finalPages: 6));
        Assert.Equal(40, RunFigures.TablePagesMax([a, b], finalPages: 40));
        Assert.Equal(0, RunFigures.TablePagesMax([], 0));
    }
}
