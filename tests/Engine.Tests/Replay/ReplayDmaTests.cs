using PtActors.Engine.Dma;
using PtActors.Engine.Hardware;
using PtActors.Engine.Replay;
using Xunit;

namespace PtActors.Engine.Tests.Replay;

/// <summary>The replayer's DMAs on a hand-written recording: synthesized (seeded, over each mapping's lifetime), recorded, or none.</summary>
public class ReplayDmaTests
{
    private const ulong WindowNs = 100_000;
    private const IommuProt RW = IommuProt.Read | IommuProt.Write;

    /// <summary>
    /// One domain with devices 0 and 1 on one unit: device 0 maps 3 pages at 0x10_0000 in window 1 and unmaps them in
    /// window 4; device 1 maps 1 page at 0x20_0000 in window 2 and never unmaps it; 6 windows.
    /// </summary>
    private static Recording Hand()
    {
        DomainBatch Batch(long window, params DmaOp[] ops) => new([], 0, ops, 0) { Window = window };
        var batches = new List<DomainBatch>
        {
            Batch(1, new DmaOp(WindowNs / 2, DmaOp.MakeId(0, 0), DmaOpKind.Map, 0x10_0000, 0x8000_0000, 0x3000, RW)),
            Batch(2, new DmaOp(WindowNs + 10, DmaOp.MakeId(1, 0), DmaOpKind.Map, 0x20_0000, 0x9000_0000, 0x1000, RW)),
            Batch(4, new DmaOp(3 * WindowNs + WindowNs / 2, DmaOp.MakeId(0, 1), DmaOpKind.Unmap, 0x10_0000, 0, 0x3000, 0)),
            Batch(6, new DmaOp(5 * WindowNs + 5, DmaOp.MakeId(1, 1), DmaOpKind.Map, 0x30_0000, 0xa000_0000, 0x1000, RW)),
        };
        return new Recording(PtFormatKind.X86_64, 1, WindowNs, [new RecordedDomain("dom0000", [0, 1], batches)], null);
    }

    private static ReplayConfig Config(FlushPolicyKind policy, SynthDmas? synth = null, IReadOnlyList<IReadOnlyList<WindowDmas>>? recorded = null)
        => new(PtFormatKind.X86_64, new IommuUnitConfig { Policy = new FlushPolicySpec(policy), Iotlb = new IotlbConfig(64, 8) },
            ApplyRecordedHardwareWrites: false, CompareWithRecording: false, RecordedDmas: recorded, Synth: synth);

    [Fact]
    public void Without_dmas_the_dma_figures_are_absent()
    {
        var r = Replayer.Run(Hand(), Config(FlushPolicyKind.Strict));
        Assert.Null(r.Dmas);
        Assert.Equal(0, r.Stats.Hits + r.Stats.Misses);
        Assert.Equal(4, r.Ops);
    }

    [Fact]
    public void Synthesized_dmas_are_n_per_mapped_page_and_deterministic()
    {
        var a = Replayer.Run(Hand(), Config(FlushPolicyKind.Strict, new SynthDmas(5, 42)));
        var b = Replayer.Run(Hand(), Config(FlushPolicyKind.Strict, new SynthDmas(5, 42)));
        var c = Replayer.Run(Hand(), Config(FlushPolicyKind.Strict, new SynthDmas(5, 43)));
        // 3 + 1 + 1 mapped pages, 5 DMAs each.
        Assert.Equal(25, a.Dmas);
        Assert.Equal(25, c.Dmas);
        Assert.Equal(a.Dmas, a.Stats.Hits + a.Stats.Misses);
        Assert.Equal((a.Stats.Hits, a.Stats.Misses, a.Stats.Faults, a.Stats.StaleInWindow), (b.Stats.Hits, b.Stats.Misses, b.Stats.Faults, b.Stats.StaleInWindow));
        Assert.Equal(0, a.Stats.StaleViolations);
        Assert.Equal(0, a.Stats.UseAfterFree);
        // No DMA comes before its map; DMAs after the unmap (window 4, past its stamp) fault under strict: at most
        // the 15 DMAs of the unmapped pages do, and only those in window 4.
        Assert.InRange(a.Stats.Faults, 0, 15);
        Assert.Equal(0, a.Stats.StaleInWindow);
    }

    [Fact]
    public void Synthesized_dmas_are_refused_beside_recorded_ones_or_out_of_bounds()
    {
        Assert.Throws<ArgumentException>(() => Replayer.Run(Hand(), Config(FlushPolicyKind.Strict, new SynthDmas(1, 1), [[]])));
        Assert.Throws<ArgumentException>(() => Replayer.Run(Hand(), Config(FlushPolicyKind.Strict, new SynthDmas(0, 1))));
        Assert.Throws<ArgumentException>(() => Replayer.Run(Hand(), Config(FlushPolicyKind.Strict, new SynthDmas(SynthDmas.MaxPerPage + 1, 1))));
        Assert.Throws<ArgumentException>(() => Replayer.Run(Hand(), Config(FlushPolicyKind.Strict, recorded: [[], []])));
    }

    [Fact]
    public void Recorded_dmas_run_in_their_window_and_show_what_each_policy_allows()
    {
        // Device 0 reads its buffer in window 3 (a miss, then a hit), then once more in window 4 after its unmap.
        var dmas = new List<WindowDmas>
        {
            new(3, [new DmaAccess(2 * WindowNs + 10, 0, 0, 0x10_0040, false), new DmaAccess(2 * WindowNs + 20, 0, 1, 0x10_0080, false)]),
            new(4, [new DmaAccess(3 * WindowNs + WindowNs / 2 + 100, 0, 2, 0x10_0100, false)]),
        };
        var strict = Replayer.Run(Hand(), Config(FlushPolicyKind.Strict, recorded: [dmas]));
        var lazy = Replayer.Run(Hand(), Config(FlushPolicyKind.Lazy, recorded: [dmas]));
        Assert.Equal(3, strict.Dmas);
        Assert.Equal(3, lazy.Dmas);
        Assert.Equal((1, 1), (strict.Stats.Hits, strict.Stats.Misses - 1));
        // Strict flushed at the unmap: the late DMA faults. Lazy still caches the translation: a stale hit in window.
        Assert.Equal(1, strict.Stats.Faults);
        Assert.Equal(0, strict.Stats.StaleInWindow);
        Assert.Equal(0, lazy.Stats.Faults);
        Assert.Equal(1, lazy.Stats.StaleInWindow);
        Assert.Equal(0, lazy.Stats.StaleViolations);
        Assert.True(strict.Stats.Invalidations >= 1, "strict invalidates at the unmap");
    }

    [Fact]
    public void Recorded_dmas_out_of_window_order_are_refused()
    {
        var dmas = new List<WindowDmas> { new(3, []), new(2, []) };
        var e = Assert.Throws<ReplayException>(() => Replayer.Run(Hand(), Config(FlushPolicyKind.Strict, recorded: [dmas])));
        Assert.Contains("iommu0's recorded DMAs of window 2 come after those of window 3", e.Message);
    }
}
