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
/// meanwhile.
/// </summary>
public sealed class IotlbActor : ReceiveActor, IPreStateOracle
{
    /// <summary>A DMA a device made: stamped, and ordered by (stamp, device, sequence).</summary>
    public readonly record struct DmaAccess(ulong StampNs, int Device, uint Seq, ulong Iova, bool Write) : IComparable<DmaAccess>
    {
        /// <summary>Stamp order: time, then device and its sequence.</summary>
        public int CompareTo(DmaAccess other)
        {
            int c = StampNs.CompareTo(other.StampNs);
            if (c != 0)
                return c;
            c = Device.CompareTo(other.Device);
            return c != 0 ? c : Seq.CompareTo(other.Seq);
        }
    }

    /// <summary>
    /// Which devices of this unit attach to which domain (sent by the coordinator before the run), in the domain's
    /// order: the k-th device of a domain unmaps on CPU k mod the unit's CPUs.
    /// </summary>
    public sealed record AttachDevices(string Domain, int DomainId, IActorRef DomainActor, int[] Devices);

    /// <summary>A host's DMAs of one window.</summary>
    public sealed record Dmas(long Window, ReadOnlyMemory<DmaAccess> Items)
    {
        /// <summary>DMAs of a whole array.</summary>
        public Dmas(long window, DmaAccess[] items) : this(window, new ReadOnlyMemory<DmaAccess>(items))
        {
        }
    }

    /// <summary>Every input of the window is in: run it up to <c>EndNs</c>.</summary>
    public sealed record Process(long Window, ulong EndNs);

    /// <summary>The window is processed; releases are on their way to the domains.</summary>
    public sealed record Processed(long Window, string Unit, long Dmas);

    /// <summary>Flush everything the policy holds (the end of a run).</summary>
    public sealed record Drain(ulong AtNs);

    /// <summary>The drain is done.</summary>
    public sealed record Drained(string Unit);

    /// <summary>Asks for the counters (<see cref="Counters"/>).</summary>
    public sealed record GetCounters;

    /// <summary>The unit's counters and bound domains.</summary>
    public sealed record Counters(string Unit, IommuUnitStats Stats, IReadOnlyDictionary<string, IommuDomain> Tables);

    /// <summary>A domain's table arrived and its devices are attached (to the coordinator).</summary>
    public sealed record Bound(string Unit, string Domain, IommuDomain Table);

    /// <summary>
    /// A domain already bound announced itself again: it was restarted from its journal (after a failed write).
    /// The unit walks its new table from now on and has re-sent it the hardware writes and releases of the window
    /// that died with the old incarnation (to the coordinator, which has the window re-driven).
    /// </summary>
    public sealed record DomainRestarted(string Unit, string Domain, IommuDomain Table);

    private readonly string _name;
    private readonly IommuUnit _unit;
    private readonly SimClock _clock = new();
    private readonly Dictionary<string, (IActorRef Actor, int Id, int[] Devices)> _plan = new();
    private readonly Dictionary<string, IommuDomain> _tables = new();
    private readonly Dictionary<IommuDomain, Binding> _byTable = new(ReferenceEqualityComparer.Instance);
    private readonly List<Binding> _bindings = new();
    private readonly Dictionary<int, IommuDevice> _devices = new();
    /// <summary>Each device's CPU: its index among its domain's devices, mod the unit's CPUs.</summary>
    private readonly Dictionary<int, int> _cpuOf = new();
    private readonly List<DmaAccess> _dmas = new();
    private readonly WindowUnmaps _unmaps = new();
    private readonly List<(FlushNotice Notice, IommuDomain Table)> _flushes = new();
    private readonly MessagePools? _pools;
    private IActorRef _coordinator = ActorRefs.Nobody;
    private int _pendingFrom;   // first unmap of the window not yet run (the pre-state oracle's horizon)
    private long _dmaCount;
    private IommuDomain? _boot;

    /// <summary>Props.</summary>
    public static Props Props(string unit, IommuUnitConfig config, MessagePools? pools = null) => Akka.Actor.Props.Create(() => new IotlbActor(unit, config, pools));

