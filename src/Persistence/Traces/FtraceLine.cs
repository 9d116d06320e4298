namespace PtActors.Persistence.Traces;

/// <summary>What one line of an ftrace / <c>trace-cmd report</c> text is.</summary>
public enum FtraceKind : byte
{
    /// <summary>A blank line, a comment or a header (<c># tracer: nop</c>, <c>cpus=4</c>, <c>CPU 0 is empty</c>,
    /// <c>version = 6</c>, <c>CPU:1 [LOST 3 EVENTS]</c>, a <c>=&gt;</c> stack line).</summary>
    Skip,
    /// <summary>A well-formed event line of an event the import does not use.</summary>
    Other,
    /// <summary>A line the parser could not read; <see cref="FtraceEvent.Reason"/> says which field.</summary>
    Malformed,
    /// <summary><c>iommu:map</c>.</summary>
    Map,
    /// <summary><c>iommu:unmap</c>.</summary>
    Unmap,
    /// <summary><c>iommu:io_page_fault</c>.</summary>
    IoPageFault,
    /// <summary><c>dma:dma_map_page</c>, <c>dma_map_phys</c>, <c>dma_map_resource</c>, <c>dma_map_sg</c>.</summary>
    DmaMap,
    /// <summary><c>dma:dma_unmap_page</c>, <c>dma_unmap_phys</c>, <c>dma_unmap_resource</c>, <c>dma_unmap_sg</c>.</summary>
    DmaUnmap,
    /// <summary><c>dma:dma_alloc</c>, <c>dma_alloc_pages</c>, <c>dma_alloc_sgt</c>.</summary>
    DmaAlloc,
    /// <summary><c>dma:dma_free</c>, <c>dma_free_pages</c>, <c>dma_free_sgt</c>.</summary>
    DmaFree,
}

/// <summary>The <c>dir=</c> field of the dma events (<c>decode_dma_data_direction</c>).</summary>
public enum DmaDirection : byte
{
    /// <summary>No <c>dir=</c> field (the 6.12 <c>dma_alloc</c>/<c>dma_free</c> layout) or an unknown word.</summary>
    Unknown,
    /// <summary><c>BIDIRECTIONAL</c>.</summary>
    Bidirectional,
    /// <summary><c>TO_DEVICE</c>: the device reads.</summary>
    ToDevice,
    /// <summary><c>FROM_DEVICE</c>: the device writes.</summary>
    FromDevice,
    /// <summary><c>NONE</c>.</summary>
    None,
}

/// <summary>Which of the two <c>iommu:map</c>/<c>iommu:unmap</c> layouts a line used.</summary>
public enum IommuLayout : byte
{
    /// <summary>Not an iommu map/unmap line.</summary>
    None,
    /// <summary>Since 2022 (Linux 5.19): <c>iova=0x… - 0x… paddr=…</c> — the second address is <c>iova + size</c>.</summary>
    Range,
    /// <summary>Before: <c>iova=0x… paddr=0x… size=…</c> / <c>iova=0x… size=… unmapped_size=…</c>.</summary>
    Legacy,
}

