using PtActors.Cli.Script;
using Xunit;

namespace PtActors.Cli.Tests;

/// <summary>Input text echoed in error messages: at most 40 characters, quoted, on one printable line.</summary>
public class ScriptTextTests
{
    [Fact]
    public void ShortTokensAreEchoedWhole()
    {
        Assert.Equal("'rwx'", ScriptText.Quote("rwx"));
        Assert.Equal("''", ScriptText.Quote(""));
        string forty = new('a', 40);
        Assert.Equal($"'{forty}'", ScriptText.Quote(forty));
    }

    [Fact]
    public void LongTokensAreCutAfter40Characters()
    {
        string token = "0x" + new string('f', 39); // 41 characters
        Assert.Equal($"'0x{new string('f', 38)}...'", ScriptText.Quote(token));
        // A surrogate pair counts as one character and is never split.
        string emoji = string.Concat(Enumerable.Repeat("\U0001F600", 41));
        Assert.Equal($"'{string.Concat(Enumerable.Repeat("\U0001F600", 40))}...'", ScriptText.Quote(emoji));
    }

    [Fact]
    public void ControlCharactersAreEscaped()
    {
        Assert.Equal(@"'a\x00b\x0dc\x1b'", ScriptText.Quote("a\0b\rc\u001b"));
        Assert.Equal(@"'\u202e\u2028'", ScriptText.Quote("\u202e\u2028"));
        Assert.Equal(@"'\ud800x'", ScriptText.Quote("\ud800x")); // a lone surrogate
        Assert.Equal("'\uFFFD'", ScriptText.Quote("\uFFFD")); // what invalid UTF-8 reads as: printable
    }

    [Theory]
    [InlineData("map a 0x0 0x0 {0}", "bad number ")]
    [InlineData("map a 0x0 0x0 4K {0}", "bad PROT letter 'x' in ")]
    [InlineData("{0} a", "unknown command ")]
    [InlineData("count {0}", "unknown domain ")]
    [InlineData("domain b amdv1 {0}", "option ")]
    [InlineData("domain b {0}", "unknown format ")]
    [InlineData("map a 0x0 0x0 4K rw {0}", "extra argument ")]
    [InlineData("dirty a 0x0 4K {0}", "bad dirty flag ")]
    public void A10MegabyteTokenIsNotEchoedWhole(string template, string reason)
    {
        string token = "x" + new string('9', 10 * 1024 * 1024);
        string line = string.Format(System.Globalization.CultureInfo.InvariantCulture, template, token);
        var r = ScriptHarness.Run("domain a amdv1\n" + line + "\n");
        Assert.Equal(2, r.ExitCode);
        Assert.StartsWith("test.pts:2: " + reason, r.Stderr, StringComparison.Ordinal);
        Assert.Contains("'x" + new string('9', 39) + "...'", r.Stderr, StringComparison.Ordinal);
        Assert.True(r.Stderr.Length < 300, $"{r.Stderr.Length} characters of error message");
        Assert.EndsWith("\n", r.Stderr, StringComparison.Ordinal);
        Assert.Equal(1, r.Stderr.Count(c => c == '\n'));
    }

    [Fact]
    public void ANulInATokenStaysVisible()
    {
        var r = ScriptHarness.Run("domain a amdv1\nmap a 0x0 0x0 4K r\0w\n");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("test.pts:2: bad PROT letter '\\x00' in 'r\\x00w' (letters are rwcnmp)\n", r.Stderr);
    }
}
