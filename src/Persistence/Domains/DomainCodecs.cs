using System.Numerics;
using System.Runtime.Serialization;
using PtActors.Engine;
using PtActors.Engine.Dma;
using PtActors.Persistence.Serialization;

namespace PtActors.Persistence.Domains;

/// <summary>
/// Codecs of the domain actor's journal events (<see cref="DomainBatch"/>) and snapshots
/// (<see cref="DomainModelSnapshot"/>). The engine types carry no marker interface: config/persistence-serialization.conf
/// binds them to the ptb serializer by type name (the stored rows hold only the manifest) and lists this set
/// under <c>codec-sets.domains</c>.
/// <para>
/// Notation: <c>u</c> = unsigned LEB128 varint; <c>z</c> = zigzag varint; <c>f64</c> = 8-byte little-endian;
/// <c>b</c> = one byte; <c>n × X</c> = a varint count n, then n X. Differences are taken modulo 2^64, so every
/// value round-trips whatever its order.
/// </para>
/// <para>
/// Shared pieces: <c>id</c> = z (Id &gt;&gt; 32) (the device), u (uint)Id (its sequence number) — 2 to 3 bytes for a
/// usual id, any long round-trips. <c>op(prev)</c> = z (StampNs − prev), id, u (Prot &lt;&lt; 3 | Kind), u Iova,
/// u Paddr, u Size; <c>prev</c> is the stamp of the op before it in the same list (the first op's prev is named
/// below), so the usual non-decreasing stamps cost one or two bytes. Kind must be a <see cref="DmaOpKind"/> and
/// Prot only <see cref="IommuProt"/> bits.
/// </para>
/// <para>
/// domain-batch v3 = u ReleasedAtNs, n × u HardwareWrites (each a <see cref="HardwareWriteLog"/> entry,
/// page &lt;&lt; 9 | index, page &lt; 2^31), n × id (Released), n × op (Ops; the first op's prev is ReleasedAtNs),
/// f64 ResultDigest (<see cref="DomainModel.Digest"/>). v2 is read too: the same without HardwareWrites (none).
/// v1 had v2's layout with a byte-wise FNV-1a digest; its digests cannot be checked any more, so v1 events are
/// refused rather than replayed unchecked.
/// </para>
/// <para>
/// domain-snapshot v1 =
/// <b>memory</b>: u Base (4 KiB aligned), u PageCount, z PageLimit, ⌈PageCount/64⌉ f64 allocation-bitmap words
/// (no bit at or past PageCount), then one <c>page</c> per set bit in order (so AllocatedPages.Length is the
/// bitmap's popcount). <c>page</c> = u h; h ≤ 512: sparse, h × (u gap, f64 value) for the non-zero items in
/// index order, index = previous index + 1 + gap (the first: gap), every index &lt; 512, every value non-zero;
/// h = 513: dense, 512 f64 (written for more than 455 non-zero items, where sparse would be no shorter).
/// <b>domain</b>: b Format, z HwMaxVaszLg2, z HwMaxOaszLg2, u Features (only <see cref="PtFeatures"/> bits),
/// z StartingLevel, z TopLevel, u TopPage (an allocated page), f64 PgsizeBitmap, u TablePages.
/// <b>iova</b>: u IovaStart, u IovaLimit (Start and Limit + 1 page aligned, Start &lt; Limit), u IovaNext,
/// u IovaAllocatedBytes, u IovaCaches.Length (≤ 64), n × (u order, n × u iova) for the non-empty caches in
/// increasing order (orders &lt; Length, empty caches omitted).
/// <b>mappings</b>: n × (z (Iova − previous Iova; the first: − IovaNext), u Size, u Paddr, u Prot), Iova unique.
/// <b>parked</b>: n × (id, u Iova, u Unmapped, u AllocatedIova, u AllocatedSize, n × u page), ids unique, every
/// page allocated. <b>locks</b>: held then waiting, each n × (id, u Start, u (Last − Start), b Shared), Last ≥
/// Start, ids unique over both lists. <b>waiting ops</b>: n × op (the first op's prev is 0), ids unique.
/// u MappedBytes.
/// </para>
/// Every violation of these rules is a <see cref="SerializationException"/>: when reading (naming the manifest
/// and the byte position) and when writing (a snapshot that could not be read back is never stored).
/// </summary>
public sealed class DomainCodecs : IPtCodecSet
{
    public const string BatchManifest = "domain-batch";
    public const string SnapshotManifest = "domain-snapshot";