/// <summary>
/// One parsed line. Text fields (task, device, driver) are ranges into the line that was parsed, so parsing
/// allocates nothing but the <see cref="Reason"/> of a malformed line. Numbers the event does not carry are 0.
/// </summary>
public readonly record struct FtraceEvent
{
    /// <summary>What the line is.</summary>
    public FtraceKind Kind { get; init; }
    /// <summary>For <see cref="FtraceKind.Malformed"/>: a short reason naming the field.</summary>
    public string? Reason { get; init; }
    /// <summary>The task name (<c>comm</c>; may hold spaces and dashes, <c>&lt;idle&gt;</c>, <c>&lt;...&gt;</c>).</summary>
    public Range Task { get; init; }
    /// <summary>The task's pid.</summary>
    public int Pid { get; init; }
    /// <summary>The CPU whose buffer recorded it.</summary>
    public int Cpu { get; init; }
    /// <summary>The timestamp in nanoseconds, exact (<c>seconds.fraction</c> with 1 to 9 fraction digits).</summary>
    public ulong TimestampNs { get; init; }
    /// <summary>The event name without its system (<c>map</c>, <c>dma_map_phys</c>, ...).</summary>
    public Range EventName { get; init; }
    /// <summary>Map/unmap/fault: the IOVA. Dma events: <c>dma_addr</c> (for <c>dma_map_sg</c> the lowest of
    /// <c>dma_addrs</c>).</summary>
    public ulong Iova { get; init; }
    /// <summary>Map/unmap: <c>iova + size</c> (printed in the current layout, computed in the legacy one).
    /// Dma events with a known range: the end of it.</summary>
    public ulong End { get; init; }
    /// <summary>Map: <c>paddr</c>; dma map events: <c>phys_addr</c> when printed.</summary>
    public ulong Paddr { get; init; }
    /// <summary>Map/unmap: <c>size</c> (the requested size for unmap). Dma events: <c>size</c>.</summary>
    public ulong Size { get; init; }
    /// <summary>Unmap: <c>unmapped_size</c> as the kernel recorded it.</summary>
    public ulong UnmappedSize { get; init; }
    /// <summary>Map/unmap: which layout the line used.</summary>
    public IommuLayout Layout { get; init; }
    /// <summary>Dma events and faults: the device name (<c>dev_name</c>, e.g. <c>0000:01:00.0</c>).</summary>
    public Range Device { get; init; }
    /// <summary>Faults: the driver name (empty range when the kernel printed none).</summary>
    public Range Driver { get; init; }
    /// <summary>Faults: <c>flags</c>.</summary>
    public int Flags { get; init; }
    /// <summary>Dma events: <c>dir=</c>.</summary>
    public DmaDirection Direction { get; init; }
    /// <summary>Dma events: whether the event carries an IOVA range (<c>dma_unmap_sg</c> prints only physical
    /// addresses; a failed <c>dma_alloc</c> prints <c>dma_addr=0</c>; a failed map prints
    /// <c>DMA_MAPPING_ERROR</c>).</summary>
    public bool HasRange { get; init; }
    /// <summary>Dma events: whether the kernel traces it before the iommu work it causes (<c>dma_free*</c>,
    /// <c>dma_unmap_sg</c>) rather than after (every map, alloc and single unmap).</summary>
    public bool TracedBefore { get; init; }

    /// <summary>A malformed line.</summary>
    public static FtraceEvent Bad(string reason) => new() { Kind = FtraceKind.Malformed, Reason = reason };
}

/// <summary>
/// Parses one line of Linux ftrace text: the raw <c>trace</c> / <c>trace_pipe</c> file
/// (<c>task-pid [cpu] flags timestamp: event: fields</c>, with or without the irq-flags column, with or without a
/// <c>(tgid)</c> column) and <c>trace-cmd report</c> (<c>task-pid [cpu] timestamp: event: fields</c>, possibly
/// <c>system:event</c>, or a latency column <c>0d..1</c> instead of <c>[cpu]</c>). See docs/ftrace-import.md.
/// </summary>
/// <remarks>
/// Decisions: the timestamp is the first whitespace-delimited token of the form <c>digits[.digits]</c> followed
/// by <c>:</c> and a blank (so a task name may hold spaces and dashes, but not such a token); the pid is the digits
/// after the last <c>-</c> before the CPU column; a timestamp without a fraction is a raw counter taken as
/// nanoseconds. A bare <c>map</c>/<c>unmap</c>/<c>io_page_fault</c> is iommu's only when its fields start with
/// <c>IOMMU:</c> (otherwise <see cref="FtraceKind.Other"/>); with a system prefix the system must be
/// <c>iommu</c> (or <c>dma</c> for the dma events). Hex fields take an optional <c>0x</c>; decimal fields do not.
/// </remarks>
public static class FtraceLine
{
    private const DmaDirection NoDir = DmaDirection.Unknown;

