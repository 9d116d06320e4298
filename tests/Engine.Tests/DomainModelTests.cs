using PtActors.Engine.Dma;
using PtActors.TestSupport;
using Xunit;

namespace PtActors.Engine.Tests;

public class DomainModelTests
{
    private const IommuProt RW = IommuProt.Read | IommuProt.Write;

    private static DomainModel Make()
    {
        Assert.Equal(Errno.None, DomainModel.Create(PtConfig.Default(PtFormatKind.X86_64), 0x1000, 0xffff_ffff, out var m));
        return m!;
    }

    private static DmaOp Op(ulong t, int dev, uint seq, DmaOpKind kind, ulong iova = 0, ulong pa = 0, ulong size = 0x1000)
        => DomainModelTestOps.Op(t, dev, seq, kind, iova, pa, size);

    [Fact]
    public void DmaMapThenUnmapParksUntilReleased()
    {
        var m = Make();
        Assert.True(m.Submit(Op(10, 0, 1, DmaOpKind.DmaMap, pa: 0x8000_0000, size: 0x800), out var map));
        Assert.Equal(Errno.None, map.Result.Error);
        ulong iova = map.Result.Iova;
        Assert.Equal(0xffff_f000UL, iova);
        Assert.Equal(0x1000UL, map.Result.Bytes);
        Assert.Equal(Errno.None, m.Domain.TryIovaToPhys(iova + 0x10, out ulong pa));
        Assert.Equal(0x8000_0010UL, pa);

        Assert.True(m.Submit(Op(20, 0, 2, DmaOpKind.Unmap, iova, size: 0x800), out var unmap));
        Assert.Equal(0x1000UL, unmap.Result.Bytes);
        var notice = Assert.NotNull(unmap.Notice);
        Assert.Equal(new UnmapNotice(unmap.Op.Id, 20, iova, 0x1000, 0x8000_0000, RW, 0), notice);
        Assert.Equal(1, m.Parked);
        Assert.Equal(0x1000UL, m.Iovas.AllocatedBytes);        // the IOVA stays allocated until the flush

        Assert.Empty(m.Release(unmap.Op.Id, 30).Results);
        Assert.Equal(0, m.Parked);
        Assert.Equal(0UL, m.Iovas.AllocatedBytes);
        Assert.Throws<InvalidOperationException>(() => m.Release(unmap.Op.Id, 30));
    }

    [Fact]
    public void FreedTablePagesStayParkedUntilRelease()
    {
        var m = Make();
        // 512 × 4K (PA only 4K-aligned) fills one level-0 table; the unmap frees it.
        Assert.True(m.Submit(Op(0, 0, 1, DmaOpKind.Map, iova: 0x4000_0000, pa: 0x1000, size: 0x200000), out var map));
        Assert.Equal(Errno.None, map.Result.Error);
        int tables = m.Domain.TablePages;
        Assert.True(m.Submit(Op(1, 0, 2, DmaOpKind.Unmap, iova: 0x4000_0000, size: 0x200000), out var unmap));
        Assert.Equal(1, unmap.Notice!.Value.ParkedPages);
        Assert.Equal(tables, m.Domain.TablePages);
        m.Release(unmap.Op.Id, 2);
        Assert.Equal(tables - 1, m.Domain.TablePages);
    }

