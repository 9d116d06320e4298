using System.Runtime.InteropServices;
using PtActors.Engine.Dma;

namespace PtActors.Engine.Hardware;

/// <summary>A DMA a device made: stamped, and ordered by (stamp, device, sequence).</summary>
public readonly record struct DmaAccess(ulong StampNs, int Device, uint Seq, ulong Iova, bool Write) : IComparable<DmaAccess>
{
    /// <summary>Stamp order: time, then device and its sequence.</summary>
    public int CompareTo(DmaAccess other)
    {
        int c = StampNs.CompareTo(other.StampNs);
        if (c != 0)
            return c;
        c = Device.CompareTo(other.Device);
        return c != 0 ? c : Seq.CompareTo(other.Seq);
    }
}

/// <summary>
/// One window of an <see cref="IommuUnit"/> in split mode: the DMAs its devices made, the unmaps its domains
/// already applied (their notices) and the flushes their tables asked for, run in stamp order on the unit's clock.
/// The domains applied the window's changes before the unit runs it, so a DMA stamped before an unmap of the
/// same window is translated as the table was before that unmap (this is the unit's
/// <see cref="IommuUnit.PreState"/>: the leaves the unmap cleared, carried by its notice). Shared by the IOTLB
/// actor and the single-threaded harnesses; reused window after window.
/// </summary>
public sealed class UnitWindow : IPreStateOracle
{
    private readonly IommuUnit _unit;
    private readonly Dictionary<int, (IommuDevice Device, int Cpu)> _devices = new();
    private readonly List<DmaAccess> _dmas = new();
    private readonly WindowUnmaps _unmaps = new();
    private readonly List<(FlushNotice Notice, IommuDomain Table)> _flushes = new();
    private readonly bool _queued;
    private int _pendingFrom;   // first unmap of the window not yet run (the pre-state oracle's horizon)

    /// <summary>A window runner for <paramref name="unit"/> (it becomes the unit's pre-state oracle).</summary>
    public UnitWindow(IommuUnit unit)
    {
        _unit = unit;
        unit.PreState = this;
        _queued = unit.Config.Policy.Kind is FlushPolicyKind.Lazy or FlushPolicyKind.LazySingle;
    }

    /// <summary>Whether nothing waits to run in the window (no DMA, unmap notice or flush).</summary>
    public bool IsEmpty => _dmas.Count == 0 && _unmaps.Count == 0 && _flushes.Count == 0;

    /// <summary>DMAs run so far, over every window.</summary>
    public long DmasRun { get; private set; }

    /// <summary>
    /// Device number <paramref name="device"/> (as DMAs and unmap ids name it: an operation id's upper half) is
    /// <paramref name="target"/> and unmaps on CPU <paramref name="cpu"/>.
    /// </summary>
    public void Bind(int device, IommuDevice target, int cpu) => _devices[device] = (target, cpu);

    /// <summary>Adds DMAs of the window (any order).</summary>
    public void AddDmas(ReadOnlySpan<DmaAccess> dmas) => _dmas.AddRange(dmas);

    /// <summary>Adds one DMA of the window.</summary>
    public void AddDma(in DmaAccess dma) => _dmas.Add(dma);

    /// <summary>
    /// Adds the notice of an unmap <paramref name="table"/>'s owner applied this window; <paramref name="leaves"/>
    /// is the leaf list that came with it (<see cref="BatchOutcome.Leaves"/>).
    /// </summary>
    public void AddUnmap(in UnmapNotice notice, IommuDomain table, ReadOnlySpan<LeafSegment> leaves) => _unmaps.Add(notice, table, leaves);

    /// <summary>Adds a flush <paramref name="table"/> asked for this window.</summary>
    public void AddFlush(in FlushNotice notice, IommuDomain table) => _flushes.Add((notice, table));

