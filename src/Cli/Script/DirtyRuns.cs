using PtActors.Engine;

namespace PtActors.Cli.Script;

/// <summary>
/// Collects the intervals read_and_clear_dirty reports (iova_bitmap_set) and turns them into dirty runs:
/// the union of the intervals, sorted, with touching or overlapping ones merged; ends are inclusive and an
/// interval that would pass 2^64 ends at 0xffffffffffffffff.
/// </summary>
internal sealed class DirtyRuns : IDirtySink
{
    private readonly List<(ulong Start, ulong End)> _intervals = [];

    /// <inheritdoc/>
    public void Set(ulong iova, ulong length)
    {
        if (length == 0)
            return;
        ulong end = iova + (length - 1);
        if (end < iova)
            end = ulong.MaxValue;
        _intervals.Add((iova, end));
    }

    /// <summary>Forgets every interval.</summary>
    public void Clear() => _intervals.Clear();

    /// <summary>The runs, ascending, each (start, inclusive end).</summary>
    public List<(ulong Start, ulong End)> Merge()
    {
        _intervals.Sort();
        var runs = new List<(ulong Start, ulong End)>(_intervals.Count);
        foreach (var (start, end) in _intervals)
        {
            if (runs.Count > 0)
            {
                var (runStart, runEnd) = runs[^1];
                // Touching: the new interval starts right after the run (runEnd + 1 cannot wrap here,
                // since a run ending at the top of the address space absorbs everything after it).
                if (runEnd == ulong.MaxValue || start <= runEnd + 1)
                {
                    if (end > runEnd)
                        runs[^1] = (runStart, end);
                    continue;
                }
            }
            runs.Add((start, end));
        }
        return runs;
    }
}
