using Akka.Actor;
using PtActors.Engine;
using PtActors.Engine.Dma;
using PtActors.Engine.Hardware;

namespace PtActors.Actors;

/// <summary>
/// One IOMMU unit: its IOTLB, walk caches and per-domain flush-policy state (an <see cref="IommuUnit"/> in split
/// mode, on a clock of its own). Each window it takes the devices' DMAs and the domains' durable unmaps, runs
/// them in stamp order — a DMA stamped before an unmap of the same window still sees the old translation —
/// issues the invalidations, and only then sends the released unmaps back to their domains. Walks read the
/// domains' table pages directly, as hardware reads memory; the coordinator's phases keep the domains still
/// meanwhile. The window itself runs in a <see cref="UnitWindow"/>, as in the single-threaded harnesses.
/// </summary>
public sealed class IotlbActor : ReceiveActor
{
    /// <summary>
    /// Which devices of this unit attach to which domain (sent by the coordinator before the run), in the domain's
    /// order: the k-th device of a domain unmaps on CPU k mod the unit's CPUs.
    /// </summary>
    public sealed record AttachDevices(string Domain, int DomainId, IActorRef DomainActor, int[] Devices) : INoSerializationVerificationNeeded;

    /// <summary>A host's DMAs of one window.</summary>
    public sealed record Dmas(long Window, ReadOnlyMemory<DmaAccess> Items) : INoSerializationVerificationNeeded
    {
        /// <summary>DMAs of a whole array.</summary>
        public Dmas(long window, DmaAccess[] items) : this(window, new ReadOnlyMemory<DmaAccess>(items))
        {
        }
    }

    /// <summary>Every input of the window is in: run it up to <c>EndNs</c>.</summary>
    public sealed record Process(long Window, ulong EndNs) : ILaneMessage;

    /// <summary>
    /// The window is processed; releases are on their way to the domains. <c>Dmas</c> and the counters are the unit's
    /// totals so far (for the run's timeline).
    /// </summary>
    /// <param name="TablePages">Table pages of the unit's domains at the window's end (their tables do not change while the unit processes).</param>
    /// <param name="CpuNs">The cost model's CPU time of the unmaps and flushes the unit timed so far, CPU by CPU (null: not reported).</param>
    /// <param name="TimerCpuNs">CPU time of the timer flushes so far (no CPU waited for them; spread over the CPUs).</param>
    /// <param name="TranslationBehindNs">How long after the window's end the unit's first translation slot comes free: how far its translations are behind.</param>
    public sealed record Processed(long Window, string Unit, long Dmas, ulong EndNs = 0, long Invalidations = 0, long Hits = 0, long Misses = 0, long TablePages = 0,
        double[]? CpuNs = null, double TimerCpuNs = 0, double TranslationBehindNs = 0) : ILaneMessage;

    /// <summary>Flush everything the policy holds (the end of a run).</summary>
    public sealed record Drain(ulong AtNs) : ILaneMessage;

    /// <summary>The drain is done.</summary>
    public sealed record Drained(string Unit) : ILaneMessage;

    /// <summary>Asks for the counters (<see cref="Counters"/>).</summary>
    public sealed record GetCounters : ILaneMessage;

    /// <summary>
    /// The unit's counters, sent after the images of its bound domains' tables (<see cref="ImagePart"/>; the run's
    /// hashes are computed from them).
    /// </summary>
    public sealed record Counters(string Unit, IommuUnitStats Stats, PtActors.Engine.Cost.UnitCostLedger? Costs = null) : ILaneMessage;

    /// <summary>
    /// A piece of the image of domain <c>Domain</c>'s table (<see cref="DomainImage"/>) at the run's end:
    /// <c>Bytes</c> are bytes [<c>Offset</c>, <c>Offset</c> + length) of its canonical form followed by its memory
    /// (<c>CanonicalLength</c> + <c>MemoryLength</c> bytes in all). An image travels in pieces of at most
    /// <see cref="ImagePartBytes"/> so that a large table fits the transport's frames; the pieces of every domain
    /// precede the unit's <see cref="Counters"/>.
    /// </summary>
    public sealed record ImagePart(string Domain, int TablePages, int CanonicalLength, int MemoryLength, int Offset, byte[] Bytes) : ILaneMessage;

    /// <summary>The largest piece of a table image in one message (well under config/cluster.conf's frame size).</summary>
    public const int ImagePartBytes = 4 << 20;

