using PtActors.Persistence.Postgres;
using PtActors.Persistence.Sqlite;

namespace PtActors.Persistence;

public enum PersistenceBackendKind
{
    /// <summary>Akka.Persistence.Sql on a SQLite file (the default).</summary>
    Sqlite,

    /// <summary>Akka.Persistence.Sql on PostgreSQL (the application must reference Npgsql).</summary>
    Postgres,

    /// <summary>Akka's in-memory journal and snapshot store: nothing on disk (--in-memory).</summary>
    InMemory,

    /// <summary>Akka.Persistence.TestKit's TestJournal and TestSnapshotStore, for fault injection in tests.</summary>
    Test,
}

/// <summary>Where the journal and snapshots go. <see cref="Target"/> is the SQLite path or the PostgreSQL connection string.</summary>
public sealed record PersistenceBackend
{
    private PersistenceBackend(PersistenceBackendKind kind, string? target)
    {
        Kind = kind;
        Target = target;
    }

    public PersistenceBackendKind Kind { get; }

    public string? Target { get; }

    /// <summary>The default: a SQLite file <c>ptactors.db</c> in the working directory.</summary>
    public static PersistenceBackend Default => Sqlite(SqliteDatabase.DefaultFileName);

    public static PersistenceBackend InMemory { get; } = new(PersistenceBackendKind.InMemory, null);

    public static PersistenceBackend Test { get; } = new(PersistenceBackendKind.Test, null);

    public static PersistenceBackend Sqlite(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        return new(PersistenceBackendKind.Sqlite, path);
    }

    public static PersistenceBackend Postgres(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        return new(PersistenceBackendKind.Postgres, connectionString);
    }

    /// <summary>
    /// For output: the SQLite path, the PostgreSQL connection string with its password masked
    /// (<see cref="PostgresDatabase.Mask"/>), or <c>in-memory</c>.
    /// </summary>
    public string Describe() => Kind switch
    {
        PersistenceBackendKind.Sqlite => Target!,
        PersistenceBackendKind.Postgres => "postgres:" + PostgresDatabase.Mask(Target),
        PersistenceBackendKind.InMemory => "in-memory",
        _ => "test-journal",
    };

    /// <summary>For logs: the SQLite path, never a PostgreSQL connection string (it may hold a password).</summary>
    public override string ToString() => Kind switch
    {
        PersistenceBackendKind.Sqlite => $"sqlite:{Target}",
        PersistenceBackendKind.Postgres => "postgres",
        PersistenceBackendKind.InMemory => "in-memory",
        _ => "test-journal",
    };
}
