using PtActors.Engine.Dma;
using PtActors.Engine.Workloads;
using Xunit;

namespace PtActors.Engine.Tests.Workloads;

public class PendingOpTableTests
{
    [Fact]
    public void RemembersKindStampAndTagUntilRemoved()
    {
        var table = new PendingOpTable();
        table.Add(7, new PendingOp(DmaOpKind.Unmap, 123_456_789_012, PendingOpTable.MaxTag));
        table.Add(8, new PendingOp(DmaOpKind.ReadDirty, 0, -1));
        table.Add(9, new PendingOp(DmaOpKind.DmaMap, ulong.MaxValue, PendingOpTable.MinTag));
        Assert.Equal(3, table.Count);
        Assert.True(table.Contains(8));
        Assert.False(table.Contains(10));

        Assert.True(table.Remove(8, out var op));
        Assert.Equal(new PendingOp(DmaOpKind.ReadDirty, 0, -1), op);
        Assert.False(table.Remove(8, out _));
        Assert.True(table.Remove(7, out op));
        Assert.Equal(new PendingOp(DmaOpKind.Unmap, 123_456_789_012, PendingOpTable.MaxTag), op);
        Assert.True(table.Remove(9, out op));
        Assert.Equal(new PendingOp(DmaOpKind.DmaMap, ulong.MaxValue, PendingOpTable.MinTag), op);
        Assert.Equal(0, table.Count);
    }

    [Fact]
    public void RejectsTagsOutOfRangeAndNonKinds()
    {
        var table = new PendingOpTable();
        Assert.Throws<ArgumentOutOfRangeException>(() => table.Add(1, new PendingOp(DmaOpKind.Map, 0, PendingOpTable.MaxTag + 1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => table.Add(1, new PendingOp(DmaOpKind.Map, 0, PendingOpTable.MinTag - 1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => table.Add(1, new PendingOp(default, 0, 0)));
        Assert.Equal(0, table.Count);
    }

    [Fact]
    public void HoldsConsecutiveOperationsInPlaceWhenFullAndDoublesOnlyBeyond()
    {
        var table = new PendingOpTable();
        Assert.Equal(4, table.Capacity);
        uint seq = 0;
        // Windows of 32 operations answered in order: 32 slots are enough, full or not.
        for (int window = 0; window < 100; window++)
        {
            uint first = seq;
            for (int i = 0; i < 32; i++, seq++)
                table.Add(seq, new PendingOp(DmaOpKind.DmaMap, seq, (int)(seq % 1000)));
            for (uint s = first; s != seq; s++)
            {
                Assert.True(table.Remove(s, out var op));
                Assert.Equal((ulong)s, op.StampNs);
            }
        }
        Assert.Equal(32, table.Capacity);
        Assert.False(table.Remove(seq - 1, out _)); // a lookup of a missing operation in a full table ends

        for (int i = 0; i < 33; i++, seq++)
            table.Add(seq, new PendingOp(DmaOpKind.Unmap, seq, 0));
        Assert.Equal(64, table.Capacity);
    }

    [Theory]
    [InlineData(1, 0u)]
    [InlineData(2, uint.MaxValue - 5000)]
    public void MatchesADictionaryWithStragglersAndSequenceWrap(ulong seed, uint firstSeq)
    {
        // A device with 48 operations in flight at most, replies mostly in order, but one operation in 40 held for
        // thousands of others: the outstanding ones spread far wider than the table, and sequence numbers wrap.
        var rng = new Xoshiro256StarStar(seed);
        var table = new PendingOpTable();
        var model = new Dictionary<uint, PendingOp>();
        var inOrder = new List<uint>();
        var held = new List<(uint Seq, int Until)>();
        uint seq = firstSeq;
        for (int step = 0; step < 60_000; step++)
        {
            for (int h = held.Count - 1; h >= 0; h--)
            {
                if (held[h].Until <= step)
                {
                    Reply(held[h].Seq);
                    held.RemoveAt(h);
                }
            }
            if (model.Count < 48 && rng.NextBelow(2) == 0)
            {
                var op = new PendingOp((DmaOpKind)(1 + rng.NextBelow(4)), rng.Next(), (int)rng.NextBelow(1 << 20) - (1 << 19));
                table.Add(seq, op);
                model.Add(seq, op);
                if (rng.NextBelow(40) == 0)
                    held.Add((seq, step + 1000 + (int)rng.NextBelow(4000)));
                else
                    inOrder.Add(seq);
                seq++;
            }
            else if (inOrder.Count > 0)
            {
                // The oldest usually, one reply in eight to another.
                int i = rng.NextBelow(8) == 0 ? (int)rng.NextBelow((ulong)inOrder.Count) : 0;
                Reply(inOrder[i]);
                inOrder.RemoveAt(i);
            }
            Assert.Equal(model.Count, table.Count);
            Assert.False(table.Contains(seq));
        }
        Assert.True(table.Capacity <= 64, $"capacity {table.Capacity}");
        foreach (var s in model.Keys.ToList())
            Reply(s);
        Assert.Equal(0, table.Count);

        void Reply(uint s)
        {
            Assert.True(table.Remove(s, out var got));
            Assert.True(model.Remove(s, out var want));
            Assert.Equal(want, got);
        }
    }

    [Fact]
    public void DoesNotAllocateOnceGrown()
    {
        var table = new PendingOpTable();
        uint seq = 0;
        for (; seq < 32; seq++)
            table.Add(seq, new PendingOp(DmaOpKind.DmaMap, seq, 1));
        Steady(); // a first pass, so that the runtime has compiled what it runs
        long before = GC.GetAllocatedBytesForCurrentThread();
        Steady();
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);

        void Steady()
        {
            for (int i = 0; i < 100_000; i++, seq++)
            {
                if (!table.Remove(seq - 32, out _))
                    Assert.Fail($"operation {seq - 32} lost");
                table.Add(seq, new PendingOp(DmaOpKind.Unmap, seq, 2));
            }
        }
    }
}
