namespace PtActors.Engine.Dma;

/// <summary>
/// What the IOMMU side needs to hear about an applied unmap: which operation, when, which range, and the
/// translation that range had (a DMA stamped before the unmap must still see it). The table pages the unmap
/// freed stay parked in the <see cref="DomainModel"/> until <see cref="DomainModel.Release"/>.
/// </summary>
public readonly record struct UnmapNotice(long Id, ulong StampNs, ulong Iova, ulong Unmapped, ulong Paddr, IommuProt Prot, int ParkedPages);

/// <summary>
/// A flush the page table asked for outside an unmap (tables replaced by a large leaf during a map; dirty bits
/// cleared): the IOMMU side must invalidate [Start, End] (or everything, for <see cref="FlushKind.All"/>); the
/// pages the map freed stay parked under <c>Id</c> until it says the flush completed.
/// </summary>
public readonly record struct FlushNotice(long Id, ulong StampNs, ulong Start, ulong End, FlushKind Kind, int ParkedPages);

/// <summary>One operation the model applied, with its result and (for an unmap that removed something) its notice.</summary>
public readonly record struct AppliedOp(DmaOp Op, DmaOpResult Result, UnmapNotice? Notice);

/// <summary>
/// The event of one group commit: the unmaps whose flush completed (released at <c>ReleasedAtNs</c>, before
/// anything else), then every operation submitted, in stamp order — those that ran and those that waited for
/// a lock. Replaying it through <see cref="DomainModel.ApplyBatch"/> rebuilds the same state; the digest of the
/// results detects a journal that no longer matches the engine.
/// </summary>
public sealed record DomainBatch(long[] Released, ulong ReleasedAtNs, DmaOp[] Ops, ulong ResultDigest);

/// <summary>A live DMA-API mapping, for snapshots.</summary>
public readonly record struct MappingEntry(ulong Iova, ulong Size, ulong Paddr, IommuProt Prot);

/// <summary>An unmap waiting for its flush, for snapshots.</summary>
public sealed record ParkedEntry(long Id, ulong Iova, ulong Unmapped, ulong AllocatedIova, ulong AllocatedSize, int[] Pages);

/// <summary>Everything a <see cref="DomainModel"/> holds, to rebuild it byte for byte.</summary>
public sealed record DomainModelSnapshot(
    TableMemorySnapshot Memory,
    DomainSnapshot Domain,
    ulong IovaStart,
    ulong IovaLimit,
    ulong IovaNext,
    ulong[][] IovaCaches,
    ulong IovaAllocatedBytes,
    MappingEntry[] Mappings,
    ParkedEntry[] Parked,
    RangeLocks.Entry[] HeldLocks,
    RangeLocks.Entry[] WaitingLocks,
    DmaOp[] WaitingOps,
    ulong MappedBytes);

/// <summary>
/// The pure state of one paging domain as the DMA API drives it: the page table, the IOVA allocator, the live
/// DMA mappings and the range locks. Operations are applied atomically in the order given; an operation whose
/// range is locked waits and is applied when the lock is released. An unmap keeps its range locked, its freed
/// table pages parked and its IOVA allocated until <see cref="Release"/> says the flush that covers it has
/// completed. Deterministic: the same calls in the same order leave byte-identical tables.
/// </summary>
public sealed class DomainModel : IIotlbSyncHandler
{
    private readonly List<FlushNotice> _flushes = new();
    private ulong _stamp;
    private bool _deferFlushes;

    private readonly Dictionary<ulong, Mapping> _mappings = new();
    private readonly Dictionary<long, ParkedUnmap> _parked = new();
    private readonly Dictionary<long, DmaOp> _waiting = new();
    private readonly List<long> _granted = new();
    private readonly Queue<long> _runnable = new();
    private readonly IotlbGather _gather = new();

    private readonly record struct Mapping(ulong Size, ulong Paddr, IommuProt Prot);

    private sealed record ParkedUnmap(ulong Iova, ulong Unmapped, ulong AllocatedIova, ulong AllocatedSize, PageList Pages);

    private DomainModel(IommuDomain domain, IovaAllocator iovas, RangeLocks? locks = null)
    {
        Domain = domain;
        Iovas = iovas;
        Locks = locks ?? new RangeLocks();
    }

