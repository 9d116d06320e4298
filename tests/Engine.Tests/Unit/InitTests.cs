using Xunit;

namespace PtActors.Engine.Tests.Unit;

/// <summary>
/// IommuDomain.Create (pt_iommu_&lt;fmt&gt;_init, SPEC §1.10, §4) with the errors of SCRIPT-FORMAT's
/// <c>domain</c> command, the pgsize bitmaps of Reading 4, and the top levels and ranges.
/// </summary>
public class InitTests
{
    private static Errno TryCreate(PtConfig cfg, out IommuDomain? d, out TableMemory mem)
    {
        mem = new TableMemory();
        return IommuDomain.Create(cfg, mem, out d);
    }

    private static void AssertFails(PtConfig cfg, Errno expected)
    {
        Assert.Equal(expected, TryCreate(cfg, out var d, out var mem));
        Assert.Null(d);
        Assert.Equal(0, mem.AllocatedPages);
    }

    private static PtConfig Cfg(PtFormatKind kind, int? vasz = null, int? oasz = null, int? level = null)
    {
        var c = PtConfig.Default(kind);
        if (vasz is { } v)
            c = c with { HwMaxVaszLg2 = v };
        if (oasz is { } o)
            c = c with { HwMaxOaszLg2 = o };
        if (level is { } l)
            c = c with { StartingLevel = l };
        return c;
    }

    [Fact]
    public void Defaults_MatchTheScriptDomainLine()
    {
        Assert.Equal(new PtConfig(PtFormatKind.Amdv1, 64, 52, PtFeatures.FlushRange, 2), PtConfig.Default(PtFormatKind.Amdv1));
        Assert.Equal(new PtConfig(PtFormatKind.X86_64, 48, 52, PtFeatures.FlushRange | PtFeatures.SignExtend),
            PtConfig.Default(PtFormatKind.X86_64));
        Assert.Equal(new PtConfig(PtFormatKind.Vtdss, 48, 52, PtFeatures.FlushRange), PtConfig.Default(PtFormatKind.Vtdss));
        Assert.Equal(new PtConfig(PtFormatKind.Riscv64, 39, 56,
            PtFeatures.FlushRange | PtFeatures.SignExtend | PtFeatures.RiscvSvnapot64K), PtConfig.Default(PtFormatKind.Riscv64));
    }

    [Theory]
    [InlineData(PtFormatKind.Amdv1, 64, 52)]
    [InlineData(PtFormatKind.X86_64, 57, 52)]
    [InlineData(PtFormatKind.Vtdss, 57, 52)]
    [InlineData(PtFormatKind.Riscv64, 57, 56)]
    public void VaszOrOaszZeroOrAboveMax_IsEinval(PtFormatKind kind, int maxVa, int maxOa)
    {
        AssertFails(Cfg(kind, vasz: 0), Errno.EINVAL);
        AssertFails(Cfg(kind, oasz: 0), Errno.EINVAL);
        AssertFails(Cfg(kind, vasz: maxVa + 1), Errno.EINVAL);
        AssertFails(Cfg(kind, oasz: maxOa + 1), Errno.EINVAL);
        AssertFails(Cfg(kind, vasz: maxVa + 1, oasz: maxOa + 1), Errno.EINVAL);
        AssertFails(Cfg(kind, oasz: 64), Errno.EINVAL);
        // The maxima themselves are accepted.
        Assert.Equal(Errno.None, TryCreate(Cfg(kind, vasz: maxVa, oasz: maxOa), out var d, out var mem));
        Assert.NotNull(d);
        Assert.Equal(1, mem.AllocatedPages);
        Assert.Equal(1, d!.TablePages);
        Assert.Equal(maxOa, d.MaxOaszLg2);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(6)]
    [InlineData(-1)]
    [InlineData(7)]
    public void Amdv1_LevelOutside1To5_IsEinval(int level) => AssertFails(Cfg(PtFormatKind.Amdv1, level: level), Errno.EINVAL);

