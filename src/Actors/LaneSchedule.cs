namespace PtActors.Actors;

/// <summary>
/// What a <see cref="LaneSchedule"/> asks of the actors of a run. Lanes, hosts and domains are numbered: lane
/// <c>l</c> is the run's unit <c>l</c>; host and domain slots number a lane's hosts and domains in domain order (one
/// host per domain, so slot <c>i</c> is both domain <c>i</c> of the lane and the host driving its devices).
/// </summary>
internal interface ILaneDriver
{
    /// <summary>
    /// Host <paramref name="slot"/> of <paramref name="lane"/> generates and sends window <paramref name="window"/>'s
    /// traffic, stamped in [t0, t1); <paramref name="budget"/> map+unmap calls at most (−1: no limit); devices on CPU
    /// c start no new work before t0 + <paramref name="held"/>[c] (null: none held).
    /// </summary>
    void Generate(int lane, int slot, long window, ulong t0, ulong t1, bool quiet, long budget, long[]? held);

    /// <summary>
    /// Every domain of <paramref name="lane"/> applies, persists and answers what it received for
    /// <paramref name="window"/>; <paramref name="final"/>: the lane's last commit, after its unit's final drain.
    /// </summary>
    void Commit(int lane, long window, bool final);

    /// <summary>Every domain of <paramref name="lane"/> answered its commit: what they acknowledged is durable.</summary>
    void Committed(int lane, long window);

    /// <summary>The lane's unit runs the window's DMAs, unmaps and timeouts in stamp order, up to <paramref name="endNs"/>.</summary>
    void Process(int lane, long window, ulong endNs);

    /// <summary>The lane's unit flushes what its policy holds (winding down).</summary>
    void Drain(int lane, ulong atNs);

    /// <summary>Host <paramref name="slot"/> re-sends window <paramref name="window"/>'s operations to its restarted domain.</summary>
    void Resend(int lane, int slot, long window);

    /// <summary>Domain <paramref name="slot"/>, restarted from its journal, commits <paramref name="window"/> again from <paramref name="sequenceNr"/>.</summary>
    void Recommit(int lane, int slot, long window, long sequenceNr, bool final);

    /// <summary>Every lane has finished: the run's figures can be gathered.</summary>
    void Finished();

    /// <summary>Domain <paramref name="slot"/> of <paramref name="lane"/> was restarted <paramref name="restarts"/> times while committing <paramref name="window"/>: the run stops.</summary>
    void GiveUp(int lane, int slot, int restarts, long window);
}

/// <summary>
/// The order of a run's windows, lane by lane, as a pure state machine: no actors, no clocks. It is told what the
/// actors answered (a host generated, a domain committed or restarted, a unit processed or drained) and tells its
/// <see cref="ILaneDriver"/> what to ask next.
/// <para>
/// Each lane (a unit, its domains, their hosts) goes through its own windows. A window has three phases: the
/// hosts generate; the domains commit (apply in stamp order, persist, answer); the unit processes. The next
/// window's generation needs only the domains' answers, so it overlaps the unit's processing; a commit waits for
/// both, so the domains' tables never change while the unit walks them.
/// </para>
/// <para>
/// With an operation budget (<c>--ops N</c>), what is left of N after window w − 1 — once every lane has generated
/// it — is shared among all the run's hosts, the remainder going to the first hosts in run order; so exactly N
/// calls are issued, and a lane that committed a window waits for the others to generate it before going on (at
/// most one window ahead).
/// </para>
/// <para>
/// Winding down (the budget issued or the duration reached): the lane stops generating new work and drains its
/// unit window after window until its hosts have nothing in flight (or 10 000 quiet windows passed); a last
/// commit makes the final releases durable.
/// </para>
/// <para>
/// Re-drive: a domain restarted from its journal while committing a window (a failed write) makes its host
/// re-send that window's operations and, if its commit is still outstanding, commits it again from the journal
/// position of its last commit; after <see cref="MaxRestarts"/> restarts within one commit the run gives up.
/// </para>
/// </summary>
internal sealed class LaneSchedule
{
    /// <summary>Restarts of one domain within one commit after which the run gives up.</summary>
    public const int MaxRestarts = 5;

    /// <summary>Quiet windows a lane drains at most while its hosts still have operations in flight.</summary>
    public const int MaxQuietWindows = 10_000;

    /// <summary>What a unit reported after processing a window: its CPUs' cumulative time, its timer flushes' and how far its translations are behind.</summary>
    internal readonly record struct UnitReport(double[] CpuNs, double TimerCpuNs, double BehindNs);

