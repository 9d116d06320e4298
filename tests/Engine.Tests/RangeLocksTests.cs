using PtActors.Engine.Dma;
using Xunit;

namespace PtActors.Engine.Tests;

public class RangeLocksTests
{
    [Fact]
    public void OverlappingWaitsDisjointProceeds()
    {
        var locks = new RangeLocks();
        Assert.True(locks.Acquire(1, 0x1000, 0x1fff));
        Assert.False(locks.Acquire(2, 0x1800, 0x2fff));
        Assert.True(locks.Acquire(3, 0x3000, 0x3fff));
        var granted = new List<long>();
        locks.Release(1, granted);
        Assert.Equal([2L], granted);
        Assert.Equal(2, locks.Held);
    }

    [Fact]
    public void SharedLocksShareAndExclusiveWaitsForThem()
    {
        var locks = new RangeLocks();
        Assert.True(locks.Acquire(1, 0, 0xffff, shared: true));
        Assert.True(locks.Acquire(2, 0x8000, 0x8fff, shared: true));
        Assert.False(locks.Acquire(3, 0x8000, 0x8fff));
        var granted = new List<long>();
        locks.Release(1, granted);
        Assert.Empty(granted);
        locks.Release(2, granted);
        Assert.Equal([3L], granted);
    }

    [Fact]
    public void NewcomersDoNotOvertakeAnEarlierWaiter()
    {
        var locks = new RangeLocks();
        Assert.True(locks.Acquire(1, 0, 0xfff, shared: true));
        Assert.False(locks.Acquire(2, 0, 0xfff));                    // exclusive waits for the reader
        Assert.False(locks.Acquire(3, 0, 0xfff, shared: true));      // compatible with 1, but 2 came first
        var granted = new List<long>();
        locks.Release(1, granted);
        Assert.Equal([2L], granted);
        granted.Clear();
        locks.Release(2, granted);
        Assert.Equal([3L], granted);
    }

    [Fact]
    public void GrantsComeOutInArrivalOrder()
    {
        var locks = new RangeLocks();
        Assert.True(locks.Acquire(1, 0, 0xffff));
        Assert.False(locks.Acquire(2, 0x2000, 0x2fff));
        Assert.False(locks.Acquire(3, 0x1000, 0x1fff));
        Assert.False(locks.Acquire(4, 0x2000, 0x2fff));
        var granted = new List<long>();
        locks.Release(1, granted);
        Assert.Equal([2L, 3L], granted);
        Assert.Throws<InvalidOperationException>(() => locks.Release(1, granted));
    }

    [Fact]
    public void CanAcquireChecksHeldLocksAndEveryWaiterWithoutTakingAnything()
    {
        var locks = new RangeLocks();
        Assert.True(locks.CanAcquire(0x1000, 0x1fff));
        Assert.Equal(0, locks.Held);
        locks.Hold(1, 0x1000, 0x1fff);
        Assert.False(locks.CanAcquire(0x1800, 0x27ff));
        Assert.True(locks.CanAcquire(0x2000, 0x2fff));
        locks.Enqueue(2, 0x1800, 0x2fff);                      // waits for 1
        Assert.False(locks.CanAcquire(0x2000, 0x2fff));        // free of held locks, but 2 waits on it: no overtaking
        Assert.True(locks.CanAcquire(0x3000, 0x3fff));
        Assert.Equal((1, 1), (locks.Held, locks.Waiting));
        var granted = new List<long>();
        locks.Release(1, granted);
        Assert.Equal([2L], granted);
        Assert.Throws<ArgumentException>(() => locks.CanAcquire(0x2000, 0x1fff));
        Assert.Throws<ArgumentException>(() => locks.Enqueue(3, 0x2000, 0x1fff));
    }
}
