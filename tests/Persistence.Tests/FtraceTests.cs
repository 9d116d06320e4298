using PtActors.Engine;
using PtActors.Engine.Dma;
using PtActors.Persistence.Traces;
using Xunit;

namespace PtActors.Persistence.Tests;

/// <summary>
/// <see cref="FtraceLine"/> and <see cref="TraceImport"/>: each line shape and iommu layout, the dma events, skipped
/// and malformed lines with their reasons and line numbers, attribution, and the example traces in examples/traces/.
/// </summary>
public class FtraceTests
{
    private const string Nvme = "0000:01:00.0", Nic = "0000:02:00.0";

    private static FtraceEvent Parse(string line) => FtraceLine.Parse(line);

    // ---- one line ------------------------------------------------------------------------------------------

    [Fact]
    public void CurrentLayoutMapFromTheRequirement()
    {
        const string line = "  task-532 [010] .....  4.878076: map: IOMMU: iova=0x00000000fe980000 - 0x00000000fea00000 paddr=0x000000010ec80000 size=524288";
        var e = Parse(line);
        Assert.Equal(FtraceKind.Map, e.Kind);
        Assert.Equal("task", line[e.Task]);
        Assert.Equal(532, e.Pid);
        Assert.Equal(10, e.Cpu);
        Assert.Equal(4_878_076_000UL, e.TimestampNs);
        Assert.Equal("map", line[e.EventName]);
        Assert.Equal(0xfe980000UL, e.Iova);
        Assert.Equal(0xfea00000UL, e.End);
        Assert.Equal(0x10ec80000UL, e.Paddr);
        Assert.Equal(524288UL, e.Size);
        Assert.Equal(IommuLayout.Range, e.Layout);
    }

    [Fact]
    public void LegacyLayoutsComputeTheEnd()
    {
        var m = Parse("  task-532 [010] ....  4.878076: map: IOMMU: iova=0x00000000fe980000 paddr=0x000000010ec80000 size=524288");
        Assert.Equal(FtraceKind.Map, m.Kind);
        Assert.Equal(IommuLayout.Legacy, m.Layout);
        Assert.Equal(0xfea00000UL, m.End);
        Assert.Equal(0x10ec80000UL, m.Paddr);

        var u = Parse("  task-532 [010] ....  4.878080: unmap: IOMMU: iova=0x00000000fe980000 size=524288 unmapped_size=4096");
        Assert.Equal(FtraceKind.Unmap, u.Kind);
        Assert.Equal(IommuLayout.Legacy, u.Layout);
        Assert.Equal((0xfe980000UL, 0xfea00000UL, 524288UL, 4096UL), (u.Iova, u.End, u.Size, u.UnmappedSize));

        var c = Parse("  task-532 [010] ....  4.878080: unmap: IOMMU: iova=0x00000000fe980000 - 0x00000000fea00000 size=524288 unmapped_size=4096");
        Assert.Equal(IommuLayout.Range, c.Layout);
        Assert.Equal((u.Iova, u.End, u.Size, u.UnmappedSize), (c.Iova, c.End, c.Size, c.UnmappedSize));
    }

    [Theory]
    [InlineData("4.878076", 4_878_076_000UL)]
    [InlineData("0.000001", 1_000UL)]
    [InlineData("12345.123456789", 12_345_123_456_789UL)]
    [InlineData("1.5", 1_500_000_000UL)]
    [InlineData("18446744073.709551615", ulong.MaxValue)]
    [InlineData("987654321", 987_654_321UL)]   // a counter clock: taken as ns
    public void TimestampsAreExact(string ts, ulong ns)
    {
        var e = Parse($"  bash-1 [000] .... {ts}: map: IOMMU: iova=0x1000 - 0x2000 paddr=0x5000 size=4096");
        Assert.Equal(FtraceKind.Map, e.Kind);
        Assert.Equal(ns, e.TimestampNs);
    }

