namespace PtActors.Engine;

/// <summary>
/// enum pt_features. The generic bits keep their kernel positions; the format-private bits, which the
/// kernel numbers from PT_FEAT_FMT_START per format, get positions of their own here so that one
/// bitmap can hold them all.
/// </summary>
[Flags]
public enum PtFeatures : uint
{
    None = 0,
    DmaIncoherent = 1u << 0,
    FullVa = 1u << 1,
    DynamicTop = 1u << 2,
    SignExtend = 1u << 3,
    FlushRange = 1u << 4,
    FlushRangeNoGaps = 1u << 5,
    Amdv1EncryptTables = 1u << 8,
    Amdv1ForceCoherence = 1u << 9,
    VtdssForceCoherence = 1u << 10,
    VtdssForceWriteable = 1u << 11,
    X86_64AmdEncryptTables = 1u << 12,
    RiscvSvnapot64K = 1u << 13,
}

/// <summary>The merged iommupt formats the engine models.</summary>
public enum PtFormatKind
{
    Amdv1,
    X86_64,
    Vtdss,
    Riscv64,
}

/// <summary>
/// pt_iommu_&lt;fmt&gt;_cfg: what a driver (or the kunit harness, or a script's <c>domain</c> line)
/// hands to init. <see cref="StartingLevel"/> is used by amdv1 only.
/// </summary>
public readonly record struct PtConfig(
    PtFormatKind Format,
    int HwMaxVaszLg2,
    int HwMaxOaszLg2,
    PtFeatures Features,
    int StartingLevel = 0)
{
    /// <summary>The defaults of a script's <c>domain</c> line (SCRIPT-FORMAT.md), flush=range.</summary>
    public static PtConfig Default(PtFormatKind format) => format switch
    {
        PtFormatKind.Amdv1 => new(format, 64, 52, PtFeatures.FlushRange, StartingLevel: 2),
        PtFormatKind.X86_64 => new(format, 48, 52, PtFeatures.FlushRange | PtFeatures.SignExtend),
        PtFormatKind.Vtdss => new(format, 48, 52, PtFeatures.FlushRange),
        PtFormatKind.Riscv64 => new(format, 39, 56,
            PtFeatures.FlushRange | PtFeatures.SignExtend | PtFeatures.RiscvSvnapot64K),
        _ => throw new ArgumentOutOfRangeException(nameof(format)),
    };
}
