using System.Runtime.InteropServices;
using PtActors.Engine;
using PtActors.Engine.Dma;

namespace PtActors.Persistence.Traces;

/// <summary>
/// Reads an ftrace / <c>trace-cmd report</c> text into an <see cref="ImportedTrace"/>: pure (no files), one pass
/// over the lines, then attribution and the operations. See docs/ftrace-import.md.
/// </summary>
/// <remarks>
/// <para><b>Order.</b> The events are taken in (timestamp, line) order: a merged trace is already in it (and is
/// not re-sorted); per-CPU buffers concatenated out of order are sorted. Each CPU's events keep their order.</para>
/// <para><b>Attribution.</b> <c>iommu:map</c>/<c>unmap</c> carry no device; the dma events on the same CPU and
/// task do. The kernel traces <c>dma_map_*</c>, <c>dma_alloc*</c> and <c>dma_unmap_page/phys/resource</c> right
/// after the iommu work they caused (it happens inside the call), and <c>dma_free*</c> and <c>dma_unmap_sg</c>
/// right before it. So on each (CPU, pid) lane: an iommu event waits as pending; an "after" dma event claims every
/// pending event of its kind (map for map/alloc, unmap for unmap) whose IOVA range overlaps the dma range
/// (<c>dma_addr</c> may sit inside a granule-aligned IOVA range; an allocation may be mapped in several
/// <c>iommu:map</c> chunks; <c>dma_map_sg</c> spans its entries); a "before" dma event opens a claim that takes
/// the next <c>iommu:unmap</c> of the lane overlapping its range (any, for <c>dma_unmap_sg</c>, which prints no
/// IOVA), and closes at the next dma event of the lane. Pending events never claimed (iommufd/VFIO, a task that
/// migrated CPUs in between, more than <see cref="MaxPending"/> waiting on a lane) go to the device
/// <see cref="Unattributed"/>. Faults name their device.</para>
/// <para><b>Stamps.</b> <c>StampNs</c> = timestamp − the first operation's or fault's timestamp, raised where needed
/// to one more than the previous one, so stamps are strictly increasing in trace order and the (stamp, id) order
/// of <see cref="DmaOp"/> is the trace order (timestamps are often microseconds, so many events share one).</para>
/// </remarks>
public sealed class TraceImport
{
    /// <summary>The device of operations no dma event claimed.</summary>
    public const string Unattributed = "unattributed";
    /// <summary>How many malformed lines an import keeps as messages (it counts them all).</summary>
    public const int MaxMalformedKept = 1000;
    /// <summary>How many iommu events may wait for their dma event on one (CPU, pid) lane.</summary>
    public const int MaxPending = 64;

    private struct Rec
    {
        public ulong Ts, Iova, End, Paddr, Size, Unmapped;
        public int Line, Cpu, Pid, Name, Flags;
        public FtraceKind Kind;
        public bool Before, HasRange;
    }

    private sealed class Lane
    {
        public readonly List<int> Pending = new(4);
        public int ClaimName = -1;
        public bool ClaimHasRange;
        public ulong ClaimLo, ClaimHi;
    }

    private readonly string _source;
    private readonly List<Rec> _recs = new(1024);
    private readonly List<string> _names = new();
    private readonly Dictionary<string, int> _nameIndex = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _nameLookup;
    private readonly List<string> _malformed = new();
    private int _lines, _headers, _others, _dma, _bad;
    private bool _sorted = true;
    private ulong _lastTs;

