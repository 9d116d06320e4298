using Akka.Actor;
using Akka.Persistence;
using Microsoft.Data.Sqlite;
using PtActors.Persistence.Runs;

namespace PtActors.Persistence.Tests;

/// <summary>A fresh directory under the system temp folder, deleted (with any SQLite files) on dispose.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "ptactors-pers-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        SqliteConnection.ClearAllPools(); // pooled connections keep the database files open
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
                return;
            }
            catch (IOException) when (attempt < 5)
            {
                Thread.Sleep(50);
            }
        }
    }
}

/// <summary>Replays every event of a persistence id (ignoring snapshots) and sends them to <c>reportTo</c>.</summary>
public sealed class JournalReader : ReceivePersistentActor
{
    private readonly string _persistenceId;
    private readonly List<object> _events = [];

    public JournalReader(string persistenceId, IActorRef reportTo)
    {
        _persistenceId = persistenceId;
        Recover<RecoveryCompleted>(_ =>
        {
            reportTo.Tell(new JournalContents([.. _events]));
            Context.Stop(Self);
        });
        Recover<object>(e => _events.Add(e));
        CommandAny(_ => { });
    }

    public override string PersistenceId => _persistenceId;

    public override Recovery Recovery => new(SnapshotSelectionCriteria.None);
}

public sealed record JournalContents(IReadOnlyList<object> Events);

/// <summary>Reads a journal through <see cref="JournalReader"/>.</summary>
public static class Journals
{
    public static async Task<IReadOnlyList<object>> ReadAsync(ActorSystem system, string persistenceId, TimeSpan timeout)
    {
        var tcs = new TaskCompletionSource<IReadOnlyList<object>>(TaskCreationOptions.RunContinuationsAsynchronously);
        var sink = system.ActorOf(Props.Create(() => new TaskSink(tcs)));
        system.ActorOf(Props.Create(() => new JournalReader(persistenceId, sink)));
        var done = await Task.WhenAny(tcs.Task, Task.Delay(timeout));
        system.Stop(sink);
        if (done != tcs.Task) throw new TimeoutException($"journal of '{persistenceId}' not read within {timeout}");
        return await tcs.Task;
    }

    internal sealed class TaskSink : ReceiveActor
    {
        public TaskSink(TaskCompletionSource<IReadOnlyList<object>> tcs) =>
            Receive<JournalContents>(c => tcs.TrySetResult(c.Events));
    }
}

internal static class RegistryAsk
{
    /// <summary>Keeps Akka's INFO lines out of the test output.</summary>
    public static readonly Akka.Configuration.Config Quiet =
        Akka.Configuration.ConfigurationFactory.ParseString("akka.loglevel = WARNING\nakka.stdout-loglevel = WARNING");

    public static readonly TimeSpan AskTimeout = TimeSpan.FromSeconds(10);

    public static async Task<RunStarted> Record(IActorRef registry, string runId, string hash = "h", long startedMs = 1)
    {
        var reply = await registry.Ask<object>(new RecordRun(runId, hash, startedMs), AskTimeout);
        return reply is RunRecorded ok ? ok.Run : throw new InvalidOperationException($"unexpected reply {reply}");
    }

    public static async Task<IReadOnlyList<RunStarted>> ListRuns(IActorRef registry) =>
        (await registry.Ask<RunList>(GetRuns.Instance, AskTimeout)).Runs;
}