    /// <summary>A domain's table arrived and its devices are attached (to the coordinator).</summary>
    public sealed record Bound(string Unit, string Domain) : ILaneMessage;

    /// <summary>
    /// A domain already bound announced itself again: it was restarted from its journal (after a failed write).
    /// The unit walks its new table from now on and has re-sent it the hardware writes and releases of the window
    /// that died with the old incarnation (to the coordinator, which has the window re-driven).
    /// </summary>
    public sealed record DomainRestarted(string Unit, string Domain) : ILaneMessage;

    private readonly string _name;
    private readonly IommuUnit _unit;
    private readonly SimClock _clock = new();
    private readonly Dictionary<string, (IActorRef Actor, int Id, int[] Devices)> _plan = new();
    private readonly Dictionary<string, IommuDomain> _tables = new();
    private readonly Dictionary<IommuDomain, Binding> _byTable = new(ReferenceEqualityComparer.Instance);
    private readonly List<Binding> _bindings = new();
    private readonly UnitWindow _window;
    private ulong _windowEndNs;
    private readonly MessagePools? _pools;
    private IActorRef _coordinator = ActorRefs.Nobody;
    private IommuDomain? _boot;
    /// <summary>With --record-dmas: the persistence id of the unit's DMA journal, its recorder, the window's DMAs so far and the window waiting for its event to be written.</summary>
    private readonly string? _dmaJournal;
    private IActorRef? _recorder;
    private readonly List<DmaAccess>? _recording;
    /// <summary>Where each host's message of the window starts in <see cref="_recording"/>, by its first DMA's device.</summary>
    private readonly List<(int FirstDevice, int Start, int Count)> _chunks = new();
    private (long Window, IActorRef Sender)? _awaitingRecord;

    /// <summary>The DMAs waiting to be journalled (re-sent to a new recorder after a failed write).</summary>
    private PtActors.Engine.Replay.WindowDmas? _pendingRecord;

    /// <summary>Recorders started again for the window waiting to be recorded (a failed write costs a retry, at most <see cref="MaxRecorderRestarts"/>).</summary>
    private int _recorderRestarts, _recorderIncarnation;

    private const int MaxRecorderRestarts = 5;

    /// <summary>Props; <paramref name="dmaJournal"/>: the persistence id to journal the unit's DMAs under (null: not journalled).</summary>
    public static Props Props(string unit, IommuUnitConfig config, MessagePools? pools = null, string? dmaJournal = null)
        => Akka.Actor.Props.Create(() => new IotlbActor(unit, config, pools, dmaJournal));

