using PtActors.Engine.Formats;
using Xunit;

namespace PtActors.Engine.Tests.Unit;

/// <summary>
/// SPEC §4 item encodings, written out bit by bit, and the decode round trips of kunit test_entry_oa /
/// test_attr_from_entry / test_entry_possible_sizes.
/// </summary>
public class FormatEncodingTests
{
    private const ulong TablePa = 0x1_2345_6000;

    // ------------------------------------------------------------------ amdv1

    private const ulong AmdPR = 1, AmdD = 1UL << 6, AmdFC = 1UL << 60, AmdIR = 1UL << 61, AmdIW = 1UL << 62;
    private const ulong AmdNl7 = 7UL << 9;

    [Theory]
    [InlineData(1, 0x6000_0001_2345_6201UL)]
    [InlineData(2, 0x6000_0001_2345_6401UL)]
    [InlineData(3, 0x6000_0001_2345_6601UL)]
    [InlineData(5, 0x6000_0001_2345_6a01UL)]
    public void Amdv1_TableItem_IsPrNextLevelOaIrIw(int level, ulong expected)
    {
        Assert.Equal(AmdPR | ((ulong)level << 9) | TablePa | AmdIR | AmdIW, expected);
        ulong pte = Amdv1Format.MakeTable(TablePa, level, PtFeatures.None);
        Assert.Equal(expected, pte);
        Assert.Equal(PtEntryType.Table, Amdv1Format.Load(pte, level));
        Assert.Equal(TablePa, Amdv1Format.TablePa(pte));
    }

    [Fact]
    public void Amdv1_SetProt_ForcedCoherenceAlwaysSetsFc()
    {
        Assert.Equal(Errno.None, Amdv1Format.SetProt(UnitHelpers.RW, PtFeatures.None, out ulong rw));
        Assert.Equal(AmdFC | AmdIR | AmdIW, rw);
        Assert.Equal(0x7000_0000_0000_0000UL, rw);
        Assert.Equal(Errno.None, Amdv1Format.SetProt(IommuProt.Read, PtFeatures.None, out ulong r));
        Assert.Equal(AmdFC | AmdIR, r);
        Assert.Equal(Errno.None, Amdv1Format.SetProt(IommuProt.Write | IommuProt.NoExec | IommuProt.Cache, PtFeatures.None, out ulong w));
        Assert.Equal(AmdFC | AmdIW, w);
    }

