using Xunit;

namespace PtActors.Cli.Tests;

/// <summary>
/// Golden scenarios: every <c>Golden/*.pts</c> runs through the runner in-process and must print exactly its
/// <c>.expected</c> file and exit 0. The expected files were reasoned out line by line from SPEC.md and
/// SCRIPT-FORMAT.md (each command line of a golden also carries its result as a <c># =></c> comment);
/// <c>worked-example</c> is the worked example of SCRIPT-FORMAT.md verbatim.
/// </summary>
public class GoldenTests
{
    public static TheoryData<string> Scenarios()
    {
        var data = new TheoryData<string>();
        foreach (string path in Directory.GetFiles(ScriptHarness.OutputPath("Golden"), "*.pts").Order(StringComparer.Ordinal))
            data.Add(Path.GetFileNameWithoutExtension(path));
        return data;
    }

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void ScenarioPrintsExactlyItsExpectedOutput(string name)
    {
        string script = File.ReadAllText(ScriptHarness.OutputPath("Golden", name + ".pts"));
        string expected = File.ReadAllText(ScriptHarness.OutputPath("Golden", name + ".expected"));

        var result = ScriptHarness.Run(script, name + ".pts");

        Assert.Equal("", result.Stderr);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(expected, result.Stdout);
    }

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void AnnotationsAgreeWithExpectedFile(string name)
    {
        if (name == "worked-example")
            return; // kept verbatim, without annotations
        string script = File.ReadAllText(ScriptHarness.OutputPath("Golden", name + ".pts"));
        string[] expected = File.ReadAllLines(ScriptHarness.OutputPath("Golden", name + ".expected"));
        Assert.Equal(expected, ScriptHarness.Annotations(script));
    }

    [Fact]
    public void EveryFormatAndEveryCommandIsCovered()
    {
        var tokens = new HashSet<string>(StringComparer.Ordinal);
        foreach (string path in Directory.GetFiles(ScriptHarness.OutputPath("Golden"), "*.pts"))
        {
            foreach (string line in File.ReadLines(path))
                tokens.UnionWith(Script.ScriptParser.Tokenize(line));
        }
        foreach (string command in Script.ScriptParser.CommandNames)
            Assert.Contains(command, tokens);
        foreach (string format in new[] { "amdv1", "x86_64", "vtdss", "riscv64" })
            Assert.Contains(format, tokens);
    }

    [Fact]
    public void WorkedExampleMatchesTheReferenceTable()
    {
        // SCRIPT-FORMAT.md shows the example as "command    result" rows.
        string[] commands = File.ReadAllLines(ScriptHarness.OutputPath("Golden", "worked-example.pts"));
        string[] results = File.ReadAllLines(ScriptHarness.OutputPath("Golden", "worked-example.expected"));
        Assert.Equal(30, commands.Length);
        Assert.Equal(commands.Length, results.Length);
        Assert.Equal("domain x x86_64", commands[0]);
        Assert.Equal("ok pgsizes=0x40201000", results[0]);
        Assert.Equal("unmap d 0xfffffffffffff000 4K", commands[^1]);
        Assert.Equal("unmapped 0x1000", results[^1]);
    }
}
