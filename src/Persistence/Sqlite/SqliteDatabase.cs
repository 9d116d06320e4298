using Akka.Persistence.Sql.Config;
using LinqToDB;
using Microsoft.Data.Sqlite;

namespace PtActors.Persistence.Sqlite;

/// <summary>Preparing and inspecting the SQLite file that holds the journal and snapshots.</summary>
public static class SqliteDatabase
{
    /// <summary>The file used when nothing else is configured (relative to the working directory).</summary>
    public const string DefaultFileName = "ptactors.db";

    /// <summary>The linq2db provider name Akka.Persistence.Sql uses for Microsoft.Data.Sqlite.</summary>
    public const string ProviderName = LinqToDB.ProviderName.SQLiteMS;

    /// <summary>
    /// Makes <paramref name="path"/> ready before an ActorSystem uses it: creates its directory and the
    /// file, checks that it is a writable SQLite database and switches it to WAL mode (a property of
    /// the file, kept across connections). Returns the full path. Throws <see cref="SqliteDatabaseException"/>
    /// naming the path when any of that fails.
    /// </summary>
    public static string Prepare(string path)
    {
        if (string.IsNullOrWhiteSpace(path))
            throw new SqliteDatabaseException(path ?? string.Empty, "the path is empty");
        string full;
        try
        {
            full = Path.GetFullPath(path);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException or IOException)
        {
            throw new SqliteDatabaseException(path, $"not a usable path: {e.Message}", e);
        }
        if (Directory.Exists(full))
            throw new SqliteDatabaseException(full, "is a directory, not a database file");
        string? dir = Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(dir))
        {
            try
            {
                Directory.CreateDirectory(dir);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new SqliteDatabaseException(full, $"cannot create its directory '{dir}': {e.Message}", e);
            }
        }
        try
        {
            var csb = new SqliteConnectionStringBuilder
            {
                DataSource = full,
                Mode = SqliteOpenMode.ReadWriteCreate,
                Pooling = false, // close the file when done, before the ActorSystem opens it
            };
            using var conn = new SqliteConnection(csb.ToString());
            conn.Open();
            // A write proves the file is a writable database (the OS may have opened it read-only).
            long userVersion = Convert.ToInt64(Scalar(conn, "PRAGMA user_version;"), System.Globalization.CultureInfo.InvariantCulture);
            Execute(conn, $"PRAGMA user_version = {userVersion};");
            string mode = Convert.ToString(Scalar(conn, "PRAGMA journal_mode=WAL;"), System.Globalization.CultureInfo.InvariantCulture) ?? string.Empty;
            if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
                throw new SqliteDatabaseException(full, $"SQLite refused WAL mode (journal_mode is '{mode}'); WAL needs a local file system");
        }
        catch (SqliteException e)
        {
            throw new SqliteDatabaseException(full, $"cannot be opened for writing (SQLite error {e.SqliteErrorCode}: {e.Message})", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SqliteDatabaseException(full, $"cannot be opened for writing: {e.Message}", e);
        }
        return full;
    }

    /// <summary>The Microsoft.Data.Sqlite connection string for a database file (quoting the path where needed).</summary>
    public static string ConnectionString(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return new SqliteConnectionStringBuilder { DataSource = path }.ToString();
    }

    /// <summary>
    /// A read-only connection string for a reader (<c>runs</c>, <c>verify</c>) that must not change anything beside
    /// the file: <c>immutable=1</c> (no locks, no <c>-wal</c> or <c>-shm</c> created) when no non-empty
    /// <c>-wal</c> lies beside it, else plain read-only (the caller reads a private copy of such a file: a read-only
    /// connection still creates a <c>-shm</c> next to the database).
    /// </summary>
    public static string ReadOnlyConnectionString(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = Path.GetFullPath(path);
        var wal = new FileInfo(full + "-wal");
        string source = wal.Exists && wal.Length > 0 ? full : ImmutableUri(full);
        return new SqliteConnectionStringBuilder { DataSource = source, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString();
    }

    /// <summary>An SQLite URI for <paramref name="fullPath"/> with <c>immutable=1</c> (every byte but unreserved ones and '/' percent-encoded).</summary>
    private static string ImmutableUri(string fullPath)
    {
        var sb = new System.Text.StringBuilder("file:");
        foreach (byte b in System.Text.Encoding.UTF8.GetBytes(fullPath.Replace('\\', '/')))
        {
            char c = (char)b;
            if (c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '/' or '.' or '-' or '_' or '~')
                sb.Append(c);
            else
                sb.Append('%').Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
        }
        return sb.Append("?immutable=1").ToString();
    }

    /// <summary>The file's journal mode as SQLite reports it ("wal" after <see cref="Prepare"/>).</summary>
    public static string ReadJournalMode(string path)
    {
        var csb = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadOnly, Pooling = false };
        using var conn = new SqliteConnection(csb.ToString());
        conn.Open();
        return Convert.ToString(Scalar(conn, "PRAGMA journal_mode;"), System.Globalization.CultureInfo.InvariantCulture) ?? string.Empty;
    }

    /// <summary>
    /// linq2db options for the SQL plugins on this file: the same connection string and provider as
    /// the HOCON, plus <paramref name="interceptor"/> (synchronous=NORMAL on every connection).
    /// </summary>
    public static DataOptions DataOptions(string path, SqlitePragmaInterceptor interceptor) =>
        DataOptionsFor(ConnectionString(path), interceptor);

    private static DataOptions DataOptionsFor(string connectionString, SqlitePragmaInterceptor interceptor)
    {
        ArgumentNullException.ThrowIfNull(interceptor);
        return new DataOptions()
            .UseConnectionString(ProviderName, connectionString)
            .UseInterceptor(interceptor);
    }

    /// <summary>
    /// The ActorSystem setup that hands <see cref="DataOptions"/> to the SQL journal, snapshot store
    /// and read journal (Akka.Persistence.Sql looks them up by plugin id).
    /// </summary>
    public static MultiDataOptionsSetup DataOptionsSetup(string path, SqlitePragmaInterceptor interceptor) =>
        DataOptionsSetupFor(ConnectionString(path), interceptor);

    /// <summary><see cref="DataOptionsSetup"/> for a given connection string (e.g. <see cref="ReadOnlyConnectionString"/>).</summary>
    public static MultiDataOptionsSetup DataOptionsSetupFor(string connectionString, SqlitePragmaInterceptor interceptor)
    {
        var options = DataOptionsFor(connectionString, interceptor);
        var setup = new MultiDataOptionsSetup();
        setup.AddDataOptions(PersistenceConfig.SqlJournalId, options);
        setup.AddDataOptions(PersistenceConfig.SqlSnapshotStoreId, options);
        setup.AddDataOptions(PersistenceConfig.SqlReadJournalId, options);
        return setup;
    }

    private static object? Scalar(SqliteConnection conn, string sql)
    {
        using var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar();
    }

    private static void Execute(SqliteConnection conn, string sql)
    {
        using var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }
}
