using System.Diagnostics;
using Npgsql;
using Xunit;

namespace PtActors.Tests.Shared;

/// <summary>
/// A real PostgreSQL server for the tests, never a mock: the one whose connection string is in
/// <c>PTACTORS_TEST_POSTGRES</c> (.ci/run starts it with .ci/postgres.sh), else one this fixture starts itself with
/// .ci/postgres.sh in a temporary directory (when initdb is installed) and stops and deletes on dispose. Each test
/// takes a database of its own (<see cref="CreateDatabase"/>).
/// </summary>
public sealed class PostgresServer : IDisposable
{
    /// <summary>The connection string of a server to use (a superuser; its database may be any existing one).</summary>
    public const string EnvVar = "PTACTORS_TEST_POSTGRES";

    /// <summary>Set by .ci/run when PostgreSQL could not be installed or started: the tests are skipped with this reason.</summary>
    public const string SkipEnvVar = "PTACTORS_TEST_POSTGRES_SKIP";

    private readonly Lazy<string> _connectionString;
    private string? _dir;
    private int _databases;

    /// <summary>Starts nothing yet: the server is found or started on first use (a skipped test never uses it).</summary>
    public PostgresServer() => _connectionString = new Lazy<string>(Start);

    private string Start()
    {
        if (SkipReason is { } reason)
            throw new InvalidOperationException("a PostgreSQL test ran although they are skipped: " + reason);
        if (Environment.GetEnvironmentVariable(EnvVar) is { Length: > 0 } given)
            return given;
        string dir = Path.Combine(Path.GetTempPath(), "ptactors-pg-" + Guid.NewGuid().ToString("N")[..12]);
        var (rc, stdout, stderr) = RunScript("start", dir);
        _dir = dir; // stopped (and deleted) on dispose, whatever the start did
        if (rc != 0)
            throw new InvalidOperationException($".ci/postgres.sh start failed (exit {rc}): {stderr.Trim()}");
        return stdout.Trim().Split('\n')[^1];
    }

    /// <summary>The server's superuser connection string (database ptactors_test).</summary>
    public string ConnectionString => _connectionString.Value;

    /// <summary>
    /// Why the PostgreSQL tests are skipped, or null when they run: .ci/run said why, or neither a server was given
    /// nor initdb and .ci/postgres.sh are found to start one.
    /// </summary>
    public static string? SkipReason { get; } = FindSkipReason();

    private static string? FindSkipReason()
    {
        if (Environment.GetEnvironmentVariable(SkipEnvVar) is { Length: > 0 } why)
            return why;
        if (Environment.GetEnvironmentVariable(EnvVar) is { Length: > 0 })
            return null;
        if (Script() is null)
            return $"{EnvVar} is not set and .ci/postgres.sh is not found above {AppContext.BaseDirectory}";
        bool initdb = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(d => d.Length > 0 && File.Exists(Path.Combine(d, "initdb")))
            || (Directory.Exists("/usr/lib/postgresql") && Directory.EnumerateDirectories("/usr/lib/postgresql").Any(d => File.Exists(Path.Combine(d, "bin", "initdb"))));
        return initdb ? null : $"{EnvVar} is not set and no initdb is installed (Debian: apt-get install postgresql)";
    }

    /// <summary>A new, empty database on the server; its connection string (the same user and password).</summary>
    public string CreateDatabase(string prefix = "t")
    {
        string name = $"{prefix}_{Environment.ProcessId}_{Interlocked.Increment(ref _databases)}_{Guid.NewGuid():N}"[..40].ToLowerInvariant();
        using (var conn = new NpgsqlConnection(ConnectionString))
        {
            conn.Open();
            using var cmd = conn.CreateCommand();
            cmd.CommandText = $"CREATE DATABASE \"{name}\"";
            cmd.ExecuteNonQuery();
        }
        return new NpgsqlConnectionStringBuilder(ConnectionString) { Database = name }.ConnectionString;
    }

    /// <summary>Runs one query on <paramref name="connectionString"/> and returns its single value.</summary>
    public static object? Scalar(string connectionString, string sql)
    {
        using var conn = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString);
        conn.Open();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar();
    }

    public void Dispose()
    {
        NpgsqlConnection.ClearAllPools();
        if (_dir is not null)
            RunScript("stop", _dir);
    }

    private static string? Script()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, ".ci", "postgres.sh");
            if (File.Exists(candidate))
                return candidate;
        }
        return null;
    }

    private static (int Rc, string Stdout, string Stderr) RunScript(string verb, string dir)
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Script() ?? throw new InvalidOperationException(".ci/postgres.sh not found"));
        psi.ArgumentList.Add(verb);
        psi.ArgumentList.Add(dir);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            p.Kill(entireProcessTree: true);
            return (-1, stdout, "timed out after 2 minutes");
        }
        return (p.ExitCode, stdout, stderr.Result);
    }
}

/// <summary>A test on the real PostgreSQL server of <see cref="PostgresServer"/>; skipped, with the reason, when there is none.</summary>
public sealed class PostgresFactAttribute : FactAttribute
{
    public PostgresFactAttribute()
    {
        if (PostgresServer.SkipReason is { } reason)
            Skip = "no PostgreSQL: " + reason;
    }
}

/// <summary>The PostgreSQL tests of an assembly share one server and run one at a time (two cores).</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PostgresCollection : ICollectionFixture<PostgresServer>
{
    public const string Name = "postgres";
}
