using System.Diagnostics;
using PtActors.Actors;
using PtActors.Persistence;

namespace PtActors.Bench;

/// <summary>
/// Times replaying a recording end to end (<c>-- replay DB [RUN] [ROUNDS]</c>): each round reads every journal of the
/// run through Akka.Persistence.Query (<see cref="RecordingReplay.LoadAsync"/>) and replays it under its recorded
/// configuration (<see cref="RecordingReplay.Replay"/>), as <c>ptactors replay</c> does, and prints the read, the
/// apply and their sum as operations per second. The first round pays the JIT; the later ones are the steady state.
/// </summary>
public static class ReplayQuick
{
    public static void Run(string db, string? runId, int rounds, TextWriter output)
    {
        var system = PersistentActorSystem.Create("replay", PersistenceBackend.Sqlite(db));
        try
        {
            var list = RunVerifier.ListRunsAsync(system).GetAwaiter().GetResult();
            var run = runId is null ? list.Runs[0] : list.Runs.First(r => r.RunId == runId);
            if (Environment.GetEnvironmentVariable("REPLAY_ALL_EVENTS") is not null)
            {
                var journal = Akka.Persistence.Query.PersistenceQuery.Get(system)
                    .ReadJournalFor<Akka.Persistence.Sql.Query.SqlReadJournal>(PersistenceConfig.SqlReadJournalId);
                for (int round = 0; round < rounds; round++)
                {
                    var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
                    var sw = Stopwatch.StartNew();
                    long events = 0, ops = 0;
                    journal.CurrentAllEvents(Akka.Persistence.Query.Offset.NoOffset())
                        .RunForeach(e =>
                        {
                            events++;
                            if (e.Event is PtActors.Engine.Dma.DomainBatch b)
                                ops += b.Ops.Length;
                        }, Akka.Streams.ActorMaterializer.Create(system)).GetAwaiter().GetResult();
                    output.WriteLine($"all-events round {round}: {events} events, {ops} ops in {sw.Elapsed.TotalSeconds:F3} s, CPU {(Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalSeconds:F2} s");
                }
                return;
            }
            if (Environment.GetEnvironmentVariable("REPLAY_APPLY_ONLY") is not null)
            {
                var loaded = RecordingReplay.LoadAsync(system, run, list.EndOf(run.RunId)).GetAwaiter().GetResult();
                for (int round = 0; round < rounds; round++)
                {
                    var sw = Stopwatch.StartNew();
                    RecordingReplay.Replay(loaded, loaded.Recorded);
                    output.WriteLine($"apply round {round}: {sw.Elapsed.TotalSeconds:F3} s");
                }
                return;
            }
            for (int round = 0; round < rounds; round++)
            {
                var pause0 = GC.GetTotalPauseDuration();
                int gen0 = GC.CollectionCount(0), gen1 = GC.CollectionCount(1), gen2 = GC.CollectionCount(2);
                long alloc0 = GC.GetTotalAllocatedBytes(true);
                var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
                var t = Stopwatch.StartNew();
                var recording = RecordingReplay.LoadAsync(system, run, list.EndOf(run.RunId)).GetAwaiter().GetResult();
                double read = t.Elapsed.TotalSeconds;
                long allocRead = GC.GetTotalAllocatedBytes(true);
                var cpu1 = Process.GetCurrentProcess().TotalProcessorTime;
                t.Restart();
                var report = RecordingReplay.Replay(recording, recording.Recorded);
                double apply = t.Elapsed.TotalSeconds;
                long allocApply = GC.GetTotalAllocatedBytes(true) - allocRead;
                var cpu2 = Process.GetCurrentProcess().TotalProcessorTime;
                long ops = recording.Operations;
                output.WriteLine($"round {round}: {ops} ops, read {read:F3} s ({ops / read / 1e6:F2} M ops/s), apply {apply:F3} s ({ops / apply / 1e6:F2} M ops/s), " +
                    $"read + apply {read + apply:F3} s = {ops / (read + apply) / 1e6:F2} M ops/s; answers differing {report.ResultsDiffer}; " +
                    $"GC {GC.CollectionCount(0) - gen0}/{GC.CollectionCount(1) - gen1}/{GC.CollectionCount(2) - gen2} (gen0/1/2) paused {(GC.GetTotalPauseDuration() - pause0).TotalSeconds:F3} s; " +
                    $"allocated {(allocRead - alloc0) / 1e6:F0} MB reading, {allocApply / 1e6:F0} MB applying; " +
                    $"CPU {(cpu1 - cpu0).TotalSeconds:F2} s reading, {(cpu2 - cpu1).TotalSeconds:F2} s applying");
            }
        }
        finally
        {
            system.Terminate().Wait();
        }
    }
}
