using PtActors.Engine.Cost;
using PtActors.Engine.Dma;
using Xunit;

namespace PtActors.Engine.Tests.Cost;

public class LatencyHistogramTests
{
    [Theory]
    [InlineData(1.0)]
    [InlineData(1.9)]
    [InlineData(2.9)]
    [InlineData(3.99)]
    [InlineData(512)]
    [InlineData(639.9)]
    [InlineData(640)]
    [InlineData(1000)]
    [InlineData(123_456_789)]
    public void ASamplesBucketBoundIsAboveItByAtMostAQuarter(double ns)
    {
        var h = new LatencyHistogram();
        h.Add(ns);
        double upper = h.Percentile(0.5);
        Assert.True(upper > ns, $"bound {upper} not above {ns}");
        Assert.True(upper <= ns * 1.25 + 1e-9, $"bound {upper} more than 25 % above {ns}");
        Assert.Equal(1, h.Count);
        Assert.Equal(ns, h.SumNs);
    }

    [Fact]
    public void PercentilesFollowTheRanks()
    {
        var h = new LatencyHistogram();
        for (int i = 0; i < 99; i++)
            h.Add(100);
        h.Add(100_000);
        Assert.InRange(h.Percentile(0.50), 100, 125);
        Assert.InRange(h.Percentile(0.99), 100, 125);
        Assert.InRange(h.Percentile(1.0), 100_000, 125_000);
        Assert.Equal(0, new LatencyHistogram().Percentile(0.5));
    }

    [Fact]
    public void BucketsListOnlyTheNonEmptyOnesInOrderAndMergingAdds()
    {
        var a = new LatencyHistogram();
        a.Add(0.5);
        a.Add(10);
        var b = new LatencyHistogram();
        b.Add(10);
        b.Add(5000);
        a.Add(b);
        var buckets = a.Buckets().ToArray();
        Assert.Equal(3, buckets.Length);
        Assert.Equal((1.0, 1L), buckets[0]);
        Assert.Equal(2, buckets[1].Count);
        Assert.True(buckets[1].UpperNs < buckets[2].UpperNs);
        Assert.Equal(4, a.Count);
        Assert.Equal(2, b.Count); // the source is unchanged
    }
}

public class UnitCostLedgerTests
{
    private static readonly CostModel Model = CostModel.Default;

    [Fact]
    public void CommandsCompleteOneAfterAnother()
    {
        var u = new UnitCostLedger(Model, 1);
        u.Command(0);
        u.Command(0);
        u.Command(0);
        Assert.Equal(3 * Model.InvalidationNs, u.LastCompletionNs);
        Assert.Equal(3 * Model.InvalidationNs, u.QueueBusyNs);
        // A command issued after the queue drained starts when issued.
        u.Command(10_000);
        Assert.Equal(10_000 + Model.InvalidationNs, u.LastCompletionNs);
        Assert.Equal(4 * Model.InvalidationNs, u.QueueBusyNs);
    }

    [Fact]
    public void AStrictUnmapWaitsForItsInvalidationAndTheOnesQueuedAhead()
    {
        var u = new UnitCostLedger(Model, 2);
        double work = Model.DmaCallNs + Model.UnmapNs(4096) + Model.IovaFreeNs;

        u.Command(0);
        u.Unmap(cpu: 0, nowNs: 0, bytes: 4096, queued: false, commands: 1);
        double first = work + Model.InvalidationSubmitNs + Model.InvalidationNs;
        Assert.Equal(first, u.CpuNs[0]);

        // A second CPU's strict unmap at the same time queues behind the first command.
        u.Command(0);
        u.Unmap(cpu: 1, nowNs: 0, bytes: 4096, queued: false, commands: 1);
        Assert.Equal(work + Model.InvalidationSubmitNs + 2 * Model.InvalidationNs, u.CpuNs[1]);
        Assert.True(u.UnmapLatency.Percentile(1.0) >= 2 * Model.InvalidationNs);
    }

    [Fact]
    public void ALazyUnmapWaitsForNothingAndItsTimerFlushIsCharged()
    {
        var u = new UnitCostLedger(Model, 1);
        u.Unmap(cpu: 0, nowNs: 0, bytes: 8192, queued: true, commands: 0);
        Assert.Equal(Model.DmaCallNs + Model.UnmapNs(8192) + Model.IovaFreeNs + Model.FlushQueueNs, u.CpuNs[0]);
        Assert.Equal(0, u.TimerCpuNs);
        u.TimerFlushed(3);
        Assert.Equal(3 * (Model.InvalidationSubmitNs + Model.InvalidationNs), u.TimerCpuNs);
    }

