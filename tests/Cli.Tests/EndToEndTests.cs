using System.Text;
using Xunit;

namespace PtActors.Cli.Tests;

/// <summary>
/// The <c>ptactors</c> entry point in-process (<see cref="Program.Run"/>, which Main calls with the process's
/// standard streams): <c>script FILE</c>, <c>script -</c>, unreadable files and usage errors.
/// </summary>
public sealed class EndToEndTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ptactors-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The whole command line in-process with captured streams (other test classes use it too).</summary>
    /// <summary>
    /// Checkpoints <paramref name="db"/>'s -wal into the file (and closes every pooled connection), so that its
    /// bytes can be compared before and after a command: a reader closing the database last may checkpoint it.
    /// </summary>
    internal static void Checkpoint(string db)
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        using (var conn = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={db};Pooling=False"))
        {
            conn.Open();
            using var cmd = conn.CreateCommand();
            cmd.CommandText = "PRAGMA wal_checkpoint(TRUNCATE)";
            cmd.ExecuteNonQuery();
        }
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
    }

    internal static (int Exit, string Stdout, string Stderr) Ptactors(string[] args, string stdin = "")
    {
        using var stdout = new StringWriter { NewLine = "\n" };
        using var stderr = new StringWriter { NewLine = "\n" };
        int rc = Program.Run(args, new StringReader(stdin), stdout, stderr);
        return (rc, stdout.ToString(), stderr.ToString());
    }

    private static string WorkedExample => File.ReadAllText(ScriptHarness.OutputPath("Golden", "worked-example.pts"));

    private static string WorkedExampleOutput => File.ReadAllText(ScriptHarness.OutputPath("Golden", "worked-example.expected"));

    [Fact]
    public void ScriptFileRunsTheWorkedExample()
    {
        string path = Path.Combine(_dir, "worked-example.pts");
        File.WriteAllText(path, WorkedExample, new UTF8Encoding(true)); // a BOM is skipped
        var (exit, stdout, stderr) = Ptactors(["script", path]);
        Assert.Equal("", stderr);
        Assert.Equal(0, exit);
        Assert.Equal(WorkedExampleOutput, stdout);
    }

    [Fact]
    public void ScriptDashReadsStandardInput()
    {
        var (exit, stdout, stderr) = Ptactors(["script", "-"], WorkedExample);
        Assert.Equal("", stderr);
        Assert.Equal(0, exit);
        Assert.Equal(WorkedExampleOutput, stdout);
    }

    [Fact]
    public void MalformedLineOnStandardInputNamesDash()
    {
        var (exit, stdout, stderr) = Ptactors(["script", "-"], "domain a amdv1\n\nmap a 0x0 0x0 4K rwx\ncount a\n");
        Assert.Equal(2, exit);
        Assert.Equal("ok pgsizes=0xfff7ffffff000\n", stdout);
        Assert.Equal("-:3: bad PROT letter 'x' in 'rwx' (letters are rwcnmp)\n", stderr);
    }

    [Fact]
    public void MalformedLineInAFileNamesTheFileAsGiven()
    {
        string path = Path.Combine(_dir, "bad.pts");
        File.WriteAllText(path, "domain a amdv1\nmap a 0x0 0x0 4K\n# next\nmap a 0x1000 0x1000 4K x\ncount a\n");
        var (exit, stdout, stderr) = Ptactors(["script", path]);
        Assert.Equal(2, exit);
        Assert.Equal("ok pgsizes=0xfff7ffffff000\nok\n", stdout);
        Assert.Equal($"{path}:4: bad PROT letter 'x' in 'x' (letters are rwcnmp)\n", stderr);
    }

    [Fact]
    public void KernelErrorsAreResultsNotFailures()
    {
        var (exit, stdout, _) = Ptactors(["script", "-"], "domain a amdv1\nmap a 0x0 0x0 4K\nmap a 0x0 0x0 4K\ndomain b vtdss vasz=30\n");
        Assert.Equal(0, exit);
        Assert.Equal("ok pgsizes=0xfff7ffffff000\nok\nerror EADDRINUSE\nerror EOPNOTSUPP\n", stdout);
    }

    [Fact]
    public void AnAtSignIsAPathNotAResponseFile()
    {
        string path = Path.Combine(_dir, "@scenario.pts");
        File.WriteAllText(path, "domain a amdv1\n");
        var (exit, stdout, stderr) = Ptactors(["script", path]);
        Assert.Equal("", stderr);
        Assert.Equal(0, exit);
        Assert.Equal("ok pgsizes=0xfff7ffffff000\n", stdout);
    }

    [Fact]
    public void MissingFileIsUnreadable()
    {
        string path = Path.Combine(_dir, "missing.pts");
        var (exit, stdout, stderr) = Ptactors(["script", path]);
        Assert.Equal(2, exit);
        Assert.Equal("", stdout);
        Assert.Equal($"{path}: No such file or directory\n", stderr);
    }

    [Fact]
    public void DirectoryIsUnreadable()
    {
        var (exit, stdout, stderr) = Ptactors(["script", _dir]);
        Assert.Equal(2, exit);
        Assert.Equal("", stdout);
        Assert.Equal($"{_dir}: Is a directory\n", stderr);
    }

    [Fact]
    public void EmptyFileRunsNothing()
    {
        string path = Path.Combine(_dir, "empty.pts");
        File.WriteAllText(path, "");
        var (exit, stdout, stderr) = Ptactors(["script", path]);
        Assert.Equal(0, exit);
        Assert.Equal("", stdout);
        Assert.Equal("", stderr);
    }

    [Fact]
    public void UsageErrorsDoNotRunAnything()
    {
        var (exit, stdout, stderr) = Ptactors(["script"]);
        Assert.NotEqual(0, exit);
        Assert.DoesNotContain("   at ", stdout + stderr, StringComparison.Ordinal);
        Assert.NotEqual("", stderr);

        (exit, _, _) = Ptactors(["nonsense"]);
        Assert.NotEqual(0, exit);
    }

    [Fact]
    public void HelpListsTheScriptCommand()
    {
        var (exit, stdout, _) = Ptactors(["--help"]);
        Assert.Equal(0, exit);
        Assert.Contains("script", stdout, StringComparison.Ordinal);
    }
}