    [Fact]
    public void LineShapes()
    {
        // trace-cmd report: no flags, padded event name; system:event; latency column instead of [cpu]; tgid column;
        // task names with spaces and dashes; <idle>-0.
        string[] lines =
        {
            "     kworker/0:1-12    [000]     4.878002: map:                     IOMMU: iova=0x1000 - 0x2000 paddr=0x5000 size=4096",
            "     kworker/0:1-12    [000]     4.878002: iommu:map: IOMMU: iova=0x1000 - 0x2000 paddr=0x5000 size=4096",
            "     kworker/0:1-12    0d..1     4.878002: map: IOMMU: iova=0x1000 - 0x2000 paddr=0x5000 size=4096",
            "     kworker/0:1-12    (     12) [000] d.h2.  4.878002: map: IOMMU: iova=0x1000 - 0x2000 paddr=0x5000 size=4096",
            "     kworker/0:1-12    (-------) [000] d.h2.  4.878002: map: IOMMU: iova=0x1000 - 0x2000 paddr=0x5000 size=4096",
        };
        foreach (string line in lines)
        {
            var e = Parse(line);
            Assert.True(e.Kind == FtraceKind.Map, $"{line}: {e.Reason}");
            Assert.Equal("kworker/0:1", line[e.Task]);
            Assert.Equal((12, 0, 4_878_002_000UL), (e.Pid, e.Cpu, e.TimestampNs));
            Assert.Equal("map", line[e.EventName]);
        }
        const string spaced = "       fio job 1-1432    [002] .....     4.878009: map: IOMMU: iova=0x1000 - 0x2000 paddr=0x5000 size=4096";
        var s = Parse(spaced);
        Assert.Equal(("fio job 1", 1432, 2), (spaced[s.Task], s.Pid, s.Cpu));
        const string dashed = "     irq/45-eth0-745     [003] d.s1.     4.878011: map: IOMMU: iova=0x1000 - 0x2000 paddr=0x5000 size=4096";
        var d = Parse(dashed);
        Assert.Equal(("irq/45-eth0", 745, 3), (dashed[d.Task], d.Pid, d.Cpu));
        const string idle = "          <idle>-0       [001] d.h1.   123.456789: io_page_fault: IOMMU:ixgbe 0000:02:00.0 iova=0x00000000ffd06000 flags=0x0020";
        var f = Parse(idle);
        Assert.Equal(FtraceKind.IoPageFault, f.Kind);
        Assert.Equal(("<idle>", 0, 1), (idle[f.Task], f.Pid, f.Cpu));
        Assert.Equal(("ixgbe", Nic, 0xffd06000UL, 0x20), (idle[f.Driver], idle[f.Device], f.Iova, f.Flags));
        const string noDriver = "  <idle>-0 [001] d.h1. 1.000000: io_page_fault: IOMMU: 0000:00:1f.0 iova=0x0000000000001000 flags=0x0001";
        var nd = Parse(noDriver);
        Assert.Equal(("", "0000:00:1f.0"), (noDriver[nd.Driver], noDriver[nd.Device]));
    }

