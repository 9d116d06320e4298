using Akka.Actor;
using PtActors.Engine;
using PtActors.Engine.Dma;
using PtActors.Engine.Hardware;
using PtActors.Engine.Workloads;
using PtActors.Persistence;
using PtActors.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace PtActors.Actors.Tests;

/// <summary>The IOTLB actor's and the device host's protocols.</summary>
public class IotlbAndHostTests(ITestOutputHelper output)
    : Akka.TestKit.Xunit2.TestKit(Ops.Quiet.WithFallback(PersistenceConfig.InMemory()), "iotlb-host", output)
{
    private const IommuProt RW = IommuProt.Read | IommuProt.Write;

    [Fact]
    public void TheIotlbActorTranslatesFlushesAndReleasesInStampOrder()
    {
        var domainActor = CreateTestProbe();
        var unit = Sys.ActorOf(IotlbActor.Props("u0", new IommuUnitConfig()));
        Assert.Equal(Errno.None, DomainModel.Create(PtConfig.Default(PtFormatKind.X86_64), 0x1000, 0xffff_ffff, out var model));
        model!.DeferFlushes();

        unit.Tell(new IotlbActor.AttachDevices("d0", 1, domainActor.Ref, [7]), TestActor);
        ExpectNoMsg(TimeSpan.FromMilliseconds(50));                       // no table yet
        unit.Tell(new DomainActor.Ready("d0", model.Domain));
        Assert.Equal("d0", ExpectMsg<IotlbActor.Bound>().Domain);

        // A mapping, a DMA that walks it, and in the same window an unmap stamped after a second DMA.
        Assert.True(model.Submit(new DmaOp(0, DmaOp.MakeId(7, 1), DmaOpKind.DmaMap, 0, 0x8000_0000, 0x1000, RW), out var map));
        ulong iova = map.Result.Iova;
        Assert.True(model.Submit(new DmaOp(500, DmaOp.MakeId(7, 2), DmaOpKind.Unmap, iova, 0, 0x1000, RW), out var unmap));
        unit.Tell(new IotlbActor.Dmas(1, [new DmaAccess(100, 7, 0, iova + 8, false), new DmaAccess(900, 7, 1, iova + 8, false)]));
        unit.Tell(new DomainActor.Unmapped(1, "d0", [unmap.Notice!.Value], []));
        unit.Tell(new IotlbActor.Process(1, 100_000), TestActor);
        Assert.Equal(2, ExpectMsg<IotlbActor.Processed>().Dmas);
        // Strict: the unmap is flushed at its stamp and released back to its domain.
        var release = domainActor.ExpectMsg<DomainActor.Release>();
        Assert.Equal([unmap.Op.Id], release.UnmapIds.ToArray());

        unit.Tell(new IotlbActor.GetCounters(), TestActor);
        Assert.Equal("d0", ExpectMsg<IotlbActor.ImagePart>().Domain);   // its one domain's image, in one piece, first
        var counters = ExpectMsg<IotlbActor.Counters>();
        Assert.Equal(1, counters.Stats.Misses - counters.Stats.Faults);   // the first DMA saw the mapping (pre-state)
        Assert.Equal(1, counters.Stats.Faults);                           // the second came after the flush
        Assert.Equal(1, counters.Stats.Invalidations);
        Assert.Equal(0, counters.Stats.StaleViolations);

        unit.Tell(new IotlbActor.Drain(200_000), TestActor);
        Assert.Equal("u0", ExpectMsg<IotlbActor.Drained>().Unit);
    }

    [Fact]
    public void ADomainThatAnnouncesItselfAgainIsReboundAndGetsWhatItsOldIncarnationTookWithIt()
    {
        var unit = Sys.ActorOf(IotlbActor.Props("u0", new IommuUnitConfig { Policy = FlushPolicySpec.Strict }));
        var domain = CreateTestProbe();
        Assert.Equal(Errno.None, DomainModel.Create(PtConfig.Default(PtFormatKind.X86_64), 0x1000, 0xffff_ffff, out var model));
        unit.Tell(new IotlbActor.AttachDevices("d0", 1, domain.Ref, [3]), TestActor);
        unit.Tell(new DomainActor.Ready("d0", model!.Domain));
        Assert.Equal(new IotlbActor.Bound("u0", "d0"), ExpectMsg<IotlbActor.Bound>());
        // An unmap flushed in window 1: its release goes to the domain, whose next commit then fails.
        const IommuProt RW = IommuProt.Read | IommuProt.Write;
        Assert.True(model.Submit(new DmaOp(0, DmaOp.MakeId(3, 1), DmaOpKind.DmaMap, 0, 0x8000_0000, 0x1000, RW), out var map));
        Assert.True(model.Submit(new DmaOp(500, DmaOp.MakeId(3, 2), DmaOpKind.Unmap, map.Result.Iova, 0, 0x1000, RW), out var unmap));
        unit.Tell(new DomainActor.Unmapped(1, "d0", [unmap.Notice!.Value], []));
        unit.Tell(new IotlbActor.Process(1, 100_000), TestActor);
        ExpectMsg<IotlbActor.Processed>();
        Assert.Equal([unmap.Op.Id], domain.ExpectMsg<DomainActor.Release>().UnmapIds.ToArray());

        // A new incarnation (recovered from the journal after a failed write) sends its table again: the unit
        // walks it from now on, and re-sends the release the old incarnation never wrote.
        Assert.Equal(Errno.None, DomainModel.Create(PtConfig.Default(PtFormatKind.X86_64), 0x1000, 0xffff_ffff, out var again));
        unit.Tell(new DomainActor.Ready("d0", again!.Domain));
        Assert.Empty(domain.ExpectMsg<DomainActor.Rebound>().HardwareWrites);
        Assert.Equal([unmap.Op.Id], domain.ExpectMsg<DomainActor.Release>().UnmapIds.ToArray());
        Assert.Equal(new IotlbActor.DomainRestarted("u0", "d0"), ExpectMsg<IotlbActor.DomainRestarted>());
        ExpectNoMsg(TimeSpan.FromMilliseconds(100));                    // and it is not bound a second time
        unit.Tell(new IotlbActor.GetCounters(), TestActor);
        // Its counters show the new table (a fresh one: one page), not the old incarnation's (which mapped and unmapped).
        var part = ExpectMsg<IotlbActor.ImagePart>();
        ExpectMsg<IotlbActor.Counters>();
        var image = new ImageParts.Assembler().Add(part)!;
        Assert.Equal("d0", image.Name);
        Assert.Equal(DomainImage.Of("d0", again.Domain).Memory, image.Memory);
        Assert.NotEqual(DomainImage.Of("d0", model.Domain).Memory, image.Memory);

        // Once the domain committed (the next Process), nothing is re-sent any more.
        unit.Tell(new IotlbActor.Process(2, 200_000), TestActor);
        ExpectMsg<IotlbActor.Processed>();
        Assert.Equal(Errno.None, DomainModel.Create(PtConfig.Default(PtFormatKind.X86_64), 0x1000, 0xffff_ffff, out var third));
        unit.Tell(new DomainActor.Ready("d0", third!.Domain));
        domain.ExpectMsg<DomainActor.Rebound>();
        ExpectMsg<IotlbActor.DomainRestarted>();
        domain.ExpectNoMsg(TimeSpan.FromMilliseconds(100));
    }

    [Fact]
    public void ADeviceHostSendsEachDomainAndUnitOneMessageAndCountsReplies()
    {
        var domain = CreateTestProbe();
        var unit = CreateTestProbe();
        var devices = new[]
        {
            new DeviceHost.HostedDevice(WorkloadFactory.Create("nic", 0, 1), domain.Ref, unit.Ref),
            new DeviceHost.HostedDevice(WorkloadFactory.Create("nic", 1, 1), domain.Ref, unit.Ref),
        };
        var host = Sys.ActorOf(DeviceHost.Props(devices));
        host.Tell(new DeviceHost.Generate(1, 0, 100_000, Quiet: false), TestActor);
        var submit = domain.ExpectMsg<DomainActor.Submit>();
        Assert.NotEmpty(submit.Ops.ToArray());
        Assert.All(submit.Ops.ToArray(), op => Assert.Equal(DmaOpKind.DmaMap, op.Kind));
        var generated = ExpectMsg<DeviceHost.Generated>();
        Assert.Equal(submit.Ops.Length, generated.Counters.Issued);
        Assert.Equal(0, generated.Counters.Maps);

        // The domain answers; the next window's counters show the maps, and the devices go on to DMA and unmap.
        var results = submit.Ops.ToArray().Select((op, i) => new DmaOpResult(op.Id, Errno.None, 0x10_0000UL + ((ulong)i << 12), 0x1000, 0, op.Kind)).ToArray();
        host.Tell(new DomainActor.Results(1, "d0", results));
        host.Tell(new DeviceHost.Generate(2, 100_000, 200_000, Quiet: false, Budget: 1), TestActor);
        Assert.NotEmpty(unit.ExpectMsg<IotlbActor.Dmas>().Items.ToArray());
        var next = domain.ExpectMsg<DomainActor.Submit>();
        Assert.Single(next.Ops.ToArray());                                  // the budget allows one more call
        var counters = ExpectMsg<DeviceHost.Generated>().Counters;
        Assert.Equal(submit.Ops.Length, counters.Maps);
        Assert.True(counters.Cancelled > 0);
        Assert.Equal(submit.Ops.Length + 1, counters.Issued);
    }
}
