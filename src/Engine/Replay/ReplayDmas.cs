using System.Runtime.InteropServices;
using PtActors.Engine.Hardware;

namespace PtActors.Engine.Replay;

/// <summary>
/// The DMAs one IOMMU unit translated in one window (<c>simulate --record-dmas</c> journals one per unit and
/// window that had any): what a replay feeds its unit's window to translate the same DMAs.
/// </summary>
/// <param name="Window">The window (from 1).</param>
/// <param name="Items">The DMAs, in any order (the unit runs them in stamp order).</param>
public sealed record WindowDmas(long Window, DmaAccess[] Items);

/// <summary>
/// DMAs a replay synthesizes for a recording that has none: <paramref name="PerPage"/> DMAs per mapped 4 KiB page
/// over each mapping's lifetime, from a generator seeded with <paramref name="Seed"/>.
/// </summary>
/// <param name="PerPage">DMAs per mapped page (at least 1, at most <see cref="MaxPerPage"/>).</param>
/// <param name="Seed">The generator's seed: the same recording, configuration and seed give the same DMAs.</param>
public sealed record SynthDmas(int PerPage, ulong Seed)
{
    /// <summary>Most DMAs per page a replay synthesizes.</summary>
    public const int MaxPerPage = 256;

    /// <summary>The seed when none is given.</summary>
    public const ulong DefaultSeed = 1;
}

/// <summary>Where a replay placed what the run placed elsewhere: recorded DMAs follow DMA-API buffers to the replay's IOVAs.</summary>
internal interface IDmaPlacement
{
    /// <summary>Whether any buffer is placed elsewhere now.</summary>
    bool AnyMoved { get; }

    /// <summary><paramref name="dma"/>, sent to where the replay placed its buffer (unchanged if it is not placed elsewhere).</summary>
    DmaAccess Place(in DmaAccess dma);
}

/// <summary>A mapping the replay made, from the window its map was answered in to the window its unmap was.</summary>
internal struct SynthMapping
{
    public int Domain;          // index in the lane's domain list
    public ulong Iova, Bytes;
    public ulong FromNs;        // the map's stamp (no DMA before it)
    public long FirstWindow, LastWindow;
}

/// <summary>
/// The DMAs a lane's unit gets each window: recorded ones (a run's journal of its unit's DMAs), synthesized ones
/// (from the mappings a first replay pass saw), or none. Pure and deterministic: a lane's synthesized DMAs depend on
/// its mappings, the seed and the lane's number only.
/// </summary>
internal sealed class LaneDmaFeed
{
    private const ulong PageBytes = 4096;

    private readonly IReadOnlyList<WindowDmas>? _recorded;
    private int _nextRecorded;
    private long _previousRecorded;

    private readonly List<SynthMapping>? _mappings;
    private readonly int[][]? _devices;   // each lane domain's devices
    private readonly int _perPage;
    private readonly ulong _windowNs;
    private ulong _rng;
    private uint _seq;
    private int _nextMapping;
    private readonly Dictionary<long, List<DmaAccess>> _pending = new();
    private readonly Stack<List<DmaAccess>> _spare = new();

    /// <summary>No DMAs.</summary>
    public static readonly LaneDmaFeed None = new(null, null, null, 0, 0, 0, 0);

    private LaneDmaFeed(IReadOnlyList<WindowDmas>? recorded, List<SynthMapping>? mappings, int[][]? devices, int perPage, ulong seed, int lane, ulong windowNs)
    {
        _recorded = recorded;
        _mappings = mappings;
        _devices = devices;
        _perPage = perPage;
        _windowNs = windowNs;
        // SplitMix64's state: a lane's stream depends on the seed and the lane only.
        _rng = seed ^ (0x9E37_79B9_7F4A_7C15UL * (ulong)(lane + 1));
    }

    /// <summary>Whether DMAs are fed (recorded or synthesized; possibly none in a given window).</summary>
    public bool Active => _recorded is not null || _mappings is not null;

    /// <summary>A lane's recorded DMAs, one entry per window in increasing window order.</summary>
    public static LaneDmaFeed Recorded(IReadOnlyList<WindowDmas> windows) => new(windows, null, null, 0, 0, 0, 0);