    [Fact]
    public void DmaEvents()
    {
        const string map = "  fio-1 [002] ..... 4.0: dma_map_phys: 0000:01:00.0 dir=FROM_DEVICE dma_addr=fea80800 size=129024 phys_addr=10ed80800 attrs=";
        var m = Parse(map);
        Assert.Equal(FtraceKind.DmaMap, m.Kind);
        Assert.Equal((Nvme, DmaDirection.FromDevice, 0xfea80800UL, 129024UL, 0xfea80800UL + 129024, 0x10ed80800UL, true, false),
            (map[m.Device], m.Direction, m.Iova, m.Size, m.End, m.Paddr, m.HasRange, m.TracedBefore));

        var page = Parse("  x-1 [002] ..... 4.0: dma_map_page: 0000:02:00.0 dir=TO_DEVICE dma_addr=ffd00042 size=1514 phys_addr=1149a0042 attrs=SKIP_CPU_SYNC|WEAK_ORDERING");
        Assert.Equal((FtraceKind.DmaMap, DmaDirection.ToDevice, 0xffd00042UL), (page.Kind, page.Direction, page.Iova));
        Assert.Equal(FtraceKind.DmaMap, Parse("  x-1 [002] ..... 4.0: dma:dma_map_resource: 0000:02:00.0 dir=BIDIRECTIONAL dma_addr=ffd00000 size=4096 phys_addr=fe000000 attrs=MMIO").Kind);

        // 6.12 dma_alloc had no dir=; a failed alloc prints dma_addr=0 and claims nothing.
        var alloc = Parse("  x-1 [000] ..... 4.0: dma_alloc: 0000:01:00.0 dma_addr=ffffc000 size=16384 virt_addr=00000000b5a1c3d2 flags=GFP_KERNEL attrs=");
        Assert.Equal((FtraceKind.DmaAlloc, DmaDirection.Unknown, 0xffffc000UL, true), (alloc.Kind, alloc.Direction, alloc.Iova, alloc.HasRange));
        Assert.False(Parse("  x-1 [000] ..... 4.0: dma_alloc_pages: 0000:01:00.0 dir=BIDIRECTIONAL dma_addr=0 size=16384 virt_addr=0000000000000000 flags=GFP_KERNEL attrs=").HasRange);
        // A failed map prints DMA_MAPPING_ERROR.
        Assert.False(Parse("  x-1 [000] ..... 4.0: dma_map_phys: 0000:01:00.0 dir=TO_DEVICE dma_addr=ffffffffffffffff size=4096 phys_addr=1000 attrs=").HasRange);

        var free = Parse("  x-1 [000] ..... 4.0: dma_free: 0000:01:00.0 dir=BIDIRECTIONAL dma_addr=ffffc000 size=16384 virt_addr=00000000b5a1c3d2 attrs=");
        Assert.Equal((FtraceKind.DmaFree, true, true), (free.Kind, free.TracedBefore, free.HasRange));
        var unmap = Parse("  x-1 [000] ..... 4.0: dma_unmap_phys: 0000:01:00.0 dir=FROM_DEVICE dma_addr=fe980200 size=3584 attrs=");
        Assert.Equal((FtraceKind.DmaUnmap, false, 0xfe980200UL), (unmap.Kind, unmap.TracedBefore, unmap.Iova));

        // dma_map_sg: the span of its entries; dma_unmap_sg: physical addresses only, traced before the unmap.
        var sg = Parse("  x-1 [000] ..... 4.0: dma_map_sg: 0000:01:00.0 dir=TO_DEVICE nents=2/2 ents=2/2 dma_addrs={0xfe000000,0xfe002000} sizes={0x2000,0x1000} phys_addrs={0x1000,0x9000} attrs=");
        Assert.Equal((FtraceKind.DmaMap, 0xfe000000UL, 0xfe003000UL, true), (sg.Kind, sg.Iova, sg.End, sg.HasRange));
        var sgTrunc = Parse("  x-1 [000] ..... 4.0: dma_map_sg: 0000:01:00.0 dir=TO_DEVICE nents=128/200 ents=1/1 [TRUNCATED] dma_addrs={0xfe000000} sizes={4096} phys_addrs={0x1000} attrs=");
        Assert.Equal((0xfe000000UL, 0xfe001000UL), (sgTrunc.Iova, sgTrunc.End));
        var unsg = Parse("  x-1 [000] ..... 4.0: dma_unmap_sg: 0000:01:00.0 dir=TO_DEVICE phys_addrs={0x1000,0x9000} attrs=");
        Assert.Equal((FtraceKind.DmaUnmap, true, false), (unsg.Kind, unsg.TracedBefore, unsg.HasRange));
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("# tracer: nop")]
    [InlineData("#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION")]
    [InlineData("cpus=4")]
    [InlineData("version = 6")]
    [InlineData("CPU 0 is empty")]
    [InlineData("CPU:1 [LOST 3 EVENTS]")]
    [InlineData(" => iommu_map")]
    public void HeadersAreSkipped(string line) => Assert.Equal(FtraceKind.Skip, Parse(line).Kind);

    [Theory]
    [InlineData("  bash-1 [000] .... 1.0: sched_switch: prev_comm=bash prev_pid=1 ==> next_comm=swapper/0")]
    [InlineData("  bash-1 [000] .... 1.0: attach_device_to_domain: IOMMU: device=0000:01:00.0")]
    [InlineData("  bash-1 [000] .... 1.0: dma_sync_single_for_cpu: 0000:01:00.0 dir=FROM_DEVICE dma_addr=fe980000 size=4096")]
    [InlineData("  bash-1 [000] .... 1.0: map: something else")]              // not iommu's map
    [InlineData("  bash-1 [000] .... 1.0: xen:map: IOMMU: iova=0x1000 paddr=0x1000 size=4096")]   // another system
    public void OtherEventsAreSkipped(string line) => Assert.Equal(FtraceKind.Other, Parse(line).Kind);