    /// <summary>Parses <paramref name="line"/> (without its line break; a trailing <c>\r</c> is ignored).</summary>
    public static FtraceEvent Parse(ReadOnlySpan<char> line)
    {
        int len = line.Length;
        while (len > 0 && IsBlank(line[len - 1])) len--;
        int start = 0;
        while (start < len && IsBlank(line[start])) start++;
        if (start == len || line[start] == '#') return default;   // Kind = Skip
        line = line[..len];

        int tsStart = FindTimestamp(line, start, out int tsEnd);
        if (tsStart < 0) return Header(line[start..]) ? default : FtraceEvent.Bad("timestamp: no 'SECONDS.FRACTION:' field");
        if (!ParseTimestamp(line[tsStart..tsEnd], out ulong ts)) return FtraceEvent.Bad("timestamp: out of range");

        // The prefix: task-pid, optional (tgid), [cpu] or a latency column, optional flags.
        var prefix = line[..tsStart].TrimEnd();
        int cpu, taskPidEnd;
        int open = prefix.LastIndexOf('[');
        if (open >= 0)
        {
            int close = prefix[open..].IndexOf(']');
            if (close < 0 || !Int(prefix[(open + 1)..(open + close)], out cpu))
                return FtraceEvent.Bad("cpu: not a number in [...]");
            taskPidEnd = open;
        }
        else
        {
            int sp = prefix.LastIndexOf(' ');
            if (sp < 0) return FtraceEvent.Bad("cpu: missing");
            var lat = prefix[(sp + 1)..];
            int d = 0;
            while (d < lat.Length && char.IsAsciiDigit(lat[d])) d++;
            if (d == 0 || !Int(lat[..d], out cpu))
                return FtraceEvent.Bad("cpu: missing");
            taskPidEnd = sp;
        }
        var taskPid = line[..taskPidEnd].TrimEnd();
        if (taskPid.Length > 0 && taskPid[^1] == ')')   // the (tgid) column
        {
            int p = taskPid.LastIndexOf('(');
            if (p < 0) return FtraceEvent.Bad("tgid: unbalanced ')'");
            taskPid = taskPid[..p].TrimEnd();
        }
        int dash = taskPid.LastIndexOf('-');
        if (dash < 0) return FtraceEvent.Bad("task-pid: no '-PID'");
        if (!Int(taskPid[(dash + 1)..], out int pid))
            return FtraceEvent.Bad("pid: not a number");
        int taskStart = start;
        if (taskStart > dash) return FtraceEvent.Bad("task-pid: no task name");

        // The event name: up to the first ':' followed by a blank (or the end); "system:event" splits at the last ':'.
        int nameStart = tsEnd + 1;
        while (nameStart < line.Length && line[nameStart] == ' ') nameStart++;
        int nameEnd = nameStart;
        while (true)
        {
            int c = line[nameEnd..].IndexOfAny(':', ' ');
            if (c < 0 || line[nameEnd + c] == ' ') return FtraceEvent.Bad("event: no 'NAME:' after the timestamp");
            nameEnd += c;
            if (nameEnd + 1 == line.Length || line[nameEnd + 1] == ' ') break;
            nameEnd++;
        }
        var name = line[nameStart..nameEnd];
        ReadOnlySpan<char> system = default;
        int sysColon = name.LastIndexOf(':');
        if (sysColon >= 0)
        {
            system = name[..sysColon];
            nameStart += sysColon + 1;
            name = name[(sysColon + 1)..];
        }
        if (name.IsEmpty) return FtraceEvent.Bad("event: empty name");
        int fieldsStart = nameEnd + 1;
        while (fieldsStart < line.Length && line[fieldsStart] == ' ') fieldsStart++;

        var ev = new FtraceEvent
        {
            Kind = FtraceKind.Other,
            Task = new Range(taskStart, dash),
            Pid = pid,
            Cpu = cpu,
            TimestampNs = ts,
            EventName = new Range(nameStart, nameEnd),
        };
        var fields = line[fieldsStart..];
        bool iommu = system.IsEmpty || system.SequenceEqual("iommu");
        bool dma = system.IsEmpty || system.SequenceEqual("dma");
        if (iommu && fields.StartsWith("IOMMU:"))
        {
            if (name.SequenceEqual("map")) return ParseMap(ev, fields);
            if (name.SequenceEqual("unmap")) return ParseUnmap(ev, fields);
            if (name.SequenceEqual("io_page_fault")) return ParseFault(ev, fields, fieldsStart);
            return ev;
        }
        if (dma && name.StartsWith("dma_"))
        {
            var kind = DmaKind(name, out bool before, out bool sg);
            return kind == FtraceKind.Other ? ev : ParseDma(ev with { Kind = kind, TracedBefore = before }, fields, fieldsStart, sg);
        }
        return ev;
    }

