using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
using Akka.Persistence;
using PtActors.Persistence.Postgres;
using PtActors.Persistence.Sqlite;

namespace PtActors.Persistence;

/// <summary>Starting an ActorSystem on a persistence backend, with everything the backend needs set up first.</summary>
public static class PersistentActorSystem
{
    /// <summary>
    /// The setup for an ActorSystem on <paramref name="backend"/>: its HOCON (with <paramref name="extra"/>
    /// taking precedence) and, for SQLite, the prepared file (WAL; <see cref="SqliteDatabase.Prepare"/>
    /// throws <see cref="SqliteDatabaseException"/> for an unusable path) and the linq2db options that
    /// set synchronous=NORMAL per connection through <paramref name="interceptor"/> (a new one if null).
    /// </summary>
    public static ActorSystemSetup CreateSetup(PersistenceBackend backend, Config? extra = null, SqlitePragmaInterceptor? interceptor = null,
        bool forReading = false)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (backend.Kind == PersistenceBackendKind.Sqlite)
        {
            // A reader (runs, verify) must not change the file nor anything beside it: no preparing write, no mode
            // switch, no table creation, a read-only connection (immutable when no -wal lies beside the file; the
            // caller checked that it is a ptactors database and reads a private copy of one with a -wal).
            if (forReading)
            {
                string readOnly = SqliteDatabase.ReadOnlyConnectionString(backend.Target!);
                var readerConfig = WithExtra(PersistenceConfig.SqliteConnection(readOnly),
                    ConfigurationFactory.ParseString(
                        $"{PersistenceConfig.SqlJournalId}.auto-initialize = off\n{PersistenceConfig.SqlSnapshotStoreId}.auto-initialize = off"));
                return ActorSystemSetup.Create(
                    BootstrapSetup.Create().WithConfig(WithExtra(readerConfig, extra)),
                    SqliteDatabase.DataOptionsSetupFor(readOnly, interceptor ?? new SqlitePragmaInterceptor()));
            }
            string full = SqliteDatabase.Prepare(backend.Target!);
            var config = WithExtra(PersistenceConfig.Sqlite(full), extra);
            return ActorSystemSetup.Create(
                BootstrapSetup.Create().WithConfig(config),
                SqliteDatabase.DataOptionsSetup(full, interceptor ?? new SqlitePragmaInterceptor()));
        }
        if (backend.Kind == PersistenceBackendKind.Postgres && forReading)
        {
            // A reader creates no table and every one of its transactions is read-only (the server refuses a write).
            var readerConfig = WithExtra(PersistenceConfig.Postgres(PostgresDatabase.ReadOnlyConnectionString(backend.Target!)), NoAutoInitialize);
            return ActorSystemSetup.Create(BootstrapSetup.Create().WithConfig(WithExtra(readerConfig, extra)));
        }
        return ActorSystemSetup.Create(BootstrapSetup.Create().WithConfig(WithExtra(PersistenceConfig.For(backend), extra)));
    }

    private static readonly Config NoAutoInitialize = ConfigurationFactory.ParseString(
        $"{PersistenceConfig.SqlJournalId}.auto-initialize = off\n{PersistenceConfig.SqlSnapshotStoreId}.auto-initialize = off");

    /// <summary>An ActorSystem named <paramref name="name"/> on <paramref name="backend"/> (see <see cref="CreateSetup"/>).</summary>
    public static ActorSystem Create(string name, PersistenceBackend backend, Config? extra = null, SqlitePragmaInterceptor? interceptor = null,
        bool forReading = false)
    {
        var system = ActorSystem.Create(name, CreateSetup(backend, extra, interceptor, forReading));
        StartScheduler(system);
        return system;
    }

    /// <summary>
    /// Starts the scheduler's timer now, from the calling thread. Akka starts it on first use and blocks the
    /// caller until its worker runs; when that first use is a burst of persistent actors starting recovery on
    /// every thread-pool thread (each schedules its recovery timeout), the worker waits for the pool to grow
    /// and the run stalls for ~10 s. One throwaway registration here avoids that.
    /// </summary>
    public static void StartScheduler(ActorSystem system)
    {
        ArgumentNullException.ThrowIfNull(system);
        system.Scheduler.Advanced.ScheduleOnceCancelable(TimeSpan.FromDays(1), static () => { }).Cancel();
    }

    /// <summary>The persistence id <see cref="ReadyAsync"/> reads; never written (no run's id lacks the '/').</summary>
    public const string ReadyProbeId = "ptactors-ready";

    /// <summary>
    /// Waits until the journal and the snapshot store of <paramref name="system"/> answer a read (for SQLite: the
    /// file is open, its tables exist and its queries are prepared), so that a run starts on a backend that works;
    /// one that cannot answer fails here, with its own error, before anything of the run happened.
    /// </summary>
    public static async Task ReadyAsync(ActorSystem system, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(system);
        var persistence = Akka.Persistence.Persistence.Instance.Apply(system);
        var journal = persistence.JournalFor(null);
        var snapshots = persistence.SnapshotStoreFor(null);
        var replayed = journal.Ask<object>((IActorRef to) => new ReplayMessages(0, long.MaxValue, long.MaxValue, ReadyProbeId, to), timeout, CancellationToken.None);
        var loaded = snapshots.Ask<object>(new LoadSnapshot(ReadyProbeId, SnapshotSelectionCriteria.Latest, long.MaxValue), timeout);
        Expect<RecoverySuccess>(await replayed.ConfigureAwait(false), "the journal", static r => (r as ReplayMessagesFailure)?.Cause);
        Expect<LoadSnapshotResult>(await loaded.ConfigureAwait(false), "the snapshot store", static r => (r as LoadSnapshotFailed)?.Cause);
    }

    /// <summary>Throws unless <paramref name="reply"/> is a <typeparamref name="TOk"/>, naming <paramref name="part"/> and the failure's cause.</summary>
    private static void Expect<TOk>(object reply, string part, Func<object, Exception?> causeOf)
    {
        if (reply is TOk)
            return;
        if (causeOf(reply) is { } cause)
            throw new InvalidOperationException($"{part} cannot be read: {cause.Message}", cause);
        throw new InvalidOperationException($"{part} answered a read with {reply.GetType().Name}");
    }

    private static Config WithExtra(Config config, Config? extra) =>
        extra is null || extra.IsEmpty ? config : extra.WithFallback(config);
}
