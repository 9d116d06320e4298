namespace PtActors.Engine.Cost;

/// <summary>
/// The cost model's servers of one IOMMU unit, run on the unit's simulated clock in stamp order: its invalidation
/// queue (commands complete one after another), its translation pipeline (at most
/// <see cref="CostModel.TranslationsInFlight"/> translations at once; a miss walks memory), and the CPU time of the
/// unmaps and flushes its domains' CPUs do. It decides nothing the unit does: it only times it.
/// </summary>
public sealed class UnitCostLedger
{
    private readonly double[] _slots;       // min-heap of the times the translation slots are free
    private double _queueFreeNs;
    private bool[] _waited;          // the CPUs that have waited for a command on this unit
    private int _waitingCpus;

    /// <summary>A ledger for a unit with <paramref name="cpus"/> CPUs.</summary>
    public UnitCostLedger(CostModel model, int cpus)
    {
        ArgumentNullException.ThrowIfNull(model);
        Model = model;
        CpuNs = new double[Math.Max(1, cpus)];
        _slots = new double[model.TranslationsInFlight];
        _waited = new bool[CpuNs.Length];
    }

    /// <summary>The costs.</summary>
    public CostModel Model { get; }

    /// <summary>When the last command issued completes.</summary>
    public double LastCompletionNs { get; private set; }

    /// <summary>Time the invalidation queue was busy.</summary>
    public double QueueBusyNs { get; private set; }

    /// <summary>Queue time of the commands a CPU waited for (strict, batch, a full flush-queue ring, a table page freed): what paces the devices.</summary>
    public double SyncQueueBusyNs { get; private set; }

    /// <summary>Translations timed (IOTLB hits and walks).</summary>
    public long Translations { get; private set; }

    /// <summary>Summed time DMAs waited for their translation beyond an IOTLB hit's latency (queueing and walks).</summary>
    public double StallNs { get; private set; }

    /// <summary>When the last translation completed.</summary>
    public double LastTranslationNs { get; private set; }

    /// <summary>When the first of the translation slots comes free: a DMA arriving earlier waits for it.</summary>
    public double TranslationFreeNs => _slots[0];

    /// <summary>CPU time each CPU spent in unmaps and the flushes they waited for.</summary>
    public double[] CpuNs { get; private set; }

    /// <summary>CPU time of flushes no call waited for (flush-queue and batch timers), not yet given to a CPU.</summary>
    public double TimerCpuNs { get; private set; }

    /// <summary>Latency of each unmap call: its CPU work plus the wait for the invalidations it issued.</summary>
    public LatencyHistogram UnmapLatency { get; private set; } = new();

    /// <summary>How long each unmapped range stayed translatable: from the unmap to the completion of the invalidation covering it.</summary>
    public LatencyHistogram StaleWindow { get; private set; } = new();

    /// <summary>The unit issues one invalidation command at <paramref name="nowNs"/>.</summary>
    public void Command(double nowNs)
    {
        double start = Math.Max(nowNs, _queueFreeNs);
        _queueFreeNs = start + Model.InvalidationNs;
        QueueBusyNs += Model.InvalidationNs;
        LastCompletionNs = _queueFreeNs;
    }

    /// <summary>An unmapped range issued at <paramref name="unmappedAtNs"/> stops being translatable when the last command completes.</summary>
    public void Covered(double unmappedAtNs)
    {
        StaleWindow.Add(Math.Max(0, LastCompletionNs - unmappedAtNs));
    }

    /// <summary>
    /// A DMA at <paramref name="nowNs"/> is translated: by the IOTLB (<paramref name="walkReads"/> 0) or by a walk of
    /// that many memory reads, in the first translation slot free.
    /// </summary>
    public void Translate(double nowNs, int walkReads)
    {
        double service = walkReads == 0 ? Model.IotlbHitNs : Model.IotlbHitNs + walkReads * Model.WalkReadNs;
        double start = Math.Max(nowNs, _slots[0]);
        double done = start + service;
        SiftDown(done);
        Translations++;
        StallNs += done - nowNs - Model.IotlbHitNs;
        if (done > LastTranslationNs)
            LastTranslationNs = done;
    }

    /// <summary>
    /// CPU <paramref name="cpu"/> unmapped <paramref name="bytes"/> at <paramref name="nowNs"/> (a DMA-API unmap:
    /// the page table, the IOVA's return, the flush queue under lazy) and issued <paramref name="commands"/>
    /// invalidations it waits for (strict, a full batch, a full flush-queue ring).
    /// </summary>
    public void Unmap(int cpu, double nowNs, ulong bytes, bool queued, long commands)
    {
        double work = Model.DmaCallNs + Model.UnmapNs(bytes) + Model.IovaFreeNs + (queued ? Model.FlushQueueNs : 0);
        if (commands > 0)
            SyncQueueBusyNs += commands * Model.InvalidationNs;
        cpu %= CpuNs.Length;
        double latency = work + Wait(cpu, nowNs, commands);
        CpuNs[cpu] += latency;
        UnmapLatency.Add(latency);
    }

