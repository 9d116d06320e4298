using Xunit;

namespace PtActors.Actors.Tests;

/// <summary>
/// The lane schedule without actors: a recording driver for exact sequences, and a simulated world that answers
/// the schedule's requests in a random order (as the actors may) and checks the schedule's promises on every step.
/// </summary>
public sealed class LaneScheduleTests
{
    private const ulong Ns = 1000;

    /// <summary>Records the schedule's requests as text.</summary>
    private sealed class Recorder : ILaneDriver
    {
        public readonly List<string> Log = new();

        public void Generate(int lane, int slot, long window, ulong t0, ulong t1, bool quiet, long budget, long[]? held)
            => Log.Add($"gen L{lane}.{slot} w{window} [{t0},{t1}){(quiet ? " quiet" : "")}{(budget >= 0 ? $" budget {budget}" : "")}{(held is null ? "" : $" held [{string.Join(",", held)}]")}");

        public void Commit(int lane, long window, bool final) => Log.Add($"commit L{lane} w{window}{(final ? " final" : "")}");

        public void Committed(int lane, long window) => Log.Add($"committed L{lane} w{window}");

        public void Process(int lane, long window, ulong endNs) => Log.Add($"process L{lane} w{window} to {endNs}");

        public void Drain(int lane, ulong atNs) => Log.Add($"drain L{lane} at {atNs}");

        public void Resend(int lane, int slot, long window) => Log.Add($"resend L{lane}.{slot} w{window}");

        public void Recommit(int lane, int slot, long window, long sequenceNr, bool final)
            => Log.Add($"recommit L{lane}.{slot} w{window} from {sequenceNr}{(final ? " final" : "")}");

        public void Finished() => Log.Add("finished");

        public void GiveUp(int lane, int slot, int restarts, long window) => Log.Add($"give up L{lane}.{slot} after {restarts} restarts in w{window}");

        public string[] Take()
        {
            var taken = Log.ToArray();
            Log.Clear();
            return taken;
        }
    }

    private static LaneSchedule Schedule(Recorder r, long? ops = null, ulong? duration = null, params int[][] hostOrder)
        => new(r, Ns, ops, duration, hostOrder);

    [Fact]
    public void AWindowGeneratesCommitsThenProcessesAndTheNextGenerationOverlapsTheProcessing()
    {
        var r = new Recorder();
        var s = Schedule(r, duration: 3 * Ns, hostOrder: [[0, 1]]);
        s.Start();
        Assert.Equal(["gen L0.0 w1 [0,1000)", "gen L0.1 w1 [0,1000)"], r.Take());

        s.HostGenerated(0, 0, issued: 4, inflight: 1);
        Assert.Empty(r.Take());                          // the other host has not generated yet
        s.HostGenerated(0, 1, issued: 3, inflight: 0);
        Assert.Equal(["commit L0 w1"], r.Take());

        s.DomainCommitted(0, 1, sequenceNr: 1);
        Assert.Empty(r.Take());
        s.DomainCommitted(0, 0, sequenceNr: 1);
        // The unit processes window 1 while the hosts already generate window 2.
        Assert.Equal(["committed L0 w1", "process L0 w1 to 1000", "gen L0.0 w2 [1000,2000)", "gen L0.1 w2 [1000,2000)"], r.Take());

        s.HostGenerated(0, 0, 8, 1);
        s.HostGenerated(0, 1, 6, 0);
        Assert.Empty(r.Take());                          // window 2 is generated, but the unit still walks window 1's tables
        s.UnitProcessed(0);
        Assert.Equal(["commit L0 w2"], r.Take());
    }