    /// <summary>
    /// Creates a domain of <paramref name="config"/> whose DMA-API IOVAs come from [<paramref name="iovaStart"/>,
    /// <paramref name="iovaLimit"/>]; the init error when the cfg is refused.
    /// </summary>
    public static Errno Create(in PtConfig config, ulong iovaStart, ulong iovaLimit, out DomainModel? model)
    {
        model = null;
        var err = IommuDomain.Create(config, new TableMemory(), out var domain);
        if (err != Errno.None)
            return err;
        model = new DomainModel(domain!, new IovaAllocator(iovaStart, iovaLimit));
        return Errno.None;
    }

    /// <summary>The page table.</summary>
    public IommuDomain Domain { get; }

    /// <summary>The table pages' memory.</summary>
    public TableMemory Memory => Domain.Memory;

    /// <summary>The DMA-API IOVA allocator.</summary>
    public IovaAllocator Iovas { get; }

    /// <summary>The range locks.</summary>
    public RangeLocks Locks { get; }

    /// <summary>
    /// Hands the domain's own flushes (map-time table replacement, dirty clearing) to the IOMMU side instead of
    /// doing them in place: each becomes a <see cref="FlushNotice"/> (see <see cref="TakeFlushes"/>) whose freed
    /// pages stay parked until <see cref="Release"/>. The actor simulator turns this on; a model used alone
    /// frees such pages at once, as the kunit harness does.
    /// </summary>
    public void DeferFlushes()
    {
        _deferFlushes = true;
        Domain.SyncHandler = this;
    }

    /// <summary>The flush notices produced since the last call, in order.</summary>
    public FlushNotice[] TakeFlushes()
    {
        if (_flushes.Count == 0)
            return [];
        var result = _flushes.ToArray();
        _flushes.Clear();
        return result;
    }

    /// <inheritdoc/>
    void IIotlbSyncHandler.OnIotlbSync(IommuDomain domain, IotlbGather gather, FlushKind kind)
    {
        if (!_deferFlushes || kind == FlushKind.None)
            return;
        // Ids of these pseudo-unmaps are negative; any id no live one uses will do, so derive it from the state.
        long id = -1;
        foreach (long k in _parked.Keys)
        {
            if (k <= id)
                id = k - 1;
        }
        var pages = new PageList();
        gather.TakeFreeList(pages);
        _parked.Add(id, new ParkedUnmap(gather.Start, 0, 0, 0, pages));
        _flushes.Add(new FlushNotice(id, _stamp, gather.Start, gather.End, kind, pages.Count));
    }

    /// <summary>Operations waiting for a range lock.</summary>
    public int Waiting => _waiting.Count;

    /// <summary>Unmaps waiting for their flush.</summary>
    public int Parked => _parked.Count;

    /// <summary>Live DMA-API mappings.</summary>
    public int Mappings => _mappings.Count;

    /// <summary>Bytes mapped through the DMA API now.</summary>
    public ulong MappedBytes { get; private set; }

    /// <summary>
    /// Submits <paramref name="op"/>. Returns true with its result when it ran now; false when it waits for a
    /// range lock (it then comes out of a later <see cref="Release"/>).
    /// </summary>
    public bool Submit(in DmaOp op, out AppliedOp applied)
    {
        _stamp = op.StampNs;
        if (op.Kind == DmaOpKind.DmaMap)
        {
            applied = DmaMap(op);
            return true;
        }
        if (op.Size == 0 || op.Iova + (op.Size - 1) < op.Iova)
        {
            // Nothing to lock: the engine gives its result for the degenerate range at once.
            applied = Run(op, op.StampNs);
            return true;
        }
        bool shared = op.Kind == DmaOpKind.ReadDirty;
        if (!Locks.Acquire(op.Id, op.Iova, op.Iova + op.Size - 1, shared))
        {
            _waiting.Add(op.Id, op);
            applied = default;
            return false;
        }
        applied = Run(op, op.StampNs);
        // A fresh grant cannot unblock anyone: an overlapping earlier waiter would have made it wait.
        if (_runnable.Count != 0)
            throw new InvalidOperationException("A fresh operation's lock let a waiter through.");
        return true;
    }

    /// <summary>
    /// The flush covering unmap <paramref name="unmapId"/> completed: free its table pages and its IOVA, drop
    /// its range lock, and run the operations that lets through, at <paramref name="nowNs"/>, appending them to
    /// <paramref name="ran"/> in the order they ran.
    /// </summary>
    public void Release(long unmapId, ulong nowNs, List<AppliedOp> ran)
    {
        if (!_parked.Remove(unmapId, out var parked))
            throw new InvalidOperationException($"Unmap {unmapId} is not waiting for a flush.");
        Domain.ReleaseTablePages(parked.Pages);
        if (parked.AllocatedSize != 0)
            Iovas.Free(parked.AllocatedIova, parked.AllocatedSize);
        if (unmapId < 0)
            return; // a map-time flush: no lock, no IOVA
        GrantAfterRelease(unmapId);
        while (_runnable.TryDequeue(out long id))
        {
            _waiting.Remove(id, out var op);
            ran.Add(Run(op, nowNs));
        }
    }