    /// <summary>Creates the unit.</summary>
    public IotlbActor(string unit, IommuUnitConfig config, MessagePools? pools = null)
    {
        _pools = pools;
        _name = unit;
        _unit = new IommuUnit(unit, config, _clock) { PreState = this };
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
            _dmas.AddRange(d.Items.Span);
            _pools?.Dmas.Return(d.Items);
        });
        Receive<DomainActor.Unmapped>(u =>
        {
            var table = _tables[u.Domain];
            foreach (ref readonly var n in u.Notices.Span)
                _unmaps.Add(n, table);
            _pools?.Notices.Return(u.Notices);
            foreach (var f in u.Flushes)
                _flushes.Add((f, table));
        });
        Receive<Process>(p =>
        {
            // The lane's domains committed: they hold what was re-sendable until now.
            foreach (var binding in _bindings)
                binding.Acknowledged(_pools);
            RunWindow(p.EndNs);
            Sender.Tell(new Processed(p.Window, _name, _dmaCount));
        });
        Receive<Drain>(d =>
        {
            _clock.AdvanceTo(d.AtNs);
            _unit.Drain();
            SendReleases();
            Sender.Tell(new Drained(_name));
        });
        Receive<GetCounters>(_ => Sender.Tell(new Counters(_name, _unit.Stats.Snapshot(), new Dictionary<string, IommuDomain>(_tables))));
    }

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
            _cpuOf[d] = i % _unit.Config.Cpus;
            var device = _unit.Device("dev" + d.ToString(System.Globalization.CultureInfo.InvariantCulture));
            _devices[d] = device;
            // Until its driver attaches it, a device translates through what firmware left in the unit's context
            // cache: here a blocking domain (no mappings). The attach must invalidate that cached context; with
            // --unsafe skip-context it does not, and the device goes on translating through the boot domain.
            var err = _unit.Attach(device, BootDomain(table.Config), splitMode: true, domainId: BootDomainId);
            if (err == Errno.None)
                err = _unit.Attach(device, table, splitMode: true, domainId: plan.Id);
            if (err != Errno.None)
                throw new InvalidOperationException($"Attaching dev{d} to {domain} failed: {err}.");
        }
        _coordinator.Tell(new Bound(_name, domain, table));
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

    /// <summary>Everything of the window in stamp order: flushes the tables asked for, unmaps, then DMAs at one stamp.</summary>
    private void RunWindow(ulong endNs)
    {
        System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_flushes).Sort(default(StampOrder));
        _unmaps.Sort();
        System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_dmas).Sort();
        int f = 0, u = 0, d = 0;
        _pendingFrom = 0;
        while (f < _flushes.Count || u < _unmaps.Count || d < _dmas.Count)
        {
            ulong tf = f < _flushes.Count ? _flushes[f].Notice.StampNs : ulong.MaxValue;
            ulong tu = u < _unmaps.Count ? _unmaps[u].Notice.StampNs : ulong.MaxValue;
            ulong td = d < _dmas.Count ? _dmas[d].StampNs : ulong.MaxValue;
            if (tf <= tu && tf <= td)
            {
                var (n, table) = _flushes[f++];
                _clock.AdvanceTo(n.StampNs);
                _unit.FlushNow(table, n.Id, n.Start, n.End, n.Kind);
            }
            else if (tu <= td)
            {
                var (n, table) = _unmaps[u++];
                _pendingFrom = u;
                _clock.AdvanceTo(n.StampNs);
                _unit.Unmapped(table, n.Id, n.Iova, n.Unmapped, cpu: _cpuOf.GetValueOrDefault((int)(n.Id >> 32)));
            }
            else
            {
                var a = _dmas[d++];
                _clock.AdvanceTo(a.StampNs);
                if (_devices.TryGetValue(a.Device, out var device))
                    _unit.Dma(device, a.Iova, a.Write);
                _dmaCount++;
            }
        }
        _clock.AdvanceTo(endNs);
        _flushes.Clear();
        _unmaps.Clear();
        _dmas.Clear();
        _pendingFrom = 0;
        SendReleases();
    }

    /// <summary>The order a window's inputs run in: stamp, then operation id (device and sequence for DMAs).</summary>
    private readonly struct StampOrder : IComparer<(FlushNotice Notice, IommuDomain Table)>
    {
        public int Compare((FlushNotice Notice, IommuDomain Table) a, (FlushNotice Notice, IommuDomain Table) b)
            => Order(a.Notice.StampNs, a.Notice.Id, b.Notice.StampNs, b.Notice.Id);

        private static int Order(ulong stampA, long idA, ulong stampB, long idB)
        {
            int c = stampA.CompareTo(stampB);
            return c != 0 ? c : idA.CompareTo(idB);
        }
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
        _coordinator.Tell(new DomainRestarted(_name, domain, table));
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

    /// <inheritdoc/>
    bool IPreStateOracle.TryTranslate(IommuDomain domain, ulong iova, out ulong pa, out IommuProt prot)
    {
        // Unmaps of this window not yet run are stamped after the DMA being translated.
        return _unmaps.TryPreState(_pendingFrom, domain, iova, out pa, out prot);
    }
}
