using System.Runtime.CompilerServices;

namespace PtActors.Engine.Hardware;

/// <summary>
/// Sizes of the paging-structure (walk) caches, per table level whose items they cache: level 1 items point
/// at level-0 tables, and so on up. The defaults are gem5's SMMUv3 (4/28/348/4 entries from the top of a
/// 4-level table down, 4-way); levels above 3 share the top size.
/// </summary>
public sealed record WalkCacheConfig(int Level1 = 348, int Level2 = 28, int Level3 = 4, int Upper = 4, int Ways = 4)
{
    /// <summary>Entries cached for items of <paramref name="level"/> (1..5).</summary>
    public int EntriesFor(int level) => level switch { 1 => Level1, 2 => Level2, 3 => Level3, _ => Upper };

    /// <summary>No walk caches at all.</summary>
    public static WalkCacheConfig None => new(0, 0, 0, 0, 1);
}

/// <summary>One cached table pointer: the item of <c>level</c> covering <c>Va</c> points at the table <c>ChildPage</c>.</summary>
public struct WalkCacheEntry
{
    /// <summary>VA of the item, aligned to the item size.</summary>
    public ulong Va;
    /// <summary>The child table's page in the domain's memory.</summary>
    public int ChildPage;
    /// <summary>Domain id tag.</summary>
    public int DomainId;
    /// <summary>True while valid.</summary>
    public bool Valid;
    /// <summary>An unmap covered the item's VA after the entry was filled (it may point at an unlinked table).</summary>
    public bool Suspect;
    /// <summary>LRU stamp.</summary>
    public long Stamp;
}

/// <summary>
/// Paging-structure caches, one set-associative LRU cache per level. A walk starts at the deepest cached
/// table; invalidations that free tables must clear the entries pointing at them.
/// </summary>
public sealed class WalkCache
{
    private const int MaxLevel = 5;
    private readonly WalkCacheEntry[][] _levels = new WalkCacheEntry[MaxLevel + 1][];
    private readonly int[] _sets = new int[MaxLevel + 1];
    private readonly int[] _valid = new int[MaxLevel + 1];   // valid entries per level: empty levels are skipped
    private readonly int _ways;
    private long _clock;

    /// <summary>Creates empty caches.</summary>
    public WalkCache(WalkCacheConfig config)
    {
        Config = config;
        _ways = Math.Max(1, config.Ways);
        for (int level = 1; level <= MaxLevel; level++)
        {
            int entries = config.EntriesFor(level);
            int ways = Math.Min(_ways, Math.Max(entries, 1));
            _sets[level] = entries == 0 ? 0 : Math.Max(1, entries / ways);
            _levels[level] = new WalkCacheEntry[_sets[level] * _ways];
        }
    }

    /// <summary>The geometry.</summary>
    public WalkCacheConfig Config { get; }

    private static int ItemLg2(int level) => Formats.PtGeometry.ItemLg2(level);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int SetBase(int level, int domainId, ulong itemVa)
    {
        ulong key = (itemVa >> ItemLg2(level)) ^ ((ulong)(uint)domainId * 0x9E3779B97F4A7C15UL);
        ulong sets = (ulong)_sets[level];
        // The same set as key % sets; a mask when the count is a power of two (one set included).
        ulong set = (sets & (sets - 1)) == 0 ? key & (sets - 1) : key % sets;
        return (int)set * _ways;
    }

