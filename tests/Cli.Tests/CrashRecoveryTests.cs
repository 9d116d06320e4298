using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Xunit;
using Xunit.Abstractions;

namespace PtActors.Cli.Tests;

/// <summary>
/// The crash campaign in small: a real <c>ptactors simulate</c> process on a SQLite file is killed with SIGKILL
/// mid-run, then <c>runs</c> lists the run as interrupted and <c>verify --ack-log</c> finds every acknowledged
/// operation in the journal and every domain consistent (bench/crash-campaign.sh runs the same by the hundred).
/// </summary>
public sealed class CrashRecoveryTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ptactors-crash-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    private static (int Exit, string Stdout, string Stderr) Ptactors(params string[] args) => EndToEndTests.Ptactors(args);

    /// <summary>
    /// The file's size, or −1 while it does not exist. simulate's option check creates the ack log and deletes it
    /// again before the run opens it for good, so the file may vanish between an existence check and a stat.
    /// </summary>
    private static long SizeOf(string path)
    {
        try
        {
            return new FileInfo(path).Length;
        }
        catch (FileNotFoundException)
        {
            return -1;
        }
    }

    [Theory]
    [InlineData("x86_64", "lazy", 1)]          // the log's run header only: killed before anything was acknowledged
    [InlineData("amdv1", "strict", 20_000)]
    [InlineData("vtdss", "batch:16", 120_000)]
    [InlineData("riscv64", "lazy", 60_000)]
    public async Task ARunKilledWithSigkillVerifiesAndLosesNothingAcknowledged(string format, string policy, long ackBytesBeforeKill)
    {
        string db = Path.Combine(_dir, "crash.db"), ack = Path.Combine(_dir, "crash.ack");
        string cli = Path.Combine(AppContext.BaseDirectory, "ptactors.dll");
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { cli, "simulate", "--db", db, "--run-id", "crash", "--ops", "2000000", "--iommus", "2", "--domains", "16",
                     "--devices", "256", "--workload", "mixed", "--format", format, "--policy", policy, "--ack-log", ack })
            start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdoutTask = process.StandardOutput.ReadToEndAsync();
        var stderrTask = process.StandardError.ReadToEndAsync();
        // Kill once the ack log has grown past the point asked for (its run header is written once the run is in
        // the registry, before anything is acknowledged).
        var deadline = Stopwatch.StartNew();
        while (!process.HasExited && deadline.Elapsed < TimeSpan.FromSeconds(120))
        {
            long size = SizeOf(ack);
            if (size >= ackBytesBeforeKill)
                break;
            Thread.Sleep(2);
        }
        if (process.HasExited)
            Assert.Fail("the run ended before it could be killed: " + await stderrTask);
        output.WriteLine($"killing pid {process.Id} after {deadline.ElapsedMilliseconds} ms, ack log {SizeOf(ack)} bytes");
        process.Kill(entireProcessTree: true); // SIGKILL
        await process.WaitForExitAsync();
        output.WriteLine($"exited after {deadline.ElapsedMilliseconds} ms with {process.ExitCode}");
        await Task.WhenAll(stdoutTask, stderrTask);
        long logged = new FileInfo(ack).Length;

        var runs = Ptactors("runs", "--db", db);
        Assert.Equal(0, runs.Exit);
        Assert.True(System.Text.RegularExpressions.Regex.IsMatch(runs.Stdout, @"\ncrash +\S+ \S+ +interrupted +<=[0-9]+ +iommus=2 domains=16 "), runs.Stdout);

        var verify = Ptactors("verify", "--db", db, "--ack-log", ack);
        output.WriteLine($"ack log {logged} bytes at the kill; {verify.Stdout}{verify.Stderr}");
        Assert.Equal("", verify.Stderr);
        Assert.Equal(0, verify.Exit);
        Assert.Matches(@"^crash interrupted domains=16 events=[0-9]+ ops=[0-9]+ acked_checked=[0-9]+ acked_missing=0 table_hash=[0-9a-f]{64} ok\n", verify.Stdout);
        if (ackBytesBeforeKill > 1000)
            Assert.DoesNotMatch(" acked_checked=0 ", verify.Stdout);
    }

    [Fact]
    public void ACompletedRunIsListedVerifiedAndItsIdCannotBeReused()
    {
        string db = Path.Combine(_dir, "done.db");
        string[] small = ["--db", db, "--iommus", "2", "--domains", "4", "--devices", "16", "--ops", "3000", "--format", "vtdss", "--workload", "random"];
        var first = Ptactors(["simulate", "--run-id", "done", .. small]);
        Assert.Equal(0, first.Exit);
        string hash = System.Text.RegularExpressions.Regex.Match(first.Stdout, "run_id=done table_hash=([0-9a-f]{64})").Groups[1].Value;
        Assert.NotEqual("", hash);
        long size = new FileInfo(db).Length + (File.Exists(db + "-wal") ? new FileInfo(db + "-wal").Length : 0);

        var again = Ptactors(["simulate", "--run-id", "done", "--seed", "5", .. small]);
        Assert.Equal(2, again.Exit);
        Assert.Contains("run id 'done' is already in the database", again.Stderr, StringComparison.Ordinal);

        var runs = Ptactors("runs", "--db", db);
        Assert.Equal(0, runs.Exit);
        Assert.Matches(@"\ndone +\S+ \S+ +completed +3000 +iommus=2 domains=4 devices=16 workload=random format=vtdss ", runs.Stdout);
        Assert.Single(runs.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("done ", StringComparison.Ordinal));

        var verify = Ptactors("verify", "--db", db, "--run", "done");
        Assert.Equal(0, verify.Exit);
        Assert.Matches($@"^done completed domains=4 events=[0-9]+ ops=[0-9]+ table_hash={hash} ok\n$", verify.Stdout);
        var unknown = Ptactors("verify", "--db", db, "--run", "nope");
        Assert.Equal(2, unknown.Exit);
        Assert.Contains("--run 'nope': no such run", unknown.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void VerifyRefusesAMissingOrForeignDatabaseAndAnUnknownRunWithoutWriting()
    {
        string missing = Path.Combine(_dir, "missing.db");
        var r = Ptactors("verify", "--db", missing);
        Assert.Equal(2, r.Exit);
        Assert.Contains("no such file", r.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(missing));

        string text = Path.Combine(_dir, "text.db");
        File.WriteAllText(text, "not a database at all, just text that is long enough to look like a header...");
        byte[] before = File.ReadAllBytes(text);
        r = Ptactors("runs", "--db", text);
        Assert.Equal(2, r.Exit);
        Assert.Contains("not a readable SQLite database", r.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(text));

        string foreign = Path.Combine(_dir, "foreign.db");
        using (var conn = new SqliteConnection($"Data Source={foreign};Pooling=False"))
        {
            conn.Open();
            using var cmd = conn.CreateCommand();
            cmd.CommandText = "CREATE TABLE t (x INTEGER)";
            cmd.ExecuteNonQuery();
        }
        before = File.ReadAllBytes(foreign);
        r = Ptactors("verify", "--db", foreign, "--run", "x");
        Assert.Equal(2, r.Exit);
        Assert.Contains("not a ptactors database", r.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(foreign));
    }
}