    /// <summary>DMAs synthesized over <paramref name="mappings"/> (in the order their maps were answered).</summary>
    public static LaneDmaFeed Synthesized(SynthDmas synth, int lane, List<SynthMapping> mappings, int[][] devices, ulong windowNs)
        => new(null, mappings, devices, synth.PerPage, synth.Seed, lane, windowNs);

    /// <summary>Adds window <paramref name="w"/>'s DMAs to <paramref name="window"/>.</summary>
    /// <exception cref="ReplayException">The recorded DMAs are not in increasing window order.</exception>
    public void Feed(long w, UnitWindow window, string unit, IDmaPlacement placement)
    {
        if (_recorded is { } recorded)
        {
            while (_nextRecorded < recorded.Count && recorded[_nextRecorded].Window <= w)
            {
                var e = recorded[_nextRecorded];
                if (e.Window <= _previousRecorded)
                    throw new ReplayException($"{unit}'s recorded DMAs of window {e.Window} come after those of window {_previousRecorded}");
                _previousRecorded = e.Window;
                if (e.Window == w)
                {
                    if (!placement.AnyMoved)
                    {
                        window.AddDmas(e.Items);
                    }
                    else
                    {
                        foreach (ref readonly var dma in e.Items.AsSpan())
                            window.AddDma(placement.Place(dma));
                    }
                }
                _nextRecorded++;
            }
            return;
        }
        if (_mappings is not { } mappings)
            return;
        while (_nextMapping < mappings.Count && mappings[_nextMapping].FirstWindow <= w)
            Synthesize(mappings[_nextMapping++]);
        if (_pending.Remove(w, out var dmas))
        {
            window.AddDmas(CollectionsMarshal.AsSpan(dmas));
            dmas.Clear();
            _spare.Push(dmas);
        }
    }

    /// <summary>Whether no DMA is left for a window after <paramref name="w"/> (a lane winds down until then).</summary>
    public bool Drained(long w)
    {
        if (_recorded is { } recorded)
            return _nextRecorded >= recorded.Count || recorded[^1].Window <= w;
        return _mappings is null || (_nextMapping >= _mappings.Count && _pending.Count == 0);
    }

    /// <summary>
    /// The mapping's DMAs: <see cref="_perPage"/> per 4 KiB page it covers, each in a window drawn uniformly from
    /// its lifetime and at a stamp drawn uniformly within that window (in the map's window, not before the map's
    /// stamp), to an 8-byte-aligned address in the page, by one of the domain's devices; reads (a write would set
    /// dirty bits, which a recorded read-and-clear-dirty would then see and answer differently).
    /// </summary>
    private void Synthesize(in SynthMapping m)
    {
        var devices = _devices![m.Domain];
        if (devices.Length == 0 || m.Bytes == 0)
            return;
        ulong pages = (m.Bytes + PageBytes - 1) / PageBytes;
        ulong span = (ulong)(m.LastWindow - m.FirstWindow + 1);
        for (ulong p = 0; p < pages; p++)
        {
            ulong inPage = Math.Min(PageBytes, m.Bytes - p * PageBytes);
            for (int k = 0; k < _perPage; k++)
            {
                long w = m.FirstWindow + (long)(Next() % span);
                ulong lo = (ulong)(w - 1) * _windowNs, hi = (ulong)w * _windowNs;
                if (w == m.FirstWindow && m.FromNs > lo)
                    lo = Math.Min(m.FromNs, hi - 1);
                ulong stamp = lo + Next() % (hi - lo);
                ulong iova = m.Iova + p * PageBytes + ((Next() % inPage) & ~7UL);
                int device = devices[(int)(Next() % (ulong)devices.Length)];
                if (!_pending.TryGetValue(w, out var list))
                {
                    list = _spare.Count > 0 ? _spare.Pop() : new List<DmaAccess>();
                    _pending.Add(w, list);
                }
                list.Add(new DmaAccess(stamp, device, _seq++, iova, Write: false));
            }
        }
    }

    /// <summary>SplitMix64.</summary>
    private ulong Next()
    {
        ulong z = _rng += 0x9E37_79B9_7F4A_7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EBUL;
        return z ^ (z >> 31);
    }
}

