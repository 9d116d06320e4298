using PtActors.Engine.Dma;
using PtActors.Engine.Workloads;
using Xunit;
using Xunit.Abstractions;

namespace PtActors.Engine.Tests.Workloads;

/// <summary>Tests that measure the managed heap: run alone, after the others.</summary>
[CollectionDefinition(nameof(HeapMeasurements), DisableParallelization = true)]
public sealed class HeapMeasurements;

/// <summary>What a device holds in memory once in its steady state (the simulator's default options).</summary>
[Collection(nameof(HeapMeasurements))]
public class WorkloadMemoryTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("nic", 3_000)]
    [InlineData("nvme", 10_000)]
    [InlineData("gpu", 2_000)]
    [InlineData("random", 4_500)]
    [InlineData("mixed", 4_500)]
    public void ADeviceHoldsAFewKiB(string kind, long bound)
    {
        const int Devices = 1000;
        long before = GC.GetTotalMemory(forceFullCollection: true);
        var devices = new IDeviceWorkload[Devices];
        for (int i = 0; i < Devices; i++)
            devices[i] = WorkloadFactory.Create(kind, i, 11);
        long created = GC.GetTotalMemory(forceFullCollection: true) - before;
        var sink = new ReplyingSink();
        ulong t = 0;
        for (int w = 0; w < 50; w++, t += 100_000)
        {
            foreach (var d in devices)
                sink.Run(d, t, t + 100_000);
        }
        long held = GC.GetTotalMemory(forceFullCollection: true) - before - ReplyingSink.Bytes;
        GC.KeepAlive(devices);
        output.WriteLine($"{kind}: {created / Devices} B per device created, {held / Devices} B per device after 50 windows");
        Assert.All(devices, d => Assert.True(d.Completed > 0));
        Assert.InRange(held / Devices, 1, bound);
    }

    /// <summary>Replies to every operation of a window at its end (maps get IOVAs from a counter), as the simulator does.</summary>
    private sealed class ReplyingSink : IWorkloadSink
    {
        private const int Capacity = 4096;

        private readonly DmaOp[] _ops = new DmaOp[Capacity];
        private int _count;
        private ulong _nextIova = 1UL << 40;

        /// <summary>What the sink itself holds (its operation buffer), taken off the measurement.</summary>
        public static long Bytes => Capacity * 48;

        public void Run(IDeviceWorkload device, ulong t0, ulong t1)
        {
            _count = 0;
            device.Generate(t0, t1, this);
            for (int i = 0; i < _count; i++)
            {
                ref var op = ref _ops[i];
                ulong iova = op.Iova;
                if (op.Kind == DmaOpKind.DmaMap)
                {
                    ulong align = System.Numerics.BitOperations.RoundUpToPowerOf2((op.Size + 0xfff) & ~0xfffUL);
                    iova = (_nextIova + align - 1) & ~(align - 1);
                    _nextIova = iova + align;
                }
                device.OnResult(new DmaOpResult(op.Id, Errno.None, iova, op.Size, 0));
            }
        }

        public void Submit(in DmaOp op) => _ops[_count++] = op;

        public void Dma(ulong stampNs, ulong iova, bool write)
        {
        }
    }
}
