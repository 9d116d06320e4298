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
    private const int BucketLg2 = 14;        // held locks are indexed by the 16 KiB regions they touch
    private const ulong MaxBuckets = 256;    // wider locks (above 4 MiB) go to a list every check scans

    private readonly Dictionary<long, Request> _heldById = new();
    private readonly Dictionary<ulong, List<Request>> _buckets = new();
    private readonly List<Request> _wide = new();
    private readonly Stack<List<Request>> _spareBuckets = new();
    private readonly List<Request> _waiting = new();

    /// <summary>A held or waiting lock, for snapshots.</summary>
    public readonly record struct Entry(long Id, ulong Start, ulong Last, bool Shared);

    /// <summary>The held locks (by id) and the waiting requests (in arrival order).</summary>
    public (Entry[] Held, Entry[] Waiting) Capture()
    {
        var held = new Entry[_heldById.Count];
        int n = 0;
        foreach (var (_, h) in _heldById)
            held[n++] = new Entry(h.Id, h.Start, h.Last, h.Shared);
        // Held locks have no order that matters; sorting by id makes equal states capture equally.
        Array.Sort(held, static (a, b) => a.Id.CompareTo(b.Id));
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
            locks.Hold(new Request(e.Id, e.Start, e.Last, e.Shared));
        foreach (var e in waiting)
            locks._waiting.Add(new Request(e.Id, e.Start, e.Last, e.Shared));
        return locks;
    }

    private readonly record struct Request(long Id, ulong Start, ulong Last, bool Shared)
    {
        public bool ConflictsWith(in Request other)
            => Start <= other.Last && other.Start <= Last && !(Shared && other.Shared);

        public bool IsWide => (Last >> BucketLg2) - (Start >> BucketLg2) >= MaxBuckets;
    }

    /// <summary>Locks held now.</summary>
    public int Held => _heldById.Count;

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
            Hold(r);
            return true;
        }
        _waiting.Add(r);
        return false;
    }

    /// <summary>
    /// Whether [<paramref name="start"/>, <paramref name="last"/>] would be granted now: it conflicts with no held
    /// lock and no waiting request. Taking it and dropping it again without a change in between lets no waiter
    /// through, so a caller that only needs the range for one step may check instead of acquiring.
    /// </summary>
    public bool CanAcquire(ulong start, ulong last, bool shared = false)
    {
        if (last < start)
            throw new ArgumentException($"Empty lock range 0x{start:x}-0x{last:x}.");
        return CanGrant(new Request(0, start, last, shared), _waiting.Count);
    }

    /// <summary>Holds [<paramref name="start"/>, <paramref name="last"/>] for <paramref name="id"/>: only right after <see cref="CanAcquire"/> said yes.</summary>
    public void Hold(long id, ulong start, ulong last, bool shared = false) => Hold(new Request(id, start, last, shared));

    /// <summary>Queues a request that <see cref="CanAcquire"/> refused; a later <see cref="Release"/> grants it.</summary>
    public void Enqueue(long id, ulong start, ulong last, bool shared = false)
    {
        if (last < start)
            throw new ArgumentException($"Empty lock range 0x{start:x}-0x{last:x}.");
        _waiting.Add(new Request(id, start, last, shared));
    }

    /// <summary>Releases the lock of <paramref name="id"/> and appends the ids it lets through to <paramref name="granted"/>.</summary>
    public void Release(long id, List<long> granted)
    {
        if (!_heldById.Remove(id, out var r))
            throw new InvalidOperationException($"Lock {id} is not held.");
        Unindex(r);
        for (int w = 0; w < _waiting.Count;)
        {
            var waiter = _waiting[w];
            if (CanGrant(waiter, w))
            {
                _waiting.RemoveAt(w);
                Hold(waiter);
                granted.Add(waiter.Id);
            }
            else
            {
                w++;
            }
        }
    }

    private void Hold(in Request r)
    {
        _heldById.Add(r.Id, r);
        if (r.IsWide)
        {
            _wide.Add(r);
            return;
        }
        for (ulong b = r.Start >> BucketLg2; ; b++)
        {
            if (!_buckets.TryGetValue(b, out var list))
                _buckets[b] = list = _spareBuckets.Count > 0 ? _spareBuckets.Pop() : new List<Request>(4);
            list.Add(r);
            if (b == r.Last >> BucketLg2)
                break;
        }
    }

    private void Unindex(in Request r)
    {
        if (r.IsWide)
        {
            RemoveById(_wide, r.Id);
            return;
        }
        for (ulong b = r.Start >> BucketLg2; ; b++)
        {
            var list = _buckets[b];
            RemoveById(list, r.Id);
            if (list.Count == 0)
            {
                _buckets.Remove(b);
                _spareBuckets.Push(list);
            }
            if (b == r.Last >> BucketLg2)
                break;
        }
    }

    private static void RemoveById(List<Request> list, long id)
    {
        for (int i = list.Count - 1; i >= 0; i--)
        {
            if (list[i].Id == id)
            {
                // Order within a bucket does not matter (every check scans it whole): move the last one in.
                int last = list.Count - 1;
                list[i] = list[last];
                list.RemoveAt(last);
                return;
            }
        }
    }

    private bool CanGrant(in Request r, int earlierWaiting)
    {
        foreach (var h in _wide)
        {
            if (r.ConflictsWith(h))
                return false;
        }
        ulong first = r.Start >> BucketLg2, lastBucket = r.Last >> BucketLg2;
        if (lastBucket - first >= MaxBuckets || lastBucket - first >= (ulong)_buckets.Count)
        {
            // A wide request: cheaper to look at every held lock than at every bucket it spans.
            foreach (var (_, h) in _heldById)
            {
                if (r.ConflictsWith(h))
                    return false;
            }
        }
        else
        {
            for (ulong b = first; ; b++)
            {
                if (_buckets.TryGetValue(b, out var list))
                {
                    foreach (var h in list)
                    {
                        if (r.ConflictsWith(h))
                            return false;
                    }
                }
                if (b == lastBucket)
                    break;
            }
        }
        for (int i = 0; i < earlierWaiting; i++)
        {
            if (r.ConflictsWith(_waiting[i]))
                return false;
        }
        return true;
    }
}
