using System.Globalization;
using System.Reflection;
using System.Text;
using Akka.Configuration;
using PtActors.Persistence.Sqlite;

namespace PtActors.Persistence;

/// <summary>
/// The HOCON for each persistence backend. The text lives in the repository's config/*.conf (embedded
/// in this assembly and copied to config/ beside it); this class fills the placeholders and adds the
/// serializer bindings (config/persistence-serialization.conf) to every backend.
/// </summary>
public static class PersistenceConfig
{
    public const string SqlJournalId = "akka.persistence.journal.sql";
    public const string SqlSnapshotStoreId = "akka.persistence.snapshot-store.sql";
    public const string SqlReadJournalId = "akka.persistence.query.journal.sql";
    public const string InMemoryJournalId = "akka.persistence.journal.inmem";
    public const string InMemorySnapshotStoreId = "akka.persistence.snapshot-store.inmem";
    public const string TestJournalId = "akka.persistence.journal.test";
    public const string TestSnapshotStoreId = "akka.persistence.snapshot-store.test";

    public const string SqliteTemplate = "persistence-sqlite.conf";
    public const string PostgresTemplate = "persistence-postgres.conf";
    public const string InMemoryTemplate = "persistence-inmem.conf";
    public const string TestTemplate = "persistence-test.conf";
    public const string SerializationTemplate = "persistence-serialization.conf";

    /// <summary>The placeholder in the SQL templates, inside a quoted HOCON string.</summary>
    public const string ConnectionStringPlaceholder = "{connection-string}";

    private const string ResourcePrefix = "PtActors.Persistence.config.";

    /// <summary>The names of the embedded config files.</summary>
    public static IReadOnlyList<string> TemplateNames { get; } =
        [.. typeof(PersistenceConfig).Assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal))
            .Select(n => n[ResourcePrefix.Length..])
            .Order(StringComparer.Ordinal)];

    /// <summary>The text of an embedded config file, e.g. <see cref="SqliteTemplate"/>.</summary>
    public static string Template(string fileName)
    {
        ArgumentException.ThrowIfNullOrEmpty(fileName);
        using var stream = typeof(PersistenceConfig).Assembly.GetManifestResourceStream(ResourcePrefix + fileName)
            ?? throw new ArgumentException($"no embedded config '{fileName}' (have: {string.Join(", ", TemplateNames)})", nameof(fileName));
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    /// <summary>The serializer and its bindings (PtSerializer for every IPtPersistable); part of every backend's config.</summary>
    public static Config Serialization() => ConfigurationFactory.ParseString(Template(SerializationTemplate));

    /// <summary>
    /// Journal, snapshot store and read journal on the SQLite file <paramref name="dbPath"/> (made
    /// absolute). Pure: call <see cref="SqliteDatabase.Prepare"/> (or use <see cref="PersistentActorSystem"/>) before starting a system on it.
    /// </summary>
    public static Config Sqlite(string dbPath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(dbPath);
        return SqliteConnection(SqliteDatabase.ConnectionString(Path.GetFullPath(dbPath)));
    }

    /// <summary>
    /// Journal, snapshot store and read journal on SQLite through <paramref name="connectionString"/> (e.g. a
    /// read-only one, <see cref="SqliteDatabase.ReadOnlyConnectionString"/>).
    /// </summary>
    public static Config SqliteConnection(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        return Parse(FillConnectionString(Template(SqliteTemplate), connectionString));
    }

    /// <summary>Journal, snapshot store and read journal on PostgreSQL (provider PostgreSQL.15; needs Npgsql at run time).</summary>
    public static Config Postgres(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        return Parse(FillConnectionString(Template(PostgresTemplate), connectionString));
    }

    /// <summary>Akka's in-memory journal and snapshot store.</summary>
    public static Config InMemory() => Parse(Template(InMemoryTemplate));

    /// <summary>TestJournal and TestSnapshotStore (Akka.Persistence.TestKit) for fault injection.</summary>
    public static Config Test() => Parse(Template(TestTemplate));

    /// <summary>The config of <paramref name="backend"/> (serializer bindings included).</summary>
    public static Config For(PersistenceBackend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        return backend.Kind switch
        {
            PersistenceBackendKind.Sqlite => Sqlite(backend.Target!),
            PersistenceBackendKind.Postgres => Postgres(backend.Target!),
            PersistenceBackendKind.InMemory => InMemory(),
            PersistenceBackendKind.Test => Test(),
            _ => throw new ArgumentOutOfRangeException(nameof(backend), backend.Kind, "unknown backend"),
        };
    }

    /// <summary>
    /// <paramref name="value"/> escaped for the inside of a double-quoted HOCON string: backslash, quote
    /// and every control character are escaped, so any path or connection string survives parsing.
    /// </summary>
    public static string HoconEscape(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var sb = new StringBuilder(value.Length + 8);
        foreach (char c in value)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || c == 0x7F)
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else
                        sb.Append(c);
                    break;
            }
        }
        return sb.ToString();
    }

    /// <summary><paramref name="value"/> as a double-quoted HOCON string.</summary>
    public static string HoconQuote(string value) => "\"" + HoconEscape(value) + "\"";

    private static string FillConnectionString(string template, string connectionString)
    {
        if (!template.Contains(ConnectionStringPlaceholder, StringComparison.Ordinal))
            throw new InvalidOperationException($"config template lacks the {ConnectionStringPlaceholder} placeholder");
        return template.Replace(ConnectionStringPlaceholder, HoconEscape(connectionString), StringComparison.Ordinal);
    }

    private static Config Parse(string hocon) =>
        ConfigurationFactory.ParseString(hocon).WithFallback(Serialization());
}
