using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using PtActors.Actors;
using PtActors.Engine;
using PtActors.Engine.Formats;
using PtActors.Engine.Hardware;
using PtActors.Persistence;
using PtActors.Persistence.Postgres;
using Spectre.Console;

namespace PtActors.Cli.Simulate;

/// <summary>What one <c>ptactors simulate</c> command line asks for.</summary>
internal sealed record SimulateRequest(SimulationSettings Settings, PersistenceBackend Backend, string? JsonPath)
{
    /// <summary>
    /// The configurations to run: one, or the cross product of the list options (a comparison), each with its
    /// parameters under their JSON keys and a label naming the parameters that vary.
    /// </summary>
    public IReadOnlyList<SimulateVariant> Variants { get; init; } = [new SimulateVariant(Settings, [], "")];
}

/// <summary>One configuration of a comparison: its settings, its parameters (JSON key, value as written), its column label.</summary>
internal sealed record SimulateVariant(SimulationSettings Settings, IReadOnlyList<(string Key, object Value)> Parameters, string Label);

/// <summary>
/// <c>ptactors simulate</c>: parses the options into <see cref="SimulationSettings"/> and a
/// <see cref="PersistenceBackend"/>, runs them on the <see cref="ISimulationRunner"/> it was given with a live
/// progress display (a plain line every few seconds when the output is not a terminal), then prints a summary table
/// and writes <c>--json FILE</c>.
/// </summary>
/// <remarks>
/// Exit codes: 0 the run finished; 2 a bad option value, conflicting options or a file that cannot be written
/// (nothing is run; this includes a --postgres server that cannot be reached, a refused login and a missing
/// database); 70 the runner failed (an actor failed: one line naming it); 74 the output could not be written
/// after the run (disk full, a closed standard output); 130 the run was cancelled (Ctrl+C).
/// </remarks>
internal sealed class SimulateCommand
{
    /// <summary>Bad usage: nothing was run.</summary>
    public const int ExitUsage = 2;

    /// <summary>The run was cancelled.</summary>
    public const int ExitCancelled = 130;

    /// <summary>The output (standard output, the --json file) could not be written (EX_IOERR).</summary>
    public const int ExitOutput = 74;

    /// <summary>Writing a progress line failed (carries the <see cref="IOException"/> out of the display loop).</summary>
    private sealed class OutputException(IOException inner) : Exception(inner.Message, inner)
    {
        public IOException Inner { get; } = inner;
    }

    private const string Name = "simulate";

    private readonly Func<ISimulationRunner> _createRunner;
    private readonly TextWriter _stdout;
    private readonly TextWriter _stderr;
    private readonly bool _terminal;

    private readonly Option<int?> _iommus;
    private readonly Option<int?> _domains;
    private readonly Option<int?> _devices;
    private readonly Option<string?> _workload;
    private readonly Option<Listed<PtFormatKind>?> _format;
    private readonly Option<Listed<FlushPolicySpec>?> _policy;
    private readonly Option<Listed<int>?> _iotlb;
    private readonly Option<Listed<int>?> _cpus;
    private readonly Option<int?> _inflight;
    private readonly Option<double?> _lateDma;
    private readonly Option<long?> _ops;
    private readonly Option<ulong?> _duration;
    private readonly Option<ulong?> _seed;
    private readonly Option<string?> _db;
    private readonly Option<bool> _inMemory;
    private readonly Option<string?> _postgres;
    private readonly Option<string?> _cluster;
    private readonly Option<string?> _json;
    private readonly Option<string?> _runId;
    private readonly Option<UnsafeMode?> _unsafe;
    private readonly Option<string?> _ackLog;
    private readonly Option<bool> _recordDmas;
    private readonly Option<string?> _cost;
    private readonly Option<string?> _nicBuffers;
    private readonly Option<Listed<ulong>?> _bufferPage;
    private readonly Option<double?> _linkGbps;
    private readonly Option<int?> _ring;
    private readonly Option<int?> _queues;
    private readonly Option<int?> _mtu;
    private readonly Option<ulong?> _ioSize;
    private readonly Option<int?> _queueDepth;
    private readonly Option<int?> _iops;

    /// <summary>A command that runs simulations on <paramref name="runner"/>.</summary>
    public SimulateCommand(ISimulationRunner runner, TextWriter stdout, TextWriter stderr, bool terminal = false)
        : this(() => runner, stdout, stderr, terminal)
    {
        ArgumentNullException.ThrowIfNull(runner);
    }