    private sealed class Lane
    {
        public required int Index;
        /// <summary>Each host's place in the run's host order.</summary>
        public required int[] HostOrder;
        public required long[] Issued, Inflight;
        public required bool[] AwaitingCommit;
        public required long[] SequenceNr;
        public required int[] Restarts;
        /// <summary>Calls the lane's hosts had issued after generating each window (index = window − 1).</summary>
        public readonly List<long> IssuedThrough = new();
        public long Window, CommittedWindow;
        public int HostsPending, DomainsPending;
        public bool UnitBusy, Quiet, FinalDrain, Drained, Done;
        public int QuietWindows;
        /// <summary>The last window generated before winding down, and the window of the final drain (0: not yet).</summary>
        public long QuietAfter, FinalWindow;
        /// <summary>The window the unit is processing or last processed.</summary>
        public long ProcessingWindow;
        /// <summary>Back-pressure: the CPU time the lane's hosts reported after generating each window (summed over hosts, cumulative).</summary>
        public readonly Dictionary<long, double[]> HostCpu = new();
        public double[]? Generating;
        /// <summary>Back-pressure: what the unit reported after processing each window.</summary>
        public readonly Dictionary<long, UnitReport> UnitCpu = new();
        /// <summary>The last reports folded into the backlog (a lane winding down reports no more).</summary>
        public double[] LastHostCpu = [];
        public UnitReport LastUnit = new([], 0, 0);

        public int Domains => AwaitingCommit.Length;

        public long IssuedThroughWindow(long w)
            => IssuedThrough.Count == 0 || w <= 0 ? 0 : IssuedThrough[(int)Math.Min(w, IssuedThrough.Count) - 1];
    }

    private readonly ILaneDriver _driver;
    private readonly ulong _windowNs;
    private readonly long? _ops;
    private readonly ulong? _durationNs;
    private readonly Lane[] _lanes;
    private readonly int _hostCount;
    private readonly List<Lane> _waitingForBudget = new();
    private int _lanesRunning;
    private bool _stopped;
    // Back-pressure (docs/model.md): the CPUs' backlog after each step, folded in step order once every lane reported it.
    private readonly int _cpus;
    private readonly double[] _backlog = [];
    private readonly double[] _lastTotal = [];
    private readonly Dictionary<long, double[]> _backlogAt = new();
    private long _feedbackStep;

    /// <param name="hostOrder">For each lane, each host's place in the run's host order (the order --ops shares are handed out in).</param>
    /// <param name="cpus">The run's CPUs, for the cost model's back-pressure; 0: none (lanes go on without waiting for each other's costs).</param>
    public LaneSchedule(ILaneDriver driver, ulong windowNs, long? ops, ulong? durationNs, IReadOnlyList<int[]> hostOrder, int cpus = 0)
    {
        ArgumentNullException.ThrowIfNull(driver);
        if (ops is < 0)
            throw new ArgumentOutOfRangeException(nameof(ops), ops, "the operation budget cannot be negative");
        _driver = driver;
        _windowNs = windowNs;
        _ops = ops;
        _durationNs = durationNs;
        _cpus = Math.Max(0, cpus);
        _backlog = new double[_cpus];
        _lastTotal = new double[_cpus];
        _lanes = new Lane[hostOrder.Count];
        for (int l = 0; l < _lanes.Length; l++)
        {
            int n = hostOrder[l].Length;
            _lanes[l] = new Lane
            {
                Index = l,
                HostOrder = (int[])hostOrder[l].Clone(),
                Issued = new long[n],
                Inflight = new long[n],
                AwaitingCommit = new bool[n],
                SequenceNr = new long[n],
                Restarts = new int[n],
            };
            _hostCount += n;
        }
    }

    /// <summary>The latest window any lane was asked to generate.</summary>
    public long Windows
    {
        get
        {
            long windows = 0;
            foreach (var lane in _lanes)
                windows = Math.Max(windows, lane.Window);
            return windows;
        }
    }

    /// <summary>
    /// How <paramref name="lane"/> wound down: its unit drained after processing each window from
    /// <c>QuietAfter</c> through <c>Final</c> (at the window's end), and the final drain's releases were committed
    /// as window <c>Final</c>. Both 0 for a lane without domains or that has not wound down.
    /// </summary>
    public (long QuietAfter, long Final) WindDownOf(int lane) => (_lanes[lane].QuietAfter, _lanes[lane].FinalWindow);