    [Fact]
    public void BackPressureHoldsEachCpuForItsBacklogAndTheUnitForItsTranslations()
    {
        var r = new Recorder();
        var s = new LaneSchedule(r, Ns, null, 10 * Ns, [[0]], cpus: 2);
        s.Start();
        Assert.Equal(["gen L0.0 w1 [0,1000)"], r.Take());
        s.HostGenerated(0, 0, 1, 0, [0, 0]);
        s.DomainCommitted(0, 0, 1);
        Assert.Equal(["commit L0 w1", "committed L0 w1", "process L0 w1 to 1000", "gen L0.0 w2 [1000,2000)"], r.Take());
        // Maps answered through window 1 cost CPU 0 3 µs; the unit's unmaps of window 1 another 0.5 µs.
        s.HostGenerated(0, 0, 2, 0, [3000, 0]);
        s.UnitProcessed(0, [500, 0], 0, 0);
        s.DomainCommitted(0, 0, 2);
        // Step 1: CPU 0 had 3.5 µs of work in a 1 µs step: 2.5 µs behind. CPU 1 idle.
        Assert.Equal(["commit L0 w2", "committed L0 w2", "process L0 w2 to 2000", "gen L0.0 w3 [2000,3000) held [2500]"], r.Take());
        // Step 2: CPU 0 gets 1 µs more maps and half of 1 µs of timer flushes (spread over both CPUs): 2.5 + 1.5 − 1 =
        // 3 µs behind; CPU 1's half is within its window; the unit's translations end 0.7 µs after the window.
        s.HostGenerated(0, 0, 3, 0, [4000, 0]);
        s.UnitProcessed(0, [500, 0], 1000, 700);
        s.DomainCommitted(0, 0, 3);
        Assert.Equal(["commit L0 w3", "committed L0 w3", "process L0 w3 to 3000", "gen L0.0 w4 [3000,4000) held [3000,700]"], r.Take());
        // Step 3: no more work: the backlog drains by a window (CPU 0: 2 µs behind) and the unit caught up.
        s.HostGenerated(0, 0, 3, 0, [4000, 0]);
        s.UnitProcessed(0, [500, 0], 1000, 0);
        s.DomainCommitted(0, 0, 4);
        Assert.Equal(["commit L0 w4", "committed L0 w4", "process L0 w4 to 4000", "gen L0.0 w5 [4000,5000) held [2000]"], r.Take());
    }

    [Fact]
    public void WithBackPressureALaneWaitsForTheOthersCostsOfTheStepItNeeds()
    {
        var r = new Recorder();
        var s = new LaneSchedule(r, Ns, null, 10 * Ns, [[0], [1]], cpus: 1);
        s.Start();
        Assert.Equal(["gen L0.0 w1 [0,1000)", "gen L1.0 w1 [0,1000)"], r.Take());
        s.HostGenerated(0, 0, 1, 0, [0]);
        s.DomainCommitted(0, 0, 1);
        // Lane 0 waits for lane 1 to generate window 1.
        Assert.Equal(["commit L0 w1", "committed L0 w1", "process L0 w1 to 1000"], r.Take());
        s.HostGenerated(1, 0, 1, 0, [0]);
        Assert.Equal(["commit L1 w1", "gen L0.0 w2 [1000,2000)"], r.Take());
        s.DomainCommitted(1, 0, 1);
        Assert.Equal(["committed L1 w1", "process L1 w1 to 1000", "gen L1.0 w2 [1000,2000)"], r.Take());
        // Lane 0 goes on with window 2; its window 3 needs step 1 of both lanes: lane 1's unit has not processed window 1.
        s.HostGenerated(0, 0, 2, 0, [600]);
        s.UnitProcessed(0, [600], 0, 0);
        s.DomainCommitted(0, 0, 2);
        s.HostGenerated(1, 0, 2, 0, [600]);
        Assert.Equal(["commit L0 w2", "committed L0 w2", "process L0 w2 to 2000"], r.Take());
        s.UnitProcessed(1, [0], 0, 0);
        // Step 1 complete: the CPU had 1.8 µs of work from both lanes: 0.8 µs behind, for both lanes' devices.
        Assert.Equal(["commit L1 w2", "gen L0.0 w3 [2000,3000) held [800]"], r.Take());
        s.DomainCommitted(1, 0, 2);
        Assert.Equal(["committed L1 w2", "process L1 w2 to 2000", "gen L1.0 w3 [2000,3000) held [800]"], r.Take());
    }