    /// <summary>Creates the unit.</summary>
    public IotlbActor(string unit, IommuUnitConfig config, MessagePools? pools = null, string? dmaJournal = null)
    {
        _pools = pools;
        _dmaJournal = dmaJournal;
        if (dmaJournal is not null)
            _recording = new List<DmaAccess>();
        _name = unit;
        _unit = new IommuUnit(unit, config, _clock);
        _window = new UnitWindow(_unit);
        _unit.UnmapReleased = (table, id) => _byTable[table].Released.Add(id);

        Receive<AttachDevices>(a =>
        {
            _coordinator = Sender;
            _plan[a.Domain] = (a.DomainActor, a.DomainId, a.Devices);
            TryBind(a.Domain);
        });
        Receive<DomainActor.Ready>(r =>
        {
            if (_tables.TryGetValue(r.Domain, out var old))
            {
                Rebind(r.Domain, old, r.Table);
                return;
            }
            _tables[r.Domain] = r.Table;
            TryBind(r.Domain);
        });
        Receive<Dmas>(d =>
        {
            _window.AddDmas(d.Items.Span);
            if (_recording is not null && d.Items.Length > 0)
            {
                _chunks.Add((d.Items.Span[0].Device, _recording.Count, d.Items.Length));
                _recording.AddRange(d.Items.Span);
            }
            _pools?.Dmas.Return(d.Items);
        });
        Receive<DomainActor.Unmapped>(u =>
        {
            var table = _tables[u.Domain];
            foreach (ref readonly var n in u.Notices.Span)
                _window.AddUnmap(n, table, u.Leaves);
            _pools?.Notices.Return(u.Notices);
            foreach (var f in u.Flushes)
                _window.AddFlush(f, table);
        });
        Receive<Process>(p =>
        {
            // The lane's domains committed: they hold what was re-sendable until now.
            foreach (var binding in _bindings)
                binding.Acknowledged(_pools);
            if (_recording is { Count: > 0 })
            {
                // The window's DMAs go to the journal while the unit runs them; the window is reported processed
                // (and its releases sent) once they are durable.
                _awaitingRecord = (p.Window, Sender);
                _pendingRecord = new PtActors.Engine.Replay.WindowDmas(p.Window, TakeRecording());
                _recorderRestarts = 0;
                _recorder!.Tell(new DmaRecorder.Record(_pendingRecord));
            }
            _window.Run(p.EndNs);
            _windowEndNs = p.EndNs;
            if (_awaitingRecord is not null)
                return;
            SendReleases();
            Sender.Tell(Report(p.Window));
        });
        Receive<DmaRecorder.Recorded>(r =>
        {
            if (_awaitingRecord is not { } awaiting || awaiting.Window != r.Window)
                throw new InvalidOperationException($"{_name}: the DMA journal recorded window {r.Window}, which was not waiting to be recorded");
            _awaitingRecord = null;
            _pendingRecord = null;
            SendReleases();
            awaiting.Sender.Tell(Report(awaiting.Window));
        });
        Receive<Terminated>(t =>
        {
            if (!t.ActorRef.Equals(_recorder))
            {
                Unhandled(t);
                return;
            }
            // A failed (or rejected) write stopped the recorder. A new one recovers the journal and writes the
            // window's DMAs again, unless the failed write was stored after all (it then answers at once).
            if (++_recorderRestarts > MaxRecorderRestarts)
                throw new InvalidOperationException($"its DMA journal {_dmaJournal} failed to write window {_awaitingRecord?.Window} {MaxRecorderRestarts + 1} times (--record-dmas)");
            StartRecorder();
            if (_pendingRecord is not null)
                _recorder!.Tell(new DmaRecorder.Record(_pendingRecord));
        });
        Receive<Drain>(d =>
        {
            _clock.AdvanceTo(d.AtNs);
            _unit.Drain();
            SendReleases();
            Sender.Tell(new Drained(_name));
        });
        Receive<GetCounters>(_ =>
        {
            foreach (var (name, table) in _tables)
            {
                foreach (var part in ImageParts.Split(DomainImage.Of(name, table)))
                    Sender.Tell(part);
            }
            Sender.Tell(new Counters(_name, _unit.Stats.Snapshot(), _unit.Costs.Snapshot()));
        });
    }

    /// <summary>The window is processed: the unit's totals so far, for the run's timeline.</summary>
    private Processed Report(long window)
        => new(window, _name, _window.DmasRun, _windowEndNs, _unit.Stats.Invalidations, _unit.Stats.Hits, _unit.Stats.Misses, TablePages(),
            (double[])_unit.Costs.CpuNs.Clone(), _unit.Costs.TimerCpuNs, Math.Max(0, _unit.Costs.TranslationFreeNs - _windowEndNs));

    /// <summary>Table pages of every domain bound to the unit.</summary>
    private long TablePages()
    {
        long pages = 0;
        foreach (var (_, table) in _tables)
            pages += table.TablePages;
        return pages;
    }

