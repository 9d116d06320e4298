using PtActors.Engine;

namespace PtActors.Actors;

/// <summary>
/// The figures of a run from what its actors reported (no Akka): host and unit counters summed, the lock-wait
/// percentiles, <c>table_pages_max</c> and the table hashes. The coordinator collects; this computes.
/// </summary>
internal static class RunFigures
{
    /// <summary>What a finished run reported, in the coordinator's order.</summary>
    public sealed record Inputs(
        SimulationSettings Settings,
        IEnumerable<DeviceHost.HostCounters> Hosts,
        IEnumerable<IotlbActor.Counters> Units,
        IReadOnlyList<IReadOnlyList<long>> LanePagesAtWindowEnd,
        long FinalPages,
        IEnumerable<DomainImage> Tables,
        long Events,
        long OpsPersisted,
        long Windows,
        double WallS);

    /// <summary>The run's figures.</summary>
    public static SimulationResult Aggregate(Inputs run)
    {
        var s = run.Settings;
        long maps = 0, unmaps = 0, errors = 0, dmas = 0, lockWaits = 0;
        ulong bytes = 0;
        var waits = new long[DeviceHost.LockWaitBuckets];
        foreach (var h in run.Hosts)
        {
            maps += h.Maps;
            unmaps += h.Unmaps;
            errors += h.Errors;
            dmas += h.Dmas;
            lockWaits += h.LockWaits;
            bytes += h.BytesMapped;
            for (int i = 0; i < waits.Length; i++)
                waits[i] += h.LockWaitHistogram[i];
        }
        long hits = 0, misses = 0, inv = 0, over = 0, inWindow = 0, violations = 0, uaf = 0, breaches = 0, faults = 0;
        foreach (var u in run.Units)
        {
            hits += u.Stats.Hits;
            misses += u.Stats.Misses;
            inv += u.Stats.Invalidations;
            over += u.Stats.OverInvalidatedBytes;
            inWindow += u.Stats.StaleInWindow;
            violations += u.Stats.StaleViolations;
            uaf += u.Stats.UseAfterFree;
            breaches += u.Stats.IsolationBreaches;
            faults += u.Stats.Faults;
        }
        long ops = maps + unmaps;
        double wall = run.WallS;
        return new SimulationResult
        {
            RunId = s.RunId,
            Unsafe = s.Unsafe,
            Ops = ops,
            Dmas = dmas,
            OpsPerSec = ops / Math.Max(wall, 1e-9),
            WallS = wall,
            SimS = run.Windows * (double)s.WindowNs / 1e9,
            Maps = maps,
            Unmaps = unmaps,
            BytesMapped = bytes,
            // Passthrough translates nothing: a hit rate would be a claim about an IOTLB that does not exist.
            IotlbHitRate = run.Settings.Policy.Kind == PtActors.Engine.Hardware.FlushPolicyKind.Passthrough ? double.NaN : hits + misses == 0 ? 0 : (double)hits / (hits + misses),
            Invalidations = inv,
            InvalidationsPerUnmap = unmaps == 0 ? 0 : (double)inv / unmaps,
            OverInvalidatedBytes = over,
            StaleInWindow = inWindow,
            StaleViolations = violations,
            UseAfterFree = uaf,
            IsolationBreaches = breaches,
            LockWaitP50Us = Percentile(waits, 0.50),
            LockWaitP99Us = Percentile(waits, 0.99),
            LockWaits = lockWaits,
            LockWaitHistogram = new PtActors.Engine.Cost.BucketCounts(waits),
            TablePagesMax = TablePagesMax(run.LanePagesAtWindowEnd, run.FinalPages),
            EventsPersisted = run.Events,
            OpsPersisted = run.OpsPersisted,
            TableHash = DomainHashes.Canonical(run.Tables),
            MemoryHash = DomainHashes.Memory(run.Tables),
            Faults = faults,
            Errors = errors,
        };
    }

    /// <summary>The upper bound (µs) of the histogram bucket holding the given quantile: 0 for bucket 0, else 2^k.</summary>
    public static double Percentile(long[] histogram, double q)
    {
        long total = 0;
        foreach (long n in histogram)
            total += n;
        if (total == 0)
            return 0;
        long rank = (long)Math.Ceiling(q * total), seen = 0;
        for (int k = 0; k < histogram.Length; k++)
        {
            seen += histogram[k];
            if (seen >= rank)
                return k == 0 ? 0 : Math.Pow(2, k);
        }
        return Math.Pow(2, histogram.Length);
    }

    /// <summary>The most table pages held at once (<see cref="PtActors.Engine.Replay.TablePages.Max"/>).</summary>
    public static long TablePagesMax(IReadOnlyList<IReadOnlyList<long>> lanes, long finalPages) => PtActors.Engine.Replay.TablePages.Max(lanes, finalPages);
}
