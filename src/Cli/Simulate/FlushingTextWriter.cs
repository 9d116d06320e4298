using System.Text;

namespace PtActors.Cli.Simulate;

/// <summary>
/// Flushes <paramref name="inner"/> after every write, so a live display (and a plain progress line) reaches the
/// terminal or the pipe at once even when the process's standard output is a buffered writer. Never disposes it.
/// </summary>
internal sealed class FlushingTextWriter(TextWriter inner) : TextWriter(inner.FormatProvider)
{
    public override Encoding Encoding => inner.Encoding;

    public override void Write(char value)
    {
        inner.Write(value);
        inner.Flush();
    }

    public override void Write(string? value)
    {
        inner.Write(value);
        inner.Flush();
    }

    public override void Write(char[] buffer, int index, int count)
    {
        inner.Write(buffer, index, count);
        inner.Flush();
    }

    public override void Write(ReadOnlySpan<char> buffer)
    {
        inner.Write(buffer);
        inner.Flush();
    }

    public override void WriteLine(string? value)
    {
        inner.Write(value);
        inner.Write(CoreNewLine);
        inner.Flush();
    }

    public override void Flush() => inner.Flush();
}
