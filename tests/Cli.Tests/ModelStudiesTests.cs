using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit;

namespace PtActors.Cli.Tests;

/// <summary>
/// The worked studies of docs/model.md run from the commands shown there, and the figures their tables print are
/// what those commands give (a figure in the docs is a claim: this keeps it true as the model changes).
/// </summary>
public sealed class ModelStudiesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ptactors-studies-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Each study's section, with its command (continuation lines joined).</summary>
    public static TheoryData<string> Studies()
    {
        var data = new TheoryData<string>();
        foreach (var (title, _, _) in Sections())
            data.Add(title);
        return data;
    }

    private static List<(string Title, string Command, string Text)> Sections()
    {
        string doc = File.ReadAllText(ScriptHarness.OutputPath("Docs", "model.md"));
        var sections = new List<(string, string, string)>();
        foreach (Match m in Regex.Matches(doc, @"^### (.+)\n([\s\S]*?)(?=^### |^## |\z)", RegexOptions.Multiline))
        {
            var command = Regex.Match(m.Groups[2].Value, @"^    ptactors (simulate .+?)(?:\n(?!    ))", RegexOptions.Multiline | RegexOptions.Singleline);
            if (command.Success)
                sections.Add((m.Groups[1].Value.Trim(), Regex.Replace(command.Groups[1].Value, @"\\\n\s+", " "), m.Groups[2].Value));
        }
        return sections;
    }

    [Fact]
    public void TheDocHasItsRunnableStudies() => Assert.True(Sections().Count >= 2);

    [Theory]
    [MemberData(nameof(Studies))]
    public void AStudyGivesTheFiguresItsTableShows(string title)
    {
        var (_, command, text) = Sections().Single(s => s.Title == title);
        string json = Path.Combine(_dir, "study.json");
        var args = Regex.Replace(command.Trim(), @"--json \S+", "").Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
        args.AddRange(["--json", json]);
        var r = EndToEndTests.Ptactors([.. args]);
        Assert.True(r.Exit == 0, r.Stderr);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(json));
        int checkedFigures = 0;
        foreach (var run in doc.RootElement.GetProperty("runs").EnumerateArray())
        {
            foreach (string key in new[] { "throughput_ratio", "cpu_utilization" })
            {
                string shown = run.GetProperty(key).GetDouble().ToString("0.0000", CultureInfo.InvariantCulture);
                Assert.Contains("| " + shown + " |", text, StringComparison.Ordinal);
                checkedFigures++;
            }
            string invalidations = run.GetProperty("invalidations").GetInt64().ToString(CultureInfo.InvariantCulture);
            Assert.True(text.Contains(invalidations, StringComparison.Ordinal)
                || text.Contains(Regex.Replace(invalidations, @"\B(?=(\d{3})+$)", " "), StringComparison.Ordinal)
                || title.Contains("CPUs", StringComparison.Ordinal), $"{title}: invalidations {invalidations} not in the doc");
        }
        Assert.True(checkedFigures >= 4);
    }
}
