namespace PtActors.Persistence.Sqlite;

/// <summary>The SQLite database file cannot be used (unwritable path, a directory, not a database, WAL refused).</summary>
public sealed class SqliteDatabaseException : Exception
{
    public SqliteDatabaseException(string path, string reason, Exception? inner = null)
        : base($"SQLite database '{path}': {reason}", inner)
    {
        DatabasePath = path;
        Reason = reason;
    }

    /// <summary>The database path as given, or its full form once resolved.</summary>
    public string DatabasePath { get; }

    public string Reason { get; }
}