    [Fact]
    public void OverlappingOperationsWaitForTheUnmapsFlushInArrivalOrder()
    {
        var m = Make();
        Assert.True(m.Submit(Op(0, 0, 1, DmaOpKind.Map, 0x10000, 0x10000, 0x4000), out _));
        Assert.True(m.Submit(Op(100, 0, 2, DmaOpKind.Unmap, 0x10000, size: 0x4000), out var unmap));
        Assert.False(m.Submit(Op(200, 1, 1, DmaOpKind.Map, 0x12000, 0x5000, 0x1000), out _));
        Assert.False(m.Submit(Op(300, 2, 1, DmaOpKind.ReadDirty, 0x12000, size: 0x1000), out _));
        Assert.True(m.Submit(Op(400, 3, 1, DmaOpKind.Map, 0x20000, 0x6000, 0x1000), out var disjoint));
        Assert.Equal(Errno.None, disjoint.Result.Error);
        Assert.Equal(2, m.Waiting);

        var ran = m.Release(unmap.Op.Id, 1000).Results;
        Assert.Equal([DmaOp.MakeId(1, 1), DmaOp.MakeId(2, 1)], ran.Select(r => r.Id));
        Assert.Equal([DmaOpKind.Map, DmaOpKind.ReadDirty], ran.Select(r => r.Kind));
        Assert.Equal(800UL, ran[0].LockWaitNs);
        Assert.Equal(700UL, ran[1].LockWaitNs);
        Assert.Equal(Errno.None, ran[0].Error);
        Assert.Equal(0, m.Waiting);
        Assert.Equal(0, m.Locks.Held);
    }

    [Fact]
    public void AnExplicitUnmapOverSeveralLeavesListsTheTranslationsItRemoved()
    {
        var m = Make();
        var outcome = new BatchOutcome();
        // Three maps side by side: 8 KiB RW at one PA, 4 KiB read-only elsewhere, a 2 MiB leaf; then one unmap
        // of them all. The first two pages continue each other; the others do not.
        m.ApplyBatch([], [], 0, [
            Op(0, 0, 1, DmaOpKind.Map, 0x20_0000 - 0x3000, 0x7000_0000, 0x2000),
            new DmaOp(1, DmaOp.MakeId(0, 2), DmaOpKind.Map, 0x20_0000 - 0x1000, 0x5000_0000, 0x1000, IommuProt.Read),
            Op(2, 0, 3, DmaOpKind.Map, 0x20_0000, 0x4000_0000, 0x20_0000)], outcome);
        Assert.All(outcome.Results, r => Assert.Equal(Errno.None, r.Error));
        outcome.Clear();
        m.ApplyBatch([], [], 10, [Op(10, 0, 4, DmaOpKind.Unmap, 0x20_0000 - 0x3000, size: 0x20_3000)], outcome);
        var n = Assert.Single(outcome.Notices);
        Assert.Equal(0x20_3000UL, n.Unmapped);
        Assert.Equal(3, n.LeafCount);
        Assert.Equal([
            new LeafSegment(0x20_0000 - 0x3000, 0x2000, 0x7000_0000, RW),
            new LeafSegment(0x20_0000 - 0x1000, 0x1000, 0x5000_0000, IommuProt.Read),
            new LeafSegment(0x20_0000, 0x20_0000, 0x4000_0000, RW)], outcome.Leaves.Skip(n.LeafStart).Take(n.LeafCount));
        var leaves = outcome.Leaves.ToArray();
        Assert.True(n.TryTranslate(0x20_0000 - 0x1ff0, leaves, out ulong pa, out var prot));
        Assert.Equal((0x7000_1010UL, RW), (pa, prot));
        Assert.True(n.TryTranslate(0x20_0000 - 0x10, leaves, out pa, out prot));
        Assert.Equal((0x5000_0ff0UL, IommuProt.Read), (pa, prot));
        Assert.True(n.TryTranslate(0x3f_ffff, leaves, out pa, out _));
        Assert.Equal(0x401f_ffffUL, pa);
        Assert.False(n.TryTranslate(0x40_0000, leaves, out _, out _));

        // A DMA-API buffer's unmap carries its translation inline: nothing listed.
        outcome.Clear();
        m.ApplyBatch([], [], 20, [Op(20, 0, 5, DmaOpKind.DmaMap, pa: 0x6000_0000, size: 0x3000)], outcome);
        ulong iova = outcome.Results[0].Iova;
        outcome.Clear();
        m.ApplyBatch([], [], 30, [Op(30, 0, 6, DmaOpKind.Unmap, iova, size: 0x3000)], outcome);
        Assert.Equal(new UnmapNotice(DmaOp.MakeId(0, 6), 30, iova, 0x3000, 0x6000_0000, RW, 0), Assert.Single(outcome.Notices));
        Assert.Empty(outcome.Leaves);
    }

