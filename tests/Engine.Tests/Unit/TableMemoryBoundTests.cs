using PtActors.Engine.Formats;
using Xunit;

namespace PtActors.Engine.Tests.Unit;

/// <summary>
/// The table-memory bound (<see cref="TableMemory.PageLimit"/>): a table page that cannot be allocated makes
/// <c>map</c> fail with ENOMEM as iommupt does when its table allocation fails. __map_range returns the error
/// without installing anything for that item (tables installed before it stay, linked and empty), increase_top
/// frees the new tops it made, and the core's iommu_map unmaps what the call had mapped. So after the failure
/// the table is consistent: the same leaves, every allocated page reachable, and the same map succeeds once
/// the bound allows it, giving the table a domain that never failed has.
/// </summary>
public class TableMemoryBoundTests
{
    private const ulong K4 = 0x1000;

    public static TheoryData<PtFormatKind, ulong, ulong, ulong> Maps => new()
    {
        // 514 4K pages over three level-0 tables (PADDR only 4K aligned), from the end of [0, 2M).
        { PtFormatKind.Amdv1, 0x1f_f000, 0x4000_1000, 0x20_2000 },
        { PtFormatKind.X86_64, 0x1f_f000, 0x4000_1000, 0x20_2000 },
        { PtFormatKind.Vtdss, 0x1f_f000, 0x4000_1000, 0x20_2000 },
        { PtFormatKind.Riscv64, 0x1f_f000, 0x4000_1000, 0x20_2000 },
        // The upper half of the sign-extended formats: new tables under the top's last items.
        { PtFormatKind.X86_64, 0xffff_ffff_fff0_0000, 0x1000, 0x10_0000 },
        { PtFormatKind.Riscv64, 0xffff_ffff_fff0_0000, 0x1000, 0x10_0000 },
        // amdv1 grows its top from level 2 to level 4 for this IOVA: increase_top's allocations can fail too.
        { PtFormatKind.Amdv1, 1UL << 50, 0x1000, 2 * K4 },
    };

    [Theory]
    [MemberData(nameof(Maps))]
    public void MapPastTheBound_FailsWithEnomem_AndLeavesTheTableConsistent(PtFormatKind kind, ulong iova, ulong pa, ulong size)
    {
        // What the table looks like when nothing fails.
        var reference = Prepared(kind, int.MaxValue, out _);
        Assert.Equal(Errno.None, reference.IommuMap(iova, pa, size, UnitHelpers.RW));
        var referenceLeaves = UnitHelpers.Leaves(reference);

        int failures = 0;
        for (int extra = 0; ; extra++)
        {
            Assert.True(extra <= 16, $"{kind}: the map still fails with {extra} more pages allowed");
            var d = Prepared(kind, int.MaxValue, out var mem);
            var before = UnitHelpers.Leaves(d);
            int topBefore = d.TopLevel;
            mem.PageLimit = mem.AllocatedPages + extra;

            var err = d.IommuMap(iova, pa, size, UnitHelpers.RW);
            if (err == Errno.None)
            {
                Assert.Equal(referenceLeaves, UnitHelpers.Leaves(d));
                Assert.Equal(reference.TablePages, d.TablePages);
                break;
            }
            Assert.Equal(Errno.ENOMEM, err);
            failures++;
            Assert.True(mem.AllocatedPages <= mem.PageLimit);

            // The leaves are as they were: what the call mapped it unmapped again.
            Assert.Equal(before, UnitHelpers.Leaves(d));
            Assert.Equal(0x7000_0000UL, d.IommuIovaToPhys(0x5000));
            Assert.NotEqual(Errno.None, d.TryIovaToPhys(iova, out _)); // unmapped (ENOENT), or beyond a top not grown (ERANGE)
            // Every allocated page belongs to the domain; a grown amdv1 top may stay grown (SCRIPT-FORMAT reading 5).
            Assert.Equal(mem.AllocatedPages, d.TablePages);
            Assert.InRange(d.TopLevel, topBefore, reference.TopLevel);

            // The domain still works: with the bound lifted the same map succeeds and builds the reference table.
            mem.PageLimit = int.MaxValue;
            Assert.Equal(Errno.None, d.IommuMap(iova, pa, size, UnitHelpers.RW));
            Assert.Equal(referenceLeaves, UnitHelpers.Leaves(d));
            Assert.Equal(reference.TablePages, d.TablePages);

            // deinit walks the tables from the top and frees each: every page was reachable, none linked twice.
            d.Deinit();
            Assert.Equal(0, mem.AllocatedPages);
        }
        Assert.True(failures >= 2, $"{kind}: only {failures} allocation points were tried");
    }

    [Fact]
    public void DefaultBound_Is1GiBOfTablePages()
    {
        Assert.Equal(262_144, TableMemory.DefaultPageLimit);
        Assert.Equal(TableMemory.DefaultPageLimit, new TableMemory().PageLimit);
        Assert.Equal(1UL << 30, (ulong)TableMemory.DefaultPageLimit << TableMemory.PageLg2);
    }

    [Fact]
    public void NegativeBound_IsRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TableMemory(pageLimit: -1));
        var mem = new TableMemory();
        Assert.Throws<ArgumentOutOfRangeException>(() => mem.PageLimit = -1);
        Assert.Equal(TableMemory.DefaultPageLimit, mem.PageLimit);
    }

    [Fact]
    public void DomainInit_PastTheBound_IsEnomem_AndAllocatesNothing()
    {
        foreach (var kind in new[] { PtFormatKind.Amdv1, PtFormatKind.X86_64, PtFormatKind.Vtdss, PtFormatKind.Riscv64 })
        {
            var mem = new TableMemory(pageLimit: 0);
            Assert.Equal(Errno.ENOMEM, IommuDomain.Create(PtConfig.Default(kind), mem, out var d));
            Assert.Null(d);
            Assert.Equal(0, mem.AllocatedPages);
        }
    }

    /// <summary>A domain of <paramref name="kind"/> with one 4K page mapped at 0x5000, in a memory of its own.</summary>
    private static IommuDomain Prepared(PtFormatKind kind, int pageLimit, out TableMemory mem)
    {
        mem = new TableMemory(pageLimit: pageLimit);
        var d = UnitHelpers.Make(PtConfig.Default(kind), mem);
        Assert.Equal(Errno.None, d.IommuMap(0x5000, 0x7000_0000, K4, UnitHelpers.RW));
        return d;
    }
}