    /// <summary>
    /// One group commit, live or replayed: release the flushed unmaps (running what they let through), then
    /// submit <paramref name="ops"/> in order. Every operation that ran is appended to <paramref name="ran"/>;
    /// returns the digest of their results.
    /// </summary>
    public ulong ApplyBatch(ReadOnlySpan<long> released, ulong releasedAtNs, ReadOnlySpan<DmaOp> ops, List<AppliedOp> ran)
    {
        int first = ran.Count;
        foreach (long id in released)
            Release(id, releasedAtNs, ran);
        foreach (var op in ops)
        {
            if (Submit(op, out var applied))
                ran.Add(applied);
        }
        return Digest(ran, first);
    }

    /// <summary>Replays a journalled batch; throws when the engine no longer gives the recorded results.</summary>
    public void Replay(DomainBatch batch, List<AppliedOp> scratch)
    {
        scratch.Clear();
        ulong digest = ApplyBatch(batch.Released, batch.ReleasedAtNs, batch.Ops, scratch);
        if (digest != batch.ResultDigest)
            throw new InvalidOperationException(
                $"Journal replay diverges: a batch of {batch.Ops.Length} operations gave digest {digest:x16}, the journal recorded {batch.ResultDigest:x16}.");
    }

    /// <summary>FNV-1a over the results from <paramref name="first"/> on.</summary>
    private static ulong Digest(List<AppliedOp> ran, int first)
    {
        ulong h = 0xcbf29ce484222325;
        for (int i = first; i < ran.Count; i++)
        {
            var r = ran[i].Result;
            h = Mix(h, (ulong)r.Id);
            h = Mix(h, (ulong)r.Error);
            h = Mix(h, r.Iova);
            h = Mix(h, r.Bytes);
            h = Mix(h, r.LockWaitNs);
        }
        return h;

        static ulong Mix(ulong h, ulong v)
        {
            for (int b = 0; b < 8; b++, v >>= 8)
                h = (h ^ (v & 0xff)) * 0x100000001b3;
            return h;
        }
    }

    /// <summary>Captures the whole state (table pages included) for a snapshot.</summary>
    public DomainModelSnapshot Capture()
    {
        var (next, caches) = Iovas.Capture();
        var (held, waitingLocks) = Locks.Capture();
        var mappings = new MappingEntry[_mappings.Count];
        int i = 0;
        foreach (var (iova, m) in _mappings)
            mappings[i++] = new MappingEntry(iova, m.Size, m.Paddr, m.Prot);
        var parked = new ParkedEntry[_parked.Count];
        i = 0;
        foreach (var (id, p) in _parked)
            parked[i++] = new ParkedEntry(id, p.Iova, p.Unmapped, p.AllocatedIova, p.AllocatedSize, p.Pages.Items.ToArray());
        var waiting = new DmaOp[waitingLocks.Length];
        for (int w = 0; w < waiting.Length; w++)
            waiting[w] = _waiting[waitingLocks[w].Id];
        return new DomainModelSnapshot(Memory.Capture(), Domain.Capture(), Iovas.Start, Iovas.Limit, next, caches,
            Iovas.AllocatedBytes, mappings, parked, held, waitingLocks, waiting, MappedBytes);
    }

    /// <summary>Rebuilds a model from <see cref="Capture"/>: byte-identical tables, the same locks and waiters.</summary>
    public static DomainModel Restore(DomainModelSnapshot s)
    {
        var memory = TableMemory.Restore(s.Memory);
        var err = IommuDomain.Restore(s.Domain, memory, out var domain);
        if (err != Errno.None)
            throw new InvalidOperationException($"A snapshot's domain cfg is refused: {err}.");
        var iovas = IovaAllocator.Restore(s.IovaStart, s.IovaLimit, s.IovaNext, s.IovaCaches, s.IovaAllocatedBytes);
        var model = new DomainModel(domain!, iovas, RangeLocks.Restore(s.HeldLocks, s.WaitingLocks))
        {
            MappedBytes = s.MappedBytes,
        };
        foreach (var m in s.Mappings)
            model._mappings.Add(m.Iova, new Mapping(m.Size, m.Paddr, m.Prot));
        foreach (var p in s.Parked)
        {
            var pages = new PageList();
            foreach (int page in p.Pages)
                pages.Add(page);
            model._parked.Add(p.Id, new ParkedUnmap(p.Iova, p.Unmapped, p.AllocatedIova, p.AllocatedSize, pages));
        }
        foreach (var op in s.WaitingOps)
            model._waiting.Add(op.Id, op);
        return model;
    }

