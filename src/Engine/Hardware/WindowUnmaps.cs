using PtActors.Engine.Dma;

namespace PtActors.Engine.Hardware;

/// <summary>
/// The unmap notices an IOMMU unit received for one window: put in stamp order (stamp, then operation id), and
/// indexed by page so that a DMA stamped before some of them can be translated as the table was before them
/// (<see cref="TryPreState"/>) without scanning every pending notice. Reused window after window.
/// </summary>
public sealed class WindowUnmaps
{
    /// <summary>Notices covering at most this many pages are indexed per page; wider ones are scanned.</summary>
    private const ulong IndexedPages = 16;

    private readonly List<(UnmapNotice Notice, IommuDomain Table)> _items = new();
    private readonly List<LeafSegment> _leaves = new();
    private readonly List<Key> _keys = new();
    private readonly Dictionary<(IommuDomain Table, ulong Page), int> _firstNode = new();
    private readonly List<(int Position, int Next)> _nodes = new();
    private readonly List<int> _wide = new();
    private int[] _order = [];
    private bool _indexed;

    private readonly record struct Key(ulong StampNs, long Id, int Index) : IComparable<Key>
    {
        public int CompareTo(Key other)
        {
            int c = StampNs.CompareTo(other.StampNs);
            return c != 0 ? c : Id.CompareTo(other.Id);
        }
    }

    /// <summary>Notices this window.</summary>
    public int Count => _items.Count;

    /// <summary>The notice at <paramref name="position"/> in stamp order (after <see cref="Sort"/>).</summary>
    public (UnmapNotice Notice, IommuDomain Table) this[int position] => _items[_order[position]];

    /// <summary>
    /// Adds a notice (any order); <paramref name="leaves"/> is the leaf list its <c>LeafStart</c> indexes (kept
    /// here, the notice re-indexed into the copy).
    /// </summary>
    public void Add(in UnmapNotice notice, IommuDomain table, ReadOnlySpan<LeafSegment> leaves)
    {
        if (notice.LeafCount == 0)
        {
            _items.Add((notice, table));
            return;
        }
        int start = _leaves.Count;
        _leaves.AddRange(leaves.Slice(notice.LeafStart, notice.LeafCount));
        _items.Add((notice with { LeafStart = start }, table));
    }

    /// <summary>Adds a notice that lists no leaves (any order).</summary>
    public void Add(in UnmapNotice notice, IommuDomain table) => Add(notice, table, []);

    /// <summary>Puts the notices in stamp order (indexing waits for the first <see cref="TryPreState"/>).</summary>
    public void Sort()
    {
        _keys.Clear();
        for (int i = 0; i < _items.Count; i++)
            _keys.Add(new Key(_items[i].Notice.StampNs, _items[i].Notice.Id, i));
        System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_keys).Sort();
        if (_order.Length < _items.Count)
            _order = new int[Math.Max(_items.Count, 2 * _order.Length)];
        for (int p = 0; p < _keys.Count; p++)
            _order[p] = _keys[p].Index;
        _indexed = false;
    }

    /// <summary>
    /// Indexes the notices that removed something by page. Done on the first <see cref="TryPreState"/> of a
    /// window: most windows never ask (a DMA needs the pre-state only when the table already lost its page).
    /// </summary>
    private void Index()
    {
        _indexed = true;
        _firstNode.Clear();
        _nodes.Clear();
        _wide.Clear();
        // Latest first, so that each page's chain runs in stamp order.
        for (int p = _keys.Count - 1; p >= 0; p--)
        {
            var (n, table) = _items[_order[p]];
            if (n.Unmapped == 0)
                continue; // removed no translation (only table pages)
            ulong first = n.Iova >> 12, last = (n.Iova + (n.Unmapped - 1)) >> 12;
            if (last - first >= IndexedPages || last < first)
            {
                _wide.Add(p);
                continue;
            }
            for (ulong page = first; ; page++)
            {
                var key = (table, page);
                int next = _firstNode.TryGetValue(key, out int head) ? head : -1;
                _nodes.Add((p, next));
                _firstNode[key] = _nodes.Count - 1;
                if (page == last)
                    break;
            }
        }
        _wide.Reverse();
    }

    /// <summary>
    /// The translation <paramref name="iova"/> had in <paramref name="domain"/> before the earliest notice at or
    /// after position <paramref name="from"/> that removed it (the leaf that unmap cleared); false when none did.
    /// </summary>
    public bool TryPreState(int from, IommuDomain domain, ulong iova, out ulong pa, out IommuProt prot)
    {
        if (!_indexed)
            Index();
        int best = int.MaxValue;
        if (_firstNode.TryGetValue((domain, iova >> 12), out int node))
        {
            for (; node >= 0; node = _nodes[node].Next)
            {
                int p = _nodes[node].Position;
                if (p >= from && Covers(p, iova))
                {
                    best = p;
                    break;
                }
            }
        }
        foreach (int p in _wide)
        {
            if (p >= best)
                break;
            if (p >= from && ReferenceEquals(this[p].Table, domain) && Covers(p, iova))
            {
                best = p;
                break;
            }
        }
        if (best == int.MaxValue)
        {
            pa = 0;
            prot = IommuProt.None;
            return false;
        }
        return this[best].Notice.TryTranslate(iova, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_leaves), out pa, out prot);
    }

    private bool Covers(int position, ulong iova)
    {
        var n = this[position].Notice;
        return iova >= n.Iova && iova - n.Iova < n.Unmapped;
    }

    /// <summary>Empties it for the next window.</summary>
    public void Clear()
    {
        _items.Clear();
        _leaves.Clear();
        _keys.Clear();
        _firstNode.Clear();
        _nodes.Clear();
        _wide.Clear();
        _indexed = false;
    }
}
