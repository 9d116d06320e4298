using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence.TestKit;
using PtActors.Engine;
using PtActors.Engine.Dma;
using PtActors.Persistence;
using Xunit;
using Xunit.Abstractions;

namespace PtActors.Actors.Tests;

internal static class Ops
{
    public const IommuProt RW = IommuProt.Read | IommuProt.Write;

    // A generous expectation timeout: the first persisted write of a fresh system can take seconds on a loaded CI machine.
    public static readonly Config Quiet = ConfigurationFactory.ParseString(
        "akka.loglevel = WARNING\nakka.stdout-loglevel = WARNING\nakka.test.single-expect-default = 30s");

    public static DmaOp Map(ulong t, int dev, uint seq, ulong pa, ulong size = 0x1000)
        => new(t, DmaOp.MakeId(dev, seq), DmaOpKind.DmaMap, 0, pa, size, RW);

    public static DmaOp Explicit(DmaOpKind kind, ulong t, int dev, uint seq, ulong iova, ulong size = 0x1000, ulong pa = 0x7000)
        => new(t, DmaOp.MakeId(dev, seq), kind, iova, pa, size, RW);

    public static DomainActor.Settings Settings(string run, IActorRef? iotlb = null, int maxOps = 256)
        => new(run, "d0", PtConfig.Default(PtFormatKind.X86_64), MaxOpsPerEvent: maxOps, Iotlb: iotlb);
}