/// <summary>
/// Collects the mappings a replay lane makes (first pass of a replay with synthesized DMAs): each successful map
/// opens one at the window its answer came in, each unmap closes those it removed, and what is still open at the end
/// lasts until the lane's last window.
/// </summary>
internal sealed class LaneMappings
{
    public readonly List<SynthMapping> Mappings = new();
    private readonly Dictionary<ulong, int>[] _open;       // per lane domain: start IOVA → index in Mappings
    private readonly Dictionary<long, ulong>[] _mapStamps; // per lane domain: map id → its stamp, until answered

    public LaneMappings(int domains)
    {
        _open = new Dictionary<ulong, int>[domains];
        _mapStamps = new Dictionary<long, ulong>[domains];
        for (int i = 0; i < domains; i++)
        {
            _open[i] = new Dictionary<ulong, int>();
            _mapStamps[i] = new Dictionary<long, ulong>();
        }
    }

    /// <summary>The operations a batch of lane domain <paramref name="domain"/> submits (their stamps).</summary>
    public void Submitted(int domain, ReadOnlySpan<PtActors.Engine.Dma.DmaOp> ops)
    {
        var stamps = _mapStamps[domain];
        foreach (ref readonly var op in ops)
        {
            if (op.Kind is PtActors.Engine.Dma.DmaOpKind.DmaMap or PtActors.Engine.Dma.DmaOpKind.Map)
                stamps[op.Id] = op.StampNs;
        }
    }

    /// <summary>The answers lane domain <paramref name="domain"/> gave in window <paramref name="w"/>.</summary>
    public void Answered(int domain, long w, ReadOnlySpan<PtActors.Engine.Dma.DmaOpResult> results)
    {
        var open = _open[domain];
        foreach (ref readonly var r in results)
        {
            switch (r.Kind)
            {
                case PtActors.Engine.Dma.DmaOpKind.DmaMap or PtActors.Engine.Dma.DmaOpKind.Map:
                    _mapStamps[domain].Remove(r.Id, out ulong stamp);
                    if (r.Error != Errno.None || r.Bytes == 0)
                        break;
                    if (open.Remove(r.Iova, out int earlier))
                        Close(earlier, w);
                    open[r.Iova] = Mappings.Count;
                    Mappings.Add(new SynthMapping { Domain = domain, Iova = r.Iova, Bytes = r.Bytes, FromNs = stamp, FirstWindow = w, LastWindow = long.MaxValue });
                    break;
                case PtActors.Engine.Dma.DmaOpKind.Unmap when r.Error == Errno.None && r.Bytes > 0:
                    CloseRange(open, r.Iova, r.Bytes, w);
                    break;
            }
        }
    }

    /// <summary>Closes the open mappings starting in [iova, iova + bytes): by page or by open mapping, whichever is fewer.</summary>
    private void CloseRange(Dictionary<ulong, int> open, ulong iova, ulong bytes, long w)
    {
        if (open.Remove(iova, out int first))
            Close(first, w);
        if (bytes <= 4096 || open.Count == 0)
            return;
        ulong last = iova + (bytes - 1);
        if ((bytes >> 12) <= (ulong)open.Count)
        {
            for (ulong a = (iova & ~0xfffUL) + 4096; a <= last && a > iova; a += 4096)
            {
                if (open.Remove(a, out int i))
                    Close(i, w);
            }
            return;
        }
        List<ulong>? closing = null;
        foreach (var (start, _) in open)
        {
            if (start >= iova && start <= last)
                (closing ??= new List<ulong>()).Add(start);
        }
        if (closing is null)
            return;
        foreach (ulong start in closing)
        {
            open.Remove(start, out int i);
            Close(i, w);
        }
    }

    private void Close(int index, long w)
    {
        var span = CollectionsMarshal.AsSpan(Mappings);
        span[index].LastWindow = w;
    }

    /// <summary>Mappings still open last until <paramref name="lastWindow"/>.</summary>
    public void End(long lastWindow)
    {
        foreach (ref var m in CollectionsMarshal.AsSpan(Mappings))
        {
            m.LastWindow = Math.Max(m.FirstWindow, Math.Min(m.LastWindow, lastWindow));
        }
    }
}
