using System.Runtime.CompilerServices;

namespace PtActors.Engine.Hardware;

/// <summary>What the IOTLB does when a set is full.</summary>
public enum IotlbMode
{
    /// <summary>Evict the least recently used way of the set.</summary>
    Lru,
    /// <summary>QEMU's behaviour: when the cache is full, drop everything.</summary>
    FlushAll,
}

/// <summary>IOTLB geometry: <see cref="Entries"/> entries in sets of <see cref="Ways"/> ways.</summary>
public sealed record IotlbConfig(int Entries = 1024, int Ways = 8, IotlbMode Mode = IotlbMode.Lru)
{
    /// <summary>Throws on an impossible geometry.</summary>
    public void Validate()
    {
        if (Entries <= 0 || Ways <= 0 || Entries % Ways != 0)
            throw new ArgumentException($"IOTLB of {Entries} entries cannot have {Ways} ways.");
    }
}

/// <summary>One cached translation: a whole leaf entry (contiguous and large leaves included).</summary>
public struct IotlbEntry
{
    /// <summary>VA of the entry, aligned to its size.</summary>
    public ulong Va;
    /// <summary>OA of the entry's start.</summary>
    public ulong Pa;
    /// <summary>Domain id tag.</summary>
    public int DomainId;
    /// <summary>log2 of the entry size; 0 = invalid way.</summary>
    public byte SizeLg2;
    /// <summary>Permissions of the leaf.</summary>
    public IommuProt Perms;
    /// <summary>An unmap covered this entry after it was filled, and no invalidation has removed it yet.</summary>
    public bool Suspect;
    /// <summary>The hardware has set the leaf's dirty bit through this entry.</summary>
    public bool Dirty;
    /// <summary>Level of the leaf item the entry was filled from.</summary>
    public byte LeafLevel;
    /// <summary>Page and index of the leaf item the entry was filled from.</summary>
    public int LeafPage, LeafIndex;
    /// <summary>LRU stamp.</summary>
    public long Stamp;
}

/// <summary>
/// A set-associative LRU IOTLB, or (flush-all mode) QEMU's fully associative one that drops everything when
/// it is full. Entries are tagged (domain id, VA aligned to the entry size, entry size); the set
/// index comes from the VA at that size, and a lookup probes only the sizes the cache currently holds.
/// </summary>
public sealed class Iotlb
{
    private readonly IotlbEntry[] _entries;
    private readonly int _sets;
    private readonly ulong _setMask;   // sets - 1 when a power of two (then non-zero unless one set)
    private readonly int _ways;
    private readonly IotlbMode _mode;
    private readonly int[] _countBySize = new int[64];
    private ulong _sizesPresent;
    private readonly Dictionary<Tag, int>? _index;  // flush-all mode: one fully associative cache
    private long _clock;
    private int _valid;

    private readonly record struct Tag(int DomainId, ulong Va, int SizeLg2);

    /// <summary>Creates an empty IOTLB.</summary>
    public Iotlb(IotlbConfig config)
    {
        config.Validate();
        _ways = config.Ways;
        _sets = config.Entries / config.Ways;
        if ((_sets & (_sets - 1)) == 0)
            _setMask = (ulong)_sets - 1;
        _mode = config.Mode;
        _entries = new IotlbEntry[config.Entries];
        if (_mode == IotlbMode.FlushAll)
            _index = new Dictionary<Tag, int>(config.Entries);
        Config = config;
    }

    /// <summary>The geometry.</summary>
    public IotlbConfig Config { get; }

    /// <summary>Valid entries now.</summary>
    public int Count => _valid;

    /// <summary>Entries evicted to make room.</summary>
    public long Evictions { get; private set; }

    /// <summary>Times the whole cache was dropped because it was full (flush-all mode).</summary>
    public long FullFlushes { get; private set; }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int SetOf(int domainId, ulong va, int sizeLg2)
    {
        ulong key = (va >> sizeLg2) ^ ((ulong)(uint)domainId * 0x9E3779B97F4A7C15UL) ^ (ulong)sizeLg2;
        return _setMask != 0 ? (int)(key & _setMask) : (int)(key % (ulong)_sets);
    }

