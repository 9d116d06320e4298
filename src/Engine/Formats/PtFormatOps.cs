namespace PtActors.Engine.Formats;

/// <summary>
/// A runtime view of one format's static layer, for code that picks the format at run time (the format
/// tests, the hardware walker's reports). The walks themselves use the static members directly.
/// </summary>
public abstract class PtFormatOps
{
    /// <summary>The ops of <paramref name="kind"/>.</summary>
    public static PtFormatOps For(PtFormatKind kind) => kind switch
    {
        PtFormatKind.Amdv1 => FormatOps<Amdv1Format>.Instance,
        PtFormatKind.X86_64 => FormatOps<X86_64Format>.Instance,
        PtFormatKind.Vtdss => FormatOps<VtdssFormat>.Instance,
        PtFormatKind.Riscv64 => FormatOps<Riscv64Format>.Instance,
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>Parses a format name as scripts spell it; null when unknown.</summary>
    public static PtFormatKind? Parse(string name) => name switch
    {
        "amdv1" => PtFormatKind.Amdv1,
        "x86_64" => PtFormatKind.X86_64,
        "vtdss" => PtFormatKind.Vtdss,
        "riscv64" => PtFormatKind.Riscv64,
        _ => null,
    };

    /// <summary>Which format.</summary>
    public abstract PtFormatKind Kind { get; }
    /// <summary>Script name.</summary>
    public abstract string Name { get; }
    /// <summary>PT_MAX_VA_ADDRESS_LG2.</summary>
    public abstract int MaxVaLg2 { get; }
    /// <summary>PT_MAX_OUTPUT_ADDRESS_LG2.</summary>
    public abstract int MaxOaLg2 { get; }
    /// <summary>PT_MAX_TOP_LEVEL.</summary>
    public abstract int MaxTopLevel { get; }
    /// <summary>PT_SUPPORTED_FEATURES.</summary>
    public abstract PtFeatures SupportedFeatures { get; }
    /// <summary>True when the format tracks write-dirty bits.</summary>
    public abstract bool HasDirty { get; }
    /// <summary>The dirty bit of an item.</summary>
    public abstract ulong DirtyBit { get; }
    /// <summary>pt_can_have_leaf.</summary>
    public abstract bool CanHaveLeaf(int level);
    /// <summary>pt_possible_sizes.</summary>
    public abstract ulong PossibleSizes(int level, PtFeatures features);
    /// <summary>pt_load_entry_raw.</summary>
    public abstract PtEntryType Load(ulong pte, int level);
    /// <summary>pt_entry_num_contig_lg2.</summary>
    public abstract int NumContigLg2(ulong pte, int level);
    /// <summary>pt_entry_oa.</summary>
    public abstract ulong EntryOa(ulong pte, int level);
    /// <summary>pt_item_oa of item <paramref name="index"/>: the entry's OA plus the item's offset in it.</summary>
    public ulong ItemOa(ulong pte, int level, int index)
    {
        int n = NumContigLg2(pte, level);
        return EntryOa(pte, level) | ((ulong)(index & ((1 << n) - 1)) << PtGeometry.ItemLg2(level));
    }
    /// <summary>pt_table_pa.</summary>
    public abstract ulong TablePa(ulong pte);
    /// <summary>The table item pt_install_table writes.</summary>
    public abstract ulong MakeTable(ulong tablePa, int level, PtFeatures features);
    /// <summary>The leaf item pt_install_leaf_entry writes into each item of the entry.</summary>
    public abstract ulong MakeLeaf(ulong oa, int level, int sizeLg2, ulong attrs);
    /// <summary>pt_iommu_set_prot.</summary>
    public abstract Errno SetProt(IommuProt prot, PtFeatures features, out ulong attrs);
    /// <summary>pt_attr_from_entry.</summary>
    public abstract ulong AttrFromEntry(ulong pte);
    /// <summary>Leaf permissions as hardware reads them.</summary>
    public abstract IommuProt LeafPermissions(ulong pte);
    /// <summary>pt_entry_is_write_dirty of the entry holding item <paramref name="index"/> of a table.</summary>
    public abstract bool IsWriteDirty(ulong[] table, int index, int level);
    /// <summary>pt_entry_make_write_clean of the entry holding item <paramref name="index"/>.</summary>
    public abstract void MakeWriteClean(ulong[] table, int index, int level);
    /// <summary>pt_entry_make_write_dirty: compare-and-swap item <paramref name="index"/> from <paramref name="expected"/> to dirty.</summary>
    public abstract bool MakeWriteDirty(ulong[] table, int index, ulong expected);

    private sealed class FormatOps<TFmt> : PtFormatOps where TFmt : struct, IPtFormat
    {
        public static readonly FormatOps<TFmt> Instance = new();
        public override PtFormatKind Kind => TFmt.Kind;
        public override string Name => TFmt.Name;
        public override int MaxVaLg2 => TFmt.MaxVaLg2;
        public override int MaxOaLg2 => TFmt.MaxOaLg2;
        public override int MaxTopLevel => TFmt.MaxTopLevel;
        public override PtFeatures SupportedFeatures => TFmt.SupportedFeatures;
        public override bool HasDirty => TFmt.HasDirty;
        public override ulong DirtyBit => TFmt.DirtyBit;
        public override bool CanHaveLeaf(int level) => TFmt.CanHaveLeaf(level);
        public override ulong PossibleSizes(int level, PtFeatures features) => TFmt.PossibleSizes(level, features);
        public override PtEntryType Load(ulong pte, int level) => TFmt.Load(pte, level);
        public override int NumContigLg2(ulong pte, int level) => TFmt.NumContigLg2(pte, level);
        public override ulong EntryOa(ulong pte, int level) => TFmt.EntryOa(pte, level);
        public override ulong TablePa(ulong pte) => TFmt.TablePa(pte);
        public override ulong MakeTable(ulong tablePa, int level, PtFeatures features) => TFmt.MakeTable(tablePa, level, features);
        public override ulong MakeLeaf(ulong oa, int level, int sizeLg2, ulong attrs) => TFmt.MakeLeaf(oa, level, sizeLg2, attrs);
        public override Errno SetProt(IommuProt prot, PtFeatures features, out ulong attrs) => TFmt.SetProt(prot, features, out attrs);
        public override ulong AttrFromEntry(ulong pte) => TFmt.AttrFromEntry(pte);
        public override IommuProt LeafPermissions(ulong pte) => TFmt.LeafPermissions(pte);
        public override bool IsWriteDirty(ulong[] table, int index, int level) => PtDirty<TFmt>.IsWriteDirty(table, index, level);
        public override void MakeWriteClean(ulong[] table, int index, int level) => PtDirty<TFmt>.MakeWriteClean(table, index, level);
        public override bool MakeWriteDirty(ulong[] table, int index, ulong expected) => PtDirty<TFmt>.MakeWriteDirty(table, index, expected);
    }
}
