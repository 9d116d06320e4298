using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text;

namespace PtActors.Cli.Report;

/// <summary>
/// <c>ptactors report --json FILE [FILE...] --out DIR</c>: one self-contained HTML page (plots embedded as PNG data,
/// no network) and the PNGs, from the JSON of <c>simulate</c> and <c>replay</c> runs and comparisons.
/// </summary>
internal sealed class ReportCommand
{
    /// <summary>Bad input: a file that cannot be read or does not hold what simulate/replay write, or a bad option.</summary>
    public const int ExitUsage = 2;

    private readonly TextWriter _stdout;
    private readonly TextWriter _stderr;
    private readonly Option<string[]> _json;
    private readonly Option<string> _out;

    /// <summary>The command, writing to <paramref name="stdout"/> and <paramref name="stderr"/>.</summary>
    public ReportCommand(TextWriter stdout, TextWriter stderr)
    {
        _stdout = stdout;
        _stderr = stderr;
        _json = new Option<string[]>("--json")
        {
            Description = "JSON files written by simulate --json or replay --json (a run or a comparison)",
            HelpName = "FILE",
            Arity = ArgumentArity.OneOrMore,
            AllowMultipleArgumentsPerToken = true,
            Required = true,
        };
        _out = new Option<string>("--out")
        {
            Description = "Directory to write index.html and the PNGs to (created if missing; files of the same names are replaced)",
            HelpName = "DIR",
            Required = true,
        };
        Command = new Command("report", "Plot runs and comparisons: one self-contained HTML page and its PNGs (ScottPlot).") { _json, _out };
        Command.SetAction(parse => Run(parse.GetValue(_json)!, parse.GetValue(_out)!));
    }

    /// <summary>The <c>report</c> command.</summary>
    public Command Command { get; }

    private int Run(string[] files, string outDir)
    {
        // Every input is read and checked before anything is written.
        var runs = new List<ReportRun>();
        try
        {
            foreach (string file in files)
                runs.AddRange(ReportInput.Read(file));
        }
        catch (ReportInputException e)
        {
            _stderr.WriteLine($"ptactors report: {e.Message}");
            return ExitUsage;
        }
        if (string.IsNullOrWhiteSpace(outDir))
        {
            _stderr.WriteLine("ptactors report: --out: a directory is needed");
            return ExitUsage;
        }
        if (File.Exists(outDir))
        {
            _stderr.WriteLine($"ptactors report: --out '{outDir}' is a file, not a directory");
            return ExitUsage;
        }
        Label(runs, files.Length);
        var plots = ReportPlots.All(runs);
        string html = Html(files, runs, plots);
        try
        {
            Directory.CreateDirectory(outDir);
            int written = 0;
            foreach (var plot in plots)
            {
                if (plot.Png is null)
                    continue;
                string path = Path.Combine(outDir, plot.Name);
                WriteAtomically(path, plot.Png);
                _stdout.WriteLine($"wrote {path}");
                written++;
            }
            string index = Path.Combine(outDir, "index.html");
            WriteAtomically(index, Encoding.UTF8.GetBytes(html));
            _stdout.WriteLine($"wrote {index}");
            _stdout.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"report: {runs.Count} configuration{(runs.Count == 1 ? "" : "s")} from {files.Length} file{(files.Length == 1 ? "" : "s")}, {written} plots, {plots.Count - written} missing"));
            return 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _stderr.WriteLine($"ptactors report: cannot write to --out '{outDir}': {e.Message}");
            return Program.ExitOutputError;
        }
    }

    /// <summary>Names each configuration by the parameters that vary between them (else its file, or its run id).</summary>
    private static void Label(List<ReportRun> runs, int files)
    {
        var varying = new List<string>();
        foreach (string key in ReportInput.ParameterKeys)
        {
            // A parameter varies when the inputs give it two values (a run without it does not make it vary).
            var values = new HashSet<string>(StringComparer.Ordinal);
            foreach (var r in runs)
            {
                if (r.Parameter(key) is { } v)
                    values.Add(v);
            }
            if (values.Count > 1)
                varying.Add(key);
        }
        foreach (var r in runs)
        {
            var parts = new List<string>();
            if (files > 1)
                parts.Add(Path.GetFileNameWithoutExtension(r.File));
            foreach (string key in varying)
            {
                if (r.Parameter(key) is { } v)
                    parts.Add($"{key}={v}");
            }
            if (parts.Count == 0)
                parts.Add(r.Strings.TryGetValue("run_id", out string? id) ? id : Path.GetFileNameWithoutExtension(r.File));
            r.Label = string.Join(' ', parts);
        }
    }

    private static string Html(string[] files, List<ReportRun> runs, List<ReportPlot> plots)
    {
        var h = new StringBuilder();
        static string E(string s) => WebUtility.HtmlEncode(s);
        h.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>PtActors report</title>\n<style>\n")
         .Append("body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1260px}")
         .Append("table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}")
         .Append("th:first-child,td:first-child{text-align:left}figure{margin:2em 0}img{max-width:100%;border:1px solid #eee}")
         .Append(".missing{color:#a33;font-style:italic}figcaption{font-size:.9em;color:#555}\n</style>\n</head>\n<body>\n")
         .Append("<h1>PtActors report</h1>\n<p>Inputs:</p>\n<ul>\n");
        foreach (string f in files)
            h.Append("<li><code>").Append(E(f)).Append("</code></li>\n");
        h.Append("</ul>\n<h2>Configurations</h2>\n<div style=\"overflow-x:auto\"><table>\n<tr><th>configuration</th>");
        foreach (string key in ReportFigures.Table)
            h.Append("<th>").Append(E(key)).Append("</th>");
        h.Append("</tr>\n");
        foreach (var r in runs)
        {
            h.Append("<tr><td>").Append(E(r.Label)).Append("</td>");
            foreach (string key in ReportFigures.Table)
                h.Append("<td>").Append(E(ReportFigures.Display(r, key))).Append("</td>");
            h.Append("</tr>\n");
        }
        h.Append("</table></div>\n<p>– : missing or null in the input (absent, not zero).</p>\n");
        foreach (var p in plots)
        {
            h.Append("<figure id=\"").Append(E(Path.GetFileNameWithoutExtension(p.Name))).Append("\">\n<h2>").Append(E(p.Title)).Append("</h2>\n");
            if (p.Png is null)
                h.Append("<p class=\"missing\">").Append(E(p.Missing ?? "")).Append("</p>\n");
            else
                h.Append("<img alt=\"").Append(E(p.Title)).Append("\" src=\"data:image/png;base64,").Append(Convert.ToBase64String(p.Png)).Append("\">\n")
                 .Append("<figcaption>").Append(E(p.Caption)).Append("</figcaption>\n");
            h.Append("</figure>\n");
        }
        h.Append("</body>\n</html>\n");
        return h.ToString();
    }

    private static void WriteAtomically(string path, byte[] bytes)
    {
        string temp = path + "." + Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + ".tmp";
        try
        {
            File.WriteAllBytes(temp, bytes);
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp))
                File.Delete(temp);
        }
    }
}
