using System.Globalization;
using Akka.Actor;
using PtActors.Engine;
using PtActors.Engine.Formats;
using PtActors.Engine.Hardware;
using PtActors.Engine.Replay;
using PtActors.Persistence;
using PtActors.Persistence.Runs;

namespace PtActors.Actors;

/// <summary>A configuration to replay a recording under: the policy, IOTLB size, format and CPUs of its units and domains.</summary>
public sealed record ReplayVariant(FlushPolicySpec Policy, int IotlbEntries, PtFormatKind Format, int Cpus)
{
    public override string ToString()
        => string.Create(CultureInfo.InvariantCulture, $"policy={Policy} iotlb={IotlbEntries} format={PtFormatOps.For(Format).Name} cpus={Cpus}");
}

/// <summary>A recording read from a database: the run, its end (if it ended), its configuration and its journals.</summary>
public sealed record LoadedRecording(RunStarted Run, RunEnded? End, SimulationSettings Settings, Recording Recording)
{
    /// <summary>The DMAs each unit translated (one list per unit, in window order) when the run recorded them (<c>simulate --record-dmas</c>), else null.</summary>
    public IReadOnlyList<IReadOnlyList<WindowDmas>>? Dmas { get; init; }

    /// <summary>DMAs the recording holds (0 without recorded DMAs).</summary>
    public long DmaCount
    {
        get
        {
            long n = 0;
            foreach (var unit in Dmas ?? [])
            {
                foreach (var w in unit)
                    n += w.Items.Length;
            }
            return n;
        }
    }

    /// <summary>The configuration the run was recorded with.</summary>
    public ReplayVariant Recorded => new(Settings.Policy, Settings.IotlbEntries, Settings.Format, Settings.Cpus);

    /// <summary>Map and unmap calls the journals hold.</summary>
    public long Operations
    {
        get
        {
            long ops = 0;
            foreach (var d in Recording.Domains)
            {
                foreach (var b in d.Batches)
                    ops += b.Ops.Length;
            }
            return ops;
        }
    }
}