    private static bool IsBlank(char c) => c is ' ' or '\t' or '\r' or '\n' or '\f' or '\v';

    /// <summary>The dma event names the import uses, by kind (others stay <see cref="FtraceKind.Other"/>).</summary>
    private static FtraceKind DmaKind(ReadOnlySpan<char> name, out bool before, out bool sg)
    {
        before = false;
        sg = false;
        switch (name)
        {
            case "dma_map_page" or "dma_map_phys" or "dma_map_resource": return FtraceKind.DmaMap;
            case "dma_map_sg": sg = true; return FtraceKind.DmaMap;
            case "dma_unmap_page" or "dma_unmap_phys" or "dma_unmap_resource": return FtraceKind.DmaUnmap;
            case "dma_unmap_sg": sg = true; before = true; return FtraceKind.DmaUnmap;
            case "dma_alloc" or "dma_alloc_pages" or "dma_alloc_sgt": return FtraceKind.DmaAlloc;
            case "dma_free" or "dma_free_pages" or "dma_free_sgt": before = true; return FtraceKind.DmaFree;
            default: return FtraceKind.Other;
        }
    }

    private static bool Header(ReadOnlySpan<char> s) =>
        s.StartsWith("cpus=") || s.StartsWith("version =") || s.StartsWith("=>")
        || (s.StartsWith("CPU") && (s.EndsWith("is empty") || s.Contains("[LOST", StringComparison.Ordinal)));

    /// <summary>The first token <c>digits[.digits]</c> followed by <c>:</c> and a blank or the end.</summary>
    private static int FindTimestamp(ReadOnlySpan<char> line, int from, out int colon)
    {
        int i = from;
        while (true)
        {
            int c = line[i..].IndexOf(':');
            if (c < 0) break;
            colon = i + c;
            if (colon + 1 == line.Length || line[colon + 1] == ' ')
            {
                int b = colon;
                while (b > from && line[b - 1] != ' ') b--;
                if (b > from && colon > b && IsTimestamp(line[b..colon])) return b;
            }
            i = colon + 1;
        }
        colon = -1;
        return -1;
    }

    private static bool IsTimestamp(ReadOnlySpan<char> t)
    {
        int dot = t.IndexOf('.');
        var sec = dot < 0 ? t : t[..dot];
        if (sec.IsEmpty || sec.ContainsAnyExceptInRange('0', '9')) return false;
        return dot < 0 || (dot + 1 < t.Length && !t[(dot + 1)..].ContainsAnyExceptInRange('0', '9'));
    }

    /// <summary><c>seconds.fraction</c> to nanoseconds without floating point; a lone integer is nanoseconds.</summary>
    private static bool ParseTimestamp(ReadOnlySpan<char> t, out ulong ns)
    {
        ns = 0;
        int dot = t.IndexOf('.');
        if (dot < 0) return Dec(t, out ns);
        var frac = t[(dot + 1)..];
        if (frac.Length > 9) return false;
        if (!Dec(t[..dot], out ulong sec)
            || !Dec(frac, out ulong f)) return false;
        for (int k = frac.Length; k < 9; k++) f *= 10;
        if (sec > (ulong.MaxValue - f) / 1_000_000_000UL) return false;
        ns = sec * 1_000_000_000UL + f;
        return true;
    }

    // ---- iommu events -------------------------------------------------------------------------------------