    [Theory]
    [InlineData(1, 30)]
    [InlineData(2, 39)]
    [InlineData(3, 48)]
    [InlineData(4, 57)]
    [InlineData(5, 64)]
    public void Amdv1_Levels1To5_TopRangeFollowsTheLevel(int level, int topVasz)
    {
        var d = UnitHelpers.Make(Cfg(PtFormatKind.Amdv1, level: level));
        Assert.Equal(level, d.TopLevel);
        Assert.Equal(topVasz, d.TopRangeVaszLg2);
        Assert.Equal(new VaRange(0, Log2.ToMaxInt(topVasz)), d.TopRange);
        Assert.Null(d.UpperRange);
        Assert.Equal(64, d.MaxVaszLg2);
        Assert.True(d.HasFeature(PtFeatures.DynamicTop)); // forced
        Assert.Equal(topVasz == 64, d.HasFeature(PtFeatures.FullVa));
        Assert.Equal(0xf_ff7f_ffff_f000UL, d.PgsizeBitmap);
    }

    [Theory]
    [InlineData(30)]
    [InlineData(1)]
    [InlineData(20)]
    public void X86_64_VaszBelow31_IsEinval(int vasz) => AssertFails(Cfg(PtFormatKind.X86_64, vasz: vasz), Errno.EINVAL);

    [Theory]
    [InlineData(30)]
    [InlineData(1)]
    [InlineData(12)]
    public void Vtdss_VaszAtMost30_IsEopnotsupp(int vasz) => AssertFails(Cfg(PtFormatKind.Vtdss, vasz: vasz), Errno.EOPNOTSUPP);

    [Fact]
    public void Vtdss_FormatInitRunsBeforeTheOaszCheck()
    {
        // §1.10: step 4 (format init) precedes step 5 (oasz above the format's maximum).
        AssertFails(Cfg(PtFormatKind.Vtdss, vasz: 30, oasz: 53), Errno.EOPNOTSUPP);
        AssertFails(Cfg(PtFormatKind.Vtdss, vasz: 31, oasz: 53), Errno.EINVAL);
    }

    [Theory]
    [InlineData(38)]
    [InlineData(40)]
    [InlineData(47)]
    [InlineData(49)]
    [InlineData(56)]
    [InlineData(31)]
    public void Riscv64_VaszNot39_48_57_IsEinval(int vasz) => AssertFails(Cfg(PtFormatKind.Riscv64, vasz: vasz), Errno.EINVAL);

    [Theory]
    [InlineData(PtFormatKind.Amdv1)]
    [InlineData(PtFormatKind.X86_64)]
    [InlineData(PtFormatKind.Vtdss)]
    [InlineData(PtFormatKind.Riscv64)]
    public void EveryFlushSetting_IsAcceptedByEveryFormat(PtFormatKind kind)
    {
        var flushes = new[]
        {
            PtFeatures.None, PtFeatures.FlushRange, PtFeatures.FlushRangeNoGaps,
            PtFeatures.FlushRange | PtFeatures.FlushRangeNoGaps,
        };
        foreach (var flush in flushes)
        {
            var basic = PtConfig.Default(kind);
            var cfg = basic with { Features = (basic.Features & ~(PtFeatures.FlushRange | PtFeatures.FlushRangeNoGaps)) | flush };
            var d = UnitHelpers.Make(cfg);
            Assert.Equal(flush, d.Features & (PtFeatures.FlushRange | PtFeatures.FlushRangeNoGaps));
        }
    }

    [Fact]
    public void UnsupportedFeatures_AreEopnotsupp_AfterDynamicTopIsCleared()
    {
        // Debug-build feature set (§1.3): a SIGN_EXTEND format loses DYNAMIC_TOP and FULL_VA; amdv1 has no SIGN_EXTEND.
        // x86_64 asking for DYNAMIC_TOP: pt_init_common clears it first (the top range already spans max_vasz),
        // so nothing unsupported is left and init succeeds without it.
        var x = UnitHelpers.Make(PtConfig.Default(PtFormatKind.X86_64) with { Features = PtFeatures.SignExtend | PtFeatures.DynamicTop });
        Assert.False(x.HasFeature(PtFeatures.DynamicTop));
        AssertFails(PtConfig.Default(PtFormatKind.Riscv64) with { Features = PtFeatures.SignExtend | PtFeatures.FullVa }, Errno.EOPNOTSUPP);
        AssertFails(PtConfig.Default(PtFormatKind.Amdv1) with { Features = PtFeatures.SignExtend }, Errno.EOPNOTSUPP);
    }

