using System.Globalization;

namespace PtActors.Engine.Hardware;

/// <summary>The translations a domain had before changes stamped later than the DMA being translated.</summary>
public interface IPreStateOracle
{
    /// <summary>True when <paramref name="iova"/> was mapped (to <paramref name="pa"/>) before such a change.</summary>
    bool TryTranslate(IommuDomain domain, ulong iova, out ulong pa, out IommuProt prot);
}

/// <summary>A device (a BDF, a name) behind an IOMMU unit.</summary>
public sealed class IommuDevice
{
    internal IommuDevice(string name, int index)
    {
        Name = name;
        Index = index;
    }

    /// <summary>Name or BDF.</summary>
    public string Name { get; }

    /// <summary>Order of arrival on the unit.</summary>
    public int Index { get; }

    /// <summary>The domain software attached the device to (null when detached).</summary>
    public IommuDomain? Domain { get; internal set; }

    /// <summary>The domain the hardware's cached device context points at.</summary>
    public IommuDomain? HardwareDomain => HardwareContext?.Domain;

    /// <summary>The unit's state of <see cref="HardwareDomain"/>.</summary>
    internal DomainContext? HardwareContext { get; set; }
}

/// <summary>
/// One IOMMU: devices attached to paging domains, an IOTLB and walk caches shared by them, invalidation
/// commands with a cost model, the flush policy with its per-domain state, and the safety checkers. All
/// timing is the simulated <see cref="SimClock"/>; nothing here reads a real clock.
/// </summary>
public sealed partial class IommuUnit : IIotlbSyncHandler
{
    private readonly Dictionary<string, IommuDevice> _devices = new(StringComparer.Ordinal);
    private readonly Dictionary<IommuDomain, DomainContext> _domains = new(ReferenceEqualityComparer.Instance);
    private readonly List<IoPageFault> _faults = new();
    private int _nextDomainId = 1;

    /// <summary>Creates a unit on <paramref name="clock"/>.</summary>
    public IommuUnit(string name, IommuUnitConfig config, SimClock clock)
    {
        config.Iotlb.Validate();
        if (config.Cpus < 1)
            throw new ArgumentOutOfRangeException(nameof(config), "cpus must be at least 1");
        Name = name;
        Config = config;
        Clock = clock;
        Iotlb = new Iotlb(config.Iotlb);
        WalkCache = new WalkCache(config.WalkCache);
        // One invalidation latency: the unit's configured one (the simulator sets it from its cost model).
        Costs = new Cost.UnitCostLedger(config.Cost.InvalidationNs == config.InvalidationNs ? config.Cost : config.Cost with { InvalidationNs = config.InvalidationNs }, config.Cpus);
    }

    /// <summary>The cost model's timing of this unit's work (it times; it decides nothing).</summary>
    public Cost.UnitCostLedger Costs { get; }

    /// <summary>The unit's name.</summary>
    public string Name { get; }

    /// <summary>Its configuration.</summary>
    public IommuUnitConfig Config { get; }

    /// <summary>The simulated clock.</summary>
    public SimClock Clock { get; }

    /// <summary>The IOTLB.</summary>
    public Iotlb Iotlb { get; }

    /// <summary>The paging-structure caches.</summary>
    public WalkCache WalkCache { get; }

    /// <summary>Counters and first events.</summary>
    public IommuUnitStats Stats { get; } = new();

    /// <summary>IO page faults, in order (the first 10 000 are kept).</summary>
    public IReadOnlyList<IoPageFault> Faults => _faults;

    /// <summary>Called when an unmapped IOVA range may be reused: after the flush that covered it completed.</summary>
    public Action<IommuDomain, ulong, ulong>? IovaReleased { get; set; }

    /// <summary>
    /// Split mode (<see cref="Unmapped"/>): called with the unmap's id when the flush covering it completed —
    /// its owner may now free its table pages and IOVA.
    /// </summary>
    public Action<IommuDomain, long>? UnmapReleased { get; set; }

    /// <summary>
    /// What a table looked like just before changes the unit has not yet been told of (an unmap applied by its
    /// domain but stamped after the DMA being translated): consulted when a walk finds nothing.
    /// </summary>
    public IPreStateOracle? PreState { get; set; }

