using PtActors.Engine;
using PtActors.Engine.Hardware;
using PtActors.Persistence;
using Xunit;

namespace PtActors.Actors.Tests;

public class SimulatorTests
{
    private static SimulationSettings Small(string workload = "mixed", FlushPolicySpec? policy = null, string run = "t") => new()
    {
        Iommus = 2,
        Domains = 4,
        Devices = 16,
        Workload = workload,
        Policy = policy ?? new FlushPolicySpec(FlushPolicyKind.Lazy),
        Ops = 4000,
        Seed = 42,
        RunId = run,
    };

    private static SimulationResult WithoutWallClock(SimulationResult r) => r with { OpsPerSec = 0, WallS = 0 };

    [Fact]
    public async Task TheSameSeedGivesTheSameFigures()
    {
        var runner = new Simulator();
        var a = await runner.RunAsync(Small(), PersistenceBackend.InMemory, null, CancellationToken.None);
        var b = await runner.RunAsync(Small(), PersistenceBackend.InMemory, null, CancellationToken.None);
        Assert.Equal(4000, a.Ops);                // exactly the operations asked for
        Assert.True(a.Dmas > 0);
        Assert.True(a.Maps > 0 && a.Unmaps > 0);
        Assert.Equal(a.Ops, a.Maps + a.Unmaps);
        Assert.Equal(WithoutWallClock(a), WithoutWallClock(b));
        Assert.Equal(0, a.StaleViolations);
        Assert.Equal(0, a.UseAfterFree);
        Assert.Equal(0, a.IsolationBreaches);
    }

