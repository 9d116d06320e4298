using System.Runtime.CompilerServices;
using PtActors.Engine.Formats;

namespace PtActors.Engine;

/// <summary>
/// The generic page table (iommu_pt.h) over one format. Every walk is written once here; the format
/// only decodes and encodes items. Walk state lives in fields: a domain has one owner at a time.
/// </summary>
internal sealed partial class PageTable<TFmt> : IommuDomain where TFmt : struct, IPtFormat
{
    private const int NumItems = PtGeometry.NumItems;

    private bool _dynamicTop;
    private bool _signExtend;

    // Walk state of the operation in progress.
    private ulong _last;
    private int _rTop;      // top level of the range being walked
    private int _rMax;      // max_vasz_lg2 of that range
    private ulong _unmapped;
    private ulong _oa;
    private ulong _attrs;
    private int _leafLg2;
    private int _leafLevel;
    private IotlbGather? _walkGather;
    private IDirtySink? _dirtySink;
    private bool _dirtyNoClear;

    private readonly PageList _freeList = new();
    private readonly PageList _collect = new();
    private readonly IotlbGather _mapGather = new();
    private readonly IotlbGather _dirtyGather = new();

    public PageTable(TableMemory memory, in PtConfig config) : base(memory, config)
    {
    }

    public override PtFormatKind Format => TFmt.Kind;

    public override string FormatName => TFmt.Name;

    public override VaRange TopRange
    {
        get
        {
            int max = TopRangeMax(TopLevel);
            int bits = _signExtend ? max - 1 : max;
            return new VaRange(0, Log2.ToMaxInt(bits));
        }
    }

    public override VaRange? UpperRange
    {
        get
        {
            if (!_signExtend)
                return null;
            int max = TopRangeMax(TopLevel);
            return new VaRange(Log2.SetMod(ulong.MaxValue, 0, max - 1), ulong.MaxValue);
        }
    }

    public override int TopRangeVaszLg2 => TopRangeMax(TopLevel);

    // ---------------------------------------------------------------- init

    private protected override Errno Init()
    {
        var err = InitState();
        if (err != Errno.None)
            return err;
        int page = AllocTable();
        if (page < 0)
            return Errno.ENOMEM;
        TopPage = page;
        return Errno.None;
    }

    private protected override Errno InitState()
    {
        var cfg = Config;
        if (cfg.HwMaxVaszLg2 > TFmt.MaxVaLg2 || cfg.HwMaxVaszLg2 <= 0 || cfg.HwMaxOaszLg2 <= 0)
            return Errno.EINVAL;

        var features = cfg.Features;
        var err = TFmt.FormatInit(cfg, features, out int top, out int maxVasz, out int maxOasz);
        if (err != Errno.None)
            return err;
        if (cfg.HwMaxOaszLg2 > TFmt.MaxOaLg2)
            return Errno.EINVAL;

        // pt_init_common, as the kunit (CONFIG_DEBUG_GENERIC_PT) build compiles it: every generic feature
        // is supported but DMA_INCOHERENT (unless the format has it) and SIGN_EXTEND (unless the format has
        // it, in which case DYNAMIC_TOP and FULL_VA are not); format-private bits only of this format.
        const PtFeatures generic = PtFeatures.DmaIncoherent | PtFeatures.FullVa | PtFeatures.DynamicTop
            | PtFeatures.SignExtend | PtFeatures.FlushRange | PtFeatures.FlushRangeNoGaps;
        var orig = TFmt.SupportedFeatures;
        var supported = generic | (orig & ~generic);
        if ((orig & PtFeatures.DmaIncoherent) == 0)
            supported &= ~PtFeatures.DmaIncoherent;
        supported &= (orig & PtFeatures.SignExtend) != 0
            ? ~(PtFeatures.DynamicTop | PtFeatures.FullVa)
            : ~PtFeatures.SignExtend;

        MaxVaszLg2 = maxVasz;
        TopLevel = top;
        Features = features | TFmt.ForcedFeatures;
        _dynamicTop = HasFeature(PtFeatures.DynamicTop);
        _signExtend = HasFeature(PtFeatures.SignExtend);

        int topMax = TopRangeMax(top);
        if (top == TFmt.MaxTopLevel || maxVasz == topMax)
            Features &= ~PtFeatures.DynamicTop | TFmt.ForcedFeatures;
        if (topMax == 64)
            Features |= PtFeatures.FullVa;
        if ((Features & ~TFmt.ForcedFeatures & ~supported) != 0)
            return Errno.EOPNOTSUPP;
        _dynamicTop = HasFeature(PtFeatures.DynamicTop);
        if (!_dynamicTop && top != TFmt.MaxTopLevel && maxVasz > PtGeometry.NumItemsLg2 + PtGeometry.ItemLg2(top))
            return Errno.EOPNOTSUPP;
        MaxOaszLg2 = Math.Min(maxOasz == 0 ? TFmt.MaxOaLg2 : maxOasz, TFmt.MaxOaLg2);
        if (_signExtend && (HasFeature(PtFeatures.FullVa) || _dynamicTop))
            return Errno.EINVAL;

        PgsizeBitmap = ComputePgsizeBitmap();
        return Errno.None;
    }

