namespace PtActors.Engine.Replay;

/// <summary>
/// How one lane of a simulator run (an IOMMU unit with its domains) wound down: its unit drained — flushed
/// everything its policy held — at the end of each window from <paramref name="QuietAfter"/> through
/// <paramref name="Final"/>, and the final drain's releases were committed as window <paramref name="Final"/>.
/// A replay needs it to give the same results as the run: a drain releases IOVAs and locks earlier than the
/// policy alone would. Both 0: the lane had no domains.
/// </summary>
public readonly record struct LaneWindDown(long QuietAfter, long Final);

/// <summary>The wind-down of every lane of a run, in unit order; equal when the lanes are.</summary>
public sealed class RunWindDown(IReadOnlyList<LaneWindDown> lanes) : IEquatable<RunWindDown>
{
    /// <summary>No lanes recorded.</summary>
    public static readonly RunWindDown None = new([]);

    public IReadOnlyList<LaneWindDown> Lanes { get; } = lanes;

    public bool Equals(RunWindDown? other) => other is not null && Lanes.SequenceEqual(other.Lanes);

    public override bool Equals(object? obj) => Equals(obj as RunWindDown);

    public override int GetHashCode() => Lanes.Count == 0 ? 0 : HashCode.Combine(Lanes.Count, Lanes[0], Lanes[^1]);

    public override string ToString() => string.Join(' ', Lanes.Select(static l => $"{l.QuietAfter}..{l.Final}"));
}
