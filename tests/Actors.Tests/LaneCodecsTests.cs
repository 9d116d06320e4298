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
        "generate", "generated", "resend", "resent", "commit", "recommit", "committed", "process", "processed", "drain",
        "drained", "bound", "restarted", "ready", "failed", "failed-stopped", "unit-stats", "image",
    };

    private object Sample(string name)
    {
        var a = TestActor;
        var b = CreateTestProbe().Ref;
        return name switch
        {
            "generate" => new DeviceHost.Generate(7, 1_000_000, 2_000_000, true, -1),
            "generated" => new DeviceHost.Generated(3, new DeviceHost.HostCounters(10, 9, 1, 1UL << 40, 2, 300, 21, 4, [0, 5, 0, 1, long.MaxValue], 20, 1, 6)),
            "resend" => new DeviceHost.Resend(12, a),
            "resent" => new DeviceHost.Resent(12, b),
            "commit" => new DomainActor.Commit(4, Final: true),
            "recommit" => new DomainActor.Recommit(4, 17, false),
            "committed" => new DomainActor.Committed(4, "dom0003", 250, 1, 18),
            "process" => new IotlbActor.Process(5, ulong.MaxValue),
            "processed" => new IotlbActor.Processed(5, "iommu1", 123, 5_000_000, 7, 100, 23, 40),
            "drain" => new IotlbActor.Drain(9_000_000),
            "drained" => new IotlbActor.Drained("iommu0"),
            "bound" => new IotlbActor.Bound("iommu0", "dom0000"),
            "restarted" => new IotlbActor.DomainRestarted("iommu1", "dom0001"),
            "ready" => new LaneActor.Ready(1, a, [a, b], [b, a]),
            "failed" => new LaneActor.Failed(2, "dom0002", "journal write failed: disk full"),
            "failed-stopped" => new LaneActor.Failed(0, "host0000", null),
            "unit-stats" => new IommuUnitStats { Hits = 5, Misses = 3, Invalidations = 2, MaxStaleWindowNs = long.MaxValue, StaleViolations = 1, FirstStaleViolation = "dev3 read 0x1000 at 5 us" },
            "image" => new DomainImage("dom0002", 3, [1, 2, 3], new byte[9000]),
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
            case LaneActor.Ready ready:
                var r = (LaneActor.Ready)copy;
                Assert.Equal(ready.Unit, r.Unit);
                Assert.Equal(ready.Domains, r.Domains);
                Assert.Equal(ready.Hosts, r.Hosts);
                break;
            case DeviceHost.Generated g:
                Assert.Equal(g.Counters.LockWaitHistogram, ((DeviceHost.Generated)copy).Counters.LockWaitHistogram);
                Assert.Equal(g.Counters with { LockWaitHistogram = [] }, ((DeviceHost.Generated)copy).Counters with { LockWaitHistogram = [] });
                break;
            case IommuUnitStats s:
                var c = (IommuUnitStats)copy;
                Assert.Equal((s.Hits, s.Misses, s.MaxStaleWindowNs, s.FirstStaleViolation, s.FirstUseAfterFree), (c.Hits, c.Misses, c.MaxStaleWindowNs, c.FirstStaleViolation, c.FirstUseAfterFree));
                break;
            case DomainImage image:
                var i = (DomainImage)copy;
                Assert.Equal((image.Name, image.TablePages), (i.Name, i.TablePages));
                Assert.Equal(image.Canonical, i.Canonical);
                Assert.Equal(image.Memory, i.Memory);
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
    public void ATruncatedMessageIsRefusedNamingItsManifest()
    {
        var message = Sample("committed");
        var serializer = Sys.Serialization.FindSerializerFor(message);
        byte[] bytes = serializer.ToBinary(message);
        var e = Assert.Throws<SerializationException>(() => Sys.Serialization.Deserialize(bytes[..^2], serializer.Identifier, "lane.committed"));
        Assert.Contains("'lane.committed'", e.Message);
    }
}
