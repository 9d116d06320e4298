using System.Runtime.InteropServices;

namespace PtActors.Engine.Hardware;

/// <summary>The flush side: unmaps through the policy, invalidation commands, the flush queue, batching.</summary>
public sealed partial class IommuUnit
{
    /// <summary>
    /// Unmaps [<paramref name="iova"/>, +<paramref name="size"/>) of a bound domain through this unit's flush policy
    /// (iommu_unmap_fast plus what dma-iommu does next), as CPU <paramref name="cpu"/>. Returns the bytes unmapped.
    /// strict syncs now; lazy queues the range and the freed table pages on the flush queue; batch:N syncs every
    /// N unmaps or after an idle period.
    /// </summary>
    public ulong Unmap(IommuDomain domain, ulong iova, ulong size, int cpu = 0)
    {
        var ctx = Context(domain);
        var policy = Config.Policy.Kind;
        var gather = policy == FlushPolicyKind.Batch ? ctx.Batch! : ctx.Gather;
        if (policy != FlushPolicyKind.Batch)
        {
            gather.Init();
            gather.Queued = policy is FlushPolicyKind.Lazy or FlushPolicyKind.LazySingle;
        }
        ulong unmapped = domain.IommuUnmapFast(iova, size, gather);
        RecordUnmap(ctx, iova, unmapped);
        if (Config.FreeTablesBeforeFlush && gather.FreeCount > 0)
        {
            // Deliberately broken: the pages go back to the allocator while the IOMMU may still walk them.
            var early = new PageList();
            gather.TakeFreeList(early);
            domain.ReleaseTablePages(early);
        }

        switch (policy)
        {
            case FlushPolicyKind.Strict:
                domain.IotlbSync(gather);
                if (unmapped > 0)
                    IovaReleased?.Invoke(domain, iova, iova + unmapped - 1);
                break;
            case FlushPolicyKind.Lazy:
            case FlushPolicyKind.LazySingle:
                QueueIova(ctx, cpu, iova, unmapped, gather);
                break;
            case FlushPolicyKind.Batch:
                ReleaseSyncedBatches(ctx);      // a no-gaps table may have synced the earlier batch
                if (++ctx.BatchCount >= Config.Policy.BatchSize)
                    SyncBatch(ctx);
                else
                    ArmBatchTimer(ctx);
                break;
        }
        return unmapped;
    }

    /// <summary>
    /// Split mode: the domain's owner already unmapped [<paramref name="iova"/>, +<paramref name="unmapped"/>) and
    /// keeps the freed table pages; apply the flush policy to it as CPU <paramref name="cpu"/>.
    /// <see cref="UnmapReleased"/> reports <paramref name="id"/> once the flush covering it completed.
    /// </summary>
    /// <remarks>
    /// With <see cref="IommuUnitConfig.FreeTablesBeforeFlush"/> (deliberately broken) <paramref name="id"/> is
    /// reported released at once, before the policy's flush: its owner frees the table pages (and the IOVA) while
    /// the IOTLB and walk caches may still point into them. Under strict the flush is immediate, so it changes nothing.
    /// </remarks>
    public void Unmapped(IommuDomain domain, long id, ulong iova, ulong unmapped, int cpu = 0)
    {
        var ctx = Context(domain);
        RecordUnmap(ctx, iova, unmapped);
        if (Config.FreeTablesBeforeFlush && Config.Policy.Kind != FlushPolicyKind.Strict)
        {
            UnmapReleased?.Invoke(domain, id);
            id = ReleasedEarly;
        }
        switch (Config.Policy.Kind)
        {
            case FlushPolicyKind.Strict:
                FlushRangeNow(ctx, domain.SyncFlushKind, iova, iova + unmapped - 1);
                UnmapReleased?.Invoke(domain, id);
                break;
            case FlushPolicyKind.Lazy:
            case FlushPolicyKind.LazySingle:
            {
                var g = ctx.Gather;
                g.Init();
                QueueIova(ctx, cpu, iova, unmapped, g, id == ReleasedEarly ? -1 : id);
                break;
            }
            default:
            {
                var g = ctx.Batch!;
                if (domain.HasFeature(PtFeatures.FlushRangeNoGaps) && g.IsDisjoint(iova, unmapped))
                    SyncBatch(ctx);
                g.AddRange(iova, unmapped);
                ctx.BatchIds.Add((id, iova, iova + unmapped - 1));
                if (++ctx.BatchCount >= Config.Policy.BatchSize)
                    SyncBatch(ctx);
                else
                    ArmBatchTimer(ctx);
                break;
            }
        }
    }

