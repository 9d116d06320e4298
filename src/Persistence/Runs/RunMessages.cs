using PtActors.Persistence.Serialization;

namespace PtActors.Persistence.Runs;

/// <summary>Event: a simulation run was started (persisted by <see cref="RunRegistry"/>, manifest "run-started").</summary>
/// <param name="RunId">The run's id, the first part of its actors' persistence ids.</param>
/// <param name="ConfigHash">A hash of the run's configuration, to tell runs of the same setup apart.</param>
/// <param name="StartedUnixMs">Wall-clock start, milliseconds since the Unix epoch.</param>
/// <param name="Config">The run's configuration as <c>key=value</c> words (what <c>ptactors runs</c> shows; empty for runs recorded before it was kept).</param>
public sealed record RunStarted(string RunId, string ConfigHash, long StartedUnixMs, string Config = "") : IPtPersistable;

/// <summary>How a run ended.</summary>
public enum RunOutcome : byte
{
    /// <summary>Every operation was acknowledged and every unit drained; the figures are final.</summary>
    Completed = 1,

    /// <summary>The run stopped with an error (its message is kept).</summary>
    Failed = 2,
}

/// <summary>
/// Event: a run ended (manifest "run-ended"). A run with a <see cref="RunStarted"/> and no end was interrupted
/// (its process was killed).
/// </summary>
/// <param name="RunId">The run.</param>
/// <param name="Outcome">Completed or failed.</param>
/// <param name="EndedUnixMs">Wall-clock end, milliseconds since the Unix epoch.</param>
/// <param name="OpsAcknowledged">Map and unmap calls acknowledged to the devices.</param>
/// <param name="TableHash">The run's <c>table_hash</c> (completed runs; empty otherwise).</param>
/// <param name="MemoryHash">The run's <c>memory_hash</c> (completed runs; empty otherwise).</param>
/// <param name="Message">Why it failed (failed runs; empty otherwise).</param>
public sealed record RunEnded(string RunId, RunOutcome Outcome, long EndedUnixMs, long OpsAcknowledged, string TableHash, string MemoryHash, string Message)
    : IPtPersistable
{
    /// <summary>How each lane wound down (completed runs; empty for failed runs and ends recorded before version 2).</summary>
    public IReadOnlyList<PtActors.Engine.Replay.LaneWindDown> WindDown { get; init; } = [];

    /// <summary>
    /// Each domain's journal length and table-memory hash prefix, in domain order (completed runs; empty for failed
    /// runs and ends recorded before version 3): what lets <c>verify</c> name the domain a damaged journal changed.
    /// </summary>
    public IReadOnlyList<PtActors.Engine.Replay.DomainEnd> Domains { get; init; } = [];

    public bool Equals(RunEnded? other)
        => other is not null && RunId == other.RunId && Outcome == other.Outcome && EndedUnixMs == other.EndedUnixMs
           && OpsAcknowledged == other.OpsAcknowledged && TableHash == other.TableHash && MemoryHash == other.MemoryHash
           && Message == other.Message && WindDown.SequenceEqual(other.WindDown) && Domains.SequenceEqual(other.Domains);

    public override int GetHashCode() => HashCode.Combine(RunId, Outcome, EndedUnixMs, OpsAcknowledged, TableHash);
}

/// <summary>Snapshot of <see cref="RunRegistry"/>: every recorded run in recording order (manifest "runs-snapshot").</summary>
public sealed class RunRegistrySnapshot : IPtPersistable, IEquatable<RunRegistrySnapshot>
{
    public RunRegistrySnapshot(IReadOnlyList<RunStarted> runs, IReadOnlyList<RunEnded>? ends = null)
    {
        ArgumentNullException.ThrowIfNull(runs);
        Runs = [.. runs];
        Ends = ends is null ? [] : [.. ends];
    }

    public IReadOnlyList<RunStarted> Runs { get; }

    /// <summary>The ends recorded, in recording order.</summary>
    public IReadOnlyList<RunEnded> Ends { get; }

    public bool Equals(RunRegistrySnapshot? other) => other is not null && Runs.SequenceEqual(other.Runs) && Ends.SequenceEqual(other.Ends);

    public override bool Equals(object? obj) => Equals(obj as RunRegistrySnapshot);

    public override int GetHashCode() => Runs.Count == 0 ? 0 : HashCode.Combine(Runs.Count, Runs[0], Runs[^1]);
}

/// <summary>Command: record a run. Replied to with <see cref="RunRecorded"/> once the event is written, or <see cref="RunRejected"/>.</summary>
public sealed record RecordRun(string RunId, string ConfigHash, long StartedUnixMs, string Config = "");

/// <summary>
/// Command: record how a run ended. Replied to with <see cref="RunEndRecorded"/> once written, or
/// <see cref="RunRejected"/> (unknown run, or an end already recorded).
/// </summary>
public sealed record RecordRunEnd(RunEnded End);

/// <summary>The end is in the journal.</summary>
public sealed record RunEndRecorded(RunEnded End);

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

/// <summary>Every recorded run, in recording order, and the ends recorded (a run without one was interrupted).</summary>
public sealed record RunList(IReadOnlyList<RunStarted> Runs, IReadOnlyList<RunEnded>? Ends = null)
{
    /// <summary>The end of <paramref name="runId"/>, or null when none was recorded.</summary>
    public RunEnded? EndOf(string runId)
    {
        foreach (var e in Ends ?? [])
        {
            if (e.RunId == runId)
                return e;
        }
        return null;
    }
}
