using PtActors.Persistence.Serialization;

namespace PtActors.Persistence.Runs;

/// <summary>Event: a simulation run was started (persisted by <see cref="RunRegistry"/>, manifest "run-started").</summary>
/// <param name="RunId">The run's id, the first part of its actors' persistence ids.</param>
/// <param name="ConfigHash">A hash of the run's configuration, to tell runs of the same setup apart.</param>
/// <param name="StartedUnixMs">Wall-clock start, milliseconds since the Unix epoch.</param>
public sealed record RunStarted(string RunId, string ConfigHash, long StartedUnixMs) : IPtPersistable;

/// <summary>Snapshot of <see cref="RunRegistry"/>: every recorded run in recording order (manifest "runs-snapshot").</summary>
public sealed class RunRegistrySnapshot : IPtPersistable, IEquatable<RunRegistrySnapshot>
{
    public RunRegistrySnapshot(IReadOnlyList<RunStarted> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        Runs = [.. runs];
    }

    public IReadOnlyList<RunStarted> Runs { get; }

    public bool Equals(RunRegistrySnapshot? other) => other is not null && Runs.SequenceEqual(other.Runs);

    public override bool Equals(object? obj) => Equals(obj as RunRegistrySnapshot);

    public override int GetHashCode() => Runs.Count == 0 ? 0 : HashCode.Combine(Runs.Count, Runs[0], Runs[^1]);
}

/// <summary>Command: record a run. Replied to with <see cref="RunRecorded"/> once the event is written, or <see cref="RunRejected"/>.</summary>
public sealed record RecordRun(string RunId, string ConfigHash, long StartedUnixMs);

/// <summary>The run is in the journal (also the reply to an identical repeat of an earlier RecordRun).</summary>
public sealed record RunRecorded(RunStarted Run);

/// <summary>The command was refused (invalid id, or the id is taken by a different run); nothing was written.</summary>
public sealed record RunRejected(string RunId, string Reason);

/// <summary>Query: every recorded run, replied to with <see cref="RunList"/>.</summary>
public sealed record GetRuns
{
    public static readonly GetRuns Instance = new();

    private GetRuns()
    {
    }
}

/// <summary>Every recorded run, in recording order.</summary>
public sealed record RunList(IReadOnlyList<RunStarted> Runs);