/// <summary>The domain actor's protocol on the in-memory journal.</summary>
public class DomainActorProtocolTests(ITestOutputHelper output)
    : Akka.TestKit.Xunit2.TestKit(Ops.Quiet.WithFallback(PersistenceConfig.InMemory()), "domain-protocol", output)
{
    [Fact]
    public void OperationsAreAnsweredInStampOrderOnlyAfterTheCommit()
    {
        var host1 = CreateTestProbe();
        var host2 = CreateTestProbe();
        var domain = Sys.ActorOf(DomainActor.Props(Ops.Settings("r1")));
        domain.Tell(new DomainActor.Submit(1, [Ops.Map(500, 1, 1, 0x9000_0000)]), host1.Ref);
        domain.Tell(new DomainActor.Submit(1, [Ops.Map(100, 2, 1, 0x8000_0000)]), host2.Ref);
        host1.ExpectNoMsg(TimeSpan.FromMilliseconds(100));

        domain.Tell(new DomainActor.Commit(1), TestActor);
        var committed = ExpectMsg<DomainActor.Committed>();
        Assert.Equal(new DomainActor.Committed(1, "d0", 2, 1, SequenceNr: 1), committed);
        // Device 2's op is stamped first, so it got the first (highest) IOVA.
        var r2 = host2.ExpectMsg<DomainActor.Results>();
        var r1 = host1.ExpectMsg<DomainActor.Results>();
        Assert.Equal(0xffff_f000UL, Assert.Single(r2.Items.ToArray()).Iova);
        Assert.Equal(0xffff_e000UL, Assert.Single(r1.Items.ToArray()).Iova);
    }

    [Fact]
    public void UnmapsGoToTheIotlbSideAndLockedOperationsWaitForTheRelease()
    {
        var iotlb = CreateTestProbe();
        var host = CreateTestProbe();
        var domain = Sys.ActorOf(DomainActor.Props(Ops.Settings("r2", iotlb.Ref)));
        // Once recovered, the domain hands the IOTLB side the table its walks read.
        Assert.Equal("d0", iotlb.ExpectMsg<DomainActor.Ready>().Domain);
        domain.Tell(new DomainActor.Submit(1, [Ops.Explicit(DmaOpKind.Map, 10, 0, 1, 0x10000, 0x2000)]), host.Ref);
        domain.Tell(new DomainActor.Commit(1));
        host.ExpectMsg<DomainActor.Results>();

        domain.Tell(new DomainActor.Submit(2, [
            Ops.Explicit(DmaOpKind.Unmap, 100_000, 0, 2, 0x10000, 0x2000),
            Ops.Explicit(DmaOpKind.Map, 100_500, 0, 3, 0x11000, 0x1000),
        ]), host.Ref);
        domain.Tell(new DomainActor.Commit(2), TestActor);
        Assert.Equal(1, ExpectMsg<DomainActor.Committed>().Ops);        // the map waits for the unmap's flush
        var unmapResult = Assert.Single(host.ExpectMsg<DomainActor.Results>().Items.ToArray());
        Assert.Equal(0x2000UL, unmapResult.Bytes);
        var notice = Assert.Single(iotlb.ExpectMsg<DomainActor.Unmapped>().Notices.ToArray());
        Assert.Equal(unmapResult.Id, notice.Id);

        domain.Tell(new DomainActor.Release([notice.Id], 300_000));
        domain.Tell(new DomainActor.Commit(3), TestActor);
        ExpectMsg<DomainActor.Committed>();
        var late = Assert.Single(host.ExpectMsg<DomainActor.Results>().Items.ToArray());
        Assert.Equal(Errno.None, late.Error);
        Assert.Equal(199_500UL, late.LockWaitNs);
    }

    [Fact]
    public void UnderStrictAnUnmapIsAnsweredOnlyAfterItsFlush()
    {
        var iotlb = CreateTestProbe();
        var host = CreateTestProbe();
        var domain = Sys.ActorOf(DomainActor.Props(Ops.Settings("r6", iotlb.Ref) with { ReplyUnmapsAfterFlush = true }));
        iotlb.ExpectMsg<DomainActor.Ready>();
        domain.Tell(new DomainActor.Submit(1, [Ops.Map(10, 0, 1, 0x8000_0000)]), host.Ref);
        domain.Tell(new DomainActor.Commit(1));
        ulong iova = Assert.Single(host.ExpectMsg<DomainActor.Results>().Items.ToArray()).Iova;

        domain.Tell(new DomainActor.Submit(2, [Ops.Explicit(DmaOpKind.Unmap, 100_000, 0, 2, iova)]), host.Ref);
        domain.Tell(new DomainActor.Commit(2), TestActor);
        ExpectMsg<DomainActor.Committed>();
        var notice = Assert.Single(iotlb.ExpectMsg<DomainActor.Unmapped>().Notices.ToArray());
        // Durable, but not yet flushed: the host gets the result to hold, not to hand to its device.
        var durable = host.ExpectMsg<DomainActor.Results>();
        Assert.Empty(durable.Items.ToArray());
        var unmap = Assert.Single(durable.Held.ToArray());
        Assert.Equal(notice.Id, unmap.Id);
        Assert.Equal(0x1000UL, unmap.Bytes);

        domain.Tell(new DomainActor.Release([notice.Id], 150_000));
        domain.Tell(new DomainActor.Commit(3), TestActor);
        ExpectMsg<DomainActor.Committed>();
        var flushed = host.ExpectMsg<DomainActor.Results>();
        Assert.Equal([notice.Id], flushed.Released.ToArray());       // now the device may see it
        Assert.Empty(flushed.Items.ToArray());
    }

    [Fact]
    public void AnEmptyWindowCommitsWithoutWriting()
    {
        var domain = Sys.ActorOf(DomainActor.Props(Ops.Settings("r3")));
        domain.Tell(new DomainActor.Commit(7), TestActor);
        Assert.Equal(new DomainActor.Committed(7, "d0", 0, 0), ExpectMsg<DomainActor.Committed>());
        domain.Tell(DomainActor.GetSummary.Instance, TestActor);
        Assert.Equal(0, ExpectMsg<DomainActor.Summary>().LastSequenceNr);
    }

    [Fact]
    public void LargeWindowsArePersistedInGroupsOfAtMostTheEventSize()
    {
        var host = CreateTestProbe();
        var domain = Sys.ActorOf(DomainActor.Props(Ops.Settings("r4", maxOps: 100)));
        var ops = new DmaOp[250];
        for (uint i = 0; i < ops.Length; i++)
            ops[i] = Ops.Map(i, 0, i + 1, 0x1_0000_0000 + ((ulong)i << 12));
        domain.Tell(new DomainActor.Submit(1, ops), host.Ref);
        domain.Tell(new DomainActor.Commit(1), TestActor);
        Assert.Equal(new DomainActor.Committed(1, "d0", 250, 3, SequenceNr: 3), ExpectMsg<DomainActor.Committed>());
        Assert.Equal(250, host.ExpectMsg<DomainActor.Results>().Items.Length);
        domain.Tell(DomainActor.GetSummary.Instance, TestActor);
        Assert.Equal(3, ExpectMsg<DomainActor.Summary>().LastSequenceNr);
    }
}

