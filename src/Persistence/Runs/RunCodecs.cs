using PtActors.Persistence.Serialization;

namespace PtActors.Persistence.Runs;

/// <summary>
/// Codecs of the run registry. Formats (after the version byte):
/// run-started v1 = string RunId, string ConfigHash, zigzag varint StartedUnixMs;
/// runs-snapshot v1 = varint count, then count run-started v1 bodies.
/// </summary>
public sealed class RunCodecs : IPtCodecSet
{
    public const string RunStartedManifest = "run-started";
    public const string SnapshotManifest = "runs-snapshot";

    public void Register(PtCodecRegistry registry)
    {
        registry.Register<RunStarted>(RunStartedManifest, 1, WriteRun, (ref PtReader r, byte _) => ReadRun(ref r));
        registry.Register<RunRegistrySnapshot>(SnapshotManifest, 1, WriteSnapshot, ReadSnapshot);
    }

    private static void WriteRun(PtWriter w, RunStarted e)
    {
        w.WriteString(e.RunId);
        w.WriteString(e.ConfigHash);
        w.WriteVarInt64(e.StartedUnixMs);
    }

    private static RunStarted ReadRun(ref PtReader r) => new(r.ReadString(), r.ReadString(), r.ReadVarInt64());

    private static void WriteSnapshot(PtWriter w, RunRegistrySnapshot s)
    {
        w.WriteCount(s.Runs.Count);
        foreach (var run in s.Runs) WriteRun(w, run);
    }

    private static RunRegistrySnapshot ReadSnapshot(ref PtReader r, byte version)
    {
        // A run body is at least 3 bytes (two empty strings and a one-byte varint).
        int count = r.ReadCount(minItemBytes: 3);
        var runs = new RunStarted[count];
        for (int i = 0; i < count; i++) runs[i] = ReadRun(ref r);
        return new RunRegistrySnapshot(runs);
    }
}