    [Fact]
    public void TheCommitWaitsForTheHostsWhenTheUnitIsFasterThanThey()
    {
        var r = new Recorder();
        var s = Schedule(r, duration: 5 * Ns, hostOrder: [[0]]);
        s.Start();
        s.HostGenerated(0, 0, 1, 0);
        s.DomainCommitted(0, 0, 1);
        r.Take();
        s.UnitProcessed(0);
        Assert.Empty(r.Take());                          // window 2 not generated yet
        s.HostGenerated(0, 0, 2, 0);
        Assert.Equal(["commit L0 w2"], r.Take());
    }

    [Fact]
    public void TheOperationBudgetIsSharedAmongAllHostsInRunOrderAndALaneWaitsForTheOthersToGenerate()
    {
        var r = new Recorder();
        // Lane 0 hosts are the run's hosts 0 and 2, lane 1 has host 1.
        var s = Schedule(r, ops: 10, hostOrder: [[0, 2], [1]]);
        s.Start();
        Assert.Equal(["gen L0.0 w1 [0,1000) budget 4", "gen L0.1 w1 [0,1000) budget 3", "gen L1.0 w1 [0,1000) budget 3"], r.Take());

        s.HostGenerated(0, 0, 2, 2);
        s.HostGenerated(0, 1, 1, 1);
        s.DomainCommitted(0, 0, 1);
        s.DomainCommitted(0, 1, 1);
        // Lane 0 committed window 1 but lane 1 has not generated it: what is left of the budget is not known yet.
        Assert.Equal(["commit L0 w1", "committed L0 w1", "process L0 w1 to 1000"], r.Take());

        s.HostGenerated(1, 0, 3, 0);
        // Lane 1's generation releases lane 0: 10 − (2 + 1 + 3) = 4 left for 3 hosts.
        Assert.Equal(["commit L1 w1", "gen L0.0 w2 [1000,2000) budget 2", "gen L0.1 w2 [1000,2000) budget 1"], r.Take());
        s.DomainCommitted(1, 0, 1);
        Assert.Equal(["committed L1 w1", "process L1 w1 to 1000", "gen L1.0 w2 [1000,2000) budget 1"], r.Take());
    }

    [Fact]
    public void WindingDownDrainsUntilNothingIsInFlightThenCommitsOnceMoreAndFinishes()
    {
        var r = new Recorder();
        var s = Schedule(r, ops: 2, hostOrder: [[0]]);
        s.Start();
        s.HostGenerated(0, 0, issued: 2, inflight: 2);
        s.DomainCommitted(0, 0, 1);
        // The budget is issued: the lane winds down once its unit has processed window 1.
        Assert.Equal(["gen L0.0 w1 [0,1000) budget 2", "commit L0 w1", "committed L0 w1", "process L0 w1 to 1000"], r.Take());
        s.UnitProcessed(0);
        Assert.Equal(["drain L0 at 1000"], r.Take());
        s.UnitDrained(0);
        // Operations are still in flight: a quiet window lets them complete.
        Assert.Equal(["gen L0.0 w2 [1000,2000) quiet budget 0"], r.Take());
        s.HostGenerated(0, 0, 2, 0);
        s.DomainCommitted(0, 0, 2);
        Assert.Equal(["commit L0 w2", "committed L0 w2", "process L0 w2 to 2000"], r.Take());
        s.UnitProcessed(0);
        Assert.Equal(["drain L0 at 2000"], r.Take());
        Assert.False(s.IsFinished);
        s.UnitDrained(0);
        // Nothing in flight: the final drain's releases are committed, then the lane is done.
        Assert.Equal(["commit L0 w2 final"], r.Take());
        s.DomainCommitted(0, 0, 3);
        Assert.Equal(["committed L0 w2", "finished"], r.Take());
        Assert.True(s.IsFinished);
        Assert.Equal((1, 2), s.WindDownOf(0));
    }

