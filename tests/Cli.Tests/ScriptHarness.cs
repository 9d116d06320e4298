using PtActors.Cli.Script;

namespace PtActors.Cli.Tests;

/// <summary>What one in-process run of a scenario printed and returned.</summary>
internal sealed record ScriptResult(int ExitCode, string Stdout, string Stderr, ScriptRunner Runner)
{
    /// <summary>The stdout lines (without the final empty one).</summary>
    public string[] Lines => Stdout.Length == 0 ? [] : Stdout.TrimEnd('\n').Split('\n');
}

/// <summary>Runs scenarios through <see cref="ScriptRunner"/> in-process.</summary>
internal static class ScriptHarness
{
    /// <summary>Runs <paramref name="script"/> as if read from a file called <paramref name="name"/>.</summary>
    public static ScriptResult Run(string script, string name = "test.pts")
    {
        var runner = new ScriptRunner();
        using var stdout = new StringWriter { NewLine = "\n" };
        using var stderr = new StringWriter { NewLine = "\n" };
        int rc = runner.Run(new StringReader(script), name, stdout, stderr);
        return new ScriptResult(rc, stdout.ToString(), stderr.ToString(), runner);
    }

    /// <summary>A file copied next to the test assembly.</summary>
    public static string OutputPath(params string[] parts)
        => Path.Combine([AppContext.BaseDirectory, .. parts]);

    /// <summary>The expected-result annotations (<c># => ...</c>) of the command lines of a scenario.</summary>
    public static List<string> Annotations(string script)
    {
        var results = new List<string>();
        foreach (string line in script.Split('\n'))
        {
            int hash = line.IndexOf('#', StringComparison.Ordinal);
            string code = hash < 0 ? line : line[..hash];
            if (code.Trim().Length == 0)
                continue;
            string comment = hash < 0 ? "" : line[(hash + 1)..].TrimStart();
            results.Add(comment.StartsWith("=>", StringComparison.Ordinal)
                ? comment[2..].Trim()
                : throw new InvalidDataException($"command without '# =>' annotation: {line}"));
        }
        return results;
    }
}