    /// <summary>
    /// A command that runs simulations on the runner <paramref name="createRunner"/> makes (called once per run, and
    /// only when a run starts). <paramref name="terminal"/>: <paramref name="stdout"/> is the process's standard output
    /// and that is a terminal (a live display); otherwise plain progress lines.
    /// </summary>
    public SimulateCommand(Func<ISimulationRunner> createRunner, TextWriter stdout, TextWriter stderr, bool terminal = false)
    {
        _createRunner = createRunner ?? throw new ArgumentNullException(nameof(createRunner));
        _stdout = stdout ?? throw new ArgumentNullException(nameof(stdout));
        _stderr = stderr ?? throw new ArgumentNullException(nameof(stderr));
        _terminal = terminal;

        var d = new SimulationSettings();
        _iommus = Valued<int?>("--iommus", "N", $"IOMMU units, at most {SimulateValues.MaxIommus} [default: {d.Iommus}]", CountUpTo(SimulateValues.MaxIommus));
        _domains = Valued<int?>("--domains", "N", $"Paging domains, spread round-robin over the units, at most {SimulateValues.MaxDomains} [default: {d.Domains}]", CountUpTo(SimulateValues.MaxDomains));
        _devices = Valued<int?>("--devices", "N", $"Devices, spread round-robin over the domains, at most {SimulateValues.MaxDevices} [default: {d.Devices}]", CountUpTo(SimulateValues.MaxDevices));
        _workload = Valued<string?>("--workload", "nic|nvme|gpu|random|mixed", $"What the devices do [default: {d.Workload}]", SimulateValues.Workload);
        const string Listable = "; a comma-separated list runs each value (a comparison of every combination)";
        _format = Valued<Listed<PtFormatKind>?>("--format", "amdv1|x86_64|vtdss|riscv64[,...]",
            $"Page-table format of every domain{Listable} [default: {PtFormatOps.For(d.Format).Name}]", SimulateValues.List(SimulateValues.Format));
        _policy = Valued<Listed<FlushPolicySpec>?>("--policy", "strict|lazy|lazy-single|batch:N|passthrough[,...]", $"IOTLB flush policy of every unit (N at most {SimulateValues.MaxBatch}); passthrough: no IOMMU translation, as iommu.passthrough=1 (the DMA API maps to physical addresses; nothing is journalled){Listable} [default: {d.Policy}]", SimulateValues.List(SimulateValues.Policy));
        _iotlb = Valued<Listed<int>?>("--iotlb", "N[,N...]", $"IOTLB entries per unit, a multiple of 8 up to {SimulateValues.MaxIotlbEntries}; --iommus x --iotlb at most {SimulateValues.MaxIotlbEntriesTotal}{Listable} [default: {d.IotlbEntries}]", SimulateValues.List(SimulateValues.IotlbEntries));
        _cpus = Valued<Listed<int>?>("--cpus", "N[,N...]", $"CPUs: the k-th device of a domain is on CPU k mod N (its flush-queue ring and its DMA-API calls); at most {SimulateValues.MaxCpus}, --domains x --cpus at most {SimulateValues.MaxRings}{Listable} [default: one per device of a domain, --devices / --domains rounded up]", SimulateValues.List(CountUpTo(SimulateValues.MaxCpus)));
        _inflight = Valued<int?>("--inflight", "N", $"Operations each device keeps outstanding, at most {SimulateValues.MaxInflight}; --devices x --inflight at most {SimulateValues.MaxOutstanding} [default: {d.Inflight}]", CountUpTo(SimulateValues.MaxInflight));
        _lateDma = Valued<double?>("--late-dma", "P", "Probability of a DMA to an IOVA just unmapped, 0 to 1 [default: the workload's]", SimulateValues.Probability);
        _ops = Valued<long?>("--ops", "N", $"Issue exactly N map+unmap operations; end when all are acknowledged; at most {SimulateValues.MaxOps}, {SimulateValues.MaxOpsInMemory} with --in-memory [default: {d.Ops}]", SimulateValues.Ops);
        _duration = Valued<ulong?>("--duration", "TIME", "Run for this much simulated time instead: an integer with ns, us, ms or s (e.g. 500ms), at most 100s; with --in-memory, --devices x --inflight x windows of 100us at most " + SimulateValues.MaxOpsInMemory.ToString(CultureInfo.InvariantCulture), SimulateValues.Duration);
        _seed = Valued<ulong?>("--seed", "N", $"Seed of every device's generator [default: {d.Seed}]", SimulateValues.Seed);
        _db = Valued<string?>("--db", "FILE", $"SQLite database of the journal and snapshots [default: {PersistenceBackend.Default.Target}]", SimulateValues.FilePath);
        _inMemory = new Option<bool>("--in-memory") { Description = "Keep the journal and snapshots in memory: nothing on disk" };
        _postgres = PostgresOption("PostgreSQL database of the journal and snapshots, instead of --db (the database must exist; the tables are created)");
        _cluster = Valued<string?>("--cluster", "HOST:PORT[,HOST:PORT...]",
            "Run the lanes on a PtActors cluster: join it through these seed nodes (`ptactors node`; any one up will do) and start each lane on the node owning its shard; needs --postgres (the cluster's journal)",
            SimulateValues.HostPort);
        _json = Valued<string?>("--json", "FILE", "Also write every figure of the run to FILE as JSON", SimulateValues.FilePath);
        _unsafe = Valued<UnsafeMode?>("--unsafe", "none|free-early|skip-context|amd-short",
            "A deliberately broken IOMMU, to see its checker fire: table pages, IOVA and lock released before the flush " +
            "(free-early: use_after_free), attach leaving a cached device context (skip-context: isolation_breaches), " +
            "AMD's one-bit-short invalidation mask (amd-short: stale_violations) [default: none]", SimulateValues.Unsafe);
        _runId = Valued<string?>("--run-id", "ID", "Run id [default: UTC yyyyMMdd-HHmmss and 4 random hex digits]", SimulateValues.RunId);

        _ackLog = Valued<string?>("--ack-log", "FILE",
            "Append the ids of the operations acknowledged in each window to FILE, for `verify --ack-log` (crash campaigns)", SimulateValues.FilePath);
        _recordDmas = new Option<bool>("--record-dmas")
        {
            Description = "Also journal the DMAs each unit translated, per unit and window, so that replay replays them (costs throughput: see docs/performance.md)",
        };
        _cost = Valued<string?>("--cost", "FILE",
            "Override costs of the cost model: a HOCON file of keys under ptactors.cost, as in config/cost-model.conf " +
            "(docs/model.md) [default: config/cost-model.conf]", SimulateValues.FilePath);
        _nicBuffers = Valued<string?>("--nic-buffers", "map-per-packet|page-pool",
            "How NIC devices get RX buffers: a dma_map per packet, or a page_pool mapped once when the ring fills and recycled (docs/simulator.md) [default: map-per-packet]",
            SimulateValues.NicBuffers);
        _bufferPage = Valued<Listed<ulong>?>("--buffer-page", "4K|2M[,...]",
            $"Pages the NIC page pool carves its buffers from: 2M maps each with one 2 MiB IOVA page (needs --nic-buffers page-pool){Listable} [default: 4K]",
            SimulateValues.List(SimulateValues.BufferPage));
        _linkGbps = Valued<double?>("--link-gbps", "G", "NIC link rate, Gb/s, above 0 and at most 10000 [default: 25]", SimulateValues.LinkGbps);
        _ring = Valued<int?>("--ring", "N", "NIC buffers per RX and per TX ring, at most 65536 [default: 1024]", CountUpTo(65536));
        _queues = Valued<int?>("--queues", "N",
            $"NIC queue pairs per port, each with its RX and TX rings, descriptor rings and completion queues, at most {PtActors.Engine.Workloads.NicWorkload.MaxQueues}; " +
            "--queues x --ring at most 65536 [default: 1]", CountUpTo(PtActors.Engine.Workloads.NicWorkload.MaxQueues));
        _mtu = Valued<int?>("--mtu", "BYTES",
            $"NIC frame size, 64 to {PtActors.Engine.Workloads.WorkloadOptions.MaxFrameBytes} bytes; a frame past 4 KiB is DMAed a page at a time [default: 1500]", SimulateValues.Mtu);
        _ioSize = Valued<ulong?>("--io-size", "SIZE",
            "NVMe command size: 4K to 2M in whole 4 KiB pages (4K, 128K, 1M, or bytes) [default: a mix of 4K to 128K]", SimulateValues.IoSize);
        _queueDepth = Valued<int?>("--queue-depth", "N", "NVMe commands in flight per device (its queue pair's depth), at most 65536 [default: 64]", CountUpTo(65536));
        _iops = Valued<int?>("--iops", "N",
            $"NVMe commands each device offers per second, at most {SimulateValues.MaxIops} (those beyond --queue-depth are dropped) [default: 200000]", CountUpTo(SimulateValues.MaxIops));
        Command = new Command(Name, "Run the actor simulator: devices map, unmap and DMA through IOMMUs, every domain persisted.")
        {
            _iommus, _domains, _devices, _workload, _format, _policy, _iotlb, _cpus, _inflight, _lateDma,
            _ops, _duration, _seed, _db, _inMemory, _postgres, _cluster, _json, _runId, _unsafe, _ackLog, _recordDmas, _cost,
            _nicBuffers, _bufferPage, _linkGbps, _ring, _queues, _mtu, _ioSize, _queueDepth, _iops,
        };
        Command.Validators.Add(result =>
        {
            if (Given(result, _ops) && Given(result, _duration))
                result.AddError("--ops and --duration cannot be used together: end after N operations or after a simulated time");
            if (Given(result, _db) && Given(result, _inMemory))
                result.AddError("--db and --in-memory cannot be used together: the journal goes to a SQLite file or stays in memory");
            if (Given(result, _db) && Given(result, _postgres))
                result.AddError("--db and --postgres cannot be used together: the journal goes to a SQLite file or to PostgreSQL");
            if (Given(result, _inMemory) && Given(result, _postgres))
                result.AddError("--in-memory and --postgres cannot be used together: the journal goes to PostgreSQL or stays in memory");
            if (Given(result, _cluster) && !Given(result, _postgres))
                result.AddError("--cluster needs --postgres CONN: the lanes' nodes journal to the cluster's PostgreSQL database");
            if (Given(result, _cluster) && Given(result, _ackLog))
                result.AddError("--ack-log and --cluster cannot be used together: the lanes acknowledge on other nodes, which cannot write this file");
            CheckCombinations(result);
            long configurations = (long)Count(result, _policy) * Count(result, _iotlb) * Count(result, _cpus) * Count(result, _format) * Count(result, _bufferPage);
            if (configurations > MaxConfigurations)
                result.AddError($"--policy x --iotlb x --cpus x --format x --buffer-page lists make {configurations} configurations: at most {MaxConfigurations}");
            if (Given(result, _bufferPage) && !(result.GetResult(_nicBuffers) is { Implicit: false, Tokens: [{ Value: "page-pool" }] }))
                result.AddError("--buffer-page sets the pages of the NIC page pool: it needs --nic-buffers page-pool");
            string workload = result.GetResult(_workload) is { Implicit: false, Tokens: [var w] } ? w.Value : new SimulationSettings().Workload;
            foreach (var nvme in new Option[] { _ioSize, _queueDepth, _iops })
            {
                if (Given(result, nvme) && workload is not ("nvme" or "mixed"))
                    result.AddError($"{nvme.Name} sets what nvme devices do: --workload {workload} has none (use nvme or mixed)");
            }
            foreach (var nic in new Option[] { _nicBuffers, _linkGbps, _ring, _queues, _mtu })
            {
                if (Given(result, nic) && workload is not ("nic" or "mixed"))
                    result.AddError($"{nic.Name} sets what nic devices do: --workload {workload} has none (use nic or mixed)");
            }
            if (Value(result, _queues, 1, CountUpTo(PtActors.Engine.Workloads.NicWorkload.MaxQueues)) is long queues
                && Value(result, _ring, 1024, CountUpTo(65536)) is long ring && queues * ring > 65536)
                result.AddError($"--queues {queues} x --ring {ring} is {queues * ring} buffers per direction: at most 65536");
            if (configurations > 1 && Given(result, _ackLog))
                result.AddError("--ack-log records the acknowledgements of one run: it cannot be used with lists of --policy, --iotlb, --cpus or --format");
        });
        Command.SetAction((parse, cancellationToken) => InvokeAsync(parse, cancellationToken));
    }