    /// <summary>The page header that marks a dense page (512 fixed-width items follow).</summary>
    public const int DensePage = TableMemory.ItemsPerPage + 1;

    /// <summary>The IOVA allocator's cache orders (one per bit of a 64-bit size).</summary>
    public const int MaxCacheOrders = 64;

    /// <summary>Fewest bytes an encoded op takes (seven one-byte varints).</summary>
    private const int MinOpBytes = 7;

    /// <summary>Fewest bytes an encoded id takes.</summary>
    private const int MinIdBytes = 2;

    private const int Items = TableMemory.ItemsPerPage;

    /// <summary>
    /// Up to this many non-zero items a page is written sparse: a dense page costs 2 + 4096 bytes, a sparse one
    /// at least 2 + 9 per item, so beyond 455 items dense is never longer.
    /// </summary>
    private const int SparseLimit = (Items * 8) / 9; // 455

    private static readonly uint ProtMask = Enum.GetValues<IommuProt>().Aggregate(0u, (m, p) => m | (uint)p);
    private static readonly uint FeatureMask = Enum.GetValues<PtFeatures>().Aggregate(0u, (m, f) => m | (uint)f);

    public void Register(PtCodecRegistry registry)
    {
        registry.Register<DomainBatch>(BatchManifest, 4, WriteBatch, ReadBatch, minVersion: 2);
        registry.Register<DomainModelSnapshot>(SnapshotManifest, 1, WriteSnapshot, ReadSnapshot);
    }

    // ---- domain-batch ----------------------------------------------------------------------------------

    private static void WriteBatch(PtWriter w, DomainBatch b)
    {
        w.WriteVarUInt64(b.ReleasedAtNs);
        if (b.Window is < 0 or > long.MaxValue / 2)
            throw new SerializationException($"PtSerializer: cannot write '{BatchManifest}': window {b.Window} is not a window number");
        w.WriteVarUInt64(((ulong)b.Window << 1) | (b.Final ? 1UL : 0UL));
        w.WriteCount(b.HardwareWrites.Length);
        foreach (long hw in b.HardwareWrites)
        {
            if (hw < 0 || hw >> 9 > int.MaxValue)
                throw new SerializationException($"PtSerializer: cannot write '{BatchManifest}': hardware write {hw} names no table item");
            w.WriteVarUInt64((ulong)hw);
        }
        w.WriteCount(b.Released.Length);
        foreach (long id in b.Released) WriteId(w, id);
        WriteOps(w, b.Ops.Span, b.ReleasedAtNs);
        w.WriteUInt64(b.ResultDigest);
    }

    private static DomainBatch ReadBatch(ref PtReader r, byte version)
    {
        ulong releasedAt = r.ReadVarUInt64();
        long window = 0;
        bool final = false;
        if (version >= 4)
        {
            ulong w = r.ReadVarUInt64();
            window = (long)(w >> 1);
            final = (w & 1) != 0;
        }
        long[] hardware = [];
        if (version >= 3)
        {
            hardware = new long[r.ReadCount(1)];
            for (int i = 0; i < hardware.Length; i++)
            {
                ulong hw = r.ReadVarUInt64();
                if (hw >> 9 > int.MaxValue)
                    throw r.Corrupt($"hardware write {hw} names no table item");
                hardware[i] = (long)hw;
            }
        }
        var released = new long[r.ReadCount(MinIdBytes)];
        for (int i = 0; i < released.Length; i++) released[i] = ReadId(ref r);
        var ops = ReadOps(ref r, releasedAt);
        ulong digest = r.ReadUInt64();
        return new DomainBatch(released, releasedAt, ops, digest) { HardwareWrites = hardware, Window = window, Final = final };
    }