    /// <summary>The id a split-mode unmap keeps on a batch once it was released before its flush (free-early).</summary>
    private const long ReleasedEarly = long.MinValue;

    /// <summary>Flushes everything a policy is holding back for every bound domain (the end of a run).</summary>
    public void Drain()
    {
        // In domain-id order: the order commands reach the queue must not depend on when domains were (re)bound.
        var contexts = new List<DomainContext>(_domains.Values);
        contexts.Sort(static (a, b) => a.Id.CompareTo(b.Id));
        foreach (var ctx in contexts)
        {
            if (ctx.Queues is not null && QueuedEntries(ctx) > 0)
            {
                FlushQueueFlush(ctx);
                FreeAllQueues(ctx);
            }
            if (ctx.Batch is { IsPending: true } || ctx.BatchIds.Count > 0)
                SyncBatch(ctx);
        }
    }

    /// <summary>Table pages a flush queue holds for <paramref name="domain"/> (counted in its table pages).</summary>
    public int QueuedTablePages(IommuDomain domain)
    {
        if (!_domains.TryGetValue(domain, out var ctx) || ctx.Queues is null)
            return 0;
        int pages = 0;
        foreach (var fq in ctx.Queues)
        {
            for (int i = 0; i < fq.Count; i++)
                pages += fq[i].Pages?.Count ?? 0;
        }
        return pages;
    }

    private static int QueuedEntries(DomainContext ctx)
    {
        int n = 0;
        foreach (var fq in ctx.Queues!)
            n += fq.Count;
        return n;
    }

    private void RecordUnmap(DomainContext ctx, ulong iova, ulong unmapped)
    {
        if (unmapped == 0)
            return;
        ulong last = iova + unmapped - 1;
        ctx.Unflushed.Add(new UnmapRecord(iova, last, Clock.NowNs));
        // The IOTLB and walk caches may still hold what was just removed: mark it for the stale checker.
        Iotlb.InvalidateRange(ctx.Id, iova, last, remove: false);
        WalkCache.MarkSuspect(ctx.Id, iova, last);
    }

    // ------------------------------------------------------------------ the driver's iotlb_sync

    /// <inheritdoc/>
    public void OnIotlbSync(IommuDomain domain, IotlbGather gather, FlushKind kind)
    {
        if (kind == FlushKind.None || !_domains.TryGetValue(domain, out var ctx))
            return;
        FlushRangeNow(ctx, kind, gather.Start, gather.End);
        // batch:N: the gathered unmaps' IOVA may be reused once the sync is over — also when a no-gaps table
        // synced the gather part-way through a batch because the next unmap did not touch its range.
        if (ReferenceEquals(gather, ctx.Batch) && gather.HasRange)
            ctx.SyncedBatchRanges.Add((gather.Start, gather.End));
    }

    /// <summary>batch:N: reports the IOVA of the batch syncs that completed (after the unmap or sync that ran them).</summary>
    private void ReleaseSyncedBatches(DomainContext ctx)
    {
        var ranges = ctx.SyncedBatchRangesOrNull;
        // A callback may unmap again and add to the list: take each range out before reporting it.
        while (ranges is { Count: > 0 })
        {
            var (start, last) = ranges[0];
            ranges.RemoveAt(0);
            IovaReleased?.Invoke(ctx.Domain, start, last);
        }
    }

    /// <summary>
    /// Split mode: a flush the domain's owner deferred (tables a map replaced, dirty bits cleared) — invalidate
    /// now and report <paramref name="id"/> released.
    /// </summary>
    /// <remarks>
    /// With <see cref="IommuUnitConfig.FreeTablesBeforeFlush"/> (deliberately broken, XSA-346's pattern) under a
    /// deferring policy, <paramref name="id"/> is reported released at once — its owner frees the replaced tables —
    /// and the invalidation is left to the policy (queued on the flush queue, or gathered into the batch): until it
    /// runs, the walk caches point into freed pages.
    /// </remarks>
    public void FlushNow(IommuDomain domain, long id, ulong start, ulong end, FlushKind kind)
    {
        var ctx = Context(domain);
        if (Config.FreeTablesBeforeFlush && kind != FlushKind.None && Config.Policy.Kind != FlushPolicyKind.Strict
            && (kind == FlushKind.Range || Config.Policy.Kind != FlushPolicyKind.Batch) && end >= start)
        {
            UnmapReleased?.Invoke(domain, id);
            if (Config.Policy.Kind == FlushPolicyKind.Batch)
            {
                ctx.Batch!.AddRange(start, end - start + 1);
                ctx.BatchIds.Add((ReleasedEarly, start, end));
                if (++ctx.BatchCount >= Config.Policy.BatchSize)
                    SyncBatch(ctx);
                else
                    ArmBatchTimer(ctx);
            }
            else
            {
                var g = ctx.Gather;
                g.Init();
                QueueIova(ctx, 0, start, 0, g);
            }
            return;
        }
        if (kind != FlushKind.None)
            FlushRangeNow(ctx, kind, start, end);
        UnmapReleased?.Invoke(domain, id);
    }