/// <summary>
/// Reads a <c>simulate</c> recording back from its database (the run registry's configuration and each domain's
/// journal, through Akka.Persistence.Query) and replays it through the engine's <see cref="Replayer"/>.
/// </summary>
public static class RecordingReplay
{
    /// <summary>The settings a run was recorded with, from its registry entry.</summary>
    /// <exception cref="FormatException">The configuration is missing or names something this build does not know.</exception>
    public static SimulationSettings SettingsOf(RunStarted run)
    {
        ArgumentNullException.ThrowIfNull(run);
        if (run.Config.Length == 0)
            throw new FormatException($"run '{run.RunId}' was recorded before runs kept their configuration: it cannot be replayed");
        string config = run.Config;
        return new SimulationSettings
        {
            RunId = run.RunId,
            Iommus = Int("iommus", 1),
            Domains = Int("domains", 0),
            Devices = Int("devices", 0),
            Workload = Value("workload"),
            Format = PtFormatOps.Parse(Value("format")) ?? throw Bad("format"),
            Policy = FlushPolicySpec.TryParse(Value("policy"), out var policy) ? policy : throw Bad("policy"),
            IotlbEntries = Int("iotlb", 1),
            Cpus = Int("cpus", 1),
            Seed = ulong.TryParse(Value("seed"), NumberStyles.None, CultureInfo.InvariantCulture, out ulong seed) ? seed : throw Bad("seed"),
            Unsafe = UnsafeModes.Parse(Value("unsafe")) ?? throw Bad("unsafe"),
            // How the run was bounded: ops=N, duration=D, or ops=none (neither).
            Ops = SimulationSettings.ValueOf(config, "ops") switch
            {
                null or "none" => null,
                var ops => long.TryParse(ops, NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? n : throw Bad("ops"),
            },
            DurationNs = SimulationSettings.ValueOf(config, "duration") is { } duration
                ? SimulationSettings.ParseDuration(duration) ?? throw Bad("duration")
                : null,
            RecordDmas = SimulationSettings.ValueOf(config, "record-dmas") switch
            {
                null or "false" => false,
                "true" => true,
                _ => throw Bad("record-dmas"),
            },
        };

        string Value(string key) => SimulationSettings.ValueOf(config, key) ?? throw new FormatException($"run '{run.RunId}': its configuration has no {key}= ({config})");

        int Int(string key, int min)
            => int.TryParse(Value(key), NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v >= min ? v : throw Bad(key);

        FormatException Bad(string key) => new($"run '{run.RunId}': its configuration's {key}={Value(key)} is not one this build knows");
    }

    /// <summary>The persistence id of unit <paramref name="unit"/>'s DMA journal in run <paramref name="runId"/> (<c>simulate --record-dmas</c>).</summary>
    public static string DmaJournalId(string runId, int unit) => DmaRecorder.PersistenceIdOf(runId, RunTopology.UnitName(unit));

    /// <summary>Reads run <paramref name="run"/>'s journals.</summary>
    public static async Task<LoadedRecording> LoadAsync(ActorSystem system, RunStarted run, RunEnded? end, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(system);
        var settings = SettingsOf(run);
        var topology = new RunTopology(settings);
        // The journals are read one query per core at a time (each decodes on its own thread; more queries than
        // cores only compete: measured slower with 4 and 8 than with 2 on two cores).
        var reads = new Task<List<PtActors.Engine.Dma.DomainBatch>>[topology.Domains.Count];
        using (var gate = new SemaphoreSlim(Math.Max(2, Environment.ProcessorCount)))
        {
            for (int d = 0; d < reads.Length; d++)
            {
                string id = PersistenceIds.For(run.RunId, topology.Domains[d].Name);
                reads[d] = ReadAsync(id);
            }
            await Task.WhenAll(reads).ConfigureAwait(false);

            async Task<List<PtActors.Engine.Dma.DomainBatch>> ReadAsync(string id)
            {
                await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
                try
                {
                    return await Recordings.ReadBatchesAsync(system, id, cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    gate.Release();
                }
            }
        }
        var domains = new List<RecordedDomain>(topology.Domains.Count);
        for (int d = 0; d < reads.Length; d++)
            domains.Add(new RecordedDomain(topology.Domains[d].Name, [.. topology.Domains[d].Devices], reads[d].Result));
        IReadOnlyList<LaneWindDown>? windDown = end is { Outcome: RunOutcome.Completed, WindDown.Count: > 0 } ? end.WindDown : null;
        var recording = new Recording(settings.Format, settings.Iommus, settings.WindowNs, domains, windDown);
        List<WindowDmas>[]? dmas = null;
        if (settings.RecordDmas)
        {
            dmas = new List<WindowDmas>[topology.Lanes.Count];
            for (int u = 0; u < dmas.Length; u++)
                dmas[u] = await Recordings.ReadWindowDmasAsync(system, DmaJournalId(run.RunId, topology.Lanes[u].Index), cancellationToken).ConfigureAwait(false);
        }
        return new LoadedRecording(run, end, settings, recording) { Dmas = dmas };
    }

    /// <summary>Whether a replay under <paramref name="variant"/> builds the same tables as the run (so the journalled hardware writes apply).</summary>
    public static bool SameTables(LoadedRecording recording, ReplayVariant variant)
    {
        var r = recording.Recorded;
        return variant.Format == r.Format && variant.Policy == r.Policy && variant.Cpus == r.Cpus;
    }

    /// <summary>The <paramref name="q"/> quantile of a replay's lock waits in µs, as <c>simulate</c> computes its own.</summary>
    public static double LockWaitPercentile(ReplayReport report, double q)
    {
        ArgumentNullException.ThrowIfNull(report);
        return RunFigures.Percentile(report.LockWaitHistogram, q);
    }

    /// <summary>
    /// Replays <paramref name="recording"/> under <paramref name="variant"/> (the run's deliberately broken behaviour,
    /// if any, kept), with the run's DMAs when it recorded them, else with <paramref name="synth"/>'s (if set).
    /// </summary>
    /// <param name="journal">If set (one list per domain), receives the events a recording of this replay keeps.</param>
    /// <exception cref="ArgumentException"><paramref name="synth"/> is set and the recording has DMAs of its own.</exception>
    public static ReplayReport Replay(LoadedRecording recording, ReplayVariant variant, CancellationToken cancellationToken = default,
        List<PtActors.Engine.Dma.DomainBatch>[]? journal = null, SynthDmas? synth = null)
    {
        ArgumentNullException.ThrowIfNull(recording);
        ArgumentNullException.ThrowIfNull(variant);
        var unit = UnsafeModes.Apply(recording.Settings.Unsafe, new IommuUnitConfig
        {
            Policy = variant.Policy,
            Cpus = variant.Cpus,
            Iotlb = new IotlbConfig(variant.IotlbEntries, Math.Min(8, variant.IotlbEntries)),
        });
        if (synth is not null && recording.Dmas is not null)
            throw new ArgumentException($"run '{recording.Run.RunId}' has recorded DMAs: they are replayed, synthesized ones cannot be added");
        return Replayer.Run(recording.Recording, new ReplayConfig(variant.Format, unit, SameTables(recording, variant), Journal: journal,
            RecordedDmas: recording.Dmas, Synth: synth), cancellationToken);
    }
}
