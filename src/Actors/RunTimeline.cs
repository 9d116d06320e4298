namespace PtActors.Actors;

/// <summary>One point of a run's timeline: what the units did in the simulated interval ending at <c>TUs</c>.</summary>
public readonly record struct TimelinePoint(double TUs, long Invalidations, long IotlbHits, long IotlbMisses, long Dmas);

/// <summary>
/// A run's units over simulated time: invalidations, IOTLB hits and misses and DMAs per interval of whole windows,
/// at most <see cref="MaxPoints"/> intervals. Built from each unit's cumulative counters at its windows' ends and
/// at the end of the run, so it sums to the run's totals and does not depend on the order the units reported in.
/// </summary>
public sealed class RunTimeline : IEquatable<RunTimeline>
{
    /// <summary>The most points a timeline has (windows are merged in equal runs to stay below).</summary>
    public const int MaxPoints = 200;

    private readonly TimelinePoint[] _points;

    private RunTimeline(TimelinePoint[] points) => _points = points;

    /// <summary>The points, in time order.</summary>
    public ReadOnlySpan<TimelinePoint> Points => _points;

    /// <summary>A unit's cumulative counters at the end of one window.</summary>
    public readonly record struct Sample(long Window, ulong EndNs, long Invalidations, long Hits, long Misses, long Dmas);

    /// <summary>
    /// The timeline of units, each given as its samples (any order; a window reported twice keeps its last sample)
    /// and its counters at the end of the run (what the run's end drained counts in the last interval).
    /// </summary>
    public static RunTimeline Build(IReadOnlyList<(IReadOnlyList<Sample> Samples, Sample Final)> units)
    {
        ArgumentNullException.ThrowIfNull(units);
        var perWindow = new SortedDictionary<long, (ulong EndNs, long Inv, long Hits, long Misses, long Dmas)>();
        foreach (var (samples, final) in units)
        {
            var byWindow = new SortedDictionary<long, Sample>();
            foreach (var s in samples)
                byWindow[s.Window] = s;
            var previous = new Sample(-1, 0, 0, 0, 0, 0);
            Sample? last = null;
            foreach (var s in byWindow.Values)
            {
                Add(perWindow, s.Window, s.EndNs, s, previous);
                previous = s;
                last = s;
            }
            if (last is { } l && (final.Invalidations != l.Invalidations || final.Hits != l.Hits || final.Misses != l.Misses || final.Dmas != l.Dmas))
                Add(perWindow, l.Window, l.EndNs, final, l);
            else if (last is null && (final.Invalidations | final.Hits | final.Misses | final.Dmas) != 0)
                Add(perWindow, 0, final.EndNs, final, previous);
        }
        if (perWindow.Count == 0)
            return new RunTimeline([]);
        long first = perWindow.Keys.First(), lastWindow = perWindow.Keys.Last();
        long span = lastWindow - first + 1;
        long width = (span + MaxPoints - 1) / MaxPoints;
        var points = new List<TimelinePoint>();
        long bucket = -1;
        (ulong EndNs, long Inv, long Hits, long Misses, long Dmas) acc = default;
        foreach (var (window, v) in perWindow)
        {
            long b = (window - first) / width;
            if (b != bucket && bucket >= 0)
            {
                points.Add(new TimelinePoint(acc.EndNs / 1000.0, acc.Inv, acc.Hits, acc.Misses, acc.Dmas));
                acc = default;
            }
            bucket = b;
            acc = (Math.Max(acc.EndNs, v.EndNs), acc.Inv + v.Inv, acc.Hits + v.Hits, acc.Misses + v.Misses, acc.Dmas + v.Dmas);
        }
        points.Add(new TimelinePoint(acc.EndNs / 1000.0, acc.Inv, acc.Hits, acc.Misses, acc.Dmas));
        return new RunTimeline([.. points]);
    }

    private static void Add(SortedDictionary<long, (ulong EndNs, long Inv, long Hits, long Misses, long Dmas)> perWindow,
        long window, ulong endNs, Sample now, Sample before)
    {
        var v = perWindow.GetValueOrDefault(window);
        perWindow[window] = (Math.Max(v.EndNs, endNs), v.Inv + now.Invalidations - before.Invalidations, v.Hits + now.Hits - before.Hits,
            v.Misses + now.Misses - before.Misses, v.Dmas + now.Dmas - before.Dmas);
    }

    /// <inheritdoc/>
    public bool Equals(RunTimeline? other) => other is not null && _points.AsSpan().SequenceEqual(other._points);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as RunTimeline);

    /// <inheritdoc/>
    public override int GetHashCode() => _points.Length;
}