    /// <summary>CPU <paramref name="cpu"/> waited at <paramref name="nowNs"/> for <paramref name="commands"/> invalidations it issued (a flush its table asked for).</summary>
    public void Flushed(int cpu, double nowNs, long commands)
    {
        if (commands > 0)
            SyncQueueBusyNs += commands * Model.InvalidationNs;
        cpu %= CpuNs.Length;
        CpuNs[cpu] += Wait(cpu, nowNs, commands);
    }

    /// <summary>A timer flushed with <paramref name="commands"/> invalidations: each submitted and waited for (its CPU time is spread over the CPUs).</summary>
    public void TimerFlushed(long commands) => TimerCpuNs += commands * (Model.InvalidationSubmitNs + Model.InvalidationNs);

    /// <summary>
    /// How long a CPU that issued <paramref name="commands"/> at <paramref name="nowNs"/> waits for them: their
    /// submission, then until the queue has completed them. The queue's backlog is bounded as in a closed system: at
    /// most one command of each other CPU that has waited on this unit is ahead of this CPU's (a CPU waiting for its flush issues nothing else),
    /// so an overloaded queue makes CPUs spin longer as more contend, not without bound. The slowdown the queue
    /// imposes on the devices is its own factor (<see cref="CostFigures"/>).
    /// </summary>
    private double Wait(int cpu, double nowNs, long commands)
    {
        if (commands <= 0)
            return 0;
        if (!_waited[cpu])
        {
            _waited[cpu] = true;
            _waitingCpus++;
        }
        double bound = (commands + Math.Max(1, _waitingCpus) - 1) * Model.InvalidationNs;
        return commands * Model.InvalidationSubmitNs + Math.Min(bound, Math.Max(0, LastCompletionNs - nowNs));
    }

    /// <summary>Everything a ledger holds, for carrying it to another node (<see cref="Capture"/>, <see cref="Restore"/>).</summary>
    public sealed record State(double[] Slots, double QueueFreeNs, bool[] Waited, int WaitingCpus, double LastCompletionNs, double QueueBusyNs,
        double SyncQueueBusyNs, long Translations, double StallNs, double LastTranslationNs, double[] CpuNs, double TimerCpuNs,
        LatencyHistogram UnmapLatency, LatencyHistogram StaleWindow);

    /// <summary>A copy of everything the ledger holds.</summary>
    public State Capture() => new((double[])_slots.Clone(), _queueFreeNs, (bool[])_waited.Clone(), _waitingCpus, LastCompletionNs, QueueBusyNs,
        SyncQueueBusyNs, Translations, StallNs, LastTranslationNs, (double[])CpuNs.Clone(), TimerCpuNs, UnmapLatency.Clone(), StaleWindow.Clone());

    /// <summary>The ledger <paramref name="state"/> was captured from (under <paramref name="model"/>); null with <paramref name="problem"/> when it cannot be one.</summary>
    public static UnitCostLedger? Restore(CostModel model, State state, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(state);
        problem = state.Slots.Length != model.TranslationsInFlight ? $"{state.Slots.Length} translation slots, the model has {model.TranslationsInFlight}"
            : state.CpuNs.Length == 0 || state.Waited.Length != state.CpuNs.Length ? $"{state.CpuNs.Length} CPUs and {state.Waited.Length} waiting flags"
            : state.WaitingCpus < 0 || state.WaitingCpus > state.Waited.Length ? $"{state.WaitingCpus} waiting CPUs of {state.Waited.Length}"
            : null;
        if (problem is not null)
            return null;
        var l = new UnitCostLedger(model, state.CpuNs.Length)
        {
            _queueFreeNs = state.QueueFreeNs,
            _waited = (bool[])state.Waited.Clone(),
            _waitingCpus = state.WaitingCpus,
            LastCompletionNs = state.LastCompletionNs,
            QueueBusyNs = state.QueueBusyNs,
            SyncQueueBusyNs = state.SyncQueueBusyNs,
            Translations = state.Translations,
            StallNs = state.StallNs,
            LastTranslationNs = state.LastTranslationNs,
            CpuNs = (double[])state.CpuNs.Clone(),
            TimerCpuNs = state.TimerCpuNs,
            UnmapLatency = state.UnmapLatency.Clone(),
            StaleWindow = state.StaleWindow.Clone(),
        };
        state.Slots.CopyTo(l._slots, 0);
        return l;
    }

    /// <summary>A copy of the ledger's figures (for handing to another thread).</summary>
    public UnitCostLedger Snapshot()
    {
        var c = (UnitCostLedger)MemberwiseClone();
        c.CpuNs = (double[])CpuNs.Clone();
        c._waited = (bool[])_waited.Clone();
        c.UnmapLatency = UnmapLatency.Clone();
        c.StaleWindow = StaleWindow.Clone();
        return c;
    }

    private void SiftDown(double value)
    {
        // Replace the root (the earliest free slot) with its new free time and restore the heap.
        var h = _slots;
        int i = 0, n = h.Length;
        while (true)
        {
            int l = 2 * i + 1;
            if (l >= n)
                break;
            int c = l + 1 < n && h[l + 1] < h[l] ? l + 1 : l;
            if (h[c] >= value)
                break;
            h[i] = h[c];
            i = c;
        }
        h[i] = value;
    }
}