    private TraceImport(string source)
    {
        _source = source;
        _nameLookup = _nameIndex.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>Imports the lines of <paramref name="reader"/>; <paramref name="source"/> names it in messages.</summary>
    public static ImportedTrace Import(TextReader reader, string source)
    {
        var import = new TraceImport(source);
        char[] buf = new char[1 << 16];
        int filled = 0, lineNo = 0;
        while (true)
        {
            int n = reader.Read(buf, filled, buf.Length - filled);
            bool eof = n == 0;
            filled += n;
            int from = 0;
            while (true)
            {
                int nl = Array.IndexOf(buf, '\n', from, filled - from);
                if (nl < 0) break;
                import.Add(buf.AsSpan(from, nl - from), ++lineNo);
                from = nl + 1;
            }
            if (eof)
            {
                if (from < filled) import.Add(buf.AsSpan(from, filled - from), ++lineNo);
                break;
            }
            // Keep the partial line; grow the buffer if one line fills it.
            Array.Copy(buf, from, buf, 0, filled - from);
            filled -= from;
            if (filled == buf.Length) Array.Resize(ref buf, buf.Length * 2);
        }
        return import.Finish();
    }

    /// <summary>Imports <paramref name="lines"/> (line numbers count from 1).</summary>
    public static ImportedTrace Import(IEnumerable<string> lines, string source)
    {
        var import = new TraceImport(source);
        int lineNo = 0;
        foreach (var line in lines) import.Add(line, ++lineNo);
        return import.Finish();
    }

    private void Add(ReadOnlySpan<char> line, int lineNo)
    {
        _lines++;
        var ev = FtraceLine.Parse(line);
        switch (ev.Kind)
        {
            case FtraceKind.Skip: _headers++; return;
            case FtraceKind.Other: _others++; return;
            case FtraceKind.Malformed:
                if (_bad++ < MaxMalformedKept) _malformed.Add($"{_source}:{lineNo}: {ev.Reason}");
                return;
        }
        int name = -1;
        if (ev.Kind is not (FtraceKind.Map or FtraceKind.Unmap))
        {
            _dma += ev.Kind == FtraceKind.IoPageFault ? 0 : 1;
            var dev = line[ev.Device];
            if (!_nameLookup.TryGetValue(dev, out name))
            {
                name = _names.Count;
                var s = dev.ToString();
                _names.Add(s);
                _nameIndex.Add(s, name);
            }
        }
        if (ev.TimestampNs < _lastTs) _sorted = false;
        _lastTs = ev.TimestampNs;
        _recs.Add(new Rec
        {
            Ts = ev.TimestampNs, Iova = ev.Iova, End = ev.End, Paddr = ev.Paddr, Size = ev.Size, Unmapped = ev.UnmappedSize,
            Line = lineNo, Cpu = ev.Cpu, Pid = ev.Pid, Name = name, Flags = ev.Flags, Kind = ev.Kind,
            Before = ev.TracedBefore, HasRange = ev.HasRange,
        });
    }

    private ImportedTrace Finish()
    {
        var recs = CollectionsMarshal.AsSpan(_recs);
        if (!_sorted) recs.Sort(static (a, b) => a.Ts != b.Ts ? a.Ts.CompareTo(b.Ts) : a.Line.CompareTo(b.Line));
        int[] owner = Attribute(recs);

        // Operations, in order.
        int[] devOfName = new int[_names.Count];
        Array.Fill(devOfName, -1);
        int unattributedDev = -1;
        var devices = new List<string>();
        var seqs = new List<uint>();
        int maps = 0, unmaps = 0, faults = 0, unattributedOps = 0;
        foreach (ref readonly var r in recs)
        {
            if (r.Kind == FtraceKind.Map) maps++;
            else if (r.Kind == FtraceKind.Unmap) unmaps++;
            else if (r.Kind == FtraceKind.IoPageFault) faults++;
        }
        var ops = new DmaOp[maps + unmaps];
        var opLines = new int[ops.Length];
        var recorded = new Dictionary<long, ulong>(unmaps);
        var faultList = new List<TracedFault>(faults);
        int nOps = 0;
        bool first = true;
        ulong t0 = 0, prev = 0;
        for (int i = 0; i < recs.Length; i++)
        {
            ref readonly var r = ref recs[i];
            if (r.Kind is not (FtraceKind.Map or FtraceKind.Unmap or FtraceKind.IoPageFault)) continue;
            int dev;
            if (owner[i] < 0)
            {
                if (unattributedDev < 0) { unattributedDev = devices.Count; devices.Add(Unattributed); seqs.Add(0); }
                dev = unattributedDev;
                unattributedOps++;
            }
            else
            {
                dev = devOfName[owner[i]];
                if (dev < 0) { dev = devOfName[owner[i]] = devices.Count; devices.Add(_names[owner[i]]); seqs.Add(0); }
            }
            ulong stamp;
            if (first) { t0 = r.Ts; stamp = 0; first = false; }
            else { stamp = r.Ts - t0; if (stamp <= prev) stamp = prev + 1; }
            prev = stamp;
            if (r.Kind == FtraceKind.IoPageFault)
            {
                faultList.Add(new TracedFault(dev, r.Iova, r.Flags, stamp, r.Line));
                continue;
            }
            long id = DmaOp.MakeId(dev, seqs[dev]);
            seqs[dev]++;
            if (r.Kind == FtraceKind.Map)
                ops[nOps] = new DmaOp(stamp, id, DmaOpKind.Map, r.Iova, r.Paddr, r.Size, IommuProt.Read | IommuProt.Write);
            else
            {
                ops[nOps] = new DmaOp(stamp, id, DmaOpKind.Unmap, r.Iova, 0, r.Size, IommuProt.None);
                recorded.Add(id, r.Unmapped);
            }
            opLines[nOps++] = r.Line;
        }
        var counts = new TraceCounts(_lines, maps, unmaps, faults, _dma, _headers, _others, _bad, unattributedOps);
        return new ImportedTrace(_source, devices, ops, opLines, recorded, faultList, _malformed, counts, t0);
    }

    /// <summary>The name index that owns each record (-1: unattributed, or not an operation).</summary>
    private static int[] Attribute(Span<Rec> recs)
    {
        var owner = new int[recs.Length];
        Array.Fill(owner, -1);
        var lanes = new Dictionary<long, Lane>();
        for (int i = 0; i < recs.Length; i++)
        {
            ref readonly var r = ref recs[i];
            if (r.Kind == FtraceKind.IoPageFault)
            {
                owner[i] = r.Name;
                continue;
            }
            long key = ((long)r.Cpu << 32) | (uint)r.Pid;
            ref var lane = ref CollectionsMarshal.GetValueRefOrAddDefault(lanes, key, out _);
            lane ??= new Lane();
            switch (r.Kind)
            {
                case FtraceKind.Map or FtraceKind.Unmap:
                    if (r.Kind == FtraceKind.Unmap && lane.ClaimName >= 0
                        && (!lane.ClaimHasRange || Overlaps(r.Iova, r.End, lane.ClaimLo, lane.ClaimHi)))
                    {
                        owner[i] = lane.ClaimName;
                        lane.ClaimName = -1;
                        break;
                    }
                    if (lane.Pending.Count == MaxPending) lane.Pending.RemoveAt(0);   // stays unattributed
                    lane.Pending.Add(i);
                    break;
                default:
                    lane.ClaimName = -1;
                    if (r.Before)
                    {
                        lane.ClaimName = r.Name;
                        lane.ClaimHasRange = r.HasRange;
                        lane.ClaimLo = r.Iova;
                        lane.ClaimHi = r.End;
                        if (r.HasRange || r.Kind == FtraceKind.DmaUnmap) break;
                        lane.ClaimName = -1;   // a dma_free of nothing (dma_addr=0) claims nothing
                        break;
                    }
                    if (!r.HasRange) break;
                    var wanted = r.Kind == FtraceKind.DmaUnmap ? FtraceKind.Unmap : FtraceKind.Map;
                    var pending = lane.Pending;
                    for (int k = pending.Count - 1; k >= 0; k--)
                    {
                        ref readonly var p = ref recs[pending[k]];
                        if (p.Kind == wanted && Overlaps(p.Iova, p.End, r.Iova, r.End))
                        {
                            owner[pending[k]] = r.Name;
                            pending.RemoveAt(k);
                        }
                    }
                    break;
            }
        }
        return owner;
    }

    private static bool Overlaps(ulong lo1, ulong hi1, ulong lo2, ulong hi2) => lo1 < hi2 && lo2 < hi1;
}
