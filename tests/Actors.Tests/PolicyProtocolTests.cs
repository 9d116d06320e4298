using Akka.Actor;
using PtActors.Engine;
using PtActors.Engine.Dma;
using PtActors.Engine.Hardware;
using PtActors.Persistence;
using Xunit;
using Xunit.Abstractions;

namespace PtActors.Actors.Tests;

/// <summary>
/// A domain actor and a real IOTLB actor under each flush policy: when an unmap is answered relative to the
/// flush that covers it, and when its parked pages and range lock go.
/// </summary>
public class PolicyProtocolTests(ITestOutputHelper output)
    : Akka.TestKit.Xunit2.TestKit(Ops.Quiet.WithFallback(PersistenceConfig.InMemory()), "policy-protocol", output)
{
    private const ulong Window = 100_000;

    [Theory]
    [InlineData("strict", 2)]
    [InlineData("batch:2", 1)]
    [InlineData("lazy", 0)]
    public void UnmapRepliesPagesAndLocksFollowTheFlushThePolicyIssues(string policyText, long invalidationsAtUnmap)
    {
        Assert.True(FlushPolicySpec.TryParse(policyText, out var policy));
        bool answerAfterFlush = policy.Kind is FlushPolicyKind.Strict or FlushPolicyKind.Batch;
        var unit = Sys.ActorOf(IotlbActor.Props("u0", new IommuUnitConfig { Policy = policy }));
        var host = CreateTestProbe();
        var run = "p-" + policyText.Replace(':', '-');
        var domain = Sys.ActorOf(DomainActor.Props(Ops.Settings(run, unit) with { ReplyUnmapsAfterFlush = answerAfterFlush }));
        unit.Tell(new IotlbActor.AttachDevices("d0", 1, domain, [0]), TestActor);
        Assert.Equal("d0", ExpectMsg<IotlbActor.Bound>().Domain);

        // Window 1: two DMA-API maps.
        domain.Tell(new DomainActor.Submit(1, [Ops.Map(10, 0, 1, 0x8000_0000), Ops.Map(20, 0, 2, 0x8100_0000)]), host.Ref);
        Commit(domain, 1, expectedOps: 2);
        var maps = host.ExpectMsg<DomainActor.Results>().Items.ToArray();
        Assert.All(maps, m => Assert.Equal(Errno.None, m.Error));
        ulong a = maps[0].Iova, b = maps[1].Iova;
        Process(unit, 1);

        // Window 2: both unmapped. Lazy answers once durable and queued; strict and batch:N wait for the flush.
        domain.Tell(new DomainActor.Submit(2, [
            Ops.Explicit(DmaOpKind.Unmap, Window + 10, 0, 3, a),
            Ops.Explicit(DmaOpKind.Unmap, Window + 20, 0, 4, b),
        ]), host.Ref);
        Commit(domain, 2, expectedOps: 2);
        if (answerAfterFlush)
        {
            // Durable: the host holds both results until the flush covering them completed.
            var held = host.ExpectMsg<DomainActor.Results>();
            Assert.Empty(held.Items.ToArray());
            Assert.Equal([DmaOp.MakeId(0, 3), DmaOp.MakeId(0, 4)], held.Held.ToArray().Select(r => r.Id));
        }
        else
            Assert.Equal([DmaOp.MakeId(0, 3), DmaOp.MakeId(0, 4)], host.ExpectMsg<DomainActor.Results>().Items.ToArray().Select(r => r.Id));
        Process(unit, 2);
        Assert.Equal(invalidationsAtUnmap, Counters(unit).Invalidations);
        // Until the domain applies a release, both unmaps stay parked with their ranges locked.
        Assert.Equal(2, Summary(domain).Parked);

        // Window 3: the releases the flush produced are applied; a map at the first IOVA's range asks for its lock.
        domain.Tell(new DomainActor.Submit(3, [Ops.Explicit(DmaOpKind.Map, 2 * Window + 10, 0, 5, a, pa: 0x9000_0000)]), host.Ref);
        if (answerAfterFlush)
        {
            Commit(domain, 3, expectedOps: 1);                          // the map; the unmaps ran in window 2
            var answers = host.ExpectMsg<DomainActor.Results>();
            // The released unmaps first (their flush completed: the host hands their held results to the device),
            // then the map, which found the range free.
            Assert.Equal([DmaOp.MakeId(0, 3), DmaOp.MakeId(0, 4)], answers.Released.ToArray());
            var map = Assert.Single(answers.Items.ToArray());
            Assert.Equal(DmaOp.MakeId(0, 5), map.Id);
            Assert.Equal(0UL, map.LockWaitNs);
            Assert.Equal(0, Summary(domain).Parked);
            return;
        }

        // Lazy: the flush queue still holds both unmaps, so their pages stay parked and the map waits.
        Commit(domain, 3, expectedOps: 0);
        host.ExpectNoMsg(TimeSpan.FromMilliseconds(200));
        Assert.Equal(2, Summary(domain).Parked);
        unit.Tell(new IotlbActor.Drain(3 * Window), TestActor);
        ExpectMsg<IotlbActor.Drained>();
        Assert.Equal(1, Counters(unit).Invalidations);                  // one flush for the whole queue
        Commit(domain, 4, expectedOps: 1);
        var late = Assert.Single(host.ExpectMsg<DomainActor.Results>().Items.ToArray());
        Assert.Equal(DmaOp.MakeId(0, 5), late.Id);
        Assert.Equal(Errno.None, late.Error);
        Assert.Equal(3 * Window - (2 * Window + 10), late.LockWaitNs); // waited from its stamp to the release
        Assert.Equal(0, Summary(domain).Parked);
    }

    private void Commit(IActorRef domain, long window, int expectedOps)
    {
        domain.Tell(new DomainActor.Commit(window), TestActor);
        var committed = ExpectMsg<DomainActor.Committed>();
        Assert.Equal(window, committed.Window);
        Assert.Equal(expectedOps, committed.Ops);
    }

    private void Process(IActorRef unit, long window)
    {
        unit.Tell(new IotlbActor.Process(window, (ulong)window * Window), TestActor);
        Assert.Equal(window, ExpectMsg<IotlbActor.Processed>().Window);
    }

    private IommuUnitStats Counters(IActorRef unit)
    {
        unit.Tell(new IotlbActor.GetCounters(), TestActor);
        ExpectMsg<IotlbActor.ImagePart>();   // the domain's table image comes first
        return ExpectMsg<IotlbActor.Counters>().Stats;
    }

    private DomainActor.Summary Summary(IActorRef domain)
    {
        domain.Tell(DomainActor.GetSummary.Instance, TestActor);
        return ExpectMsg<DomainActor.Summary>();
    }
}