    /// <summary>The window <paramref name="lane"/> is in (the latest it was asked to generate).</summary>
    public long WindowOf(int lane) => _lanes[lane].Window;

    /// <summary>Whether every lane has finished.</summary>
    public bool IsFinished => _lanesRunning == 0 && AllDone();

    /// <summary>Starts every lane that has domains; a run without any finishes at once.</summary>
    public void Start()
    {
        foreach (var lane in _lanes)
        {
            if (lane.Domains == 0)
            {
                lane.Done = true;
                continue;
            }
            _lanesRunning++;
            NextWindow(lane);
        }
        if (_lanesRunning == 0)
            _driver.Finished();
    }

    /// <summary>
    /// Host <paramref name="slot"/> of <paramref name="lane"/> generated its window; its cumulative issued calls and
    /// operations in flight, and the CPU time the cost model gave its devices' calls so far (CPU by CPU; null: none).
    /// </summary>
    public void HostGenerated(int lane, int slot, long issued, long inflight, double[]? cpuNs = null)
    {
        if (_stopped)
            return;
        var l = _lanes[lane];
        l.Issued[slot] = issued;
        l.Inflight[slot] = inflight;
        if (_cpus > 0 && cpuNs is not null)
        {
            l.Generating ??= new double[_cpus];
            for (int c = 0; c < cpuNs.Length; c++)
                l.Generating[c % _cpus] += cpuNs[c];
        }
        if (--l.HostsPending > 0)
            return;
        long sum = 0;
        foreach (long i in l.Issued)
            sum += i;
        l.IssuedThrough.Add(sum);
        if (_cpus > 0)
        {
            if (!l.Quiet)
                l.HostCpu[l.Window] = l.Generating ?? new double[_cpus];
            l.Generating = null;
            FoldBacklog();
        }
        TryCommit(l);
        ResumeLanesWaitingForBudget();
    }

    /// <summary>Domain <paramref name="slot"/> of <paramref name="lane"/> committed; <paramref name="sequenceNr"/> is its journal position after the commit.</summary>
    public void DomainCommitted(int lane, int slot, long sequenceNr)
    {
        if (_stopped)
            return;
        var l = _lanes[lane];
        l.AwaitingCommit[slot] = false;
        l.Restarts[slot] = 0;
        l.SequenceNr[slot] = sequenceNr;
        if (--l.DomainsPending > 0)
            return;
        _driver.Committed(l.Index, l.Window);
        if (l.Drained)
        {
            LaneDone(l);
            return;
        }
        l.CommittedWindow = l.Window;
        l.UnitBusy = true;
        l.ProcessingWindow = l.Window;
        _driver.Process(l.Index, l.Window, (ulong)l.Window * _windowNs);
        // The next window's generation needs only the domains' answers, not the unit: it overlaps the unit's
        // processing (the next commit waits for both). Winding down stays sequential.
        if (!l.Quiet)
            AfterCommit(l);
    }

    /// <summary>
    /// The unit of <paramref name="lane"/> processed the window it was given; the CPU time the cost model gave the
    /// unmaps and flushes it timed so far (CPU by CPU; null: none), its timer flushes' and how far its translations
    /// are behind the window's end.
    /// </summary>
    public void UnitProcessed(int lane, double[]? cpuNs = null, double timerCpuNs = 0, double translationBehindNs = 0)
    {
        if (_stopped)
            return;
        var l = _lanes[lane];
        l.UnitBusy = false;
        if (_cpus > 0)
        {
            var cpu = new double[_cpus];
            if (cpuNs is not null)
            {
                for (int c = 0; c < cpuNs.Length; c++)
                    cpu[c % _cpus] += cpuNs[c];
            }
            l.UnitCpu[l.ProcessingWindow] = new UnitReport(cpu, timerCpuNs, translationBehindNs);
            FoldBacklog();
        }
        if (l.Quiet)
            Drain(l);
        else
            TryCommit(l);
        ResumeLanesWaitingForBudget();
    }

    /// <summary>The unit of <paramref name="lane"/> drained.</summary>
    public void UnitDrained(int lane)
    {
        if (_stopped)
            return;
        var l = _lanes[lane];
        l.UnitBusy = false;
        if (l.FinalDrain)
        {
            // The drain's releases are queued at the domains: one last commit applies and persists them.
            l.Drained = true;
            l.FinalWindow = l.Window;
            CommitDomains(l);
        }
        else
        {
            NextWindow(l);
        }
    }

