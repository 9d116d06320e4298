namespace PtActors.Engine.Cost;

/// <summary>
/// A histogram of simulated durations: four buckets per power of two of nanoseconds (a bucket's upper bound is at
/// most 25 % above any duration in it), one bucket for durations under 1 ns. No allocation per sample.
/// </summary>
public sealed class LatencyHistogram : IEquatable<LatencyHistogram>
{
    private const int Octaves = 48;
    private readonly long[] _counts = new long[1 + Octaves * 4];

    /// <summary>Samples added.</summary>
    public long Count { get; private set; }

    /// <summary>Sum of the samples (ns).</summary>
    public double SumNs { get; private set; }

    /// <summary>Adds one duration of <paramref name="ns"/> nanoseconds.</summary>
    public void Add(double ns)
    {
        Count++;
        SumNs += ns;
        _counts[Bucket(ns)]++;
    }

    /// <summary>Adds every sample of <paramref name="other"/>.</summary>
    public void Add(LatencyHistogram other)
    {
        ArgumentNullException.ThrowIfNull(other);
        for (int i = 0; i < _counts.Length; i++)
            _counts[i] += other._counts[i];
        Count += other.Count;
        SumNs += other.SumNs;
    }

    /// <summary>Every bucket's count, in order (with <see cref="Count"/> and <see cref="SumNs"/>, all the histogram holds).</summary>
    public ReadOnlySpan<long> BucketCounts => _counts;

    /// <summary>Buckets a histogram has.</summary>
    public const int BucketCount = 1 + Octaves * 4;

    /// <summary>
    /// The histogram whose <see cref="BucketCounts"/>, <see cref="Count"/> and <see cref="SumNs"/> these are; null
    /// (with <paramref name="problem"/>) when they cannot be one: another number of buckets, a negative count, or
    /// counts that do not add up to <paramref name="count"/>.
    /// </summary>
    public static LatencyHistogram? Restore(ReadOnlySpan<long> counts, long count, double sumNs, out string? problem)
    {
        problem = null;
        if (counts.Length != BucketCount)
            problem = $"a latency histogram has {BucketCount} buckets, not {counts.Length}";
        long total = 0;
        foreach (long n in counts)
        {
            if (n < 0)
                problem ??= $"a bucket count of {n}";
            total += n;
        }
        if (problem is null && total != count)
            problem = $"bucket counts add up to {total}, not {count}";
        if (problem is null && !(double.IsFinite(sumNs) && sumNs >= 0))
            problem = $"a sum of {sumNs} ns";
        if (problem is not null)
            return null;
        var h = new LatencyHistogram { Count = count, SumNs = sumNs };
        counts.CopyTo(h._counts);
        return h;
    }

    /// <summary>A copy.</summary>
    public LatencyHistogram Clone()
    {
        var c = new LatencyHistogram();
        c.Add(this);
        return c;
    }

    /// <summary>The upper bound (ns) of the bucket holding quantile <paramref name="q"/> (0 when empty).</summary>
    public double Percentile(double q)
    {
        if (Count == 0)
            return 0;
        long rank = Math.Max(1, (long)Math.Ceiling(q * Count)), seen = 0;
        for (int i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank)
                return UpperBound(i);
        }
        return UpperBound(_counts.Length - 1);
    }

    /// <summary>The non-empty buckets as (upper bound in ns, count), in order.</summary>
    public IEnumerable<(double UpperNs, long Count)> Buckets()
    {
        for (int i = 0; i < _counts.Length; i++)
        {
            if (_counts[i] > 0)
                yield return (UpperBound(i), _counts[i]);
        }
    }

    private static int Bucket(double ns)
    {
        if (!(ns >= 1))
            return 0;
        int k = Math.Min(Octaves - 1, Math.ILogB(ns));
        // ns / 2^k is in [1, 2) (above 2 only when clamped): its quarter picks the sub-bucket.
        int sub = Math.Min(3, (int)((Math.ScaleB(ns, -k) - 1) * 4));
        return 1 + k * 4 + sub;
    }

    /// <summary>The exclusive upper bound of bucket <paramref name="i"/>: it holds [2^k·(1 + s/4), 2^k·(1 + (s+1)/4)).</summary>
    private static double UpperBound(int i) => i == 0 ? 1 : Math.Pow(2, (i - 1) / 4) * (1 + ((i - 1) % 4 + 1) / 4.0);

    /// <summary>Histograms are equal when they hold the same counts and sum (so figures holding them compare by value).</summary>
    public bool Equals(LatencyHistogram? other)
        => other is not null && Count == other.Count && SumNs.Equals(other.SumNs) && _counts.AsSpan().SequenceEqual(other._counts);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as LatencyHistogram);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Count, SumNs);
}