    [Theory]
    // size lg2, level, oa, expected item (FC|IR|IW), num_contig_lg2
    [InlineData(12, 0, 0x7_1445_dead_b000UL, 0x7007_1445_dead_b001UL, 0)]
    [InlineData(13, 0, 0x7_1445_dead_a000UL, 0x7007_1445_dead_ae01UL, 1)]
    [InlineData(16, 0, 0x7_1445_dead_0000UL, 0x7007_1445_dead_7e01UL, 4)]
    [InlineData(20, 0, 0x7_1445_dea0_0000UL, 0x7007_1445_dea7_fe01UL, 8)]
    [InlineData(21, 1, 0x7_1445_dea0_0000UL, 0x7007_1445_dea0_0001UL, 0)]
    [InlineData(22, 1, 0x7_1445_de80_0000UL, 0x7007_1445_de9f_fe01UL, 1)]
    [InlineData(30, 2, 0x7_1445_c000_0000UL, 0x7007_1445_c000_0001UL, 0)]
    [InlineData(38, 2, 0x7_1440_0000_0000UL, 0x7007_145f_ffff_fe01UL, 8)]
    [InlineData(40, 3, 0x7_1400_0000_0000UL, 0x7007_147f_ffff_fe01UL, 1)]
    [InlineData(47, 3, 0x7_0000_0000_0000UL, 0x7007_3fff_ffff_fe01UL, 8)]
    [InlineData(48, 4, 0x7_0000_0000_0000UL, 0x7007_0000_0000_0001UL, 0)]
    [InlineData(51, 4, 0x8_0000_0000_0000UL, 0x700b_ffff_ffff_fe01UL, 3)]
    [InlineData(51, 4, 0UL, 0x7003_ffff_ffff_fe01UL, 3)]
    public void Amdv1_Leaf_ContiguousSizesUseNl7AndARunOfOnes(int sizeLg2, int level, ulong oa, ulong expected, int contig)
    {
        int isz = PtGeometry.ItemLg2(level);
        // The encoding as SPEC §4.1 words it.
        ulong byHand = sizeLg2 == isz
            ? AmdPR | oa | AmdFC | AmdIR | AmdIW
            : AmdPR | AmdNl7 | (oa | (((1UL << (sizeLg2 - 13)) - 1) << 12)) | AmdFC | AmdIR | AmdIW;
        Assert.Equal(expected, byHand);

        Assert.Equal(Errno.None, Amdv1Format.SetProt(UnitHelpers.RW, PtFeatures.None, out ulong attrs));
        ulong pte = Amdv1Format.MakeLeaf(oa, level, sizeLg2, attrs);
        Assert.Equal(expected, pte);
        Assert.Equal(PtEntryType.Oa, Amdv1Format.Load(pte, level));
        Assert.Equal(contig, Amdv1Format.NumContigLg2(pte, level));
        Assert.Equal(sizeLg2 - isz, Amdv1Format.NumContigLg2(pte, level));
        Assert.Equal(oa, Amdv1Format.EntryOa(pte, level));
        Assert.Equal(AmdFC | AmdIR | AmdIW, Amdv1Format.AttrFromEntry(pte));
        Assert.Equal(UnitHelpers.RW, Amdv1Format.LeafPermissions(pte));
        var ops = PtFormatOps.For(PtFormatKind.Amdv1);
        for (int i = 0; i < 1 << contig; i++)
            Assert.Equal(oa + ((ulong)i << isz), ops.ItemOa(pte, level, i));
    }

    [Fact]
    public void Amdv1_ReadOnly8K_Exact()
    {
        Assert.Equal(Errno.None, Amdv1Format.SetProt(IommuProt.Read, PtFeatures.None, out ulong attrs));
        Assert.Equal(0x3007_1445_dead_ae01UL, Amdv1Format.MakeLeaf(0x7_1445_dead_a000, 0, 13, attrs));
        Assert.Equal(IommuProt.Read, Amdv1Format.LeafPermissions(0x3007_1445_dead_ae01UL));
    }

    [Fact]
    public void Amdv1_Load_PresentBitAndNextLevel()
    {
        Assert.Equal(PtEntryType.Empty, Amdv1Format.Load(0, 0));
        Assert.Equal(PtEntryType.Empty, Amdv1Format.Load(AmdIR | AmdIW | 0x1000 | (1UL << 9), 1)); // no PR
        Assert.Equal(PtEntryType.Oa, Amdv1Format.Load(AmdPR | 0x1000, 0));
        Assert.Equal(PtEntryType.Oa, Amdv1Format.Load(AmdPR | (3UL << 9) | 0x1000, 0));   // level 0: always OA
        Assert.Equal(PtEntryType.Oa, Amdv1Format.Load(AmdPR | 0x20_0000, 1));             // NL=0
        Assert.Equal(PtEntryType.Oa, Amdv1Format.Load(AmdPR | AmdNl7 | 0x3f_f000, 1));    // NL=7
        Assert.Equal(PtEntryType.Table, Amdv1Format.Load(AmdPR | (1UL << 9) | 0x1000, 1));
        Assert.Equal(PtEntryType.Table, Amdv1Format.Load(AmdPR | (4UL << 9) | 0x1000, 4));
        Assert.Equal(0, Amdv1Format.NumContigLg2(AmdPR | 0x20_0000, 1));
    }

    [Fact]
    public void Amdv1_PossibleSizes_PerLevelAndDomainBitmap()
    {
        ulong[] expected =
        [
            0x1f_f000,               // L0 4K..1M
            0x3fe0_0000,             // L1 2M..512M
            0x7f_c000_0000,          // L2 1G..256G
            0xff00_0000_0000,        // L3 1T..128T (512G excluded)
            0xf_0000_0000_0000,      // L4 256T..2P
            0,                       // L5 tables only
        ];
        ulong all = 0;
        for (int level = 0; level <= 5; level++)
        {
            Assert.Equal(expected[level], Amdv1Format.PossibleSizes(level, PtFeatures.None));
            Assert.Equal(level < 5, Amdv1Format.CanHaveLeaf(level));
            all |= expected[level];
        }
        Assert.Equal(0xf_ff7f_ffff_f000UL, all);
    }

