using System.Globalization;
using System.Text;

namespace PtActors.Cli.Script;

/// <summary>How error messages show text taken from the input: short, quoted, on one line.</summary>
internal static class ScriptText
{
    /// <summary>At most this many characters of a token are echoed; a longer one ends in <c>...</c>.</summary>
    public const int MaxEcho = 40;

    /// <summary>
    /// <paramref name="token"/> in single quotes for a message: its first <see cref="MaxEcho"/> characters (a
    /// surrogate pair counts as one), then <c>...</c> when it is longer; control and format characters and lone
    /// surrogates as <c>\xNN</c> or <c>\uNNNN</c>, so the message stays one printable line whatever the input holds.
    /// </summary>
    public static string Quote(string token)
    {
        var sb = new StringBuilder(MaxEcho + 8).Append('\'');
        int shown = 0;
        for (int i = 0; i < token.Length; i++)
        {
            if (shown == MaxEcho)
            {
                sb.Append("...");
                break;
            }
            char c = token[i];
            if (char.IsHighSurrogate(c) && i + 1 < token.Length && char.IsLowSurrogate(token[i + 1]))
                sb.Append(c).Append(token[++i]);
            else if (IsHidden(c))
                sb.Append(c <= 0xff ? $"\\x{(int)c:x2}" : $"\\u{(int)c:x4}");
            else
                sb.Append(c);
            shown++;
        }
        return sb.Append('\'').ToString();
    }

    /// <summary><see cref="Quote(string)"/> of one character.</summary>
    public static string Quote(char c) => Quote(c.ToString());

    private static bool IsHidden(char c) => char.GetUnicodeCategory(c) is UnicodeCategory.Control or UnicodeCategory.Format
        or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator or UnicodeCategory.Surrogate;
}