    // ---- domain-snapshot -------------------------------------------------------------------------------

    private static void WriteSnapshot(PtWriter w, DomainModelSnapshot s)
    {
        if (Check(s) is { } error)
            throw new SerializationException($"PtSerializer: cannot write '{SnapshotManifest}': {error}");

        var mem = s.Memory;
        w.WriteVarUInt64(mem.Base);
        w.WriteCount(mem.PageCount);
        w.WriteVarInt64(mem.PageLimit);
        foreach (ulong word in mem.AllocatedBits) w.WriteUInt64(word);
        foreach (var page in mem.AllocatedPages) WritePage(w, page);

        var d = s.Domain;
        w.WriteByte((byte)d.Config.Format);
        w.WriteVarInt64(d.Config.HwMaxVaszLg2);
        w.WriteVarInt64(d.Config.HwMaxOaszLg2);
        w.WriteVarUInt32((uint)d.Config.Features);
        w.WriteVarInt64(d.Config.StartingLevel);
        w.WriteVarInt64(d.TopLevel);
        w.WriteCount(d.TopPage);
        w.WriteUInt64(d.PgsizeBitmap);
        w.WriteCount(d.TablePages);

        w.WriteVarUInt64(s.IovaStart);
        w.WriteVarUInt64(s.IovaLimit);
        w.WriteVarUInt64(s.IovaNext);
        w.WriteVarUInt64(s.IovaAllocatedBytes);
        w.WriteCount(s.IovaCaches.Length);
        w.WriteCount(s.IovaCaches.Count(c => c.Length != 0));
        for (int order = 0; order < s.IovaCaches.Length; order++)
        {
            var cache = s.IovaCaches[order];
            if (cache.Length == 0) continue;
            w.WriteCount(order);
            w.WriteCount(cache.Length);
            foreach (ulong iova in cache) w.WriteVarUInt64(iova);
        }

        w.WriteCount(s.Mappings.Length);
        ulong prevIova = s.IovaNext;
        foreach (var m in s.Mappings)
        {
            w.WriteVarInt64(unchecked((long)(m.Iova - prevIova)));
            prevIova = m.Iova;
            w.WriteVarUInt64(m.Size);
            w.WriteVarUInt64(m.Paddr);
            w.WriteVarUInt32((uint)m.Prot);
        }

        w.WriteCount(s.Parked.Length);
        foreach (var p in s.Parked)
        {
            WriteId(w, p.Id);
            w.WriteVarUInt64(p.Iova);
            w.WriteVarUInt64(p.Unmapped);
            w.WriteVarUInt64(p.AllocatedIova);
            w.WriteVarUInt64(p.AllocatedSize);
            w.WriteCount(p.Pages.Length);
            foreach (int page in p.Pages) w.WriteCount(page);
        }

        WriteLocks(w, s.HeldLocks);
        WriteLocks(w, s.WaitingLocks);
        WriteOps(w, s.WaitingOps, 0);
        w.WriteVarUInt64(s.MappedBytes);
    }

