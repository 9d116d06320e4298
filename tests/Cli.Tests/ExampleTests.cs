using PtActors.Cli.Script;
using Xunit;

namespace PtActors.Cli.Tests;

/// <summary>
/// The scenarios in <c>examples/</c> run cleanly and print what their <c># =></c> comments (and
/// <c>Examples/*.expected</c>) say; <c>examples/worked-example.pts</c> is the reference worked example.
/// </summary>
public class ExampleTests
{
    public static TheoryData<string> Examples()
    {
        var data = new TheoryData<string>();
        foreach (string path in Directory.GetFiles(ScriptHarness.OutputPath("Examples"), "*.pts").Order(StringComparer.Ordinal))
            data.Add(Path.GetFileNameWithoutExtension(path));
        return data;
    }

    [Theory]
    [MemberData(nameof(Examples))]
    public void ExamplePrintsItsExpectedOutput(string name)
    {
        string script = File.ReadAllText(ScriptHarness.OutputPath("Examples", name + ".pts"));
        string expected = File.ReadAllText(ScriptHarness.OutputPath("Examples", name + ".expected"));

        var result = ScriptHarness.Run(script, $"examples/{name}.pts");

        Assert.Equal("", result.Stderr);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(expected, result.Stdout);
        Assert.Equal(expected.TrimEnd('\n').Split('\n'), ScriptHarness.Annotations(script));
    }

    [Fact]
    public void TheExamplesAreThere()
    {
        var names = Directory.GetFiles(ScriptHarness.OutputPath("Examples"), "*.pts")
            .Select(Path.GetFileNameWithoutExtension).ToList();
        Assert.Contains("worked-example", names);
        Assert.True(names.Count >= 4, "worked example plus instructive scenarios");
    }

    [Fact]
    public void WorkedExampleIsTheReferenceScript()
    {
        static IEnumerable<string> Commands(string path) => File.ReadLines(path)
            .Select(line => string.Join(' ', ScriptParser.Tokenize(line)))
            .Where(line => line.Length > 0);

        Assert.Equal(
            Commands(ScriptHarness.OutputPath("Golden", "worked-example.pts")),
            Commands(ScriptHarness.OutputPath("Examples", "worked-example.pts")));
        Assert.Equal(
            File.ReadAllText(ScriptHarness.OutputPath("Golden", "worked-example.expected")),
            File.ReadAllText(ScriptHarness.OutputPath("Examples", "worked-example.expected")));
    }
}
