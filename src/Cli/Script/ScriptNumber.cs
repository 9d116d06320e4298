namespace PtActors.Cli.Script;

/// <summary>
/// Numbers of the scenario format: decimal, or hex after <c>0x</c>/<c>0X</c>, with an optional binary suffix
/// K, M, G, T or P in either case that multiplies by 2^10 .. 2^50 (also after hex: <c>0x10K</c> = 0x4000).
/// Everything is unsigned 64-bit; a value above 2^64-1, before or after the suffix, is malformed.
/// </summary>
internal static class ScriptNumber
{
    /// <summary>Parses <paramref name="token"/> or throws <see cref="ScriptSyntaxException"/>.</summary>
    public static ulong Parse(string token)
    {
        if (!TryParse(token, out ulong value, out bool overflow))
        {
            throw new ScriptSyntaxException(overflow
                ? $"number {ScriptText.Quote(token)} is above 2^64-1"
                : $"bad number {ScriptText.Quote(token)}");
        }
        return value;
    }

    /// <summary>
    /// Parses <paramref name="token"/>; false when it is not a number (<paramref name="overflow"/> tells
    /// whether it was one, but too large).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<char> token, out ulong value, out bool overflow)
    {
        value = 0;
        overflow = false;
        if (token.IsEmpty)
            return false;

        int shift = SuffixShift(token[^1]);
        if (shift > 0)
            token = token[..^1];

        ulong v = 0;
        if (token.Length > 2 && token[0] == '0' && (token[1] == 'x' || token[1] == 'X'))
        {
            foreach (char c in token[2..])
            {
                int digit = HexDigit(c);
                if (digit < 0)
                {
                    overflow = false;
                    return false;
                }
                if (v > ulong.MaxValue >> 4)
                    overflow = true;
                v = (v << 4) | (uint)digit;
            }
        }
        else
        {
            if (token.IsEmpty)
                return false;
            foreach (char c in token)
            {
                if (c is < '0' or > '9')
                {
                    overflow = false;
                    return false;
                }
                ulong digit = (uint)(c - '0');
                if (v > (ulong.MaxValue - digit) / 10)
                    overflow = true;
                v = unchecked((v * 10) + digit);
            }
        }
        if (overflow)
            return false;
        if (shift > 0 && v > ulong.MaxValue >> shift)
        {
            overflow = true;
            return false;
        }
        value = v << shift;
        return true;
    }

    private static int SuffixShift(char c) => char.ToUpperInvariant(c) switch
    {
        'K' => 10,
        'M' => 20,
        'G' => 30,
        'T' => 40,
        'P' => 50,
        _ => 0,
    };

    private static int HexDigit(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => -1,
    };
}