    private static DomainModelSnapshot ReadSnapshot(ref PtReader r, byte version)
    {
        // memory
        ulong memBase = r.ReadVarUInt64();
        if ((memBase & 0xfff) != 0) throw r.Corrupt($"table memory base 0x{memBase:x} is not 4 KiB aligned");
        int pageCount = r.ReadCount(minItemBytes: 0);
        int pageLimit = ReadInt32Var(ref r, "page limit");
        if (pageLimit < 0) throw r.Corrupt($"page limit {pageLimit} is negative");
        int words = (int)(((long)pageCount + 63) >> 6);
        if (words > r.Remaining / 8) throw r.Corrupt($"page count {pageCount} needs a {words}-word bitmap; {r.Remaining} bytes left");
        var bits = new ulong[words];
        int allocated = 0;
        for (int i = 0; i < words; i++)
        {
            bits[i] = r.ReadUInt64();
            allocated += BitOperations.PopCount(bits[i]);
        }
        if (words != 0 && (pageCount & 63) != 0 && (bits[^1] >> (pageCount & 63)) != 0)
            throw r.Corrupt($"the allocation bitmap marks a page at or past the page count {pageCount}");
        if (allocated > r.Remaining) throw r.Corrupt($"{allocated} allocated pages cannot fit in the {r.Remaining} bytes left");
        var pages = new ulong[allocated][];
        for (int i = 0; i < allocated; i++) pages[i] = ReadPage(ref r, i);
        var memory = new TableMemorySnapshot(memBase, pageCount, pageLimit, bits, pages);

        // domain
        byte format = r.ReadByte();
        if (!Enum.IsDefined((PtFormatKind)format)) throw r.Corrupt($"unknown page-table format {format}");
        int vasz = ReadInt32Var(ref r, "HwMaxVaszLg2");
        int oasz = ReadInt32Var(ref r, "HwMaxOaszLg2");
        uint features = r.ReadVarUInt32();
        if ((features & ~FeatureMask) != 0) throw r.Corrupt($"unknown feature bits 0x{features & ~FeatureMask:x}");
        int startingLevel = ReadInt32Var(ref r, "StartingLevel");
        int topLevel = ReadInt32Var(ref r, "TopLevel");
        int topPage = r.ReadCount(minItemBytes: 0);
        if (topPage >= pageCount || (bits[topPage >> 6] & (1UL << topPage)) == 0)
            throw r.Corrupt($"top page {topPage} is not an allocated page");
        ulong pgsize = r.ReadUInt64();
        int tablePages = r.ReadCount(minItemBytes: 0);
        var domain = new DomainSnapshot(new PtConfig((PtFormatKind)format, vasz, oasz, (PtFeatures)features, startingLevel),
            topLevel, topPage, pgsize, tablePages);

        // iova allocator
        ulong iovaStart = r.ReadVarUInt64();
        ulong iovaLimit = r.ReadVarUInt64();
        if (IovaRangeError(iovaStart, iovaLimit) is { } rangeError) throw r.Corrupt(rangeError);
        ulong iovaNext = r.ReadVarUInt64();
        ulong iovaAllocated = r.ReadVarUInt64();
        int cacheCount = r.ReadCount(minItemBytes: 0);
        if (cacheCount > MaxCacheOrders) throw r.Corrupt($"{cacheCount} IOVA caches (at most {MaxCacheOrders})");
        var caches = new ulong[cacheCount][];
        Array.Fill(caches, Array.Empty<ulong>());
        int nonEmpty = r.ReadCount(minItemBytes: 3);
        int prevOrder = -1;
        for (int i = 0; i < nonEmpty; i++)
        {
            int order = r.ReadCount(minItemBytes: 0);
            if (order <= prevOrder || order >= cacheCount)
                throw r.Corrupt($"IOVA cache order {order} is out of order or not below {cacheCount}");
            prevOrder = order;
            var cache = new ulong[r.ReadCount(minItemBytes: 1)];
            if (cache.Length == 0) throw r.Corrupt($"IOVA cache {order} is listed but empty");
            for (int k = 0; k < cache.Length; k++) cache[k] = r.ReadVarUInt64();
            caches[order] = cache;
        }

        // mappings
        var mappings = new MappingEntry[r.ReadCount(minItemBytes: 4)];
        var seenIovas = new HashSet<ulong>();
        ulong prevIova = iovaNext;
        for (int i = 0; i < mappings.Length; i++)
        {
            ulong iova = unchecked(prevIova + (ulong)r.ReadVarInt64());
            prevIova = iova;
            if (!seenIovas.Add(iova)) throw r.Corrupt($"two mappings at IOVA 0x{iova:x}");
            ulong size = r.ReadVarUInt64();
            ulong paddr = r.ReadVarUInt64();
            mappings[i] = new MappingEntry(iova, size, paddr, ReadProt(ref r));
        }

        // parked unmaps
        var parked = new ParkedEntry[r.ReadCount(minItemBytes: MinIdBytes + 5)];
        var seenIds = new HashSet<long>();
        for (int i = 0; i < parked.Length; i++)
        {
            long id = ReadId(ref r);
            if (!seenIds.Add(id)) throw r.Corrupt($"unmap {id} is parked twice");
            ulong iova = r.ReadVarUInt64();
            ulong unmapped = r.ReadVarUInt64();
            ulong allocatedIova = r.ReadVarUInt64();
            ulong allocatedSize = r.ReadVarUInt64();
            var parkedPages = new int[r.ReadCount(minItemBytes: 1)];
            for (int k = 0; k < parkedPages.Length; k++)
            {
                int page = r.ReadCount(minItemBytes: 0);
                if (page >= pageCount || (bits[page >> 6] & (1UL << page)) == 0)
                    throw r.Corrupt($"unmap {id} parks page {page}, which is not an allocated page");
                parkedPages[k] = page;
            }
            parked[i] = new ParkedEntry(id, iova, unmapped, allocatedIova, allocatedSize, parkedPages);
        }

        // locks and waiters
        seenIds.Clear();
        var held = ReadLocks(ref r, seenIds);
        var waitingLocks = ReadLocks(ref r, seenIds);
        var waitingOps = ReadOps(ref r, 0);
        seenIds.Clear();
        foreach (var op in waitingOps)
        {
            if (!seenIds.Add(op.Id)) throw r.Corrupt($"operation {op.Id} waits twice");
        }
        ulong mappedBytes = r.ReadVarUInt64();

        var snapshot = new DomainModelSnapshot(memory, domain, iovaStart, iovaLimit, iovaNext, caches, iovaAllocated,
            mappings, parked, held, waitingLocks, waitingOps, mappedBytes);
        if (Check(snapshot) is { } error) throw r.Corrupt(error); // everything is checked above; this keeps reader and writer in step
        return snapshot;
    }