    [Fact]
    public void Amdv1_DirtyBitIsBit6()
    {
        Assert.True(Amdv1Format.HasDirty);
        Assert.Equal(AmdD, Amdv1Format.DirtyBit);
    }

    // ------------------------------------------------------------------ x86_64

    private const ulong XP = 1, XRW = 2, XU = 4, XA = 0x20, XD = 0x40, XPS = 0x80;

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void X86_64_TableItem_IsPRwUAOa(int level)
    {
        ulong pte = X86_64Format.MakeTable(TablePa, level, PtFeatures.None);
        Assert.Equal(XP | XRW | XU | XA | TablePa, pte);
        Assert.Equal(0x1_2345_6027UL, pte);
        Assert.Equal(PtEntryType.Table, X86_64Format.Load(pte, level));
        Assert.Equal(TablePa, X86_64Format.TablePa(pte));
    }

    [Theory]
    [InlineData(0, 0x7_1445_dead_b000UL, 0x7_1445_dead_b067UL, 0x7_1445_dead_b025UL)]
    [InlineData(1, 0x7_1445_dea0_0000UL, 0x7_1445_dea0_00e7UL, 0x7_1445_dea0_00a5UL)]
    [InlineData(2, 0x7_1445_c000_0000UL, 0x7_1445_c000_00e7UL, 0x7_1445_c000_00a5UL)]
    public void X86_64_Leaf_PUA_RwDOnWrite_PsAboveLevel0(int level, ulong oa, ulong expectedRw, ulong expectedRo)
    {
        ulong ps = level != 0 ? XPS : 0;
        Assert.Equal(XP | oa | XU | XA | XRW | XD | ps, expectedRw);
        Assert.Equal(XP | oa | XU | XA | ps, expectedRo);

        Assert.Equal(Errno.None, X86_64Format.SetProt(UnitHelpers.RW, PtFeatures.None, out ulong rw));
        Assert.Equal(XU | XA | XRW | XD, rw);
        Assert.Equal(Errno.None, X86_64Format.SetProt(IommuProt.Read, PtFeatures.None, out ulong ro));
        Assert.Equal(XU | XA, ro);
        int isz = PtGeometry.ItemLg2(level);
        ulong pteRw = X86_64Format.MakeLeaf(oa, level, isz, rw);
        ulong pteRo = X86_64Format.MakeLeaf(oa, level, isz, ro);
        Assert.Equal(expectedRw, pteRw);
        Assert.Equal(expectedRo, pteRo);
        foreach (ulong pte in new[] { pteRw, pteRo })
        {
            Assert.Equal(PtEntryType.Oa, X86_64Format.Load(pte, level));
            Assert.Equal(0, X86_64Format.NumContigLg2(pte, level));
            Assert.Equal(oa, X86_64Format.EntryOa(pte, level));
        }
        Assert.Equal(XRW | XU | XA | XD, X86_64Format.AttrFromEntry(pteRw));
        Assert.Equal(UnitHelpers.RW, X86_64Format.LeafPermissions(pteRw));
        Assert.Equal(IommuProt.Read, X86_64Format.LeafPermissions(pteRo));
    }