    [Fact]
    public void AnUnmapThatRemovesNothingHoldsNothing()
    {
        var m = Make();
        Assert.True(m.Submit(Op(0, 0, 1, DmaOpKind.Unmap, 0x10000, size: 0x1000), out var unmap));
        Assert.Equal(0UL, unmap.Result.Bytes);
        Assert.Null(unmap.Notice);
        Assert.Equal(0, m.Locks.Held);
        Assert.True(m.Submit(Op(1, 0, 2, DmaOpKind.Map, 0x10000, 0x1000, 0x1000), out var map));
        Assert.Equal(Errno.None, map.Result.Error);
    }

    [Fact]
    public void TheSameOperationsGiveByteIdenticalTables()
    {
        var a = Make();
        var b = Make();
        foreach (var m in new[] { a, b })
        {
            var rng = new Random(3);
            var live = new List<Ran>();
            for (uint i = 0; i < 500; i++)
            {
                if (live.Count > 0 && rng.Next(3) == 0)
                {
                    var victim = live[rng.Next(live.Count)];
                    live.Remove(victim);
                    Assert.True(m.Submit(Op(i, 0, i, DmaOpKind.Unmap, victim.Result.Iova, size: victim.Op.Size), out var u));
                    if (u.Notice is not null)
                        m.Release(u.Op.Id, i);
                }
                else
                {
                    ulong size = (ulong)rng.Next(1, 64) << 12;
                    Assert.True(m.Submit(Op(i, 0, i, DmaOpKind.DmaMap, pa: (ulong)rng.Next(1, 1 << 20) << 12, size: size), out var d));
                    if (d.Result.Error == Errno.None)
                        live.Add(d);
                }
            }
        }
        Assert.Equal(a.Memory.TotalPages, b.Memory.TotalPages);
        for (int p = 0; p < a.Memory.TotalPages; p++)
            Assert.Equal(a.Memory[p], b.Memory[p]);
        Assert.Equal(a.MappedBytes, b.MappedBytes);
    }
}

public class DomainModelReplayTests
{
    private const IommuProt RW = IommuProt.Read | IommuProt.Write;

    private static DomainModel Make()
    {
        Assert.Equal(Errno.None, DomainModel.Create(PtConfig.Default(PtFormatKind.Amdv1), 0x1000, 0xff_ffff_ffff, out var m));
        return m!;
    }

    /// <summary>Drives a model through windows of mixed operations, releasing unmaps a window later; returns the journal.</summary>
    private static List<DomainBatch> Drive(DomainModel m, int windows, int seed, List<DomainBatch>? journal = null)
    {
        journal ??= new List<DomainBatch>();
        var rng = new Random(seed);
        var live = new List<(ulong Iova, ulong Size)>();
        var toRelease = new List<long>();
        var ran = new BatchOutcome();
        var kinds = new Dictionary<long, DmaOp>();
        uint seq = (uint)seed * 100_000;   // op ids stay unique across calls
        for (int w = 0; w < windows; w++)
        {
            ulong t0 = (ulong)w * 100_000;
            var ops = new List<DmaOp>();
            for (int k = 0; k < 20; k++)
            {
                ulong t = t0 + (ulong)k * 1000;
                int dev = k % 4;
                int pick = rng.Next(10);
                if (pick < 5 || live.Count == 0)
                    ops.Add(new DmaOp(t, DmaOp.MakeId(dev, ++seq), DmaOpKind.DmaMap, 0, (ulong)rng.Next(1, 1 << 20) << 12, (ulong)rng.Next(1, 40) << 12, RW));
                else if (pick < 8)
                {
                    var (iova, size) = live[rng.Next(live.Count)];
                    live.Remove((iova, size));
                    ops.Add(new DmaOp(t, DmaOp.MakeId(dev, ++seq), DmaOpKind.Unmap, iova, 0, size, RW));
                }
                else
                {
                    // Explicit operations that may collide with parked unmaps and wait.
                    var (iova, _) = live[rng.Next(live.Count)];
                    ops.Add(new DmaOp(t, DmaOp.MakeId(dev, ++seq), pick == 8 ? DmaOpKind.ReadDirty : DmaOpKind.Map, iova, 0x7000, 0x1000, RW));
                }
            }
            ran.Clear();
            var released = toRelease.ToArray();
            toRelease.Clear();
            foreach (var op in ops)
                kinds[op.Id] = op;
            ulong digest = m.ApplyBatch([], released, t0, ops.ToArray(), ran);
            journal.Add(new DomainBatch(released, t0, ops.ToArray(), digest));
            foreach (var r in ran.Results)
            {
                if (r.Kind == DmaOpKind.DmaMap && r.Error == Errno.None)
                    live.Add((r.Iova, kinds[r.Id].Size));
            }
            foreach (var n in ran.Notices)
                toRelease.Add(n.Id);
        }
        return journal;
    }