    public static TheoryData<string, string> MalformedLines() => new()
    {
        { "garbage without a timestamp", "timestamp: no 'SECONDS.FRACTION:' field" },
        { "  bash-1 [0x0] .... 1.0: map: IOMMU: iova=0x1000 paddr=0x1000 size=4096", "cpu: not a number in [...]" },
        { "  bash-x [000] .... 1.0: map: IOMMU: iova=0x1000 paddr=0x1000 size=4096", "pid: not a number" },
        { "  bash [000] .... 1.0: map: IOMMU: iova=0x1000 paddr=0x1000 size=4096", "task-pid: no '-PID'" },
        { "  bash-1 [000] .... 99999999999.0: map: IOMMU: iova=0x1000 paddr=0x1000 size=4096", "timestamp: out of range" },
        { "  bash-1 [000] .... 1.0: map IOMMU", "event: no 'NAME:' after the timestamp" },
        { "  bash-1 [000] .... 1.0: map: IOMMU: iova=0xzz paddr=0x1000 size=4096", "iova: not a hex number" },
        { "  bash-1 [000] .... 1.0: map: IOMMU: paddr=0x1000 size=4096", "iova: missing" },
        { "  bash-1 [000] .... 1.0: map: IOMMU: iova=0x1000 size=4096", "paddr: missing" },
        { "  bash-1 [000] .... 1.0: map: IOMMU: iova=0x1000 paddr=0x1000 size=4k", "size: not a decimal number" },
        { "  bash-1 [000] .... 1.0: map: IOMMU: iova=0x1000 paddr=0x1000 size=0", "size=0: map of nothing" },
        { "  bash-1 [000] .... 1.0: map: IOMMU: iova=0x2000 - 0x1000 paddr=0x1000 size=4096", "end 0x1000 before iova 0x2000" },
        { "  bash-1 [000] .... 1.0: map: IOMMU: iova=0x1000 - 0x3000 paddr=0x1000 size=4096", "end 0x3000 is not iova + size (0x2000)" },
        { "  bash-1 [000] .... 1.0: map: IOMMU: iova=0xfffffffffffff000 paddr=0x1000 size=8192", "iova 0xfffffffffffff000 + size 8192 wraps past 2^64" },
        { "  bash-1 [000] .... 1.0: map: IOMMU: iova=0x1000 paddr=0x1000 size=4096 prot=3", "map: unexpected 'prot=3' after size" },
        { "  bash-1 [000] .... 1.0: unmap: IOMMU: iova=0x1000 size=4096", "unmapped_size: missing" },
        { "  bash-1 [000] .... 1.0: unmap: IOMMU: iova=0x1000 size=4096 unmapped_size=-1", "unmapped_size: not a decimal number" },
        { "  bash-1 [000] .... 1.0: io_page_fault: IOMMU:ixgbe 0000:02:00.0 flags=0x0020", "io_page_fault: missing iova=" },
        { "  bash-1 [000] .... 1.0: io_page_fault: IOMMU:ixgbe 0000:02:00.0 iova=0x1000 flags=zz", "flags: not a hex number" },
        { "  bash-1 [000] .... 1.0: dma_map_phys: dir=TO_DEVICE dma_addr=1000 size=4096 phys_addr=1000 attrs=", "device: missing before the fields" },
        { "  bash-1 [000] .... 1.0: dma_map_phys: 0000:01:00.0 dir=TO_DEVICE dma_addr=xyz size=4096 phys_addr=1000 attrs=", "dma_addr: not a hex number" },
        { "  bash-1 [000] .... 1.0: dma_unmap_phys: 0000:01:00.0 dir=TO_DEVICE size=4096 attrs=", "dma_addr: missing" },
        { "  bash-1 [000] .... 1.0: dma_free: 0000:01:00.0 dir=BIDIRECTIONAL dma_addr=1000 virt_addr=0 attrs=", "size: missing" },
        { "  bash-1 [000] .... 1.0: dma_map_sg: 0000:01:00.0 dir=TO_DEVICE nents=1/1 ents=1/1 dma_addrs=0x1000 sizes={4096} attrs=", "dma_addrs/sizes: not a {..} array" },
    };

