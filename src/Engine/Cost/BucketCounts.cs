namespace PtActors.Engine.Cost;

/// <summary>
/// An immutable array of histogram bucket counts that compares by value, so figures holding one (records) are
/// equal when their counts are.
/// </summary>
public sealed class BucketCounts : IEquatable<BucketCounts>
{
    private readonly long[] _counts;

    /// <summary>Counts copied from <paramref name="counts"/>.</summary>
    public BucketCounts(ReadOnlySpan<long> counts) => _counts = counts.ToArray();

    /// <summary>Buckets.</summary>
    public int Length => _counts.Length;

    /// <summary>Bucket <paramref name="i"/>'s count.</summary>
    public long this[int i] => _counts[i];

    /// <summary>The counts.</summary>
    public ReadOnlySpan<long> AsSpan() => _counts;

    /// <inheritdoc/>
    public bool Equals(BucketCounts? other) => other is not null && _counts.AsSpan().SequenceEqual(other._counts);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as BucketCounts);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (long c in _counts)
            h.Add(c);
        return h.ToHashCode();
    }
}
