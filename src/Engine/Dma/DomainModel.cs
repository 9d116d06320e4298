namespace PtActors.Engine.Dma;

/// <summary>
/// What the IOMMU side needs to hear about an applied unmap: which operation, when, which range, and the
/// translations that range had (a DMA stamped before the unmap must still see them). When <c>LeafCount</c> is 0
/// the whole of [<c>Iova</c>, +<c>Unmapped</c>) went linearly to <c>Paddr</c> with <c>Prot</c> (a DMA-API buffer,
/// or any unmap whose leaves continue each other); otherwise the translations the unmap cleared are the
/// <c>LeafCount</c> segments from <c>LeafStart</c> of the leaf list that came with it (<see cref="BatchOutcome.Leaves"/>),
/// in IOVA order, tiling the range (an explicit unmap over leaves of different PAs, sizes or permissions). The
/// table pages the unmap freed stay parked in the <see cref="DomainModel"/> until the flush covering it is
/// released. Holds no reference, so that notices travel in pooled pinned arrays.
/// </summary>
public readonly record struct UnmapNotice(long Id, ulong StampNs, ulong Iova, ulong Unmapped, ulong Paddr, IommuProt Prot, int ParkedPages, int LeafStart = 0, int LeafCount = 0)
{
    /// <summary>
    /// True when the unmap removed <paramref name="iova"/>, with the translation it had; <paramref name="leaves"/> is
    /// the leaf list <c>LeafStart</c> indexes.
    /// </summary>
    public bool TryTranslate(ulong iova, ReadOnlySpan<LeafSegment> leaves, out ulong pa, out IommuProt prot)
    {
        if (iova < Iova || iova - Iova >= Unmapped)
        {
            pa = 0;
            prot = IommuProt.None;
            return false;
        }
        if (LeafCount == 0)
        {
            pa = Paddr + (iova - Iova);
            prot = Prot;
            return true;
        }
        var mine = leaves.Slice(LeafStart, LeafCount);
        int lo = 0, hi = mine.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            ref readonly var l = ref mine[mid];
            if (iova < l.Iova)
                hi = mid - 1;
            else if (iova - l.Iova >= l.Size)
                lo = mid + 1;
            else
            {
                pa = l.Pa + (iova - l.Iova);
                prot = l.Prot;
                return true;
            }
        }
        throw new InvalidOperationException($"Unmap {Id}: its leaves do not tile [0x{Iova:x}, +0x{Unmapped:x}).");
    }
}

/// <summary>
/// A flush the page table asked for outside an unmap (tables replaced by a large leaf during a map; dirty bits
/// cleared): the IOMMU side must invalidate [Start, End] (or everything, for <see cref="FlushKind.All"/>); the
/// pages the map freed stay parked under <c>Id</c> until it says the flush completed.
/// </summary>
public readonly record struct FlushNotice(long Id, ulong StampNs, ulong Start, ulong End, FlushKind Kind, int ParkedPages);

/// <summary>
/// What a batch did, in the order it ran (released waiters first, then the submitted operations that were not
/// made to wait): one result per operation that ran; in the same order, a notice for each unmap that removed
/// something (with, in <see cref="Leaves"/>, the translations of those that cleared leaves not continuing each
/// other); and the flushes the table itself asked for meanwhile (models that <see cref="DomainModel.DeferFlushes"/>).
/// <see cref="DomainModel.ApplyBatch"/> appends to it; reused from batch to batch, <see cref="Clear"/> empties it.
/// </summary>
public sealed class BatchOutcome
{
    /// <summary>Results of the operations that ran, in order.</summary>
    public List<DmaOpResult> Results { get; } = new();

    /// <summary>Notices of the unmaps among them that removed something, in the same order.</summary>
    public List<UnmapNotice> Notices { get; } = new();

    /// <summary>The translations of the notices that list theirs (<see cref="UnmapNotice.LeafStart"/> indexes it).</summary>
    public List<LeafSegment> Leaves { get; } = new();

    /// <summary>Flushes the table asked for outside unmaps (tables a map replaced, dirty bits cleared), in order.</summary>
    public List<FlushNotice> Flushes { get; } = new();

    /// <summary>Empties the lists.</summary>
    public void Clear()
    {
        Results.Clear();
        Notices.Clear();
        Leaves.Clear();
        Flushes.Clear();
    }
}

/// <summary>
/// The event of one group commit: what the hardware wrote into the tables since the previous commit
/// (<see cref="HardwareWrites"/>: dirty bits its DMA walks set), the unmaps whose flush completed (released at
/// <c>ReleasedAtNs</c>), then every operation submitted, in stamp order — those that ran and those that waited
/// for a lock. Replaying it through <see cref="DomainModel.Replay"/> rebuilds the same state, table bytes
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

    /// <summary>
    /// The simulator window whose commit wrote the batch (1 = the first; 0 = not recorded: journals written before
    /// version 4 of the batch format). Replay uses it to apply each batch where the run did.
    /// </summary>
    public long Window { get; init; }

    /// <summary>
    /// Written by the final commit of its lane, after the unit's last drain (which has the same window number as
    /// the commit before it); false for every other batch and for journals written before version 4.
    /// </summary>
    public bool Final { get; init; }
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
/// DMA mappings and the range locks. Everything goes through one call, <see cref="ApplyBatch"/> (or
/// <see cref="Replay"/> of a journalled batch), which returns what happened in a <see cref="BatchOutcome"/>.
/// Operations are applied atomically in the order given; an operation whose range is locked waits and is applied
/// when the lock is released. An unmap keeps its range locked, its freed table pages parked and its IOVA allocated
/// until a later batch releases it (the flush that covers it has completed). Deterministic: the same calls in the
/// same order leave byte-identical tables.
/// </summary>
public sealed class DomainModel : IIotlbSyncHandler
{
    private BatchOutcome? _outcome;  // the outcome of the batch being applied
    private ulong _stamp;
    private bool _deferFlushes;
    private readonly ClearedLeaves _leaves = new();

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
    /// doing them in place: each becomes a <see cref="FlushNotice"/> in the batch's <see cref="BatchOutcome.Flushes"/>,
    /// whose freed pages stay parked until a later batch releases its id. The actor simulator turns this on; a model used alone
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