    /// <summary>
    /// Refuses combinations of values that are each within bounds but together would exhaust memory (each error
    /// names the options and the bound). Values with errors of their own are left to those errors.
    /// </summary>
    private void CheckCombinations(CommandResult result)
    {
        var d = new SimulationSettings();
        if (Value(result, _iommus, d.Iommus, CountUpTo(SimulateValues.MaxIommus)) is not long iommus
            || Max(result, _iotlb, d.IotlbEntries, SimulateValues.List(SimulateValues.IotlbEntries)) is not long iotlb
            || Value(result, _devices, d.Devices, CountUpTo(SimulateValues.MaxDevices)) is not long devices
            || Value(result, _inflight, d.Inflight, CountUpTo(SimulateValues.MaxInflight)) is not long inflight
            || Value(result, _domains, d.Domains, CountUpTo(SimulateValues.MaxDomains)) is not long domains
            || Max(result, _cpus, SimulateValues.DefaultCpus(devices, domains), SimulateValues.List(CountUpTo(SimulateValues.MaxCpus))) is not long cpus)
        {
            return;
        }
        if (iommus * iotlb > SimulateValues.MaxIotlbEntriesTotal)
            result.AddError($"--iommus {iommus} x --iotlb {iotlb} is {iommus * iotlb} IOTLB entries: at most {SimulateValues.MaxIotlbEntriesTotal}");
        if (devices * inflight > SimulateValues.MaxOutstanding)
            result.AddError($"--devices {devices} x --inflight {inflight} is {devices * inflight} operations outstanding: at most {SimulateValues.MaxOutstanding}");
        if (domains * cpus > SimulateValues.MaxRings)
            result.AddError($"--domains {domains} x --cpus {cpus} is {domains * cpus} flush-queue rings: at most {SimulateValues.MaxRings}");
        if (!Given(result, _inMemory))
            return;
        if (result.GetResult(_ops) is { Implicit: false, Tokens: [var opsToken] } && SimulateValues.Ops(opsToken.Value, out _) is long ops && ops > SimulateValues.MaxOpsInMemory)
            result.AddError($"--ops {ops} with --in-memory: the in-memory journal keeps every operation, at most {SimulateValues.MaxOpsInMemory}");
        if (result.GetResult(_duration) is { Implicit: false, Tokens: [var durationToken] } && SimulateValues.Duration(durationToken.Value, out _) is ulong ns)
        {
            // A device issues at most --inflight operations per window (each waits a window for its answer).
            ulong windows = (ns + d.WindowNs - 1) / d.WindowNs;
            if ((ulong)devices * (ulong)inflight * windows > (ulong)SimulateValues.MaxOpsInMemory)
                result.AddError($"--duration {FormatDuration(ns)} with --in-memory, --devices {devices} and --inflight {inflight} may issue " +
                    $"{(ulong)devices * (ulong)inflight * windows} operations (--inflight per device per 100us window); the in-memory journal keeps every one, at most {SimulateValues.MaxOpsInMemory}");
        }
    }

