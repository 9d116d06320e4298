using System.CommandLine;
using System.Text;
using PtActors.Cli.Script;

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
        return Run(args, stdin, stdout, stderr);
    }

    /// <summary>
    /// The whole command line, with its standard streams passed in (the end-to-end tests call this).
    /// Returns the process exit code.
    /// </summary>
    public static int Run(string[] args, TextReader stdin, TextWriter stdout, TextWriter stderr)
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

        var root = new RootCommand("PtActors: a simulator of Linux iommupt IOMMU page tables.")
        {
            script,
        };
        // No @response-file expansion: a scenario path is taken as given.
        var parse = root.Parse(args, new ParserConfiguration { ResponseFileTokenReplacer = null });
        int rc = parse.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr });
        stdout.Flush();
        return rc;
    }
}
