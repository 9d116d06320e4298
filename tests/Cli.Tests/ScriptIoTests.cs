using System.Diagnostics;
using System.Text;
using PtActors.Cli.Script;
using PtActors.Engine;
using Xunit;

namespace PtActors.Cli.Tests;

/// <summary>
/// The streams of <c>ptactors script</c>: input that cannot be opened or read is an input error (exit 2, named by
/// the input, no stack trace); output that cannot be written is an output error (exit 74, "cannot write the
/// output"), never blamed on the input; the table-memory bound turns into <c>error ENOMEM</c> results.
/// </summary>
public sealed class ScriptIoTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ptactors-io-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Exit, string Stdout, string Stderr) Ptactors(string[] args, TextReader stdin, TextWriter? stdout = null)
    {
        var output = stdout ?? new StringWriter { NewLine = "\n" };
        using var stderr = new StringWriter { NewLine = "\n" };
        int rc = Program.Run(args, stdin, output, stderr);
        return (rc, stdout is null ? output.ToString()! : "", stderr.ToString());
    }

    private const string TwoLines = "domain a amdv1\ncount a\n";

    [Fact]
    public void EmptyPathIsAnInputError()
    {
        var (exit, stdout, stderr) = Ptactors(["script", ""], new StringReader(TwoLines));
        Assert.Equal(2, exit);
        Assert.Equal("", stdout);
        Assert.Equal("'': empty path (name a file, or - for standard input)\n", stderr);
    }

    [Fact]
    public void StandardInputFailingWhileReadIsAnInputError()
    {
        var (exit, stdout, stderr) = Ptactors(["script", "-"], new FailingReader("domain a amdv1\n", "Input/output error"));
        Assert.Equal(2, exit);
        Assert.Equal("ok pgsizes=0xfff7ffffff000\n", stdout); // the line read before the failure ran
        Assert.Equal("-: cannot read line 2: Input/output error\n", stderr);
    }

    [Fact]
    public void ClosedStandardInputIsAnInputError()
    {
        var stdin = new StringReader(TwoLines);
        stdin.Dispose();
        var (exit, stdout, stderr) = Ptactors(["script", "-"], stdin);
        Assert.Equal(2, exit);
        Assert.Equal("", stdout);
        Assert.Equal("-: cannot read line 1: the stream is closed\n", stderr);

        (exit, stdout, stderr) = Ptactors(["script", "-"], new UnreadableReader("standard input is closed"));
        Assert.Equal(2, exit);
        Assert.Equal("", stdout);
        Assert.Equal("-: cannot read line 1: standard input is closed\n", stderr);
    }

    [Theory]
    [InlineData(true)]  // every write fails
    [InlineData(false)] // writes are taken, flushing them fails (a buffered stream over a full disk)
    public void OutputThatCannotBeWrittenIsAnOutputError(bool failWrites)
    {
        string path = Path.Combine(_dir, "s.pts");
        File.WriteAllText(path, TwoLines);
        foreach (string[] args in new[] { new[] { "script", path }, ["script", "-"] })
        {
            using var full = new FailingWriter(failWrites, "No space left on device");
            var (exit, _, stderr) = Ptactors(args, new StringReader(TwoLines), full);
            Assert.Equal(ScriptRunner.ExitOutputError, exit);
            Assert.Equal(74, exit);
            Assert.Equal("ptactors script: cannot write the output: No space left on device\n", stderr);
        }
    }

    [Fact]
    public void OutputLostBeforeAMalformedLineIsAnOutputError()
    {
        // The result of line 1 cannot be flushed when line 2 turns out malformed: the output error is what tells.
        string path = Path.Combine(_dir, "bad.pts");
        File.WriteAllText(path, "domain a amdv1\nbogus\n");
        using var full = new FailingWriter(failWrites: false, "Broken pipe");
        var (exit, _, stderr) = Ptactors(["script", path], new StringReader(""), full);
        Assert.Equal(74, exit);
        Assert.Equal("ptactors script: cannot write the output: Broken pipe\n", stderr);
    }

    [Fact]
    public void BadMaxTablePagesNamesTheOption()
    {
        foreach (string bad in new[] { "-1", "x", "1e3", "99999999999" })
        {
            var (exit, stdout, stderr) = Ptactors(["script", "--max-table-pages", bad, "-"], new StringReader(TwoLines));
            Assert.Equal(2, exit);
            Assert.Equal("", stdout);
            Assert.StartsWith($"ptactors script: bad value '{bad}' for --max-table-pages", stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void MapPastTheTableBoundPrintsEnomem()
    {
        // amdv1 level 2 holds its top; 4K pages in [2M-4K, 2M+4K) need a level-1 table and two level-0 tables.
        const string script = "domain a amdv1\nmap a 0x1ff000 0x1ff000 8K\ntables a\ncount a\nphys a 0x1ff000\n"
            + "map a 0x1ff000 0x1ff000 4K\ncount a\ntables a\n";
        var (exit, stdout, stderr) = Ptactors(["script", "--max-table-pages", "3", "-"], new StringReader(script));
        Assert.Equal("", stderr);
        Assert.Equal(0, exit);
        // The first map fails for the third table after mapping 4K into the second: unmapped again, the two
        // tables stay (the unroll covers neither whole); the second map fits in them.
        Assert.Equal("ok pgsizes=0xfff7ffffff000\nerror ENOMEM\ntables 3\nentries 0\nnone\nok\nentries 1 0x1000=1\ntables 3\n", stdout);

        var runner = new ScriptRunner(maxTablePages: 3);
        using var o = new StringWriter { NewLine = "\n" };
        Assert.Equal(0, runner.Run(new StringReader(script), "t", o, TextWriter.Null));
        Assert.Equal(stdout, o.ToString());
        var memory = runner.Domains["a"].Memory;
        Assert.Equal(3, memory.PageLimit);
        Assert.Equal(runner.Domains["a"].TablePages, memory.AllocatedPages);
    }

    [Fact]
    public void TheDefaultBoundIsTheTableMemoryDefault()
    {
        Assert.Equal(TableMemory.DefaultPageLimit, new ScriptRunner().MaxTablePages);
        var r = ScriptHarness.Run("domain a x86_64\n");
        Assert.Equal(TableMemory.DefaultPageLimit, r.Runner.Domains["a"].Memory.PageLimit);
    }

    /// <summary>The real process: standard input closed at start, output into a full disk or a closed pipe.</summary>
    [Fact]
    public void TheProcessReportsStreamFailuresWithoutAStackTrace()
    {
        if (!OperatingSystem.IsLinux())
            return;
        string exe = ScriptHarness.OutputPath("ptactors");
        string script = ScriptHarness.OutputPath("Golden", "worked-example.pts");

        var closed = Shell("exec \"$0\" script - <&-", exe);
        Assert.Equal((2, "", "-: cannot read line 1: standard input is closed\n"), closed);

        var full = Shell("exec \"$0\" script \"$1\" >/dev/full", exe, script);
        Assert.Equal((74, "", "ptactors script: cannot write the output: No space left on device\n"), full);

        // 60 000 result lines into a pipe whose reader stops after one line.
        string many = Path.Combine(_dir, "many.pts");
        File.WriteAllText(many, "domain a amdv1\n" + string.Concat(Enumerable.Repeat("count a\n", 60_000)));
        var pipe = Shell("\"$0\" script \"$1\" | head -c 1 >/dev/null; echo \"rc=${PIPESTATUS[0]}\" >&2", exe, many);
        Assert.Equal("ptactors script: cannot write the output: Broken pipe\nrc=74\n", pipe.Stderr);
    }

    /// <summary>Output redirected to a file shared with the commands around it keeps everyone's lines, in order.</summary>
    [Fact]
    public void OutputIntoAFileSharedWithOtherCommandsKeepsTheirOrder()
    {
        if (!OperatingSystem.IsLinux())
            return;
        string exe = ScriptHarness.OutputPath("ptactors");
        string script = ScriptHarness.OutputPath("Golden", "worked-example.pts");
        string log = Path.Combine(_dir, "log.txt");
        var r = Shell("{ echo before; \"$0\" script \"$1\"; echo after; } > \"$2\"", exe, script, log);
        Assert.Equal(0, r.Exit);
        string expected = "before\n" + File.ReadAllText(ScriptHarness.OutputPath("Golden", "worked-example.expected")) + "after\n";
        Assert.Equal(expected, File.ReadAllText(log));
    }

    private static (int Exit, string Stdout, string Stderr) Shell(string command, params string[] args)
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        foreach (string a in args)
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout, stderr.Result);
    }

    /// <summary>Gives <paramref name="text"/>, then fails every read with an <see cref="IOException"/>.</summary>
    private sealed class FailingReader(string text, string reason) : TextReader
    {
        private int _pos;

        public override int Read(char[] buffer, int index, int count)
        {
            if (_pos == text.Length)
                throw new IOException(reason);
            int n = Math.Min(count, text.Length - _pos);
            text.CopyTo(_pos, buffer, index, n);
            _pos += n;
            return n;
        }
    }

    /// <summary>
    /// Output to a device that fails: every write (<paramref name="failWrites"/>), or only the flush of what was
    /// written, throws an <see cref="IOException"/> giving <paramref name="reason"/>.
    /// </summary>
    private sealed class FailingWriter(bool failWrites, string reason) : TextWriter
    {
        private int _pending;

        public override Encoding Encoding => Encoding.UTF8;

        public override void Write(char value)
        {
            if (failWrites)
                throw new IOException(reason);
            _pending++;
        }

        public override void Flush()
        {
            if (_pending > 0)
                throw new IOException(reason);
        }
    }
}
