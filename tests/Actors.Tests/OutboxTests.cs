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