    [Fact]
    public void ADurationEndsTheLaneAtItsLastWindow()
    {
        var r = new Recorder();
        var s = Schedule(r, duration: 1 * Ns, hostOrder: [[0]]);
        s.Start();
        s.HostGenerated(0, 0, 5, 0);
        s.DomainCommitted(0, 0, 1);
        Assert.Equal(["gen L0.0 w1 [0,1000)", "commit L0 w1", "committed L0 w1", "process L0 w1 to 1000"], r.Take());
        s.UnitProcessed(0);
        s.UnitDrained(0);
        s.DomainCommitted(0, 0, 2);
        Assert.Equal(["drain L0 at 1000", "commit L0 w1 final", "committed L0 w1", "finished"], r.Take());
    }

    [Fact]
    public void LanesWithoutDomainsAreDoneAtOnceAndARunWithoutDomainsFinishesAtStart()
    {
        var r = new Recorder();
        Schedule(r, ops: 5, hostOrder: [[], []]).Start();
        Assert.Equal(["finished"], r.Take());

        var s = Schedule(r, ops: 1, hostOrder: [[], [0]]);
        s.Start();
        Assert.Equal(["gen L1.0 w1 [0,1000) budget 1"], r.Take());
    }

    [Fact]
    public void ARestartedDomainIsResentItsWindowAndRecommitsFromItsLastCommit()
    {
        var r = new Recorder();
        var s = Schedule(r, duration: 10 * Ns, hostOrder: [[0, 1]]);
        s.Start();
        s.HostGenerated(0, 0, 1, 0);
        s.HostGenerated(0, 1, 1, 0);
        s.DomainCommitted(0, 0, 7);
        s.DomainCommitted(0, 1, 4);
        s.HostGenerated(0, 0, 2, 0);
        s.HostGenerated(0, 1, 2, 0);
        s.UnitProcessed(0);
        r.Take();

        // Window 2's commit: domain 1 fails its write and is rebuilt from its journal.
        s.DomainRestarted(0, 1);
        Assert.Equal(["resend L0.1 w2"], r.Take());
        s.HostResent(0, 1, 2);
        Assert.Equal(["recommit L0.1 w2 from 4"], r.Take());   // where its last commit left its journal
        s.DomainRestarted(0, 1);
        s.HostResent(0, 1, 2);
        Assert.Equal(["resend L0.1 w2", "recommit L0.1 w2 from 4"], r.Take());
        s.DomainCommitted(0, 1, 5);
        s.DomainCommitted(0, 0, 8);
        Assert.Equal(["committed L0 w2", "process L0 w2 to 2000", "gen L0.0 w3 [2000,3000)", "gen L0.1 w3 [2000,3000)"], r.Take());

        // A restart after the domain answered (it already committed; e.g. a snapshot write failed): the host
        // re-sends, but there is nothing to commit again.
        s.DomainRestarted(0, 0);
        s.HostResent(0, 0, 3);
        Assert.Equal(["resend L0.0 w3"], r.Take());
    }

    [Fact]
    public void FiveRestartsWithinOneCommitGiveUpAndTheScheduleThenIgnoresEverything()
    {
        var r = new Recorder();
        var s = Schedule(r, duration: 10 * Ns, hostOrder: [[0]]);
        s.Start();
        s.HostGenerated(0, 0, 1, 0);
        r.Take();
        for (int i = 1; i < LaneSchedule.MaxRestarts; i++)
        {
            s.DomainRestarted(0, 0);
            s.HostResent(0, 0, 1);
        }
        Assert.Equal(LaneSchedule.MaxRestarts - 1, r.Take().Count(static l => l.StartsWith("recommit", StringComparison.Ordinal)));
        s.DomainRestarted(0, 0);
        Assert.Equal(["give up L0.0 after 5 restarts in w1"], r.Take());
        s.HostResent(0, 0, 1);
        s.DomainCommitted(0, 0, 1);
        s.UnitProcessed(0);
        Assert.Empty(r.Take());
    }