    [Fact]
    public void X86_64_Load_PresentAndPs()
    {
        Assert.Equal(PtEntryType.Empty, X86_64Format.Load(0, 0));
        Assert.Equal(PtEntryType.Empty, X86_64Format.Load(XRW | XU | 0x1000, 1));
        Assert.Equal(PtEntryType.Oa, X86_64Format.Load(XP | 0x1000, 0));
        Assert.Equal(PtEntryType.Oa, X86_64Format.Load(XP | XPS | 0x1000, 0));
        Assert.Equal(PtEntryType.Oa, X86_64Format.Load(XP | XPS | 0x20_0000, 1));
        Assert.Equal(PtEntryType.Oa, X86_64Format.Load(XP | XPS | 0x4000_0000, 2));
        Assert.Equal(PtEntryType.Table, X86_64Format.Load(XP | XRW | 0x1000, 1));
        Assert.Equal(PtEntryType.Table, X86_64Format.Load(XP | XPS | 0x1000, 3)); // PS means nothing above level 2
        Assert.Equal(0x8000_0000_0000_0000UL, X86_64Format.AttrFromEntry(0x8000_0000_0000_1001UL)); // XD kept
    }

    [Fact]
    public void X86_64_PossibleSizes()
    {
        ulong[] expected = [0x1000, 0x20_0000, 0x4000_0000, 0, 0];
        for (int level = 0; level <= 4; level++)
            Assert.Equal(expected[level], X86_64Format.PossibleSizes(level, PtFeatures.None));
        Assert.False(X86_64Format.HasDirty);
    }

    // ------------------------------------------------------------------ vtdss

    private const ulong VR = 1, VW = 2, VPS = 0x80, VD = 0x200, VSNP = 0x800;

    [Fact]
    public void Vtdss_TableItem_IsRwOa()
    {
        for (int level = 1; level <= 4; level++)
        {
            ulong pte = VtdssFormat.MakeTable(TablePa, level, PtFeatures.None);
            Assert.Equal(VR | VW | TablePa, pte);
            Assert.Equal(0x1_2345_6003UL, pte);
            Assert.Equal(PtEntryType.Table, VtdssFormat.Load(pte, level));
            Assert.Equal(TablePa, VtdssFormat.TablePa(pte));
        }
    }

    [Theory]
    [InlineData(0, 0x7_1445_dead_b000UL, 0x7_1445_dead_b003UL)]
    [InlineData(1, 0x7_1445_dea0_0000UL, 0x7_1445_dea0_0083UL)]
    [InlineData(2, 0x7_1445_c000_0000UL, 0x7_1445_c000_0083UL)]
    public void Vtdss_Leaf_RwPsNoPresentBit(int level, ulong oa, ulong expected)
    {
        Assert.Equal(oa | VR | VW | (level != 0 ? VPS : 0), expected);
        Assert.Equal(Errno.None, VtdssFormat.SetProt(UnitHelpers.RW, PtFeatures.None, out ulong attrs));
        Assert.Equal(VR | VW, attrs);
        ulong pte = VtdssFormat.MakeLeaf(oa, level, PtGeometry.ItemLg2(level), attrs);
        Assert.Equal(expected, pte);
        Assert.Equal(PtEntryType.Oa, VtdssFormat.Load(pte, level));
        Assert.Equal(oa, VtdssFormat.EntryOa(pte, level));
        Assert.Equal(0, VtdssFormat.NumContigLg2(pte, level));
        Assert.Equal(VR | VW, VtdssFormat.AttrFromEntry(pte));

        // Force coherence adds SNP (bit 11); read-only and write-only leaves carry just their bit.
        Assert.Equal(Errno.None, VtdssFormat.SetProt(UnitHelpers.RW, PtFeatures.VtdssForceCoherence, out ulong snp));
        Assert.Equal(VR | VW | VSNP, snp);
        ulong coherent = VtdssFormat.MakeLeaf(oa, level, PtGeometry.ItemLg2(level), snp);
        Assert.Equal(expected | VSNP, coherent);
        Assert.Equal(VR | VW | VSNP, VtdssFormat.AttrFromEntry(coherent));
        Assert.Equal(Errno.None, VtdssFormat.SetProt(IommuProt.Read, PtFeatures.None, out ulong r));
        Assert.Equal(VR, r);
        Assert.Equal(Errno.None, VtdssFormat.SetProt(IommuProt.Write, PtFeatures.None, out ulong w));
        Assert.Equal(VW, w);
    }