    [Fact]
    public async Task TwoRunsInOneSqliteFileGiveTheSameFigures()
    {
        string dir = Path.Combine(Path.GetTempPath(), "ptactors-sim-" + Guid.NewGuid().ToString("N"));
        string db = Path.Combine(dir, "runs.db");
        try
        {
            var runner = new Simulator();
            var a = await runner.RunAsync(Small(run: "run-a"), PersistenceBackend.Sqlite(db), null, CancellationToken.None);
            var b = await runner.RunAsync(Small(run: "run-b"), PersistenceBackend.Sqlite(db), null, CancellationToken.None);
            Assert.Equal(WithoutWallClock(a) with { RunId = "" }, WithoutWallClock(b) with { RunId = "" });
            Assert.True(a.EventsPersisted > 0);
            Assert.True(a.OpsPersisted >= a.Ops);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task StrictCostsMoreThanLazyInTheCostModel()
    {
        var runner = new Simulator();
        // Drives at a tenth of the default rate: strict's invalidation queue keeps up (at the default rate it is
        // saturated and, the costs not feeding back, its backlog — and the stale windows behind it — grows with the run).
        var strict = await runner.RunAsync(Small("nvme", new FlushPolicySpec(FlushPolicyKind.Strict)) with { NvmeIops = 20_000 }, PersistenceBackend.InMemory, null, CancellationToken.None);
        var lazy = await runner.RunAsync(Small("nvme") with { NvmeIops = 20_000 }, PersistenceBackend.InMemory, null, CancellationToken.None);
        Assert.NotNull(strict.Cost);
        Assert.NotNull(lazy.Cost);
        // A strict unmap waits for its own invalidation: its p99 call latency is at least one command's time.
        Assert.True(strict.Cost.OpLatencyP99Us >= PtActors.Engine.Cost.CostModel.Default.InvalidationNs / 1000, $"strict p99 {strict.Cost.OpLatencyP99Us}");
        Assert.True(strict.Cost.OpLatencyP99Us > lazy.Cost.OpLatencyP99Us);
        Assert.True(strict.Cost.CpuUtilization >= lazy.Cost.CpuUtilization);
        Assert.True(strict.Cost.InvQueueUtilization > lazy.Cost.InvQueueUtilization);
        Assert.True(strict.Cost.ThroughputRatio <= lazy.Cost.ThroughputRatio);
        Assert.InRange(strict.Cost.ThroughputRatio, 0, 1);
        Assert.InRange(lazy.Cost.CpuUtilization, 0, 1);
        // Every unmap that removed something has a stale window; strict's close within a few commands.
        Assert.True(strict.Cost.StaleWindow.Count > 0);
        Assert.True(strict.Cost.StaleWindow.Percentile(0.5) < lazy.Cost.StaleWindow.Percentile(0.5), $"strict {strict.Cost.StaleWindow.Percentile(0.5)} {strict.Cost.StaleWindow.Count} lazy {lazy.Cost.StaleWindow.Percentile(0.5)} {lazy.Cost.StaleWindow.Count}");
    }

    [Theory]
    [InlineData("nvme")]
    [InlineData("random")]
    public async Task PassthroughAnswersTheDmaApiWithoutAnIommu(string workload)
    {
        var runner = new Simulator();
        var strict = await runner.RunAsync(Small(workload, new FlushPolicySpec(FlushPolicyKind.Strict)), PersistenceBackend.InMemory, null, CancellationToken.None);
        var pt = await runner.RunAsync(Small(workload, new FlushPolicySpec(FlushPolicyKind.Passthrough)), PersistenceBackend.InMemory, null, CancellationToken.None);
        Assert.Equal(4000, pt.Ops);
        Assert.True(pt.Dmas > 0);
        Assert.Equal(0, pt.Invalidations);
        Assert.True(double.IsNaN(pt.IotlbHitRate)); // no IOTLB: no hit rate, not a rate of 0
        Assert.Equal(0, pt.Faults + pt.StaleInWindow + pt.StaleViolations + pt.UseAfterFree);
        Assert.Equal(0, pt.EventsPersisted);
        Assert.Equal(0, pt.LockWaits);
        Assert.Equal(0, pt.Cost!.InvQueueUtilization);
        Assert.Equal(0, pt.Cost.TranslationStallUs);
        Assert.True(pt.Cost.ThroughputRatio >= strict.Cost!.ThroughputRatio);
        Assert.True(pt.Cost.CpuUtilization < strict.Cost.CpuUtilization);
        if (workload == "random")
            Assert.True(pt.Errors > 0); // explicit-IOVA maps and dirty reads have no IOMMU to go to
        else
            Assert.Equal(0, pt.Errors);
        var again = await runner.RunAsync(Small(workload, new FlushPolicySpec(FlushPolicyKind.Passthrough)), PersistenceBackend.InMemory, null, CancellationToken.None);
        Assert.Equal(pt with { OpsPerSec = 0, WallS = 0 }, again with { OpsPerSec = 0, WallS = 0 });
    }

    [Fact]
    public async Task APagePoolOfHugePagesKeepsTheIotlbHittingWhereFourKibPagesMiss()
    {
        var runner = new Simulator();
        var settings = Small("nic") with { Iommus = 1, Domains = 4, Devices = 16, IotlbEntries = 256, NicPagePool = true, Ops = 20_000 };
        var small = await runner.RunAsync(settings, PersistenceBackend.InMemory, null, CancellationToken.None);
        var huge = await runner.RunAsync(settings with { BufferPageBytes = 2UL << 20 }, PersistenceBackend.InMemory, null, CancellationToken.None);
        var perPacket = await runner.RunAsync(settings with { NicPagePool = false }, PersistenceBackend.InMemory, null, CancellationToken.None);
        Assert.Equal(0, small.Errors + small.Faults + huge.Errors + huge.Faults);
        // RX buffers are recycled through the whole ring: 4 KiB pages overflow a 256-entry IOTLB, 2 MiB pages do not.
        // (Descriptor reads and completion writes, two DMAs of three, hit with either, and TX maps per packet and misses
        // with either: the difference is in the RX data, and 4 KiB pages miss more than twice as often.)
        Assert.True(huge.IotlbHitRate > 0.8, $"2M hit rate {huge.IotlbHitRate}"); // TX still maps per packet
        Assert.True(1 - small.IotlbHitRate > 2 * (1 - huge.IotlbHitRate), $"4K {small.IotlbHitRate} against 2M {huge.IotlbHitRate}");
        // Mapping per packet, every DMA goes to a fresh mapping: no reuse at all.
        Assert.True(perPacket.IotlbHitRate < small.IotlbHitRate);
        // RX makes no DMA-API call per packet in a pool: more DMAs for the same number of calls.
        Assert.True(small.Dmas > perPacket.Dmas);
    }

    [Theory]
    [InlineData("nic", 1500UL)]
    [InlineData("nvme", 64UL << 10)]
    public async Task DeviceGbpsIsTheDataTheDevicesMoved(string workload, ulong bytesPerTransfer)
    {
        // Every transfer of these runs moves the same bytes (a 1500-byte frame; a 64 KiB command): Gb/s and
        // transfers/s must agree, whatever the slowdown; a page pool moves frames without mapping per packet.
        var runner = new Simulator();
        var settings = Small(workload) with { NvmeIoBytes = workload == "nvme" ? bytesPerTransfer : null, NicPagePool = workload == "nic" };
        var r = await runner.RunAsync(settings, PersistenceBackend.InMemory, null, CancellationToken.None);
        Assert.True(r.Cost!.DeviceIops > 0);
        Assert.Equal(r.Cost.DeviceIops * bytesPerTransfer * 8 / 1e9, r.Cost.DeviceGbps, 6);
    }

    [Fact]
    public async Task SlowerInvalidationsCostStrictMore()
    {
        var runner = new Simulator();
        var settings = Small("nvme", new FlushPolicySpec(FlushPolicyKind.Strict));
        var fast = await runner.RunAsync(settings, PersistenceBackend.InMemory, null, CancellationToken.None);
        var slow = await runner.RunAsync(settings with { Cost = settings.Cost with { InvalidationNs = 10_000 } }, PersistenceBackend.InMemory, null, CancellationToken.None);
        // The CPUs waiting on slower invalidations fall further behind, and hold their drives back for longer: the run
        // itself changes (back-pressure), and moves less.
        Assert.True(slow.Cost!.OpLatencyP99Us > fast.Cost!.OpLatencyP99Us);
        Assert.True(slow.Cost.Throttled > fast.Cost.Throttled, $"throttled {slow.Cost.Throttled} slow, {fast.Cost.Throttled} fast");
        Assert.True(slow.Cost.ThroughputRatio < fast.Cost.ThroughputRatio);
        Assert.True(slow.Cost.DeviceIops < fast.Cost.DeviceIops);
        Assert.True(slow.SimS > fast.SimS, "the same operations take longer to issue");
    }

    [Fact]
    public async Task AnotherSeedGivesOtherFigures()
    {
        var runner = new Simulator();
        var a = await runner.RunAsync(Small(), PersistenceBackend.InMemory, null, CancellationToken.None);
        var b = await runner.RunAsync(Small() with { Seed = 43 }, PersistenceBackend.InMemory, null, CancellationToken.None);
        Assert.NotEqual(a.TableHash, b.TableHash);
    }

    [Theory]
    [InlineData("nic", "strict")]
    [InlineData("nic", "lazy")]
    [InlineData("nvme", "batch:8")]
    [InlineData("random", "lazy-single")]
    [InlineData("gpu", "strict")]
    public async Task EachWorkloadRunsUnderEachPolicy(string workload, string policy)
    {
        Assert.True(FlushPolicySpec.TryParse(policy, out var spec));
        var r = await new Simulator().RunAsync(Small(workload, spec), PersistenceBackend.InMemory, null, CancellationToken.None);
        Assert.Equal(4000, r.Ops);
        Assert.Equal(0, r.StaleViolations);
        Assert.Equal(0, r.UseAfterFree);
        if (policy == "strict")
            Assert.Equal(0, r.StaleInWindow);
    }

    [Theory]
    [InlineData("random", "lazy", 1UL, 0.0)]      // reported 3 stale violations before unmaps carried what they removed
    [InlineData("random", "lazy", 3UL, 0.0)]      // and 1
    [InlineData("random", "strict", 1UL, 0.0)]
    [InlineData("random", "batch:16", 2UL, 0.0)]
    [InlineData("mixed", "lazy-single", 1UL, 0.05)]
    [InlineData("nvme", "lazy", 1UL, 0.05)]
    public async Task ACorrectRunReportsNoFalseFinding(string workload, string policy, ulong seed, double lateDma)
    {
        // A DMA stamped before an explicit unmap of its window (random's unmaps of arbitrary ranges) sees what
        // that unmap removed; the larger campaign over every workload and policy is NoFalseFindingsTests (engine).
        Assert.True(FlushPolicySpec.TryParse(policy, out var spec));
        var settings = new SimulationSettings
        {
            Iommus = 2, Domains = 8, Devices = 32, Workload = workload, Policy = spec, LateDma = lateDma,
            Ops = 20_000, Seed = seed, RunId = "nff",
        };
        var r = await new Simulator().RunAsync(settings, PersistenceBackend.InMemory, null, CancellationToken.None);
        Assert.Equal(20_000, r.Ops);
        Assert.True(r.Dmas > 0);
        Assert.Equal(0, r.StaleViolations);
        Assert.Equal(0, r.UseAfterFree);
        Assert.Equal(0, r.IsolationBreaches);
    }

    [Fact]
    public async Task CpusSpreadEachDomainsDevicesEvenWhenTheyDivideTheDomains()
    {
        // 16 devices per domain. Before, a device's CPU was its index mod --cpus and its domain its index mod
        // --domains: with --cpus dividing --domains every device of a domain was on one CPU and --cpus changed nothing.
        static SimulationSettings Lazy(int cpus) => new()
        {
            Iommus = 1, Domains = 4, Devices = 64, Workload = "nic", Policy = new(FlushPolicyKind.Lazy),
            Cpus = cpus, Ops = 20_000, Seed = 7, RunId = "cpus" + cpus,
        };
        var runner = new Simulator();
        var one = await runner.RunAsync(Lazy(1), PersistenceBackend.InMemory, null, CancellationToken.None);
        var four = await runner.RunAsync(Lazy(4), PersistenceBackend.InMemory, null, CancellationToken.None);
        var sixteen = await runner.RunAsync(Lazy(16), PersistenceBackend.InMemory, null, CancellationToken.None);
        // More rings per domain: fewer of them fill, so fewer whole-domain flushes, and more unmaps parked at once.
        Assert.True(one.Invalidations > four.Invalidations, $"{one.Invalidations} vs {four.Invalidations}");
        Assert.True(four.Invalidations > sixteen.Invalidations, $"{four.Invalidations} vs {sixteen.Invalidations}");
        Assert.NotEqual(one.TablePagesMax, sixteen.TablePagesMax);
        Assert.Equal(20_000, sixteen.Ops);
    }

    [Fact]
    public async Task LockWaitsCountOnlyOperationsThatTookALock()
    {
        // nic devices only DmaMap (no lock) and unmap their own buffers (a lock, never contended): nothing waits.
        var nic = await new Simulator().RunAsync(Small("nic", FlushPolicySpec.Strict), PersistenceBackend.InMemory, null, CancellationToken.None);
        Assert.Equal(0, nic.LockWaits);
        Assert.Equal(0, nic.LockWaitP99Us);
        // random devices map inside their own live mappings and unmap them in parts: some operations wait, and the
        // percentiles are over the locked operations only (most DmaMaps of the run would otherwise make p99 0).
        var random = await new Simulator().RunAsync(Small("random", new FlushPolicySpec(FlushPolicyKind.LazySingle)) with { Ops = 4000 },
            PersistenceBackend.InMemory, null, CancellationToken.None);
        Assert.True(random.LockWaits > 0);
        Assert.True(random.LockWaits < random.Ops);
        Assert.True(random.LockWaitP99Us > 0);
    }

    [Theory]
    [InlineData(UnsafeMode.AmdShort, "nvme", "strict", 1.0)]
    [InlineData(UnsafeMode.FreeEarly, "random", "lazy", null)]
    [InlineData(UnsafeMode.SkipContext, "nic", "lazy", null)]
    public async Task EachUnsafeModeShowsItsFindingAndACorrectRunDoesNot(UnsafeMode mode, string workload, string policy, double? lateDma)
    {
        Assert.True(FlushPolicySpec.TryParse(policy, out var spec));
        var settings = new SimulationSettings
        {
            Iommus = 2, Domains = 8, Devices = 32, Workload = workload, Policy = spec, LateDma = lateDma,
            Ops = 20_000, Seed = 1, RunId = "unsafe",
        };
        var runner = new Simulator();
        var bad = await runner.RunAsync(settings with { Unsafe = mode }, PersistenceBackend.InMemory, null, CancellationToken.None);
        var good = await runner.RunAsync(settings, PersistenceBackend.InMemory, null, CancellationToken.None);
        Assert.Equal(mode, bad.Unsafe);
        Assert.Equal(UnsafeMode.None, good.Unsafe);
        Func<SimulationResult, long> finding = mode switch
        {
            // The flush of an unaligned multi-page unmap misses its last pages: a late DMA hits them after the flush.
            UnsafeMode.AmdShort => static r => r.StaleViolations,
            // A 2 MiB map replaces an emptied table; the table is freed before the (queued) flush, and the next DMA
            // walks from the walk cache's pointer into it.
            UnsafeMode.FreeEarly => static r => r.UseAfterFree,
            // Every device keeps translating through the boot domain the attach did not invalidate.
            _ => static r => r.IsolationBreaches,
        };
        Assert.True(finding(bad) > 0, $"{mode}: no finding");
        Assert.Equal(0, finding(good));
        Assert.Equal(0, good.UseAfterFree);
        Assert.Equal(0, good.IsolationBreaches);
        if (mode == UnsafeMode.SkipContext)
            Assert.Equal(bad.Dmas, bad.IsolationBreaches);
    }

    [Fact]
    public async Task AUnitThatCannotBeCreatedEndsTheRunWithAnErrorNamingIt()
    {
        // 12 entries cannot make 8 ways: the IOTLB actor's constructor throws.
        var run = new Simulator().RunAsync(Small() with { IotlbEntries = 12 }, PersistenceBackend.InMemory, null, CancellationToken.None);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Matches("^actor iommu[01] failed: ", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public async Task AHostWhoseWorkloadThrowsEndsTheRunWithAnErrorNamingIt()
    {
        // An empty window: every device's Generate throws, in the first host that runs.
        var run = new Simulator().RunAsync(Small() with { WindowNs = 0 }, PersistenceBackend.InMemory, null, CancellationToken.None);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Matches("^actor host[0-9]{4} failed: Device [0-9]+: the window", e.Message);
    }

    /// <summary>Fails the listed writes of <c>payload</c> events (default: domain batches; 1 = the run's first), or each with probability <c>p</c> among writes [from, to).</summary>
    private sealed class FailingWrites(int[] nth, double p = 0, int from = 0, int to = 0, int seed = 1, Type? payload = null)
    {
        private readonly Type _payload = payload ?? typeof(PtActors.Engine.Dma.DomainBatch);
        private readonly Random _random = new(seed);
        private int _writes;
        public int Failed;
        public int Writes => _writes;

        public bool ShouldFail(Akka.Persistence.IPersistentRepresentation write)
        {
            if (write.Payload.GetType() != _payload)
                return false;
            lock (_random)
            {
                int n = ++_writes;
                bool fail = Array.IndexOf(nth, n) >= 0 || (n >= from && n < to && _random.NextDouble() < p);
                if (fail)
                    Failed++;
                return fail;
            }
        }
    }

    private static Task<SimulationResult> RunFailing(SimulationSettings settings, FailingWrites failing)
        => new Simulator().RunAsync(settings, PersistenceBackend.Test, null,
            system => Akka.Persistence.TestKit.TestJournal.FromRef(Akka.Persistence.Persistence.Instance.Apply(system).JournalFor(null))
                .OnWrite.FailIf(failing.ShouldFail).Wait(),
            CancellationToken.None);

    [Theory]
    [InlineData("lazy", 64, 500, new[] { 1 })]                       // the run's very first write
    [InlineData("lazy", 64, 500, new[] { 3, 10, 11, 60 })]            // twice in a row: the re-driven write fails too
    [InlineData("strict", 64, 3, new[] { 5, 40, 41, 70 })]           // held unmap replies, recovery from snapshots
    [InlineData("batch:8", 32, 4, new[] { 17, 33, 90, 91, 92 })]
    [InlineData("lazy-single", 256, 500, new[] { 2, 25, 26 })]
    public async Task AFailedJournalWriteCostsARetryNotTheRun(string policy, int opsPerEvent, int snapshotEvery, int[] failAt)
    {
        Assert.True(FlushPolicySpec.TryParse(policy, out var spec));
        var settings = Small("mixed", spec) with { MaxOpsPerEvent = opsPerEvent, SnapshotEvery = snapshotEvery };
        var clean = await new Simulator().RunAsync(settings, PersistenceBackend.Test, null, CancellationToken.None);
        var failing = new FailingWrites(failAt);
        var redriven = await RunFailing(settings, failing).WaitAsync(TimeSpan.FromSeconds(90));
        Assert.True(failing.Failed >= 2 || failAt.Length == 1, $"only {failing.Failed} writes failed");
        Assert.Equal(failAt.Count(n => n <= failing.Writes), failing.Failed);
        // Every figure, hashes and journal counts included, as if no write had failed.
        Assert.Equal(WithoutWallClock(clean), WithoutWallClock(redriven));
    }

    [Fact]
    public async Task WritesFailingAtRandomForAWhileStillGiveTheFiguresOfACleanRun()
    {
        var settings = Small("random", FlushPolicySpec.Strict) with { MaxOpsPerEvent = 48, SnapshotEvery = 5, Seed = 9 };
        var clean = await new Simulator().RunAsync(settings, PersistenceBackend.Test, null, CancellationToken.None);
        var failing = new FailingWrites([], p: 0.04, from: 20, to: 260, seed: 5);
        var redriven = await RunFailing(settings, failing).WaitAsync(TimeSpan.FromSeconds(120));
        Assert.True(failing.Failed >= 3, $"only {failing.Failed} writes failed");
        Assert.Equal(WithoutWallClock(clean), WithoutWallClock(redriven));
    }

    [Theory]
    [InlineData(new[] { 1 })]                 // the unit's very first DMA write
    [InlineData(new[] { 2, 7, 8, 9 })]        // three in a row for one window
    public async Task AFailedDmaJournalWriteCostsARetryNotTheRun(int[] failAt)
    {
        var settings = Small("mixed", new(FlushPolicyKind.Lazy)) with { RecordDmas = true, Iommus = 1 };
        var clean = await new Simulator().RunAsync(settings, PersistenceBackend.Test, null, CancellationToken.None);
        Assert.True(clean.Dmas > 0);
        var failing = new FailingWrites(failAt, payload: typeof(PtActors.Engine.Replay.WindowDmas));
        var retried = await RunFailing(settings, failing).WaitAsync(TimeSpan.FromSeconds(90));
        Assert.Equal(failAt.Length, failing.Failed);
        Assert.Equal(WithoutWallClock(clean), WithoutWallClock(retried));
    }

    [Fact]
    public async Task AJournalWriteFailureStopsTheRunWithAClearErrorInsteadOfHanging()
    {
        // Every write fails: the first commit of a domain fails, the domain restarts from its (empty) journal and
        // commits the window again, which fails again; after 5 restarts for one window the run must end with an
        // error that names the domain and the window, not retry (or wait) forever.
        var run = new Simulator().RunAsync(Small(), PersistenceBackend.Test, null,
            system => Akka.Persistence.TestKit.TestJournal.FromRef(Akka.Persistence.Persistence.Instance.Apply(system).JournalFor(null)).OnWrite.Fail().Wait(),
            CancellationToken.None);
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => run.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.Matches("^domain dom[0-9]{4} was restarted from its journal 5 times while committing window 1 ", e.Message);
    }
}