    /// <summary>The largest value of a list option (its default when not given); null when its value is bad (an error of its own).</summary>
    private static long? Max(CommandResult result, Option<Listed<int>?> option, int fallback, ValueParser<Listed<int>?> parse)
        => result.GetResult(option) switch
        {
            null or { Implicit: true } => fallback,
            { Tokens: [var token] } => parse(token.Value, out _) is { } list ? list.Items.Max() : null,
            _ => null,
        };

    /// <summary>How many values a list option has (1 when not given or bad).</summary>
    private static int Count<T>(CommandResult result, Option<Listed<T>?> option)
        => result.GetResult(option) is { Implicit: false, Tokens: [var token] } ? token.Value.Split(',').Length : 1;

    /// <summary>The most configurations one comparison runs.</summary>
    public const int MaxConfigurations = 64;

    /// <summary>The value of an option (its default when not given); null when its value is bad (an error of its own).</summary>
    private static long? Value(CommandResult result, Option<int?> option, int fallback, ValueParser<int?> parse)
        => result.GetResult(option) switch
        {
            null or { Implicit: true } => fallback,
            { Tokens: [var token] } => parse(token.Value, out _),
            _ => null,
        };

    /// <summary>The <c>simulate</c> command, to add to the root command.</summary>
    public Command Command { get; }

    /// <summary>How often a plain progress line is printed when the output is not a terminal.</summary>
    public TimeSpan PlainProgressInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Makes the run id when <c>--run-id</c> is not given.</summary>
    public Func<string> NewRunId { get; init; } = SimulateValues.NewRunId;

    /// <summary>True when <paramref name="parse"/> selected this command.</summary>
    public bool IsSelected(ParseResult parse) => parse.CommandResult.Command == Command;

    /// <summary>
    /// Prints the errors of a <c>simulate</c> command line one per line (each names its option) and returns
    /// <see cref="ExitUsage"/>; nothing is run.
    /// </summary>
    public int ReportParseErrors(ParseResult parse)
    {
        foreach (var error in parse.Errors)
            _stderr.WriteLine($"ptactors {Name}: {error.Message}");
        _stderr.WriteLine($"Try 'ptactors {Name} --help'.");
        return ExitUsage;
    }