    /// <summary>
    /// The window's DMAs in an order that does not depend on when the hosts' messages arrived: each host sends one
    /// message per window, its devices' DMAs one device after the other in sequence order; the messages are
    /// ordered by their first DMA's device (hosts drive disjoint devices).
    /// </summary>
    private DmaAccess[] TakeRecording()
    {
        var all = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_recording);
        var chunks = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_chunks);
        chunks.Sort(static (a, b) => a.FirstDevice != b.FirstDevice ? a.FirstDevice.CompareTo(b.FirstDevice) : a.Start.CompareTo(b.Start));
        var items = GC.AllocateUninitializedArray<DmaAccess>(all.Length);
        int at = 0;
        foreach (var (_, start, count) in chunks)
        {
            all.Slice(start, count).CopyTo(items.AsSpan(at));
            at += count;
        }
        _recording!.Clear();
        _chunks.Clear();
        return items;
    }

    protected override void PreStart()
    {
        if (_dmaJournal is not null)
            StartRecorder();
    }

    private void StartRecorder()
        => _recorder = Context.Watch(Context.ActorOf(DmaRecorder.Props(_dmaJournal!),
            "dmas-" + (_recorderIncarnation++).ToString(System.Globalization.CultureInfo.InvariantCulture)));

    private void TryBind(string domain)
    {
        if (!_plan.TryGetValue(domain, out var plan) || !_tables.TryGetValue(domain, out var table))
            return;
        var binding = new Binding(plan.Actor, new Outbox<long>(_pools?.Releases));
        _byTable[table] = binding;
        _bindings.Add(binding);
        for (int i = 0; i < plan.Devices.Length; i++)
        {
            int d = plan.Devices[i];
            // A domain's devices spread over the CPUs (the k-th device of a domain on CPU k mod cpus), so that
            // --cpus matters whatever the numbers of devices and domains.
            var device = _unit.Device("dev" + d.ToString(System.Globalization.CultureInfo.InvariantCulture));
            _window.Bind(d, device, i % _unit.Config.Cpus);
            // Until its driver attaches it, a device translates through what firmware left in the unit's context
            // cache: here a blocking domain (no mappings). The attach must invalidate that cached context; with
            // --unsafe skip-context it does not, and the device goes on translating through the boot domain.
            var err = _unit.Attach(device, BootDomain(table.Config), splitMode: true, domainId: BootDomainId);
            if (err == Errno.None)
                err = _unit.Attach(device, table, splitMode: true, domainId: plan.Id);
            if (err != Errno.None)
                throw new InvalidOperationException($"Attaching dev{d} to {domain} failed: {err}.");
        }
        _coordinator.Tell(new Bound(_name, domain));
    }

    /// <summary>The boot domain's id: above every domain's (the coordinator numbers them from 1).</summary>
    private const int BootDomainId = int.MaxValue;

    /// <summary>The unit's boot domain (created at the first attach, of the format of the first domain bound).</summary>
    private IommuDomain BootDomain(in PtConfig config)
    {
        if (_boot is null)
        {
            var err = IommuDomain.Create(config, new TableMemory(), out _boot);
            if (err != Errno.None)
                throw new InvalidOperationException($"Creating the boot domain of {_name} failed: {err}.");
        }
        return _boot!;
    }

    /// <summary>
    /// Domain <paramref name="domain"/> was restarted from its journal: its recovered table replaces
    /// <paramref name="old"/> (the same bytes at the same page numbers once the re-driven window is committed, so
    /// the IOTLB and walk-cache entries stay valid, as they would for hardware that never saw the difference);
    /// the new incarnation gets again what the old one took with it: the hardware's writes since the last commit
    /// and the releases sent since then.
    /// </summary>
    private void Rebind(string domain, IommuDomain old, IommuDomain table)
    {
        var binding = _byTable[old];
        // The old incarnation's failed commit left the writes in its table's log; a later restart re-sends them.
        binding.HardwareWrites ??= old.HardwareWrites?.Take() ?? [];
        _unit.Rebind(old, table);
        _byTable.Remove(old);
        _byTable[table] = binding;
        _tables[domain] = table;
        binding.Actor.Tell(new DomainActor.Rebound(binding.HardwareWrites));
        foreach (var release in binding.Unacknowledged)
            binding.Actor.Tell(release);
        _coordinator.Tell(new DomainRestarted(_name, domain));
    }

    private void SendReleases()
    {
        foreach (var binding in _bindings)
        {
            if (binding.Released.Count > 0)
            {
                var release = new DomainActor.Release(binding.Released.Take(), _clock.NowNs);
                binding.Unacknowledged.Add(release);
                binding.Actor.Tell(release);
            }
        }
    }

    /// <summary>A bound domain's actor and the unmaps released for it since the last message.</summary>
    private sealed class Binding(IActorRef actor, Outbox<long> released)
    {
        public readonly IActorRef Actor = actor;
        public readonly Outbox<long> Released = released;
        /// <summary>Releases sent since the domain's last commit (it owns none of them until that commit is written).</summary>
        public readonly List<DomainActor.Release> Unacknowledged = new();
        /// <summary>Hardware writes handed over after a restart, until the re-driven commit is written.</summary>
        public long[]? HardwareWrites;

        /// <summary>The domain's commit is written: what it was sent is its own now.</summary>
        public void Acknowledged(MessagePools? pools)
        {
            foreach (var release in Unacknowledged)
                pools?.Releases.Return(release.UnmapIds);
            Unacknowledged.Clear();
            HardwareWrites = null;
        }
    }
}
