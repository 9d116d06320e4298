using System.CommandLine;
using Microsoft.Win32.SafeHandles;
using System.Text;
using PtActors.Actors;
using PtActors.Cli.Script;
using PtActors.Cli.Simulate;
using PtActors.Engine;

namespace PtActors.Cli;

/// <summary>The <c>ptactors</c> command.</summary>
internal static class Program
{
    /// <summary>Exit code when the engine itself failed (a bug, not a user error).</summary>
    public const int ExitInternalError = 70;

    private static int Main(string[] args)
    {
        var utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);
        // A standard input closed when the process started reads as an error, not as the runtime's own pipe.
        using TextReader stdin = StandardInput.IsClosed()
            ? new UnreadableReader("standard input is closed")
            : new StreamReader(Console.OpenStandardInput(), utf8);
        var stdout = new StreamWriter(OpenStandardOutput(), utf8) { AutoFlush = false };
        using var stderr = new StreamWriter(Console.OpenStandardError(), utf8) { AutoFlush = true };
        int rc = Run(args, stdin, stdout, stderr, CreateRunner, stdoutIsTerminal: !Console.IsOutputRedirected);
        try
        {
            stdout.Dispose();
        }
        catch (Exception e) when (ScriptIo.IsOutputFailure(e))
        {
            // Run flushed already, so only a failure it reported can come back here; keep its exit code.
            if (rc == 0)
            {
                ScriptIo.Report(stderr, OutputError(e));
                rc = ExitOutputError;
            }
        }
        return rc;
    }

    /// <summary>
    /// Standard output as a plain stream over descriptor 1, so that a write into a closed pipe fails (EPIPE) as a
    /// full disk does; the console stream would drop the output silently. The console stream where that cannot be opened.
    /// </summary>
    private static Stream OpenStandardOutput()
    {
        if (OperatingSystem.IsWindows())
            return Console.OpenStandardOutput();
        try
        {
            var fd = new FileStream(new SafeFileHandle(1, ownsHandle: false), FileAccess.Write, bufferSize: 0);
            if (!fd.CanSeek)
                return fd;
            // A regular file: a FileStream writes at positions of its own (pwrite), which leaves the descriptor's
            // shared offset where it was, so whatever writes to the same redirection next (`{ ptactors ...; echo
            // done; } > log`) would overwrite this output. The console stream writes at the shared offset; a regular
            // file cannot fail with EPIPE, the one error it would hide.
            fd.Dispose();
            return Console.OpenStandardOutput();
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return Console.OpenStandardOutput();
        }
    }

    /// <summary>Exit code when the output cannot be written (EX_IOERR): see <see cref="ScriptRunner.ExitOutputError"/>.</summary>
    public const int ExitOutputError = ScriptRunner.ExitOutputError;

    private static string OutputError(Exception e) => $"ptactors: cannot write the output: {ScriptIo.Reason(e)}";

    /// <summary>The simulator <c>ptactors simulate</c> runs on (the one place the real runner is named).</summary>
    private static ISimulationRunner CreateRunner() => SimulatorFactory.Create();

    /// <summary>
    /// The whole command line, with its standard streams passed in (the end-to-end tests call this).
    /// Returns the process exit code.
    /// </summary>
    public static int Run(string[] args, TextReader stdin, TextWriter stdout, TextWriter stderr)
        => Run(args, stdin, stdout, stderr, CreateRunner, stdoutIsTerminal: false);

    /// <summary>
    /// The whole command line with the simulation runner <c>simulate</c> uses (made only when a run starts).
    /// <paramref name="stdoutIsTerminal"/>: <paramref name="stdout"/> is a terminal, so <c>simulate</c> shows a live display.
    /// </summary>
    internal static int Run(string[] args, TextReader stdin, TextWriter stdout, TextWriter stderr,
        Func<ISimulationRunner> createRunner, bool stdoutIsTerminal)
    {
        var file = new Argument<string>("FILE")
        {
            Description = "The scenario to run, or - for standard input.",
        };
        var maxTablePages = new Option<int>("--max-table-pages")
        {
            Description = $"Table pages each domain may hold at once; a map that needs more fails with ENOMEM [default: {TableMemory.DefaultPageLimit}]",
            HelpName = "N",
            DefaultValueFactory = _ => TableMemory.DefaultPageLimit,
            CustomParser = result =>
            {
                if (result.Tokens.Count != 1)
                    return TableMemory.DefaultPageLimit;
                string text = result.Tokens[0].Value;
                if (int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int n))
                    return n;
                result.AddError($"bad value {ScriptText.Quote(text)} for --max-table-pages (a count of pages, 0 to {int.MaxValue})");
                return 0;
            },
        };
        var script = new Command("script", "Run a scenario: one command per line, one result line per command.")
        {
            file,
            maxTablePages,
        };
        script.SetAction(parse =>
        {
            try
            {
                return ScriptFile.Run(parse.GetValue(file)!, stdin, stdout, stderr, parse.GetValue(maxTablePages));
            }
            catch (Exception e)
            {
                // An engine failure is a bug: say so in one line, without a stack trace.
                stdout.Flush();
                stderr.WriteLine($"ptactors: {e.Message}");
                return ExitInternalError;
            }
        });

        var simulate = new SimulateCommand(createRunner, stdout, stderr, stdoutIsTerminal);

        var recordings = new Recordings.RecordingCommands(stdout, stderr);
        var report = new Report.ReportCommand(stdout, stderr);
        var node = new Cluster.NodeCommand(stdout, stderr);

        var root = new RootCommand("PtActors: a simulator of Linux iommupt IOMMU page tables.")
        {
            script,
            simulate.Command,
            recordings.Runs,
            recordings.Verify,
            recordings.Replay,
            recordings.ImportFtrace,
            report.Command,
            node.Command,
        };
        // No @response-file expansion: a scenario path is taken as given.
        var parse = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        if (parse.Errors.Count > 0 && simulate.IsSelected(parse))
            return simulate.ReportParseErrors(parse); // every bad simulate value: its option named, exit 2
        if (parse.Errors.Count > 0 && parse.CommandResult.Command == script)
        {
            // A bad script command line (a missing FILE, a bad --max-table-pages): named, nothing run, exit 2.
            foreach (var error in parse.Errors)
                ScriptIo.Report(stderr, $"ptactors script: {error.Message}");
            ScriptIo.Report(stderr, "Try 'ptactors script --help'.");
            return ScriptRunner.ExitMalformed;
        }
        if (parse.Errors.Count > 0 && (parse.CommandResult.Command == recordings.Replay || parse.CommandResult.Command == recordings.ImportFtrace
            || parse.CommandResult.Command == recordings.Runs || parse.CommandResult.Command == recordings.Verify
            || parse.CommandResult.Command == report.Command || parse.CommandResult.Command == node.Command))
        {
            // A bad replay, import, runs or verify option: each error names it, nothing is read or written, exit 2.
            string name = parse.CommandResult.Command.Name;
            foreach (var error in parse.Errors)
                ScriptIo.Report(stderr, $"ptactors {name}: {error.Message}");
            ScriptIo.Report(stderr, $"Try 'ptactors {name} --help'.");
            return Recordings.RecordingCommands.ExitUsage;
        }
        int rc = parse.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr });
        try
        {
            stdout.Flush();
        }
        catch (Exception e) when (ScriptIo.IsOutputFailure(e))
        {
            // Whatever wrote last (help, simulate) could not get its output out: an output error, not a bad input.
            if (rc != ExitOutputError)
                ScriptIo.Report(stderr, OutputError(e));
            return ExitOutputError;
        }
        return rc;
    }
}