    /// <summary>The settings, backend and JSON path of a command line without errors.</summary>
    public SimulateRequest Bind(ParseResult parse)
    {
        var d = new SimulationSettings();
        long? ops = parse.GetValue(_ops);
        ulong? duration = parse.GetValue(_duration);
        var settings = d with
        {
            Iommus = parse.GetValue(_iommus) ?? d.Iommus,
            Domains = parse.GetValue(_domains) ?? d.Domains,
            Devices = parse.GetValue(_devices) ?? d.Devices,
            Workload = parse.GetValue(_workload) ?? d.Workload,
            Inflight = parse.GetValue(_inflight) ?? d.Inflight,
            LateDma = parse.GetValue(_lateDma) ?? d.LateDma,
            Ops = duration is null ? ops ?? d.Ops : null,
            DurationNs = duration ?? (ops is null ? d.DurationNs : null),
            Seed = parse.GetValue(_seed) ?? d.Seed,
            RunId = parse.GetValue(_runId) ?? NewRunId(),
            Unsafe = parse.GetValue(_unsafe) ?? d.Unsafe,
            AckLogPath = parse.GetValue(_ackLog),
            RecordDmas = parse.GetValue(_recordDmas),
            NicPagePool = parse.GetValue(_nicBuffers) == "page-pool",
            LinkGbps = parse.GetValue(_linkGbps),
            NicRing = parse.GetValue(_ring),
            NicQueues = parse.GetValue(_queues),
            FrameBytes = parse.GetValue(_mtu),
            NvmeIoBytes = parse.GetValue(_ioSize),
            NvmeQueueDepth = parse.GetValue(_queueDepth),
            NvmeIops = parse.GetValue(_iops),
            ClusterSeed = parse.GetValue(_cluster),
        };
        var backend = parse.GetValue(_inMemory) ? PersistenceBackend.InMemory
            : parse.GetValue(_postgres) is string postgres ? PersistenceBackend.Postgres(postgres)
            : parse.GetValue(_db) is string db ? PersistenceBackend.Sqlite(db)
            : PersistenceBackend.Default;
        // The cross product of the list options, in option order (policy outermost).
        var policies = parse.GetValue(_policy) ?? new Listed<FlushPolicySpec>([d.Policy], [d.Policy.ToString()]);
        var iotlbs = parse.GetValue(_iotlb) ?? new Listed<int>([d.IotlbEntries], [d.IotlbEntries.ToString(CultureInfo.InvariantCulture)]);
        int defaultCpus = SimulateValues.DefaultCpus(settings.Devices, settings.Domains);
        var cpus = parse.GetValue(_cpus) ?? new Listed<int>([defaultCpus], [defaultCpus.ToString(CultureInfo.InvariantCulture)]);
        var formats = parse.GetValue(_format) ?? new Listed<PtFormatKind>([d.Format], [PtFormatOps.For(d.Format).Name]);
        var pages = parse.GetValue(_bufferPage) ?? new Listed<ulong>([d.BufferPageBytes], ["4K"]);
        int total = policies.Items.Length * iotlbs.Items.Length * cpus.Items.Length * formats.Items.Length * pages.Items.Length;
        var variants = new List<SimulateVariant>(total);
        for (int p = 0; p < policies.Items.Length; p++)
        {
            for (int i = 0; i < iotlbs.Items.Length; i++)
            {
                for (int c = 0; c < cpus.Items.Length; c++)
                {
                    for (int f = 0; f < formats.Items.Length; f++)
                    for (int g = 0; g < pages.Items.Length; g++)
                    {
                        var one = settings with
                        {
                            Policy = policies.Items[p],
                            IotlbEntries = iotlbs.Items[i],
                            Cpus = cpus.Items[c],
                            Format = formats.Items[f],
                            BufferPageBytes = pages.Items[g],
                            RunId = total == 1 ? settings.RunId : $"{settings.RunId}-{variants.Count + 1}",
                        };
                        (string Key, object Value)[] parameters =
                        [
                            ("policy", policies.Texts[p]),
                            ("iotlb", iotlbs.Items[i]),
                            ("cpus", cpus.Items[c]),
                            ("format", PtFormatOps.For(formats.Items[f]).Name),
                            ("buffer_page", pages.Texts[g]),
                        ];
                        var label = new List<string>();
                        if (policies.Items.Length > 1)
                            label.Add("policy=" + policies.Texts[p]);
                        if (iotlbs.Items.Length > 1)
                            label.Add("iotlb=" + iotlbs.Texts[i]);
                        if (cpus.Items.Length > 1)
                            label.Add("cpus=" + cpus.Texts[c]);
                        if (formats.Items.Length > 1)
                            label.Add("format=" + formats.Texts[f]);
                        if (pages.Items.Length > 1)
                            label.Add("buffer_page=" + pages.Texts[g]);
                        variants.Add(new SimulateVariant(one, parameters, string.Join(' ', label)));
                    }
                }
            }
        }
        return new SimulateRequest(variants[0].Settings with { RunId = settings.RunId }, backend, parse.GetValue(_json)) { Variants = variants };
    }

