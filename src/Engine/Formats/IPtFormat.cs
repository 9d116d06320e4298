namespace PtActors.Engine.Formats;

/// <summary>
/// The small per-format layer (fmt/*.h): geometry limits, how an item decodes, and how leaves and
/// table pointers encode. Every algorithm is written once over it (see <see cref="PageTable{TFmt}"/>);
/// the members are static abstract so the JIT specialises each walk per format.
/// All merged formats share the geometry of 4 KiB table pages of 512 eight-byte items, so
/// item_lg2sz(level) = 12 + 9 * level is fixed in <see cref="PtGeometry"/>.
/// </summary>
public interface IPtFormat
{
    /// <summary>Which format this is.</summary>
    static abstract PtFormatKind Kind { get; }

    /// <summary>Name used in scripts and reports ("amdv1", ...).</summary>
    static abstract string Name { get; }

    /// <summary>PT_MAX_VA_ADDRESS_LG2.</summary>
    static abstract int MaxVaLg2 { get; }

    /// <summary>PT_MAX_OUTPUT_ADDRESS_LG2.</summary>
    static abstract int MaxOaLg2 { get; }

    /// <summary>PT_MAX_TOP_LEVEL.</summary>
    static abstract int MaxTopLevel { get; }

    /// <summary>Features the format compiles in (PT_SUPPORTED_FEATURES).</summary>
    static abstract PtFeatures SupportedFeatures { get; }

    /// <summary>Features forced on (PT_FORCE_ENABLED_FEATURES): pt_feature() is true for them whatever init did.</summary>
    static abstract PtFeatures ForcedFeatures { get; }

    /// <summary>pt_iommu_fmt_init: sets the top level and limits from the cfg, or returns an error.</summary>
    static abstract Errno FormatInit(in PtConfig cfg, PtFeatures features, out int topLevel, out int maxVaszLg2, out int maxOaszLg2);

    /// <summary>pt_can_have_leaf.</summary>
    static abstract bool CanHaveLeaf(int level);

    /// <summary>pt_possible_sizes: bitmap of the leaf sizes this level can hold.</summary>
    static abstract ulong PossibleSizes(int level, PtFeatures features);

    /// <summary>pt_load_entry_raw: the type of the item <paramref name="pte"/> at <paramref name="level"/>.</summary>
    static abstract PtEntryType Load(ulong pte, int level);

    /// <summary>pt_entry_num_contig_lg2 of a leaf item.</summary>
    static abstract int NumContigLg2(ulong pte, int level);

    /// <summary>pt_entry_oa: the output address of the start of the (contiguous) entry.</summary>
    static abstract ulong EntryOa(ulong pte, int level);

    /// <summary>pt_table_pa of a table item.</summary>
    static abstract ulong TablePa(ulong pte);

    /// <summary>The item pt_install_table writes at <paramref name="level"/> to point at a table one level down.</summary>
    static abstract ulong MakeTable(ulong tablePa, int level, PtFeatures features);

    /// <summary>
    /// The item pt_install_leaf_entry writes for a leaf of 2^<paramref name="sizeLg2"/> bytes at
    /// <paramref name="level"/>; every format here writes the same value into each item of a contiguous entry.
    /// </summary>
    static abstract ulong MakeLeaf(ulong oa, int level, int sizeLg2, ulong attrs);

    /// <summary>pt_iommu_set_prot: the descriptor bits for IOMMU_* prot.</summary>
    static abstract Errno SetProt(IommuProt prot, PtFeatures features, out ulong attrs);

    /// <summary>pt_attr_from_entry: the descriptor bits of a leaf.</summary>
    static abstract ulong AttrFromEntry(ulong pte);

    /// <summary>Leaf permissions as hardware reads them (for the DMA walk).</summary>
    static abstract IommuProt LeafPermissions(ulong pte);

    /// <summary>True when the format tracks write-dirty bits (pt_entry_is_write_dirty is defined).</summary>
    static abstract bool HasDirty { get; }

    /// <summary>The dirty bit of one item.</summary>
    static abstract ulong DirtyBit { get; }

    /// <summary>The bits hardware sets on use (accessed, dirty), which a canonical form of the table clears.</summary>
    static abstract ulong AccessedDirtyMask { get; }
}