    [Fact]
    public void Vtdss_SetProt_EinvalCases()
    {
        Assert.Equal(Errno.EINVAL, VtdssFormat.SetProt(IommuProt.None, PtFeatures.None, out _));
        Assert.Equal(Errno.EINVAL, VtdssFormat.SetProt(IommuProt.Cache | IommuProt.NoExec, PtFeatures.None, out _));
        // Errata 772415_SPR17: FORCE_WRITEABLE rejects read-only.
        Assert.Equal(Errno.EINVAL, VtdssFormat.SetProt(IommuProt.Read, PtFeatures.VtdssForceWriteable, out _));
        Assert.Equal(Errno.None, VtdssFormat.SetProt(IommuProt.Write, PtFeatures.VtdssForceWriteable, out ulong a));
        Assert.Equal(VW, a);
        Assert.Equal(Errno.None, VtdssFormat.SetProt(UnitHelpers.RW, PtFeatures.VtdssForceWriteable, out _));
    }

    [Fact]
    public void Vtdss_Load_ZeroIsEmptyAndAnyNonZeroIsPresent()
    {
        Assert.Equal(PtEntryType.Empty, VtdssFormat.Load(0, 0));
        Assert.Equal(PtEntryType.Empty, VtdssFormat.Load(0, 3));
        Assert.Equal(PtEntryType.Oa, VtdssFormat.Load(VR | 0x1000, 0));
        Assert.Equal(PtEntryType.Oa, VtdssFormat.Load(VW | 0x1000, 0));
        Assert.Equal(PtEntryType.Oa, VtdssFormat.Load(0x1000, 0));                    // no R/W but non-zero
        Assert.Equal(PtEntryType.Oa, VtdssFormat.Load(VR | VPS | 0x4000_0000, 2));
        Assert.Equal(PtEntryType.Table, VtdssFormat.Load(VR | 0x1000, 1));
        Assert.Equal(PtEntryType.Table, VtdssFormat.Load(VR | VPS | 0x1000, 3));
    }

    [Fact]
    public void Vtdss_PossibleSizesAndDirtyBit()
    {
        ulong[] expected = [0x1000, 0x20_0000, 0x4000_0000, 0, 0];
        for (int level = 0; level <= 4; level++)
            Assert.Equal(expected[level], VtdssFormat.PossibleSizes(level, PtFeatures.None));
        Assert.True(VtdssFormat.HasDirty);
        Assert.Equal(VD, VtdssFormat.DirtyBit);
    }

    // ------------------------------------------------------------------ riscv64

    private const ulong RV = 1, RR = 2, RWr = 4, RX = 8, RU = 0x10, RA = 0x40, RDt = 0x80, RN = 1UL << 63;

    [Fact]
    public void Riscv64_TableItem_IsVPpn()
    {
        for (int level = 1; level <= 4; level++)
        {
            ulong pte = Riscv64Format.MakeTable(TablePa, level, PtFeatures.None);
            Assert.Equal(RV | ((TablePa >> 12) << 10), pte);
            Assert.Equal(0x48d1_5801UL, pte);
            Assert.Equal(PtEntryType.Table, Riscv64Format.Load(pte, level));
            Assert.Equal(TablePa, Riscv64Format.TablePa(pte));
        }
    }

    [Fact]
    public void Riscv64_SetProt()
    {
        Assert.Equal(Errno.None, Riscv64Format.SetProt(UnitHelpers.RW, PtFeatures.None, out ulong rw));
        Assert.Equal(RA | RU | RWr | RR | RDt | RX, rw);
        Assert.Equal(0xdeUL, rw);
        Assert.Equal(Errno.None, Riscv64Format.SetProt(IommuProt.Read, PtFeatures.None, out ulong r));
        Assert.Equal(RA | RU | RR | RX, r);
        Assert.Equal(Errno.None, Riscv64Format.SetProt(UnitHelpers.RW | IommuProt.NoExec, PtFeatures.None, out ulong nx));
        Assert.Equal(RA | RU | RWr | RR | RDt, nx);
        Assert.Equal(Errno.None, Riscv64Format.SetProt(IommuProt.Write, PtFeatures.None, out ulong w));
        Assert.Equal(RA | RU | RWr | RR | RDt | RX, w);
        Assert.Equal(Errno.EOPNOTSUPP, Riscv64Format.SetProt(IommuProt.NoExec, PtFeatures.None, out _));
    }

