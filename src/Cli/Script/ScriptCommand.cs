using PtActors.Engine;
using PtActors.Engine.Hardware;

namespace PtActors.Cli.Script;

/// <summary>One parsed line of a scenario; the runner turns each into exactly one output line.</summary>
internal abstract record ScriptCommand;

/// <summary>A command that addresses one named paging domain.</summary>
internal abstract record OnDomain(string Domain) : ScriptCommand;

/// <summary><c>domain D FORMAT [key=value ...]</c>: create (or replace) paging domain D.</summary>
internal sealed record DomainCommand(string Domain, PtConfig Config) : OnDomain(Domain);

/// <summary><c>map D IOVA PADDR SIZE [PROT]</c>: iommu_map.</summary>
internal sealed record MapCommand(string Domain, ulong Iova, ulong Paddr, ulong Size, IommuProt Prot)
    : OnDomain(Domain);

/// <summary><c>unmap D IOVA SIZE</c>: iommu_unmap into a gather of its own, synced before it returns.</summary>
internal sealed record UnmapCommand(string Domain, ulong Iova, ulong Size) : OnDomain(Domain);

/// <summary><c>unmap_fast D IOVA SIZE</c>: iommu_unmap_fast into the domain's pending gather, no sync.</summary>
internal sealed record UnmapFastCommand(string Domain, ulong Iova, ulong Size) : OnDomain(Domain);

/// <summary><c>sync D</c>: iommu_iotlb_sync of the domain's pending gather.</summary>
internal sealed record SyncCommand(string Domain) : OnDomain(Domain);

/// <summary><c>phys D IOVA</c>: iommu_iova_to_phys.</summary>
internal sealed record PhysCommand(string Domain, ulong Iova) : OnDomain(Domain);

/// <summary><c>count D</c>: the present leaf entries of the whole table, by size.</summary>
internal sealed record CountCommand(string Domain) : OnDomain(Domain);

/// <summary><c>top D</c>: the current top level and top range.</summary>
internal sealed record TopCommand(string Domain) : OnDomain(Domain);

/// <summary><c>tables D</c>: the table pages the domain holds now.</summary>
internal sealed record TablesCommand(string Domain) : OnDomain(Domain);

/// <summary><c>dirty D IOVA SIZE [noclear]</c>: read_and_clear_dirty.</summary>
internal sealed record DirtyCommand(string Domain, ulong Iova, ulong Size, bool NoClear) : OnDomain(Domain);

/// <summary><c>touch D IOVA</c>: a device write to IOVA (set_dirty).</summary>
internal sealed record TouchCommand(string Domain, ulong Iova) : OnDomain(Domain);

/// <summary><c>iommu U [key=value ...]</c>: create IOMMU unit U.</summary>
internal sealed record IommuCommand(string Unit, IommuUnitConfig Config) : ScriptCommand;

/// <summary><c>attach DEV U D</c>: attach a device behind unit U to domain D (moving it if attached).</summary>
internal sealed record AttachCommand(string Device, string Unit, string Domain) : ScriptCommand;

/// <summary><c>detach DEV</c>.</summary>
internal sealed record DetachCommand(string Device) : ScriptCommand;

/// <summary><c>dma DEV IOVA r|w</c>: one DMA of the device, translated as hardware does.</summary>
internal sealed record DmaCommand(string Device, ulong Iova, bool Write) : ScriptCommand;

/// <summary><c>advance DURATION</c>: move the simulated clock, firing the timeouts that fall due.</summary>
internal sealed record AdvanceCommand(ulong Nanoseconds) : ScriptCommand;

/// <summary><c>stats U</c>: the unit's counters.</summary>
internal sealed record StatsCommand(string Unit) : ScriptCommand;
