using Akka.Actor;
using Akka.Actor.Setup;
using Akka.Configuration;
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
    public static ActorSystemSetup CreateSetup(PersistenceBackend backend, Config? extra = null, SqlitePragmaInterceptor? interceptor = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (backend.Kind == PersistenceBackendKind.Sqlite)
        {
            string full = SqliteDatabase.Prepare(backend.Target!);
            var config = WithExtra(PersistenceConfig.Sqlite(full), extra);
            return ActorSystemSetup.Create(
                BootstrapSetup.Create().WithConfig(config),
                SqliteDatabase.DataOptionsSetup(full, interceptor ?? new SqlitePragmaInterceptor()));
        }
        return ActorSystemSetup.Create(BootstrapSetup.Create().WithConfig(WithExtra(PersistenceConfig.For(backend), extra)));
    }

    /// <summary>An ActorSystem named <paramref name="name"/> on <paramref name="backend"/> (see <see cref="CreateSetup"/>).</summary>
    public static ActorSystem Create(string name, PersistenceBackend backend, Config? extra = null, SqlitePragmaInterceptor? interceptor = null) =>
        ActorSystem.Create(name, CreateSetup(backend, extra, interceptor));

    private static Config WithExtra(Config config, Config? extra) =>
        extra is null || extra.IsEmpty ? config : extra.WithFallback(config);
}
