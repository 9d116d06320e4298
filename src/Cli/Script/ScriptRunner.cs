using System.Text;
using PtActors.Engine;

namespace PtActors.Cli.Script;

/// <summary>
/// Runs scenario commands against named paging domains, each in a <see cref="TableMemory"/> of its own, and
/// renders exactly one result line per command. <see cref="Run"/> drives a whole scenario: it reads a line,
/// parses it completely, checks that the domain it names exists, and only then executes it, so a malformed
/// line stops the run with nothing of it done.
/// </summary>
internal sealed class ScriptRunner
{
    /// <summary>Exit code of a run where every line ran.</summary>
    public const int ExitOk = 0;

    /// <summary>Exit code of a malformed line or an unreadable input.</summary>
    public const int ExitMalformed = 2;

    private readonly Dictionary<string, IommuDomain> _domains = new(StringComparer.Ordinal);
    private readonly long[] _buckets = new long[64];
    private readonly DirtyRuns _dirtyRuns = new();
    private readonly StringBuilder _sb = new();

    /// <summary>The domains created so far, by name.</summary>
    public IReadOnlyDictionary<string, IommuDomain> Domains => _domains;

    /// <summary>
    /// Runs every line of <paramref name="input"/>, writing result lines to <paramref name="output"/>. The first
    /// malformed line prints <c>NAME:LINE: reason</c> to <paramref name="error"/> and ends the run with
    /// <see cref="ExitMalformed"/>. When <paramref name="flushEachLine"/> is set, each result line is flushed
    /// as soon as it is written (interactive standard input).
    /// </summary>
    public int Run(TextReader input, string name, TextWriter output, TextWriter error, bool flushEachLine = false)
    {
        var reader = new ScriptLineReader(input);
        int lineNo = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNo++;
            string result;
            try
            {
                var command = ScriptParser.Parse(line);
                if (command is null)
                    continue;
                CheckDomain(command);
                result = ExecuteLine(command, name, lineNo);
            }
            catch (ScriptSyntaxException e)
            {
                output.Flush();
                error.WriteLine($"{name}:{lineNo}: {e.Message}");
                return ExitMalformed;
            }
            output.WriteLine(result);
            if (flushEachLine)
                output.Flush();
        }
        return ExitOk;
    }

    private string ExecuteLine(ScriptCommand command, string name, int lineNo)
    {
        try
        {
            return Execute(command);
        }
        catch (Exception e)
        {
            // Not a user error: the engine failed. Say where, and keep the cause for the caller.
            throw new InvalidOperationException($"{name}:{lineNo}: internal error: {e.GetType().Name}: {e.Message}", e);
        }
    }

    /// <summary>Every command but <c>domain</c> needs a domain that a <c>domain</c> line created successfully.</summary>
    /// <exception cref="ScriptSyntaxException">The domain does not exist.</exception>
    public void CheckDomain(ScriptCommand command)
    {
        if (command is not DomainCommand && !_domains.ContainsKey(command.Domain))
            throw new ScriptSyntaxException($"unknown domain '{command.Domain}' (no domain line has created it)");
    }

    /// <summary>Executes one checked command and returns its result line (without the newline).</summary>
    public string Execute(ScriptCommand command) => command switch
    {
        DomainCommand c => CreateDomain(c),
        MapCommand c => Status(_domains[c.Domain].IommuMap(c.Iova, c.Paddr, c.Size, c.Prot)),
        UnmapCommand c => "unmapped " + Hex(_domains[c.Domain].IommuUnmap(c.Iova, c.Size)),
        UnmapFastCommand c => UnmapFast(_domains[c.Domain], c),
        SyncCommand c => Sync(_domains[c.Domain]),
        PhysCommand c => Phys(_domains[c.Domain], c.Iova),
        CountCommand c => Count(_domains[c.Domain]),
        TopCommand c => Top(_domains[c.Domain]),
        TablesCommand c => "tables " + _domains[c.Domain].TablePages.ToString(Inv),
        DirtyCommand c => Dirty(_domains[c.Domain], c),
        TouchCommand c => Status(_domains[c.Domain].SetDirty(c.Iova)),
        _ => throw new ArgumentOutOfRangeException(nameof(command), command, "Unknown script command."),
    };

    private static IFormatProvider Inv => System.Globalization.CultureInfo.InvariantCulture;

    /// <summary>Lowercase hex with 0x and no leading zeros.</summary>
    public static string Hex(ulong value) => "0x" + value.ToString("x", Inv);

    private static string Error(Errno err) => "error " + err.ToString();

    private static string Status(Errno err) => err == Errno.None ? "ok" : Error(err);

    private string CreateDomain(DomainCommand c)
    {
        var err = IommuDomain.Create(c.Config, new TableMemory(), out var domain);
        if (err != Errno.None)
            return Error(err);
        _domains[c.Domain] = domain!;
        return "ok pgsizes=" + Hex(domain!.PgsizeBitmap);
    }

    private static string UnmapFast(IommuDomain d, UnmapFastCommand c)
        => "unmapped " + Hex(d.IommuUnmapFast(c.Iova, c.Size, d.PendingGather));

    private static string Sync(IommuDomain d)
    {
        var flush = d.IotlbSync(d.PendingGather);
        return flush.Kind switch
        {
            FlushKind.Range => $"flush {Hex(flush.Start)}-{Hex(flush.End)} freed={flush.FreedPages.ToString(Inv)}",
            FlushKind.All => "flush all freed=" + flush.FreedPages.ToString(Inv),
            _ => "flush none freed=0",
        };
    }

    private static string Phys(IommuDomain d, ulong iova) => d.TryIovaToPhys(iova, out ulong pa) switch
    {
        Errno.None => Hex(pa),
        Errno.ENOENT => "none",
        var err => Error(err),
    };

    private string Count(IommuDomain d)
    {
        long total = d.CountLeaves(_buckets);
        _sb.Clear().Append("entries ").Append(total.ToString(Inv));
        for (int lg2 = 0; lg2 < _buckets.Length; lg2++)
        {
            if (_buckets[lg2] != 0)
                _sb.Append(' ').Append(Hex(1UL << lg2)).Append('=').Append(_buckets[lg2].ToString(Inv));
        }
        return _sb.ToString();
    }

    private static string Top(IommuDomain d)
    {
        var range = d.TopRange;
        return $"top_level={d.TopLevel.ToString(Inv)} va={Hex(range.Va)}-{Hex(range.Last)}";
    }

    private string Dirty(IommuDomain d, DirtyCommand c)
    {
        _dirtyRuns.Clear();
        var err = d.ReadAndClearDirty(c.Iova, c.Size, c.NoClear, _dirtyRuns);
        if (err != Errno.None)
            return Error(err);
        _sb.Clear().Append("dirty");
        foreach (var (start, end) in _dirtyRuns.Merge())
            _sb.Append(' ').Append(Hex(start)).Append('-').Append(Hex(end));
        return _sb.ToString();
    }
}
