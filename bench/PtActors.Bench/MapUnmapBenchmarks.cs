using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Environments;
using PtActors.Engine;

namespace PtActors.Bench;

/// <summary>One cover-letter case: a format, the one page size the domain may use, and pages per call.</summary>
public sealed record BenchCase(PtFormatKind Format, int PgszLg2, int Count, double KernelMapNs, double KernelUnmapNs)
{
    /// <summary>Bytes per measured call.</summary>
    public ulong Length => (ulong)Count << PgszLg2;

    /// <summary>The kernel's row label ("256*2^12").</summary>
    public override string ToString()
        => $"{(Format == PtFormatKind.Amdv1 ? "amdv1" : "x86_64")} {(Count == 1 ? "" : $"{Count}*")}2^{PgszLg2}";
}

/// <summary>
/// iommu_map and iommu_unmap of the kernel's cover-letter cases (SPEC §6), measured as the kernel did:
/// one call through the core wrappers per operation, the domain's pgsize_bitmap restricted to the case's
/// page size, map and unmap alternating on aligned ranges in steady state (the interior tables exist and
/// no range covers a whole table, so nothing is allocated or freed per call). Each iteration maps (or
/// unmaps) <see cref="Ranges"/> distinct ranges; the setup between iterations puts them back.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(Config))]
public class MapUnmapBenchmarks
{
    /// <summary>Ranges per iteration (one call each).</summary>
    public const int Ranges = 64;

    private sealed class Config : ManualConfig
    {
        public Config()
        {
            AddJob(Job.Default
                .WithInvocationCount(Ranges)
                .WithUnrollFactor(1)
                .WithWarmupCount(20)
                .WithIterationCount(200)
                // An iteration is only 64 calls: run fully optimised code from the start rather than
                // measure tier-0 code that tiered compilation has not yet replaced.
                .WithEnvironmentVariables(new EnvironmentVariable("DOTNET_TieredCompilation", "0")));
            WithOptions(ConfigOptions.DisableOptimizationsValidator);
        }
    }

    // Kernel averages (ns) from the v7 cover letter (amdv1 and AMDv2 = x86_64) and the per-format tables.
    public static IEnumerable<BenchCase> Cases()
    {
        yield return new(PtFormatKind.Amdv1, 12, 1, 53, 69);
        yield return new(PtFormatKind.Amdv1, 12, 256, 386, 353);
        yield return new(PtFormatKind.Amdv1, 21, 256, 362, 373);
        yield return new(PtFormatKind.Amdv1, 30, 256, 356, 396);
        yield return new(PtFormatKind.X86_64, 12, 1, 71, 77);
        yield return new(PtFormatKind.X86_64, 12, 256, 392, 225);
        yield return new(PtFormatKind.X86_64, 21, 256, 383, 262);
        yield return new(PtFormatKind.X86_64, 30, 256, 378, 251);
        double[] amdMap = [65, 70, 73, 78, 89, 128, 175, 264, 444, 60];
        double[] amdUnmap = [76, 79, 78, 82, 79, 81, 90, 91, 96, 72];
        for (int lg2 = 13; lg2 <= 21; lg2++)
            yield return new(PtFormatKind.Amdv1, lg2, 1, amdMap[lg2 - 12], amdUnmap[lg2 - 12]);
    }

    [ParamsSource(nameof(Cases))]
    public BenchCase Case { get; set; } = null!;

    private IommuDomain _domain = null!;
    private ulong[] _va = null!;
    private int _next;

    [GlobalSetup]
    public void Setup()
    {
        var cfg = PtConfig.Default(Case.Format);
        if (IommuDomain.Create(cfg, new TableMemory(), out var d) != Errno.None)
            throw new InvalidOperationException("domain init failed");
        _domain = d!;
        _domain.PgsizeBitmap = 1UL << Case.PgszLg2;
        // Ranges laid back to back from 4 lengths up: each is half a table at most, never a whole one.
        ulong len = Case.Length;
        ulong start = len * 4;
        _va = new ulong[Ranges];
        for (int i = 0; i < Ranges; i++)
            _va[i] = start + (ulong)i * len;
        MapAll();
        UnmapAll();
    }

    // Setup helpers are idempotent: BenchmarkDotNet may also invoke a benchmark outside the iteration setups.
    private bool IsMapped(int i) => _domain.TryIovaToPhys(_va[i], out _) == Errno.None;

    private void MapAll()
    {
        for (int i = 0; i < Ranges; i++)
        {
            if (!IsMapped(i) && _domain.IommuMap(_va[i], _va[i], Case.Length, IommuProt.Read | IommuProt.Write) != Errno.None)
                throw new InvalidOperationException($"setup map of 0x{_va[i]:x} failed");
        }
    }

    private void UnmapAll()
    {
        for (int i = 0; i < Ranges; i++)
        {
            if (IsMapped(i) && _domain.IommuUnmap(_va[i], Case.Length) != Case.Length)
                throw new InvalidOperationException($"setup unmap of 0x{_va[i]:x} failed");
        }
    }

    [IterationSetup(Target = nameof(Map))]
    public void BeforeMap()
    {
        _next = 0;
        UnmapAll();
    }

    [IterationSetup(Target = nameof(Unmap))]
    public void BeforeUnmap()
    {
        _next = 0;
        MapAll();
    }

    /// <summary>One iommu_map call of the case's length.</summary>
    [Benchmark]
    public Errno Map()
    {
        ulong va = _va[_next++ & (Ranges - 1)];
        return _domain.IommuMap(va, va, Case.Length, IommuProt.Read | IommuProt.Write);
    }

    /// <summary>One iommu_unmap call of the case's length.</summary>
    [Benchmark]
    public ulong Unmap() => _domain.IommuUnmap(_va[_next++ & (Ranges - 1)], Case.Length);
}