    private static void AssertSame(DomainModel a, DomainModel b)
    {
        Assert.Equal(a.Memory.TotalPages, b.Memory.TotalPages);
        for (int p = 0; p < a.Memory.TotalPages; p++)
        {
            Assert.Equal(a.Memory.IsAllocated(p), b.Memory.IsAllocated(p));
            if (a.Memory.IsAllocated(p))
                Assert.Equal(a.Memory[p], b.Memory[p]);
        }
        Assert.Equal(a.Domain.TablePages, b.Domain.TablePages);
        Assert.Equal(a.Parked, b.Parked);
        Assert.Equal(a.Waiting, b.Waiting);
        Assert.Equal(a.MappedBytes, b.MappedBytes);
        Assert.Equal(a.Iovas.AllocatedBytes, b.Iovas.AllocatedBytes);
    }

    [Fact]
    public void ReplayingTheJournalRebuildsTheSameState()
    {
        var live = Make();
        var journal = Drive(live, 60, 11);
        Assert.Contains(journal, b => b.Released.Length > 0);

        var replayed = Make();
        var scratch = new BatchOutcome();
        foreach (var batch in journal)
            replayed.Replay(batch, scratch);
        AssertSame(live, replayed);
    }

    [Fact]
    public void ASnapshotPlusTheRestOfTheJournalRebuildsTheSameState()
    {
        var live = Make();
        var journal = Drive(live, 30, 12);
        var snapshot = live.Capture();
        int cut = journal.Count;
        Drive(live, 30, 13, journal);

        var restored = DomainModel.Restore(snapshot);
        var scratch = new BatchOutcome();
        foreach (var batch in journal.Skip(cut))
            restored.Replay(batch, scratch);
        AssertSame(live, restored);
    }

    [Fact]
    public void AJournalThatNoLongerMatchesIsRejected()
    {
        var live = Make();
        var journal = Drive(live, 5, 14);
        var replayed = Make();
        var scratch = new BatchOutcome();
        var bad = journal[0] with { ResultDigest = journal[0].ResultDigest ^ 1 };
        Assert.Throws<InvalidOperationException>(() => replayed.Replay(bad, scratch));
    }

