using System.Globalization;
using System.Text;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using PtActors.Persistence.Traces;

namespace PtActors.Bench;

/// <summary>
/// <c>import-ftrace</c>'s parsing half end to end (<see cref="TraceImport"/> from a UTF-8 stream in memory, so no
/// file I/O): a generated raw ftrace text of <see cref="Lines"/> lines in the mix of examples/traces/nvme-nic.trace
/// — per request an iommu:map and its dma_map_phys / dma_map_page, an unrelated event, and later the iommu:unmap
/// and dma_unmap_* — from an NVMe on two CPUs and a NIC on two others. Lines/s = Lines / mean.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 1, iterationCount: 5)]
public class FtraceImportBenchmarks
{
    /// <summary>Lines of the generated trace.</summary>
    public const int Lines = 1_000_000;

    private byte[] _text = null!;

    /// <summary>Generates the trace once.</summary>
    [GlobalSetup]
    public void Setup() => _text = Encoding.UTF8.GetBytes(Generate(Lines));

    /// <summary>Imports the whole trace.</summary>
    [Benchmark]
    public int Import()
    {
        using var reader = new StreamReader(new MemoryStream(_text, writable: false), Encoding.UTF8);
        var t = TraceImport.Import(reader, "bench.trace");
        if (t.Counts.Lines != Lines || t.Counts.Malformed != 0) throw new InvalidOperationException(t.Summary(0));
        return t.Ops.Count;
    }

    /// <summary>A raw ftrace text of exactly <paramref name="lines"/> lines (5 per request, requests round-robin on 4 CPUs).</summary>
    public static string Generate(int lines)
    {
        var sb = new StringBuilder(lines * 140);
        var ci = CultureInfo.InvariantCulture;
        ulong us = 4_000_000;
        int n = 0;
        ulong[] iova = { 0xfe000000, 0xfd000000, 0xffd00000, 0xffc00000 };
        string[] task = { "fio job 1-1432", "fio job 2-1433", "irq/45-eth0-745", "irq/46-eth0-746" };
        string[] dev = { "0000:01:00.0", "0000:01:00.0", "0000:02:00.0", "0000:02:00.0" };
        void Line(int cpu, string flags, string ev)
        {
            if (n++ >= lines) return;
            us += 1;
            sb.Append(ci, $"{task[cpu],24} [{cpu:d3}] {flags} {us / 1_000_000,5}.{us % 1_000_000:d6}: {ev}\n");
        }
        for (ulong k = 0; n < lines; k++)
        {
            for (int cpu = 0; cpu < 4; cpu++)
            {
                ulong a = iova[cpu] + ((k & 255) << 14), size = cpu < 2 ? 16384UL : 4096UL, pa = 0x100000000 + (k << 14);
                string dma = cpu < 2 ? "dma_map_phys" : "dma_map_page";
                string dir = cpu < 2 ? "FROM_DEVICE" : "TO_DEVICE";
                Line(cpu, ".....", $"map: IOMMU: iova=0x{a:x16} - 0x{a + size:x16} paddr=0x{pa:x16} size={size}");
                Line(cpu, ".....", $"{dma}: {dev[cpu]} dir={dir} dma_addr={a + 0x200:x} size={size - 0x200} phys_addr={pa + 0x200:x} attrs=");
                Line(cpu, "d.h1.", cpu < 2 ? "irq_handler_entry: irq=38 name=nvme0q2" : "net_dev_xmit: dev=eth0 skbaddr=00000000ac3c8f70 len=1514 rc=0");
                Line(cpu, "d.h1.", $"unmap: IOMMU: iova=0x{a:x16} - 0x{a + size:x16} size={size} unmapped_size={size}");
                Line(cpu, "d.h1.", $"{dma.Replace("map", "unmap", StringComparison.Ordinal)}: {dev[cpu]} dir={dir} dma_addr={a + 0x200:x} size={size - 0x200} attrs=");
            }
        }
        return sb.ToString();
    }
}
