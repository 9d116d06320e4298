using System.Runtime.CompilerServices;
using PtActors.Engine.Workloads;
using Xunit;

namespace PtActors.Engine.Tests.Workloads;

public class EventHeapTests
{
    /// <summary>An event as the reference model sees it: the heap's order is (stamp, prio, push order).</summary>
    private readonly record struct Ref(ulong Stamp, byte Prio, uint Order, ulong Arg) : IComparable<Ref>
    {
        public int CompareTo(Ref other) => (Stamp, Prio, Order).CompareTo((other.Stamp, other.Prio, other.Order));
    }

    private static Ref Of(in WorkEvent e) => new(e.Stamp, e.Prio, e.Order, e.Arg);

    [Fact]
    public void AnEventIs24Bytes() => Assert.Equal(24, Unsafe.SizeOf<WorkEvent>());

    [Fact]
    public void PopsByStampThenPriorityThenPushOrder()
    {
        var heap = new EventHeap();
        heap.Push(50, prio: 1, kind: 1, slot: 0, arg: 0);
        heap.Push(50, prio: 0, kind: 2, slot: 0, arg: 1);
        heap.Push(10, prio: 1, kind: 3, slot: 0, arg: 2);
        heap.Push(50, prio: 1, kind: 4, slot: 0, arg: 3);
        heap.Push(50, prio: 0, kind: 5, slot: 0, arg: 4);
        var kinds = new List<byte>();
        while (heap.TryPopBefore(ulong.MaxValue, out var e))
            kinds.Add(e.Kind);
        Assert.Equal([3, 2, 5, 1, 4], kinds);
    }

    [Fact]
    public void PopsOnlyWhatIsStampedBeforeTheLimit()
    {
        var heap = new EventHeap();
        heap.Push(100, 1, 1, 7, 0);
        heap.Push(200, 1, 2, 8, 0);
        Assert.True(heap.TryPeekStamp(out ulong first));
        Assert.Equal(100UL, first);
        Assert.False(heap.TryPopBefore(100, out _));
        Assert.True(heap.TryPopBefore(101, out var e));
        Assert.Equal((100UL, (ushort)7), (e.Stamp, e.Slot));
        Assert.Equal(1, heap.Count);
        Assert.True(heap.TryPeekStamp(out first)); // the vacant root is filled first
        Assert.Equal(200UL, first);
        Assert.True(heap.TryPopBefore(ulong.MaxValue, out _));
        Assert.False(heap.TryPeekStamp(out _));
        Assert.False(heap.TryPopBefore(ulong.MaxValue, out _));
        Assert.Equal(0, heap.Count);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void MatchesASortedReferenceUnderRandomPushesPopsAndReinserts(ulong seed)
    {
        var rng = new Xoshiro256StarStar(seed);
        var heap = new EventHeap();
        var model = new SortedSet<Ref>();
        ulong now = 0;
        for (int step = 0; step < 20_000; step++)
        {
            ulong r = rng.NextBelow(10);
            if (r < 5 || model.Count == 0)
            {
                // Stamps from a narrow range, so ties of stamp and of stamp and priority are common.
                ulong stamp = now + rng.NextBelow(8);
                byte prio = (byte)rng.NextBelow(2);
                uint order = heap.NextOrder;
                heap.Push(stamp, prio, kind: 1, slot: 0, arg: (ulong)step);
                model.Add(new Ref(stamp, prio, order, (ulong)step));
            }
            else
            {
                Assert.True(heap.TryPopBefore(ulong.MaxValue, out var e));
                var expected = model.Min;
                Assert.Equal(expected, Of(e));
                model.Remove(expected);
                now = e.Stamp;
                if (r == 9)
                {
                    // Put back later, keeping its push order (a deferred action).
                    ulong later = now + 1 + rng.NextBelow(4);
                    heap.Reinsert(in e, later);
                    model.Add(expected with { Stamp = later });
                }
            }
            Assert.Equal(model.Count, heap.Count);
        }
        while (heap.TryPopBefore(ulong.MaxValue, out var e))
        {
            Assert.Equal(model.Min, Of(e));
            model.Remove(model.Min);
        }
        Assert.Empty(model);
    }

    [Fact]
    public void StartsSmallGrowsByHalfAndThenNoLongerAllocates()
    {
        var heap = new EventHeap();
        Assert.Equal(4, heap.Capacity);
        for (int i = 0; i < 40; i++)
            heap.Push((ulong)(i * 7 % 40), 1, 1, 0, 0);
        Assert.Equal(42, heap.Capacity); // 4, 6, 9, 13, 19, 28, 42

        // Steady state: one pop and one push per action (measured on a second pass, once the runtime compiled it).
        Steady();
        long before = GC.GetAllocatedBytesForCurrentThread();
        Steady();
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(42, heap.Capacity);
        Assert.Equal(40, heap.Count);

        void Steady()
        {
            for (int i = 0; i < 100_000; i++)
            {
                if (!heap.TryPopBefore(ulong.MaxValue, out var e))
                    Assert.Fail("the heap ran dry");
                heap.Push(e.Stamp + 40, 1, 1, 0, 0);
            }
        }
    }

    [Fact]
    public void RenumbersPushOrdersBeforeTheyRunOutAndKeepsThePopOrder()
    {
        uint start = uint.MaxValue - EventHeap.OrderHeadroom - 100;
        var heap = new EventHeap(4, start);
        var model = new SortedSet<Ref>();
        var rng = new Xoshiro256StarStar(9);
        for (int i = 0; i < 300; i++)
        {
            ulong stamp = rng.NextBelow(16);
            byte prio = (byte)rng.NextBelow(2);
            model.Add(new Ref(stamp, prio, (uint)i, (ulong)i)); // push order, whatever the numbers
            heap.Push(stamp, prio, 1, 0, (ulong)i);
            heap.EnsureOrderHeadroom();
        }
        // Renumbered at the 101st push, which left the headroom: orders went on from the 101 events held.
        Assert.Equal(300u, heap.NextOrder);

        // Equal stamps and priorities still pop in push order.
        var popped = new List<ulong>();
        while (heap.TryPopBefore(ulong.MaxValue, out var e))
            popped.Add(e.Arg);
        Assert.Equal(model.Select(m => m.Arg), popped);
    }

    [Fact]
    public void RefusesToPushWithoutOrdersLeft()
    {
        var heap = new EventHeap(4, uint.MaxValue - 1);
        heap.Push(1, 1, 1, 0, 0);
        Assert.Throws<InvalidOperationException>(() => heap.Push(2, 1, 1, 0, 0));
        heap.EnsureOrderHeadroom();
        Assert.Equal(1u, heap.NextOrder);
        heap.Push(2, 1, 1, 0, 0);
        Assert.Equal(2, heap.Count);
    }
}
