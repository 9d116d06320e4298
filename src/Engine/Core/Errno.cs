namespace PtActors.Engine;

/// <summary>
/// Linux errno values returned by the page-table operations. The kernel returns them negated;
/// the engine returns the positive value and <see cref="None"/> (0) for success.
/// </summary>
public enum Errno
{
    None = 0,
    ENOENT = 2,
    ENXIO = 6,
    EAGAIN = 11,
    ENOMEM = 12,
    EBUSY = 16,
    ENODEV = 19,
    EINVAL = 22,
    ERANGE = 34,
    EOVERFLOW = 75,
    EPROTOTYPE = 91,
    EOPNOTSUPP = 95,
    EADDRINUSE = 98,
    ECANCELED = 125,
}

/// <summary>IOMMU_* protection bits as the iommu core defines them.</summary>
[Flags]
public enum IommuProt
{
    None = 0,
    Read = 0x1,
    Write = 0x2,
    Cache = 0x4,
    NoExec = 0x8,
    Mmio = 0x10,
    Priv = 0x20,
}

/// <summary>The three kinds of page-table item (pt_entry_type).</summary>
public enum PtEntryType : byte
{
    Empty = 0,
    Table = 1,
    Oa = 2,
}