    private void FlushRangeNow(DomainContext ctx, FlushKind kind, ulong start, ulong end)
    {
        Stats.Flushes++;
        if (kind == FlushKind.All)
        {
            Issue(new InvalidationCommand(InvalidationKind.Domain, ctx.Id, 0, ulong.MaxValue));
            CompleteFlush(ctx, 0, ulong.MaxValue, psiBytes: 0);
            return;
        }
        var cmd = InvalidationBlocks.ForRange(Config.Flavor, ctx.Id, start, end, Config.VtdMaxAddressMask);
        Issue(cmd);
        ulong psi = cmd.Kind == InvalidationKind.PageSelective ? cmd.Last - cmd.Start + 1 : 0;
        CompleteFlush(ctx, start, end, psi);
    }

    /// <summary>Executes one invalidation command on the IOTLB and walk caches and charges its latency.</summary>
    public void Issue(InvalidationCommand cmd)
    {
        Stats.Invalidations++;
        Stats.InvalidationBusyNs += (long)Config.InvalidationNs;
        Costs.Command(Clock.NowNs);
        switch (cmd.Kind)
        {
            case InvalidationKind.PageSelective:
                ulong bytes = cmd.Last - cmd.Start + 1;
                Stats.InvalidatedBytes += bytes == 0 ? long.MaxValue : (long)Math.Min(bytes, long.MaxValue);
                Iotlb.InvalidateRange(cmd.DomainId, cmd.Start, cmd.Last);
                WalkCache.Invalidate(cmd.DomainId, cmd.Start, cmd.Last);
                break;
            case InvalidationKind.Domain:
                Stats.DomainInvalidations++;
                Iotlb.InvalidateDomain(cmd.DomainId);
                WalkCache.Invalidate(cmd.DomainId, 0, ulong.MaxValue);
                break;
            default:
                Stats.GlobalInvalidations++;
                Iotlb.Clear();
                WalkCache.Invalidate(-1, 0, ulong.MaxValue);
                break;
        }
    }

    /// <summary>
    /// A flush of [start, last] completed: the unmaps inside it are no longer in a stale window, and the bytes a
    /// page-selective command covered beyond what was unmapped count as over-invalidation.
    /// </summary>
    private void CompleteFlush(DomainContext ctx, ulong start, ulong last, ulong psiBytes)
    {
        var unflushed = ctx.Unflushed;
        if (psiBytes == 0 && start == 0 && last == ulong.MaxValue)
        {
            foreach (var r in CollectionsMarshal.AsSpan(unflushed))
                Costs.Covered(r.TimeNs);
            unflushed.Clear();      // a whole-domain flush covers every unmap
            return;
        }
        var union = psiBytes == 0 ? null : ctx.Scratch;
        union?.Clear();
        // Drop the covered records in place, keeping the others in order.
        var records = CollectionsMarshal.AsSpan(unflushed);
        int kept = 0;
        foreach (var r in records)
        {
            if (r.Start >= start && r.Last <= last)
            {
                Costs.Covered(r.TimeNs);
                union?.Add((r.Start, r.Last));
            }
            else
                records[kept++] = r;
        }
        unflushed.RemoveRange(kept, records.Length - kept);
        if (union is null)
            return;
        union.Sort();
        ulong covered = 0, curStart = 0, curLast = 0;
        bool open = false;
        foreach (var (s, l) in union)
        {
            if (open && s <= curLast + 1 && curLast != ulong.MaxValue)
            {
                if (l > curLast)
                    curLast = l;
                continue;
            }
            if (open)
                covered += curLast - curStart + 1;
            curStart = s;
            curLast = l;
            open = true;
        }
        if (open)
            covered += curLast - curStart + 1;
        if (psiBytes > covered)
            Stats.OverInvalidatedBytes += (long)Math.Min(psiBytes - covered, long.MaxValue);
    }

    // ------------------------------------------------------------------ dma-iommu flush queue

