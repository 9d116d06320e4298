namespace PtActors.Engine.Dma;

/// <summary>
/// Checks that a <see cref="DomainModel"/>'s parts agree with each other, as a recovered domain must: every table
/// page allocated exactly once (linked once from the table, or parked once on an unmap waiting for its flush) and
/// none leaked; every live DMA-API mapping translated by the table as mapped; every parked unmap's range empty in
/// the table; the IOVA allocator holding exactly what the mappings and parked unmaps hold. Pure; changes nothing.
/// </summary>
public static class DomainAudit
{
    /// <summary>At most this many 4 KiB pages of one range are translated (wider ranges are checked at both ends and every 4 KiB step up to it).</summary>
    private const ulong MaxPagesChecked = 1 << 18;

    /// <summary>The problems found, each a short sentence; empty when the model is consistent.</summary>
    public static List<string> Check(DomainModel model)
    {
        var problems = new List<string>();
        var domain = model.Domain;
        var memory = model.Memory;
        var state = model.Capture();

        // Table pages: each reachable page once, each parked page once, nothing else allocated.
        var owner = new Dictionary<int, string>();
        var reachable = new List<int>();
        domain.CollectTablePages(reachable);
        foreach (int page in reachable)
        {
            if (!memory.IsAllocated(page))
                Add(problems, $"table page {page} is linked from the table but not allocated");
            else if (!owner.TryAdd(page, "the table"))
                Add(problems, $"table page {page} is linked from the table twice");
        }
        foreach (var parked in state.Parked)
        {
            foreach (int page in parked.Pages)
            {
                string who = $"unmap {parked.Id}";
                if (!memory.IsAllocated(page))
                    Add(problems, $"table page {page} parked on {who} is not allocated");
                else if (!owner.TryAdd(page, who))
                    Add(problems, $"table page {page} is parked on {who} and also held by {owner[page]}");
            }
        }
        int allocated = 0;
        for (int page = 0; page < memory.TotalPages; page++)
        {
            if (!memory.IsAllocated(page))
                continue;
            allocated++;
            if (!owner.ContainsKey(page))
                Add(problems, $"table page {page} is allocated but neither linked nor parked (leaked)");
        }
        if (allocated != memory.AllocatedPages)
            Add(problems, $"the memory counts {memory.AllocatedPages} allocated pages but {allocated} are marked allocated");

        // Live DMA-API mappings: translated as mapped, no two overlapping, each inside the IOVA space.
        var mappings = state.Mappings;
        Array.Sort(mappings, static (a, b) => a.Iova.CompareTo(b.Iova));
        ulong mappedBytes = 0, iovaBytes = 0;
        ulong previousEnd = 0;
        foreach (var m in mappings)
        {
            ulong bytes = PageAligned(m.Size);
            mappedBytes += bytes;
            iovaBytes += 1UL << (IovaAllocator.OrderOf(m.Size) + 12);
            if (m.Iova < previousEnd)
                Add(problems, $"mapping at 0x{m.Iova:x} overlaps the one before it");
            previousEnd = m.Iova + bytes;
            if (m.Iova < state.IovaStart || m.Iova + (bytes - 1) > state.IovaLimit)
                Add(problems, $"mapping at 0x{m.Iova:x} lies outside the IOVA space");
            ulong pages = Math.Min(bytes >> 12, MaxPagesChecked);
            for (ulong k = 0; k < pages; k++)
            {
                ulong iova = m.Iova + (k << 12);
                if (domain.TryIovaToPhys(iova, out ulong pa) != Errno.None || pa != m.Paddr + (k << 12))
                {
                    Add(problems, $"mapping at 0x{m.Iova:x} (0x{m.Size:x} bytes -> 0x{m.Paddr:x}) is not in the table at 0x{iova:x}");
                    break;
                }
            }
        }
        if (mappedBytes != state.MappedBytes)
            Add(problems, $"the mappings hold 0x{mappedBytes:x} bytes but the domain counts 0x{state.MappedBytes:x}");

        // Parked unmaps: the part of their range their lock still holds is empty in the table (the lock keeps every
        // other operation out; an unmap ending inside a large page removed more than it locked, and that rest may be
        // mapped again), their IOVA allocated.
        var locks = new Dictionary<long, RangeLocks.Entry>();
        foreach (var l in state.HeldLocks)
            locks[l.Id] = l;
        foreach (var p in state.Parked)
        {
            if (p.AllocatedSize != 0)
                iovaBytes += 1UL << (IovaAllocator.OrderOf(p.AllocatedSize) + 12);
            if (p.Id < 0 || p.Unmapped == 0)
                continue;
            if (!locks.TryGetValue(p.Id, out var held))
            {
                Add(problems, $"unmap {p.Id} waits for its flush but holds no range lock");
                continue;
            }
            ulong first = Math.Max(p.Iova, held.Start), last = Math.Min(p.Iova + (p.Unmapped - 1), held.Last);
            if (last < first)
                continue;
            ulong pages = Math.Min(((last - first) >> 12) + 1, MaxPagesChecked);
            for (ulong k = 0; k < pages; k++)
            {
                ulong iova = (first & ~0xfffUL) + (k << 12);
                if (domain.TryIovaToPhys(iova, out _) == Errno.None)
                {
                    Add(problems, $"unmap {p.Id} waits for its flush but 0x{iova:x} is still mapped");
                    break;
                }
            }
        }
        if (iovaBytes != state.IovaAllocatedBytes)
            Add(problems, $"the IOVA allocator holds 0x{state.IovaAllocatedBytes:x} bytes but the mappings and parked unmaps hold 0x{iovaBytes:x}");
        return problems;
    }

    private static ulong PageAligned(ulong size) => (size + 0xfff) & ~0xfffUL;

    /// <summary>Keeps the list short: a broken domain can have thousands of problems; the first ten say enough.</summary>
    private static void Add(List<string> problems, string problem)
    {
        if (problems.Count < 10)
            problems.Add(problem);
    }
}
