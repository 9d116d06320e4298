using System.Text;

namespace PtActors.Cli.Script;

/// <summary>
/// <c>ptactors script FILE|-</c>: opens the scenario (<c>-</c> is standard input) and runs it. A FILE that cannot
/// be opened (an empty path, a missing file, a directory, no permission) prints <c>FILE: reason</c> and exits 2,
/// like a malformed line; so does input that fails while it is read (see <see cref="ScriptRunner.Run"/>).
/// </summary>
internal static class ScriptFile
{
    /// <summary>
    /// Runs the scenario <paramref name="path"/> with at most <paramref name="maxTablePages"/> table pages per
    /// domain and returns the process exit code.
    /// </summary>
    public static int Run(string path, TextReader stdin, TextWriter stdout, TextWriter stderr,
        int maxTablePages = Engine.TableMemory.DefaultPageLimit)
    {
        var runner = new ScriptRunner(maxTablePages);
        if (path == "-")
            return runner.Run(stdin, "-", stdout, stderr, flushEachLine: true);

        StreamReader reader;
        try
        {
            if (path.Length == 0)
                return Unreadable("''", "empty path (name a file, or - for standard input)", stderr);
            if (Directory.Exists(path))
                return Unreadable(path, "Is a directory", stderr);
            reader = new StreamReader(path, Encoding.UTF8, detectEncodingFromByteOrderMarks: true);
        }
        catch (Exception e) when (ScriptIo.IsInputFailure(e) || e is ArgumentException or NotSupportedException)
        {
            return Unreadable(path, e is ArgumentException or NotSupportedException ? "invalid path" : ScriptIo.Reason(e), stderr);
        }
        using (reader)
            return runner.Run(reader, path, stdout, stderr);
    }

    private static int Unreadable(string path, string reason, TextWriter stderr)
    {
        ScriptIo.Report(stderr, $"{path}: {reason}");
        return ScriptRunner.ExitMalformed;
    }
}
