using PtActors.Persistence.Serialization;

namespace PtActors.Persistence.Runs;

/// <summary>
/// Codecs of the run registry. Formats (after the version byte):
/// run-started v2 = string RunId, string ConfigHash, zigzag varint StartedUnixMs, string Config (v1: without Config);
/// run-ended v1 = string RunId, byte Outcome (1 completed, 2 failed), zigzag varint EndedUnixMs, zigzag varint
/// OpsAcknowledged, string TableHash, string MemoryHash, string Message;
/// run-ended v2 = v1, varint lanes, per lane varint QuietAfter and varint (Final − QuietAfter);
/// run-ended v3 = v2, varint domains, per domain varint Events and the memory-hash prefix as a little-endian uint64;
/// runs-snapshot v2 = varint count, count run-started v2 bodies, varint count, count run-ended v1 bodies
/// (v1: only the run-started v1 bodies; v3: run-ended v2 bodies; v4: run-ended v3 bodies).
/// </summary>
public sealed class RunCodecs : IPtCodecSet
{
    public const string RunStartedManifest = "run-started";
    public const string SnapshotManifest = "runs-snapshot";
    public const string RunEndedManifest = "run-ended";

    public void Register(PtCodecRegistry registry)
    {
        registry.Register<RunStarted>(RunStartedManifest, 2, WriteRun, ReadRun, minVersion: 1);
        registry.Register<RunEnded>(RunEndedManifest, 3, WriteEnd, ReadEnd, minVersion: 1);
        registry.Register<RunRegistrySnapshot>(SnapshotManifest, 4, WriteSnapshot, ReadSnapshot, minVersion: 1);
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
        w.WriteCount(e.WindDown.Count);
        foreach (var lane in e.WindDown)
        {
            if (lane.QuietAfter < 0 || lane.Final < lane.QuietAfter)
                throw new System.Runtime.Serialization.SerializationException(
                    $"PtSerializer: cannot write '{RunEndedManifest}': lane wind-down {lane.QuietAfter}..{lane.Final} is not a window range");
            w.WriteVarInt64(lane.QuietAfter);
            w.WriteVarInt64(lane.Final - lane.QuietAfter);
        }
        w.WriteCount(e.Domains.Count);
        foreach (var domain in e.Domains)
        {
            if (domain.Events < 0)
                throw new System.Runtime.Serialization.SerializationException(
                    $"PtSerializer: cannot write '{RunEndedManifest}': a domain's journal cannot hold {domain.Events} events");
            w.WriteVarInt64(domain.Events);
            w.WriteUInt64(domain.MemoryHash);
        }
    }

    private static RunEnded ReadEnd(ref PtReader r, byte version)
    {
        string id = r.ReadString();
        byte outcome = r.ReadByte();
        if (outcome is not ((byte)RunOutcome.Completed or (byte)RunOutcome.Failed))
            throw r.Corrupt($"run outcome {outcome} is neither 1 (completed) nor 2 (failed)");
        var end = new RunEnded(id, (RunOutcome)outcome, r.ReadVarInt64(), r.ReadVarInt64(), r.ReadString(), r.ReadString(), r.ReadString());
        if (version < 2)
            return end;
        var lanes = new PtActors.Engine.Replay.LaneWindDown[r.ReadCount(minItemBytes: 2)];
        for (int i = 0; i < lanes.Length; i++)
        {
            long quietAfter = r.ReadVarInt64(), span = r.ReadVarInt64();
            if (quietAfter < 0 || span < 0 || quietAfter > long.MaxValue - span)
                throw r.Corrupt($"lane {i} wind-down {quietAfter}+{span} is not a window range");
            lanes[i] = new PtActors.Engine.Replay.LaneWindDown(quietAfter, quietAfter + span);
        }
        end = end with { WindDown = lanes };
        if (version < 3)
            return end;
        var domains = new PtActors.Engine.Replay.DomainEnd[r.ReadCount(minItemBytes: 9)];
        for (int i = 0; i < domains.Length; i++)
        {
            long events = r.ReadVarInt64();
            if (events < 0)
                throw r.Corrupt($"domain {i} holds {events} events");
            domains[i] = new PtActors.Engine.Replay.DomainEnd(events, r.ReadUInt64());
        }
        return end with { Domains = domains };
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
        // An end body is at least 7 bytes (four empty strings, a byte and two one-byte varints); each version of
        // the end since adds a count. Ends inside a v2 snapshot are v1 ends, inside v3 v2 ends, inside v4 v3 ends.
        byte endVersion = (byte)Math.Max(1, version - 1);
        var ends = new RunEnded[r.ReadCount(minItemBytes: 6 + endVersion)];
        for (int i = 0; i < ends.Length; i++) ends[i] = ReadEnd(ref r, endVersion);
        return new RunRegistrySnapshot(runs, ends);
    }
}
