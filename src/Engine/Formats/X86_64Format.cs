using System.Runtime.CompilerServices;

namespace PtActors.Engine.Formats;

/// <summary>
/// x86 4- and 5-level paging as the VT-d first stage and AMD v2 tables use it (Intel SDM §4.4).
/// Leaves of 4 KiB, 2 MiB and 1 GiB, no contiguous entries, optional sign extension.
/// </summary>
public readonly struct X86_64Format : IPtFormat
{
    /// <summary>Present.</summary>
    public const ulong P = 1UL << 0;
    /// <summary>Read/write.</summary>
    public const ulong RW = 1UL << 1;
    /// <summary>User.</summary>
    public const ulong U = 1UL << 2;
    /// <summary>Accessed.</summary>
    public const ulong A = 1UL << 5;
    /// <summary>Dirty.</summary>
    public const ulong D = 1UL << 6;
    /// <summary>Page size (leaf above level 0).</summary>
    public const ulong PS = 1UL << 7;
    /// <summary>Output address field, bits 51:12.</summary>
    public const ulong OaMask = 0x000f_ffff_ffff_f000;
    /// <summary>Execute disable.</summary>
    public const ulong XD = 1UL << 63;

    /// <inheritdoc/>
    public static PtFormatKind Kind => PtFormatKind.X86_64;
    /// <inheritdoc/>
    public static string Name => "x86_64";
    /// <inheritdoc/>
    public static int MaxVaLg2 => 57;
    /// <inheritdoc/>
    public static int MaxOaLg2 => 52;
    /// <inheritdoc/>
    public static int MaxTopLevel => 4;
    /// <inheritdoc/>
    public static PtFeatures SupportedFeatures => PtFeatures.SignExtend | PtFeatures.FlushRange
        | PtFeatures.FlushRangeNoGaps | PtFeatures.X86_64AmdEncryptTables;
    /// <inheritdoc/>
    public static PtFeatures ForcedFeatures => PtFeatures.None;

    /// <inheritdoc/>
    public static Errno FormatInit(in PtConfig cfg, PtFeatures features, out int topLevel, out int maxVaszLg2, out int maxOaszLg2)
    {
        topLevel = 0;
        maxVaszLg2 = cfg.HwMaxVaszLg2;
        maxOaszLg2 = Math.Min(MaxOaLg2, cfg.HwMaxOaszLg2);
        if (cfg.HwMaxVaszLg2 < 31 || cfg.HwMaxVaszLg2 > 57)
            return Errno.EINVAL;
        topLevel = (cfg.HwMaxVaszLg2 - 31) / 9 + 2;
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
        if ((pte & P) == 0)
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
    public static ulong MakeTable(ulong tablePa, int level, PtFeatures features)
        => P | RW | U | A | (tablePa & OaMask);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong MakeLeaf(ulong oa, int level, int sizeLg2, ulong attrs)
        => P | (oa & OaMask) | attrs | (level != 0 ? PS : 0);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Errno SetProt(IommuProt prot, PtFeatures features, out ulong attrs)
    {
        ulong pte = U | A;
        if ((prot & IommuProt.Write) != 0)
            pte |= RW | D;
        attrs = pte;
        return Errno.None;
    }

    /// <inheritdoc/>
    public static ulong AttrFromEntry(ulong pte) => pte & (RW | U | A | D | XD);

    /// <inheritdoc/>
    public static IommuProt LeafPermissions(ulong pte)
        => IommuProt.Read | ((pte & RW) != 0 ? IommuProt.Write : 0);

    /// <inheritdoc/>
    public static bool HasDirty => false;

    /// <inheritdoc/>
    public static ulong DirtyBit => D;

    /// <inheritdoc/>
    public static ulong AccessedDirtyMask => A | D;
}
