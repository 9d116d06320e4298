using System.Text;
using System.Text.RegularExpressions;
using PtActors.Cli.Script;
using Xunit;
using Xunit.Abstractions;

namespace PtActors.Cli.Tests;

/// <summary>
/// Seeded fuzzing of <c>ptactors script</c> with malformed scenarios: random mutations of the examples and the
/// golden scenarios (truncated lines and files, random bytes, huge numbers, bad and overlong tokens, empty lines,
/// CRLF, NUL bytes, invalid UTF-8, dropped and duplicated lines). Every input goes through the whole command
/// (<see cref="Program.Run"/>) as raw bytes, as a process reads them. Whatever the input: no exception gets
/// out (that would be exit 70), the exit code is 0 or 2, an exit 2 prints exactly one short printable line
/// <c>NAME:LINE: reason</c> naming the input and a line that exists, and stdout holds one line per command before
/// that line (every command when the exit code is 0).
/// </summary>
public sealed class ScriptFuzzTests(ITestOutputHelper output) : IDisposable
{
    private const int Cases = 10_000;
    private const int Seed = 0x5C1A7;

    private static readonly Regex ErrorLine = new(@"^(?<name>.*?):(?<line>[0-9]+): (?<reason>[^\n]+)\n\z", RegexOptions.CultureInvariant);

    private static readonly string[] HugeNumbers =
    [
        "18446744073709551615", "18446744073709551616", "0xffffffffffffffff", "0x10000000000000000", "16384P", "16383P",
        "0xfffffffffffffK", "99999999999999999999999999999", "0x7fffffffffffffff", "4294967296", "2147483648",
        "0xfffffffffffff000", "0x8000000000000000",
    ];

    private static readonly string[] BadTokens =
    [
        "", "0x", "0X", "4Q", "-1", "+1", "1.5", "0xg", "0b101", "1_000", "rwx", "=", "key=", "=1", "noclear2", "amdv2",
        "x86-64", "vasz=", "flush=all", "sign_extend=2", "napot=yes", "K", "0xK", "4KK", "ß", "é", "\u00ff", "\u202e",
        "domain", "map", "#", "a#b", "r w", "\t", "1e3", "0o17", "٣", "４K",
    ];

