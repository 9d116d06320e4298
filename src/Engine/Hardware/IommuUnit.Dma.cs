using System.Runtime.InteropServices;

namespace PtActors.Engine.Hardware;

/// <summary>The translation side: a device's DMA through the IOTLB, walk caches and page walk, with the checkers.</summary>
public sealed partial class IommuUnit
{
    private const int MaxFaultLog = 10_000;

    /// <summary>
    /// Translates one DMA of <paramref name="device"/> to <paramref name="iova"/> the way hardware does: IOTLB
    /// lookup; on a miss a walk of the real PTEs through the walk caches, then a fill; a permission check. A write
    /// sets the dirty bit of the leaf it hits (formats that track dirty bits). The safety checkers run on every
    /// hit that an unmap has made suspect and on every walk.
    /// </summary>
    public DmaResult Dma(IommuDevice device, ulong iova, bool write)
    {
        var ctx = device.HardwareContext;
        if (ctx is null)
            return Fault(device, iova, write, FaultReason.NotAttached);
        var domain = ctx.Domain;
        if (!ReferenceEquals(domain, device.Domain))
        {
            Stats.IsolationBreaches++;
            Stats.FirstIsolationBreach ??= Event(device.Name, iova, Clock.NowNs);
        }
        var need = write ? IommuProt.Write : IommuProt.Read;

        int slot = Iotlb.Lookup(ctx.Id, iova);
        if (slot >= 0)
        {
            Stats.Hits++;
            Costs.Translate(Clock.NowNs, 0);
            ref var e = ref Iotlb[slot];
            if ((e.Perms & need) == 0)
                return Fault(device, iova, write, FaultReason.Permission);
            ulong hitPa = e.Pa | Log2.Mod(iova, e.SizeLg2);
            bool staleHit = e.Suspect && CheckStale(ctx, device, iova, hitPa, e.Perms);
            if (write && !e.Dirty)
            {
                e.Dirty = true;
                if (e.LeafPage >= 0 && domain.Memory.IsAllocated(e.LeafPage))
                    domain.HardwareSetDirty(e.LeafPage, e.LeafIndex, e.LeafLevel, e.Pa);
            }
            return new DmaResult(staleHit ? DmaOutcome.Stale : DmaOutcome.Hit, hitPa);
        }

        Stats.Misses++;
        var walk = new DmaWalk { Va = iova, StartLevel = -1 };
        int cached = WalkCache.Lookup(ctx.Id, iova, domain.TopLevel, out int childPage, out bool suspect);
        if (cached > 0)
        {
            walk.StartLevel = cached - 1;
            walk.StartPage = childPage;
        }
        domain.WalkForDma(ref walk);
        Costs.Translate(Clock.NowNs, Math.Max(1, walk.Depth));

        bool freedRead = false;
        for (int i = 0; i < walk.Depth; i++)
        {
            if (!domain.Memory.IsAllocated(walk.Pages[i]))
            {
                freedRead = true;
                Stats.UseAfterFree++;
                Stats.FirstUseAfterFree ??= Event(device.Name, iova, Clock.NowNs);
                break;
            }
        }
        suspect |= freedRead;
        for (int i = 0; i + 1 < walk.Depth; i++)
            WalkCache.Fill(ctx.Id, walk.Levels[i], iova, walk.Pages[i + 1], suspect);

        if (walk.Result != PtEntryType.Oa)
        {
            // Changed by an unmap stamped after this DMA: translate as the table was before it.
            if (PreState is null || !PreState.TryTranslate(domain, iova, out ulong prePa, out var prePerms))
                return Fault(device, iova, write, FaultReason.Unmapped);
            if ((prePerms & need) == 0)
                return Fault(device, iova, write, FaultReason.Permission);
            int preSlot = Iotlb.Fill(ctx.Id, iova & ~0xfffUL, 12, prePa & ~0xfffUL, prePerms);
            Iotlb[preSlot].LeafPage = -1;
            return new DmaResult(DmaOutcome.Miss, prePa);
        }
        if ((walk.Perms & need) == 0)
            return Fault(device, iova, write, FaultReason.Permission);

        int filled = Iotlb.Fill(ctx.Id, walk.EntryVa, walk.SizeLg2, walk.EntryOa, walk.Perms);
        ref var f = ref Iotlb[filled];
        f.Suspect = suspect;
        f.LeafPage = walk.LeafPage;
        f.LeafIndex = walk.LeafIndex;
        f.LeafLevel = (byte)walk.Levels[walk.Depth - 1];
        f.Dirty = write;
        if (write && !freedRead)
            domain.HardwareSetDirty(walk.LeafPage, walk.LeafIndex, f.LeafLevel, walk.EntryOa);

        ulong pa = walk.Pa;
        bool stale = suspect && CheckStale(ctx, device, iova, pa, walk.Perms);
        return new DmaResult(stale ? DmaOutcome.Stale : DmaOutcome.Miss, pa);
    }

    /// <summary>
    /// The stale-hit checker: a cached translation is stale when the current table gives no mapping, another
    /// PA, or fewer permissions. It is in window while an unflushed unmap covers the IOVA, a violation otherwise.
    /// </summary>
    private bool CheckStale(DomainContext ctx, IommuDevice device, ulong iova, ulong pa, IommuProt perms)
    {
        var now = new DmaWalk { Va = iova, StartLevel = -1 };
        ctx.Domain.WalkForDma(ref now);
        if (now.Result == PtEntryType.Oa && now.Pa == pa && (now.Perms & perms) == perms)
            return false;
        // The table may already hold an unmap stamped after this DMA: compare with what it had before it.
        if (PreState is not null && PreState.TryTranslate(ctx.Domain, iova, out ulong prePa, out var prePerms)
            && prePa == pa && (prePerms & perms) == perms)
            return false;

        // Records are appended at the clock's time, which never goes back, and leave in order: the first that
        // covers the IOVA is the earliest.
        ulong earliest = ulong.MaxValue;
        foreach (var r in CollectionsMarshal.AsSpan(ctx.Unflushed))
        {
            if (r.Start <= iova && iova <= r.Last)
            {
                earliest = r.TimeNs;
                break;
            }
        }
        ulong t = Clock.NowNs;
        if (earliest != ulong.MaxValue)
        {
            Stats.StaleInWindow++;
            long window = (long)(t - earliest);
            if (window > Stats.MaxStaleWindowNs)
                Stats.MaxStaleWindowNs = window;
            Stats.FirstStaleInWindow ??= Event(device.Name, iova, t);
        }
        else
        {
            Stats.StaleViolations++;
            Stats.FirstStaleViolation ??= Event(device.Name, iova, t);
        }
        return true;
    }

    private DmaResult Fault(IommuDevice device, ulong iova, bool write, FaultReason reason)
    {
        Stats.Faults++;
        if (_faults.Count < MaxFaultLog)
            _faults.Add(new IoPageFault(device.Name, iova, write ? IoPageFault.Write : IoPageFault.Read, reason, Clock.NowNs));
        return new DmaResult(DmaOutcome.Fault, 0, reason);
    }
}
