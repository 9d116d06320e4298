namespace PtActors.Cli.Script;

/// <summary>
/// How <c>ptactors script</c> tells the failures of its streams apart: input that cannot be opened or read is the
/// user's input error (exit 2, named by the input), output that cannot be written is an output error (exit 74),
/// and neither prints a stack trace.
/// </summary>
internal static class ScriptIo
{
    /// <summary>A failure of reading the scenario: an I/O error, no permission, or a closed reader.</summary>
    public static bool IsInputFailure(Exception e) => e is IOException or UnauthorizedAccessException or ObjectDisposedException;

    /// <summary>A failure of writing the results: an I/O error (a full disk, a closed pipe) or a closed writer.</summary>
    public static bool IsOutputFailure(Exception e) => e is IOException or ObjectDisposedException;

    /// <summary>The reason a stream failed, in the words of the system where there are such words.</summary>
    public static string Reason(Exception e) => e switch
    {
        FileNotFoundException or DirectoryNotFoundException => "No such file or directory",
        UnauthorizedAccessException => "Permission denied",
        ObjectDisposedException => "the stream is closed",
        _ => e.Message,
    };

    /// <summary>
    /// Writes one message line to <paramref name="error"/>. When even that fails there is nowhere left to report
    /// to; the exit code still tells.
    /// </summary>
    public static void Report(TextWriter error, string message)
    {
        try
        {
            error.WriteLine(message);
            error.Flush();
        }
        catch (Exception e) when (IsOutputFailure(e))
        {
            // Nowhere left to write to.
        }
    }
}