    [Fact]
    public void RestartsAreCountedPerCommit()
    {
        var r = new Recorder();
        var s = Schedule(r, duration: 100 * Ns, hostOrder: [[0]]);
        s.Start();
        for (long w = 1; w <= 3; w++)
        {
            s.HostGenerated(0, 0, w, 0);
            for (int i = 1; i < LaneSchedule.MaxRestarts; i++)
            {
                s.DomainRestarted(0, 0);
                s.HostResent(0, 0, w);
            }
            s.DomainCommitted(0, 0, w);
            s.UnitProcessed(0);
        }
        Assert.DoesNotContain(r.Log, static l => l.StartsWith("give up", StringComparison.Ordinal));
    }

    /// <summary>
    /// The actors, simulated: every request is answered later, in a random order across lanes, hosts, domains and
    /// units (as threads may), with random restarts of domains while they commit. Each request is checked against
    /// what the schedule promises.
    /// </summary>
    private sealed class World : ILaneDriver
    {
        private readonly Random _rng;
        private readonly bool _fullBudget;
        private readonly double _restartChance;
        private readonly List<Action> _pending = new();
        private readonly int[][] _hosts;
        private readonly long[][] _issued, _inflight, _generated, _seq, _committedSeq;
        private readonly bool[] _unitBusy;
        private readonly long[] _committing;
        public LaneSchedule Schedule = null!;
        public int FinishedCount, Restarts;
        public long? Ops;
        /// <summary>CPUs of back-pressure (0: none): hosts and units report random CPU times, and a lane's window w is asked for only once every lane has reported step w − 2.</summary>
        public int Cpus;
        public int HeldWindows;
        private long[]? _processed;
        private double[][]? _hostCpu;
        private double[]? _unitCpu;

        public World(int seed, int[][] hosts, bool fullBudget, double restartChance)
        {
            _rng = new Random(seed);
            _hosts = hosts;
            _fullBudget = fullBudget;
            _restartChance = restartChance;
            _issued = Jagged(hosts);
            _inflight = Jagged(hosts);
            _generated = Jagged(hosts);
            _seq = Jagged(hosts);
            _committedSeq = Jagged(hosts);
            _unitBusy = new bool[hosts.Length];
            _committing = new long[hosts.Length];
        }

        private static long[][] Jagged(int[][] shape) => shape.Select(static h => new long[h.Length]).ToArray();

        public long TotalIssued => _issued.Sum(static l => l.Sum());

        public void Run()
        {
            Schedule.Start();
            while (_pending.Count > 0)
            {
                int i = _rng.Next(_pending.Count);
                var next = _pending[i];
                _pending.RemoveAt(i);
                next();
            }
        }

        public void Generate(int lane, int slot, long window, ulong t0, ulong t1, bool quiet, long budget, long[]? held)
        {
            Assert.Equal(_generated[lane][slot] + 1, window);
            Assert.Equal((ulong)(window - 1) * Ns, t0);
            Assert.Equal((ulong)window * Ns, t1);
            Assert.Equal(Ops is null, budget < 0);
            if (!quiet && Cpus > 0)
            {
                _processed ??= new long[_hosts.Length];
                for (int l = 0; l < _hosts.Length; l++)
                {
                    if (_hosts[l].Length == 0)
                        continue;
                    Assert.All(_generated[l], g => Assert.True(g >= window - 1, $"lane {lane} generates w{window} before lane {l} generated w{window - 1}"));
                    Assert.True(_processed[l] >= window - 2, $"lane {lane} generates w{window} before lane {l}'s unit processed w{window - 2}");
                }
                if (held is not null)
                {
                    Assert.InRange(held.Length, 1, Cpus);
                    Assert.All(held, h => Assert.InRange(h, 0, long.MaxValue));
                    Assert.True(held[^1] > 0, "a held vector ends with a CPU held");
                    HeldWindows++;
                }
            }
            else
            {
                Assert.Null(held);
            }
            if (!quiet && Ops is not null)
            {
                // At most one window ahead: every lane has generated the previous window.
                for (int l = 0; l < _hosts.Length; l++)
                    Assert.All(_generated[l], g => Assert.True(g >= window - 1, $"lane {lane} generates w{window} before lane {l} generated w{window - 1}"));
            }
            _pending.Add(() =>
            {
                long n = quiet ? 0 : budget < 0 ? _rng.Next(0, 6) : _fullBudget ? budget : budget == 0 ? 0 : _rng.NextInt64(1, budget + 1);
                _issued[lane][slot] += n;
                _inflight[lane][slot] = quiet ? Math.Max(0, _inflight[lane][slot] - 1) : _rng.Next(0, 4);
                _generated[lane][slot] = window;
                Schedule.HostGenerated(lane, slot, _issued[lane][slot], _inflight[lane][slot], Cpus > 0 ? MoreCpu(lane, slot) : null);
            });
        }

