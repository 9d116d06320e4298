using System.CommandLine;
using System.Text.Json;
using System.Text.RegularExpressions;
using PtActors.Actors;
using PtActors.Cli.Simulate;
using PtActors.Engine;
using PtActors.Engine.Hardware;
using PtActors.Persistence;
using Xunit;

namespace PtActors.Cli.Tests;

/// <summary>
/// <c>ptactors simulate</c> with a fake <see cref="ISimulationRunner"/>: options into settings and a backend,
/// defaults, bad values and conflicting options (exit 2, the option named, nothing run), the run id, the output,
/// <c>--json FILE</c>, a failing and a cancelled run.
/// </summary>
public sealed partial class SimulateCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ptactors-simulate-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Records what it was asked to run and returns <see cref="Result"/> (or throws <see cref="Failure"/>).</summary>
    private sealed class FakeRunner : ISimulationRunner
    {
        public List<(SimulationSettings Settings, PersistenceBackend Backend)> Calls { get; } = [];

        public Func<SimulationSettings, SimulationResult> Result { get; init; } = s => new SimulationResult
        {
            RunId = s.RunId,
            Ops = s.Ops ?? 10,
            TableHash = new string('0', 64),
        };

        public Exception? Failure { get; init; }

        public IReadOnlyList<SimulationProgress> Reports { get; init; } = [];

        public TimeSpan DelayPerReport { get; init; }

        public bool WaitForCancellation { get; init; }

        public async Task<SimulationResult> RunAsync(SimulationSettings settings, PersistenceBackend backend,
            IProgress<SimulationProgress>? progress, CancellationToken cancellationToken)
        {
            lock (Calls)
                Calls.Add((settings, backend));
            foreach (var report in Reports)
            {
                progress?.Report(report);
                await Task.Delay(DelayPerReport, cancellationToken);
            }
            if (WaitForCancellation)
                await Task.Delay(Timeout.Infinite, cancellationToken);
            if (Failure is not null)
                throw Failure;
            return Result(settings);
        }
    }

    private sealed record Outcome(int Exit, string Stdout, string Stderr, FakeRunner Runner)
    {
        public SimulationSettings Settings => Assert.Single(Runner.Calls).Settings;

        public PersistenceBackend Backend => Assert.Single(Runner.Calls).Backend;

        public string[] Lines => Stdout.Replace("\r\n", "\n", StringComparison.Ordinal).TrimEnd('\n').Split('\n');
    }

    /// <summary>The whole command line, as <c>Main</c> runs it, with <paramref name="runner"/> for the simulator.</summary>
    private static Outcome Ptactors(string[] args, FakeRunner? runner = null)
    {
        runner ??= new FakeRunner();
        using var stdout = new StringWriter { NewLine = "\n" };
        using var stderr = new StringWriter { NewLine = "\n" };
        int rc = Program.Run(args, new StringReader(""), stdout, stderr, () => runner, stdoutIsTerminal: false);
        return new Outcome(rc, stdout.ToString(), stderr.ToString(), runner);
    }

    /// <summary>Runs a <see cref="SimulateCommand"/> built here (to set its intervals, a terminal, a cancellation).</summary>
    private static async Task<Outcome> RunCommandAsync(string[] args, FakeRunner runner, bool terminal = false,
        TimeSpan? progressInterval = null, CancellationToken cancellationToken = default)
    {
        using var stdout = new StringWriter { NewLine = "\n" };
        using var stderr = new StringWriter { NewLine = "\n" };
        var simulate = new SimulateCommand(runner, stdout, stderr, terminal)
        {
            PlainProgressInterval = progressInterval ?? TimeSpan.FromSeconds(5),
        };
        var parse = new RootCommand { simulate.Command }.Parse(["simulate", .. args]);
        int rc = parse.Errors.Count > 0
            ? simulate.ReportParseErrors(parse)
            : await parse.InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr }, cancellationToken);
        return new Outcome(rc, stdout.ToString(), stderr.ToString(), runner);
    }

    /// <summary>What a command line binds to, without running it.</summary>
    private static SimulateRequest Bind(params string[] args)
    {
        var simulate = new SimulateCommand(new FakeRunner(), TextWriter.Null, TextWriter.Null) { NewRunId = () => "generated" };
        var parse = new RootCommand { simulate.Command }.Parse(["simulate", .. args]);
        Assert.Empty(parse.Errors);
        return simulate.Bind(parse);
    }

    [GeneratedRegex(@"^[0-9]{8}-[0-9]{6}-[0-9a-f]{4}$")]
    private static partial Regex RunIdPattern();

    private static readonly string[] JsonKeys =
    [
        "run_id", "unsafe", "ops", "dmas", "ops_per_sec", "wall_s", "sim_s", "maps", "unmaps", "bytes_mapped", "iotlb_hit_rate",
        "invalidations", "invalidations_per_unmap", "over_invalidated_bytes", "stale_in_window", "stale_violations",
        "use_after_free", "isolation_breaches", "lock_wait_p50_us", "lock_wait_p99_us", "lock_waits", "table_pages_max",
        "events_persisted", "ops_persisted", "table_hash", "memory_hash", "faults", "errors",
        "throughput_ratio", "device_gbps", "device_iops", "cpu_utilization", "inv_queue_utilization",
        "op_latency_p50_us", "op_latency_p99_us", "translation_stall_us", "throttled",
    ];

    /// <summary>What <c>--json</c> writes: the figures, then the distributions.</summary>
    private static readonly string[] JsonFileKeys =
        [.. JsonKeys, "lock_wait_histogram", "stale_window_histogram", "op_latency_histogram", "timeline"];

    // ---- defaults --------------------------------------------------------------------------------------------

    [Fact]
    public void NoOptionsIsTheMeaningfulDefaultOnTheSqliteDefault()
    {
        var request = Bind();
        // The CLI gives each device of a domain its own CPU when --cpus is not given (1024 / 64: 16).
        Assert.Equal(new SimulationSettings { RunId = "generated", Cpus = 16 }, request.Settings);
        Assert.Equal(4, request.Settings.Iommus);
        Assert.Equal(64, request.Settings.Domains);
        Assert.Equal(1024, request.Settings.Devices);
        Assert.Equal("mixed", request.Settings.Workload);
        Assert.Equal(FlushPolicyKind.Lazy, request.Settings.Policy.Kind);
        Assert.Equal(2_000_000, request.Settings.Ops);
        Assert.Null(request.Settings.DurationNs);
        Assert.Equal(PersistenceBackend.Default, request.Backend);
        Assert.Equal(PersistenceBackendKind.Sqlite, request.Backend.Kind);
        Assert.Equal("ptactors.db", request.Backend.Target);
        Assert.Null(request.JsonPath);
    }

    [Fact]
    public void ADefaultRunPassesTheDefaultsToTheRunner()
    {
        var r = Ptactors(["simulate", "--in-memory"]);
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Exit);
        Assert.Equal(new SimulationSettings { RunId = r.Settings.RunId, Cpus = 16 }, r.Settings);
    }

    // ---- each option -----------------------------------------------------------------------------------------

    public static TheoryData<string[], SimulationSettings> OptionCases()
    {
        var d = new SimulationSettings { RunId = "r1" };
        return new()
        {
            { ["--iommus", "7"], d with { Iommus = 7 } },
            { ["--domains", "3"], d with { Domains = 3 } },
            { ["--devices", "100000"], d with { Devices = 100_000 } },
            { ["--workload", "nic"], d with { Workload = "nic" } },
            { ["--workload", "nvme"], d with { Workload = "nvme" } },
            { ["--workload", "gpu"], d with { Workload = "gpu" } },
            { ["--workload", "random"], d with { Workload = "random" } },
            { ["--workload", "mixed"], d with { Workload = "mixed" } },
            { ["--format", "amdv1"], d with { Format = PtFormatKind.Amdv1 } },
            { ["--format", "x86_64"], d with { Format = PtFormatKind.X86_64 } },
            { ["--format", "vtdss"], d with { Format = PtFormatKind.Vtdss } },
            { ["--format", "riscv64"], d with { Format = PtFormatKind.Riscv64 } },
            { ["--policy", "strict"], d with { Policy = FlushPolicySpec.Strict } },
            { ["--policy", "lazy"], d with { Policy = new(FlushPolicyKind.Lazy) } },
            { ["--policy", "lazy-single"], d with { Policy = new(FlushPolicyKind.LazySingle) } },
            { ["--policy", "batch:16"], d with { Policy = new(FlushPolicyKind.Batch, 16) } },
            { ["--iotlb", "64"], d with { IotlbEntries = 64 } },
            { ["--cpus", "8"], d with { Cpus = 8 } },
            { ["--inflight", "1"], d with { Inflight = 1 } },
            { ["--late-dma", "0"], d with { LateDma = 0 } },
            { ["--late-dma", "0.25"], d with { LateDma = 0.25 } },
            { ["--late-dma", ".5"], d with { LateDma = 0.5 } },
            { ["--late-dma", "1"], d with { LateDma = 1 } },
            { ["--ops", "5"], d with { Ops = 5, DurationNs = null } },
            { ["--ops", "100000000"], d with { Ops = SimulateValues.MaxOpsInMemory } },
            { ["--duration", "700ns"], d with { Ops = null, DurationNs = 700 } },
            { ["--duration", "30us"], d with { Ops = null, DurationNs = 30_000 } },
            { ["--duration", "250ms"], d with { Ops = null, DurationNs = 250_000_000 } },
            { ["--duration", "2s", "--devices", "4"], d with { Ops = null, DurationNs = 2_000_000_000, Devices = 4 } },
            { ["--iommus", "64"], d with { Iommus = SimulateValues.MaxIommus } },
            { ["--domains", "65536", "--iommus", "64"], d with { Domains = SimulateValues.MaxDomains, Iommus = 64 } },
            { ["--devices", "262143", "--inflight", "64"], d with { Devices = SimulateValues.MaxDevices, Inflight = 64 } },
            { ["--iotlb", "4194304", "--iommus", "4"], d with { IotlbEntries = SimulateValues.MaxIotlbEntries, Iommus = 4 } },
            { ["--cpus", "4096", "--domains", "1024"], d with { Cpus = SimulateValues.MaxCpus, Domains = 1024 } },
            { ["--inflight", "65536", "--devices", "256"], d with { Inflight = SimulateValues.MaxInflight, Devices = 256 } },
            { ["--policy", "batch:1048576"], d with { Policy = new(FlushPolicyKind.Batch, SimulateValues.MaxBatch) } },
            { ["--unsafe", "free-early"], d with { Unsafe = UnsafeMode.FreeEarly } },
            { ["--seed", "0"], d with { Seed = 0 } },
            { ["--seed", "18446744073709551615"], d with { Seed = ulong.MaxValue } },
            { ["--seed", "0xDEADbeef"], d with { Seed = 0xdeadbeef } },
            { ["--run-id", "my.run_2-x"], d with { RunId = "my.run_2-x" } },
        };
    }

    [Theory]
    [MemberData(nameof(OptionCases))]
    public void EachOptionMapsToItsSetting(string[] option, SimulationSettings expected)
    {
        string[] args = option.Contains("--run-id") ? option : [.. option, "--run-id", "r1"];
        // Without --cpus, one CPU per device of a domain.
        if (!option.Contains("--cpus"))
            expected = expected with { Cpus = PtActors.Cli.Simulate.SimulateValues.DefaultCpus(expected.Devices, expected.Domains) };
        Assert.Equal(expected, Bind(args).Settings);
        var r = Ptactors(["simulate", "--in-memory", .. args]);
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Exit);
        Assert.Equal(expected, r.Settings);
    }

    [Fact]
    public void EveryOptionAtOnce()
    {
        string json = Path.Combine(_dir, "all.json");
        var r = Ptactors(
        [
            "simulate", "--iommus", "2", "--domains", "8", "--devices", "16", "--workload", "gpu", "--format", "amdv1",
            "--policy", "batch:4", "--iotlb", "128", "--cpus", "4", "--inflight", "2", "--late-dma", "0.125",
            "--duration", "10ms", "--seed", "42", "--in-memory", "--json", json, "--run-id", "all-options",
        ]);
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Exit);
        Assert.Equal(new SimulationSettings
        {
            Iommus = 2, Domains = 8, Devices = 16, Workload = "gpu", Format = PtFormatKind.Amdv1,
            Policy = new(FlushPolicyKind.Batch, 4), IotlbEntries = 128, Cpus = 4, Inflight = 2, LateDma = 0.125,
            Ops = null, DurationNs = 10_000_000, Seed = 42, RunId = "all-options",
        }, r.Settings);
        Assert.Equal(PersistenceBackend.InMemory, r.Backend);
        Assert.True(File.Exists(json));
        Assert.Equal(
            "iommus=2 domains=8 devices=16 workload=gpu format=amdv1 policy=batch:4 iotlb=128 cpus=4 inflight=2 " +
            "late_dma=0.125 duration=10ms seed=42 unsafe=none", r.Lines[1]);
    }

    [Theory]
    [InlineData("none", UnsafeMode.None)]
    [InlineData("free-early", UnsafeMode.FreeEarly)]
    [InlineData("skip-context", UnsafeMode.SkipContext)]
    [InlineData("amd-short", UnsafeMode.AmdShort)]
    public void UnsafeNamesABrokenConfigurationAndTheDescriptionSaysWhich(string name, UnsafeMode mode)
    {
        Assert.Equal(UnsafeMode.None, Bind().Settings.Unsafe);
        var r = Ptactors(["simulate", "--in-memory", "--run-id", "u", "--ops", "10", "--unsafe", name]);
        Assert.Equal(0, r.Exit);
        Assert.Equal(mode, r.Settings.Unsafe);
        Assert.EndsWith($" unsafe={name}", r.Lines[1], StringComparison.Ordinal);
    }

    [Fact]
    public void AnUnknownUnsafeModeIsAUsageError()
    {
        AssertUsageError(Ptactors(["simulate", "--in-memory", "--unsafe", "free"]), "--unsafe");
    }

    // ---- the backend -----------------------------------------------------------------------------------------

    [Fact]
    public void InMemoryGivesTheInMemoryBackend()
    {
        var r = Ptactors(["simulate", "--in-memory", "--run-id", "mem"]);
        Assert.Equal(0, r.Exit);
        Assert.Same(PersistenceBackend.InMemory, r.Backend);
        Assert.Equal("run_id=mem db=in-memory", r.Lines[0]);
    }

    [Fact]
    public void DbGivesASqliteBackendOnThatPath()
    {
        string db = Path.Combine(_dir, "runs.db");
        var r = Ptactors(["simulate", "--db", db, "--run-id", "ondisk"]);
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Exit);
        Assert.Equal(PersistenceBackendKind.Sqlite, r.Backend.Kind);
        Assert.Equal(db, r.Backend.Target);
        Assert.Equal($"run_id=ondisk db={db}", r.Lines[0]);
        Assert.False(File.Exists(db)); // the check that it can be created leaves nothing behind
    }

    [Fact]
    public void AnExistingDatabaseIsUsedAsIs()
    {
        string db = Path.Combine(_dir, "existing.db");
        File.WriteAllBytes(db, [1, 2, 3]);
        var r = Ptactors(["simulate", "--db", db, "--run-id", "again"]);
        Assert.Equal(0, r.Exit);
        Assert.Equal(db, r.Backend.Target);
        Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(db));
    }

    [Fact]
    public void InMemoryFalseLeavesTheDatabase()
    {
        string db = Path.Combine(_dir, "x.db");
        var r = Ptactors(["simulate", "--in-memory", "false", "--db", db]);
        Assert.Equal(0, r.Exit);
        Assert.Equal(PersistenceBackend.Sqlite(db), r.Backend);
    }

    // ---- bad values ------------------------------------------------------------------------------------------

    [Theory]
    [InlineData("--iommus", "0")]
    [InlineData("--iommus", "-1")]
    [InlineData("--iommus", "abc")]
    [InlineData("--iommus", "2147483648")]
    [InlineData("--iommus", "1.5")]
    [InlineData("--iommus", "")]
    [InlineData("--domains", "0")]
    [InlineData("--devices", "0")]
    [InlineData("--devices", "1e3")]
    [InlineData("--workload", "disk")]
    [InlineData("--workload", "NIC")]
    [InlineData("--format", "arm64")]
    [InlineData("--format", "X86_64")]
    [InlineData("--policy", "eager")]
    [InlineData("--policy", "batch:0")]
    [InlineData("--policy", "batch:")]
    [InlineData("--iotlb", "0")]
    [InlineData("--iotlb", "12")]
    [InlineData("--cpus", "0")]
    [InlineData("--inflight", "0")]
    [InlineData("--late-dma", "1.5")]
    [InlineData("--late-dma", "-0.1")]
    [InlineData("--late-dma", "NaN")]
    [InlineData("--late-dma", "1e-3")]
    [InlineData("--late-dma", "half")]
    [InlineData("--ops", "0")]
    [InlineData("--ops", "-5")]
    [InlineData("--ops", "2M")]
    [InlineData("--ops", "9223372036854775808")]
    [InlineData("--duration", "10")]
    [InlineData("--duration", "0s")]
    [InlineData("--duration", "1.5s")]
    [InlineData("--duration", "10m")]
    [InlineData("--duration", "ms")]
    [InlineData("--duration", "18446744073709551615s")]
    [InlineData("--seed", "-1")]
    [InlineData("--seed", "18446744073709551616")]
    [InlineData("--seed", "0x")]
    [InlineData("--seed", "0x1g")]
    [InlineData("--db", "")]
    [InlineData("--iommus", "65")]
    [InlineData("--domains", "65537")]
    [InlineData("--devices", "262144")]
    [InlineData("--iotlb", "4194312")]
    [InlineData("--iotlb", "2147483640")]
    [InlineData("--cpus", "4097")]
    [InlineData("--inflight", "65537")]
    [InlineData("--ops", "1000000001")]
    [InlineData("--duration", "101s")]
    [InlineData("--duration", "100001ms")]
    [InlineData("--policy", "batch:1048577")]
    [InlineData("--unsafe", "")]
    [InlineData("--unsafe", "FREE-EARLY")]
    [InlineData("--db", " ")]
    [InlineData("--json", "")]
    [InlineData("--run-id", "a/b")]
    [InlineData("--run-id", "..")]
    [InlineData("--run-id", "")]
    public void EachBadValueIsAUsageErrorNamingItsOption(string option, string value)
    {
        var r = Ptactors(option == "--db" ? ["simulate", option, value] : ["simulate", "--in-memory", option, value]);
        AssertUsageError(r, option);
        Assert.Contains($"'{value}'", r.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--iommus")]
    [InlineData("--duration")]
    [InlineData("--json")]
    [InlineData("--db")]
    public void AMissingValueIsAUsageErrorNamingItsOption(string option)
    {
        AssertUsageError(Ptactors(["simulate", option]), option);
    }

    [Theory]
    [InlineData(new[] { "--iommus", "64", "--iotlb", "524288" }, "--iommus", "--iotlb")]
    [InlineData(new[] { "--devices", "100000", "--inflight", "200" }, "--devices", "--inflight")]
    [InlineData(new[] { "--domains", "2048", "--cpus", "4096" }, "--domains", "--cpus")]
    [InlineData(new[] { "--ops", "100000001" }, "--ops", "--in-memory")]
    [InlineData(new[] { "--duration", "1s" }, "--duration", "--in-memory")]
    public void ACombinationThatWouldExhaustMemoryIsAUsageErrorNamingTheOptions(string[] args, string first, string second)
    {
        var r = Ptactors(["simulate", "--in-memory", .. args]);
        AssertUsageError(r, first);
        Assert.Contains(second, r.Stderr, StringComparison.Ordinal);
        Assert.Contains("at most", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void OnSqliteMoreOperationsAreAllowedThanInMemory()
    {
        var r = Ptactors(["simulate", "--db", Path.Combine(_dir, "big.db"), "--ops", "1000000000", "--run-id", "big"]);
        Assert.Equal("", r.Stderr);
        Assert.Equal(SimulateValues.MaxOps, r.Settings.Ops);
    }

    [Fact]
    public void AnOptionGivenTwiceIsAUsageError()
    {
        AssertUsageError(Ptactors(["simulate", "--iommus", "1", "--iommus", "2"]), "--iommus");
    }

    [Fact]
    public void AnUnknownOptionIsAUsageError()
    {
        AssertUsageError(Ptactors(["simulate", "--iommu", "2"]), "--iommu");
    }

    [Fact]
    public void OpsAndDurationAreMutuallyExclusive()
    {
        var r = Ptactors(["simulate", "--in-memory", "--ops", "5", "--duration", "1s"]);
        AssertUsageError(r, "--ops");
        Assert.Contains("--duration", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void DbAndInMemoryAreMutuallyExclusive()
    {
        var r = Ptactors(["simulate", "--in-memory", "--db", Path.Combine(_dir, "x.db")]);
        AssertUsageError(r, "--in-memory");
        Assert.Contains("--db", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void ADatabaseInAMissingDirectoryIsAUsageError()
    {
        var r = Ptactors(["simulate", "--db", Path.Combine(_dir, "missing", "x.db")]);
        AssertUsageError(r, "--db");
    }

    [Fact]
    public void ADatabaseThatIsADirectoryIsAUsageError()
    {
        AssertUsageError(Ptactors(["simulate", "--db", _dir]), "--db");
    }

    private static void AssertUsageError(Outcome r, string option)
    {
        Assert.Equal(2, r.Exit);
        Assert.Empty(r.Runner.Calls);
        Assert.Equal("", r.Stdout);
        Assert.Contains(option, r.Stderr, StringComparison.Ordinal);
        Assert.StartsWith("ptactors simulate: ", r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", r.Stderr, StringComparison.Ordinal);
    }

    // ---- the run id and the output ---------------------------------------------------------------------------

    [Fact]
    public void TheGeneratedRunIdIsUtcTimeAndFourHexDigits()
    {
        var before = DateTime.UtcNow;
        var r = Ptactors(["simulate", "--in-memory"]);
        string id = r.Settings.RunId;
        Assert.Matches(RunIdPattern(), id);
        Assert.True(PersistenceIds.IsValidPart(id));
        var stamp = DateTime.ParseExact(id[..15], "yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(stamp, before.AddSeconds(-1), DateTime.UtcNow.AddSeconds(1));
        Assert.Equal($"run_id={id} db=in-memory", r.Lines[0]);
    }

    [Fact]
    public void NewRunIdFormatsTimeAndSuffix()
    {
        var t = new DateTimeOffset(2025, 3, 4, 5, 6, 7, TimeSpan.FromHours(2));
        Assert.Equal("20250304-030607-00ab", SimulateValues.NewRunId(t, 0xab));
        Assert.Equal("20250304-030607-ffff", SimulateValues.NewRunId(t, -1));
        Assert.True(PersistenceIds.IsValidPart(SimulateValues.NewRunId()));
    }

    [Fact]
    public void TheOutputIsTheRunLineTheSettingsAndASummaryOfEveryFigure()
    {
        var r = Ptactors(["simulate", "--in-memory", "--run-id", "out", "--ops", "1000"], new FakeRunner { Result = SampleResult });
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Exit);
        Assert.Equal("run_id=out db=in-memory", r.Lines[0]);
        Assert.Equal(
            "iommus=4 domains=64 devices=1024 workload=mixed format=x86_64 policy=lazy iotlb=1024 cpus=16 inflight=32 " +
            "late_dma=default ops=1000 seed=1 unsafe=none", r.Lines[1]);
        foreach (string key in JsonKeys)
            Assert.Contains(r.Lines, line => Regex.IsMatch(line, $@"\b{key}\b"));
        Assert.Contains(r.Lines, line => line.Contains("table_hash", StringComparison.Ordinal) && line.Contains(SampleHash, StringComparison.Ordinal));
        Assert.Contains(r.Lines, line => Regex.IsMatch(line, @"\bstale_violations\b.*\b3\b"));
        Assert.Contains(r.Lines, line => Regex.IsMatch(line, @"\biotlb_hit_rate\b.*\b0\.987654\b"));
        Assert.DoesNotContain('\u001b', r.Stdout); // no escape sequences when the output is not a terminal
    }

    [Fact]
    public async Task PlainProgressLinesWhenTheOutputIsNotATerminal()
    {
        var runner = new FakeRunner
        {
            Reports = [new(1, 0.0001, 100, 1000, 50, 2500), new(2, 0.0002, 500, 1000, 90, 3000)],
            DelayPerReport = TimeSpan.FromMilliseconds(150),
        };
        var r = await RunCommandAsync(["--in-memory", "--ops", "1000", "--run-id", "plain"], runner,
            progressInterval: TimeSpan.FromMilliseconds(20));
        Assert.Equal(0, r.Exit);
        Assert.Contains("progress window=1 sim_s=0.000100 ops=100/1000 (10.0%) dmas=50 ops_per_sec=2500", r.Lines);
        Assert.Contains("progress window=2 sim_s=0.000200 ops=500/1000 (50.0%) dmas=90 ops_per_sec=3000", r.Lines);
        Assert.Equal(1, r.Lines.Count(l => l.StartsWith("progress window=1 ", StringComparison.Ordinal))); // only news is printed
    }

    [Fact]
    public void ProgressTextInDurationMode()
    {
        var s = new SimulationSettings { Ops = null, DurationNs = 2_000_000_000 };
        Assert.Equal("window=3 sim_s=0.500000/2 ops=77 (25.0%) dmas=8 ops_per_sec=1234",
            SimulateCommand.ProgressText(new(3, 0.5, 77, 0, 8, 1234.4), s));
    }

    [Fact]
    public async Task TheLiveDisplayRunsWhenTheOutputIsATerminal()
    {
        var runner = new FakeRunner
        {
            Reports = [new(1, 0.001, 10, 20, 5, 100), new(2, 0.002, 20, 20, 9, 120)],
            DelayPerReport = TimeSpan.FromMilliseconds(250),
            Result = SampleResult,
        };
        var r = await RunCommandAsync(["--in-memory", "--ops", "20", "--run-id", "live"], runner, terminal: true);
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Exit);
        Assert.StartsWith("run_id=live db=in-memory\n", r.Stdout, StringComparison.Ordinal);
        Assert.Contains("20/20 ops", r.Stdout, StringComparison.Ordinal);
        Assert.EndsWith($"\nrun_id=live table_hash={SampleHash}\n", r.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("progress window=", r.Stdout, StringComparison.Ordinal);
    }

    // ---- --json FILE -----------------------------------------------------------------------------------------

    private const string SampleHash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    private static SimulationResult SampleResult(SimulationSettings s) => new()
    {
        RunId = s.RunId,
        Ops = 1000,
        Dmas = 4321,
        OpsPerSec = 12345.5,
        WallS = 0.081,
        SimS = 0.0123456789,
        Maps = 500,
        Unmaps = 500,
        BytesMapped = 18_446_744_073_709_551_615,
        IotlbHitRate = 0.987654,
        Invalidations = 77,
        InvalidationsPerUnmap = 0.154,
        OverInvalidatedBytes = 1 << 20,
        StaleInWindow = 12,
        StaleViolations = 3,
        UseAfterFree = 4,
        IsolationBreaches = 5,
        LockWaitP50Us = 1.5,
        LockWaitP99Us = 250.25,
        LockWaits = 8,
        Unsafe = UnsafeMode.AmdShort,
        TablePagesMax = 99,
        EventsPersisted = 40,
        OpsPersisted = 1000,
        TableHash = SampleHash,
        Faults = 6,
        Errors = 7,
    };

    [Fact]
    public void JsonHasEveryKeyAndTheRunnersFigures()
    {
        string path = Path.Combine(_dir, "run.json");
        var r = Ptactors(["simulate", "--in-memory", "--run-id", "json1", "--json", path], new FakeRunner { Result = SampleResult });
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Exit);
        Assert.Equal($"run_id=json1 table_hash={SampleHash}", r.Lines[^2]);
        Assert.Equal($"json={path}", r.Lines[^1]);

        byte[] bytes = File.ReadAllBytes(path);
        Assert.NotEqual(0xEF, bytes[0]); // no BOM
        using var doc = JsonDocument.Parse(bytes);
        var root = doc.RootElement;
        Assert.Equal(JsonFileKeys, root.EnumerateObject().Select(p => p.Name).ToArray());
        Assert.Equal("json1", root.GetProperty("run_id").GetString());
        Assert.Equal(1000, root.GetProperty("ops").GetInt64());
        Assert.Equal(4321, root.GetProperty("dmas").GetInt64());
        Assert.Equal(12345.5, root.GetProperty("ops_per_sec").GetDouble());
        Assert.Equal(0.081, root.GetProperty("wall_s").GetDouble());
        Assert.Equal(0.0123456789, root.GetProperty("sim_s").GetDouble());
        Assert.Equal(500, root.GetProperty("maps").GetInt64());
        Assert.Equal(500, root.GetProperty("unmaps").GetInt64());
        Assert.Equal(ulong.MaxValue, root.GetProperty("bytes_mapped").GetUInt64());
        Assert.Equal(0.987654, root.GetProperty("iotlb_hit_rate").GetDouble());
        Assert.Equal(77, root.GetProperty("invalidations").GetInt64());
        Assert.Equal(0.154, root.GetProperty("invalidations_per_unmap").GetDouble());
        Assert.Equal(1 << 20, root.GetProperty("over_invalidated_bytes").GetInt64());
        Assert.Equal(12, root.GetProperty("stale_in_window").GetInt64());
        Assert.Equal(3, root.GetProperty("stale_violations").GetInt64());
        Assert.Equal(4, root.GetProperty("use_after_free").GetInt64());
        Assert.Equal(5, root.GetProperty("isolation_breaches").GetInt64());
        Assert.Equal(1.5, root.GetProperty("lock_wait_p50_us").GetDouble());
        Assert.Equal(250.25, root.GetProperty("lock_wait_p99_us").GetDouble());
        Assert.Equal(8, root.GetProperty("lock_waits").GetInt64());
        Assert.Equal("amd-short", root.GetProperty("unsafe").GetString());
        Assert.Equal(99, root.GetProperty("table_pages_max").GetInt64());
        Assert.Equal(40, root.GetProperty("events_persisted").GetInt64());
        Assert.Equal(1000, root.GetProperty("ops_persisted").GetInt64());
        Assert.Equal(SampleHash, root.GetProperty("table_hash").GetString());
        Assert.Equal(6, root.GetProperty("faults").GetInt64());
        Assert.Equal(7, root.GetProperty("errors").GetInt64());

        string text = File.ReadAllText(path);
        Assert.Contains("\"ops_per_sec\": 12345.5,", text, StringComparison.Ordinal); // invariant: a point, no separators
        Assert.EndsWith("}\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void JsonRunIdIsTheGeneratedOne()
    {
        string path = Path.Combine(_dir, "gen.json");
        var r = Ptactors(["simulate", "--in-memory", "--json", path]);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        Assert.Equal(r.Settings.RunId, doc.RootElement.GetProperty("run_id").GetString());
        Assert.Matches(RunIdPattern(), doc.RootElement.GetProperty("run_id").GetString());
    }

    [Fact]
    public void JsonWritesAFigureThatIsNotANumberAsNull()
    {
        string path = Path.Combine(_dir, "nan.json");
        var runner = new FakeRunner
        {
            Result = s => SampleResult(s) with { IotlbHitRate = double.NaN, InvalidationsPerUnmap = double.PositiveInfinity },
        };
        Assert.Equal(0, Ptactors(["simulate", "--in-memory", "--json", path], runner).Exit);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("iotlb_hit_rate").ValueKind);
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("invalidations_per_unmap").ValueKind);
    }

    [Fact]
    public void JsonReplacesAnExistingFile()
    {
        string path = Path.Combine(_dir, "old.json");
        File.WriteAllText(path, new string('x', 10_000));
        Assert.Equal(0, Ptactors(["simulate", "--in-memory", "--json", path]).Exit);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        Assert.Equal(JsonFileKeys.Length, doc.RootElement.EnumerateObject().Count());
    }

    [Fact]
    public void JsonInAMissingDirectoryIsAUsageErrorBeforeTheRun()
    {
        var r = Ptactors(["simulate", "--in-memory", "--json", Path.Combine(_dir, "missing", "run.json")]);
        AssertUsageError(r, "--json");
    }

    [Fact]
    public void JsonThatIsADirectoryIsAUsageErrorBeforeTheRun()
    {
        AssertUsageError(Ptactors(["simulate", "--in-memory", "--json", _dir]), "--json");
    }

    [Fact]
    public void JsonInAReadOnlyFileIsAUsageErrorBeforeTheRun()
    {
        string path = Path.Combine(_dir, "ro.json");
        File.WriteAllText(path, "keep");
        File.SetAttributes(path, FileAttributes.ReadOnly);
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(path, UnixFileMode.UserRead);
        try
        {
            if (Environment.UserName == "root" && !OperatingSystem.IsWindows())
                return; // root writes through any mode bits
            AssertUsageError(Ptactors(["simulate", "--in-memory", "--json", path]), "--json");
            Assert.Equal("keep", File.ReadAllText(path));
        }
        finally
        {
            File.SetAttributes(path, FileAttributes.Normal);
        }
    }

    [Fact]
    public void JsonIsWrittenBesideTheTargetAndRenamedLeavingNoTemporaryFile()
    {
        string path = Path.Combine(_dir, "renamed.json");
        Assert.Equal(0, Ptactors(["simulate", "--in-memory", "--json", path]).Exit);
        Assert.Equal([path], Directory.GetFiles(_dir));
    }

    [Fact]
    public void AJsonThatCannotBeWrittenAfterTheRunIsAnOutputErrorAndLeavesNoFile()
    {
        // The directory disappears during the run: the complete JSON cannot be put in place.
        string dir = Path.Combine(_dir, "gone");
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, "run.json");
        var runner = new FakeRunner { Result = s => { Directory.Delete(dir, recursive: true); return SampleResult(s); } };
        var r = Ptactors(["simulate", "--in-memory", "--run-id", "gone", "--json", path], runner);
        Assert.Equal(SimulateCommand.ExitOutput, r.Exit);
        Assert.StartsWith($"ptactors simulate: cannot write the output (--json file '{path}'): ", r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", r.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(dir));
    }

    /// <summary>Standard output that fails (disk full) once <see cref="Broken"/> is set.</summary>
    private sealed class BreakingWriter : StringWriter
    {
        public volatile bool Broken;

        public override void Write(char value)
        {
            if (Broken)
                throw new IOException("No space left on device");
            base.Write(value);
        }

        public override void Write(string? value)
        {
            if (Broken)
                throw new IOException("No space left on device");
            base.Write(value);
        }

        public override void Write(char[] buffer, int index, int count)
        {
            if (Broken)
                throw new IOException("No space left on device");
            base.Write(buffer, index, count);
        }

        public override void Write(ReadOnlySpan<char> buffer)
        {
            if (Broken)
                throw new IOException("No space left on device");
            base.Write(buffer);
        }
    }

    [Fact]
    public void StandardOutputThatFailsAfterTheRunIsNamedAsAnOutputError()
    {
        using var stdout = new BreakingWriter();
        using var stderr = new StringWriter { NewLine = "\n" };
        string path = Path.Combine(_dir, "ok.json");
        var runner = new FakeRunner { Result = s => { stdout.Broken = true; return SampleResult(s); } };
        int rc = Program.Run(["simulate", "--in-memory", "--run-id", "full", "--json", path], new StringReader(""), stdout, stderr,
            () => runner, stdoutIsTerminal: false);
        Assert.Equal(SimulateCommand.ExitOutput, rc);
        Assert.Equal("ptactors simulate: cannot write the output (standard output): No space left on device\n", stderr.ToString());
        Assert.True(File.Exists(path)); // the figures were written before the summary
    }

    // ---- failures --------------------------------------------------------------------------------------------

    [Fact]
    public void AFailedRunSaysSoInOneLineAndLeavesNoJson()
    {
        string path = Path.Combine(_dir, "failed.json");
        var r = Ptactors(["simulate", "--in-memory", "--run-id", "bad", "--json", path],
            new FakeRunner { Failure = new InvalidOperationException("journal write failed") });
        Assert.Equal(Program.ExitInternalError, r.Exit);
        Assert.Equal("ptactors simulate: run bad failed: journal write failed\n", r.Stderr);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void AFailedRunLeavesAnExistingJsonFileAlone()
    {
        string path = Path.Combine(_dir, "previous.json");
        File.WriteAllText(path, "{\"previous\": true}\n");
        var r = Ptactors(["simulate", "--in-memory", "--json", path], new FakeRunner { Failure = new IOException("disk") });
        Assert.Equal(Program.ExitInternalError, r.Exit);
        Assert.Equal("{\"previous\": true}\n", File.ReadAllText(path));
    }

    [Fact]
    public async Task ACancelledRunExitsWith130()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var r = await RunCommandAsync(["--in-memory", "--run-id", "stop"], new FakeRunner { WaitForCancellation = true },
            cancellationToken: cts.Token);
        Assert.Equal(SimulateCommand.ExitCancelled, r.Exit);
        Assert.Equal("ptactors simulate: run stop cancelled\n", r.Stderr);
    }

    // ---- --cost FILE -----------------------------------------------------------------------------------------

    [Fact]
    public void CostFileOverridesTheModelsKeys()
    {
        string path = Path.Combine(_dir, "cost.conf");
        File.WriteAllText(path, "ptactors.cost {\n  invalidation-ns = 4000\n  walk-read-ns = 150\n}\n");
        var r = Ptactors(["simulate", "--in-memory", "--cost", path]);
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Exit);
        var cost = Assert.Single(r.Runner.Calls).Settings.Cost;
        Assert.Equal(PtActors.Engine.Cost.CostModel.Default with { InvalidationNs = 4000, WalkReadNs = 150 }, cost);
    }

    [Fact]
    public void WithoutACostFileTheRunHasTheDefaults()
    {
        var r = Ptactors(["simulate", "--in-memory"]);
        Assert.Equal(PtActors.Engine.Cost.CostModel.Default, Assert.Single(r.Runner.Calls).Settings.Cost);
    }

    [Theory]
    [InlineData("ptactors.cost {\n  invalidation-ns = 4000\n  no-such-cost = 1\n}\n", ":3: unknown cost key 'no-such-cost'")]
    [InlineData("ptactors.cost.walk-read-ns = -5\n", ": walk-read-ns must be a number of nanoseconds from 0 to 1e9, not -5")]
    [InlineData("ptactors.cost.walk-read-ns = ${nowhere}\n", ": not valid HOCON")]
    public void ABadCostFileIsAUsageErrorNamingTheFileAndKeyBeforeTheRun(string text, string expected)
    {
        string path = Path.Combine(_dir, "bad-cost.conf");
        File.WriteAllText(path, text);
        var r = Ptactors(["simulate", "--in-memory", "--cost", path]);
        AssertUsageError(r, "--cost");
        Assert.Contains(path + expected, r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void AMissingCostFileIsAUsageError()
    {
        string path = Path.Combine(_dir, "none.conf");
        var r = Ptactors(["simulate", "--in-memory", "--cost", path]);
        AssertUsageError(r, "--cost");
        Assert.Contains(path + ": cannot read it", r.Stderr, StringComparison.Ordinal);
    }

    // ---- NIC buffers -----------------------------------------------------------------------------------------

    [Fact]
    public void NicOptionsReachTheSettingsAndTheConfigLine()
    {
        var r = Ptactors(["simulate", "--in-memory", "--nic-buffers", "page-pool", "--buffer-page", "2M", "--link-gbps", "100", "--ring", "512"]);
        Assert.Equal("", r.Stderr);
        var s = r.Settings;
        Assert.True(s.NicPagePool);
        Assert.Equal(2UL << 20, s.BufferPageBytes);
        Assert.Equal(100, s.LinkGbps);
        Assert.Equal(512, s.NicRing);
        Assert.EndsWith("unsafe=none nic_buffers=page-pool buffer_page=2M link_gbps=100 ring=512", r.Lines[1], StringComparison.Ordinal);
    }

    [Fact]
    public void NicQueuesAndMtuReachTheSettingsAndTheConfigLine()
    {
        var r = Ptactors(["simulate", "--in-memory", "--workload", "nic", "--queues", "8", "--mtu", "9000"]);
        Assert.Equal("", r.Stderr);
        Assert.Equal(8, r.Settings.NicQueues);
        Assert.Equal(9000, r.Settings.FrameBytes);
        Assert.EndsWith("unsafe=none queues=8 mtu=9000", r.Lines[1], StringComparison.Ordinal);
    }

    [Fact]
    public void NvmeOptionsReachTheSettingsAndTheConfigLine()
    {
        var r = Ptactors(["simulate", "--in-memory", "--workload", "nvme", "--io-size", "64K", "--queue-depth", "16", "--iops", "50000"]);
        Assert.Equal("", r.Stderr);
        var s = r.Settings;
        Assert.Equal(64UL << 10, s.NvmeIoBytes);
        Assert.Equal(16, s.NvmeQueueDepth);
        Assert.Equal(50000, s.NvmeIops);
        Assert.EndsWith("unsafe=none io_size=64K queue_depth=16 iops=50000", r.Lines[1], StringComparison.Ordinal);
    }

    [Fact]
    public void NvmeQueuePairsStayMappedAndDataMovesAPageAtATime()
    {
        string path = Path.Combine(Path.GetTempPath(), $"ptactors-nvme-{Guid.NewGuid():N}.json");
        try
        {
            var r = EndToEndTests.Ptactors(["simulate", "--in-memory", "--workload", "nvme", "--devices", "16", "--ops", "20000",
                "--io-size", "64K", "--queue-depth", "16", "--iops", "50000", "--json", path]);
            Assert.True(r.Exit == 0, r.Stderr);
            using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(path));
            // The queue pairs stay mapped: their entries hit in the IOTLB. 16 pages a command, a DMA each, over 4.5
            // segments (unmaps) on average: about 4 DMAs per unmap (a DMA per segment would be under 2).
            Assert.InRange(json.RootElement.GetProperty("iotlb_hit_rate").GetDouble(), 0.05, 1.0);
            double perUnmap = (double)json.RootElement.GetProperty("dmas").GetInt64() / json.RootElement.GetProperty("unmaps").GetInt64();
            Assert.InRange(perUnmap, 3.0, 5.0);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData(new[] { "--buffer-page", "2M" }, "needs --nic-buffers page-pool")]
    [InlineData(new[] { "--nic-buffers", "page-pool", "--buffer-page", "1G" }, "--buffer-page")]
    [InlineData(new[] { "--nic-buffers", "recycled" }, "--nic-buffers")]
    [InlineData(new[] { "--link-gbps", "0" }, "--link-gbps")]
    [InlineData(new[] { "--link-gbps", "20000" }, "--link-gbps")]
    [InlineData(new[] { "--io-size", "6000" }, "--io-size")]
    [InlineData(new[] { "--io-size", "4M" }, "--io-size")]
    [InlineData(new[] { "--io-size", "0" }, "--io-size")]
    [InlineData(new[] { "--queue-depth", "0" }, "--queue-depth")]
    [InlineData(new[] { "--queue-depth", "65537" }, "--queue-depth")]
    [InlineData(new[] { "--iops", "100000001" }, "--iops")]
    [InlineData(new[] { "--workload", "nic", "--io-size", "4K" }, "--io-size sets what nvme devices do: --workload nic has none")]
    [InlineData(new[] { "--workload", "gpu", "--queue-depth", "8" }, "--queue-depth sets what nvme devices do")]
    [InlineData(new[] { "--workload", "nvme", "--ring", "8" }, "--ring sets what nic devices do: --workload nvme has none")]
    [InlineData(new[] { "--ring", "65537" }, "--ring")]
    [InlineData(new[] { "--queues", "65" }, "--queues")]
    [InlineData(new[] { "--queues", "0" }, "--queues")]
    [InlineData(new[] { "--queues", "64", "--ring", "2048" }, "--queues 64 x --ring 2048 is 131072 buffers per direction: at most 65536")]
    [InlineData(new[] { "--mtu", "9217" }, "--mtu")]
    [InlineData(new[] { "--mtu", "63" }, "--mtu")]
    [InlineData(new[] { "--workload", "gpu", "--mtu", "9000" }, "--mtu sets what nic devices do: --workload gpu has none")]
    public void ABadNicOptionIsAUsageError(string[] args, string expected)
        => AssertUsageError(Ptactors(["simulate", "--in-memory", .. args]), expected);

    [Fact]
    public void BufferPagesAreAComparisonParameter()
    {
        string path = Path.Combine(_dir, "pages.json");
        var r = Ptactors(["simulate", "--in-memory", "--run-id", "bp", "--nic-buffers", "page-pool", "--buffer-page", "4K,2M", "--json", path]);
        Assert.Equal(0, r.Exit);
        Assert.Equal([4096UL, 2UL << 20], r.Runner.Calls.Select(c => c.Settings).OrderBy(c => c.RunId, StringComparer.Ordinal).Select(c => c.BufferPageBytes));
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        Assert.Equal(["4K", "2M"], doc.RootElement.GetProperty("runs").EnumerateArray().Select(e => e.GetProperty("buffer_page").GetString()));
    }

    // ---- comparisons -----------------------------------------------------------------------------------------

    [Fact]
    public void ListsRunEveryCombinationWithItsOwnRunId()
    {
        string path = Path.Combine(_dir, "cmp.json");
        var r = Ptactors(["simulate", "--in-memory", "--run-id", "cmp", "--policy", "strict,batch:32", "--iotlb", "64,128", "--cpus", "2",
            "--json", path]);
        Assert.Equal("", r.Stderr);
        Assert.Equal(0, r.Exit);
        var calls = r.Runner.Calls.Select(c => c.Settings).OrderBy(c => c.RunId, StringComparer.Ordinal).ToArray();
        Assert.Equal(["cmp-1", "cmp-2", "cmp-3", "cmp-4"], calls.Select(c => c.RunId));
        Assert.Equal([FlushPolicyKind.Strict, FlushPolicyKind.Strict, FlushPolicyKind.Batch, FlushPolicyKind.Batch], calls.Select(c => c.Policy.Kind));
        Assert.Equal([64, 128, 64, 128], calls.Select(c => c.IotlbEntries));
        Assert.All(calls, c => Assert.Equal(2, c.Cpus));
        Assert.All(calls, c => Assert.Equal(1UL, c.Seed)); // the same seeded workload in every configuration

        Assert.Equal("run_id=cmp db=in-memory", r.Lines[0]);
        Assert.Contains(r.Lines, l => Regex.IsMatch(l, @"^figure\s+policy=strict iotlb=64\s+policy=strict iotlb=128\s+policy=batch:32 iotlb=64\s+policy=batch:32 iotlb=128$"));
        Assert.Contains(r.Lines, l => Regex.IsMatch(l, @"^invalidations\s+0\s+0\s+0\s+0$"));
        Assert.Equal($"json={path}", r.Lines[^1]);

        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var runs = doc.RootElement.GetProperty("runs").EnumerateArray().ToArray();
        Assert.Equal(4, runs.Length);
        Assert.Equal(["policy", "iotlb", "cpus", "format", "buffer_page", .. JsonFileKeys], runs[0].EnumerateObject().Select(p => p.Name).ToArray());
        Assert.Equal("batch:32", runs[2].GetProperty("policy").GetString());
        Assert.Equal(128, runs[3].GetProperty("iotlb").GetInt32());
        Assert.Equal(2, runs[3].GetProperty("cpus").GetInt32());
        Assert.Equal("x86_64", runs[3].GetProperty("format").GetString());
        Assert.Equal("cmp-4", runs[3].GetProperty("run_id").GetString());
    }

    [Fact]
    public void OneValueInEveryListIsAPlainRun()
    {
        var r = Ptactors(["simulate", "--in-memory", "--run-id", "one", "--policy", "strict", "--iotlb", "64"]);
        Assert.Equal(0, r.Exit);
        Assert.Equal("one", r.Settings.RunId);
        Assert.DoesNotContain(r.Lines, l => l.StartsWith("comparing", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(new[] { "--policy", "strict,lazy,strict" }, "--policy")]
    [InlineData(new[] { "--iotlb", "64,65" }, "--iotlb")]
    [InlineData(new[] { "--cpus", "1,0" }, "--cpus")]
    [InlineData(new[] { "--format", "amdv1,arm" }, "--format")]
    [InlineData(new[] { "--policy", "strict,lazy,lazy-single,batch:2,batch:4", "--iotlb", "8,16,24,32", "--cpus", "1,2,3,4" }, "at most 64")]
    [InlineData(new[] { "--policy", "strict,lazy", "--ack-log", "acks.log" }, "--ack-log")]
    public void ABadListIsAUsageErrorBeforeAnyRun(string[] args, string expected)
    {
        var r = Ptactors(["simulate", "--in-memory", .. args]);
        AssertUsageError(r, expected);
    }

    [Fact]
    public void AFailedConfigurationFailsTheComparisonAndWritesNoJson()
    {
        string path = Path.Combine(_dir, "failed.json");
        var r = Ptactors(["simulate", "--in-memory", "--run-id", "f", "--policy", "strict,lazy", "--json", path],
            new FakeRunner { Failure = new InvalidOperationException("the journal broke") });
        Assert.Equal(Program.ExitInternalError, r.Exit);
        Assert.Contains("ptactors simulate: run f-1 failed: the journal broke", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("ptactors simulate: run f-2 failed: the journal broke", r.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(path));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp", SearchOption.AllDirectories));
    }

    [Fact]
    public void ARealComparisonShowsStrictIssuingMoreInvalidationsThanLazy()
    {
        string path = Path.Combine(_dir, "real.json");
        var r = EndToEndTests.Ptactors(["simulate", "--in-memory", "--workload", "nvme", "--iommus", "1", "--domains", "2",
            "--devices", "8", "--ops", "2000", "--policy", "strict,lazy", "--json", path]);
        Assert.True(r.Exit == 0, r.Stderr);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
        var runs = doc.RootElement.GetProperty("runs").EnumerateArray().ToArray();
        Assert.Equal("strict", runs[0].GetProperty("policy").GetString());
        Assert.True(runs[0].GetProperty("invalidations").GetInt64() > runs[1].GetProperty("invalidations").GetInt64());
        Assert.True(runs[0].GetProperty("op_latency_p99_us").GetDouble() > runs[1].GetProperty("op_latency_p99_us").GetDouble());
        Assert.Equal(runs[0].GetProperty("ops").GetInt64(), runs[1].GetProperty("ops").GetInt64());
    }

    // ---- help ------------------------------------------------------------------------------------------------

    [Fact]
    public void HelpListsTheSimulateCommandAndEveryOption()
    {
        var root = Ptactors(["--help"]);
        Assert.Equal(0, root.Exit);
        Assert.Contains("simulate", root.Stdout, StringComparison.Ordinal);

        var r = Ptactors(["simulate", "--help"]);
        Assert.Equal(0, r.Exit);
        Assert.Empty(r.Runner.Calls);
        foreach (string option in new[]
        {
            "--iommus", "--domains", "--devices", "--workload", "--format", "--policy", "--iotlb", "--cpus", "--inflight",
            "--late-dma", "--ops", "--duration", "--seed", "--db", "--in-memory", "--json", "--run-id", "--unsafe", "--cost",
        })
        {
            Assert.Contains(option, r.Stdout, StringComparison.Ordinal);
        }
    }
}
