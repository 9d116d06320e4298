using Xunit;

namespace PtActors.Actors.Tests;

public class OutboxTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TakeHandsOverWhatWasAddedAndLaterAddsNeverTouchIt(bool pinned)
    {
        var box = new Outbox<long>(pinned);
        Assert.True(box.Take().IsEmpty);
        for (long i = 0; i < 100; i++)      // past the first array: it grows
            box.Add(i);
        Assert.Equal(100, box.Count);
        var first = box.Take();
        Assert.Equal(0, box.Count);
        for (long i = 0; i < 300; i++)
            box.Add(-i);
        var second = box.Take();

        Assert.Equal(Enumerable.Range(0, 100).Select(i => (long)i), first.ToArray());
        Assert.Equal(Enumerable.Range(0, 300).Select(i => -(long)i), second.ToArray());
    }

    [Fact]
    public void ItemsShowsTheCurrentBatchInOrderAndCanBeSortedInPlace()
    {
        var box = new Outbox<int>();
        foreach (int v in new[] { 5, 3, 9, 1 })
            box.Add(v);
        box.Items.Sort();
        Assert.Equal([1, 3, 5, 9], box.Take().ToArray());
    }
}

public class MessagePoolTests
{
    [Fact]
    public void AReturnedArrayIsRentedAgainAndOneTooSmallIsNot()
    {
        var pool = new MessageArrayPool<long>();
        var first = pool.Rent(100);
        Assert.True(first.Length >= 100);
        pool.Return(new ReadOnlyMemory<long>(first, 0, 10));
        Assert.Same(first, pool.Rent(50));

        pool.Return(first);
        var bigger = pool.Rent(first.Length + 1);                   // the pooled one is too small: a new one
        Assert.NotSame(first, bigger);
        Assert.True(bigger.Length > first.Length);
        pool.Return(ReadOnlyMemory<long>.Empty);                      // nothing to give back
    }

    [Fact]
    public void AnOutboxOnAPoolHandsOverPooledArraysThatComeBackAfterUse()
    {
        var pool = new MessageArrayPool<int>();
        var box = new Outbox<int>(pool);
        for (int i = 0; i < 40; i++)
            box.Add(i);
        var taken = box.Take();
        Assert.Equal(Enumerable.Range(0, 40), taken.ToArray());
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(taken, out var segment));
        pool.Return(taken);                                         // the receiver is done with it
        box.Add(1);
        box.Take();                                                 // the box now writes into the returned array
        box.Add(7);
        var again = box.Take();
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(again, out var reused));
        Assert.Same(segment.Array, reused.Array);
        Assert.Equal([7], again.ToArray());
    }
}
