namespace PtActors.Engine.Dma;

/// <summary>
/// Range locks over IOVA (the "caller must hold a range lock" contract of map_pages/unmap_pages): an operation
/// holds its range while it runs; overlapping requests wait in arrival order, disjoint ones proceed; shared
/// (read) requests share with each other. A request is granted only when it conflicts neither with a held lock
/// nor with an earlier request still waiting, so a stream of newcomers can never starve an earlier waiter.
/// Pure and deterministic: grants come out in arrival order.
/// </summary>
public sealed class RangeLocks
{
    private readonly List<Request> _held = new();
    private readonly List<Request> _waiting = new();

    /// <summary>A held or waiting lock, for snapshots.</summary>
    public readonly record struct Entry(long Id, ulong Start, ulong Last, bool Shared);

    /// <summary>The held locks and the waiting requests, each in order.</summary>
    public (Entry[] Held, Entry[] Waiting) Capture()
    {
        var held = new Entry[_held.Count];
        for (int i = 0; i < held.Length; i++)
            held[i] = new Entry(_held[i].Id, _held[i].Start, _held[i].Last, _held[i].Shared);
        var waiting = new Entry[_waiting.Count];
        for (int i = 0; i < waiting.Length; i++)
            waiting[i] = new Entry(_waiting[i].Id, _waiting[i].Start, _waiting[i].Last, _waiting[i].Shared);
        return (held, waiting);
    }

    /// <summary>Rebuilds the lock table from <see cref="Capture"/>.</summary>
    public static RangeLocks Restore(Entry[] held, Entry[] waiting)
    {
        var locks = new RangeLocks();
        foreach (var e in held)
            locks._held.Add(new Request(e.Id, e.Start, e.Last, e.Shared));
        foreach (var e in waiting)
            locks._waiting.Add(new Request(e.Id, e.Start, e.Last, e.Shared));
        return locks;
    }

    private readonly record struct Request(long Id, ulong Start, ulong Last, bool Shared)
    {
        public bool ConflictsWith(in Request other)
            => Start <= other.Last && other.Start <= Last && !(Shared && other.Shared);
    }

    /// <summary>Locks held now.</summary>
    public int Held => _held.Count;

    /// <summary>Requests waiting now.</summary>
    public int Waiting => _waiting.Count;

    /// <summary>
    /// Requests [<paramref name="start"/>, <paramref name="last"/>] for <paramref name="id"/> (unique among live requests).
    /// Returns true when granted at once; otherwise the request waits and a later <see cref="Release"/> grants it.
    /// </summary>
    public bool Acquire(long id, ulong start, ulong last, bool shared = false)
    {
        if (last < start)
            throw new ArgumentException($"Empty lock range 0x{start:x}-0x{last:x}.");
        var r = new Request(id, start, last, shared);
        if (CanGrant(r, _waiting.Count))
        {
            _held.Add(r);
            return true;
        }
        _waiting.Add(r);
        return false;
    }

    /// <summary>Releases the lock of <paramref name="id"/> and appends the ids it lets through to <paramref name="granted"/>.</summary>
    public void Release(long id, List<long> granted)
    {
        int i = _held.FindIndex(r => r.Id == id);
        if (i < 0)
            throw new InvalidOperationException($"Lock {id} is not held.");
        _held.RemoveAt(i);
        for (int w = 0; w < _waiting.Count;)
        {
            var r = _waiting[w];
            if (CanGrant(r, w))
            {
                _waiting.RemoveAt(w);
                _held.Add(r);
                granted.Add(r.Id);
            }
            else
            {
                w++;
            }
        }
    }

    private bool CanGrant(in Request r, int earlierWaiting)
    {
        foreach (var h in _held)
        {
            if (r.ConflictsWith(h))
                return false;
        }
        for (int i = 0; i < earlierWaiting; i++)
        {
            if (r.ConflictsWith(_waiting[i]))
                return false;
        }
        return true;
    }
}