        public void Commit(int lane, long window, bool final)
        {
            Assert.False(_unitBusy[lane], $"lane {lane} commits w{window} while its unit walks the tables");
            Assert.All(_generated[lane], g => Assert.Equal(window, g));
            _committing[lane] = window;
            for (int slot = 0; slot < _hosts[lane].Length; slot++)
                AnswerCommit(lane, slot);
        }

        private void AnswerCommit(int lane, int slot)
        {
            _pending.Add(() =>
            {
                if (_rng.NextDouble() < _restartChance)
                {
                    // The write failed: the domain comes back with what its journal had at its last commit.
                    Restarts++;
                    _seq[lane][slot] = _committedSeq[lane][slot];
                    Schedule.DomainRestarted(lane, slot);
                    return;
                }
                _committedSeq[lane][slot] = ++_seq[lane][slot];
                Schedule.DomainCommitted(lane, slot, _seq[lane][slot]);
            });
        }

        public void Committed(int lane, long window) => Assert.Equal(_committing[lane], window);

        public void Process(int lane, long window, ulong endNs)
        {
            Assert.False(_unitBusy[lane]);
            Assert.Equal((ulong)window * Ns, endNs);
            _unitBusy[lane] = true;
            _pending.Add(() =>
            {
                _unitBusy[lane] = false;
                if (Cpus == 0)
                {
                    Schedule.UnitProcessed(lane);
                    return;
                }
                _processed ??= new long[_hosts.Length];
                _processed[lane] = window;
                _unitCpu ??= new double[_hosts.Length];
                _unitCpu[lane] += _rng.Next(0, 2000);
                var cpu = new double[Cpus];
                cpu[_rng.Next(Cpus)] = _unitCpu[lane];
                Schedule.UnitProcessed(lane, cpu, _rng.Next(0, 300), _rng.Next(0, 3) == 0 ? _rng.Next(0, 1500) : 0);
            });
        }

        /// <summary>A host's cumulative CPU times, grown by a random amount on a random CPU (up to twice a window).</summary>
        private double[] MoreCpu(int lane, int slot)
        {
            _hostCpu ??= _hosts.Select(h => new double[h.Length * Cpus]).ToArray();
            _hostCpu[lane][slot * Cpus + _rng.Next(Cpus)] += _rng.Next(0, 2 * (int)Ns);
            return _hostCpu[lane].AsSpan(slot * Cpus, Cpus).ToArray();
        }

        public void Drain(int lane, ulong atNs)
        {
            Assert.False(_unitBusy[lane]);
            _unitBusy[lane] = true;
            _pending.Add(() =>
            {
                _unitBusy[lane] = false;
                Schedule.UnitDrained(lane);
            });
        }

        public void Resend(int lane, int slot, long window)
            => _pending.Add(() => Schedule.HostResent(lane, slot, window));

        public void Recommit(int lane, int slot, long window, long sequenceNr, bool final)
        {
            Assert.Equal(_committing[lane], window);
            Assert.Equal(_committedSeq[lane][slot], sequenceNr);
            AnswerCommit(lane, slot);
        }

