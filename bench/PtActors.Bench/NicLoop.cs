using System.Diagnostics;
using System.Globalization;
using PtActors.Engine;
using PtActors.Engine.Hardware;

namespace PtActors.Bench;

/// <summary>
/// A NIC-like DMA-API loop on one IOMMU: per packet map a 4 KiB buffer at a free IOVA, DMA-write it twice (descriptor, payload), unmap it;
/// 1 µs of simulated time per packet (a 10 GbE port at line rate with 1500-byte frames). IOVAs come back to
/// the free pool only when the unit releases them (after the flush that covered them).
/// </summary>
public static class NicLoop
{
    /// <summary>Runs <paramref name="packets"/> packets under <paramref name="policy"/>; prints one result row.</summary>
    public static void Run(FlushPolicySpec policy, int packets, TextWriter output)
    {
        var clock = new SimClock();
        var unit = new IommuUnit("iommu0", new IommuUnitConfig { Policy = policy }, clock);
        if (IommuDomain.Create(PtConfig.Default(PtFormatKind.X86_64), new TableMemory(), out var d) != Errno.None)
            throw new InvalidOperationException("domain init failed");
        var dev = unit.Device("nic0");
        unit.Attach(dev, d!);

        const ulong Base = 0x1_0000_0000;
        const int Slots = 65536;
        var free = new Stack<int>(Slots);
        for (int i = Slots - 1; i >= 0; i--)
            free.Push(i);
        unit.IovaReleased = (_, start, last) =>
        {
            for (ulong va = start; va <= last; va += 0x1000)
                free.Push((int)((va - Base) >> 12));
        };

        long sw = Stopwatch.GetTimestamp();
        long stalls = 0;
        for (int p = 0; p < packets; p++)
        {
            if (free.Count == 0)
            {
                stalls++;   // out of IOVA: wait for the flush queue's timeout
                clock.Advance(1_000_000);
                p--;
                continue;
            }
            ulong iova = Base + ((ulong)free.Pop() << 12);
            if (d!.IommuMap(iova, 0x2_0000_0000 + ((ulong)(p & 1023) << 12), 0x1000, IommuProt.Read | IommuProt.Write) != Errno.None)
                throw new InvalidOperationException("map failed");
            unit.Dma(dev, iova + 64, write: true);      // descriptor write-back
            unit.Dma(dev, iova + 1536, write: true);    // payload: hits the entry just filled
            unit.Unmap(d, iova, 0x1000);
            clock.Advance(1000);
        }
        unit.Drain();
        double wall = Stopwatch.GetElapsedTime(sw).TotalSeconds;
        var s = unit.Stats;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {policy,-11} | {packets,9} | {s.Invalidations,13} | {(double)s.Invalidations / packets,8:F4} | {s.DomainInvalidations,8} | {s.InvalidatedBytes,14} | {s.OverInvalidatedBytes,12} | {s.InvalidationBusyNs / 1e6,9:F1} | {s.StaleInWindow,8} | {s.StaleViolations,5} | {s.HitRate,6:F3} | {packets / wall / 1e6,8:F2} |"));
    }

    /// <summary>Prints the table header.</summary>
    public static void Header(TextWriter output)
    {
        output.WriteLine("| policy      |   packets | invalidations | per unmap | domain  | invalidated B  | over-inv. B  | busy (ms) | in-window | viol. | hit rate | M pkts/s |");
        output.WriteLine("|-------------|----------:|--------------:|---------:|--------:|---------------:|-------------:|----------:|---------:|------:|-------:|---------:|");
    }
}