    [Fact]
    public void TheStaleWindowRunsFromTheUnmapToTheCoveringCompletion()
    {
        var u = new UnitCostLedger(Model, 1);
        u.Command(500);
        u.Covered(100);
        Assert.Equal(1, u.StaleWindow.Count);
        Assert.Equal(500 + Model.InvalidationNs - 100, u.StaleWindow.SumNs);
    }

    [Fact]
    public void TranslationSlotsBoundTheWalksInFlight()
    {
        var model = Model with { TranslationsInFlight = 2 };
        var u = new UnitCostLedger(model, 1);
        double walk = model.IotlbHitNs + 4 * model.WalkReadNs;
        // Three 4-read walks at once: two run together, the third waits for a slot.
        u.Translate(0, 4);
        u.Translate(0, 4);
        u.Translate(0, 4);
        Assert.Equal(2 * walk, u.LastTranslationNs);
        Assert.Equal(3, u.Translations);
        Assert.Equal(walk - model.IotlbHitNs + walk - model.IotlbHitNs + 2 * walk - model.IotlbHitNs, u.StallNs, 6);
        // A hit long after costs its own latency and no stall.
        u.Translate(1_000_000, 0);
        Assert.Equal(1_000_000 + model.IotlbHitNs, u.LastTranslationNs);
        Assert.Equal(3 * walk + walk - 3 * model.IotlbHitNs, u.StallNs, 6);
    }

    [Fact]
    public void ASnapshotDoesNotMoveWithTheLedger()
    {
        var u = new UnitCostLedger(Model, 1);
        u.Unmap(0, 0, 4096, false, 0);
        var s = u.Snapshot();
        u.Unmap(0, 0, 4096, false, 0);
        Assert.Equal(1, s.UnmapLatency.Count);
        Assert.Equal(s.CpuNs[0] * 2, u.CpuNs[0]);
    }
}

public class HostCostLedgerTests
{
    [Fact]
    public void TheFirstAllocationsMissAndFreedIovasAreServedFromTheCpusCache()
    {
        var m = CostModel.Default;
        var h = new HostCostLedger(m, 2);
        h.Mapped(0, DmaOpKind.DmaMap, 4096, ok: true);
        Assert.Equal(1, h.IovaCacheMisses);
        Assert.Equal(m.MapNs(4096) + m.DmaCallNs + m.IovaCacheMissNs, h.CpuNs[0]);

        h.Freed(0, 4096);
        h.Mapped(0, DmaOpKind.DmaMap, 4096, ok: true);
        Assert.Equal(1, h.IovaCacheMisses); // served by CPU 0's magazine
        h.Mapped(1, DmaOpKind.DmaMap, 4096, ok: true);
        Assert.Equal(2, h.IovaCacheMisses); // CPU 1's magazines are its own
        Assert.Equal(3, h.IovaAllocs);
        Assert.Equal(0, h.BytesByCpu[1]); // mapping moves nothing: the devices' DMAs do
        h.Moved(3, 1500, 1); // CPU 3 of 2 is CPU 1
        Assert.Equal(1500, h.BytesByCpu[1]);
        Assert.Equal(1, h.Transfers);
    }

    [Fact]
    public void FullMagazinesGoToTheDepotWhereAnyCpuFindsThem()
    {
        var m = CostModel.Default with { IovaMagazineSize = 2 };
        var h = new HostCostLedger(m, 2);
        // CPU 0 frees 5: two magazines of 2 fill, the fifth pushes one to the depot.
        for (int i = 0; i < 5; i++)
            h.Freed(0, 4096);
        h.Mapped(1, DmaOpKind.DmaMap, 4096, ok: true);
        Assert.Equal(0, h.IovaCacheMisses);
        h.Mapped(1, DmaOpKind.DmaMap, 4096, ok: true);
        Assert.Equal(0, h.IovaCacheMisses);
        h.Mapped(1, DmaOpKind.DmaMap, 4096, ok: true);
        Assert.Equal(1, h.IovaCacheMisses); // the depot's one magazine is spent
    }

    [Fact]
    public void LargeAllocationsAreNotCachedAndIommuMapsTakeNoIova()
    {
        var m = CostModel.Default;
        var h = new HostCostLedger(m, 1);
        h.Freed(0, 1 << 20);
        h.Mapped(0, DmaOpKind.DmaMap, 1 << 20, ok: true);
        Assert.Equal(1, h.IovaCacheMisses);
        h.Mapped(0, DmaOpKind.Map, 4096, ok: false);
        Assert.Equal(1, h.IovaAllocs);
    }
}

