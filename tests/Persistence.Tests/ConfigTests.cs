using Akka.Configuration;
using Microsoft.Data.Sqlite;
using PtActors.Persistence.Sqlite;
using Xunit;

namespace PtActors.Persistence.Tests;

public sealed class ConfigTests
{
    [Fact]
    public void Every_config_file_is_embedded_and_copied_unchanged()
    {
        var names = PersistenceConfig.TemplateNames;
        foreach (var n in new[] { PersistenceConfig.SqliteTemplate, PersistenceConfig.PostgresTemplate, PersistenceConfig.InMemoryTemplate,
                     PersistenceConfig.TestTemplate, PersistenceConfig.SerializationTemplate })
        {
            Assert.Contains(n, names);
            string copied = Path.Combine(AppContext.BaseDirectory, "config", n);
            Assert.True(File.Exists(copied), copied);
            Assert.Equal(File.ReadAllText(copied), PersistenceConfig.Template(n));
        }
        Assert.Throws<ArgumentException>(() => PersistenceConfig.Template("nope.conf"));
    }

    [Fact]
    public void Sqlite_config_has_one_writer_and_the_sql_plugins()
    {
        var c = PersistenceConfig.Sqlite("/tmp/x/run.db");
        Assert.Equal(PersistenceConfig.SqlJournalId, c.GetString("akka.persistence.journal.plugin"));
        Assert.Equal(PersistenceConfig.SqlSnapshotStoreId, c.GetString("akka.persistence.snapshot-store.plugin"));
        Assert.Equal(1, c.GetInt("akka.persistence.journal.sql.parallelism"));
        Assert.Equal("SQLite.MS", c.GetString("akka.persistence.journal.sql.provider-name"));
        Assert.Equal("SQLite.MS", c.GetString("akka.persistence.snapshot-store.sql.provider-name"));
        Assert.Equal("SQLite.MS", c.GetString("akka.persistence.query.journal.sql.provider-name"));
        Assert.True(c.GetBoolean("akka.persistence.journal.sql.auto-initialize"));
        Assert.Equal("Data Source=/tmp/x/run.db", c.GetString("akka.persistence.journal.sql.connection-string"));
        // serializer bindings come with every backend
        Assert.Equal("ptb", c.GetString("akka.actor.serialization-bindings.\"PtActors.Persistence.Serialization.IPtPersistable, PtActors.Persistence\""));
    }

    [Theory]
    [InlineData("plain.db")]
    [InlineData("with space/and;semicolon.db")]
    [InlineData("quote\"double and 'single'.db")]
    [InlineData("back\\slash ${not.a.substitution} #hash // slashes.db")]
    [InlineData("ünïcödé 日本 🧪.db")]
    [InlineData("tab\there.db")]
    public void Paths_survive_hocon_and_connection_string_escaping(string name)
    {
        string path = Path.Combine("/tmp", "ptactors dir", name);
        var c = PersistenceConfig.Sqlite(path);
        foreach (var key in new[] { "akka.persistence.journal.sql", "akka.persistence.snapshot-store.sql", "akka.persistence.query.journal.sql" })
        {
            var cs = new SqliteConnectionStringBuilder(c.GetString(key + ".connection-string"));
            Assert.Equal(Path.GetFullPath(path), cs.DataSource);
        }
    }

    [Fact]
    public void Hocon_escape_handles_every_control_character()
    {
        string all = new([.. Enumerable.Range(0, 0x80).Select(i => (char)i)]);
        var c = ConfigurationFactory.ParseString("v = " + PersistenceConfig.HoconQuote(all));
        Assert.Equal(all, c.GetString("v"));
    }

    [Fact]
    public void Postgres_config_keeps_the_connection_string()
    {
        const string cs = "Host=127.0.0.1;Port=5432;Database=pt;Username=pt;Password=p\"a;ss\\word";
        var c = PersistenceConfig.Postgres(cs);
        Assert.Equal(cs, c.GetString("akka.persistence.journal.sql.connection-string"));
        Assert.Equal("PostgreSQL.15", c.GetString("akka.persistence.journal.sql.provider-name"));
        Assert.Equal("PostgreSQL.15", c.GetString("akka.persistence.query.journal.sql.provider-name"));
        Assert.DoesNotContain("Password", PersistenceBackend.Postgres(cs).ToString());
    }

