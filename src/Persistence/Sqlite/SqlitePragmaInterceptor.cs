using System.Data.Common;
using LinqToDB.Interceptors;

namespace PtActors.Persistence.Sqlite;

/// <summary>
/// A linq2db connection interceptor that sets <c>PRAGMA synchronous=NORMAL</c> on every connection
/// Akka.Persistence.Sql opens (synchronous is per connection; journal_mode=WAL is per file and set by
/// <see cref="SqliteDatabase.Prepare"/>). In WAL mode NORMAL skips the fsync at each commit and syncs
/// at checkpoints: a process crash loses nothing committed, a power loss may lose the last commits
/// (docs/reliability.md).
/// </summary>
public sealed class SqlitePragmaInterceptor : IConnectionInterceptor
{
    /// <summary>The statement run on each opened connection.</summary>
    public const string Pragmas = "PRAGMA synchronous=NORMAL;";

    private long _configured;

    /// <summary>How many connections this interceptor has configured (for tests and diagnostics).</summary>
    public long ConnectionsConfigured => Interlocked.Read(ref _configured);

    public void ConnectionOpening(ConnectionEventData eventData, DbConnection connection)
    {
    }

    /// <summary>
    /// Moves the rest of the journal's write (open, insert, commit) to a thread-pool thread. Microsoft.Data.Sqlite
    /// runs its async methods synchronously, so without this hop the journal's write stream is blocked for the
    /// whole transaction and hands each actor's write to SQLite on its own; with it, writes that arrive while a
    /// transaction runs queue up in the stream's batch stage and go into the next transaction together (group
    /// commit across actors, up to the journal's batch-size).
    /// </summary>
    public async Task ConnectionOpeningAsync(ConnectionEventData eventData, DbConnection connection, CancellationToken cancellationToken) =>
        await default(ThreadPoolHop);

    /// <summary>An awaitable that always continues on the thread pool.</summary>
    private readonly struct ThreadPoolHop : System.Runtime.CompilerServices.INotifyCompletion
    {
        public ThreadPoolHop GetAwaiter() => this;

        public bool IsCompleted => false;

        public void OnCompleted(Action continuation) =>
            ThreadPool.QueueUserWorkItem(static c => c(), continuation, preferLocal: false);

        public void GetResult()
        {
        }
    }

    public void ConnectionOpened(ConnectionEventData eventData, DbConnection connection)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = Pragmas;
        cmd.ExecuteNonQuery();
        Interlocked.Increment(ref _configured);
    }

    public async Task ConnectionOpenedAsync(ConnectionEventData eventData, DbConnection connection, CancellationToken cancellationToken)
    {
        var cmd = connection.CreateCommand();
        await using (cmd.ConfigureAwait(false))
        {
            cmd.CommandText = Pragmas;
            await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        Interlocked.Increment(ref _configured);
    }
}
