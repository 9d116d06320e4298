using System.Text;

namespace PtActors.Cli.Script;

/// <summary>
/// <c>ptactors script FILE|-</c>: opens the scenario (<c>-</c> is standard input) and runs it. An unreadable
/// file prints <c>FILE: reason</c> and exits 2, like a malformed line.
/// </summary>
internal static class ScriptFile
{
    /// <summary>Runs the scenario <paramref name="path"/> and returns the process exit code.</summary>
    public static int Run(string path, TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        var runner = new ScriptRunner();
        try
        {
            if (path == "-")
                return runner.Run(stdin, "-", stdout, stderr, flushEachLine: true);

            if (Directory.Exists(path))
                return Unreadable(path, "Is a directory", stdout, stderr);
            using var reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
            return runner.Run(reader, path, stdout, stderr);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Unreadable(path, Reason(e), stdout, stderr);
        }
        finally
        {
            stdout.Flush();
        }
    }

    private static int Unreadable(string path, string reason, TextWriter stdout, TextWriter stderr)
    {
        stdout.Flush();
        stderr.WriteLine($"{path}: {reason}");
        return ScriptRunner.ExitMalformed;
    }

    private static string Reason(Exception e) => e switch
    {
        FileNotFoundException or DirectoryNotFoundException => "No such file or directory",
        UnauthorizedAccessException => "Permission denied",
        _ => e.Message,
    };
}