    private static FtraceEvent ParseMap(FtraceEvent ev, ReadOnlySpan<char> f)
    {
        f = f[6..].TrimStart();   // after "IOMMU:"
        if (!Field(ref f, "iova=", "iova", hex: true, out ulong iova, out string? why)) return FtraceEvent.Bad(why!);
        var layout = IommuLayout.Legacy;
        ulong end = 0;
        if (f.StartsWith("- "))
        {
            f = f[2..];
            if (!Value(ref f, "end", hex: true, out end, out why)) return FtraceEvent.Bad(why!);
            layout = IommuLayout.Range;
        }
        if (!Field(ref f, "paddr=", "paddr", hex: true, out ulong paddr, out why)) return FtraceEvent.Bad(why!);
        if (!Field(ref f, "size=", "size", hex: false, out ulong size, out why)) return FtraceEvent.Bad(why!);
        if (!f.IsEmpty) return FtraceEvent.Bad($"map: unexpected '{First(f)}' after size");
        var bad = CheckRange("map", iova, size, layout, end);
        if (bad is not null) return FtraceEvent.Bad(bad);
        return ev with { Kind = FtraceKind.Map, Iova = iova, End = iova + size, Paddr = paddr, Size = size, Layout = layout };
    }

    private static FtraceEvent ParseUnmap(FtraceEvent ev, ReadOnlySpan<char> f)
    {
        f = f[6..].TrimStart();
        if (!Field(ref f, "iova=", "iova", hex: true, out ulong iova, out string? why)) return FtraceEvent.Bad(why!);
        var layout = IommuLayout.Legacy;
        ulong end = 0;
        if (f.StartsWith("- "))
        {
            f = f[2..];
            if (!Value(ref f, "end", hex: true, out end, out why)) return FtraceEvent.Bad(why!);
            layout = IommuLayout.Range;
        }
        if (!Field(ref f, "size=", "size", hex: false, out ulong size, out why)) return FtraceEvent.Bad(why!);
        if (!Field(ref f, "unmapped_size=", "unmapped_size", hex: false, out ulong unmapped, out why)) return FtraceEvent.Bad(why!);
        if (!f.IsEmpty) return FtraceEvent.Bad($"unmap: unexpected '{First(f)}' after unmapped_size");
        var bad = CheckRange("unmap", iova, size, layout, end);
        if (bad is not null) return FtraceEvent.Bad(bad);
        return ev with { Kind = FtraceKind.Unmap, Iova = iova, End = iova + size, Size = size, UnmappedSize = unmapped, Layout = layout };
    }

    /// <summary>size=0 means nothing to replay; the printed end must be <c>iova + size</c>; no wrap past 2^64.</summary>
    private static string? CheckRange(string what, ulong iova, ulong size, IommuLayout layout, ulong end)
    {
        if (size == 0) return $"size=0: {what} of nothing";
        if (iova + size < iova) return $"iova 0x{iova:x} + size {size} wraps past 2^64";
        if (layout != IommuLayout.Range) return null;
        if (end <= iova) return $"end 0x{end:x} before iova 0x{iova:x}";
        if (end != iova + size) return $"end 0x{end:x} is not iova + size (0x{iova + size:x})";
        return null;
    }

    private static FtraceEvent ParseFault(FtraceEvent ev, ReadOnlySpan<char> f, int at)
    {
        // "IOMMU:%s %s iova=0x%016llx flags=0x%04x" (driver, device); the driver may be empty.
        int i = 6;
        int iovaAt = f.IndexOf(" iova=");
        if (iovaAt < 0) return FtraceEvent.Bad("io_page_fault: missing iova=");
        var names = f[i..iovaAt];
        int lead = names.Length - names.TrimStart().Length;
        names = names.Trim();
        int sp = names.LastIndexOf(' ');
        Range driver, device;
        if (sp < 0)
        {
            driver = new Range(at + i, at + i);
            device = new Range(at + i + lead, at + i + lead + names.Length);
        }
        else
        {
            driver = new Range(at + i + lead, at + i + lead + names[..sp].TrimEnd().Length);
            device = new Range(at + i + lead + sp + 1, at + i + lead + names.Length);
        }
        if (names.IsEmpty) return FtraceEvent.Bad("io_page_fault: missing device");
        var rest = f[(iovaAt + 1)..];
        if (!Field(ref rest, "iova=", "iova", hex: true, out ulong iova, out string? why)) return FtraceEvent.Bad(why!);
        if (!Field(ref rest, "flags=", "flags", hex: true, out ulong flags, out why)) return FtraceEvent.Bad(why!);
        if (flags > int.MaxValue) return FtraceEvent.Bad("flags: out of range");
        return ev with { Kind = FtraceKind.IoPageFault, Iova = iova, Flags = (int)flags, Device = device, Driver = driver };
    }