    [Fact]
    public void OneOutcomeCarriesResultsNoticesAndFlushesInOrder()
    {
        // Replaying a journal gives the digests it recorded and a notice for every unmap result that removed something.
        var journal = Drive(Make(), 60, 21);
        Assert.Contains(journal, b => b.Released.Length > 0);
        var m = Make();
        var outcome = new BatchOutcome();
        foreach (var b in journal)
        {
            m.Replay(b, outcome);
            var unmaps = outcome.Results.Where(r => r.Kind == DmaOpKind.Unmap && r.Bytes > 0).Select(r => r.Id);
            Assert.Equal(unmaps, outcome.Notices.Select(n => n.Id));
        }
        m.DeferFlushes();

        // An explicit map and a dirty read that wait for a parked unmap's lock run at its release, in arrival order.
        var at = 10_000_000UL;
        outcome.Clear();
        m.ApplyBatch([], [], at, [DomainModelTestOps.Op(at, 9, 1, DmaOpKind.Map, 0x4000_0000, 0x9000_0000, 0x2000)], outcome);
        var unmap = DomainModelTestOps.Op(at + 100, 9, 2, DmaOpKind.Unmap, 0x4000_0000, size: 0x2000);
        outcome.Clear();
        m.ApplyBatch([], [], at + 100, [unmap, DomainModelTestOps.Op(at + 200, 9, 3, DmaOpKind.Map, 0x4000_1000, 0x9100_0000), DomainModelTestOps.Op(at + 300, 9, 4, DmaOpKind.ReadDirty, 0x4000_0000)], outcome);
        Assert.Equal([unmap.Id], outcome.Results.Select(r => r.Id));
        Assert.Equal(new UnmapNotice(unmap.Id, at + 100, 0x4000_0000, 0x2000, 0x9000_0000, RW, 0), Assert.Single(outcome.Notices));
        Assert.Equal(2, m.Waiting);
        outcome.Clear();
        m.ApplyBatch([], [unmap.Id], at + 1000, [], outcome);
        Assert.Equal([DmaOp.MakeId(9, 3), DmaOp.MakeId(9, 4)], outcome.Results.Select(r => r.Id));
        Assert.Equal([800UL, 700UL], outcome.Results.Select(r => r.LockWaitNs));
        Assert.Equal(0, m.Waiting);

        // A 2 MiB map over an emptied level-0 table replaces it: the flush it needs comes out in the same outcome,
        // and its page stays parked until that flush is released.
        outcome.Clear();
        m.ApplyBatch([], [], at + 2000, [DomainModelTestOps.Op(at + 2000, 9, 5, DmaOpKind.Map, 0x8000_0000, 0x1000, 0x1000)], outcome);
        var u2 = DomainModelTestOps.Op(at + 2100, 9, 6, DmaOpKind.Unmap, 0x8000_0000);
        outcome.Clear();
        m.ApplyBatch([], [], at + 2100, [u2], outcome);
        outcome.Clear();
        m.ApplyBatch([], [u2.Id], at + 3000, [DomainModelTestOps.Op(at + 3000, 9, 7, DmaOpKind.Map, 0x8000_0000, 0x20_0000, 0x20_0000)], outcome);
        Assert.Equal(Errno.None, Assert.Single(outcome.Results).Error);
        var flush = Assert.Single(outcome.Flushes);
        Assert.Equal((at + 3000, 1), (flush.StampNs, flush.ParkedPages));
        Assert.True(flush.Id < 0);
        int pages = m.Domain.TablePages;
        outcome.Clear();
        m.ApplyBatch([], [flush.Id], at + 4000, [], outcome);
        Assert.Equal(pages - 1, m.Domain.TablePages);
        Assert.Empty(outcome.Results);
    }

    [Fact]
    public void TheDigestSeesEveryFieldButTheKind()
    {
        var r = new DmaOpResult(DmaOp.MakeId(1, 2), Errno.None, 0x1000, 0x2000, 30, DmaOpKind.Map);
        ulong d = DomainModel.Digest([r]);
        Assert.NotEqual(d, DomainModel.Digest([r with { Id = r.Id + 1 }]));
        Assert.NotEqual(d, DomainModel.Digest([r with { Error = Errno.EINVAL }]));
        Assert.NotEqual(d, DomainModel.Digest([r with { Iova = 0x3000 }]));
        Assert.NotEqual(d, DomainModel.Digest([r with { Bytes = 0x1000 }]));
        Assert.NotEqual(d, DomainModel.Digest([r with { LockWaitNs = 31 }]));
        Assert.NotEqual(d, DomainModel.Digest([r, r]));
        Assert.Equal(d, DomainModel.Digest([r with { Kind = DmaOpKind.Unmap }]));
    }
}

internal static class DomainModelTestOps
{
    public static DmaOp Op(ulong t, int dev, uint seq, DmaOpKind kind, ulong iova = 0, ulong pa = 0, ulong size = 0x1000)
        => new(t, DmaOp.MakeId(dev, seq), kind, iova, pa, size, IommuProt.Read | IommuProt.Write);
}