    /// <summary>
    /// Runs everything of the window in stamp order — flushes the tables asked for, unmaps, then DMAs at one
    /// stamp — and advances the clock to <paramref name="endNs"/>; the window is empty afterwards. A DMA of a
    /// device not bound is counted and skipped.
    /// </summary>
    public void Run(ulong endNs)
    {
        CollectionsMarshal.AsSpan(_flushes).Sort(new StampOrder(_unit));
        _unmaps.Sort();
        CollectionsMarshal.AsSpan(_dmas).Sort();
        int f = 0, u = 0, d = 0;
        _pendingFrom = 0;
        try
        {
            while (f < _flushes.Count || u < _unmaps.Count || d < _dmas.Count)
            {
                ulong tf = f < _flushes.Count ? _flushes[f].Notice.StampNs : ulong.MaxValue;
                ulong tu = u < _unmaps.Count ? _unmaps[u].Notice.StampNs : ulong.MaxValue;
                ulong td = d < _dmas.Count ? _dmas[d].StampNs : ulong.MaxValue;
                if (tf <= tu && tf <= td)
                {
                    var (n, table) = _flushes[f++];
                    AdvanceTo(n.StampNs);
                    long before = _unit.Stats.Invalidations;
                    _unit.FlushNow(table, n.Id, n.Start, n.End, n.Kind);
                    int cpu = _devices.TryGetValue((int)(n.Id >> 32), out var dev) ? dev.Cpu : 0;
                    _unit.Costs.Flushed(cpu, n.StampNs, _unit.Stats.Invalidations - before);
                }
                else if (tu <= td)
                {
                    var (n, table) = _unmaps[u++];
                    _pendingFrom = u;
                    AdvanceTo(n.StampNs);
                    int cpu = _devices.TryGetValue((int)(n.Id >> 32), out var dev) ? dev.Cpu : 0;
                    long before = _unit.Stats.Invalidations;
                    _unit.Unmapped(table, n.Id, n.Iova, n.Unmapped, cpu);
                    _unit.Costs.Unmap(cpu, n.StampNs, n.Unmapped, _queued, _unit.Stats.Invalidations - before);
                }
                else
                {
                    var a = _dmas[d++];
                    AdvanceTo(a.StampNs);
                    if (_devices.TryGetValue(a.Device, out var dev))
                        _unit.Dma(dev.Device, a.Iova, a.Write);
                    DmasRun++;
                }
            }
            AdvanceTo(endNs);
        }
        finally
        {
            _flushes.Clear();
            _unmaps.Clear();
            _dmas.Clear();
            _pendingFrom = 0;
        }
    }

    /// <summary>Advances the unit's clock; invalidations its timers issue on the way are timed as timer flushes.</summary>
    private void AdvanceTo(ulong ns)
    {
        long before = _unit.Stats.Invalidations;
        _unit.Clock.AdvanceTo(ns);
        long issued = _unit.Stats.Invalidations - before;
        if (issued > 0)
            _unit.Costs.TimerFlushed(issued);
    }

    /// <inheritdoc/>
    bool IPreStateOracle.TryTranslate(IommuDomain domain, ulong iova, out ulong pa, out IommuProt prot)
    {
        // Unmaps of this window not yet run are stamped after the DMA being translated.
        return _unmaps.TryPreState(_pendingFrom, domain, iova, out pa, out prot);
    }

    /// <summary>The order a window's flushes run in: stamp, then id.</summary>
    /// <summary>
    /// Stamp, then id, then the domain: the ids of map-time flushes are per domain (negative, derived from each
    /// domain's own state), so two domains' flushes can share stamp and id, and without the domain the order of
    /// such a tie would be the order their messages arrived in (measured: a run's stale_window_histogram differed
    /// between runs of the same seed).
    /// </summary>
    private readonly struct StampOrder(IommuUnit unit) : IComparer<(FlushNotice Notice, IommuDomain Table)>
    {
        public int Compare((FlushNotice Notice, IommuDomain Table) a, (FlushNotice Notice, IommuDomain Table) b)
        {
            int c = a.Notice.StampNs.CompareTo(b.Notice.StampNs);
            if (c != 0)
                return c;
            c = a.Notice.Id.CompareTo(b.Notice.Id);
            return c != 0 ? c : unit.DomainId(a.Table).CompareTo(unit.DomainId(b.Table));
        }
    }
}
