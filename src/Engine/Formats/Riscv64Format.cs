using System.Runtime.CompilerServices;

namespace PtActors.Engine.Formats;

/// <summary>
/// RISC-V Sv39/Sv48/Sv57 as the RISC-V IOMMU uses it, with Svnapot 64 KiB pages (16 contiguous level-0
/// items whose PPN[3:0] reads 1000b and whose N bit is set). Every level can hold a leaf.
/// </summary>
public readonly struct Riscv64Format : IPtFormat
{
    /// <summary>Valid.</summary>
    public const ulong V = 1UL << 0;
    /// <summary>Read.</summary>
    public const ulong R = 1UL << 1;
    /// <summary>Write.</summary>
    public const ulong W = 1UL << 2;
    /// <summary>Execute.</summary>
    public const ulong X = 1UL << 3;
    /// <summary>User.</summary>
    public const ulong U = 1UL << 4;
    /// <summary>Global.</summary>
    public const ulong G = 1UL << 5;
    /// <summary>Accessed.</summary>
    public const ulong A = 1UL << 6;
    /// <summary>Dirty.</summary>
    public const ulong D = 1UL << 7;
    /// <summary>PPN field, bits 53:10.</summary>
    public const ulong PpnMask = 0x003f_ffff_ffff_fc00;
    /// <summary>Svpbmt NC.</summary>
    public const ulong PbmtNc = 1UL << 61;
    /// <summary>Svpbmt IO.</summary>
    public const ulong PbmtIo = 1UL << 62;
    /// <summary>Svnapot.</summary>
    public const ulong N = 1UL << 63;
    private const ulong NapotPpnMask = 0x003f_ffff_ffff_c000; // PPN bits 43:4 (entry bits 53:14)

    /// <inheritdoc/>
    public static PtFormatKind Kind => PtFormatKind.Riscv64;
    /// <inheritdoc/>
    public static string Name => "riscv64";
    /// <inheritdoc/>
    public static int MaxVaLg2 => 57;
    /// <inheritdoc/>
    public static int MaxOaLg2 => 56;
    /// <inheritdoc/>
    public static int MaxTopLevel => 4;
    /// <inheritdoc/>
    public static PtFeatures SupportedFeatures => PtFeatures.SignExtend | PtFeatures.FlushRange
        | PtFeatures.RiscvSvnapot64K;
    /// <inheritdoc/>
    public static PtFeatures ForcedFeatures => PtFeatures.None;

    /// <inheritdoc/>
    public static Errno FormatInit(in PtConfig cfg, PtFeatures features, out int topLevel, out int maxVaszLg2, out int maxOaszLg2)
    {
        maxVaszLg2 = cfg.HwMaxVaszLg2;
        maxOaszLg2 = Math.Min(MaxOaLg2, cfg.HwMaxOaszLg2);
        topLevel = cfg.HwMaxVaszLg2 switch { 39 => 2, 48 => 3, 57 => 4, _ => -1 };
        if (topLevel < 0)
        {
            topLevel = 0;
            return Errno.EINVAL;
        }
        return Errno.None;
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool CanHaveLeaf(int level) => true;

    /// <inheritdoc/>
    public static ulong PossibleSizes(int level, PtFeatures features)
    {
        ulong sizes = 1UL << PtGeometry.ItemLg2(level);
        if (level == 0 && (features & PtFeatures.RiscvSvnapot64K) != 0)
            sizes |= 1UL << 16;
        return sizes;
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static PtEntryType Load(ulong pte, int level)
    {
        if ((pte & V) == 0)
            return PtEntryType.Empty;
        return level == 0 || (pte & (R | W | X)) != 0 ? PtEntryType.Oa : PtEntryType.Table;
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int NumContigLg2(ulong pte, int level) => (pte & N) != 0 ? 4 : 0;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong EntryOa(ulong pte, int level)
        => (pte & N) != 0 ? ((pte & NapotPpnMask) >> 14) << 16 : ((pte & PpnMask) >> 10) << 12;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong TablePa(ulong pte) => ((pte & PpnMask) >> 10) << 12;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong MakeTable(ulong tablePa, int level, PtFeatures features) => V | ((tablePa >> 12) << 10 & PpnMask);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong MakeLeaf(ulong oa, int level, int sizeLg2, ulong attrs)
    {
        ulong entry = V | (((oa >> 12) << 10) & PpnMask) | attrs;
        if (sizeLg2 != PtGeometry.ItemLg2(level))
            entry |= N | (1UL << 13);
        return entry;
    }

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Errno SetProt(IommuProt prot, PtFeatures features, out ulong attrs)
    {
        ulong pte = A | U;
        if ((prot & IommuProt.Write) != 0)
            pte |= W | R | D;
        if ((prot & IommuProt.Read) != 0)
            pte |= R;
        if ((prot & IommuProt.NoExec) == 0)
            pte |= X;
        attrs = pte;
        return (pte & (R | W | X)) == 0 ? Errno.EOPNOTSUPP : Errno.None;
    }

    /// <inheritdoc/>
    public static ulong AttrFromEntry(ulong pte) => pte & (R | W | X | U | G | A | D | PbmtNc | PbmtIo);

    /// <inheritdoc/>
    public static IommuProt LeafPermissions(ulong pte)
        => ((pte & R) != 0 ? IommuProt.Read : 0) | ((pte & W) != 0 ? IommuProt.Write : 0);

    /// <inheritdoc/>
    public static bool HasDirty => false;

    /// <inheritdoc/>
    public static ulong DirtyBit => D;

    /// <inheritdoc/>
    public static ulong AccessedDirtyMask => A | D;
}