    /// <summary>
    /// The first rule of the domain-snapshot format that <paramref name="s"/> breaks, or null: what the writer
    /// refuses and what the reader rejects.
    /// </summary>
    public static string? Check(DomainModelSnapshot s)
    {
        ArgumentNullException.ThrowIfNull(s);
        var mem = s.Memory;
        if ((mem.Base & 0xfff) != 0) return $"table memory base 0x{mem.Base:x} is not 4 KiB aligned";
        if (mem.PageCount < 0) return $"negative page count {mem.PageCount}";
        int words = (int)(((long)mem.PageCount + 63) >> 6);
        if (mem.AllocatedBits.Length != words)
            return $"the allocation bitmap has {mem.AllocatedBits.Length} words; page count {mem.PageCount} needs {words}";
        int allocated = 0;
        foreach (ulong word in mem.AllocatedBits) allocated += BitOperations.PopCount(word);
        if (words != 0 && (mem.PageCount & 63) != 0 && (mem.AllocatedBits[^1] >> (mem.PageCount & 63)) != 0)
            return $"the allocation bitmap marks a page at or past the page count {mem.PageCount}";
        if (mem.AllocatedPages.Length != allocated)
            return $"{mem.AllocatedPages.Length} page contents for {allocated} allocated pages";
        foreach (var page in mem.AllocatedPages)
        {
            if (page.Length != Items) return $"a table page has {page.Length} items, not {Items}";
        }

        var d = s.Domain;
        if (!Enum.IsDefined(d.Config.Format)) return $"unknown page-table format {(int)d.Config.Format}";
        if (((uint)d.Config.Features & ~FeatureMask) != 0) return $"unknown feature bits 0x{(uint)d.Config.Features & ~FeatureMask:x}";
        if (!IsAllocated(mem, d.TopPage)) return $"top page {d.TopPage} is not an allocated page";
        if (d.TablePages < 0) return $"negative table page count {d.TablePages}";

        if (IovaRangeError(s.IovaStart, s.IovaLimit) is { } rangeError) return rangeError;
        if (s.IovaCaches.Length > MaxCacheOrders) return $"{s.IovaCaches.Length} IOVA caches (at most {MaxCacheOrders})";
        foreach (var cache in s.IovaCaches)
        {
            if (cache is null) return "a null IOVA cache";
        }

        var iovas = new HashSet<ulong>();
        foreach (var m in s.Mappings)
        {
            if (!iovas.Add(m.Iova)) return $"two mappings at IOVA 0x{m.Iova:x}";
            if (ProtError(m.Prot) is { } protError) return protError;
        }

        var ids = new HashSet<long>();
        foreach (var p in s.Parked)
        {
            if (!ids.Add(p.Id)) return $"unmap {p.Id} is parked twice";
            foreach (int page in p.Pages)
            {
                if (!IsAllocated(mem, page)) return $"unmap {p.Id} parks page {page}, which is not an allocated page";
            }
        }

        ids.Clear();
        foreach (var e in s.HeldLocks.Concat(s.WaitingLocks))
        {
            if (e.Last < e.Start) return $"lock {e.Id} has an empty range 0x{e.Start:x}-0x{e.Last:x}";
            if (!ids.Add(e.Id)) return $"lock {e.Id} is listed twice";
        }

        ids.Clear();
        foreach (var op in s.WaitingOps)
        {
            if (!ids.Add(op.Id)) return $"operation {op.Id} waits twice";
            if (OpError(op) is { } opError) return opError;
        }
        return null;
    }