    /// <summary>Domain <paramref name="slot"/> of <paramref name="lane"/> was rebuilt from its journal (its unit already walks the new table).</summary>
    public void DomainRestarted(int lane, int slot)
    {
        if (_stopped)
            return;
        var l = _lanes[lane];
        int restarts = ++l.Restarts[slot];
        if (restarts >= MaxRestarts)
        {
            _stopped = true;
            _driver.GiveUp(l.Index, slot, restarts, l.Window);
            return;
        }
        _driver.Resend(l.Index, slot, l.Window);
    }

    /// <summary>Host <paramref name="slot"/> of <paramref name="lane"/> re-sent <paramref name="window"/> to its restarted domain.</summary>
    public void HostResent(int lane, int slot, long window)
    {
        if (_stopped)
            return;
        var l = _lanes[lane];
        if (l.AwaitingCommit[slot])
            _driver.Recommit(l.Index, slot, window, l.SequenceNr[slot], l.Drained);
    }

    private bool AllDone()
    {
        foreach (var lane in _lanes)
        {
            if (!lane.Done)
                return false;
        }
        return true;
    }

    private void NextWindow(Lane l)
    {
        l.Window++;
        ulong t0 = (ulong)(l.Window - 1) * _windowNs, t1 = (ulong)l.Window * _windowNs;
        l.HostsPending = l.HostOrder.Length;
        long remaining = _ops is { } n ? Math.Max(0, n - IssuedThroughWindow(l.Window - 1)) : -1;
        long share = remaining < 0 ? -1 : remaining / Math.Max(1, _hostCount);
        long extra = remaining < 0 ? 0 : remaining % Math.Max(1, _hostCount);
        var held = l.Quiet ? null : Held(l, l.Window - 2);
        for (int i = 0; i < l.HostOrder.Length; i++)
            _driver.Generate(l.Index, i, l.Window, t0, t1, l.Quiet, remaining < 0 ? -1 : share + (l.HostOrder[i] < extra ? 1 : 0), held);
    }

    /// <summary>
    /// The back-pressure on <paramref name="l"/>'s devices from step <paramref name="step"/> (null: none): for each
    /// CPU, the larger of its backlog and how far the lane's unit's translations are behind.
    /// </summary>
    private long[]? Held(Lane l, long step)
    {
        if (_cpus == 0 || step < 1 || !_backlogAt.TryGetValue(step, out var backlog))
            return null;
        double behind = l.UnitCpu.TryGetValue(step, out var unit) ? unit.BehindNs : 0;
        // Only up to the last CPU held (hosts read a missing entry as 0): a run of many CPUs whose backlog sits on a
        // few sends a few numbers a window, not one per CPU.
        int last = -1;
        for (int c = 0; c < _cpus; c++)
        {
            if (Math.Max(backlog[c], behind) >= 1)
                last = c;
        }
        long[]? held = last < 0 ? null : new long[last + 1];
        for (int c = 0; c <= last; c++)
            held![c] = (long)Math.Min(Math.Max(backlog[c], behind), long.MaxValue / 4);
        // What the lane's next generation will not need again.
        l.UnitCpu.Remove(step - 1);
        return held;
    }

    /// <summary>
    /// Folds every step every lane has reported into the CPUs' backlog, in step order. Step s is the CPU time of the
    /// maps answered through window s (the hosts' report after generating window s + 1) and of the unmaps and flushes
    /// of window s (the unit's report after processing it); a lane winding down counts with its last reports. Each
    /// CPU works off one window length per step: B(s) = max(0, B(s − 1) + demand(s) − window).
    /// </summary>
    private void FoldBacklog()
    {
        while (true)
        {
            long step = _feedbackStep + 1;
            bool any = false;
            foreach (var lane in _lanes)
            {
                if (lane.Done || lane.Quiet || lane.Domains == 0)
                    continue;
                if (!lane.HostCpu.ContainsKey(step + 1) || !lane.UnitCpu.ContainsKey(step))
                    return;
                any = true;
            }
            if (!any)
                return;
            var total = new double[_cpus];
            foreach (var lane in _lanes)
            {
                if (lane.Domains == 0)
                    continue;
                if (lane.HostCpu.Remove(step + 1, out var host))
                    lane.LastHostCpu = host;
                if (lane.UnitCpu.TryGetValue(step, out var unit))
                    lane.LastUnit = unit;
                for (int c = 0; c < lane.LastHostCpu.Length; c++)
                    total[c] += lane.LastHostCpu[c];
                for (int c = 0; c < lane.LastUnit.CpuNs.Length; c++)
                    total[c] += lane.LastUnit.CpuNs[c];
                // Timer flushes run on whichever CPU their timer fires on: spread evenly.
                for (int c = 0; c < _cpus; c++)
                    total[c] += lane.LastUnit.TimerCpuNs / _cpus;
            }
            var backlog = new double[_cpus];
            for (int c = 0; c < _cpus; c++)
            {
                _backlog[c] = Math.Max(0, _backlog[c] + total[c] - _lastTotal[c] - _windowNs);
                _lastTotal[c] = total[c];
                backlog[c] = _backlog[c];
            }
            _backlogAt[step] = backlog;
            _backlogAt.Remove(step - 4);
            _feedbackStep = step;
        }
    }

