using System.CommandLine;
using System.Text;
using PtActors.Actors;
using PtActors.Cli.Script;
using PtActors.Cli.Simulate;

namespace PtActors.Cli;

/// <summary>The <c>ptactors</c> command.</summary>
internal static class Program
{
    /// <summary>Exit code when the engine itself failed (a bug, not a user error).</summary>
    public const int ExitInternalError = 70;

    private static int Main(string[] args)
    {
        var utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);
        using var stdin = new StreamReader(Console.OpenStandardInput(), utf8);
        using var stdout = new StreamWriter(Console.OpenStandardOutput(), utf8) { AutoFlush = false };
        using var stderr = new StreamWriter(Console.OpenStandardError(), utf8) { AutoFlush = true };
        return Run(args, stdin, stdout, stderr, CreateRunner, stdoutIsTerminal: !Console.IsOutputRedirected);
    }

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
        var script = new Command("script", "Run a scenario: one command per line, one result line per command.")
        {
            file,
        };
        script.SetAction(parse =>
        {
            try
            {
                return ScriptFile.Run(parse.GetValue(file)!, stdin, stdout, stderr);
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

        var root = new RootCommand("PtActors: a simulator of Linux iommupt IOMMU page tables.")
        {
            script,
            simulate.Command,
        };
        // No @response-file expansion: a scenario path is taken as given.
        var parse = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        if (parse.Errors.Count > 0 && simulate.IsSelected(parse))
            return simulate.ReportParseErrors(parse); // every bad simulate value: its option named, exit 2
        int rc = parse.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr });
        try
        {
            stdout.Flush();
        }
        catch (IOException e)
        {
            // Disk full, a closed pipe: the output's fault, not the input's.
            stderr.WriteLine($"ptactors: cannot write the output: {e.Message}");
            return SimulateCommand.ExitOutput;
        }
        return rc;
    }
}