    /// <inheritdoc/>
    void IIotlbSyncHandler.OnIotlbSync(IommuDomain domain, IotlbGather gather, FlushKind kind)
    {
        if (!_deferFlushes || kind == FlushKind.None)
            return;
        var outcome = _outcome ?? throw new InvalidOperationException("The table asked for a flush outside ApplyBatch.");
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
        outcome.Flushes.Add(new FlushNotice(id, _stamp, gather.Start, gather.End, kind, pages.Count));
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
    /// Submits <paramref name="op"/>: true with its result when it ran now (its notice, if any, in
    /// <see cref="_notice"/>); false when it waits for a range lock (a later release runs it).
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
    /// The flush covering unmap <paramref name="unmapId"/> completed: free its table pages and its IOVA, drop its
    /// range lock, and run the operations that lets through, at <paramref name="nowNs"/>, appending them to
    /// <paramref name="outcome"/> in the order they ran.
    /// </summary>
    private void Release(long unmapId, ulong nowNs, BatchOutcome outcome)
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
            Record(result, outcome);
        }
    }

    private void Record(in DmaOpResult result, BatchOutcome outcome)
    {
        outcome.Results.Add(result);
        if (_noticed)
            outcome.Notices.Add(_notice);
    }

    /// <summary>
    /// One group commit, live or replayed, into <paramref name="outcome"/> (appended to: results, unmap notices and
    /// flush notices), as the journal holds it: first the writes the hardware made into the tables since the last
    /// commit (<see cref="TakeHardwareWrites"/>), then the releases of <paramref name="released"/> (unmaps and
    /// map-time flushes whose flush completed, at <paramref name="releasedAtNs"/>; the operations they let through
    /// run), then <paramref name="ops"/> in order. Returns the digest of the results it appended.
    /// </summary>
    public ulong ApplyBatch(ReadOnlySpan<long> hardwareWrites, ReadOnlySpan<long> released, ulong releasedAtNs, ReadOnlySpan<DmaOp> ops, BatchOutcome outcome)
    {
        int first = outcome.Results.Count;
        _outcome = outcome;
        try
        {
            Domain.ApplyHardwareWrites(hardwareWrites);
            foreach (long id in released)
                Release(id, releasedAtNs, outcome);
            foreach (ref readonly var op in ops)
            {
                if (TrySubmit(op, out var result))
                    Record(result, outcome);
            }
        }
        finally
        {
            _outcome = null;
        }
        return Digest(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(outcome.Results)[first..]);
    }

    private static InvalidOperationException Diverges(DomainBatch batch, ulong digest)
        => new($"Journal replay diverges: a batch of {batch.Ops.Length} operations gave digest {digest:x16}, the journal recorded {batch.ResultDigest:x16}.");

    /// <summary>
    /// Replays a journalled batch into <paramref name="scratch"/> (emptied first); throws when the engine no longer
    /// gives the recorded results.
    /// </summary>
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
        // The walk records each leaf it clears: the translation a DMA stamped before this unmap still sees.
        _leaves.Clear();
        Domain.ClearedLeaves = _leaves;
        ulong unmapped;
        try
        {
            unmapped = Domain.IommuUnmapFast(op.Iova, size, _gather);
        }
        finally
        {
            Domain.ClearedLeaves = null;
        }
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
        _notice = NoticeOf(op, unmapped, pages?.Count ?? 0, _outcome!.Leaves);
        _noticed = true;
        return result;
    }

    /// <summary>
    /// The notice of an unmap that removed [<c>op.Iova</c>, +<paramref name="unmapped"/>) with the translations
    /// <see cref="_leaves"/> recorded: inline when they continue each other (a DMA-API buffer), else appended to
    /// <paramref name="list"/>.
    /// </summary>
    private UnmapNotice NoticeOf(in DmaOp op, ulong unmapped, int parkedPages, List<LeafSegment> list)
    {
        var leaves = _leaves.Segments;
        ulong covered = 0;
        foreach (ref readonly var l in leaves)
            covered += l.Size;
        if (covered != unmapped || (leaves.Length > 0 && leaves[0].Iova != op.Iova))
            throw new InvalidOperationException($"Unmap {op.Id} removed 0x{unmapped:x} bytes at 0x{op.Iova:x}, its leaves cover 0x{covered:x}.");
        return leaves.Length switch
        {
            0 => new UnmapNotice(op.Id, op.StampNs, op.Iova, 0, 0, IommuProt.None, parkedPages),
            1 => new UnmapNotice(op.Id, op.StampNs, op.Iova, unmapped, leaves[0].Pa, leaves[0].Prot, parkedPages),
            _ => Listed(op, unmapped, parkedPages, list, leaves),
        };

        static UnmapNotice Listed(in DmaOp op, ulong unmapped, int parkedPages, List<LeafSegment> list, ReadOnlySpan<LeafSegment> leaves)
        {
            int start = list.Count;
            list.AddRange(leaves);
            return new UnmapNotice(op.Id, op.StampNs, op.Iova, unmapped, leaves[0].Pa, leaves[0].Prot, parkedPages, start, leaves.Length);
        }
    }
}
