using PtActors.Engine.Dma;
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

        var ran = new List<AppliedOp>();
        m.Release(unmap.Op.Id, 30, ran);
        Assert.Empty(ran);
        Assert.Equal(0, m.Parked);
        Assert.Equal(0UL, m.Iovas.AllocatedBytes);
        Assert.Throws<InvalidOperationException>(() => m.Release(unmap.Op.Id, 30, ran));
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
        m.Release(unmap.Op.Id, 2, new List<AppliedOp>());
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

        var ran = new List<AppliedOp>();
        m.Release(unmap.Op.Id, 1000, ran);
        Assert.Equal([DmaOp.MakeId(1, 1), DmaOp.MakeId(2, 1)], ran.Select(a => a.Op.Id));
        Assert.Equal(800UL, ran[0].Result.LockWaitNs);
        Assert.Equal(700UL, ran[1].Result.LockWaitNs);
        Assert.Equal(Errno.None, ran[0].Result.Error);
        Assert.Equal(0, m.Waiting);
        Assert.Equal(0, m.Locks.Held);
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
            var live = new List<AppliedOp>();
            var ran = new List<AppliedOp>();
            for (uint i = 0; i < 500; i++)
            {
                if (live.Count > 0 && rng.Next(3) == 0)
                {
                    var victim = live[rng.Next(live.Count)];
                    live.Remove(victim);
                    Assert.True(m.Submit(Op(i, 0, i, DmaOpKind.Unmap, victim.Result.Iova, size: victim.Op.Size), out var u));
                    if (u.Notice is not null)
                        m.Release(u.Op.Id, i, ran);
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
        var ran = new List<AppliedOp>();
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
            ulong digest = m.ApplyBatch(released, t0, ops.ToArray(), ran);
            journal.Add(new DomainBatch(released, t0, ops.ToArray(), digest));
            foreach (var a in ran)
            {
                if (a.Op.Kind == DmaOpKind.DmaMap && a.Result.Error == Errno.None)
                    live.Add((a.Result.Iova, a.Op.Size));
                if (a.Notice is { } n)
                    toRelease.Add(n.Id);
            }
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
        var scratch = new List<AppliedOp>();
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
        var scratch = new List<AppliedOp>();
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
        var scratch = new List<AppliedOp>();
        var bad = journal[0] with { ResultDigest = journal[0].ResultDigest ^ 1 };
        Assert.Throws<InvalidOperationException>(() => replayed.Replay(bad, scratch));
    }

    [Fact]
    public void TheOutcomePathGivesTheSameResultsNoticesDigestsAndStateAsTheAppliedOpPath()
    {
        // Record a journal through the AppliedOp path, then replay it through both paths side by side.
        var journal = Drive(Make(), 60, 21);
        Assert.Contains(journal, b => b.Released.Length > 0);
        var viaList = Make();
        var viaOutcome = Make();
        var ran = new List<AppliedOp>();
        var outcome = new BatchOutcome();
        void Both(long[] released, ulong at, DmaOp[] ops, ulong? recorded)
        {
            ran.Clear();
            outcome.Clear();
            ulong d1 = viaList.ApplyBatch(released, at, ops, ran);
            ulong d2 = viaOutcome.ApplyBatch(released, at, ops, outcome);
            if (recorded is { } r)
                Assert.Equal(r, d1);
            Assert.Equal(d1, d2);
            Assert.Equal(ran.Select(a => a.Result), outcome.Results);
            Assert.Equal(ran.Where(a => a.Notice is not null).Select(a => a.Notice!.Value), outcome.Notices);
            Assert.All(ran, a => Assert.Equal(a.Op.Kind, a.Result.Kind));
            AssertSame(viaList, viaOutcome);
        }
        foreach (var b in journal)
            Both(b.Released, b.ReleasedAtNs, b.Ops.ToArray(), b.ResultDigest);

        // Then an explicit map and a dirty read that wait for a parked unmap's lock, and run at its release.
        Both([], 10_000_000, [DomainModelTestOps.Op(10_000_000, 9, 1, DmaOpKind.Map, 0x4000_0000, 0x9000_0000, 0x2000)], null);
        var unmap = DomainModelTestOps.Op(10_000_100, 9, 2, DmaOpKind.Unmap, 0x4000_0000, size: 0x2000);
        Both([], 10_000_100, [unmap, DomainModelTestOps.Op(10_000_200, 9, 3, DmaOpKind.Map, 0x4000_1000, 0x9100_0000), DomainModelTestOps.Op(10_000_300, 9, 4, DmaOpKind.ReadDirty, 0x4000_0000)], null);
        Assert.Equal([unmap.Id], outcome.Results.Select(r => r.Id));
        Assert.Equal(2, viaOutcome.Waiting);
        Both([unmap.Id], 10_001_000, [], null);
        Assert.Equal([DmaOp.MakeId(9, 3), DmaOp.MakeId(9, 4)], outcome.Results.Select(r => r.Id));
        Assert.Equal([800UL, 700UL], outcome.Results.Select(r => r.LockWaitNs));
        Assert.Equal(0, viaOutcome.Waiting);
        Assert.Equal(DomainModel.Digest([]), DomainModel.Digest(ReadOnlySpan<DmaOpResult>.Empty));
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