    /// <summary>Runs a granted (locked) explicit operation; every lock but an unmap's is dropped at once.</summary>
    private AppliedOp Run(in DmaOp op, ulong nowNs)
    {
        _stamp = nowNs;
        ulong wait = nowNs > op.StampNs ? nowNs - op.StampNs : 0;
        bool locked = op.Size != 0 && op.Iova + (op.Size - 1) >= op.Iova;
        switch (op.Kind)
        {
            case DmaOpKind.Map:
            {
                var err = Domain.IommuMap(op.Iova, op.Paddr, op.Size, op.Prot);
                if (locked)
                    ReleaseLock(op.Id);
                return new AppliedOp(op, new DmaOpResult(op.Id, err, op.Iova, err == Errno.None ? op.Size : 0, wait), null);
            }
            case DmaOpKind.ReadDirty:
            {
                var err = Domain.ReadAndClearDirty(op.Iova, op.Size, noClear: false, sink: null);
                if (locked)
                    ReleaseLock(op.Id);
                return new AppliedOp(op, new DmaOpResult(op.Id, err, op.Iova, 0, wait), null);
            }
            default:
                return Unmap(op, wait, locked);
        }
    }

    /// <summary>Drops a lock; the waiters it lets through become runnable, in arrival order.</summary>
    private void GrantAfterRelease(long id)
    {
        _granted.Clear();
        Locks.Release(id, _granted);
        foreach (long g in _granted)
            _runnable.Enqueue(g);
    }

    private void ReleaseLock(long id) => GrantAfterRelease(id);

    private AppliedOp DmaMap(in DmaOp op)
    {
        if (!Iovas.TryAllocate(op.Size, out ulong iova))
            return new AppliedOp(op, new DmaOpResult(op.Id, Errno.ENOMEM, 0, 0, 0), null);
        var err = Domain.IommuMap(iova, op.Paddr, PageAligned(op.Size), op.Prot);
        if (err != Errno.None)
        {
            Iovas.Free(iova, op.Size);
            return new AppliedOp(op, new DmaOpResult(op.Id, err, 0, 0, 0), null);
        }
        _mappings.Add(iova, new Mapping(op.Size, op.Paddr, op.Prot));
        MappedBytes += PageAligned(op.Size);
        return new AppliedOp(op, new DmaOpResult(op.Id, Errno.None, iova, PageAligned(op.Size), 0), null);
    }

    private static ulong PageAligned(ulong size) => (size + 0xfff) & ~0xfffUL;

    private AppliedOp Unmap(in DmaOp op, ulong wait, bool locked)
    {
        _gather.Init();
        // A DMA-API unmap names the mapping by its IOVA and its size as mapped.
        ulong size = op.Size;
        bool dmaApi = _mappings.TryGetValue(op.Iova, out var m) && PageAligned(m.Size) == PageAligned(op.Size);
        if (dmaApi)
            size = PageAligned(m.Size);
        ulong unmapped = Domain.IommuUnmapFast(op.Iova, size, _gather);
        var result = new DmaOpResult(op.Id, Errno.None, op.Iova, unmapped, wait);
        if (unmapped == 0 && _gather.FreeCount == 0)
        {
            // Nothing changed: nothing for the IOMMU to flush, nothing to hold.
            if (locked)
                ReleaseLock(op.Id);
            return new AppliedOp(op, result, null);
        }
        var pages = new PageList();
        _gather.TakeFreeList(pages);
        if (dmaApi)
        {
            _mappings.Remove(op.Iova);
            MappedBytes -= size;
        }
        if (!locked)
            throw new InvalidOperationException("An unmap that removed something held no lock.");
        _parked.Add(op.Id, new ParkedUnmap(op.Iova, unmapped, dmaApi ? op.Iova : 0, dmaApi ? m.Size : 0, pages));
        var notice = new UnmapNotice(op.Id, op.StampNs, op.Iova, unmapped, dmaApi ? m.Paddr : 0, dmaApi ? m.Prot : IommuProt.None, pages.Count);
        return new AppliedOp(op, result, notice);
    }
}