    private void QueueIova(DomainContext ctx, int cpu, ulong iova, ulong unmapped, IotlbGather gather, long id = -1)
    {
        var queues = ctx.Queues!;
        var fq = queues.Length == 1 ? queues[0] : queues[cpu % queues.Length];
        FreeFinished(ctx, fq);
        if (fq.IsFull)
        {
            FlushQueueFlush(ctx);
            FreeFinished(ctx, fq);
        }
        ref var entry = ref fq.Add();
        entry.Iova = iova;
        entry.Last = unmapped == 0 ? iova - 1 : iova + unmapped - 1;
        entry.Counter = ctx.FlushStartCount;
        entry.Id = id;
        entry.Pages?.Clear();
        if (gather.FreeCount > 0)
            gather.TakeFreeList(entry.Pages ??= new PageList());
        if (!ctx.TimerOn)
        {
            ctx.TimerOn = true;
            ulong timeout = Config.Policy.Kind == FlushPolicyKind.LazySingle ? Config.SingleQueueTimeoutNs : Config.FlushQueueTimeoutNs;
            Clock.RescheduleIn(ctx.QueueTimer ??= NewQueueTimer(ctx), timeout);
        }
    }

    // Separate from QueueIova so that only the first arming allocates the closure.
    private TimerEvent NewQueueTimer(DomainContext ctx) => new(_ => FlushQueueTimeout(ctx));

    /// <summary>fq_flush_iotlb: one whole-domain flush, counted from start to finish.</summary>
    private void FlushQueueFlush(DomainContext ctx)
    {
        ctx.FlushStartCount++;
        Stats.Flushes++;
        Issue(new InvalidationCommand(InvalidationKind.Domain, ctx.Id, 0, ulong.MaxValue));
        CompleteFlush(ctx, 0, ulong.MaxValue, psiBytes: 0);
        ctx.FlushFinishCount++;
    }

    /// <summary>fq_ring_free: release the entries whose flush started after they were queued and has finished.</summary>
    private void FreeFinished(DomainContext ctx, FlushQueue fq)
    {
        ulong finished = ctx.FlushFinishCount;
        while (!fq.IsEmpty)
        {
            ref var entry = ref fq.Oldest;
            if (entry.Counter >= finished)
                break;
            if (entry.Pages is { Count: > 0 } pages)
                ctx.Domain.ReleaseTablePages(pages);
            // Copied out: a callback may queue on this ring, which may move its slots.
            long id = entry.Id;
            ulong iova = entry.Iova, last = entry.Last;
            if (id >= 0)
                UnmapReleased?.Invoke(ctx.Domain, id);
            else if (last >= iova)
                IovaReleased?.Invoke(ctx.Domain, iova, last);
            fq.RemoveOldest();
        }
    }

    private void FreeAllQueues(DomainContext ctx)
    {
        foreach (var fq in ctx.Queues!)
            FreeFinished(ctx, fq);
    }

    private void FlushQueueTimeout(DomainContext ctx)
    {
        ctx.TimerOn = false;
        Stats.TimedFlushes++;
        FlushQueueFlush(ctx);
        FreeAllQueues(ctx);
    }

    // ------------------------------------------------------------------ batch:N

    private void SyncBatch(DomainContext ctx)
    {
        ctx.BatchTimer?.Cancel();
        ctx.BatchCount = 0;
        var gather = ctx.Batch!;
        ulong start = gather.Start, end = gather.End;
        bool hadRange = gather.HasRange;
        if (ctx.BatchIds.Count > 0)
        {
            // Split mode: the owner keeps the pages; flush the gathered range here.
            if (hadRange)
                FlushRangeNow(ctx, ctx.Domain.SyncFlushKind, start, end);
            gather.Init();
        }
        else
        {
            ctx.Domain.IotlbSync(gather);
            ReleaseSyncedBatches(ctx);
        }
        if (ctx.BatchIds.Count > 0)
        {
            foreach (var (id, _, _) in ctx.BatchIds)
            {
                if (id != ReleasedEarly)
                    UnmapReleased?.Invoke(ctx.Domain, id);
            }
            ctx.BatchIds.Clear();
        }
    }

    /// <summary>(Re-)arms the batch idle timeout: a later arming replaces an earlier one, as a cancel and a new event would.</summary>
    private void ArmBatchTimer(DomainContext ctx)
        => Clock.RescheduleIn(ctx.BatchTimer ??= NewBatchTimer(ctx), Config.BatchIdleNs);

    // Separate from ArmBatchTimer so that only the first arming allocates the closure.
    private TimerEvent NewBatchTimer(DomainContext ctx) => new(_ => BatchTimeout(ctx));

    private void BatchTimeout(DomainContext ctx)
    {
        if (ctx.Batch!.IsPending || ctx.BatchIds.Count > 0)
        {
            Stats.TimedFlushes++;
            SyncBatch(ctx);
        }
    }
}