public class CostFiguresTests
{
    [Fact]
    public void AnIdleModelMovesEverythingOffered()
    {
        var m = CostModel.Default;
        var h = new HostCostLedger(m, 1);
        var u = new UnitCostLedger(m, 1);
        h.Mapped(0, DmaOpKind.DmaMap, 4096, ok: true);
        h.Moved(0, 4096, 1);
        u.Unmap(0, 0, 4096, queued: true, commands: 0);
        var f = CostFigures.Compute(1, [(0, h)], [(0, u)], offeredNs: 1e9);
        Assert.Equal(1.0, f.ThroughputRatio);
        Assert.Equal(4096 * 8 / 1e9, f.DeviceGbps, 12);
        Assert.Equal(1.0, f.DeviceIops, 9);
        Assert.InRange(f.CpuUtilization, 1e-7, 1e-5);
        Assert.Equal(0, f.InvQueueUtilization);
    }

    [Fact]
    public void ASaturatedCpuSlowsItsDevicesByItsOverload()
    {
        var m = CostModel.Default;
        var h = new HostCostLedger(m, 2);
        var u = new UnitCostLedger(m, 2);
        // CPU 0 does 10 µs of lazy unmaps in a 1 µs run; CPU 1 almost nothing; no invalidation waited for.
        for (int i = 0; i < 40; i++)
            u.Unmap(0, 0, 4096, queued: true, commands: 0);
        h.Mapped(0, DmaOpKind.Map, 4096, ok: true);
        h.Moved(0, 4096, 1);
        h.Mapped(1, DmaOpKind.Map, 4096, ok: true);
        h.Moved(1, 4096, 1);
        double demand0 = u.CpuNs[0] + h.CpuNs[0];
        Assert.True(demand0 > 1000);
        var f = CostFigures.Compute(2, [(0, h)], [(0, u)], offeredNs: 1000);
        // Half the bytes at full speed, half slowed by CPU 0's demand ÷ the run's time.
        Assert.Equal((1 + 1000 / demand0) / 2, f.ThroughputRatio, 9);
        Assert.Equal((1 + h.CpuNs[1] / 1000) / 2, f.CpuUtilization, 9);
        Assert.Equal(0, f.InvQueueUtilization);
    }

    [Fact]
    public void AnInvalidationQueueThatCannotKeepUpPacesItsLanesDevices()
    {
        var m = CostModel.Default;
        var h = new HostCostLedger(m, 4);
        var u = new UnitCostLedger(m, 4);
        // 4 CPUs issue 10 strict unmaps each at once: 40 µs of commands in a 20 µs run.
        for (int i = 0; i < 10; i++)
        {
            for (int cpu = 0; cpu < 4; cpu++)
            {
                u.Command(0);
                u.Unmap(cpu, 0, 4096, queued: false, commands: 1);
            }
        }
        for (int cpu = 0; cpu < 4; cpu++)
        {
            h.Mapped(cpu, DmaOpKind.Map, 4096, ok: true);
            h.Moved(cpu, 4096, 1);
        }
        var f = CostFigures.Compute(4, [(0, h)], [(0, u)], offeredNs: 20_000);
        Assert.Equal(1.0, f.InvQueueUtilization);
        // The queue needed 40 µs for 20 µs of offered work: at most half the bytes moved.
        Assert.True(f.ThroughputRatio <= 0.5 + 1e-9, $"ratio {f.ThroughputRatio}");
        // A CPU waits for at most one command of each other CPU ahead of its own (a closed system), not the whole backlog.
        double work = m.DmaCallNs + m.UnmapNs(4096) + m.IovaFreeNs + m.InvalidationSubmitNs;
        Assert.InRange(f.OpLatencyP99Us * 1000, work + m.InvalidationNs, (work + 4 * m.InvalidationNs) * 1.25);
    }

    [Fact]
    public void TranslationsFinishingLateStretchTheirLane()
    {
        var m = CostModel.Default with { TranslationsInFlight = 1 };
        var h = new HostCostLedger(m, 1);
        var u = new UnitCostLedger(m, 1);
        h.Mapped(0, DmaOpKind.Map, 4096, ok: true);
        h.Moved(0, 4096, 1);
        for (int i = 0; i < 100; i++)
            u.Translate(0, 4);
        double last = u.LastTranslationNs;
        var f = CostFigures.Compute(1, [(0, h)], [(0, u)], offeredNs: 1000);
        Assert.Equal(1000 / last, f.ThroughputRatio, 9);
        Assert.True(f.TranslationStallUs > 0);
    }
}
