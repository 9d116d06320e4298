using System.Runtime.CompilerServices;

namespace PtActors.Engine.Formats;

/// <summary>
/// AMD IOMMU v1 host page table ("AMD I/O Virtualization Technology (IOMMU) Specification" §2.2.3).
/// Six levels (mode = level + 1); the top level holds only tables. Every power-of-two size from 4 KiB
/// to 2 PiB but 512 GiB is a leaf: sizes above a level's item size are contiguous entries whose
/// NEXT_LEVEL is 7 and whose OA field carries a run of ones that encodes the size.
/// </summary>
public readonly struct Amdv1Format : IPtFormat
{
    /// <summary>Present.</summary>
    public const ulong PR = 1UL << 0;
    /// <summary>Dirty.</summary>
    public const ulong D = 1UL << 6;
    /// <summary>NEXT_LEVEL field, bits 11:9.</summary>
    public const ulong NextLevelMask = 7UL << 9;
    /// <summary>Output address field, bits 51:12.</summary>
    public const ulong OaMask = 0x000f_ffff_ffff_f000;
    /// <summary>Force coherent.</summary>
    public const ulong FC = 1UL << 60;
    /// <summary>Read permission.</summary>
    public const ulong IR = 1UL << 61;
    /// <summary>Write permission.</summary>
    public const ulong IW = 1UL << 62;
    private const int NlDefault = 0;
    private const int NlSize = 7;

    /// <inheritdoc/>
    public static PtFormatKind Kind => PtFormatKind.Amdv1;
    /// <inheritdoc/>
    public static string Name => "amdv1";
    /// <inheritdoc/>
    public static int MaxVaLg2 => 64;
    /// <inheritdoc/>
    public static int MaxOaLg2 => 52;
    /// <inheritdoc/>
    public static int MaxTopLevel => 5;
    /// <inheritdoc/>
    public static PtFeatures SupportedFeatures => PtFeatures.FullVa | PtFeatures.DynamicTop | PtFeatures.FlushRange
        | PtFeatures.FlushRangeNoGaps | PtFeatures.Amdv1EncryptTables | PtFeatures.Amdv1ForceCoherence;
    /// <inheritdoc/>
    public static PtFeatures ForcedFeatures => PtFeatures.DynamicTop | PtFeatures.Amdv1EncryptTables
        | PtFeatures.Amdv1ForceCoherence;

    /// <inheritdoc/>
    public static Errno FormatInit(in PtConfig cfg, PtFeatures features, out int topLevel, out int maxVaszLg2, out int maxOaszLg2)
    {
        topLevel = maxVaszLg2 = maxOaszLg2 = 0;
        if (cfg.StartingLevel <= 0 || cfg.StartingLevel > 5)
            return Errno.EINVAL;
        // DYNAMIC_TOP is forced, so pt_feature() is always true and max_vasz stays the maximum.
        maxVaszLg2 = Math.Min(MaxVaLg2, cfg.HwMaxVaszLg2);
        maxOaszLg2 = Math.Min(MaxOaLg2, cfg.HwMaxOaszLg2);
        topLevel = cfg.StartingLevel;
        return Errno.None;
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool CanHaveLeaf(int level) => level < 5;

    /// <inheritdoc/>
    public static ulong PossibleSizes(int level, PtFeatures features)
    {
        if (!CanHaveLeaf(level))
            return 0;
        int isz = PtGeometry.ItemLg2(level);
        return Log2.GenMask(Math.Min(51, isz + PtGeometry.NumItemsLg2 - 1), isz) & ~(1UL << 39);
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static PtEntryType Load(ulong pte, int level)
    {
        if ((pte & PR) == 0)
            return PtEntryType.Empty;
        int nl = (int)((pte >> 9) & 7);
        return level == 0 || nl == NlDefault || nl == NlSize ? PtEntryType.Oa : PtEntryType.Table;
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int NumContigLg2(ulong pte, int level)
    {
        if (((pte >> 9) & 7) == NlDefault)
            return 0;
        uint code = (uint)(pte >> (12 - 1 + PtGeometry.ItemLg2(level) - PtGeometry.GranuleLg2));
        return Log2.Ffz(code);
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong EntryOa(ulong pte, int level)
    {
        ulong oa = (pte & OaMask) >> 12;
        if (((pte >> 9) & 7) == NlSize)
            oa = Log2.SetMod(oa, 0, Log2.Ffz(oa));
        return oa << 12;
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong TablePa(ulong pte) => pte & OaMask;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong MakeTable(ulong tablePa, int level, PtFeatures features)
        => PR | ((ulong)level << 9) | (tablePa & OaMask) | IR | IW;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong MakeLeaf(ulong oa, int level, int sizeLg2, ulong attrs)
    {
        ulong entry = PR | (oa & OaMask) | attrs;
        if (sizeLg2 != PtGeometry.ItemLg2(level))
            entry |= ((ulong)NlSize << 9) | (((1UL << (sizeLg2 - PtGeometry.GranuleLg2 - 1)) - 1) << 12);
        return entry;
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Errno SetProt(IommuProt prot, PtFeatures features, out ulong attrs)
    {
        // FORCE_COHERENCE is a forced feature: FC is always set. Memory encryption (SME) is not modelled.
        ulong pte = FC;
        if ((prot & IommuProt.Read) != 0)
            pte |= IR;
        if ((prot & IommuProt.Write) != 0)
            pte |= IW;
        attrs = pte;
        return Errno.None;
    }

    /// <inheritdoc/>
    public static ulong AttrFromEntry(ulong pte) => pte & (FC | IR | IW);

    /// <inheritdoc/>
    public static IommuProt LeafPermissions(ulong pte)
        => ((pte & IR) != 0 ? IommuProt.Read : 0) | ((pte & IW) != 0 ? IommuProt.Write : 0);

    /// <inheritdoc/>
    public static bool HasDirty => true;

    /// <inheritdoc/>
    public static ulong DirtyBit => D;

    /// <inheritdoc/>
    public static ulong AccessedDirtyMask => D;
}