    [Theory]
    // level, size lg2, oa, expected item with set_prot(READ|WRITE)
    [InlineData(0, 12, 0xa7_1445_dead_b000UL, 0x29_c511_77ab_6cdfUL, 0)]
    [InlineData(0, 16, 0xa7_1445_dead_0000UL, 0x8029_c511_77ab_60dfUL, 4)]
    [InlineData(0, 16, 0xff_ffff_ffff_0000UL, 0x803f_ffff_ffff_e0dfUL, 4)]
    [InlineData(1, 21, 0xa7_1445_dea0_0000UL, 0x29_c511_77a8_00dfUL, 0)]
    [InlineData(3, 39, 0xa7_1400_0000_0000UL, 0x29_c500_0000_00dfUL, 0)]
    [InlineData(4, 48, 0xa7_0000_0000_0000UL, 0x29_c000_0000_00dfUL, 0)]
    public void Riscv64_Leaf_NapotSetsNAndBit13(int level, int sizeLg2, ulong oa, ulong expected, int contig)
    {
        ulong byHand = RV | ((oa >> 12) << 10) | 0xde | (contig != 0 ? RN | (1UL << 13) : 0);
        Assert.Equal(expected, byHand);
        Assert.Equal(Errno.None, Riscv64Format.SetProt(UnitHelpers.RW, PtFeatures.None, out ulong attrs));
        ulong pte = Riscv64Format.MakeLeaf(oa, level, sizeLg2, attrs);
        Assert.Equal(expected, pte);
        Assert.Equal(PtEntryType.Oa, Riscv64Format.Load(pte, level));
        Assert.Equal(contig, Riscv64Format.NumContigLg2(pte, level));
        Assert.Equal(oa, Riscv64Format.EntryOa(pte, level));
        var ops = PtFormatOps.For(PtFormatKind.Riscv64);
        for (int i = 0; i < 1 << contig; i++)
            Assert.Equal(oa + ((ulong)i << PtGeometry.ItemLg2(level)), ops.ItemOa(pte, level, i));
        Assert.Equal(0xdeUL, Riscv64Format.AttrFromEntry(pte));
    }

    [Fact]
    public void Riscv64_NapotOaDecode_IgnoresThePpnLowNibble()
    {
        // PPN[3:0] = 1000b is the size marker, not address: bits 53:14 << 16.
        ulong pte = RN | RV | RR | (0x1234UL << 14) | (1UL << 13);
        Assert.Equal(0x1234UL << 16, Riscv64Format.EntryOa(pte, 0));
        Assert.Equal(4, Riscv64Format.NumContigLg2(pte, 0));
        // Without N the same bits are an ordinary PPN.
        ulong plain = pte & ~RN;
        Assert.Equal(((plain >> 10) & 0xfff_ffff_ffffUL) << 12, Riscv64Format.EntryOa(plain, 0));
        Assert.Equal(0, Riscv64Format.NumContigLg2(plain, 0));
    }

    [Fact]
    public void Riscv64_Load_ValidAndRwx()
    {
        Assert.Equal(PtEntryType.Empty, Riscv64Format.Load(0, 0));
        Assert.Equal(PtEntryType.Empty, Riscv64Format.Load(RR | RWr | 0x400, 0));
        Assert.Equal(PtEntryType.Oa, Riscv64Format.Load(RV | 0x400, 0));
        Assert.Equal(PtEntryType.Table, Riscv64Format.Load(RV | 0x400, 1));
        Assert.Equal(PtEntryType.Oa, Riscv64Format.Load(RV | RR | 0x400, 1));
        Assert.Equal(PtEntryType.Oa, Riscv64Format.Load(RV | RWr | 0x400, 2));
        Assert.Equal(PtEntryType.Oa, Riscv64Format.Load(RV | RX | 0x400, 4));
    }

