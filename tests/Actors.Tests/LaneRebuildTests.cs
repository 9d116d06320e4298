using Akka.Actor;
using PtActors.Engine.Dma;
using PtActors.Persistence;
using Xunit;
using Xunit.Abstractions;

namespace PtActors.Actors.Tests;

/// <summary>What the coordinator keeps to rebuild a lost lane (<see cref="LaneLog"/>).</summary>
public class LaneLogTests
{
    [Fact]
    public void TheCatchUpHoldsEveryCallSentAndOnlyTheAnswersStillAwaited()
    {
        var log = new LaneLog();
        log.Add(new LaneCall(LaneCallKind.Generate, 1, Slot: 0), domains: 2);
        log.Add(new LaneCall(LaneCallKind.Generate, 1, Slot: 1), domains: 2);
        log.Answered(LaneCallKind.Generate, 0);
        log.Answered(LaneCallKind.Generate, 1);
        log.Add(new LaneCall(LaneCallKind.Commit, 1), domains: 2);          // call 2: both domains answer
        log.Answered(LaneCallKind.Commit, 1);                               // domain 1 has, domain 0 not yet
        var catchUp = log.CatchUpAt(3);
        Assert.Equal(3, catchUp.Calls.Count);
        Assert.Equal([new LaneAnswer(2, 0)], catchUp.Outstanding);

        log.Answered(LaneCallKind.Commit, 0);
        log.Add(new LaneCall(LaneCallKind.Process, 1, T1: 100), domains: 2);  // call 3
        log.Add(new LaneCall(LaneCallKind.Generate, 2, Slot: 1), domains: 2); // call 4, overlapping the unit's window
        Assert.Equal([new LaneAnswer(3, -1), new LaneAnswer(4, 1)], log.CatchUpAt(5).Outstanding);
        // Calls made while the lane was away are not re-executed (they are sent once it is back): nor awaited there.
        Assert.Equal([new LaneAnswer(3, -1)], log.CatchUpAt(4).Outstanding);
        Assert.Equal(4, log.CatchUpAt(4).Calls.Count);
    }

    [Fact]
    public void ALogThatKeepsNothingRecordsNoCall()
    {
        var log = new LaneLog(keep: false);   // a lane in the coordinator's process: never lost with a node
        Assert.Equal(-1, log.Add(new LaneCall(LaneCallKind.Commit, 1), domains: 3));
        log.Answered(LaneCallKind.Commit, 0);
        Assert.Empty(log.Calls);
        Assert.Empty(log.CatchUpAt(0).Outstanding);
    }

    [Fact]
    public void ACallAsksItsActorsAndCountsTheirAnswers()
    {
        Assert.Equal(5, new LaneCall(LaneCallKind.Commit, 1).Answers(5));
        Assert.Equal(1, new LaneCall(LaneCallKind.Generate, 1, Slot: 3).Answers(5));
        Assert.Equal(1, new LaneCall(LaneCallKind.Drain, 0, T1: 9).Answers(5));
    }
}

