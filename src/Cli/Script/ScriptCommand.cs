using PtActors.Engine;

namespace PtActors.Cli.Script;

/// <summary>
/// One parsed line of a scenario. Every command addresses one named domain; the runner turns each into
/// exactly one output line.
/// </summary>
internal abstract record ScriptCommand(string Domain);

/// <summary><c>domain D FORMAT [key=value ...]</c>: create (or replace) paging domain D.</summary>
internal sealed record DomainCommand(string Domain, PtConfig Config) : ScriptCommand(Domain);

/// <summary><c>map D IOVA PADDR SIZE [PROT]</c>: iommu_map.</summary>
internal sealed record MapCommand(string Domain, ulong Iova, ulong Paddr, ulong Size, IommuProt Prot)
    : ScriptCommand(Domain);

/// <summary><c>unmap D IOVA SIZE</c>: iommu_unmap into a gather of its own, synced before it returns.</summary>
internal sealed record UnmapCommand(string Domain, ulong Iova, ulong Size) : ScriptCommand(Domain);

/// <summary><c>unmap_fast D IOVA SIZE</c>: iommu_unmap_fast into the domain's pending gather, no sync.</summary>
internal sealed record UnmapFastCommand(string Domain, ulong Iova, ulong Size) : ScriptCommand(Domain);

/// <summary><c>sync D</c>: iommu_iotlb_sync of the domain's pending gather.</summary>
internal sealed record SyncCommand(string Domain) : ScriptCommand(Domain);

/// <summary><c>phys D IOVA</c>: iommu_iova_to_phys.</summary>
internal sealed record PhysCommand(string Domain, ulong Iova) : ScriptCommand(Domain);

/// <summary><c>count D</c>: the present leaf entries of the whole table, by size.</summary>
internal sealed record CountCommand(string Domain) : ScriptCommand(Domain);

/// <summary><c>top D</c>: the current top level and top range.</summary>
internal sealed record TopCommand(string Domain) : ScriptCommand(Domain);

/// <summary><c>tables D</c>: the table pages the domain holds now.</summary>
internal sealed record TablesCommand(string Domain) : ScriptCommand(Domain);

/// <summary><c>dirty D IOVA SIZE [noclear]</c>: read_and_clear_dirty.</summary>
internal sealed record DirtyCommand(string Domain, ulong Iova, ulong Size, bool NoClear) : ScriptCommand(Domain);

/// <summary><c>touch D IOVA</c>: a device write to IOVA (set_dirty).</summary>
internal sealed record TouchCommand(string Domain, ulong Iova) : ScriptCommand(Domain);