    private async Task<int> InvokeAsync(ParseResult parse, CancellationToken cancellationToken)
    {
        var request = Bind(parse);
        var (settings, backend, jsonPath) = request;
        if (!PersistenceIds.IsValidPart(settings.RunId))
            return Usage($"run id '{settings.RunId}' is invalid");
        if (parse.GetValue(_cost) is { } costFile)
        {
            if (!CostModelConfig.TryLoad(costFile, out var cost, out string? costWhy))
                return Usage($"bad --cost file: {costWhy}");
            settings = settings with { Cost = cost };
            var costed = new List<SimulateVariant>(request.Variants.Count);
            foreach (var v in request.Variants)
                costed.Add(v with { Settings = v.Settings with { Cost = cost } });
            request = request with { Settings = settings, Variants = costed };
        }

        // Every file is checked before the run starts: a long run must not end in "cannot write". The JSON goes to a
        // temporary file beside --json, renamed over it once complete: a failure never leaves a partial file.
        if (settings.AckLogPath is { } ackLog && !CanAppend(ackLog, out string? ackWhy))
            return Usage($"cannot append to --ack-log file '{ackLog}': {ackWhy}");
        FileStream? json = null;
        string? jsonTemp = null;
        if (jsonPath is not null && !TryOpenForWriting(jsonPath, out json, out jsonTemp, out string? why))
            return Usage($"cannot write --json file '{jsonPath}': {why}");

        try
        {
            if (backend.Kind == PersistenceBackendKind.Sqlite && !CanUseDatabase(backend.Target!, out why))
                return Usage($"cannot use --db file '{backend.Target}': {why}");
            if (backend.Kind == PersistenceBackendKind.Postgres)
            {
                // The server answers and lets the user into the database before anything of the run happens.
                var (problem, pgWhy) = await PostgresDatabase.CheckAsync(backend.Target!, forReading: false, cancellationToken).ConfigureAwait(false);
                if (problem != PostgresDatabase.Problem.None)
                    return Usage($"cannot use --postgres: {pgWhy}");
            }

            var output = new FlushingTextWriter(_stdout);
            if (request.Variants.Count > 1)
                return await CompareAsync(request, output, json, jsonTemp, cancellationToken).ConfigureAwait(false);
            IAnsiConsole console;
            try
            {
                output.WriteLine($"run_id={settings.RunId} db={backend.Describe()}");
                output.WriteLine(Describe(settings));
                console = CreateConsole(output);
            }
            catch (IOException e)
            {
                return OutputError("standard output", e);
            }

            SimulationResult result;
            try
            {
                var runner = _createRunner();
                var progress = new LatestProgress();
                var run = Task.Run(() => runner.RunAsync(settings, backend, progress, cancellationToken), CancellationToken.None);
                result = console.Profile.Capabilities.Interactive
                    ? await LiveAsync(console, run, progress, settings).ConfigureAwait(false)
                    : await PlainAsync(output, run, progress, settings).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                _stderr.WriteLine($"ptactors {Name}: run {settings.RunId} cancelled");
                return ExitCancelled;
            }
            catch (RunIdTakenException e)
            {
                return Usage(e.Message);
            }
            catch (OutputException e)
            {
                return OutputError("standard output", e.Inner);
            }
            catch (Exception e)
            {
                // A failed run is not a usage error: say what failed, in one line, without a stack trace.
                string message = backend.Kind == PersistenceBackendKind.Postgres ? PostgresDatabase.Redact(e.Message, backend.Target) : e.Message;
                _stderr.WriteLine($"ptactors {Name}: run {settings.RunId} failed: {message}");
                return Program.ExitInternalError;
            }

            if (json is not null)
            {
                try
                {
                    SimulationFigures.WriteJson(json, result);
                    json.Flush(flushToDisk: true);
                    json.Dispose();
                    File.Move(jsonTemp!, jsonPath!, overwrite: true);
                    jsonTemp = null;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    return OutputError($"--json file '{jsonPath}'", e);
                }
            }

            try
            {
                console.Write(SummaryTable(result));
                foreach (var restart in result.LaneRestarts)
                    output.WriteLine("note: " + restart);
                // The reproducibility check in one line (the table may wrap the hash on a narrow terminal).
                output.WriteLine($"run_id={result.RunId} table_hash={result.TableHash}");
                if (jsonPath is not null)
                    output.WriteLine($"json={jsonPath}");
            }
            catch (IOException e)
            {
                return OutputError("standard output", e);
            }
            return 0;
        }
        finally
        {
            json?.Dispose();
            if (jsonTemp is not null)
                TryDelete(jsonTemp);
        }
    }

