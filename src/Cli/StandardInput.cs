
namespace PtActors.Cli;

/// <summary>
/// Whether the process's standard input was closed when it started. On Linux the runtime then gets descriptor 0
/// for a pipe of its own, so reading "standard input" would block forever on that pipe; this tells the case apart:
/// descriptor 0 is a pipe whose write end this process holds too (which a real input pipe never is: its writer is
/// another process, and if this process held the write end the read could never see the end of input either).
/// </summary>
internal static class StandardInput
{
    private const string FdDir = "/proc/self/fd";

    /// <summary>True when descriptor 0 cannot be a readable standard input (see the class remarks). False elsewhere than Linux.</summary>
    public static bool IsClosed()
    {
        if (!OperatingSystem.IsLinux())
            return false;
        try
        {
            string? stdin = new FileInfo(Path.Combine(FdDir, "0")).LinkTarget;
            if (stdin is null || !stdin.StartsWith("pipe:", StringComparison.Ordinal))
                return false;
            foreach (string fd in Directory.EnumerateFileSystemEntries(FdDir))
            {
                string name = Path.GetFileName(fd);
                if (name != "0" && IsWriteEndOf(stdin, fd, name))
                    return true;
            }
            return false;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // no /proc to ask: read standard input as it is
        }
    }

    /// <summary>Descriptor <paramref name="name"/> is open on <paramref name="pipe"/> for writing (false once it has gone).</summary>
    private static bool IsWriteEndOf(string pipe, string path, string name)
    {
        try
        {
            return new FileInfo(path).LinkTarget == pipe && IsWriteOnly(name);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // closed meanwhile (the directory listing's own descriptor, say)
        }
    }

    /// <summary>The descriptor's access mode is O_WRONLY (the <c>flags:</c> line of its fdinfo, in octal).</summary>
    private static bool IsWriteOnly(string fd)
    {
        foreach (string line in File.ReadLines(Path.Combine("/proc/self/fdinfo", fd)))
        {
            if (!line.StartsWith("flags:", StringComparison.Ordinal))
                continue;
            string octal = line["flags:".Length..].Trim();
            long flags = 0;
            foreach (char c in octal)
            {
                if (c is < '0' or > '7')
                    return false;
                flags = (flags << 3) | (uint)(c - '0');
            }
            return (flags & 3) == 1; // O_ACCMODE == O_WRONLY
        }
        return false;
    }
}

/// <summary>A reader whose every read fails with an <see cref="IOException"/> giving <paramref name="reason"/>.</summary>
internal sealed class UnreadableReader(string reason) : TextReader
{
    public override int Peek() => throw new IOException(reason);

    public override int Read() => throw new IOException(reason);

    public override int Read(char[] buffer, int index, int count) => throw new IOException(reason);

    public override int Read(Span<char> buffer) => throw new IOException(reason);
}