    /// <summary>
    /// The deepest cached table for <paramref name="va"/>, searching levels 1 up to <paramref name="topLevel"/>:
    /// returns the level of the cached item (the walk continues at level - 1 in <paramref name="childPage"/>), or -1.
    /// </summary>
    public int Lookup(int domainId, ulong va, int topLevel, out int childPage, out bool suspect)
    {
        int top = Math.Min(topLevel, MaxLevel);
        for (int level = 1; level <= top; level++)
        {
            if (_valid[level] == 0)
                continue;
            ulong itemVa = Log2.SetMod(va, 0, ItemLg2(level));
            var set = _levels[level].AsSpan(SetBase(level, domainId, itemVa), _ways);
            for (int w = 0; w < set.Length; w++)
            {
                ref var e = ref set[w];
                if (e.Va == itemVa && e.Valid && e.DomainId == domainId)
                {
                    e.Stamp = ++_clock;
                    childPage = e.ChildPage;
                    suspect = e.Suspect;
                    return level;
                }
            }
        }
        childPage = -1;
        suspect = false;
        return -1;
    }

    /// <summary>Caches that the item of <paramref name="level"/> covering <paramref name="va"/> points at <paramref name="childPage"/>.</summary>
    public void Fill(int domainId, int level, ulong va, int childPage, bool suspect = false)
    {
        if (level < 1 || level > MaxLevel || _sets[level] == 0)
            return;
        ulong itemVa = Log2.SetMod(va, 0, ItemLg2(level));
        var set = _levels[level].AsSpan(SetBase(level, domainId, itemVa), _ways);
        int victim = 0;
        for (int w = 0; w < set.Length; w++)
        {
            ref var e = ref set[w];
            if (!e.Valid || (e.Va == itemVa && e.DomainId == domainId))
            {
                victim = w;
                break;
            }
            if (e.Stamp < set[victim].Stamp)
                victim = w;
        }
        if (!set[victim].Valid)
            _valid[level]++;
        set[victim] = new WalkCacheEntry { Va = itemVa, ChildPage = childPage, DomainId = domainId, Valid = true, Suspect = suspect, Stamp = ++_clock };
    }

    /// <summary>
    /// Drops the entries of <paramref name="domainId"/> (every domain when negative) whose item overlaps
    /// [<paramref name="start"/>, <paramref name="last"/>]. Returns how many were dropped.
    /// </summary>
    public int Invalidate(int domainId, ulong start, ulong last) => Sweep(domainId, start, last, drop: true);

    /// <summary>Marks the entries overlapping the range suspect (an unmap changed what they lead to).</summary>
    public int MarkSuspect(int domainId, ulong start, ulong last) => Sweep(domainId, start, last, drop: false);

    private int Sweep(int domainId, ulong start, ulong last, bool drop)
    {
        const ulong MaxProbes = 16;
        int touched = 0;
        for (int level = 1; level <= MaxLevel; level++)
        {
            if (_valid[level] == 0)
                continue;
            var set = _levels[level];
            int lg2 = ItemLg2(level);
            ulong n = (Log2.Div(last, lg2) - Log2.Div(start, lg2)) + 1;
            if (domainId >= 0 && n != 0 && n <= MaxProbes)
            {
                // Probe the sets of the few items the range covers.
                ulong itemVa = Log2.SetMod(start, 0, lg2);
                for (ulong k = 0; k < n; k++, itemVa += 1UL << lg2)
                {
                    var ways = set.AsSpan(SetBase(level, domainId, itemVa), _ways);
                    for (int w = 0; w < ways.Length; w++)
                    {
                        ref var e = ref ways[w];
                        if (e.Va == itemVa && e.Valid && e.DomainId == domainId)
                        {
                            Touch(level, ref e, drop);
                            touched++;
                        }
                    }
                }
                continue;
            }
            ulong size = Log2.ToMaxInt(lg2);
            for (int i = 0; i < set.Length; i++)
            {
                ref var e = ref set[i];
                if (!e.Valid || (domainId >= 0 && e.DomainId != domainId))
                    continue;
                if (e.Va > last || e.Va + size < start)
                    continue;
                Touch(level, ref e, drop);
                touched++;
            }
        }
        return touched;
    }

    private void Touch(int level, ref WalkCacheEntry e, bool drop)
    {
        if (drop)
        {
            e.Valid = false;
            _valid[level]--;
        }
        else
        {
            e.Suspect = true;
        }
    }
}
