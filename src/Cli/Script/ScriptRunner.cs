using System.Text;
using PtActors.Engine;
using PtActors.Engine.Hardware;

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

    /// <summary>
    /// Exit code when the results cannot be written (a full disk, a closed pipe): EX_IOERR of sysexits.h, which
    /// SCRIPT-FORMAT.md leaves open. The input is not to blame, so this is never <see cref="ExitMalformed"/>.
    /// </summary>
    public const int ExitOutputError = 74;

    private readonly Dictionary<string, IommuDomain> _domains = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IommuUnit> _units = new(StringComparer.Ordinal);
    private readonly Dictionary<string, IommuUnit> _deviceUnits = new(StringComparer.Ordinal);
    private readonly SimClock _clock = new();
    private readonly long[] _buckets = new long[64];
    private readonly DirtyRuns _dirtyRuns = new();
    private readonly StringBuilder _sb = new();

    /// <summary>
    /// Creates a runner whose domains may each hold at most <paramref name="maxTablePages"/> table pages at once
    /// (<see cref="TableMemory.PageLimit"/>); a <c>map</c> that needs more fails with ENOMEM.
    /// </summary>
    public ScriptRunner(int maxTablePages = TableMemory.DefaultPageLimit)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxTablePages);
        MaxTablePages = maxTablePages;
    }

    /// <summary>The table-page bound of each domain this runner creates.</summary>
    public int MaxTablePages { get; }

    /// <summary>The domains created so far, by name.</summary>
    public IReadOnlyDictionary<string, IommuDomain> Domains => _domains;

    /// <summary>
    /// Runs every line of <paramref name="input"/>, writing result lines to <paramref name="output"/>. The first
    /// malformed line prints <c>NAME:LINE: reason</c> to <paramref name="error"/> and ends the run with
    /// <see cref="ExitMalformed"/>; so does input that cannot be read (<c>NAME: reason</c>). Output that cannot be
    /// written prints <c>ptactors script: cannot write the output: reason</c> and ends the run with
    /// <see cref="ExitOutputError"/>. When <paramref name="flushEachLine"/> is set, each result line is flushed
    /// as soon as it is written (interactive standard input).
    /// </summary>
    public int Run(TextReader input, string name, TextWriter output, TextWriter error, bool flushEachLine = false)
    {
        var reader = new ScriptLineReader(input);
        int lineNo = 0;
        try
        {
            while (true)
            {
                string? line;
                try
                {
                    line = reader.ReadLine();
                }
                catch (Exception e) when (ScriptIo.IsInputFailure(e))
                {
                    output.Flush();
                    ScriptIo.Report(error, $"{name}: cannot read line {(lineNo + 1).ToString(Inv)}: {ScriptIo.Reason(e)}");
                    return ExitMalformed;
                }
                if (line is null)
                    break;
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
                    ScriptIo.Report(error, $"{name}:{lineNo.ToString(Inv)}: {e.Message}");
                    return ExitMalformed;
                }
                output.WriteLine(result);
                if (flushEachLine)
                    output.Flush();
            }
            output.Flush();
            return ExitOk;
        }
        catch (Exception e) when (ScriptIo.IsOutputFailure(e))
        {
            ScriptIo.Report(error, $"ptactors script: cannot write the output: {ScriptIo.Reason(e)}");
            return ExitOutputError;
        }
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

    /// <summary>
    /// Every command but <c>domain</c> needs a domain that a <c>domain</c> line created successfully; <c>attach</c>
    /// and <c>stats</c> need a unit an <c>iommu</c> line created; a unit is created once.
    /// </summary>
    /// <exception cref="ScriptSyntaxException">The domain or unit does not exist (or the unit already does).</exception>
    public void CheckDomain(ScriptCommand command)
    {
        switch (command)
        {
            case DomainCommand:
                break;
            case OnDomain c:
                RequireDomain(c.Domain);
                break;
            case AttachCommand c:
                RequireUnit(c.Unit);
                RequireDomain(c.Domain);
                break;
            case StatsCommand c:
                RequireUnit(c.Unit);
                break;
            case IommuCommand c when _units.ContainsKey(c.Unit):
                throw new ScriptSyntaxException($"IOMMU unit {ScriptText.Quote(c.Unit)} already exists");
        }
    }

    private void RequireDomain(string name)
    {
        if (!_domains.ContainsKey(name))
            throw new ScriptSyntaxException($"unknown domain {ScriptText.Quote(name)} (no domain line has created it)");
    }

    private void RequireUnit(string name)
    {
        if (!_units.ContainsKey(name))
            throw new ScriptSyntaxException($"unknown IOMMU unit {ScriptText.Quote(name)} (no iommu line has created it)");
    }

    /// <summary>Executes one checked command and returns its result line (without the newline).</summary>
    public string Execute(ScriptCommand command) => command switch
    {
        DomainCommand c => CreateDomain(c),
        MapCommand c => Status(_domains[c.Domain].IommuMap(c.Iova, c.Paddr, c.Size, c.Prot)),
        UnmapCommand c => "unmapped " + Hex(Unmap(_domains[c.Domain], c.Iova, c.Size)),
        UnmapFastCommand c => UnmapFast(_domains[c.Domain], c),
        SyncCommand c => Sync(_domains[c.Domain]),
        PhysCommand c => Phys(_domains[c.Domain], c.Iova),
        CountCommand c => Count(_domains[c.Domain]),
        TopCommand c => Top(_domains[c.Domain]),
        TablesCommand c => "tables " + _domains[c.Domain].TablePages.ToString(Inv),
        DirtyCommand c => Dirty(_domains[c.Domain], c),
        TouchCommand c => Status(_domains[c.Domain].SetDirty(c.Iova)),
        IommuCommand c => CreateUnit(c),
        AttachCommand c => Attach(c),
        DetachCommand c => Detach(c),
        DmaCommand c => Dma(c),
        AdvanceCommand c => Advance(c),
        StatsCommand c => "stats" + _units[c.Unit].Stats.ToFields(),
        _ => throw new ArgumentOutOfRangeException(nameof(command), command, "Unknown script command."),
    };

    private static IFormatProvider Inv => System.Globalization.CultureInfo.InvariantCulture;

    /// <summary>Lowercase hex with 0x and no leading zeros.</summary>
    public static string Hex(ulong value) => "0x" + value.ToString("x", Inv);

    private static string Error(Errno err) => "error " + err.ToString();

    private static string Status(Errno err) => err == Errno.None ? "ok" : Error(err);

    private string CreateDomain(DomainCommand c)
    {
        var err = IommuDomain.Create(c.Config, new TableMemory(pageLimit: MaxTablePages), out var domain);
        if (err != Errno.None)
            return Error(err);
        _domains[c.Domain] = domain!;
        return "ok pgsizes=" + Hex(domain!.PgsizeBitmap);
    }

    /// <summary>unmap: through the unit's flush policy when the domain is bound to one, else iommu_unmap.</summary>
    private ulong Unmap(IommuDomain d, ulong iova, ulong size)
    {
        foreach (var unit in _units.Values)
        {
            if (unit.Owns(d))
                return unit.Unmap(d, iova, size);
        }
        return d.IommuUnmap(iova, size);
    }

    private string CreateUnit(IommuCommand c)
    {
        _units.Add(c.Unit, new IommuUnit(c.Unit, c.Config, _clock));
        return "ok";
    }

    private string Attach(AttachCommand c)
    {
        var unit = _units[c.Unit];
        if (_deviceUnits.TryGetValue(c.Device, out var old) && !ReferenceEquals(old, unit))
            old.Detach(old.Device(c.Device));
        var err = unit.Attach(unit.Device(c.Device), _domains[c.Domain]);
        if (err != Errno.None)
            return Error(err);
        _deviceUnits[c.Device] = unit;
        return "ok";
    }

    private string Detach(DetachCommand c)
        => _deviceUnits.TryGetValue(c.Device, out var unit) ? Status(unit.Detach(unit.Device(c.Device))) : Error(Errno.ENODEV);

    private string Dma(DmaCommand c)
    {
        if (!_deviceUnits.TryGetValue(c.Device, out var unit))
            return "fault reason=notattached";
        var r = unit.Dma(unit.Device(c.Device), c.Iova, c.Write);
        return r.Outcome switch
        {
            DmaOutcome.Hit => $"ok {Hex(r.Pa)} hit",
            DmaOutcome.Miss => $"ok {Hex(r.Pa)} miss",
            DmaOutcome.Stale => $"ok {Hex(r.Pa)} stale",
            _ => "fault reason=" + r.Reason.ToString().ToLowerInvariant(),
        };
    }

    private string Advance(AdvanceCommand c)
    {
        long before = 0;
        foreach (var u in _units.Values)
            before += u.Stats.TimedFlushes;
        _clock.Advance(c.Nanoseconds);
        long after = 0;
        foreach (var u in _units.Values)
            after += u.Stats.TimedFlushes;
        return $"ok flushes={(after - before).ToString(Inv)} now={_clock.NowNs.ToString(Inv)}ns";
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