    /// <summary>The device named <paramref name="name"/>, created on first use.</summary>
    public IommuDevice Device(string name)
    {
        if (!_devices.TryGetValue(name, out var dev))
        {
            dev = new IommuDevice(name, _devices.Count);
            _devices.Add(name, dev);
        }
        return dev;
    }

    /// <summary>The device named <paramref name="name"/>, or null.</summary>
    public IommuDevice? FindDevice(string name) => _devices.GetValueOrDefault(name);

    /// <summary>True when <paramref name="domain"/> is bound to this unit.</summary>
    public bool Owns(IommuDomain domain) => _domains.ContainsKey(domain);

    /// <summary>The domain id this unit tags <paramref name="domain"/>'s IOTLB entries with (0 when not bound).</summary>
    public int DomainId(IommuDomain domain) => _domains.TryGetValue(domain, out var ctx) ? ctx.Id : 0;

    /// <summary>
    /// Attaches a device to a paging domain, moving it if it was attached elsewhere. The first attach binds
    /// the domain to this unit (its flushes are this unit's from then on). A domain bound to another unit is
    /// refused (<see cref="Errno.EBUSY"/>).
    /// </summary>
    public Errno Attach(IommuDevice device, IommuDomain domain) => Attach(device, domain, splitMode: false);

    /// <summary>
    /// <see cref="Attach(IommuDevice, IommuDomain)"/>; in <paramref name="splitMode"/> the domain's owner keeps its
    /// own sync handler and tells the unit of unmaps and flushes (<see cref="Unmapped"/>, <see cref="FlushNow"/>).
    /// A positive <paramref name="domainId"/> (unique on this unit) tags the domain's entries instead of the next free id.
    /// </summary>
    public Errno Attach(IommuDevice device, IommuDomain domain, bool splitMode, int domainId = 0)
    {
        if (!_domains.TryGetValue(domain, out var ctx))
        {
            if (!splitMode && domain.SyncHandler is not null)
                return Errno.EBUSY;
            // An explicit id keeps the IOTLB's set indexes independent of the order domains arrive in.
            ctx = new DomainContext(domain, domainId > 0 ? domainId : _nextDomainId++, Config);
            _domains.Add(domain, ctx);
            if (!splitMode)
                domain.SyncHandler = this;
        }
        device.Domain = domain;
        if (!Config.SkipContextInvalidation || device.HardwareContext is null)
            device.HardwareContext = ctx;
        return Errno.None;
    }

    /// <summary>
    /// Split mode: the owner of <paramref name="old"/> replaced it by <paramref name="replacement"/>, a table with
    /// the same bytes at the same page numbers (a domain rebuilt from its journal). The unit keeps everything it
    /// holds for the domain — its id, so its IOTLB and walk-cache entries, its unflushed unmaps and flush-policy
    /// state — and walks the new table from now on; devices attached to the old one are attached to the new one.
    /// Hardware that caches translations by domain id and table page numbers cannot tell the two apart.
    /// </summary>
    public void Rebind(IommuDomain old, IommuDomain replacement)
    {
        if (ReferenceEquals(old, replacement))
            return;
        if (!_domains.Remove(old, out var ctx))
            throw new InvalidOperationException($"Domain is not bound to IOMMU unit {Name}.");
        if (_domains.ContainsKey(replacement))
            throw new InvalidOperationException($"The replacement domain is already bound to IOMMU unit {Name}.");
        ctx.Domain = replacement;
        _domains.Add(replacement, ctx);
        foreach (var device in _devices.Values)
        {
            if (ReferenceEquals(device.Domain, old))
                device.Domain = replacement;
        }
    }

    /// <summary>Detaches a device; <see cref="Errno.ENODEV"/> when it is not attached.</summary>
    public Errno Detach(IommuDevice device)
    {
        if (device.Domain is null)
            return Errno.ENODEV;
        device.Domain = null;
        if (!Config.SkipContextInvalidation)
            device.HardwareContext = null;
        return Errno.None;
    }

    private DomainContext Context(IommuDomain domain)
        => _domains.TryGetValue(domain, out var ctx) ? ctx
            : throw new InvalidOperationException($"Domain is not bound to IOMMU unit {Name}.");

    private static string Event(string device, ulong iova, ulong now)
        => string.Create(CultureInfo.InvariantCulture, $"{device}@0x{iova:x}@t={now}ns");
}
