namespace PtActors.Engine.Dma;

/// <summary>
/// A DMA-API IOVA allocator modelled on Linux's (drivers/iommu/iova.c): allocations are size-aligned
/// (aligned to their size rounded up to a power of two pages) and come top-down from the limit; freed ranges
/// go to per-size caches and are reused last-in first-out before fresh space is taken (Linux's rcache holds
/// sizes up to 32 pages and returns larger ones to its tree, where the next request of that size finds them
/// again; here every size is cached). Deterministic: the same sequence of calls always returns the same addresses. O(1) per call.
/// </summary>
public sealed class IovaAllocator
{
    private const int PageLg2 = 12;

    private readonly Stack<ulong>[] _cache = new Stack<ulong>[64];
    private ulong _next; // fresh allocations end at or below this (exclusive end)

    /// <summary>Creates an allocator over [<paramref name="start"/>, <paramref name="limit"/>] (both page aligned, limit inclusive).</summary>
    public IovaAllocator(ulong start, ulong limit)
    {
        if ((start & 0xfff) != 0 || ((limit + 1) & 0xfff) != 0 || limit <= start)
            throw new ArgumentException($"IOVA range 0x{start:x}-0x{limit:x} must be page aligned and non-empty.");
        Start = start;
        Limit = limit;
        _next = limit + 1;
        for (int i = 0; i < _cache.Length; i++)
            _cache[i] = new Stack<ulong>();
    }

    /// <summary>Lowest IOVA handed out.</summary>
    public ulong Start { get; }

    /// <summary>Highest IOVA handed out (inclusive).</summary>
    public ulong Limit { get; }

    /// <summary>Bytes allocated now.</summary>
    public ulong AllocatedBytes { get; private set; }

    /// <summary>Allocations served from the caches of freed ranges.</summary>
    public long CacheHits { get; private set; }

    /// <summary>The order (log2 pages, rounded up) an allocation of <paramref name="size"/> bytes takes.</summary>
    public static int OrderOf(ulong size)
    {
        ulong pages = (size + 0xfff) >> PageLg2;
        return pages <= 1 ? 0 : Log2.Fls(pages - 1);
    }

    /// <summary>Allocates <paramref name="size"/> bytes (rounded up to its order); false when the space is exhausted.</summary>
    public bool TryAllocate(ulong size, out ulong iova)
    {
        iova = 0;
        if (size == 0)
            return false;
        int order = OrderOf(size);
        if (order + PageLg2 >= 64)
            return false;
        ulong bytes = 1UL << (order + PageLg2);
        if (_cache[order].TryPop(out iova))
        {
            CacheHits++;
            AllocatedBytes += bytes;
            return true;
        }
        // Fresh space, top-down, aligned to the rounded size.
        if (_next - Start < bytes)
            return false;
        ulong candidate = (_next - bytes) & ~(bytes - 1);
        if (candidate < Start)
            return false;
        _next = candidate;
        iova = candidate;
        AllocatedBytes += bytes;
        return true;
    }

    /// <summary>Returns a range <see cref="TryAllocate"/> gave out (the same size).</summary>
    public void Free(ulong iova, ulong size)
    {
        int order = OrderOf(size);
        ulong bytes = 1UL << (order + PageLg2);
        if (iova < Start || iova > Limit || (iova & (bytes - 1)) != 0)
            throw new ArgumentException($"0x{iova:x} (+0x{size:x}) was not allocated here.");
        AllocatedBytes -= bytes;
        _cache[order].Push(iova);
    }

    /// <summary>The allocator's state, for snapshots: the fresh-space pointer and each cache bottom to top.</summary>
    public (ulong Next, ulong[][] Caches) Capture()
    {
        var caches = new ulong[_cache.Length][];
        for (int i = 0; i < caches.Length; i++)
        {
            caches[i] = _cache[i].ToArray();
            Array.Reverse(caches[i]);
        }
        return (_next, caches);
    }

    /// <summary>Rebuilds an allocator from <see cref="Capture"/>.</summary>
    public static IovaAllocator Restore(ulong start, ulong limit, ulong next, ulong[][] caches, ulong allocatedBytes)
    {
        var a = new IovaAllocator(start, limit) { _next = next, AllocatedBytes = allocatedBytes };
        for (int i = 0; i < caches.Length && i < a._cache.Length; i++)
        {
            foreach (var iova in caches[i])
                a._cache[i].Push(iova);
        }
        return a;
    }
}