    [Theory]
    [MemberData(nameof(MalformedLines))]
    public void MalformedLinesNameTheField(string line, string reason)
    {
        var e = Parse(line);
        Assert.Equal(FtraceKind.Malformed, e.Kind);
        Assert.Equal(reason, e.Reason);
    }

    // ---- a whole trace -------------------------------------------------------------------------------------

    /// <summary>
    /// The same small story in one layout: the NVMe maps on cpu 2 (task "fio job 1"), the NIC maps in softirq on
    /// cpu 3, a completion interrupt unmaps on the idle task, an allocation in two iommu:map chunks, a dma_free
    /// traced before its unmap, a VFIO-style unmap nobody claims, a fault, other events and two bad lines.
    /// </summary>
    private static string[] Story(bool legacy, bool report)
    {
        string M(ulong iova, ulong pa, ulong size) => legacy
            ? $"map: IOMMU: iova=0x{iova:x16} paddr=0x{pa:x16} size={size}"
            : $"map: IOMMU: iova=0x{iova:x16} - 0x{iova + size:x16} paddr=0x{pa:x16} size={size}";
        string U(ulong iova, ulong size, ulong unmapped) => legacy
            ? $"unmap: IOMMU: iova=0x{iova:x16} size={size} unmapped_size={unmapped}"
            : $"unmap: IOMMU: iova=0x{iova:x16} - 0x{iova + size:x16} size={size} unmapped_size={unmapped}";
        string L(string task, int pid, int cpu, string flags, string ts, string ev) => report
            ? $"{task,16}-{pid,-5} [{cpu:d3}] {ts}: {ev}"
            : $"{task,16}-{pid,-7} [{cpu:d3}] {flags} {ts}: {ev}";
        return new[]
        {
            report ? "cpus=4" : "# tracer: nop",                                                                       // 1
            L("kworker/0:1", 12, 0, ".....", "4.000001", M(0xffffc000, 0x10ec84000, 8192)),                           // 2
            L("kworker/0:1", 12, 0, ".....", "4.000001", M(0xffffe000, 0x10ec90000, 8192)),                           // 3
            L("kworker/0:1", 12, 0, ".....", "4.000002", $"dma_alloc: {Nvme} dir=BIDIRECTIONAL dma_addr=ffffc000 size=16384 virt_addr=00000000b5a1c3d2 flags=GFP_KERNEL attrs="),
            L("fio job 1", 1432, 2, ".....", "4.000010", M(0xfe980000, 0x10ec80000, 16384)),                          // 5
            L("irq/45-eth0", 745, 3, "d.s1.", "4.000010", M(0xffd00000, 0x1149a0000, 4096)),                         // 6
            L("fio job 1", 1432, 2, ".....", "4.000011", $"dma_map_phys: {Nvme} dir=FROM_DEVICE dma_addr=fe980200 size=15872 phys_addr=10ec80200 attrs="),
            L("irq/45-eth0", 745, 3, "d.s1.", "4.000011", $"dma_map_page: {Nic} dir=TO_DEVICE dma_addr=ffd00042 size=1514 phys_addr=1149a0042 attrs=SKIP_CPU_SYNC"),
            L("irq/45-eth0", 745, 3, "d.s1.", "4.000012", "net_dev_xmit: dev=eth0 skbaddr=00000000ac3c8f70 len=1514 rc=0"), // 9
            L("<idle>", 0, 2, "d.h1.", "4.000020", U(0xfe980000, 16384, 16384)),                                      // 10
            L("<idle>", 0, 2, "d.h1.", "4.000021", $"dma_unmap_phys: {Nvme} dir=FROM_DEVICE dma_addr=fe980200 size=15872 attrs="),
            L("bad", 1, 0, ".....", "4.000022", "map: IOMMU: iova=0x1000 - 0x3000 paddr=0x1000 size=4096"),          // 12: a bad end (legacy: size=0)
            L("qemu-system-x86", 2210, 1, ".....", "4.000030", U(0x80000000, 0x200000, 0)),                          // 13
            L("<idle>", 0, 3, "d.h1.", "4.000031", $"io_page_fault: IOMMU:ixgbe {Nic} iova=0x00000000ffd06000 flags=0x0020"),
            "complete garbage",                                                                                        // 15
            L("irq/45-eth0", 745, 3, "d.s1.", "4.000040", U(0xffd00000, 4096, 4096)),                                 // 16
            L("irq/45-eth0", 745, 3, "d.s1.", "4.000041", $"dma_unmap_page: {Nic} dir=TO_DEVICE dma_addr=ffd00042 size=1514 attrs=SKIP_CPU_SYNC"),
            L("kworker/0:1", 12, 0, ".....", "4.000050", $"dma_free: {Nvme} dir=BIDIRECTIONAL dma_addr=ffffc000 size=16384 virt_addr=00000000b5a1c3d2 attrs="),
            L("kworker/0:1", 12, 0, ".....", "4.000051", U(0xffffc000, 16384, 16384)),                                // 19
        };
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void EveryLayoutGivesTheSameImport(bool legacy, bool report)
    {
        var lines = Story(legacy, report);
        if (legacy) lines[11] = lines[11].Replace("iova=0x1000 - 0x3000 paddr=0x1000 size=4096", "iova=0x1000 paddr=0x1000 size=0");
        var t = TraceImport.Import(lines, "story.trace");

        Assert.Equal(new[] { Nvme, Nic, TraceImport.Unattributed }, t.Devices);
        Assert.Equal(0, t.DeviceIndex[Nvme]);
        ulong t0 = 4_000_001_000;
        Assert.Equal(t0, t.FirstTimestampNs);
        const IommuProt rw = IommuProt.Read | IommuProt.Write;
        DmaOp[] expected =
        {
            new(0, DmaOp.MakeId(0, 0), DmaOpKind.Map, 0xffffc000, 0x10ec84000, 8192, rw),
            new(1, DmaOp.MakeId(0, 1), DmaOpKind.Map, 0xffffe000, 0x10ec90000, 8192, rw),          // same µs: +1 ns
            new(9_000, DmaOp.MakeId(0, 2), DmaOpKind.Map, 0xfe980000, 0x10ec80000, 16384, rw),
            new(9_001, DmaOp.MakeId(1, 0), DmaOpKind.Map, 0xffd00000, 0x1149a0000, 4096, rw),
            new(19_000, DmaOp.MakeId(0, 3), DmaOpKind.Unmap, 0xfe980000, 0, 16384, IommuProt.None),
            new(29_000, DmaOp.MakeId(2, 0), DmaOpKind.Unmap, 0x80000000, 0, 0x200000, IommuProt.None),
            new(39_000, DmaOp.MakeId(1, 1), DmaOpKind.Unmap, 0xffd00000, 0, 4096, IommuProt.None),
            new(50_000, DmaOp.MakeId(0, 4), DmaOpKind.Unmap, 0xffffc000, 0, 16384, IommuProt.None),
        };
        Assert.Equal(expected, t.Ops);
        Assert.Equal(new[] { 2, 3, 5, 6, 10, 13, 16, 19 }, Enumerable.Range(0, t.Ops.Count).Select(t.SourceLine));
        Assert.Equal(0UL, t.RecordedUnmappedSize[DmaOp.MakeId(2, 0)]);
        Assert.Equal(16384UL, t.RecordedUnmappedSize[DmaOp.MakeId(0, 3)]);
        Assert.Equal(4, t.RecordedUnmappedSize.Count);
        Assert.Equal(new[] { new TracedFault(1, 0xffd06000, 0x20, 30_000, 14) }, t.Faults);

        var c = t.Counts;
        Assert.Equal((19, 4, 4, 1, 6, 1, 1, 2, 1), (c.Lines, c.Maps, c.Unmaps, c.Faults, c.DmaEvents, c.HeaderLines, c.OtherEvents, c.Malformed, c.UnattributedOps));
        string reason12 = legacy ? "size=0: map of nothing" : "end 0x3000 is not iova + size (0x2000)";
        Assert.Equal(new[] { $"story.trace:12: {reason12}", "story.trace:15: timestamp: no 'SECONDS.FRACTION:' field" }, t.Malformed);
        Assert.Equal("imported 9 ops (4 maps, 4 unmaps, 1 faults), skipped 2 lines, malformed 2 lines, unmapped_size mismatches 0", t.Summary(0));

        Assert.False(t.CheckUnmapped(4, 16384, out _));
        Assert.True(t.CheckUnmapped(5, 0x200000, out var mm));
        Assert.Equal("story.trace:13: unmap iova=0x80000000 size=2097152: traced unmapped_size=0, engine unmapped 2097152", t.Describe(mm));
        Assert.False(t.CheckUnmapped(0, 0, out _));   // a map has nothing recorded
    }

    [Fact]
    public void TextReaderAndLinesAgree()
    {
        var lines = Story(legacy: false, report: false);
        var a = TraceImport.Import(lines, "s");
        var b = TraceImport.Import(new StringReader(string.Join("\r\n", lines)), "s");
        Assert.Equal(a.Ops, b.Ops);
        Assert.Equal(a.Malformed, b.Malformed);
        Assert.Equal(a.Counts, b.Counts);
        // A line longer than the reader's 64 Ki buffer.
        var c = TraceImport.Import(new StringReader(string.Join('\n', lines) + "\n" + new string('x', 200_000) + "\n" + lines[1]), "s");
        Assert.Equal(a.Ops.Count + 1, c.Ops.Count);
        Assert.Equal("s:20: timestamp: no 'SECONDS.FRACTION:' field", c.Malformed[^1]);
    }

    [Fact]
    public void PerCpuBuffersOutOfOrderAreSorted()
    {
        var lines = Story(legacy: false, report: false);
        // CPU 3's lines first, then the others (as two per-CPU buffers concatenated).
        var cpu3 = lines.Where(l => l.Contains("[003]", StringComparison.Ordinal)).ToArray();
        var rest = lines.Where(l => !l.Contains("[003]", StringComparison.Ordinal)).ToArray();
        var t = TraceImport.Import(cpu3.Concat(rest), "s");
        var sorted = TraceImport.Import(lines, "s");
        // Equal timestamps on different CPUs keep their input order, so only the two maps at 4.000010 (cpu 2's and
        // cpu 3's) swap; each device's operations are the same, in the same order.
        Assert.Equal(sorted.Devices, t.Devices);
        Assert.Equal(sorted.Ops.Select(o => o.StampNs), t.Ops.Select(o => o.StampNs));
        Assert.Equal(sorted.Ops.OrderBy(o => o.Id).Select(o => (o.Id, o.Kind, o.Iova)), t.Ops.OrderBy(o => o.Id).Select(o => (o.Id, o.Kind, o.Iova)));
        Assert.Equal((0xffd00000UL, 0xfe980000UL), (t.Ops[2].Iova, t.Ops[3].Iova));
    }

    [Fact]
    public void AttributionRules()
    {
        string[] lines =
        {
            // An interrupt on the same CPU and task maps for the NIC between the NVMe's iommu:map and its dma_map_phys.
            "  fio-7 [001] ..... 1.000001: map: IOMMU: iova=0x00000000fe980000 - 0x00000000fe981000 paddr=0x0000000000010000 size=4096",
            "  fio-7 [001] d.h1. 1.000002: map: IOMMU: iova=0x00000000ffd00000 - 0x00000000ffd01000 paddr=0x0000000000020000 size=4096",
            $"  fio-7 [001] d.h1. 1.000003: dma_map_page: {Nic} dir=FROM_DEVICE dma_addr=ffd00000 size=2048 phys_addr=20000 attrs=",
            $"  fio-7 [001] ..... 1.000004: dma_map_phys: {Nvme} dir=TO_DEVICE dma_addr=fe980000 size=4096 phys_addr=10000 attrs=",
            // Another task on another CPU cannot claim: stays unattributed.
            "  a-8 [002] ..... 1.000005: map: IOMMU: iova=0x0000000001000000 - 0x0000000001001000 paddr=0x0000000000030000 size=4096",
            $"  b-9 [003] ..... 1.000006: dma_map_phys: {Nvme} dir=TO_DEVICE dma_addr=1000000 size=4096 phys_addr=30000 attrs=",
            // dma_unmap_sg (no IOVA) claims the next unmap of its lane; dma_unmap_page claims only an overlapping unmap.
            $"  fio-7 [001] ..... 1.000007: dma_unmap_sg: {Nvme} dir=TO_DEVICE phys_addrs={{0x10000}} attrs=",
            "  fio-7 [001] ..... 1.000008: unmap: IOMMU: iova=0x00000000fe980000 - 0x00000000fe981000 size=4096 unmapped_size=4096",
            "  fio-7 [001] ..... 1.000009: unmap: IOMMU: iova=0x00000000ffd00000 - 0x00000000ffd01000 size=4096 unmapped_size=4096",
            $"  fio-7 [001] ..... 1.000010: dma_unmap_page: {Nvme} dir=TO_DEVICE dma_addr=fe980000 size=4096 attrs=",
        };
        var t = TraceImport.Import(lines, "a");
        string Dev(int op) => t.Devices[t.Ops[op].Device];
        Assert.Equal(new[] { Nvme, Nic, TraceImport.Unattributed, Nvme, TraceImport.Unattributed }, Enumerable.Range(0, 5).Select(Dev));
        Assert.Equal(2, t.Counts.UnattributedOps);
    }

    [Fact]
    public void EmptyImport()
    {
        var t = TraceImport.Import(Array.Empty<string>(), "empty");
        Assert.Empty(t.Ops);
        Assert.Empty(t.Devices);
        Assert.Equal("imported 0 ops (0 maps, 0 unmaps, 0 faults), skipped 0 lines, malformed 0 lines, unmapped_size mismatches 0", t.Summary(0));
    }

    [Fact]
    public void MalformedMessagesAreCappedButCounted()
    {
        var t = TraceImport.Import(Enumerable.Repeat("junk", TraceImport.MaxMalformedKept + 5), "j");
        Assert.Equal(TraceImport.MaxMalformedKept + 5, t.Counts.Malformed);
        Assert.Equal(TraceImport.MaxMalformedKept, t.Malformed.Count);
        Assert.Equal("j:1000: timestamp: no 'SECONDS.FRACTION:' field", t.Malformed[^1]);
    }

    // ---- the examples ------------------------------------------------------------------------------------

    private static ImportedTrace Example(string name)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "Traces", name);
        using var reader = new StreamReader(path);
        return TraceImport.Import(reader, "examples/traces/" + name);
    }

    [Fact]
    public void ExampleTraceAndReportImportAlike()
    {
        var raw = Example("nvme-nic.trace");
        var report = Example("nvme-nic.report");
        Assert.Equal(new[] { Nvme, Nic, TraceImport.Unattributed }, raw.Devices);
        Assert.Equal(raw.Ops, report.Ops);
        Assert.Equal(raw.Faults.Select(f => (f.Device, f.Iova, f.StampNs)), report.Faults.Select(f => (f.Device, f.Iova, f.StampNs)));
        Assert.Equal((134, 25, 21, 1, 44, 12, 31, 0, 1),
            (raw.Counts.Lines, raw.Counts.Maps, raw.Counts.Unmaps, raw.Counts.Faults, raw.Counts.DmaEvents, raw.Counts.HeaderLines, raw.Counts.OtherEvents, raw.Counts.Malformed, raw.Counts.UnattributedOps));
        Assert.Equal("imported 47 ops (25 maps, 21 unmaps, 1 faults), skipped 43 lines, malformed 0 lines, unmapped_size mismatches 0", raw.Summary(0));
        Assert.Equal((124, 2, 0), (report.Counts.Lines, report.Counts.HeaderLines, report.Counts.Malformed));
        // Per device: the NVMe has 2 + 11 maps and 9 + 1 unmaps, the NIC 1 + 11 and 9 + 1, the unattributed one unmap.
        int[] perDevice = new int[3];
        foreach (var op in raw.Ops) perDevice[op.Device]++;
        Assert.Equal(new[] { 23, 22, 1 }, perDevice);
        Assert.Equal(raw.Ops.OrderBy(o => o).ToArray(), raw.Ops);   // (stamp, id) order is the trace order
    }

    [Fact]
    public void LegacyExampleImportsTheSameOpsUnattributed()
    {
        var legacy = Example("legacy-5.10.trace");
        var raw = Example("nvme-nic.trace");
        Assert.Equal(new[] { TraceImport.Unattributed }, legacy.Devices);
        Assert.Equal(raw.Ops.Select(o => (o.StampNs, o.Kind, o.Iova, o.Paddr, o.Size)), legacy.Ops.Select(o => (o.StampNs, o.Kind, o.Iova, o.Paddr, o.Size)));
        Assert.Equal(46, legacy.Counts.UnattributedOps);
    }
}