    /// <summary>get_info as first merged (without the later vasz fix): see SCRIPT-FORMAT reading 4.</summary>
    private ulong ComputePgsizeBitmap()
    {
        ulong bitmap = 0;
        if (_dynamicTop)
        {
            for (int level = 0; level <= TFmt.MaxTopLevel; level++)
            {
                if (PtGeometry.ItemLg2(level) >= MaxVaszLg2)
                    break;
                bitmap |= TFmt.PossibleSizes(level, Features);
            }
        }
        else
        {
            for (int level = 0; level <= TopLevel; level++)
                bitmap |= TFmt.PossibleSizes(level, Features);
        }
        return Log2.Mod(bitmap, MaxOaszLg2);
    }

    // ---------------------------------------------------------------- ranges and indexes

    /// <summary>max_vasz_lg2 of the top range of a table whose top is at <paramref name="level"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int TopRangeMax(int level)
        => _dynamicTop && level != TFmt.MaxTopLevel
            ? Math.Min(MaxVaszLg2, PtGeometry.NumItemsLg2 + PtGeometry.ItemLg2(level))
            : MaxVaszLg2;

    /// <summary>pt_check_range, including its literal sign-extension prefix check.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private Errno CheckRange(ulong va, ulong last, int max)
    {
        if (max >= 64)
            return Errno.None;
        ulong prefix = _signExtend ? ((va >> (max - 1)) != 0 ? ulong.MaxValue : 0) : 0;
        ulong want = prefix >> max;
        return (va >> max) != want || (last >> max) != want ? Errno.ERANGE : Errno.None;
    }

    /// <summary>make_range: len 0 → EINVAL, wrap → EOVERFLOW, outside the top range → ERANGE.</summary>
    private Errno MakeRange(ulong iova, ulong len, out ulong last)
    {
        last = 0;
        if (len == 0)
            return Errno.EINVAL;
        last = iova + (len - 1);
        if (last < iova)
            return Errno.EOVERFLOW;
        return CheckRange(iova, last, TopRangeMax(TopLevel));
    }

    private void BeginWalk(ulong last)
    {
        _last = last;
        _rTop = TopLevel;
        _rMax = TopRangeMax(TopLevel);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int FirstIndex(int level, ulong va)
    {
        int isz = PtGeometry.ItemLg2(level);
        return level == _rTop
            ? (int)(Log2.Mod(va, _rMax) >> isz)
            : (int)((va >> isz) & (NumItems - 1));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int EndIndex(int level, ulong va, int index)
    {
        ulong last = _last;
        if (va == last)
            return index + 1;
        int isz = PtGeometry.ItemLg2(level);
        if (level == _rTop)
            return (int)(Log2.Mod(last, _rMax) >> isz) + 1;
        if (((va ^ last) >> (isz + PtGeometry.NumItemsLg2)) == 0)
            return (int)((last >> isz) & (NumItems - 1)) + 1;
        return NumItems;
    }

    /// <summary>pt_index_to_va: the VA of item <paramref name="index"/> of the table <paramref name="va"/> lies in.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong IndexToVa(int level, ulong va, int index)
    {
        int isz = PtGeometry.ItemLg2(level);
        int tableLg2 = level == _rTop ? _rMax : Math.Min(MaxVaszLg2, isz + PtGeometry.NumItemsLg2);
        return Log2.SetMod(va, (ulong)index << isz, tableLg2);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int ChildPage(ulong pte) => Memory.PaToPage(TFmt.TablePa(pte));

    /// <summary>pt_entry_fully_covered for an item of 2^<paramref name="lg2"/> bytes at <paramref name="va"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool FullyCovered(ulong va, int lg2)
    {
        if (Log2.Mod(va, lg2) != 0)
            return false;
        if (!Log2.DivEq(va, _last, lg2))
            return true;
        return Log2.ModEqMax(_last, lg2);
    }
}
