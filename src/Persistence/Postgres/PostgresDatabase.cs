using System.Net.Sockets;
using Npgsql;

namespace PtActors.Persistence.Postgres;

/// <summary>
/// Checking a PostgreSQL connection string before an ActorSystem uses it, and showing it without its password.
/// Every message here names the server (host, port, database, user) and never the password.
/// </summary>
public static class PostgresDatabase
{
    /// <summary>The linq2db provider name Akka.Persistence.Sql uses for PostgreSQL 15 (config/persistence-postgres.conf).</summary>
    public const string ProviderName = "PostgreSQL.15";

    /// <summary>What a connection check found.</summary>
    public enum Problem
    {
        None,

        /// <summary>The text is not an Npgsql connection string.</summary>
        BadConnectionString,

        /// <summary>No server answered (refused, unknown host, timeout).</summary>
        Unreachable,

        /// <summary>The server refused the user or the password.</summary>
        AuthenticationFailed,

        /// <summary>The server has no database of that name.</summary>
        DatabaseMissing,

        /// <summary>The database holds no ptactors journal (a reader found no journal table).</summary>
        NotAPtactorsDatabase,

        /// <summary>Anything else the server or the driver reported.</summary>
        Other,
    }

    /// <summary>
    /// <paramref name="connectionString"/> with its password replaced by <c>***</c> (and nothing but the parsed keys),
    /// for messages and logs; a text that does not parse is shown as <c>(not a connection string)</c>, since it may
    /// hold a password where the parser could not find it.
    /// </summary>
    public static string Mask(string? connectionString)
    {
        if (string.IsNullOrWhiteSpace(connectionString))
            return "(empty)";
        try
        {
            var b = new NpgsqlConnectionStringBuilder(connectionString);
            if (!string.IsNullOrEmpty(b.Password))
                b.Password = "***";
            if (!string.IsNullOrEmpty(b.Passfile))
                b.Passfile = "***";
            return b.ConnectionString;
        }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidCastException or OverflowException)
        {
            return "(not a connection string)";
        }
    }

    /// <summary>The connection string a reader (<c>runs</c>, <c>verify</c>) uses: every transaction read-only.</summary>
    public static string ReadOnlyConnectionString(string connectionString)
    {
        var b = new NpgsqlConnectionStringBuilder(connectionString);
        const string readOnly = "-c default_transaction_read_only=on";
        b.Options = string.IsNullOrWhiteSpace(b.Options) ? readOnly : b.Options + " " + readOnly;
        return b.ConnectionString;
    }

    /// <summary>
    /// Opens one connection to <paramref name="connectionString"/> and closes it: <see cref="Problem.None"/> when the
    /// server answers and lets the user into the database; else the problem and one line saying it (naming the
    /// server, never the password). With <paramref name="forReading"/>, the database must also hold a journal table.
    /// </summary>
    public static async Task<(Problem Problem, string? Why)> CheckAsync(string connectionString, bool forReading,
        CancellationToken cancellationToken = default)
    {
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidCastException or OverflowException)
        {
            return (Problem.BadConnectionString, "not an Npgsql connection string (Host=...;Port=...;Username=...;Password=...;Database=...)");
        }
        if (string.IsNullOrWhiteSpace(builder.Host))
            return (Problem.BadConnectionString, "the connection string names no Host");
        string password = builder.Password ?? string.Empty;
        string server = $"{builder.Host}:{builder.Port}";
        string database = string.IsNullOrEmpty(builder.Database) ? builder.Username ?? "(default)" : builder.Database;
        builder.Pooling = false; // a check leaves no connection behind
        if (builder.Timeout > 15)
            builder.Timeout = 15;
        try
        {
            var conn = new NpgsqlConnection(builder.ConnectionString);
            await using (conn.ConfigureAwait(false))
            {
                await conn.OpenAsync(cancellationToken).ConfigureAwait(false);
                if (!forReading)
                    return (Problem.None, null);
                var cmd = conn.CreateCommand();
                await using (cmd.ConfigureAwait(false))
                {
                    cmd.CommandText = "SELECT to_regclass('journal') IS NOT NULL";
                    bool hasJournal = (bool)(await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
                    return hasJournal
                        ? (Problem.None, null)
                        : (Problem.NotAPtactorsDatabase, $"database '{database}' on {server} holds no ptactors journal (no table 'journal')");
                }
            }
        }
        catch (PostgresException e)
        {
            return e.SqlState switch
            {
                PostgresErrorCodes.InvalidPassword or PostgresErrorCodes.InvalidAuthorizationSpecification =>
                    (Problem.AuthenticationFailed, $"authentication failed for user '{builder.Username}' on {server}"),
                PostgresErrorCodes.InvalidCatalogName =>
                    (Problem.DatabaseMissing, $"database '{database}' does not exist on {server}"),
                _ => (Problem.Other, Scrub($"{server}: {e.SqlState}: {e.MessageText}", password)),
            };
        }
        catch (NpgsqlException e) when (IsUnreachable(e))
        {
            return (Problem.Unreachable, Scrub($"cannot reach a PostgreSQL server at {server}: {Innermost(e).Message}", password));
        }
        catch (NpgsqlException e) when (e.Message.Contains("password", StringComparison.OrdinalIgnoreCase))
        {
            // Npgsql's own refusal before asking the server, e.g. "No password has been provided but the backend requires one".
            return (Problem.AuthenticationFailed, Scrub($"authentication failed for user '{builder.Username}' on {server}: {e.Message}", password));
        }
        catch (Exception e) when (e is NpgsqlException or SocketException or TimeoutException or IOException or InvalidOperationException or ArgumentException)
        {
            return (Problem.Other, Scrub($"{server}: {Innermost(e).Message}", password));
        }
    }

    /// <summary>Closes every pooled PostgreSQL connection (after an ActorSystem on PostgreSQL terminated).</summary>
    public static void ClearPools() => NpgsqlConnection.ClearAllPools();

    private static bool IsUnreachable(NpgsqlException e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            if (x is SocketException or TimeoutException)
                return true;
        }
        return e.Message.Contains("Failed to connect", StringComparison.OrdinalIgnoreCase)
            || e.Message.Contains("timeout", StringComparison.OrdinalIgnoreCase);
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null)
            e = e.InnerException;
        return e;
    }

    /// <summary><paramref name="message"/> on one line, with the password of <paramref name="connectionString"/> (if any) replaced by <c>***</c>.</summary>
    public static string Redact(string message, string? connectionString)
    {
        string password = string.Empty;
        try
        {
            password = new NpgsqlConnectionStringBuilder(connectionString ?? string.Empty).Password ?? string.Empty;
        }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidCastException or OverflowException)
        {
            // Not parsable: the CLI refuses such a value before any message could quote it.
        }
        return Scrub(message, password);
    }

    /// <summary>One line, without <paramref name="password"/> (a driver message might quote the connection string).</summary>
    internal static string Scrub(string message, string password)
    {
        string line = message.ReplaceLineEndings(" ");
        return password.Length > 0 ? line.Replace(password, "***", StringComparison.Ordinal) : line;
    }
}
