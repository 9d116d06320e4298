using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using PtActors.Engine;
using PtActors.Engine.Dma;
using PtActors.Engine.Hardware;
using PtActors.Engine.Workloads;

namespace PtActors.Bench;

/// <summary>
/// The simulator's work without actors or persistence: the same devices, domain models and IOMMU units,
/// driven window by window in one thread. The actor simulator's ops/s divided by this one's is the actor
/// (and persistence) overhead.
/// </summary>
public static class DirectSim
{
    private sealed class Sink(List<DmaOp>[] ops, List<(ulong, int, uint, ulong, bool)>[] dmas) : IWorkloadSink
    {
        public int Domain, Unit, Device;
        private uint _seq;

        public void Submit(in DmaOp op) => ops[Domain].Add(op);

        public void Dma(ulong stampNs, ulong iova, bool write) => dmas[Unit].Add((stampNs, Device, _seq++, iova, write));
    }

    /// <summary>Runs until <paramref name="targetOps"/> map+unmap calls completed; prints one line.</summary>
    public static void Run(string workload, int iommus, int domains, int devices, long targetOps, TextWriter output)
    {
        var clock = new SimClock[iommus];
        var units = new IommuUnit[iommus];
        for (int u = 0; u < iommus; u++)
        {
            clock[u] = new SimClock();
            units[u] = new IommuUnit("iommu" + u, new IommuUnitConfig { Policy = new FlushPolicySpec(FlushPolicyKind.Lazy) }, clock[u]);
        }
        var models = new DomainModel[domains];
        var released = new List<long>[domains];
        var byTable = new Dictionary<IommuDomain, int>(ReferenceEqualityComparer.Instance);
        for (int d = 0; d < domains; d++)
        {
            DomainModel.Create(PtConfig.Default(PtFormatKind.X86_64), 0x1000, 0xffff_ffff, out var m);
            models[d] = m!;
            m!.DeferFlushes();
            released[d] = new List<long>();
            byTable[m.Domain] = d;
        }
        for (int u = 0; u < iommus; u++)
        {
            var rel = released;
            units[u].UnmapReleased = (table, id) => rel[byTable[table]].Add(id);
        }
        var workloads = new IDeviceWorkload[devices];
        var deviceObjs = new IommuDevice[devices];
        var options = new WorkloadOptions();
        for (int i = 0; i < devices; i++)
        {
            workloads[i] = WorkloadFactory.Create(workload, i, 1, options);
            int d = i % domains;
            deviceObjs[i] = units[d % iommus].Device("dev" + i);
            units[d % iommus].Attach(deviceObjs[i], models[d].Domain, splitMode: true, domainId: d + 1);
        }
        var ops = new List<DmaOp>[domains];
        for (int d = 0; d < domains; d++)
            ops[d] = new List<DmaOp>();
        var dmas = new List<(ulong, int, uint, ulong, bool)>[iommus];
        for (int u = 0; u < iommus; u++)
            dmas[u] = new List<(ulong, int, uint, ulong, bool)>();
        var sink = new Sink(ops, dmas);
        var outcome = new BatchOutcome();
        var notices = new List<(ulong Stamp, long Id, int Domain, UnmapNotice N)>[iommus];
        for (int u = 0; u < iommus; u++)
            notices[u] = new();
        long done = 0;
        long tGen = 0, tDom = 0, tUnit = 0;
        var sw = Stopwatch.StartNew();
        const ulong Window = 100_000;
        for (long w = 1; done < targetOps; w++)
        {
            ulong t0 = (ulong)(w - 1) * Window, t1 = (ulong)w * Window;
            long p0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < devices; i++)
            {
                sink.Device = i;
                sink.Domain = i % domains;
                sink.Unit = sink.Domain % iommus;
                workloads[i].Generate(t0, t1, sink);
            }
            long p1 = Stopwatch.GetTimestamp();
            tGen += p1 - p0;
            for (int d = 0; d < domains; d++)
            {
                ops[d].Sort();
                outcome.Clear();
                models[d].ApplyBatch([], CollectionsMarshal.AsSpan(released[d]), t0, CollectionsMarshal.AsSpan(ops[d]), outcome);
                released[d].Clear();
                ops[d].Clear();
                foreach (var r in outcome.Results)
                {
                    if (r.Kind is DmaOpKind.DmaMap or DmaOpKind.Map or DmaOpKind.Unmap)
                        done++;
                    workloads[(int)(r.Id >> 32)].OnResult(r);
                }
                foreach (var n in outcome.Notices)
                    notices[d % iommus].Add((n.StampNs, n.Id, d, n));
                foreach (var f in outcome.Flushes)
                    units[d % iommus].FlushNow(models[d].Domain, f.Id, f.Start, f.End, f.Kind);
            }
            long p2 = Stopwatch.GetTimestamp();
            tDom += p2 - p1;
            for (int u = 0; u < iommus; u++)
            {
                notices[u].Sort((a, b) => (a.Stamp, a.Id).CompareTo((b.Stamp, b.Id)));
                dmas[u].Sort();
                int ni = 0;
                foreach (var (stamp, dev, _, iova, write) in dmas[u])
                {
                    while (ni < notices[u].Count && notices[u][ni].Stamp <= stamp)
                    {
                        var (s, id, d, n) = notices[u][ni++];
                        clock[u].AdvanceTo(s);
                        units[u].Unmapped(models[d].Domain, id, n.Iova, n.Unmapped);
                    }
                    clock[u].AdvanceTo(stamp);
                    units[u].Dma(deviceObjs[dev], iova, write);
                }
                for (; ni < notices[u].Count; ni++)
                {
                    var (s, id, d, n) = notices[u][ni];
                    clock[u].AdvanceTo(s);
                    units[u].Unmapped(models[d].Domain, id, n.Iova, n.Unmapped);
                }
                notices[u].Clear();
                dmas[u].Clear();
                clock[u].AdvanceTo(t1);
            }
            tUnit += Stopwatch.GetTimestamp() - p2;
        }
        double s2 = sw.Elapsed.TotalSeconds;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"direct {workload}: {done} map+unmap ops in {s2:F2} s = {done / s2:F0} ops/s (one thread, no actors, no persistence; devices {tGen / (double)Stopwatch.Frequency:F2} s, domains {tDom / (double)Stopwatch.Frequency:F2} s, units {tUnit / (double)Stopwatch.Frequency:F2} s)"));
    }
}
