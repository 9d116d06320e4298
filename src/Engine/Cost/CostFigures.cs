namespace PtActors.Engine.Cost;

/// <summary>
/// The cost model's figures of a run (docs/model.md): from the hosts' and units' ledgers, which lane each belongs
/// to, and the simulated time the devices offered their work over.
/// </summary>
public sealed record CostFigures
{
    /// <summary>What the devices moved ÷ what they offered (moved + held back by back-pressure).</summary>
    public double ThroughputRatio { get; init; }
    /// <summary>Gb/s of data the devices moved by DMA (their data bytes × the ratio, per simulated second).</summary>
    public double DeviceGbps { get; init; }
    /// <summary>Transfers (packets, commands, accesses) per simulated second the devices completed, slowed as their bytes are.</summary>
    public double DeviceIops { get; init; }
    /// <summary>Work items (packets, commands, accesses, ticks) the devices did not start because their CPU or unit was behind.</summary>
    public long Throttled { get; init; }
    /// <summary>Mean over the CPUs of the share of the run's time each spent in DMA-API work (at most 1 each).</summary>
    public double CpuUtilization { get; init; }
    /// <summary>Mean over the units of the share of the run's time the invalidation queue was busy (at most 1 each).</summary>
    public double InvQueueUtilization { get; init; }
    /// <summary>Median DMA-API call latency (bucket upper bound).</summary>
    public double OpLatencyP50Us { get; init; }
    /// <summary>99th-percentile DMA-API call latency (bucket upper bound).</summary>
    public double OpLatencyP99Us { get; init; }
    /// <summary>Mean time a DMA waited for its translation beyond an IOTLB hit's latency.</summary>
    public double TranslationStallUs { get; init; }
    /// <summary>How long unmapped ranges stayed translatable: unmap to the completion of the invalidation covering it.</summary>
    public LatencyHistogram StaleWindow { get; init; } = new();
    /// <summary>Map and unmap call latencies.</summary>
    public LatencyHistogram OpLatency { get; init; } = new();

    /// <summary>
    /// Computes the figures. <paramref name="hosts"/> and <paramref name="units"/> carry their lane; the hosts' ledgers
    /// hold what their devices moved; <paramref name="offeredNs"/> is the simulated time the work was offered over.
    /// </summary>
    public static CostFigures Compute(int cpus, IReadOnlyList<(int Lane, HostCostLedger Ledger)> hosts,
        IReadOnlyList<(int Lane, UnitCostLedger Ledger)> units, double offeredNs)
    {
        ArgumentNullException.ThrowIfNull(hosts);
        ArgumentNullException.ThrowIfNull(units);
        double t = Math.Max(offeredNs, 1);
        var cpuNs = new double[Math.Max(1, cpus)];
        double timer = 0;
        var latency = new LatencyHistogram();
        var stale = new LatencyHistogram();
        int lanes = 0;
        foreach (var (lane, h) in hosts)
        {
            lanes = Math.Max(lanes, lane + 1);
            for (int k = 0; k < h.CpuNs.Length; k++)
                cpuNs[k % cpuNs.Length] += h.CpuNs[k];
            latency.Add(h.MapLatency);
        }
        foreach (var (lane, u) in units)
        {
            lanes = Math.Max(lanes, lane + 1);
            for (int k = 0; k < u.CpuNs.Length; k++)
                cpuNs[k % cpuNs.Length] += u.CpuNs[k];
            timer += u.TimerCpuNs;
            latency.Add(u.UnmapLatency);
            stale.Add(u.StaleWindow);
        }
        // Timer flushes run on whichever CPU their timer fires on: spread evenly.
        double utilization = 0;
        var cpuSlow = new double[cpuNs.Length];
        for (int k = 0; k < cpuNs.Length; k++)
        {
            double demand = cpuNs[k] + timer / cpuNs.Length;
            utilization += Math.Min(1, demand / t);
            cpuSlow[k] = Math.Max(1, demand / t);
        }
        // A unit whose translations finish after the offered time stretched its devices' work by as much.
        var unitSlow = new double[Math.Max(1, lanes)];
        Array.Fill(unitSlow, 1.0);
        double queue = 0, stallNs = 0;
        long translations = 0;
        foreach (var (lane, u) in units)
        {
            // The lane's devices wait for translations, and (strict, batch) their unmaps for the invalidation
            // queue: the busier server sets the pace.
            unitSlow[lane] = Math.Max(1, Math.Max(u.LastTranslationNs, u.SyncQueueBusyNs) / t);
            queue += Math.Min(1, u.QueueBusyNs / t);
            stallNs += u.StallNs;
            translations += u.Translations;
        }
        // Offered: what the devices moved in the run and what they held back because their CPU or unit was behind
        // (the back-pressure the run applied); moved: the bytes of the run, slowed by whatever backlog the servers
        // still had that the run did not apply (its last windows, the feedback's lag).
        double offered = 0, ran = 0, moved = 0;
        long transfers = 0, throttled = 0;
        foreach (var (lane, h) in hosts)
        {
            transfers += h.Transfers;
            throttled += h.Throttled;
            offered += h.HeldBytes;
            for (int k = 0; k < h.BytesByCpu.Length; k++)
            {
                double b = h.BytesByCpu[k];
                ran += b;
                moved += b / Math.Max(cpuSlow[k % cpuSlow.Length], unitSlow[lane]);
            }
        }
        offered += ran;
        double ratio = offered > 0 ? moved / offered : 1;
        return new CostFigures
        {
            ThroughputRatio = ratio,
            DeviceGbps = moved * 8 / t,
            Throttled = throttled,
            DeviceIops = (ran > 0 ? transfers * (moved / ran) : transfers) / (t / 1e9),
            CpuUtilization = utilization / cpuNs.Length,
            InvQueueUtilization = units.Count == 0 ? 0 : queue / units.Count,
            OpLatencyP50Us = latency.Percentile(0.50) / 1000,
            OpLatencyP99Us = latency.Percentile(0.99) / 1000,
            TranslationStallUs = translations == 0 ? 0 : stallNs / translations / 1000,
            StaleWindow = stale,
            OpLatency = latency,
        };
    }
}