    [Theory]
    // Reading 4 (as first merged, without 04f1f4bf).
    [InlineData(PtFormatKind.Amdv1, 0, 0, 0, 0xf_ff7f_ffff_f000UL)]
    [InlineData(PtFormatKind.Amdv1, 48, 0, 0, 0xff7f_ffff_f000UL)]
    [InlineData(PtFormatKind.Amdv1, 0, 40, 0, 0x7f_ffff_f000UL)]
    [InlineData(PtFormatKind.Amdv1, 48, 0, 4, 0xff7f_ffff_f000UL)]
    [InlineData(PtFormatKind.Amdv1, 32, 0, 0, 0x7f_ffff_f000UL)]
    [InlineData(PtFormatKind.Amdv1, 0, 0, 5, 0xf_ff7f_ffff_f000UL)]
    [InlineData(PtFormatKind.X86_64, 0, 0, 0, 0x4020_1000UL)]
    [InlineData(PtFormatKind.X86_64, 57, 0, 0, 0x4020_1000UL)]
    [InlineData(PtFormatKind.X86_64, 31, 0, 0, 0x4020_1000UL)]
    [InlineData(PtFormatKind.X86_64, 0, 30, 0, 0x20_1000UL)]
    [InlineData(PtFormatKind.Vtdss, 0, 0, 0, 0x4020_1000UL)]
    [InlineData(PtFormatKind.Vtdss, 39, 0, 0, 0x4020_1000UL)]
    [InlineData(PtFormatKind.Vtdss, 57, 0, 0, 0x4020_1000UL)]
    [InlineData(PtFormatKind.Riscv64, 0, 0, 0, 0x4021_1000UL)]
    [InlineData(PtFormatKind.Riscv64, 48, 0, 0, 0x80_4021_1000UL)]
    [InlineData(PtFormatKind.Riscv64, 57, 0, 0, 0x1_0080_4021_1000UL)]
    public void PgsizeBitmaps(PtFormatKind kind, int vasz, int oasz, int level, ulong expected)
    {
        var cfg = Cfg(kind, vasz: vasz == 0 ? null : vasz, oasz: oasz == 0 ? null : oasz, level: level == 0 ? null : level);
        Assert.Equal(expected, UnitHelpers.Make(cfg).PgsizeBitmap);
    }

    [Fact]
    public void Riscv64_WithoutNapot_Sv48Bitmap()
    {
        var cfg = Cfg(PtFormatKind.Riscv64, vasz: 48) with { Features = PtFeatures.FlushRange | PtFeatures.SignExtend };
        Assert.Equal(0x80_4020_1000UL, UnitHelpers.Make(cfg).PgsizeBitmap);
    }