    /// <summary>Whether every lane still running has reported what the back-pressure of the window after <paramref name="w"/> needs (step w − 1).</summary>
    private bool FeedbackReady(long w) => _cpus == 0 || w < 2 || _feedbackStep >= w - 1;

    /// <summary>Calls issued in the whole run through window <paramref name="w"/>.</summary>
    private long IssuedThroughWindow(long w)
    {
        long sum = 0;
        foreach (var lane in _lanes)
            sum += lane.IssuedThroughWindow(w);
        return sum;
    }

    /// <summary>Whether every lane still running has generated window <paramref name="w"/>.</summary>
    private bool AllGenerated(long w)
    {
        foreach (var lane in _lanes)
        {
            if (!lane.Done && lane.IssuedThrough.Count < w)
                return false;
        }
        return true;
    }

    private void ResumeLanesWaitingForBudget()
    {
        for (int i = 0; i < _waitingForBudget.Count;)
        {
            var lane = _waitingForBudget[i];
            if (AllGenerated(lane.Window) && FeedbackReady(lane.Window))
            {
                _waitingForBudget.RemoveAt(i);
                ContinueOrWindDown(lane);
            }
            else
            {
                i++;
            }
        }
    }

    /// <summary>Commits the lane's current window once its hosts have generated it and its unit is idle.</summary>
    private void TryCommit(Lane l)
    {
        if (l.HostsPending == 0 && !l.UnitBusy && l.CommittedWindow < l.Window)
            CommitDomains(l);
    }

    private void CommitDomains(Lane l)
    {
        l.DomainsPending = l.Domains;
        Array.Fill(l.AwaitingCommit, true);
        _driver.Commit(l.Index, l.Window, l.Drained);
    }

    /// <summary>
    /// A window is committed (its unit now processes it): go on to the next one. With a budget, whether the run has
    /// issued everything (and the next window's shares) depends on what every lane generated in this window: a
    /// lane ahead of the others waits for them here.
    /// </summary>
    private void AfterCommit(Lane l)
    {
        if ((_ops is not null || _cpus > 0) && !(AllGenerated(l.Window) && FeedbackReady(l.Window)))
        {
            _waitingForBudget.Add(l);
            return;
        }
        ContinueOrWindDown(l);
    }

    /// <summary>Generate the next window, or wind down once the run has issued what it was asked to or reached its duration.</summary>
    private void ContinueOrWindDown(Lane l)
    {
        ulong now = (ulong)l.Window * _windowNs;
        if ((_ops is { } n && IssuedThroughWindow(l.Window) >= n) || (_durationNs is { } d && now >= d))
        {
            l.Quiet = true;
            l.QuietAfter = l.Window;
            if (!l.UnitBusy)
                Drain(l);   // otherwise the end of the window being processed starts it
            return;
        }
        NextWindow(l);
    }

    /// <summary>
    /// Winding down: flush what the policy holds so that operations waiting on an unmap's lock can run; once
    /// nothing is outstanding, one last commit makes the final releases durable.
    /// </summary>
    private void Drain(Lane l)
    {
        long inflight = 0;
        foreach (long i in l.Inflight)
            inflight += i;
        l.FinalDrain = inflight == 0 || ++l.QuietWindows > MaxQuietWindows;
        l.UnitBusy = true;
        _driver.Drain(l.Index, (ulong)l.Window * _windowNs);
    }

    private void LaneDone(Lane l)
    {
        l.Done = true;
        if (--_lanesRunning == 0)
            _driver.Finished();
    }
}