    /// <summary>Finds the entry translating <paramref name="va"/> for a domain; returns its slot or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int Lookup(int domainId, ulong va)
    {
        ulong sizes = _sizesPresent;
        while (sizes != 0)
        {
            int lg2 = System.Numerics.BitOperations.TrailingZeroCount(sizes);
            sizes &= sizes - 1;
            ulong tagVa = Log2.SetMod(va, 0, lg2);
            int slot = Find(domainId, tagVa, lg2);
            if (slot >= 0)
            {
                _entries[slot].Stamp = ++_clock;
                return slot;
            }
        }
        return -1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Find(int domainId, ulong tagVa, int lg2)
    {
        if (_index is not null)
            return _index.TryGetValue(new Tag(domainId, tagVa, lg2), out int s) ? s : -1;
        int baseSlot = SetOf(domainId, tagVa, lg2) * _ways;
        var set = _entries.AsSpan(baseSlot, _ways);
        for (int w = 0; w < set.Length; w++)
        {
            ref var e = ref set[w];
            if (e.Va == tagVa && e.SizeLg2 == lg2 && e.DomainId == domainId)
                return baseSlot + w;
        }
        return -1;
    }

    /// <summary>The entry in <paramref name="slot"/>.</summary>
    public ref IotlbEntry this[int slot] => ref _entries[slot];

    /// <summary>Caches a translation (replacing an entry with the same tag).</summary>
    public int Fill(int domainId, ulong va, int sizeLg2, ulong pa, IommuProt perms)
    {
        ulong tagVa = Log2.SetMod(va, 0, sizeLg2);
        int victim = _index is null ? ChooseWay(domainId, tagVa, sizeLg2) : Find(domainId, tagVa, sizeLg2);
        if (victim < 0)
            victim = ChooseFree();
        ref var slot = ref _entries[victim];
        if (slot.SizeLg2 == 0)
        {
            _valid++;
            if (_countBySize[sizeLg2]++ == 0)
                _sizesPresent |= 1UL << sizeLg2;
            _index?.Add(new Tag(domainId, tagVa, sizeLg2), victim);
        }
        slot = new IotlbEntry { Va = tagVa, Pa = pa, DomainId = domainId, SizeLg2 = (byte)sizeLg2, Perms = perms, Stamp = ++_clock };
        return victim;
    }

    /// <summary>
    /// The way of the tag's set to fill, in one pass over the set: the way holding the tag, else the first free
    /// way, else the least recently used one (evicted).
    /// </summary>
    private int ChooseWay(int domainId, ulong tagVa, int sizeLg2)
    {
        int baseSlot = SetOf(domainId, tagVa, sizeLg2) * _ways;
        var set = _entries.AsSpan(baseSlot, _ways);
        int free = -1, lru = 0;
        long lruStamp = long.MaxValue;
        for (int w = 0; w < set.Length; w++)
        {
            ref var e = ref set[w];
            if (e.SizeLg2 == 0)
            {
                if (free < 0)
                    free = w;
            }
            else if (e.Va == tagVa && e.SizeLg2 == sizeLg2 && e.DomainId == domainId)
            {
                return baseSlot + w;
            }
            else if (e.Stamp < lruStamp)
            {
                lru = w;
                lruStamp = e.Stamp;
            }
        }
        if (free >= 0)
            return baseSlot + free;
        Evictions++;
        Remove(baseSlot + lru);
        return baseSlot + lru;
    }

    private int ChooseFree()
    {
        if (_valid == _entries.Length)
        {
            FullFlushes++;
            Clear();
        }
        for (int i = 0; i < _entries.Length; i++)
        {
            if (_entries[i].SizeLg2 == 0)
                return i;
        }
        throw new InvalidOperationException("IOTLB accounting is inconsistent.");
    }

    /// <summary>Drops the entry in <paramref name="slot"/>.</summary>
    public void Remove(int slot)
    {
        ref var e = ref _entries[slot];
        if (e.SizeLg2 == 0)
            return;
        if (--_countBySize[e.SizeLg2] == 0)
            _sizesPresent &= ~(1UL << e.SizeLg2);
        _index?.Remove(new Tag(e.DomainId, e.Va, e.SizeLg2));
        e = default;
        _valid--;
    }

    /// <summary>Drops every entry.</summary>
    public void Clear()
    {
        Array.Clear(_entries);
        Array.Clear(_countBySize);
        _index?.Clear();
        _sizesPresent = 0;
        _valid = 0;
    }

    /// <summary>
    /// Removes (or, with <paramref name="remove"/> false, marks suspect) every entry of <paramref name="domainId"/>
    /// overlapping [<paramref name="start"/>, <paramref name="last"/>]. Small ranges probe only the sets the range
    /// maps to, size by size; large ones sweep the whole cache. Returns how many entries it touched.
    /// </summary>
    public int InvalidateRange(int domainId, ulong start, ulong last, bool remove = true)
    {
        const int MaxProbes = 64;
        int probes = 0;
        for (ulong sizes = _sizesPresent; sizes != 0; sizes &= sizes - 1)
        {
            int lg2 = System.Numerics.BitOperations.TrailingZeroCount(sizes);
            ulong n = (Log2.Div(last, lg2) - Log2.Div(start, lg2)) + 1;
            if (n == 0 || n > MaxProbes || (probes += (int)n) > MaxProbes)
                return SweepRange(domainId, start, last, remove);
        }
        int touched = 0;
        for (ulong sizes = _sizesPresent; sizes != 0; sizes &= sizes - 1)
        {
            int lg2 = System.Numerics.BitOperations.TrailingZeroCount(sizes);
            ulong first = Log2.SetMod(start, 0, lg2), lastTag = Log2.SetMod(last, 0, lg2);
            for (ulong va = first; ; va += 1UL << lg2)
            {
                int slot = Find(domainId, va, lg2);
                if (slot >= 0)
                {
                    touched++;
                    if (remove)
                        Remove(slot);
                    else
                        _entries[slot].Suspect = true;
                }
                if (va == lastTag)
                    break;
            }
        }
        return touched;
    }

    /// <summary>Removes every entry of <paramref name="domainId"/> (a whole-domain invalidation). Returns how many.</summary>
    public int InvalidateDomain(int domainId) => SweepRange(domainId, 0, ulong.MaxValue, remove: true);

    /// <summary>
    /// <see cref="Sweep"/> with a fixed visitor: removes (or marks suspect) every entry of <paramref name="domainId"/>
    /// (any domain when negative) overlapping the range. Returns how many it removed or marked.
    /// </summary>
    private int SweepRange(int domainId, ulong start, ulong last, bool remove)
    {
        if (_valid == 0)
            return 0;
        int touched = 0;
        var entries = _entries;
        for (int i = 0; i < entries.Length; i++)
        {
            ref var e = ref entries[i];
            if (e.SizeLg2 == 0 || (domainId >= 0 && e.DomainId != domainId)
                || e.Va > last || e.Va + Log2.ToMaxInt(e.SizeLg2) < start)
                continue;
            touched++;
            if (remove)
                Remove(i);
            else
                e.Suspect = true;
        }
        return touched;
    }

    /// <summary>
    /// Visits each valid entry of <paramref name="domainId"/> (any domain when negative) that overlaps
    /// [<paramref name="start"/>, <paramref name="last"/>]; the visitor returns true to remove it.
    /// Returns how many were removed.
    /// </summary>
    public int Sweep(int domainId, ulong start, ulong last, Func<int, bool> visit)
    {
        int removed = 0;
        for (int i = 0; i < _entries.Length; i++)
        {
            ref var e = ref _entries[i];
            if (e.SizeLg2 == 0 || (domainId >= 0 && e.DomainId != domainId))
                continue;
            ulong eLast = e.Va + Log2.ToMaxInt(e.SizeLg2);
            if (e.Va > last || eLast < start)
                continue;
            if (visit(i))
            {
                Remove(i);
                removed++;
            }
        }
        return removed;
    }
}