        public void Finished()
        {
            FinishedCount++;
            Assert.All(_unitBusy, busy => Assert.False(busy));
            // A lane's last drain waits until nothing is in flight.
            for (int l = 0; l < _hosts.Length; l++)
                Assert.All(_inflight[l], static f => Assert.Equal(0, f));
        }

        public void GiveUp(int lane, int slot, int restarts, long window) => Assert.Fail($"gave up after {restarts} restarts of L{lane}.{slot} in w{window}");
    }

    private static int[][] RandomTopology(Random rng, out int hostCount)
    {
        int lanes = rng.Next(1, 5);
        int domains = rng.Next(0, 9);
        var perLane = new List<int>[lanes];
        for (int l = 0; l < lanes; l++)
            perLane[l] = new List<int>();
        for (int d = 0; d < domains; d++)
            perLane[d % lanes].Add(d);   // the run's topology: domain d on unit d mod lanes, host d
        hostCount = domains;
        return perLane.Select(static l => l.ToArray()).ToArray();
    }

    [Theory]
    [InlineData(false, 0.0)]
    [InlineData(true, 0.0)]
    [InlineData(true, 0.1)]
    [InlineData(false, 0.2)]
    public void InAnyOrderOfAnswersTheBudgetIsIssuedExactlyAndEveryPromiseHolds(bool fullBudget, double restartChance)
    {
        int restarts = 0;
        for (int seed = 0; seed < 300; seed++)
        {
            var rng = new Random(seed);
            var hosts = RandomTopology(rng, out int hostCount);
            long ops = rng.Next(0, 200);
            var world = new World(seed, hosts, fullBudget, restartChance) { Ops = ops };
            world.Schedule = new LaneSchedule(world, Ns, ops, null, hosts);
            world.Run();
            Assert.Equal(1, world.FinishedCount);
            Assert.True(world.Schedule.IsFinished);
            // Every call of the budget is issued, none more (a host never issues past its share).
            Assert.Equal(hostCount == 0 ? 0 : ops, world.TotalIssued);
            restarts += world.Restarts;
        }
        Assert.Equal(restartChance > 0, restarts > 0);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void InAnyOrderOfAnswersBackPressureKeepsTheLanesWithinAWindowAndFinishes(bool budget)
    {
        int held = 0;
        for (int seed = 0; seed < 200; seed++)
        {
            var rng = new Random(seed);
            var hosts = RandomTopology(rng, out int hostCount);
            long ops = rng.Next(0, 200);
            int cpus = rng.Next(1, 4), windows = rng.Next(1, 20);
            var world = new World(seed, hosts, fullBudget: false, restartChance: 0.05) { Ops = budget ? ops : null, Cpus = cpus };
            world.Schedule = new LaneSchedule(world, Ns, budget ? ops : null, budget ? null : (ulong)windows * Ns, hosts, cpus);
            world.Run();
            Assert.Equal(1, world.FinishedCount);
            Assert.True(world.Schedule.IsFinished);
            if (budget)
                Assert.Equal(hostCount == 0 ? 0 : ops, world.TotalIssued);
            held += world.HeldWindows;
        }
        Assert.True(held > 0, "no window was ever held back");
    }

    [Fact]
    public void InAnyOrderOfAnswersADurationRunGeneratesExactlyItsWindows()
    {
        for (int seed = 0; seed < 200; seed++)
        {
            var rng = new Random(seed);
            var hosts = RandomTopology(rng, out _);
            int windows = rng.Next(1, 20);
            var world = new World(seed, hosts, fullBudget: false, restartChance: 0.05);
            world.Schedule = new LaneSchedule(world, Ns, null, (ulong)windows * Ns, hosts);
            world.Run();
            Assert.Equal(1, world.FinishedCount);
            // Each lane generates the duration's windows, then quiet ones only while operations are in flight
            // (at most 3 here, each quiet window completing one).
            for (int l = 0; l < hosts.Length; l++)
            {
                if (hosts[l].Length > 0)
                    Assert.InRange(world.Schedule.WindowOf(l), windows, windows + 3);
            }
        }
    }
}
