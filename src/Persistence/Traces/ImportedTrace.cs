using PtActors.Engine.Dma;

namespace PtActors.Persistence.Traces;

/// <summary>An <c>iommu:io_page_fault</c> of the trace: the device that faulted, the IOVA, the flags as the driver
/// reported them, the stamp (as the operations') and the source line.</summary>
public readonly record struct TracedFault(int Device, ulong Iova, int Flags, ulong StampNs, int Line);

/// <summary>An unmap whose recorded <c>unmapped_size</c> differs from what the engine unmapped.</summary>
public readonly record struct UnmappedSizeMismatch(long OpId, int Line, ulong Iova, ulong Size, ulong Recorded, ulong Computed);

/// <summary>
/// What <see cref="TraceImport"/> read from one trace: the devices, the operations in trace order, each unmap's
/// recorded <c>unmapped_size</c>, the faults, the counts and the malformed lines.
/// </summary>
public sealed class ImportedTrace
{
    internal ImportedTrace(string source, List<string> devices, DmaOp[] ops, int[] opLines, Dictionary<long, ulong> recorded,
        List<TracedFault> faults, List<string> malformed, in TraceCounts counts, ulong firstTimestampNs)
    {
        Source = source;
        Devices = devices;
        var index = new Dictionary<string, int>(devices.Count, StringComparer.Ordinal);
        for (int i = 0; i < devices.Count; i++) index.Add(devices[i], i);
        DeviceIndex = index;
        Ops = ops;
        _opLines = opLines;
        RecordedUnmappedSize = recorded;
        Faults = faults;
        Malformed = malformed;
        Counts = counts;
        FirstTimestampNs = firstTimestampNs;
    }

    private readonly int[] _opLines;

    /// <summary>The source name given to the import (used in every message).</summary>
    public string Source { get; }
    /// <summary>The device names, indexed as in <see cref="DmaOp.Device"/>, in the order of each device's first
    /// operation or fault. <see cref="TraceImport.Unattributed"/> is one of them when some operation had no device.</summary>
    public IReadOnlyList<string> Devices { get; }
    /// <summary>Device name → index.</summary>
    public IReadOnlyDictionary<string, int> DeviceIndex { get; }
    /// <summary>The operations in trace order (timestamp, then line): <see cref="DmaOpKind.Map"/> and
    /// <see cref="DmaOpKind.Unmap"/>, stamps strictly increasing, ids <c>DmaOp.MakeId(device, seq)</c>.</summary>
    public IReadOnlyList<DmaOp> Ops { get; }
    /// <summary>Each unmap's <c>unmapped_size</c> as the kernel traced it, by operation id.</summary>
    public IReadOnlyDictionary<long, ulong> RecordedUnmappedSize { get; }
    /// <summary>The faults in trace order.</summary>
    public IReadOnlyList<TracedFault> Faults { get; }
    /// <summary>The first <see cref="TraceImport.MaxMalformedKept"/> malformed lines as <c>SOURCE:LINE: reason</c>
    /// (<see cref="TraceCounts.Malformed"/> counts them all).</summary>
    public IReadOnlyList<string> Malformed { get; }
    /// <summary>The counts.</summary>
    public TraceCounts Counts { get; }
    /// <summary>The trace timestamp (ns) that stamp 0 stands for: the first operation's or fault's.</summary>
    public ulong FirstTimestampNs { get; }

    /// <summary>The source line of operation <paramref name="opIndex"/> (an index into <see cref="Ops"/>).</summary>
    public int SourceLine(int opIndex) => _opLines[opIndex];

    /// <summary>
    /// Compares the recorded <c>unmapped_size</c> of unmap <paramref name="opIndex"/> with <paramref name="computed"/>,
    /// what the engine unmapped when it applied it; true (and the mismatch) when they differ.
    /// </summary>
    public bool CheckUnmapped(int opIndex, ulong computed, out UnmappedSizeMismatch mismatch)
    {
        var op = Ops[opIndex];
        mismatch = default;
        if (op.Kind != DmaOpKind.Unmap || !RecordedUnmappedSize.TryGetValue(op.Id, out ulong recorded) || recorded == computed)
            return false;
        mismatch = new UnmappedSizeMismatch(op.Id, _opLines[opIndex], op.Iova, op.Size, recorded, computed);
        return true;
    }

    /// <summary><c>SOURCE:LINE: unmap iova=0x… size=N: traced unmapped_size=R, engine unmapped C</c>.</summary>
    public string Describe(in UnmappedSizeMismatch m) =>
        $"{Source}:{m.Line}: unmap iova=0x{m.Iova:x} size={m.Size}: traced unmapped_size={m.Recorded}, engine unmapped {m.Computed}";

    /// <summary>The closing line of <c>ptactors import-ftrace</c>.</summary>
    public string Summary(int unmappedSizeMismatches) =>
        $"imported {Counts.Maps + Counts.Unmaps + Counts.Faults} ops ({Counts.Maps} maps, {Counts.Unmaps} unmaps, {Counts.Faults} faults), "
        + $"skipped {Counts.Skipped} lines, malformed {Counts.Malformed} lines, unmapped_size mismatches {unmappedSizeMismatches}";
}

/// <summary>The counts of an import. Every line is exactly one of: a header (<see cref="HeaderLines"/>), an event
/// the import does not use (<see cref="OtherEvents"/>), a dma event (<see cref="DmaEvents"/>), a map, an unmap, a
/// fault, or malformed.</summary>
public readonly record struct TraceCounts(
    int Lines, int Maps, int Unmaps, int Faults, int DmaEvents, int HeaderLines, int OtherEvents, int Malformed, int UnattributedOps)
{
    /// <summary>Lines skipped: headers, comments, blanks and other events.</summary>
    public int Skipped => HeaderLines + OtherEvents;
}
