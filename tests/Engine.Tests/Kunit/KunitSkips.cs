using System.Numerics;
using PtActors.Engine.Formats;
using Xunit;

namespace PtActors.Engine.Tests.Kunit;

/// <summary>
/// The kunit_skip conditions of the ported iommu cases. Each depends only on the cfg (on the freshly initialised
/// domain), so the cfgs of a case are split before it runs: those a condition holds for become xunit cases with
/// that condition's kunit message as their static Skip reason, so <c>dotnet test</c> reports them as skipped (not
/// as passes), and the others run. A running case first asserts that none of its conditions holds
/// (<see cref="AssertRuns"/>), so a split that went wrong fails instead of running a case kunit would skip.
/// </summary>
public static class KunitSkips
{
    /// <summary>test_increase_level on a format without DYNAMIC_TOP.</summary>
    public const string NoDynamicTop = "PT_FEAT_DYNAMIC_TOP not set for this format";

    /// <summary>test_increase_level when the starting top already covers the whole VA.</summary>
    public const string NoGrowth = "max_vasz_lg2 fits in starting level, no growth possible";

    /// <summary>
    /// test_map_table_to_oa on amdv1 vasz=32 (SCRIPT-FORMAT.md reading 9): the case needs the later kernel fix
    /// 04f1f4bf ("Fix pgsize_bitmap calculation in get_info for smaller vasz's"). As first merged, get_info
    /// reports page sizes up to 2^38 for a 32-bit VA, so max_pgsize is 8 GiB and the first map at ALIGN(1 MiB,
    /// 8 GiB) lies outside the 4 GiB table (ERANGE). The engine follows the first-merged get_info (reading 4).
    /// </summary>
    public const string NeedsPgsizeFix =
        "amdv1 vasz=32 needs the later get_info pgsize_bitmap fix 04f1f4bf (SCRIPT-FORMAT reading 9)";

    /// <summary>test_unmap_split with fewer than two safe page sizes.</summary>
    public const string NeedsTwoPageSizes = "Test needs two page sizes";

    /// <summary>test_pgsize_boundary without a 4K page or the VA it maps.</summary>
    public const string NoRequiredRange = "Format does not have the required range";

    /// <summary>test_mixed when the top range ends below the start of the mapping.</summary>
    public const string RangeTooSmall = "range is too small";

    /// <summary>test_mixed without exactly the 2M and 1G sizes between 2^21 and 2^30.</summary>
    public const string IncompatiblePsize = "incompatible psize";

    private const ulong SZ_4K = 1UL << 12;

    /// <summary>Each case's conditions in kunit's order: the message of the first that holds, or null.</summary>
    private static readonly Dictionary<string, Func<KunitPriv, string?>> Conditions = new(StringComparer.Ordinal)
    {
        [nameof(KunitIommuPtTests.TestIncreaseLevel)] = priv =>
            !priv.Domain.HasFeature(PtFeatures.DynamicTop) ? NoDynamicTop
            : priv.Domain.MaxVaszLg2 <= priv.TopRange().MaxVaszLg2 ? NoGrowth // (IS_32BIT: never on this host)
            : null,
        [nameof(KunitIommuPtTests.TestMapTableToOa)] = priv =>
            priv.Cfg.Format == PtFormatKind.Amdv1 && priv.Cfg.HwMaxVaszLg2 == 32 ? NeedsPgsizeFix : null,
        // kunit counts the (size, larger size) pairs it tested and skips when there were none.
        [nameof(KunitIommuPtTests.TestUnmapSplit)] = priv =>
            BitOperations.PopCount(priv.SafePgsizeBitmap) < 2 ? NeedsTwoPageSizes : null,
        [nameof(KunitIommuPtTests.TestPgsizeBoundary)] = priv =>
        {
            var top = priv.TopRange();
            return top.Va != 0 || top.LastVa < 0xfef9ffff || priv.SmallestPgsz != SZ_4K ? NoRequiredRange : null;
        },
        [nameof(KunitIommuPtTests.TestMixed)] = priv =>
            priv.TopRange().LastVa <= KunitIommuPtTests.MixedStart ? RangeTooSmall // (|| sizeof(unsigned long) == 4)
            : (priv.SafePgsizeBitmap & Log2.GenMask(30, 21)) != ((1UL << 30) | (1UL << 21)) ? IncompatiblePsize
            : null,
    };