    // ---- pieces ----------------------------------------------------------------------------------------

    private static void WritePage(PtWriter w, ulong[] page)
    {
        int nonZero = 0;
        foreach (ulong item in page)
        {
            if (item != 0) nonZero++;
        }
        if (nonZero > SparseLimit)
        {
            w.WriteCount(DensePage);
            foreach (ulong item in page) w.WriteUInt64(item);
            return;
        }
        w.WriteCount(nonZero);
        int next = 0; // the lowest index the next item may have
        for (int i = 0; i < page.Length; i++)
        {
            if (page[i] == 0) continue;
            w.WriteCount(i - next);
            w.WriteUInt64(page[i]);
            next = i + 1;
        }
    }

    private static ulong[] ReadPage(ref PtReader r, int n)
    {
        var page = new ulong[Items];
        ulong header = r.ReadVarUInt64();
        if (header == DensePage)
        {
            for (int i = 0; i < Items; i++) page[i] = r.ReadUInt64();
            return page;
        }
        if (header > Items) throw r.Corrupt($"allocated page #{n} claims {header} non-zero items (at most {Items}, or {DensePage} for a dense page)");
        if (header > (ulong)(r.Remaining / 9)) throw r.Corrupt($"allocated page #{n}: {header} items cannot fit in the {r.Remaining} bytes left");
        int next = 0;
        for (int k = 0; k < (int)header; k++)
        {
            ulong gap = r.ReadVarUInt64();
            if (gap >= (ulong)(Items - next)) throw r.Corrupt($"allocated page #{n}: item index {next} + {gap} is not below {Items}");
            int index = next + (int)gap;
            ulong value = r.ReadUInt64();
            if (value == 0) throw r.Corrupt($"allocated page #{n}: item {index} is listed but zero");
            page[index] = value;
            next = index + 1;
        }
        return page;
    }

    private static void WriteId(PtWriter w, long id)
    {
        w.WriteVarInt64(id >> 32);
        w.WriteVarUInt32(unchecked((uint)id));
    }

    private static long ReadId(ref PtReader r)
    {
        long high = r.ReadVarInt64();
        if (high is < int.MinValue or > int.MaxValue) throw r.Corrupt($"id high word {high} does not fit 32 bits");
        uint low = r.ReadVarUInt32();
        return (high << 32) | low;
    }

    private static void WriteOps(PtWriter w, ReadOnlySpan<DmaOp> ops, ulong prevStamp)
    {
        w.WriteCount(ops.Length);
        foreach (var op in ops)
        {
            if (OpError(op) is { } error) throw new SerializationException($"PtSerializer: cannot write a DmaOp: {error}");
            w.WriteVarInt64(unchecked((long)(op.StampNs - prevStamp)));
            prevStamp = op.StampNs;
            WriteId(w, op.Id);
            w.WriteVarUInt64(((ulong)(uint)op.Prot << 3) | (byte)op.Kind);
            w.WriteVarUInt64(op.Iova);
            w.WriteVarUInt64(op.Paddr);
            w.WriteVarUInt64(op.Size);
        }
    }