/// <summary>
/// A domain of a lane rebuilt after its node was lost: it recovers its journal without applying it, checks the events
/// the re-executed calls make against it, writes only past its end, and refuses a journal that differs or holds more.
/// </summary>
public class DomainRebuildTests(ITestOutputHelper output)
    : Akka.TestKit.Xunit2.TestKit(Ops.Quiet.WithFallback(PersistenceConfig.InMemory()), "domain-rebuild", output)
{
    private static DmaOp[] Window(int w) => [Ops.Map((ulong)w * 1000, 0, (uint)w, 0x8000_0000 + ((ulong)w << 12))];

    /// <summary>Commits windows 1..<paramref name="windows"/> of run <paramref name="run"/> on a domain that then stops.</summary>
    private void Record(string run, int windows)
    {
        var domain = Sys.ActorOf(DomainActor.Props(Ops.Settings(run)));
        for (int w = 1; w <= windows; w++)
        {
            domain.Tell(new DomainActor.Submit(w, Window(w)), ActorRefs.Nobody);
            domain.Tell(new DomainActor.Commit(w), TestActor);
            Assert.Equal(w, ExpectMsg<DomainActor.Committed>().SequenceNr);
        }
        Watch(domain);
        Sys.Stop(domain);
        ExpectTerminated(domain);
    }

    private IActorRef Rebuilding(string run, DomainActor.Rebuilding rebuild)
        => Sys.ActorOf(DomainActor.Props(Ops.Settings(run) with { Rebuild = rebuild }));

    [Fact]
    public void ReExecutedWindowsAreCheckedNotWrittenAndTheJournalGrowsOnlyPastItsEnd()
    {
        Record("rb1", 2);
        var host = CreateTestProbe();
        var domain = Rebuilding("rb1", new DomainActor.Rebuilding());
        for (int w = 1; w <= 3; w++)
        {
            domain.Tell(new DomainActor.Submit(w, Window(w)), host.Ref);
            domain.Tell(new DomainActor.Commit(w), TestActor);
            // Its position in the journal: windows 1 and 2 matched the journalled events, window 3 was written.
            Assert.Equal(new DomainActor.Committed(w, "d0", 1, 1, SequenceNr: w), ExpectMsg<DomainActor.Committed>());
            Assert.Single(host.ExpectMsg<DomainActor.Results>().Items.ToArray());
        }
        domain.Tell(DomainActor.GetSummary.Instance, TestActor);
        var summary = ExpectMsg<DomainActor.Summary>();
        Assert.Equal(3, summary.LastSequenceNr);
        domain.Tell(DomainActor.EndCatchUp.Instance, TestActor);
        Assert.Equal(new DomainActor.CaughtUp("d0", 3), ExpectMsg<DomainActor.CaughtUp>());

        // A domain recovering the usual way (the lane has caught up) finds the same table.
        var again = Sys.ActorOf(DomainActor.Props(Ops.Settings("rb1") with { Rebuild = new DomainActor.Rebuilding { Over = true } }));
        again.Tell(DomainActor.GetSummary.Instance, TestActor);
        var recovered = ExpectMsg<DomainActor.Summary>();
        Assert.Equal((summary.TableHash, 3L), (recovered.TableHash, recovered.LastSequenceNr));
    }

    [Fact]
    public void AReExecutedWindowThatDiffersFromTheJournalFailsTheDomain()
    {
        Record("rb2", 2);
        var domain = Rebuilding("rb2", new DomainActor.Rebuilding());
        Watch(domain);
        domain.Tell(new DomainActor.Submit(1, Window(1)), ActorRefs.Nobody);
        domain.Tell(new DomainActor.Commit(1), TestActor);
        ExpectMsg<DomainActor.Committed>();
        // Window 2 re-executed with another operation than the journalled one.
        EventFilter.Exception<InvalidOperationException>(contains: "d0: re-executing its lost lane, event 2 differs from the journal's: its operations").ExpectOne(() =>
        {
            domain.Tell(new DomainActor.Submit(2, [Ops.Map(2000, 0, 2, 0x9000_0000)]), ActorRefs.Nobody);
            domain.Tell(new DomainActor.Commit(2), TestActor);
        });
    }

    [Fact]
    public void AJournalHoldingMoreThanTheLaneReExecutedIsRefused()
    {
        Record("rb3", 2);
        var domain = Rebuilding("rb3", new DomainActor.Rebuilding());
        domain.Tell(new DomainActor.Submit(1, Window(1)), ActorRefs.Nobody);
        domain.Tell(new DomainActor.Commit(1), TestActor);
        ExpectMsg<DomainActor.Committed>();
        EventFilter.Exception<InvalidOperationException>(contains: "its journal holds 1 events past what its lane re-executed").ExpectOne(
            () => domain.Tell(DomainActor.EndCatchUp.Instance, TestActor));
        ExpectNoMsg(TimeSpan.FromMilliseconds(200));
    }
}
