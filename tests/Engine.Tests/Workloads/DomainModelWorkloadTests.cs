using PtActors.Engine.Dma;
using PtActors.Engine.Workloads;
using Xunit;

namespace PtActors.Engine.Tests.Workloads;

/// <summary>
/// The workloads against the real <see cref="DomainModel"/> (at the domain actor's default IOVA range): each window's
/// operations applied in stamp order, its unmaps' flushes completed (released) at the start of the next.
/// </summary>
public class DomainModelWorkloadTests
{
    private sealed class Collect(List<DmaOp> ops) : IWorkloadSink
    {
        public long Dmas;

        public void Submit(in DmaOp op) => ops.Add(op);

        public void Dma(ulong stampNs, ulong iova, bool write) => Dmas++;
    }

    [Theory]
    [InlineData(PtFormatKind.X86_64)]
    [InlineData(PtFormatKind.Amdv1)]
    [InlineData(PtFormatKind.Riscv64)]
    public void MixedDevicesRunOnTheDomainModel(PtFormatKind format)
    {
        Assert.Equal(Errno.None, DomainModel.Create(PtConfig.Default(format), 0x1000, 0xffff_ffff, out var model));
        var options = new WorkloadOptions { GpuRemapMeanNs = 200_000, GpuHugeProbability = 0.5 };
        var devices = new DeviceWorkload[20];
        for (int i = 0; i < devices.Length; i++)
            devices[i] = WorkloadFactory.Create("mixed", i, 2024, options);
        var ops = new List<DmaOp>();
        var sink = new Collect(ops);
        var ran = new BatchOutcome();
        var parked = new List<long>();
        var errors = new Dictionary<(string Kind, Errno Error), int>();
        ulong t = 0;
        for (int w = 0; w < 60; w++, t += 100_000)
        {
            ops.Clear();
            foreach (var d in devices)
                d.Generate(t, t + 100_000, sink);
            ops.Sort();
            ran.Clear();
            model!.ApplyBatch([], parked.ToArray(), t, ops.ToArray(), ran);
            parked.Clear();
            foreach (var n in ran.Notices)
                parked.Add(n.Id);
            foreach (var r in ran.Results)
            {
                var dev = devices[(int)(r.Id >> 32)];
                if (r.Error != Errno.None)
                    errors[(dev.Kind, r.Error)] = errors.GetValueOrDefault((dev.Kind, r.Error)) + 1;
                dev.OnResult(r);
            }
        }
        // The well-behaved kinds see no error at all; the random ones overlap (EADDRINUSE), and may read dirty
        // bits where the format does not track them.
        foreach (var ((kind, err), count) in errors)
            Assert.True(kind == "random" && err is Errno.EADDRINUSE or Errno.EOPNOTSUPP, $"{kind}: {count} × {err}");
        Assert.Contains(errors.Keys, k => k.Error == Errno.EADDRINUSE);
        foreach (var d in devices)
        {
            Assert.True(d.Stats.UnitsCompleted > 0, $"device {d.Device} ({d.Kind}) completed nothing");
            Assert.InRange(d.Inflight, 0, d.MaxInflight);
        }
        Assert.Contains(devices, d => d is GpuWorkload { HasHugeBuffer: true });
        Assert.True(sink.Dmas > 50_000);
    }
}