    /// <summary>The kunit message of the condition that makes <paramref name="test"/> skip this cfg, or null.</summary>
    public static string? Reason(string test, KunitPriv priv) => Conditions[test](priv);

    /// <summary>The cfgs <paramref name="test"/> runs on: every kunit cfg for which none of its conditions holds.</summary>
    public static TheoryData<string> Runs(string test) => Select(test, null);

    /// <summary>The cfgs <paramref name="test"/> skips with <paramref name="reason"/> (possibly none).</summary>
    public static TheoryData<string> Skipped(string test, string reason) => Select(test, reason);

    /// <summary>Fails when <paramref name="test"/> would skip <paramref name="priv"/>'s cfg: it must not run.</summary>
    public static void AssertRuns(string test, KunitPriv priv)
    {
        string? reason = Reason(test, priv);
        Assert.True(reason is null, $"{priv.Name}: {test} runs a cfg that kunit skips ({reason})");
    }

    /// <summary>The cfg names of theory data rows.</summary>
    public static List<string> Names(IEnumerable<object[]> rows) => rows.Select(row => (string)row[0]).ToList();

    private static TheoryData<string> Select(string test, string? reason)
    {
        var data = new TheoryData<string>();
        foreach (string cfg in Names(KunitCfgs.All))
        {
            var priv = KunitPriv.Init(cfg);
            bool match = Reason(test, priv) == reason;
            priv.Domain.Deinit();
            if (match)
                data.Add(cfg);
        }
        return data;
    }
}

/// <summary>The split of <see cref="KunitSkips"/> loses no cfg.</summary>
public class KunitSkipsTests
{
    /// <summary>
    /// Every case with skip conditions runs or skips every kunit cfg, each exactly once: a condition whose message
    /// has no Skipped data attribute on the case would make its cfgs vanish from the run instead of showing as skipped.
    /// </summary>
    [Fact]
    public void EveryCfgIsRunOrSkippedExactlyOnce()
    {
        var all = KunitSkips.Names(KunitCfgs.All).Order(StringComparer.Ordinal).ToList();
        var methods = typeof(KunitIommuPtTests).GetMethods()
            .Where(m => m.GetCustomAttributes(typeof(MemberDataAttribute), false)
                .Cast<MemberDataAttribute>().Any(a => a.MemberType == typeof(KunitSkips)))
            .ToList();
        Assert.Equal(5, methods.Count);
        foreach (var method in methods)
        {
            var cfgs = new List<string>();
            foreach (var attr in method.GetCustomAttributes(typeof(MemberDataAttribute), false).Cast<MemberDataAttribute>())
            {
                Assert.Equal(method.Name, (string)attr.Parameters[0]);
                if (attr.MemberName == nameof(KunitSkips.Skipped))
                    Assert.Equal((string)attr.Parameters[1], attr.Skip); // the reason shown is the condition selected
                foreach (var row in attr.GetData(method))
                    cfgs.Add((string)row[0]);
            }
            Assert.Equal(all, cfgs.Order(StringComparer.Ordinal).ToList());
        }
    }

    /// <summary>The skips kunit makes on these cfgs (amdv1 cfg_1 is the 32-bit VA one).</summary>
    [Fact]
    public void KnownSkips()
    {
        Assert.Equal(["amdv1_cfg_0"], KunitSkips.Names(KunitSkips.Runs(nameof(KunitIommuPtTests.TestIncreaseLevel))));
        Assert.Equal(["amdv1_cfg_1"],
            KunitSkips.Names(KunitSkips.Skipped(nameof(KunitIommuPtTests.TestMapTableToOa), KunitSkips.NeedsPgsizeFix)));
        Assert.Empty(KunitSkips.Skipped(nameof(KunitIommuPtTests.TestUnmapSplit), KunitSkips.NeedsTwoPageSizes));
    }
}