    [Fact]
    public void In_memory_and_test_configs_select_their_plugins()
    {
        Assert.Equal(PersistenceConfig.InMemoryJournalId, PersistenceConfig.InMemory().GetString("akka.persistence.journal.plugin"));
        Assert.Equal(PersistenceConfig.InMemorySnapshotStoreId, PersistenceConfig.InMemory().GetString("akka.persistence.snapshot-store.plugin"));
        Assert.Equal(PersistenceConfig.TestJournalId, PersistenceConfig.Test().GetString("akka.persistence.journal.plugin"));
        Assert.Equal(PersistenceConfig.TestSnapshotStoreId, PersistenceConfig.Test().GetString("akka.persistence.snapshot-store.plugin"));
        Assert.Equal(PersistenceConfig.SqlJournalId, PersistenceConfig.For(PersistenceBackend.Default).GetString("akka.persistence.journal.plugin"));
        Assert.EndsWith(SqliteDatabase.DefaultFileName, PersistenceBackend.Default.Target);
    }

    [Fact]
    public void Persistence_ids_are_run_slash_domain()
    {
        Assert.Equal("run-1/dom0", PersistenceIds.For("run-1", "dom0"));
        Assert.True(PersistenceIds.TryParse("run-1/dom0", out var r, out var d));
        Assert.Equal(("run-1", "dom0"), (r, d));
        Assert.Equal("run-1/", PersistenceIds.RunPrefix("run-1"));
        foreach (var bad in new[] { "", "a/b", "a b", "..", ".", new string('a', 65), "é" })
        {
            Assert.Throws<ArgumentException>(() => PersistenceIds.For(bad, "d"));
            Assert.Throws<ArgumentException>(() => PersistenceIds.For("r", bad));
        }
        Assert.False(PersistenceIds.TryParse("runs", out _, out _));
        Assert.False(PersistenceIds.TryParse("a/b/c", out _, out _));
    }
}

public sealed class SqliteDatabaseTests
{
    [Fact]
    public void Prepare_creates_the_directory_and_sets_wal()
    {
        using var dir = new TempDir();
        string path = dir.File("sub/dir/pt.db");
        string full = SqliteDatabase.Prepare(path);
        Assert.Equal(Path.GetFullPath(path), full);
        Assert.True(File.Exists(full));
        Assert.Equal("wal", SqliteDatabase.ReadJournalMode(full));
        // idempotent
        Assert.Equal(full, SqliteDatabase.Prepare(path));
        Assert.Equal("wal", SqliteDatabase.ReadJournalMode(full));
    }

    [Fact]
    public void A_parent_that_is_a_file_is_reported_with_the_path()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("file"), "x");
        string path = dir.File("file/pt.db");
        var e = Assert.Throws<SqliteDatabaseException>(() => SqliteDatabase.Prepare(path));
        Assert.Equal(path, e.DatabasePath);
        Assert.Contains(path, e.Message);
        Assert.Contains("cannot create its directory", e.Message);
    }

    [Fact]
    public void A_directory_is_reported()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<SqliteDatabaseException>(() => SqliteDatabase.Prepare(dir.Path));
        Assert.Contains(dir.Path, e.Message);
        Assert.Contains("is a directory", e.Message);
    }

    [Fact]
    public void A_file_that_is_not_a_database_is_reported()
    {
        using var dir = new TempDir();
        string path = dir.File("notes.db");
        File.WriteAllText(path, new string('x', 5000));
        var e = Assert.Throws<SqliteDatabaseException>(() => SqliteDatabase.Prepare(path));
        Assert.Contains(path, e.Message);
        Assert.IsType<SqliteException>(e.InnerException);
    }

    [Fact]
    public void An_unwritable_location_is_reported()
    {
        // /proc refuses new files even for root.
        const string path = "/proc/ptactors-test/pt.db";
        var e = Assert.Throws<SqliteDatabaseException>(() => SqliteDatabase.Prepare(path));
        Assert.Contains(path, e.Message);
        Assert.Throws<SqliteDatabaseException>(() => SqliteDatabase.Prepare("  "));
    }
}