/// <summary>Recovery from a real SQLite file rebuilds byte-identical tables.</summary>
public class DomainActorSqliteTests
{
    [Fact]
    public async Task ASecondSystemRecoversTheSameTables()
    {
        string dir = Path.Combine(Path.GetTempPath(), "ptactors-test-" + Guid.NewGuid().ToString("N"));
        string db = Path.Combine(dir, "run.db");
        try
        {
            DomainActor.Summary before;
            var sys1 = PersistentActorSystem.Create("sqlite-a", PersistenceBackend.Sqlite(db), Ops.Quiet);
            try
            {
                var domain = sys1.ActorOf(DomainActor.Props(Ops.Settings("run-a") with { SnapshotEvery = 3 }));
                var rng = new Random(7);
                var live = new List<(ulong, ulong)>();
                for (long w = 1; w <= 8; w++)
                {
                    var ops = new List<DmaOp>();
                    for (uint k = 0; k < 40; k++)
                    {
                        ulong t = (ulong)w * 100_000 + k;
                        uint seq = (uint)(w * 1000 + k);
                        if (live.Count > 0 && rng.Next(3) == 0)
                        {
                            var (iova, size) = live[^1];
                            live.RemoveAt(live.Count - 1);
                            ops.Add(Ops.Explicit(DmaOpKind.Unmap, t, 0, seq, iova, size));
                        }
                        else
                        {
                            ops.Add(Ops.Map(t, 0, seq, (ulong)rng.Next(1, 1 << 20) << 12, (ulong)rng.Next(1, 16) << 12));
                        }
                    }
                    domain.Tell(new DomainActor.Submit(w, ops.ToArray()), ActorRefs.Nobody);
                    var committed = await domain.Ask<DomainActor.Committed>(new DomainActor.Commit(w), TimeSpan.FromSeconds(20));
                    Assert.Equal(w, committed.Window);
                }
                before = await domain.Ask<DomainActor.Summary>(DomainActor.GetSummary.Instance, TimeSpan.FromSeconds(10));
            }
            finally
            {
                await sys1.Terminate();
            }

            var sys2 = PersistentActorSystem.Create("sqlite-b", PersistenceBackend.Sqlite(db), Ops.Quiet);
            try
            {
                var again = sys2.ActorOf(DomainActor.Props(Ops.Settings("run-a")));
                var after = await again.Ask<DomainActor.Summary>(DomainActor.GetSummary.Instance, TimeSpan.FromSeconds(20));
                Assert.Equal(before with { Dropped = 0 }, after with { Dropped = 0 });
                // Another run in the same database starts empty.
                var other = sys2.ActorOf(DomainActor.Props(Ops.Settings("run-b")));
                var fresh = await other.Ask<DomainActor.Summary>(DomainActor.GetSummary.Instance, TimeSpan.FromSeconds(20));
                Assert.Equal(0, fresh.LastSequenceNr);
                Assert.NotEqual(before.TableHash, fresh.TableHash);
            }
            finally
            {
                await sys2.Terminate();
            }
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
    }
}

/// <summary>A failed journal write acknowledges nothing and the state comes back equal to the journal.</summary>
public class DomainActorJournalFailureTests(ITestOutputHelper output)
    : Akka.TestKit.Xunit2.TestKit(Ops.Quiet.WithFallback(PersistenceConfig.Test()), "domain-failure", output)
{
    private ITestJournal Journal => TestJournal.FromRef(Akka.Persistence.Persistence.Instance.Apply(Sys).JournalFor(null));

    [Fact]
    public async Task AFailedWriteIsNotAcknowledgedAndTheDomainRestartsFromTheJournal()
    {
        var host = CreateTestProbe();
        var domain = Sys.ActorOf(DomainActor.SupervisedProps(Ops.Settings("r5")));
        domain.Tell(new DomainActor.Submit(1, [Ops.Map(1, 0, 1, 0x8000_0000)]), host.Ref);
        domain.Tell(new DomainActor.Commit(1), TestActor);
        ExpectMsg<DomainActor.Committed>();
        host.ExpectMsg<DomainActor.Results>();
        domain.Tell(DomainActor.GetSummary.Instance, TestActor);
        var durable = ExpectMsg<DomainActor.Summary>();

        await Journal.OnWrite.Fail();
        domain.Tell(new DomainActor.Submit(2, [Ops.Map(100_000, 0, 2, 0x9000_0000, 0x200000)]), host.Ref);
        domain.Tell(new DomainActor.Commit(2), TestActor);
        host.ExpectNoMsg(TimeSpan.FromMilliseconds(500));
        ExpectNoMsg(TimeSpan.FromMilliseconds(100));
        await Journal.OnWrite.Pass();

        // The backoff supervisor restarts the domain; its state is the journal's again.
        await AwaitAssertAsync(async () =>
        {
            var now = await domain.Ask<DomainActor.Summary>(DomainActor.GetSummary.Instance, TimeSpan.FromSeconds(1));
            Assert.Equal(durable, now);
        }, TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(200));
    }
}