    // ---- dma events ---------------------------------------------------------------------------------------

    private const ulong DmaMappingError = ulong.MaxValue;

    private static FtraceEvent ParseDma(FtraceEvent ev, ReadOnlySpan<char> f, int at, bool sg)
    {
        int sp = f.IndexOf(' ');
        if (sp <= 0 || f[..sp].Contains('=')) return FtraceEvent.Bad("device: missing before the fields");
        var device = new Range(at, at + sp);
        int pos = sp + 1;
        ulong addr = 0, size = 0, phys = 0, lo = ulong.MaxValue, hi = 0;
        bool haveAddr = false, haveSize = false, haveArrays = false;
        var dir = NoDir;
        ReadOnlySpan<char> addrs = default, sizes = default;
        while (pos < f.Length)
        {
            var rest = f[pos..];
            int e = rest.IndexOf(' ');
            var tok = e < 0 ? rest : rest[..e];
            pos += tok.Length + 1;
            int eq = tok.IndexOf('=');
            if (eq <= 0) continue;   // " [TRUNCATED]" and the like
            var key = tok[..eq];
            var val = tok[(eq + 1)..];
            switch (key)
            {
                case "dma_addr":
                    if (!Hex(val, out addr)) return FtraceEvent.Bad("dma_addr: not a hex number");
                    haveAddr = true;
                    break;
                case "size":
                    if (!Dec(val, out size)) return FtraceEvent.Bad("size: not a decimal number");
                    haveSize = true;
                    break;
                case "phys_addr":
                    if (!Hex(val, out phys)) return FtraceEvent.Bad("phys_addr: not a hex number");
                    break;
                case "dir":
                    dir = val switch
                    {
                        "BIDIRECTIONAL" => DmaDirection.Bidirectional,
                        "TO_DEVICE" => DmaDirection.ToDevice,
                        "FROM_DEVICE" => DmaDirection.FromDevice,
                        "NONE" => DmaDirection.None,
                        _ => NoDir,
                    };
                    break;
                case "dma_addrs": addrs = val; break;
                case "sizes": sizes = val; break;
            }
        }
        if (sg && ev.Kind == FtraceKind.DmaMap)
        {
            // dma_map_sg: the IOVA span of the mapped entries, from the dma_addrs={..} and sizes={..} arrays.
            if (addrs.IsEmpty || sizes.IsEmpty) return FtraceEvent.Bad("dma_map_sg: missing dma_addrs= or sizes=");
            if (!ArraySpan(addrs, sizes, ref lo, ref hi, out string? why)) return FtraceEvent.Bad(why!);
            haveArrays = lo < hi;
            return ev with { Device = device, Direction = dir, Iova = haveArrays ? lo : 0, End = haveArrays ? hi : 0, Size = haveArrays ? hi - lo : 0, HasRange = haveArrays };
        }
        if (sg) return ev with { Device = device, Direction = dir };   // dma_unmap_sg: physical addresses only
        if (!haveAddr) return FtraceEvent.Bad("dma_addr: missing");
        if (!haveSize) return FtraceEvent.Bad("size: missing");
        bool range = size != 0 && addr != DmaMappingError && !(addr == 0 && ev.Kind == FtraceKind.DmaAlloc) && addr + size > addr;
        return ev with { Device = device, Direction = dir, Iova = addr, Size = size, End = range ? addr + size : 0, Paddr = phys, HasRange = range };
    }

