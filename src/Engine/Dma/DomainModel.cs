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
/// What a batch did, in the order it ran (released waiters first, then the submitted operations that were not
/// made to wait): one result per operation that ran, and, in the same order, a notice for each unmap that
/// removed something. Reused from batch to batch; <see cref="Clear"/> empties it.
/// </summary>
public sealed class BatchOutcome
{
    /// <summary>Results of the operations that ran, in order.</summary>
    public List<DmaOpResult> Results { get; } = new();

    /// <summary>Notices of the unmaps among them that removed something, in the same order.</summary>
    public List<UnmapNotice> Notices { get; } = new();

    /// <summary>Empties both lists.</summary>
    public void Clear()
    {
        Results.Clear();
        Notices.Clear();
    }
}

/// <summary>
/// The event of one group commit: what the hardware wrote into the tables since the previous commit
/// (<see cref="HardwareWrites"/>: dirty bits its DMA walks set), the unmaps whose flush completed (released at
/// <c>ReleasedAtNs</c>), then every operation submitted, in stamp order — those that ran and those that waited
/// for a lock. Replaying it through <see cref="DomainModel.ApplyBatch"/> rebuilds the same state, table bytes
/// included; the digest of the results detects a journal that no longer matches the engine.
/// </summary>
/// <para><c>Ops</c> may be a slice of a larger array (a window's operations split into events of at most 256):
/// it is never written to.</para>
public sealed record DomainBatch(long[] Released, ulong ReleasedAtNs, ReadOnlyMemory<DmaOp> Ops, ulong ResultDigest)
{
    /// <summary>A batch of a whole array of operations.</summary>
    public DomainBatch(long[] released, ulong releasedAtNs, DmaOp[] ops, ulong resultDigest)
        : this(released, releasedAtNs, new ReadOnlyMemory<DmaOp>(ops), resultDigest)
    {
    }