    private static readonly byte[][] BadUtf8 =
    [
        [0xff], [0xfe, 0xff], [0xc3, 0x28], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82],
        [0x80], [0xef, 0xbb, 0xbf],
    ];

    private readonly string _dir = Directory.CreateTempSubdirectory("ptactors-fuzz-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void MalformedScriptsGiveAPositionedErrorOrRunAndNeverThrow()
    {
        var seeds = Directory.GetFiles(ScriptHarness.OutputPath("Golden"), "*.pts")
            .Concat(Directory.GetFiles(ScriptHarness.OutputPath("Examples"), "*.pts"))
            .Order(StringComparer.Ordinal)
            .Select(File.ReadAllBytes)
            .ToArray();
        Assert.True(seeds.Length >= 15, $"only {seeds.Length} seed scenarios");

        var rng = new Random(Seed);
        int malformed = 0;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < Cases; i++)
        {
            byte[] input = Mutate(seeds[rng.Next(seeds.Length)], rng);
            // Every 20th case reads a file (its path is the name); the others standard input ("-").
            string name = "-";
            if (i % 20 == 0)
            {
                name = Path.Combine(_dir, $"case{i}.pts");
                File.WriteAllBytes(name, input);
            }
            if (Check(i, name, input))
                malformed++;
        }
        output.WriteLine($"{Cases} cases, {malformed} malformed, {watch.Elapsed.TotalSeconds:0.0} s");
        // The mutations are meant to break scripts: most of them must (the rest still ran cleanly).
        Assert.True(malformed >= Cases / 2, $"only {malformed} of {Cases} mutated scripts were malformed");
    }

    /// <summary>Runs one input; true when it was malformed (exit 2). Fails the test on any broken rule.</summary>
    private static bool Check(int index, string name, byte[] input)
    {
        using var stdin = new StreamReader(new MemoryStream(input), new UTF8Encoding(false));
        using var stdout = new StringWriter { NewLine = "\n" };
        using var stderr = new StringWriter { NewLine = "\n" };
        int exit;
        try
        {
            // A small table bound keeps huge mappings fast (they fail with ENOMEM, a result like any other).
            exit = Program.Run(["script", "--max-table-pages", "256", name], stdin, stdout, stderr);
        }
        catch (Exception e)
        {
            Assert.Fail($"case {index}: {e.GetType().Name} escaped: {e.Message}\n{Show(input)}");
            throw;
        }
        string err = stderr.ToString();
        string context = $"case {index}: exit {exit}, stderr {err}\n{Show(input)}";
        Assert.True(exit is 0 or 2, context);

        string[] lines = Lines(input);
        int results = stdout.ToString().Count(c => c == '\n');
        if (exit == 0)
        {
            Assert.True(err.Length == 0, context);
            Assert.True(results == Commands(lines, lines.Length), context);
            return false;
        }

        var m = ErrorLine.Match(err);
        Assert.True(m.Success, "not one NAME:LINE: reason line: " + context);
        Assert.True(m.Groups["name"].Value == name, context);
        int line = int.Parse(m.Groups["line"].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(line >= 1 && line <= lines.Length, $"line {line} of {lines.Length}: " + context);
        Assert.True(ScriptParser.Tokenize(lines[line - 1]).Count > 0, "an error on a line without a command: " + context);
        Assert.True(results == Commands(lines, line - 1), $"{results} results before line {line}: " + context);
        string reason = m.Groups["reason"].Value;
        Assert.True(reason.Length <= 200, $"a {reason.Length}-character reason: " + context[..Math.Min(context.Length, 400)]);
        Assert.True(!reason.Any(char.IsControl), "a control character in the reason: " + context);
        Assert.DoesNotContain("   at ", err, StringComparison.Ordinal);
        return true;
    }

    /// <summary>The physical lines as the runner reads them: UTF-8 (a BOM skipped), split at \n, a final \r dropped.</summary>
    private static string[] Lines(byte[] input)
    {
        string text = new StreamReader(new MemoryStream(input), new UTF8Encoding(false)).ReadToEnd();
        if (text.Length == 0)
            return [];
        var lines = text.Split('\n').Select(l => l.EndsWith('\r') ? l[..^1] : l).ToList();
        if (text.EndsWith('\n'))
            lines.RemoveAt(lines.Count - 1);
        return [.. lines];
    }

    /// <summary>The command lines (lines with a token before any comment) among the first <paramref name="count"/>.</summary>
    private static int Commands(string[] lines, int count)
        => lines.Take(count).Count(l => ScriptParser.Tokenize(l).Count > 0);

    private static string Show(byte[] input)
    {
        string text = Encoding.UTF8.GetString(input);
        return text.Length <= 600 ? text : text[..600] + $"... ({input.Length} bytes)";
    }

    // ------------------------------------------------------------------ mutations

    private static byte[] Mutate(byte[] seed, Random rng)
    {
        var lines = Split(seed);
        int mutations = 1 + rng.Next(3);
        for (int m = 0; m < mutations; m++)
            lines = MutateOnce(lines, rng);
        return Join(lines, crlf: rng.Next(8) == 0);
    }

    private static List<byte[]> MutateOnce(List<byte[]> lines, Random rng)
    {
        if (lines.Count == 0)
            lines.Add([]);
        int at = rng.Next(lines.Count);
        byte[] line = lines[at];
        switch (rng.Next(12))
        {
            case 0: // truncate a line
                lines[at] = line[..rng.Next(line.Length + 1)];
                break;
            case 1: // truncate the file (maybe in the middle of a line)
                lines = lines.Take(at + 1).ToList();
                lines[^1] = line[..rng.Next(line.Length + 1)];
                break;
            case 2: // random bytes
                lines[at] = Insert(line, rng.Next(line.Length + 1), RandomBytes(rng, 1 + rng.Next(8)));
                break;
            case 3: // a huge number for a token
                lines[at] = ReplaceToken(line, rng, HugeNumbers[rng.Next(HugeNumbers.Length)]);
                break;
            case 4: // a bad token
                lines[at] = ReplaceToken(line, rng, BadTokens[rng.Next(BadTokens.Length)]);
                break;
            case 5: // an overlong token
                lines[at] = ReplaceToken(line, rng, Overlong(rng));
                break;
            case 6: // empty and blank lines
                lines.Insert(at, rng.Next(2) == 0 ? [] : Encoding.ASCII.GetBytes(" \t "));
                break;
            case 7: // a CR inside a line, or CRLF at its end
                lines[at] = Insert(line, rng.Next(2) == 0 ? line.Length : rng.Next(line.Length + 1), [(byte)'\r']);
                break;
            case 8: // NUL bytes
                lines[at] = Insert(line, rng.Next(line.Length + 1), new byte[1 + rng.Next(3)]);
                break;
            case 9: // invalid UTF-8
                lines[at] = Insert(line, rng.Next(line.Length + 1), BadUtf8[rng.Next(BadUtf8.Length)]);
                break;
            case 10: // drop a line (a domain line, say: later lines then name an unknown domain)
                lines.RemoveAt(at);
                break;
            default: // a line again, somewhere else (a second iommu line is malformed)
                lines.Insert(rng.Next(lines.Count + 1), line);
                break;
        }
        return lines;
    }

    private static string Overlong(Random rng)
    {
        int n = rng.Next(4) == 0 ? 100_000 + rng.Next(100_000) : 41 + rng.Next(2_000);
        return rng.Next(3) switch
        {
            0 => new string('9', n),
            1 => "0x" + new string('f', n),
            _ => new string((char)('a' + rng.Next(26)), n),
        };
    }

    private static byte[] RandomBytes(Random rng, int n)
    {
        var b = new byte[n];
        rng.NextBytes(b);
        return b;
    }

    /// <summary>Replaces a random space-separated token of <paramref name="line"/> (or appends one).</summary>
    private static byte[] ReplaceToken(byte[] line, Random rng, string token)
    {
        var words = Encoding.UTF8.GetString(line).Split(' ').ToList();
        int i = rng.Next(words.Count + 1);
        if (i == words.Count)
            words.Add(token);
        else
            words[i] = token;
        return Encoding.UTF8.GetBytes(string.Join(' ', words));
    }

    private static byte[] Insert(byte[] line, int at, byte[] bytes) => [.. line[..at], .. bytes, .. line[at..]];

    private static List<byte[]> Split(byte[] text)
    {
        var lines = new List<byte[]>();
        int start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == '\n')
            {
                lines.Add(text[start..i]);
                start = i + 1;
            }
        }
        if (start < text.Length)
            lines.Add(text[start..]);
        return lines;
    }

    private static byte[] Join(List<byte[]> lines, bool crlf)
    {
        var ms = new MemoryStream();
        foreach (byte[] line in lines)
        {
            ms.Write(line);
            if (crlf)
                ms.WriteByte((byte)'\r');
            ms.WriteByte((byte)'\n');
        }
        return ms.ToArray();
    }
}