    private static bool ArraySpan(ReadOnlySpan<char> addrs, ReadOnlySpan<char> sizes, ref ulong lo, ref ulong hi, out string? why)
    {
        why = null;
        if (addrs.Length < 2 || addrs[0] != '{' || addrs[^1] != '}' || sizes.Length < 2 || sizes[0] != '{' || sizes[^1] != '}')
        {
            why = "dma_addrs/sizes: not a {..} array";
            return false;
        }
        addrs = addrs[1..^1];
        sizes = sizes[1..^1];
        while (!addrs.IsEmpty && !sizes.IsEmpty)
        {
            int a = addrs.IndexOf(','), s = sizes.IndexOf(',');
            var at = a < 0 ? addrs : addrs[..a];
            var st = s < 0 ? sizes : sizes[..s];
            if (!Hex(at, out ulong addr)) { why = "dma_addrs: not a hex number"; return false; }
            if (!Number(st, out ulong len)) { why = "sizes: not a number"; return false; }
            if (len != 0 && addr + len > addr)
            {
                if (addr < lo) lo = addr;
                if (addr + len > hi) hi = addr + len;
            }
            addrs = a < 0 ? default : addrs[(a + 1)..];
            sizes = s < 0 ? default : sizes[(s + 1)..];
        }
        return true;
    }

    // ---- field helpers ------------------------------------------------------------------------------------

    /// <summary>Reads <c>key</c> then a value up to the next blank, and skips the blanks after it.</summary>
    private static bool Field(ref ReadOnlySpan<char> f, string key, string name, bool hex, out ulong value, out string? why)
    {
        value = 0;
        if (!f.StartsWith(key))
        {
            why = $"{name}: missing";
            return false;
        }
        f = f[key.Length..];
        return Value(ref f, name, hex, out value, out why);
    }

    private static bool Value(ref ReadOnlySpan<char> f, string name, bool hex, out ulong value, out string? why)
    {
        int e = f.IndexOf(' ');
        var tok = e < 0 ? f : f[..e];
        f = e < 0 ? default : f[e..].TrimStart();
        why = null;
        if (hex ? Hex(tok, out value) : Dec(tok, out value)) return true;
        why = hex ? $"{name}: not a hex number" : $"{name}: not a decimal number";
        return false;
    }

    /// <summary>Hex digits (an optional <c>0x</c>), at most 16 significant; no sign, no blanks.</summary>
    private static bool Hex(ReadOnlySpan<char> t, out ulong v)
    {
        if (t.Length > 2 && t[0] == '0' && (t[1] | 0x20) == 'x') t = t[2..];
        v = 0;
        if (t.IsEmpty) return false;
        int i = 0;
        while (i < t.Length - 1 && t[i] == '0') i++;
        if (t.Length - i > 16) return false;
        for (; i < t.Length; i++)
        {
            int c = t[i], d;
            if ((uint)(c - '0') <= 9) d = c - '0';
            else if ((uint)((c | 0x20) - 'a') <= 5) d = (c | 0x20) - 'a' + 10;
            else return false;
            v = (v << 4) | (uint)d;
        }
        return true;
    }

    /// <summary>Decimal digits, no sign, no blanks, no overflow past 2^64 − 1.</summary>
    private static bool Dec(ReadOnlySpan<char> t, out ulong v)
    {
        v = 0;
        if (t.IsEmpty) return false;
        foreach (char c in t)
        {
            uint d = (uint)(c - '0');
            if (d > 9) return false;
            if (v > (ulong.MaxValue - d) / 10) return false;
            v = v * 10 + d;
        }
        return true;
    }

    private static bool Int(ReadOnlySpan<char> t, out int v)
    {
        bool ok = Dec(t, out ulong u) && u <= int.MaxValue;
        v = ok ? (int)u : 0;
        return ok;
    }

    private static bool Number(ReadOnlySpan<char> t, out ulong v) =>
        t.StartsWith("0x") || t.StartsWith("0X") ? Hex(t, out v) : Dec(t, out v);

    private static string First(ReadOnlySpan<char> f)
    {
        int e = f.IndexOf(' ');
        return (e < 0 ? f : f[..e]).ToString();
    }
}