    private static DmaOp[] ReadOps(ref PtReader r, ulong prevStamp)
    {
        var ops = new DmaOp[r.ReadCount(MinOpBytes)];
        for (int i = 0; i < ops.Length; i++)
        {
            ulong stamp = unchecked(prevStamp + (ulong)r.ReadVarInt64());
            prevStamp = stamp;
            long id = ReadId(ref r);
            ulong header = r.ReadVarUInt64();
            ulong kind = header & 7;
            ulong prot = header >> 3;
            if (kind is < (ulong)DmaOpKind.DmaMap or > (ulong)DmaOpKind.ReadDirty) throw r.Corrupt($"operation {id} has unknown kind {kind}");
            if ((prot & ~(ulong)ProtMask) != 0) throw r.Corrupt($"operation {id} has unknown prot bits 0x{prot & ~(ulong)ProtMask:x}");
            ulong iova = r.ReadVarUInt64();
            ulong paddr = r.ReadVarUInt64();
            ulong size = r.ReadVarUInt64();
            ops[i] = new DmaOp(stamp, id, (DmaOpKind)kind, iova, paddr, size, (IommuProt)prot);
        }
        return ops;
    }

    private static void WriteLocks(PtWriter w, RangeLocks.Entry[] locks)
    {
        w.WriteCount(locks.Length);
        foreach (var e in locks)
        {
            WriteId(w, e.Id);
            w.WriteVarUInt64(e.Start);
            w.WriteVarUInt64(e.Last - e.Start);
            w.WriteBool(e.Shared);
        }
    }

    private static RangeLocks.Entry[] ReadLocks(ref PtReader r, HashSet<long> seenIds)
    {
        var locks = new RangeLocks.Entry[r.ReadCount(minItemBytes: MinIdBytes + 3)];
        for (int i = 0; i < locks.Length; i++)
        {
            long id = ReadId(ref r);
            if (!seenIds.Add(id)) throw r.Corrupt($"lock {id} is listed twice");
            ulong start = r.ReadVarUInt64();
            ulong length = r.ReadVarUInt64();
            if (length > ulong.MaxValue - start) throw r.Corrupt($"lock {id} at 0x{start:x} runs past the end of the address space");
            locks[i] = new RangeLocks.Entry(id, start, start + length, r.ReadBool());
        }
        return locks;
    }

    private static IommuProt ReadProt(ref PtReader r)
    {
        uint prot = r.ReadVarUInt32();
        if ((prot & ~ProtMask) != 0) throw r.Corrupt($"unknown prot bits 0x{prot & ~ProtMask:x}");
        return (IommuProt)prot;
    }

    private static int ReadInt32Var(ref PtReader r, string what)
    {
        long v = r.ReadVarInt64();
        if (v is < int.MinValue or > int.MaxValue) throw r.Corrupt($"{what} {v} does not fit 32 bits");
        return (int)v;
    }

    private static bool IsAllocated(TableMemorySnapshot mem, int page) =>
        page >= 0 && page < mem.PageCount && (mem.AllocatedBits[page >> 6] & (1UL << page)) != 0;

    private static string? IovaRangeError(ulong start, ulong limit) =>
        (start & 0xfff) != 0 || ((limit + 1) & 0xfff) != 0 || limit <= start
            ? $"IOVA range 0x{start:x}-0x{limit:x} is not page aligned and non-empty"
            : null;

    private static string? ProtError(IommuProt prot) =>
        ((uint)prot & ~ProtMask) != 0 ? $"unknown prot bits 0x{(uint)prot & ~ProtMask:x}" : null;

    private static string? OpError(in DmaOp op) =>
        !Enum.IsDefined(op.Kind) ? $"operation {op.Id} has unknown kind {(int)op.Kind}"
        : ProtError(op.Prot) is { } protError ? $"operation {op.Id}: {protError}"
        : null;
}
