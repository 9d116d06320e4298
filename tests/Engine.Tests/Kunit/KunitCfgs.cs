using PtActors.Engine.Formats;
using Xunit;

namespace PtActors.Engine.Tests.Kunit;

/// <summary>
/// The kunit_fmt_cfgs of each format (SPEC §4, §5.0), named as kunit names its parameters
/// (<c>&lt;fmt&gt;_cfg_&lt;n&gt;</c>). The kunit harness (a CONFIG_DEBUG_GENERIC_PT build) ORs every supported
/// feature the cfg does not control into the cfg's own ones; here that is FLUSH_RANGE | FLUSH_RANGE_NO_GAPS
/// (amdv1's DYNAMIC_TOP and its other forced bits come from the format). hw_max_vasz/oasz default to the
/// format maximum unless the cfg sets them.
/// </summary>
public static class KunitCfgs
{
    private const PtFeatures Harness = PtFeatures.FlushRange | PtFeatures.FlushRangeNoGaps;

    private static readonly (string Name, PtConfig Cfg)[] Table =
    [
        // fmt/amdv1.h: [0] = { .starting_level = 2 } ("Matches what io_pgtable does"),
        // [1] = { .starting_level = 2, .common.hw_max_vasz_lg2 = 32 } (added with the later small-VA fixes).
        ("amdv1_cfg_0", new(PtFormatKind.Amdv1, 64, 52, Harness, StartingLevel: 2)),
        ("amdv1_cfg_1", new(PtFormatKind.Amdv1, 32, 52, Harness, StartingLevel: 2)),

        // fmt/x86_64.h: KUNIT_FMT_FEATURES = SIGN_EXTEND, so only [0] and [1] sign extend.
        ("x86_64_cfg_0", new(PtFormatKind.X86_64, 48, 52, Harness | PtFeatures.SignExtend)),
        ("x86_64_cfg_1", new(PtFormatKind.X86_64, 57, 52, Harness | PtFeatures.SignExtend)),
        ("x86_64_cfg_2", new(PtFormatKind.X86_64, 47, 52, Harness)),
        ("x86_64_cfg_3", new(PtFormatKind.X86_64, 56, 52, Harness)),

        // fmt/vtdss.h: FORCE_WRITEABLE is controlled by the cfg and left off.
        ("vtdss_cfg_0", new(PtFormatKind.Vtdss, 39, 52, Harness)),
        ("vtdss_cfg_1", new(PtFormatKind.Vtdss, 48, 52, Harness)),
        ("vtdss_cfg_2", new(PtFormatKind.Vtdss, 57, 52, Harness)),

        // fmt/riscv.h: KUNIT_FMT_FEATURES = SVNAPOT_64K; SIGN_EXTEND is a supported feature the cfgs do not
        // control, so the harness turns it on for every cfg.
        ("riscv64_cfg_0", new(PtFormatKind.Riscv64, 39, 56, Harness | PtFeatures.SignExtend | PtFeatures.RiscvSvnapot64K)),
        ("riscv64_cfg_1", new(PtFormatKind.Riscv64, 48, 56, Harness | PtFeatures.SignExtend)),
        ("riscv64_cfg_2", new(PtFormatKind.Riscv64, 57, 56, Harness | PtFeatures.SignExtend | PtFeatures.RiscvSvnapot64K)),
    ];

    /// <summary>The cfg called <paramref name="name"/>.</summary>
    public static PtConfig Get(string name)
    {
        foreach (var (n, cfg) in Table)
        {
            if (n == name)
                return cfg;
        }
        throw new ArgumentException($"Unknown kunit cfg '{name}'.", nameof(name));
    }

    /// <summary>Every cfg of every format: the parameters of each KUNIT_CASE_FMT.</summary>
    public static TheoryData<string> All
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var (name, _) in Table)
                data.Add(name);
            return data;
        }
    }

    /// <summary>
    /// The cfgs of the formats that define pt_entry_is_write_dirty (amdv1, vtdss): test_dirty is only compiled
    /// into their suites (<c>#ifdef pt_entry_is_write_dirty</c>), so x86_64 and riscv64 have no such case at all.
    /// </summary>
    public static TheoryData<string> Dirty
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (var (name, cfg) in Table)
            {
                if (PtFormatOps.For(cfg.Format).HasDirty)
                    data.Add(name);
            }
            return data;
        }
    }
}