    [Theory]
    // format, vasz, sign-extend, top level, top range last, upper range start (0 = none)
    [InlineData(PtFormatKind.X86_64, 48, true, 3, 0x7fff_ffff_ffffUL, 0xffff_8000_0000_0000UL)]
    [InlineData(PtFormatKind.X86_64, 57, true, 4, 0xff_ffff_ffff_ffffUL, 0xff00_0000_0000_0000UL)]
    [InlineData(PtFormatKind.X86_64, 47, false, 3, 0x7fff_ffff_ffffUL, 0UL)]
    [InlineData(PtFormatKind.X86_64, 56, false, 4, 0xff_ffff_ffff_ffffUL, 0UL)]
    [InlineData(PtFormatKind.X86_64, 48, false, 3, 0xffff_ffff_ffffUL, 0UL)]
    [InlineData(PtFormatKind.X86_64, 31, false, 2, 0x7fff_ffffUL, 0UL)]
    [InlineData(PtFormatKind.X86_64, 39, false, 2, 0x7f_ffff_ffffUL, 0UL)]
    [InlineData(PtFormatKind.X86_64, 40, false, 3, 0xff_ffff_ffffUL, 0UL)]
    [InlineData(PtFormatKind.Vtdss, 48, false, 3, 0xffff_ffff_ffffUL, 0UL)]
    [InlineData(PtFormatKind.Vtdss, 31, false, 2, 0x7fff_ffffUL, 0UL)]
    [InlineData(PtFormatKind.Vtdss, 39, false, 2, 0x7f_ffff_ffffUL, 0UL)]
    [InlineData(PtFormatKind.Vtdss, 40, false, 3, 0xff_ffff_ffffUL, 0UL)]
    [InlineData(PtFormatKind.Vtdss, 49, false, 4, 0x1_ffff_ffff_ffffUL, 0UL)]
    [InlineData(PtFormatKind.Vtdss, 57, false, 4, 0x1ff_ffff_ffff_ffffUL, 0UL)]
    [InlineData(PtFormatKind.Riscv64, 39, true, 2, 0x3f_ffff_ffffUL, 0xffff_ffc0_0000_0000UL)]
    [InlineData(PtFormatKind.Riscv64, 48, true, 3, 0x7fff_ffff_ffffUL, 0xffff_8000_0000_0000UL)]
    [InlineData(PtFormatKind.Riscv64, 57, true, 4, 0xff_ffff_ffff_ffffUL, 0xff00_0000_0000_0000UL)]
    [InlineData(PtFormatKind.Riscv64, 39, false, 2, 0x7f_ffff_ffffUL, 0UL)]
    public void TopLevelsAndRanges(PtFormatKind kind, int vasz, bool signExtend, int top, ulong last, ulong upper)
    {
        var basic = Cfg(kind, vasz: vasz);
        var features = signExtend ? basic.Features | PtFeatures.SignExtend : basic.Features & ~PtFeatures.SignExtend;
        var d = UnitHelpers.Make(basic with { Features = features });
        Assert.Equal(top, d.TopLevel);
        Assert.Equal(new VaRange(0, last), d.TopRange);
        Assert.Equal(vasz, d.MaxVaszLg2);
        Assert.Equal(vasz, d.TopRangeVaszLg2);
        Assert.Equal(signExtend, d.HasFeature(PtFeatures.SignExtend));
        Assert.False(d.HasFeature(PtFeatures.DynamicTop));
        if (upper == 0)
            Assert.Null(d.UpperRange);
        else
            Assert.Equal(new VaRange(upper, ulong.MaxValue), d.UpperRange);
    }

    [Fact]
    public void Amdv1_DefaultTopIsLevel2WithThe39BitRange_AndOasz()
    {
        var d = UnitHelpers.Make(PtFormatKind.Amdv1);
        Assert.Equal(2, d.TopLevel);
        Assert.Equal(new VaRange(0, 0x7f_ffff_ffff), d.TopRange);
        Assert.Equal(64, d.MaxVaszLg2);
        Assert.Equal(52, d.MaxOaszLg2);
        var small = UnitHelpers.Make(Cfg(PtFormatKind.Amdv1, vasz: 32));
        Assert.Equal(2, small.TopLevel);
        Assert.Equal(new VaRange(0, 0xffff_ffff), small.TopRange);
        Assert.Equal(40, UnitHelpers.Make(Cfg(PtFormatKind.X86_64, oasz: 40)).MaxOaszLg2);
    }

    [Theory]
    [InlineData(PtFormatKind.Amdv1)]
    [InlineData(PtFormatKind.X86_64)]
    [InlineData(PtFormatKind.Vtdss)]
    [InlineData(PtFormatKind.Riscv64)]
    public void Create_AllocatesOnlyTheZeroedTopPage_AndDeinitFreesIt(PtFormatKind kind)
    {
        var mem = new TableMemory();
        var d = UnitHelpers.Make(PtConfig.Default(kind), mem);
        Assert.Equal(1, mem.AllocatedPages);
        Assert.Equal(1, d.TablePages);
        Assert.Equal(mem.PageToPa(d.TopPage), d.TopPa);
        Assert.All(mem[d.TopPage], v => Assert.Equal(0UL, v));
        Assert.Empty(UnitHelpers.Leaves(d));
        d.Deinit();
        Assert.Equal(0, mem.AllocatedPages);
    }

    [Fact]
    public void Create_WithoutMemoryForTheTop_IsEnomem()
    {
        var mem = new TableMemory(pageLimit: 0);
        Assert.Equal(Errno.ENOMEM, IommuDomain.Create(PtConfig.Default(PtFormatKind.X86_64), mem, out var d));
        Assert.Null(d);
    }
}
