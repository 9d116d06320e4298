using System.Runtime.CompilerServices;

namespace PtActors.Engine.Formats;

/// <summary>
/// Intel VT-d second-stage page table (VT-d spec §3.7, §9.8). There is no present bit: an item is empty
/// exactly when it is zero. Leaves of 4 KiB, 2 MiB and 1 GiB; dirty tracking through bit 9.
/// </summary>
public readonly struct VtdssFormat : IPtFormat
{
    /// <summary>Read.</summary>
    public const ulong R = 1UL << 0;
    /// <summary>Write.</summary>
    public const ulong W = 1UL << 1;
    /// <summary>Page size (leaf above level 0).</summary>
    public const ulong PS = 1UL << 7;
    /// <summary>Accessed.</summary>
    public const ulong A = 1UL << 8;
    /// <summary>Dirty.</summary>
    public const ulong D = 1UL << 9;
    /// <summary>Snoop.</summary>
    public const ulong SNP = 1UL << 11;
    /// <summary>Output address field, bits 51:12.</summary>
    public const ulong OaMask = 0x000f_ffff_ffff_f000;

    /// <inheritdoc/>
    public static PtFormatKind Kind => PtFormatKind.Vtdss;
    /// <inheritdoc/>
    public static string Name => "vtdss";
    /// <inheritdoc/>
    public static int MaxVaLg2 => 57;
    /// <inheritdoc/>
    public static int MaxOaLg2 => 52;
    /// <inheritdoc/>
    public static int MaxTopLevel => 4;
    /// <inheritdoc/>
    public static PtFeatures SupportedFeatures => PtFeatures.FlushRange | PtFeatures.VtdssForceCoherence
        | PtFeatures.VtdssForceWriteable | PtFeatures.DmaIncoherent;
    /// <inheritdoc/>
    public static PtFeatures ForcedFeatures => PtFeatures.None;

    /// <inheritdoc/>
    public static Errno FormatInit(in PtConfig cfg, PtFeatures features, out int topLevel, out int maxVaszLg2, out int maxOaszLg2)
    {
        topLevel = 0;
        maxVaszLg2 = cfg.HwMaxVaszLg2;
        maxOaszLg2 = Math.Min(MaxOaLg2, cfg.HwMaxOaszLg2);
        int vasz = cfg.HwMaxVaszLg2;
        if (vasz > 57)
            return Errno.EOPNOTSUPP;
        if (vasz > 48)
            topLevel = 4;
        else if (vasz > 39)
            topLevel = 3;
        else if (vasz > 30)
            topLevel = 2;
        else
            return Errno.EOPNOTSUPP;
        return Errno.None;
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool CanHaveLeaf(int level) => level <= 2;

    /// <inheritdoc/>
    public static ulong PossibleSizes(int level, PtFeatures features)
        => CanHaveLeaf(level) ? 1UL << PtGeometry.ItemLg2(level) : 0;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static PtEntryType Load(ulong pte, int level)
    {
        if (pte == 0)
            return PtEntryType.Empty;
        return level == 0 || (level <= 2 && (pte & PS) != 0) ? PtEntryType.Oa : PtEntryType.Table;
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int NumContigLg2(ulong pte, int level) => 0;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong EntryOa(ulong pte, int level) => pte & OaMask;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong TablePa(ulong pte) => pte & OaMask;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong MakeTable(ulong tablePa, int level, PtFeatures features) => R | W | (tablePa & OaMask);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong MakeLeaf(ulong oa, int level, int sizeLg2, ulong attrs)
        => (oa & OaMask) | attrs | (level != 0 ? PS : 0);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Errno SetProt(IommuProt prot, PtFeatures features, out ulong attrs)
    {
        attrs = 0;
        if ((prot & (IommuProt.Read | IommuProt.Write)) == 0)
            return Errno.EINVAL;
        if ((features & PtFeatures.VtdssForceWriteable) != 0 && (prot & IommuProt.Write) == 0)
            return Errno.EINVAL;
        ulong pte = 0;
        if ((prot & IommuProt.Read) != 0)
            pte |= R;
        if ((prot & IommuProt.Write) != 0)
            pte |= W;
        if ((features & PtFeatures.VtdssForceCoherence) != 0)
            pte |= SNP;
        attrs = pte;
        return Errno.None;
    }

    /// <inheritdoc/>
    public static ulong AttrFromEntry(ulong pte) => pte & (R | W | SNP);

    /// <inheritdoc/>
    public static IommuProt LeafPermissions(ulong pte)
        => ((pte & R) != 0 ? IommuProt.Read : 0) | ((pte & W) != 0 ? IommuProt.Write : 0);

    /// <inheritdoc/>
    public static bool HasDirty => true;

    /// <inheritdoc/>
    public static ulong DirtyBit => D;

    /// <inheritdoc/>
    public static ulong AccessedDirtyMask => A | D;
}