    /// <summary>
    /// The hardware's writes into the domain's table pages since the previous commit, in order
    /// (<see cref="HardwareWriteLog"/> entries); applied before anything else of the batch.
    /// </summary>
    public long[] HardwareWrites { get; init; } = [];
}

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
    private UnmapNotice _notice;     // the notice of the last operation run, when _noticed
    private bool _noticed;
    private readonly Dictionary<long, DmaOp> _waiting = new();
    private readonly List<long> _granted = new();
    private readonly Queue<long> _runnable = new();
    private readonly IotlbGather _gather = new();

    private readonly record struct Mapping(ulong Size, ulong Paddr, IommuProt Prot);

    /// <summary>An unmap waiting for its flush; <c>Pages</c> is null when it freed no table page.</summary>
    private readonly record struct ParkedUnmap(ulong Iova, ulong Unmapped, ulong AllocatedIova, ulong AllocatedSize, PageList? Pages);

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

    /// <summary>
    /// Keeps what the hardware writes into the table pages (dirty bits set by DMA walks) in a log that
    /// <see cref="TakeHardwareWrites"/> empties: the actor simulator journals it with its next commit, so that a
    /// domain recovered from its journal has the very bytes the hardware left.
    /// </summary>
    public void RecordHardwareWrites() => Domain.HardwareWrites ??= new HardwareWriteLog();

    /// <summary>The hardware's writes since the last call, in order (empty unless <see cref="RecordHardwareWrites"/>).</summary>
    public long[] TakeHardwareWrites() => Domain.HardwareWrites?.Take() ?? [];

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
        if (!TrySubmit(op, out var result))
        {
            applied = default;
            return false;
        }
        applied = new AppliedOp(op, result, _noticed ? _notice : null);
        return true;
    }

    /// <summary>
    /// <see cref="Submit(in DmaOp, out AppliedOp)"/> without the copy of the operation: true with its result when
    /// it ran now (its notice, if any, in <see cref="_notice"/>).
    /// </summary>
    private bool TrySubmit(in DmaOp op, out DmaOpResult result)
    {
        _stamp = op.StampNs;
        _noticed = false;
        if (op.Kind == DmaOpKind.DmaMap)
        {
            result = DmaMap(op);
            return true;
        }
        if (op.Size == 0 || op.Iova + (op.Size - 1) < op.Iova)
        {
            // Nothing to lock: the engine gives its result for the degenerate range at once.
            result = Run(op, op.StampNs, held: false);
            return true;
        }
        bool shared = op.Kind == DmaOpKind.ReadDirty;
        ulong last = op.Iova + op.Size - 1;
        if (!Locks.CanAcquire(op.Iova, last, shared))
        {
            Locks.Enqueue(op.Id, op.Iova, last, shared);
            _waiting.Add(op.Id, op);
            result = default;
            return false;
        }
        // Granted at once. Only an unmap that removed something keeps its lock past its run; any other lock
        // would be dropped at once, and dropping a lock granted at once lets no waiter through (it conflicted
        // with none of them), so it is never taken.
        result = Run(op, op.StampNs, held: false);
        if (_noticed)
            Locks.Hold(op.Id, op.Iova, last, shared);
        return true;
    }

    /// <summary>
    /// The flush covering unmap <paramref name="unmapId"/> completed: free its table pages and its IOVA, drop
    /// its range lock, and run the operations that lets through, at <paramref name="nowNs"/>, appending them to
    /// <paramref name="ran"/> in the order they ran.
    /// </summary>
    public void Release(long unmapId, ulong nowNs, List<AppliedOp> ran)
    {
        _legacyOutcome.Clear();
        _keepRanOps = true;
        try
        {
            Release(unmapId, nowNs, _legacyOutcome);
            ToApplied(_legacyOutcome, ran);
        }
        finally
        {
            _keepRanOps = false;
            _ranOps.Clear();
        }
    }

    private readonly BatchOutcome _legacyOutcome = new();
    private readonly Dictionary<long, DmaOp> _ranOps = new();
    private bool _keepRanOps;

    /// <summary>
    /// <see cref="Release(long, ulong, List{AppliedOp})"/> into an outcome: the operations the release lets
    /// through are appended to <paramref name="outcome"/> in the order they ran.
    /// </summary>
    public void Release(long unmapId, ulong nowNs, BatchOutcome outcome)
    {
        if (!_parked.Remove(unmapId, out var parked))
            throw new InvalidOperationException($"Unmap {unmapId} is not waiting for a flush.");
        if (parked.Pages is { } pages)
            Domain.ReleaseTablePages(pages);
        if (parked.AllocatedSize != 0)
            Iovas.Free(parked.AllocatedIova, parked.AllocatedSize);
        if (unmapId < 0)
            return; // a map-time flush: no lock, no IOVA
        GrantAfterRelease(unmapId);
        while (_runnable.TryDequeue(out long id))
        {
            _waiting.Remove(id, out var op);
            _noticed = false;
            var result = Run(op, nowNs, held: true);
            Record(op, result, outcome);
        }
    }

    private void Record(in DmaOp op, in DmaOpResult result, BatchOutcome outcome)
    {
        outcome.Results.Add(result);
        if (_noticed)
            outcome.Notices.Add(_notice);
        if (_keepRanOps)
            _ranOps[op.Id] = op;
    }

    /// <summary>Turns an outcome back into <see cref="AppliedOp"/>s (the operations were kept by id meanwhile).</summary>
    private void ToApplied(BatchOutcome outcome, List<AppliedOp> ran)
    {
        int n = 0;
        foreach (var r in outcome.Results)
        {
            var op = _ranOps[r.Id];
            UnmapNotice? notice = n < outcome.Notices.Count && outcome.Notices[n].Id == r.Id ? outcome.Notices[n++] : null;
            ran.Add(new AppliedOp(op, r, notice));
        }
        _ranOps.Clear();
    }

    /// <summary>
    /// One group commit, live or replayed: release the flushed unmaps (running what they let through), then
    /// submit <paramref name="ops"/> in order. Every operation that ran is appended to <paramref name="ran"/>;
    /// returns the digest of their results.
    /// </summary>
    public ulong ApplyBatch(ReadOnlySpan<long> released, ulong releasedAtNs, ReadOnlySpan<DmaOp> ops, List<AppliedOp> ran)
    {
        _legacyOutcome.Clear();
        _keepRanOps = true;
        try
        {
            ulong digest = ApplyBatch(released, releasedAtNs, ops, _legacyOutcome);
            ToApplied(_legacyOutcome, ran);
            return digest;
        }
        finally
        {
            _keepRanOps = false;
            _ranOps.Clear();
        }
    }

    /// <summary>
    /// One group commit into <paramref name="outcome"/> (appended to): the same as
    /// <see cref="ApplyBatch(ReadOnlySpan{long}, ulong, ReadOnlySpan{DmaOp}, List{AppliedOp})"/> without a copy of
    /// every operation. Returns the digest of the results it appended.
    /// </summary>
    public ulong ApplyBatch(ReadOnlySpan<long> released, ulong releasedAtNs, ReadOnlySpan<DmaOp> ops, BatchOutcome outcome)
        => ApplyBatch([], released, releasedAtNs, ops, outcome);

    /// <summary>
    /// One group commit into <paramref name="outcome"/> (appended to), as the journal holds it: first the writes
    /// the hardware made into the tables since the last commit (<see cref="TakeHardwareWrites"/>), then the
    /// releases, then the operations. Returns the digest of the results it appended.
    /// </summary>
    public ulong ApplyBatch(ReadOnlySpan<long> hardwareWrites, ReadOnlySpan<long> released, ulong releasedAtNs, ReadOnlySpan<DmaOp> ops, BatchOutcome outcome)
    {
        int first = outcome.Results.Count;
        Domain.ApplyHardwareWrites(hardwareWrites);
        foreach (long id in released)
            Release(id, releasedAtNs, outcome);
        foreach (ref readonly var op in ops)
        {
            if (TrySubmit(op, out var result))
                Record(op, result, outcome);
        }
        return Digest(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(outcome.Results)[first..]);
    }

    /// <summary>Replays a journalled batch; throws when the engine no longer gives the recorded results.</summary>
    public void Replay(DomainBatch batch, List<AppliedOp> scratch)
    {
        scratch.Clear();
        Domain.ApplyHardwareWrites(batch.HardwareWrites);
        ulong digest = ApplyBatch(batch.Released, batch.ReleasedAtNs, batch.Ops.Span, scratch);
        if (digest != batch.ResultDigest)
            throw Diverges(batch, digest);
    }

    private static InvalidOperationException Diverges(DomainBatch batch, ulong digest)
        => new($"Journal replay diverges: a batch of {batch.Ops.Length} operations gave digest {digest:x16}, the journal recorded {batch.ResultDigest:x16}.");

    /// <summary>Replays a journalled batch into <paramref name="scratch"/>; throws when the engine no longer gives the recorded results.</summary>
    public void Replay(DomainBatch batch, BatchOutcome scratch)
    {
        scratch.Clear();
        ulong digest = ApplyBatch(batch.HardwareWrites, batch.Released, batch.ReleasedAtNs, batch.Ops.Span, scratch);
        if (digest != batch.ResultDigest)
            throw Diverges(batch, digest);
    }

    /// <summary>
    /// The digest of results (what a journalled batch records, to detect a journal the engine no longer agrees
    /// with): each 64-bit field (id, error, IOVA, bytes, lock wait) is folded in with a multiply-rotate step.
    /// </summary>
    public static ulong Digest(ReadOnlySpan<DmaOpResult> results)
    {
        ulong h = 0xcbf29ce484222325;
        foreach (ref readonly var r in results)
        {
            h = Mix(h, (ulong)r.Id);
            h = Mix(h, (ulong)r.Error);
            h = Mix(h, r.Iova);
            h = Mix(h, r.Bytes);
            h = Mix(h, r.LockWaitNs);
        }
        return h;

        static ulong Mix(ulong h, ulong v) => System.Numerics.BitOperations.RotateLeft((h ^ v) * 0x9e3779b97f4a7c15, 29);
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
            parked[i++] = new ParkedEntry(id, p.Iova, p.Unmapped, p.AllocatedIova, p.AllocatedSize, p.Pages is { } pages ? pages.Items.ToArray() : []);
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
            PageList? pages = null;
            foreach (int page in p.Pages)
                (pages ??= new PageList()).Add(page);
            model._parked.Add(p.Id, new ParkedUnmap(p.Iova, p.Unmapped, p.AllocatedIova, p.AllocatedSize, pages));
        }
        foreach (var op in s.WaitingOps)
            model._waiting.Add(op.Id, op);
        return model;
    }

    /// <summary>
    /// Runs a granted explicit operation (its notice, if any, goes to <see cref="_notice"/>). <paramref name="held"/>:
    /// its lock is held (it waited for it) and is dropped here unless it is an unmap that removed something.
    /// </summary>
    private DmaOpResult Run(in DmaOp op, ulong nowNs, bool held)
    {
        _stamp = nowNs;
        ulong wait = nowNs > op.StampNs ? nowNs - op.StampNs : 0;
        switch (op.Kind)
        {
            case DmaOpKind.Map:
            {
                var err = Domain.IommuMap(op.Iova, op.Paddr, op.Size, op.Prot);
                if (held)
                    GrantAfterRelease(op.Id);
                return new DmaOpResult(op.Id, err, op.Iova, err == Errno.None ? op.Size : 0, wait, op.Kind);
            }
            case DmaOpKind.ReadDirty:
            {
                var err = Domain.ReadAndClearDirty(op.Iova, op.Size, noClear: false, sink: null);
                if (held)
                    GrantAfterRelease(op.Id);
                return new DmaOpResult(op.Id, err, op.Iova, 0, wait, op.Kind);
            }
            default:
                return Unmap(op, wait, held);
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

    private DmaOpResult DmaMap(in DmaOp op)
    {
        if (!Iovas.TryAllocate(op.Size, out ulong iova))
            return new DmaOpResult(op.Id, Errno.ENOMEM, 0, 0, 0, op.Kind);
        var err = Domain.IommuMap(iova, op.Paddr, PageAligned(op.Size), op.Prot);
        if (err != Errno.None)
        {
            Iovas.Free(iova, op.Size);
            return new DmaOpResult(op.Id, err, 0, 0, 0, op.Kind);
        }
        _mappings.Add(iova, new Mapping(op.Size, op.Paddr, op.Prot));
        MappedBytes += PageAligned(op.Size);
        return new DmaOpResult(op.Id, Errno.None, iova, PageAligned(op.Size), 0, op.Kind);
    }

    private static ulong PageAligned(ulong size) => (size + 0xfff) & ~0xfffUL;

    private DmaOpResult Unmap(in DmaOp op, ulong wait, bool held)
    {
        _gather.Init();
        // A DMA-API unmap names the mapping by its IOVA and its size as mapped.
        ulong size = op.Size;
        bool dmaApi = _mappings.TryGetValue(op.Iova, out var m) && PageAligned(m.Size) == PageAligned(op.Size);
        if (dmaApi)
            size = PageAligned(m.Size);
        ulong unmapped = Domain.IommuUnmapFast(op.Iova, size, _gather);
        var result = new DmaOpResult(op.Id, Errno.None, op.Iova, unmapped, wait, op.Kind);
        if (unmapped == 0 && _gather.FreeCount == 0)
        {
            // Nothing changed: nothing for the IOMMU to flush, nothing to hold.
            if (held)
                GrantAfterRelease(op.Id);
            return result;
        }
        if (op.Size == 0 || op.Iova + (op.Size - 1) < op.Iova)
            throw new InvalidOperationException("An unmap that removed something held no lock.");
        PageList? pages = null;
        if (_gather.FreeCount != 0)
        {
            pages = new PageList();
            _gather.TakeFreeList(pages);
        }
        if (dmaApi)
        {
            _mappings.Remove(op.Iova);
            MappedBytes -= size;
        }
        _parked.Add(op.Id, new ParkedUnmap(op.Iova, unmapped, dmaApi ? op.Iova : 0, dmaApi ? m.Size : 0, pages));
        _notice = new UnmapNotice(op.Id, op.StampNs, op.Iova, unmapped, dmaApi ? m.Paddr : 0, dmaApi ? m.Prot : IommuProt.None, pages?.Count ?? 0);
        _noticed = true;
        return result;
    }
}