    /// <summary>
    /// A comparison: every configuration of <paramref name="request"/> run on the same seeded workload, as many at once
    /// as there are cores, then one table with a column per configuration and, with <c>--json</c>, <c>runs</c>.
    /// </summary>
    private async Task<int> CompareAsync(SimulateRequest request, FlushingTextWriter output, FileStream? json, string? jsonTemp, CancellationToken ct)
    {
        var variants = request.Variants;
        var backend = request.Backend;
        // In memory each run has its own journal: as many at once as there are cores. Runs recorded in one database
        // share its run registry (one persistent entity, one writer at a time): one after the other.
        int parallel = backend.Kind == PersistenceBackendKind.InMemory ? Math.Min(variants.Count, Math.Max(1, Environment.ProcessorCount)) : 1;
        var sync = new object();
        try
        {
            output.WriteLine($"run_id={request.Settings.RunId} db={backend.Describe()}");
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"comparing {variants.Count} configurations, {parallel} at a time:"));
            foreach (var v in variants)
                output.WriteLine($"{v.Settings.RunId}: {Describe(v.Settings)}");
        }
        catch (IOException e)
        {
            return OutputError("standard output", e);
        }

        var results = new SimulationResult?[variants.Count];
        var failures = new List<(int Index, Exception Error)>();
        using var gate = new SemaphoreSlim(parallel);
        var tasks = new Task[variants.Count];
        for (int k = 0; k < variants.Count; k++)
        {
            int index = k;
            tasks[k] = Task.Run(async () =>
            {
                await gate.WaitAsync(ct).ConfigureAwait(false);
                try
                {
                    var settings = variants[index].Settings;
                    var result = await _createRunner().RunAsync(settings, backend, new LatestProgress(), ct).ConfigureAwait(false);
                    results[index] = result;
                    lock (sync)
                        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"done {settings.RunId} ({variants[index].Label}): {result.Ops} ops in {result.WallS:0.00} s"));
                }
                catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    lock (sync)
                        failures.Add((index, e));
                }
                finally
                {
                    gate.Release();
                }
            }, CancellationToken.None);
        }
        try
        {
            await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            _stderr.WriteLine($"ptactors {Name}: comparison {request.Settings.RunId} cancelled");
            return ExitCancelled;
        }
        catch (IOException e)
        {
            return OutputError("standard output", e);
        }
        if (failures.Count > 0)
        {
            failures.Sort(static (a, b) => a.Index.CompareTo(b.Index));
            bool usage = true;
            foreach (var (index, e) in failures)
            {
                string id = variants[index].Settings.RunId;
                if (e is RunIdTakenException)
                {
                    _stderr.WriteLine($"ptactors {Name}: {e.Message}");
                    continue;
                }
                usage = false;
                string message = backend.Kind == PersistenceBackendKind.Postgres ? PostgresDatabase.Redact(e.Message, backend.Target) : e.Message;
                _stderr.WriteLine($"ptactors {Name}: run {id} failed: {message}");
            }
            return usage ? ExitUsage : Program.ExitInternalError;
        }

        var done = new List<(IReadOnlyList<(string Key, object Value)> Parameters, SimulationResult Result)>(variants.Count);
        for (int k = 0; k < variants.Count; k++)
            done.Add((variants[k].Parameters, results[k]!));
        if (json is not null)
        {
            try
            {
                SimulationFigures.WriteComparisonJson(json, done);
                json.Flush(flushToDisk: true);
                json.Dispose();
                File.Move(jsonTemp!, request.JsonPath!, overwrite: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return OutputError($"--json file '{request.JsonPath}'", e);
            }
        }

        try
        {
            var rows = new List<string[]>();
            var header = new List<string> { "figure" };
            foreach (var v in variants)
                header.Add(v.Label);
            rows.Add([.. header]);
            var figures = new List<IReadOnlyList<(string Key, object? Value)>>(done.Count);
            foreach (var (_, r) in done)
                figures.Add(SimulationFigures.Of(r));
            for (int f = 0; f < figures[0].Count; f++)
            {
                string key = figures[0][f].Key;
                if (key is "table_hash" or "memory_hash")
                    continue; // 64 hex digits per column: listed below, one line per run
                var row = new string[variants.Count + 1];
                row[0] = key;
                for (int k = 0; k < figures.Count; k++)
                    row[k + 1] = SimulationFigures.Display(key, figures[k][f].Value);
                rows.Add(row);
            }
            TextColumns.Write(output, rows);
            foreach (var (_, r) in done)
                output.WriteLine($"run_id={r.RunId} table_hash={r.TableHash}");
            if (request.JsonPath is not null)
                output.WriteLine($"json={request.JsonPath}");
        }
        catch (IOException e)
        {
            return OutputError("standard output", e);
        }
        return 0;
    }

    /// <summary>The run's output could not be written (disk full, a closed pipe): not the input's fault.</summary>
    private int OutputError(string what, Exception e)
    {
        _stderr.WriteLine($"ptactors {Name}: cannot write the output ({what}): {e.Message.ReplaceLineEndings(" ")}");
        return ExitOutput;
    }

    private int Usage(string message)
    {
        _stdout.Flush();
        _stderr.WriteLine($"ptactors {Name}: {message}");
        return ExitUsage;
    }

    /// <summary>The live display: one progress bar (acknowledged operations, or simulated time) and the rate.</summary>
    private static async Task<SimulationResult> LiveAsync(IAnsiConsole console, Task<SimulationResult> run, LatestProgress progress,
        SimulationSettings settings)
    {
        return await console.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn { Width = 24 },
                new PercentageColumn(), new ElapsedTimeColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask(Markup.Escape(LiveText(null, settings)), autoStart: true, maxValue: Target(settings));
                long seen = 0;
                while (true)
                {
                    bool finished = await Task.WhenAny(run, Task.Delay(200)).ConfigureAwait(false) == run;
                    if (progress.TryGetNewer(ref seen, out var p))
                    {
                        task.Value = Math.Min(Done(p, settings), task.MaxValue);
                        task.Description = Markup.Escape(LiveText(p, settings));
                    }
                    if (finished)
                    {
                        var result = await run.ConfigureAwait(false);
                        task.Value = task.MaxValue;
                        context.Refresh();
                        return result;
                    }
                }
            }).ConfigureAwait(false);
    }

    /// <summary>No live display: the latest progress as one plain line every <see cref="PlainProgressInterval"/>.</summary>
    private async Task<SimulationResult> PlainAsync(TextWriter output, Task<SimulationResult> run, LatestProgress progress,
        SimulationSettings settings)
    {
        long seen = 0;
        while (await Task.WhenAny(run, Task.Delay(PlainProgressInterval)).ConfigureAwait(false) != run)
        {
            if (progress.TryGetNewer(ref seen, out var p))
            {
                try
                {
                    output.WriteLine("progress " + ProgressText(p, settings));
                }
                catch (IOException e)
                {
                    throw new OutputException(e);
                }
            }
        }
        return await run.ConfigureAwait(false);
    }

    private static double Target(SimulationSettings s)
        => s.Ops is long ops ? ops : s.DurationNs is ulong ns ? ns / 1e9 : 1;

    private static double Done(SimulationProgress p, SimulationSettings s) => s.Ops is not null ? p.Ops : p.SimS;

    /// <summary>The live display's description (short: it shares an 80-column line with the bar).</summary>
    internal static string LiveText(SimulationProgress? progress, SimulationSettings s)
    {
        var p = progress ?? default;
        return s.Ops is long n
            ? string.Create(CultureInfo.InvariantCulture, $"{p.Ops}/{n} ops  {p.OpsPerSec:0} ops/s")
            : string.Create(CultureInfo.InvariantCulture, $"sim {p.SimS:0.000###}/{Target(s):0.######}s  {p.Ops} ops  {p.OpsPerSec:0} ops/s");
    }

    /// <summary>The progress line: <c>window= sim_s= ops=N/TARGET (P%) dmas= ops_per_sec=</c>.</summary>
    internal static string ProgressText(SimulationProgress? progress, SimulationSettings s)
    {
        var p = progress ?? default;
        double target = Target(s);
        double percent = target > 0 ? Math.Min(100, 100 * Done(p, s) / target) : 0;
        string ops = s.Ops is long n ? $"ops={p.Ops}/{n}" : $"ops={p.Ops}";
        string sim = s.DurationNs is ulong ns ? $"sim_s={p.SimS:0.000000}/{ns / 1e9:0.######}" : $"sim_s={p.SimS:0.000000}";
        return string.Create(CultureInfo.InvariantCulture,
            $"window={p.Window} {sim} {ops} ({percent:0.0}%) dmas={p.Dmas} ops_per_sec={p.OpsPerSec:0}");
    }

    /// <summary>The second line of the output: every setting of the run.</summary>
    internal static string Describe(SimulationSettings s) => s.Describe();

    /// <summary>A duration in the largest unit that divides it (<c>1500ms</c>, <c>2s</c>).</summary>
    internal static string FormatDuration(ulong ns) => SimulationSettings.FormatDuration(ns);

    private static Table SummaryTable(SimulationResult result)
    {
        var table = new Table()
            .Title("ptactors simulate")
            .AddColumn(new TableColumn("figure"))
            .AddColumn(new TableColumn("value").RightAligned());
        foreach (var (key, value) in SimulationFigures.Of(result))
            table.AddRow(new Text(key), new Text(SimulationFigures.Display(key, value)));
        return table;
    }

    private IAnsiConsole CreateConsole(TextWriter output)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = _terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = _terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = _terminal ? InteractionSupport.Yes : InteractionSupport.No,
        });
        if (!_terminal)
        {
            // Plain output is read by programs and people scrolling back: never wrap a figure.
            console.Profile.Width = 120;
            console.Profile.Capabilities.Interactive = false;
        }
        return console;
    }

    /// <summary>
    /// Creates the temporary file the JSON is written to, beside <paramref name="path"/> (renamed over it once
    /// complete), after checking that <paramref name="path"/> is not a directory and, if it exists, can be written.
    /// </summary>
    private static bool TryOpenForWriting(string path, out FileStream? stream, out string? temp, out string? why)
    {
        stream = null;
        temp = null;
        why = null;
        try
        {
            if (Directory.Exists(path))
            {
                why = "it is a directory";
                return false;
            }
            if (File.Exists(path))
                using (new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite)) { }
            string full = Path.GetFullPath(path);
            string candidate = Path.Combine(Path.GetDirectoryName(full) ?? ".",
                "." + Path.GetFileName(full) + "." + Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "." +
                System.Security.Cryptography.RandomNumberGenerator.GetHexString(8, lowercase: true) + ".tmp");
            stream = new FileStream(candidate, FileMode.CreateNew, FileAccess.Write, FileShare.None);
            temp = candidate;
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            why = Reason(e);
            return false;
        }
    }

    /// <summary>The file can be opened for appending (or created): checked before the run, changing nothing.</summary>
    private static bool CanAppend(string path, out string? why) => CanOpen(path, FileMode.Append, FileAccess.Write, out why);

    /// <summary>The SQLite file's directory exists and the file can be opened (or created) for reading and writing.</summary>
    private static bool CanUseDatabase(string path, out string? why) => CanOpen(path, FileMode.Open, FileAccess.ReadWrite, out why);

    /// <summary>
    /// <paramref name="path"/> is not a directory and can be opened with <paramref name="existing"/> if it exists, or
    /// created (and deleted again) if not: a check that changes nothing.
    /// </summary>
    private static bool CanOpen(string path, FileMode existing, FileAccess access, out string? why)
    {
        why = null;
        try
        {
            if (Directory.Exists(path))
            {
                why = "it is a directory";
                return false;
            }
            if (File.Exists(path))
            {
                using (new FileStream(path, existing, access, FileShare.ReadWrite)) { }
                return true;
            }
            using (new FileStream(path, FileMode.CreateNew, access, FileShare.ReadWrite)) { }
            File.Delete(path);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            why = Reason(e);
            return false;
        }
    }

    private static string Reason(Exception e) => e switch
    {
        DirectoryNotFoundException => "no such directory",
        UnauthorizedAccessException => "permission denied",
        _ => e.Message,
    };

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: an empty file left behind is harmless.
        }
    }

    private static bool Given(CommandResult result, Option option)
        => result.GetResult(option) is { Implicit: false } r && (r.Option is not Option<bool> || r.Tokens.Count == 0 || r.GetValueOrDefault<bool>());

    /// <summary>
    /// An option of one value, parsed by <paramref name="parse"/>: a bad value is a parse error that names the
    /// option, the value and what is expected.
    /// </summary>
    internal static Option<T> Valued<T>(string name, string helpName, string description, ValueParser<T> parse) => new(name)
    {
        Description = description,
        HelpName = helpName,
        CustomParser = result =>
        {
            if (result.Tokens.Count != 1)
                return default;
            string text = result.Tokens[0].Value;
            T value = parse(text, out string expected);
            if (value is null)
                result.AddError($"bad value '{text}' for {name} ({expected})");
            return value;
        },
    };

    /// <summary>
    /// <c>--postgres CONN</c>: an Npgsql connection string. A bad value is an error that never repeats the value (it
    /// may hold a password).
    /// </summary>
    internal static Option<string?> PostgresOption(string description) => new("--postgres")
    {
        Description = description + ". CONN: an Npgsql connection string, e.g. \"Host=127.0.0.1;Port=5432;Username=u;Password=p;Database=ptactors\"",
        HelpName = "CONN",
        CustomParser = result =>
        {
            if (result.Tokens.Count != 1)
                return null;
            string text = result.Tokens[0].Value;
            string masked = PostgresDatabase.Mask(text);
            if (string.IsNullOrWhiteSpace(text) || masked.StartsWith('('))
            {
                result.AddError("bad value for --postgres (an Npgsql connection string: Host=...;Port=...;Username=...;Password=...;Database=...)");
                return null;
            }
            return text;
        },
    };

    /// <summary>A count from 1 to <paramref name="max"/>.</summary>
    private static ValueParser<int?> CountUpTo(int max) => (string text, out string expected) => SimulateValues.Count(text, max, out expected);

    /// <summary>Parses an option's text: null (and what was expected) when it is bad.</summary>
    internal delegate T ValueParser<T>(string text, out string expected);
}
