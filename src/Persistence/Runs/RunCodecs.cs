using PtActors.Persistence.Serialization;

namespace PtActors.Persistence.Runs;

/// <summary>
/// Codecs of the run registry. Formats (after the version byte):
/// run-started v2 = string RunId, string ConfigHash, zigzag varint StartedUnixMs, string Config (v1: without Config);
/// run-ended v1 = string RunId, byte Outcome (1 completed, 2 failed), zigzag varint EndedUnixMs, zigzag varint
/// OpsAcknowledged, string TableHash, string MemoryHash, string Message;
/// runs-snapshot v2 = varint count, count run-started v2 bodies, varint count, count run-ended v1 bodies
/// (v1: only the run-started v1 bodies).
/// </summary>
public sealed class RunCodecs : IPtCodecSet
{
    public const string RunStartedManifest = "run-started";
    public const string SnapshotManifest = "runs-snapshot";
    public const string RunEndedManifest = "run-ended";

    public void Register(PtCodecRegistry registry)
    {
        registry.Register<RunStarted>(RunStartedManifest, 2, WriteRun, ReadRun, minVersion: 1);
        registry.Register<RunEnded>(RunEndedManifest, 1, WriteEnd, (ref PtReader r, byte _) => ReadEnd(ref r));
        registry.Register<RunRegistrySnapshot>(SnapshotManifest, 2, WriteSnapshot, ReadSnapshot, minVersion: 1);
    }

    private static void WriteRun(PtWriter w, RunStarted e)
    {
        w.WriteString(e.RunId);
        w.WriteString(e.ConfigHash);
        w.WriteVarInt64(e.StartedUnixMs);
        w.WriteString(e.Config);
    }

    private static RunStarted ReadRun(ref PtReader r, byte version)
        => new(r.ReadString(), r.ReadString(), r.ReadVarInt64(), version >= 2 ? r.ReadString() : string.Empty);

    private static void WriteEnd(PtWriter w, RunEnded e)
    {
        w.WriteString(e.RunId);
        w.WriteByte((byte)e.Outcome);
        w.WriteVarInt64(e.EndedUnixMs);
        w.WriteVarInt64(e.OpsAcknowledged);
        w.WriteString(e.TableHash);
        w.WriteString(e.MemoryHash);
        w.WriteString(e.Message);
    }

    private static RunEnded ReadEnd(ref PtReader r)
    {
        string id = r.ReadString();
        byte outcome = r.ReadByte();
        if (outcome is not ((byte)RunOutcome.Completed or (byte)RunOutcome.Failed))
            throw r.Corrupt($"run outcome {outcome} is neither 1 (completed) nor 2 (failed)");
        return new RunEnded(id, (RunOutcome)outcome, r.ReadVarInt64(), r.ReadVarInt64(), r.ReadString(), r.ReadString(), r.ReadString());
    }

    private static void WriteSnapshot(PtWriter w, RunRegistrySnapshot s)
    {
        w.WriteCount(s.Runs.Count);
        foreach (var run in s.Runs) WriteRun(w, run);
        w.WriteCount(s.Ends.Count);
        foreach (var end in s.Ends) WriteEnd(w, end);
    }

    private static RunRegistrySnapshot ReadSnapshot(ref PtReader r, byte version)
    {
        // A run body is at least 3 bytes (two empty strings and a one-byte varint; v2 adds an empty string).
        int count = r.ReadCount(minItemBytes: version >= 2 ? 4 : 3);
        var runs = new RunStarted[count];
        for (int i = 0; i < count; i++) runs[i] = ReadRun(ref r, version);
        if (version < 2)
            return new RunRegistrySnapshot(runs);
        // An end body is at least 7 bytes (four empty strings, a byte and two one-byte varints).
        var ends = new RunEnded[r.ReadCount(minItemBytes: 7)];
        for (int i = 0; i < ends.Length; i++) ends[i] = ReadEnd(ref r);
        return new RunRegistrySnapshot(runs, ends);
    }
}
