using System.Text;

namespace PtActors.Cli.Script;

/// <summary>
/// Reads physical lines: each ends at <c>\n</c> (a trailing <c>\r</c> is dropped), the last one also at the
/// end of input. Unlike <see cref="TextReader.ReadLine"/> a lone <c>\r</c> does not end a line, so line
/// numbers count exactly the newlines an editor shows.
/// </summary>
internal sealed class ScriptLineReader(TextReader input)
{
    private readonly char[] _buffer = new char[4096];
    private readonly StringBuilder _line = new();
    private int _pos;
    private int _len;
    private bool _eof;

    /// <summary>The next line without its terminator; null at the end of input.</summary>
    public string? ReadLine()
    {
        _line.Clear();
        while (true)
        {
            if (_pos == _len)
            {
                if (_eof)
                    return null;
                _len = input.Read(_buffer, 0, _buffer.Length);
                _pos = 0;
                if (_len == 0)
                {
                    _eof = true;
                    return _line.Length > 0 ? Finish() : null;
                }
            }
            int nl = Array.IndexOf(_buffer, '\n', _pos, _len - _pos);
            if (nl < 0)
            {
                _line.Append(_buffer, _pos, _len - _pos);
                _pos = _len;
                continue;
            }
            _line.Append(_buffer, _pos, nl - _pos);
            _pos = nl + 1;
            return Finish();
        }
    }

    private string Finish()
    {
        if (_line.Length > 0 && _line[^1] == '\r')
            _line.Length--;
        return _line.ToString();
    }
}
