using PtActors.Engine.Hardware;
using PtActors.Persistence;
using Xunit;

namespace PtActors.Actors.Tests;

public class RunTimelineTests
{
    private static RunTimeline.Sample S(long w, long inv, long hits, long misses, long dmas) => new(w, (ulong)(w + 1) * 100_000, inv, hits, misses, dmas);

    [Fact]
    public void PointsAreTheDifferencesOfTheCumulativeCountersAndTheEndDrainGoesLast()
    {
        var unitA = new RunTimeline.Sample[] { S(0, 1, 10, 5, 15), S(1, 3, 30, 5, 35), S(2, 3, 31, 9, 40) };
        var unitB = new RunTimeline.Sample[] { S(1, 2, 0, 2, 2), S(0, 1, 0, 1, 1) }; // any order
        var t = RunTimeline.Build([(unitA, S(long.MaxValue, 5, 31, 9, 40)), (unitB, S(long.MaxValue, 2, 0, 2, 2))]);
        Assert.Equal(
            [new TimelinePoint(100, 2, 10, 6, 16), new TimelinePoint(200, 3, 20, 1, 21), new TimelinePoint(300, 2, 1, 4, 5)],
            t.Points.ToArray());
    }

    [Fact]
    public void AWindowReportedTwiceKeepsItsLastSample()
    {
        var t = RunTimeline.Build([([S(0, 1, 1, 1, 2), S(0, 2, 1, 1, 2), S(1, 3, 2, 1, 3)], S(long.MaxValue, 3, 2, 1, 3))]);
        Assert.Equal([new TimelinePoint(100, 2, 1, 1, 2), new TimelinePoint(200, 1, 1, 0, 1)], t.Points.ToArray());
    }

    [Fact]
    public void LongRunsAreMergedIntoAtMostTheMaximumOfPointsAndKeepTheirTotals()
    {
        var samples = new List<RunTimeline.Sample>();
        for (int w = 0; w < 1001; w++)
            samples.Add(S(w, w + 1, 2L * (w + 1), w + 1, 3L * (w + 1)));
        var t = RunTimeline.Build([(samples, S(long.MaxValue, 1001, 2002, 1001, 3003))]);
        Assert.InRange(t.Points.Length, 2, RunTimeline.MaxPoints);
        long inv = 0, hits = 0;
        double previous = 0;
        foreach (var p in t.Points)
        {
            inv += p.Invalidations;
            hits += p.IotlbHits;
            Assert.True(p.TUs > previous);
            previous = p.TUs;
        }
        Assert.Equal(1001, inv);
        Assert.Equal(2002, hits);
        Assert.Equal(100_100, t.Points[^1].TUs);
    }

    [Fact]
    public async Task ARunsTimelineSumsToItsFigures()
    {
        var settings = new SimulationSettings
        {
            Iommus = 2, Domains = 4, Devices = 16, Workload = "mixed", Policy = new FlushPolicySpec(FlushPolicyKind.Lazy),
            Ops = 4000, Seed = 42, RunId = "tl",
        };
        var r = await new Simulator().RunAsync(settings, PersistenceBackend.InMemory, null, CancellationToken.None);
        Assert.NotNull(r.Timeline);
        long inv = 0, hits = 0, misses = 0;
        foreach (var p in r.Timeline.Points)
        {
            inv += p.Invalidations;
            hits += p.IotlbHits;
            misses += p.IotlbMisses;
        }
        Assert.True(r.Timeline.Points.Length > 1);
        Assert.Equal(r.Invalidations, inv);
        Assert.Equal(r.IotlbHitRate, (double)hits / (hits + misses), 12);
        Assert.True(r.Timeline.Points[^1].TUs <= r.SimS * 1e6 + 1e-6);
    }
}
