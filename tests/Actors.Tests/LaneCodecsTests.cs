using System.Runtime.Serialization;
using Akka.Actor;
using Akka.Serialization;
using PtActors.Engine;
using PtActors.Engine.Hardware;
using PtActors.Persistence;
using PtActors.Persistence.Serialization;
using PtActors.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace PtActors.Actors.Tests;

/// <summary>The lane protocol on the wire (<see cref="LaneCodecs"/>): every message round-trips through the ptb serializer.</summary>
public class LaneCodecsTests(ITestOutputHelper output)
    : Akka.TestKit.Xunit2.TestKit(Ops.Quiet.WithFallback(Simulator.LaneWire).WithFallback(PersistenceConfig.InMemory()), "lane-wire", output)
{
    private object RoundTrip(object message, out byte[] bytes)
    {
        var serialization = Sys.Serialization;
        var serializer = serialization.FindSerializerFor(message);
        Assert.IsType<PtSerializer>(serializer);
        string manifest = Serialization.ManifestFor(serializer, message);
        Assert.StartsWith("lane.", manifest);
        bytes = serializer.ToBinary(message);
        return serialization.Deserialize(bytes, serializer.Identifier, manifest);
    }

    public static TheoryData<string> Messages => new()
    {
        "generate", "generate-held", "generated", "generated-costs", "resend", "resent", "commit", "recommit", "committed", "process", "processed", "processed-costs", "drain",
        "drained", "bound", "restarted", "ready", "failed", "failed-stopped", "unit-stats", "image",
        "get-counters", "counters", "counters-without-costs", "image-part", "get-costs", "costs", "start", "start-defaults",
        "start-catch-up", "catching-up",
    };

    /// <summary>Ledgers that timed something: every field of their state differs from a fresh one's.</summary>
    private static (PtActors.Engine.Cost.UnitCostLedger Unit, PtActors.Engine.Cost.HostCostLedger Host) Ledgers()
    {
        var model = PtActors.Engine.Cost.CostModel.Default with { InvalidationNs = 1500, TranslationsInFlight = 4 };
        var unit = new PtActors.Engine.Cost.UnitCostLedger(model, 2);
        unit.Command(100);
        unit.Translate(150, 3);
        unit.Translate(160, 0);
        unit.Unmap(1, 300, 8192, queued: false, commands: 1);
        unit.Covered(50);
        unit.Flushed(0, 5000, 2);
        unit.TimerFlushed(1);
        var host = new PtActors.Engine.Cost.HostCostLedger(model, 2);
        host.Mapped(0, PtActors.Engine.Dma.DmaOpKind.DmaMap, 8192, ok: true);
        host.Mapped(1, PtActors.Engine.Dma.DmaOpKind.Map, 4096, ok: true);
        host.Freed(0, 8192);
        host.Moved(1, 1500, 1, throttled: 3, heldBytes: 4500);
        host.Direct(0);
        return (unit, host);
    }

    private object Sample(string name)
    {
        var a = TestActor;
        var b = CreateTestProbe().Ref;
        return name switch
        {
            "generate" => new DeviceHost.Generate(7, 1_000_000, 2_000_000, true, -1),
            "generate-held" => new DeviceHost.Generate(8, 2_000_000, 3_000_000, false, 12, [0, 2500, long.MaxValue / 4]),
            "generated-costs" => new DeviceHost.Generated(4, new DeviceHost.HostCounters(1, 2, 3, 4, 5, 6, 7, 8, [1], 9, 10, 11, [0.5, 1e12, 0])),
            "generated" => new DeviceHost.Generated(3, new DeviceHost.HostCounters(10, 9, 1, 1UL << 40, 2, 300, 21, 4, [0, 5, 0, 1, long.MaxValue], 20, 1, 6)),
            "resend" => new DeviceHost.Resend(12, a),
            "resent" => new DeviceHost.Resent(12, b),
            "commit" => new DomainActor.Commit(4, Final: true),
            "recommit" => new DomainActor.Recommit(4, 17, false),
            "committed" => new DomainActor.Committed(4, "dom0003", 250, 1, 18),
            "process" => new IotlbActor.Process(5, ulong.MaxValue),
            "processed" => new IotlbActor.Processed(5, "iommu1", 123, 5_000_000, 7, 100, 23, 40),
            "processed-costs" => new IotlbActor.Processed(6, "iommu0", 1, 6_000_000, 2, 3, 4, 5, [1234.5, 0], 2200, 700.25),
            "drain" => new IotlbActor.Drain(9_000_000),
            "drained" => new IotlbActor.Drained("iommu0"),
            "bound" => new IotlbActor.Bound("iommu0", "dom0000"),
            "restarted" => new IotlbActor.DomainRestarted("iommu1", "dom0001"),
            "ready" => new LaneActor.Ready(1, a, [a, b], [b, a]),
            "failed" => new LaneActor.Failed(2, "dom0002", "journal write failed: disk full"),
            "failed-stopped" => new LaneActor.Failed(0, "host0000", null),
            "unit-stats" => new IommuUnitStats { Hits = 5, Misses = 3, Invalidations = 2, MaxStaleWindowNs = long.MaxValue, StaleViolations = 1, FirstStaleViolation = "dev3 read 0x1000 at 5 us" },
            "image" => new DomainImage("dom0002", 3, [1, 2, 3], new byte[9000]),
            "start" => new LaneActor.Start(new SimulationSettings
            {
                Iommus = 3, Domains = 7, Devices = 40, Workload = "nic", Format = PtFormatKind.Riscv64, Policy = new FlushPolicySpec(FlushPolicyKind.Batch, 32),
                IotlbEntries = 64, Cpus = 4, Inflight = 8, LateDma = 0.25, Ops = null, DurationNs = 1_500_000, Seed = ulong.MaxValue, WindowNs = 50_000,
                MaxOpsPerEvent = 64, AckLogPath = "/tmp/acks", SnapshotEvery = 9, RunId = "cluster-1", Unsafe = UnsafeMode.FreeEarly, RecordDmas = true,
                Cost = PtActors.Engine.Cost.CostModel.Default with { WalkReadNs = 120.5, TranslationsInFlight = 8 }, NicPagePool = true,
                BufferPageBytes = 2 << 20, LinkGbps = 400, NicRing = 256, NicQueues = 4, FrameBytes = 9000, NvmeIoBytes = 65536, NvmeQueueDepth = 16, NvmeIops = 1_000_000, ClusterSeed = "10.0.0.7:4053",
            }, 2, a),
            "start-defaults" => new LaneActor.Start(new SimulationSettings(), 0, b),
            "start-catch-up" => new LaneActor.Start(new SimulationSettings { RunId = "lost" }, 1, a, new CatchUp(
                [
                    new LaneCall(LaneCallKind.Generate, 1, 3, -1, false, 0, 20_000),
                    new LaneCall(LaneCallKind.Generate, 2, 0, long.MaxValue, true, 20_000, 40_000),
                    new LaneCall(LaneCallKind.Commit, 2, Flag: true),
                    new LaneCall(LaneCallKind.Process, 2, T1: ulong.MaxValue),
                    new LaneCall(LaneCallKind.Drain, 0, T1: 40_000),
                    new LaneCall(LaneCallKind.Generate, 3, 1, 5, false, 40_000, 60_000, [7, 0, 1L << 40]),
                ],
                [new LaneAnswer(2, 0), new LaneAnswer(3, -1)])),
            "catching-up" => new LaneActor.CatchingUp(3),
            "get-counters" => new IotlbActor.GetCounters(),
            "counters" => new IotlbActor.Counters("iommu1", new IommuUnitStats { Hits = 4 }, Ledgers().Unit),
            "counters-without-costs" => new IotlbActor.Counters("iommu0", new IommuUnitStats(), null),
            "image-part" => new IotlbActor.ImagePart("dom0003", 3, 2, 5, 4, [9, 8, 7]),
            "get-costs" => DeviceHost.GetCosts.Instance,
            "costs" => new DeviceHost.Costs([Ledgers().Host, new PtActors.Engine.Cost.HostCostLedger(PtActors.Engine.Cost.CostModel.Default, 1)]),
            _ => throw new ArgumentException(name),
        };
    }

    [Theory]
    [MemberData(nameof(Messages))]
    public void EveryLaneMessageRoundTripsThroughItsCodec(string name)
    {
        var message = Sample(name);
        var copy = RoundTrip(message, out byte[] bytes);
        Assert.IsType(message.GetType(), copy);
        // The copy writes the same bytes (every field came back), and equals the original where records compare by value.
        RoundTrip(copy, out byte[] again);
        Assert.Equal(bytes, again);
        switch (message)
        {
            case LaneActor.Start { CatchUp: { } catchUp }:
                var cu = ((LaneActor.Start)copy).CatchUp!;
                Assert.Equal(catchUp.Calls.Select(static c => c with { Held = null }), cu.Calls.Select(static c => c with { Held = null }));
                Assert.Equal(catchUp.Calls.Select(static c => c.Held), cu.Calls.Select(static c => c.Held));
                Assert.Equal(catchUp.Outstanding, cu.Outstanding);
                break;
            case LaneActor.Ready ready:
                var r = (LaneActor.Ready)copy;
                Assert.Equal(ready.Unit, r.Unit);
                Assert.Equal(ready.Domains, r.Domains);
                Assert.Equal(ready.Hosts, r.Hosts);
                break;
            case DeviceHost.Generated g:
                Assert.Equal(g.Counters.LockWaitHistogram, ((DeviceHost.Generated)copy).Counters.LockWaitHistogram);
                Assert.Equal(g.Counters.CpuNs, ((DeviceHost.Generated)copy).Counters.CpuNs);
                Assert.Equal(g.Counters with { LockWaitHistogram = [], CpuNs = null }, ((DeviceHost.Generated)copy).Counters with { LockWaitHistogram = [], CpuNs = null });
                break;
            case DeviceHost.Generate gen:
                Assert.Equal(gen.Held, ((DeviceHost.Generate)copy).Held);
                Assert.Equal(gen with { Held = null }, ((DeviceHost.Generate)copy) with { Held = null });
                break;
            case IotlbActor.Processed processed:
                Assert.Equal(processed.CpuNs, ((IotlbActor.Processed)copy).CpuNs);
                Assert.Equal(processed with { CpuNs = null }, ((IotlbActor.Processed)copy) with { CpuNs = null });
                break;
            case IommuUnitStats s:
                var c = (IommuUnitStats)copy;
                Assert.Equal((s.Hits, s.Misses, s.MaxStaleWindowNs, s.FirstStaleViolation, s.FirstUseAfterFree), (c.Hits, c.Misses, c.MaxStaleWindowNs, c.FirstStaleViolation, c.FirstUseAfterFree));
                break;
            case IotlbActor.ImagePart part:
                var pc = (IotlbActor.ImagePart)copy;
                Assert.Equal(part with { Bytes = [] }, pc with { Bytes = [] });
                Assert.Equal(part.Bytes, pc.Bytes);
                break;
            case DomainImage image:
                var i = (DomainImage)copy;
                Assert.Equal((image.Name, image.TablePages), (i.Name, i.TablePages));
                Assert.Equal(image.Canonical, i.Canonical);
                Assert.Equal(image.Memory, i.Memory);
                break;
            case IotlbActor.Counters counters:
                var cc = (IotlbActor.Counters)copy;
                Assert.Equal(counters.Unit, cc.Unit);
                Assert.Equal(counters.Costs is null, cc.Costs is null);
                if (counters.Costs is { } u)
                {
                    // Everything the unit's ledger held came back (the figures the run computes from it included).
                    Assert.Equal(u.Model, cc.Costs!.Model);
                    Assert.Equal((u.QueueBusyNs, u.StallNs, u.Translations, u.TimerCpuNs, u.LastCompletionNs), (cc.Costs.QueueBusyNs, cc.Costs.StallNs, cc.Costs.Translations, cc.Costs.TimerCpuNs, cc.Costs.LastCompletionNs));
                    Assert.Equal(u.CpuNs, cc.Costs.CpuNs);
                    Assert.Equal(u.UnmapLatency, cc.Costs.UnmapLatency);
                    Assert.Equal(u.StaleWindow.BucketCounts.ToArray(), cc.Costs.StaleWindow.BucketCounts.ToArray());
                }
                break;
            case DeviceHost.Costs costs:
                var hc = (DeviceHost.Costs)copy;
                Assert.Equal(costs.Ledgers.Count, hc.Ledgers.Count);
                for (int k = 0; k < costs.Ledgers.Count; k++)
                {
                    Assert.Equal(costs.Ledgers[k].Model, hc.Ledgers[k].Model);
                    Assert.Equal(costs.Ledgers[k].CpuNs, hc.Ledgers[k].CpuNs);
                    Assert.Equal(costs.Ledgers[k].BytesByCpu, hc.Ledgers[k].BytesByCpu);
                    Assert.Equal((costs.Ledgers[k].Transfers, costs.Ledgers[k].IovaAllocs, costs.Ledgers[k].IovaCacheMisses), (hc.Ledgers[k].Transfers, hc.Ledgers[k].IovaAllocs, hc.Ledgers[k].IovaCacheMisses));
                    Assert.Equal((costs.Ledgers[k].Throttled, costs.Ledgers[k].HeldBytes), (hc.Ledgers[k].Throttled, hc.Ledgers[k].HeldBytes));
                    Assert.Equal(costs.Ledgers[k].MapLatency.BucketCounts.ToArray(), hc.Ledgers[k].MapLatency.BucketCounts.ToArray());
                }
                break;
            default:
                Assert.Equal(message, copy);
                break;
        }
    }

    [Fact]
    public void EveryMessageMarkedForTheWireHasACodec()
    {
        var registry = ((PtSerializer)Sys.Serialization.FindSerializerForType(typeof(ILaneMessage))).Registry;
        var marked = typeof(ILaneMessage).Assembly.GetTypes().Where(t => !t.IsAbstract && typeof(ILaneMessage).IsAssignableFrom(t)).ToList();
        Assert.NotEmpty(marked);
        foreach (var t in marked)
            Assert.True(registry.TryGetByType(t, out _), $"{t} is marked ILaneMessage but has no codec");
        var named = new HashSet<Type>();
        foreach (string row in Messages)
            named.Add(Sample(row).GetType());
        foreach (var t in marked)
            Assert.Contains(t, named);                                  // and each is in the round-trip samples above
    }

    [Fact]
    public void ALedgerInconsistentWithItsModelIsNotRestored()
    {
        var (unit, host) = Ledgers();
        var state = unit.Capture();
        Assert.Null(PtActors.Engine.Cost.UnitCostLedger.Restore(unit.Model, state with { Slots = new double[3] }, out string? problem));
        Assert.Equal("3 translation slots, the model has 4", problem);
        Assert.NotNull(PtActors.Engine.Cost.UnitCostLedger.Restore(unit.Model, state, out problem));
        var hs = host.Capture();
        Assert.Null(PtActors.Engine.Cost.HostCostLedger.Restore(host.Model, hs with { Cached = [1, 2] }, out problem));
        Assert.Contains("magazine counts", problem);
        Assert.Null(PtActors.Engine.Cost.LatencyHistogram.Restore(new long[PtActors.Engine.Cost.LatencyHistogram.BucketCount], 5, 0, out problem));
        Assert.Equal("bucket counts add up to 0, not 5", problem);
    }

    [Fact]
    public void ATruncatedMessageIsRefusedNamingItsManifest()
    {
        var message = Sample("committed");
        var serializer = Sys.Serialization.FindSerializerFor(message);
        byte[] bytes = serializer.ToBinary(message);
        var e = Assert.Throws<SerializationException>(() => Sys.Serialization.Deserialize(bytes[..^2], serializer.Identifier, "lane.committed"));
        Assert.Contains("'lane.committed'", e.Message);
    }
}