    [Fact]
    public void Riscv64_PossibleSizes_NapotOnlyAtLevel0()
    {
        Assert.Equal(0x1_1000UL, Riscv64Format.PossibleSizes(0, PtFeatures.RiscvSvnapot64K));
        Assert.Equal(0x1000UL, Riscv64Format.PossibleSizes(0, PtFeatures.None));
        Assert.Equal(0x20_0000UL, Riscv64Format.PossibleSizes(1, PtFeatures.RiscvSvnapot64K));
        Assert.Equal(0x4000_0000UL, Riscv64Format.PossibleSizes(2, PtFeatures.RiscvSvnapot64K));
        Assert.Equal(0x80_0000_0000UL, Riscv64Format.PossibleSizes(3, PtFeatures.RiscvSvnapot64K));
        Assert.Equal(0x1_0000_0000_0000UL, Riscv64Format.PossibleSizes(4, PtFeatures.RiscvSvnapot64K));
        Assert.False(Riscv64Format.HasDirty);
    }

    // ------------------------------------------------------------------ every format: kunit test_entry_oa etc.

    public static TheoryData<PtFormatKind> Kinds => new()
    {
        PtFormatKind.Amdv1, PtFormatKind.X86_64, PtFormatKind.Vtdss, PtFormatKind.Riscv64,
    };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void EveryPossibleSize_RoundTripsOaContigAndAttrs(PtFormatKind kind)
    {
        var ops = PtFormatOps.For(kind);
        var features = kind == PtFormatKind.Riscv64 ? PtFeatures.RiscvSvnapot64K : PtFeatures.None;
        ulong testOa = 0x74a7_1445_dead_beefUL & ((1UL << ops.MaxOaLg2) - 1);
        ulong maxOa = (1UL << ops.MaxOaLg2) - 1;
        for (int level = 0; level <= ops.MaxTopLevel; level++)
        {
            ulong sizes = ops.PossibleSizes(level, features);
            int isz = PtGeometry.ItemLg2(level);
            if (!ops.CanHaveLeaf(level))
            {
                Assert.Equal(0UL, sizes);
                continue;
            }
            // kunit test_entry_possible_sizes: nothing below the item size, nothing reaching a whole table.
            Assert.Equal(0UL, sizes & ((1UL << isz) - 1));
            Assert.Equal(0UL, sizes >> (isz + 9));
            Assert.NotEqual(0UL, sizes);
            for (int lg2 = isz; lg2 < isz + 9; lg2++)
            {
                if ((sizes & (1UL << lg2)) == 0)
                    continue;
                foreach (var prot in new[] { UnitHelpers.RW, IommuProt.Read, IommuProt.Write | IommuProt.NoExec })
                {
                    Assert.Equal(Errno.None, ops.SetProt(prot, features, out ulong attrs));
                    foreach (ulong raw in new[] { testOa, 0UL, maxOa })
                    {
                        ulong oa = raw & ~((1UL << lg2) - 1);
                        ulong pte = ops.MakeLeaf(oa, level, lg2, attrs);
                        Assert.Equal(PtEntryType.Oa, ops.Load(pte, level));
                        Assert.Equal(lg2 - isz, ops.NumContigLg2(pte, level));
                        Assert.Equal(oa, ops.EntryOa(pte, level));
                        Assert.Equal(oa | ((3UL << isz) & ((1UL << lg2) - 1)), ops.ItemOa(pte, level, 3));
                        // kunit test_attr_from_entry: re-installing with the derived attrs gives the same item.
                        Assert.Equal(pte, ops.MakeLeaf(oa, level, lg2, ops.AttrFromEntry(pte)));
                    }
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void TableItems_RoundTripTheirPa(PtFormatKind kind)
    {
        var ops = PtFormatOps.For(kind);
        foreach (ulong pa in new ulong[] { 0x1000, 0x1_0000_0000, 0x7_1445_dead_b000, (1UL << 52) - 0x1000 })
        {
            for (int level = 1; level <= ops.MaxTopLevel; level++)
            {
                ulong pte = ops.MakeTable(pa, level, PtFeatures.None);
                Assert.Equal(PtEntryType.Table, ops.Load(pte, level));
                Assert.Equal(pa, ops.TablePa(pte));
            }
        }
    }
}
