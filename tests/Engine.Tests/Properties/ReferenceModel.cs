using System.Numerics;
using PtActors.Engine;

namespace PtActors.Engine.Tests.Properties;

/// <summary>How a domain's VA range is laid out (SPEC §1.7, §1.11, SCRIPT-FORMAT Readings 5, 7, 8).</summary>
public enum VaLayout
{
    /// <summary>One range 0 .. 2^vasz - 1 (vtdss).</summary>
    Fixed,

    /// <summary>PT_FEAT_SIGN_EXTEND: the lower and the upper half of a vasz-bit space (x86_64, riscv64).</summary>
    SignExtend,

    /// <summary>amdv1: PT_FEAT_DYNAMIC_TOP, the top grows in map from the starting level up to level 5 (64 bits).</summary>
    AmdDynamic,
}

/// <summary>What the reference model needs to know about a domain, written down from the spec (not read from the engine).</summary>
/// <param name="Name">For messages.</param>
/// <param name="PgsizeBitmap">domain.pgsize_bitmap as SCRIPT-FORMAT Reading 4 gives it.</param>
/// <param name="Layout">The VA layout.</param>
/// <param name="VaszLg2">Fixed/SignExtend: max_vasz_lg2 (including the sign bit). AmdDynamic: 64.</param>
/// <param name="OaszLg2">max_oasz_lg2 (map_pages returns ERANGE for a paddr at or above 2^oasz).</param>
/// <param name="StartTopLevel">AmdDynamic: the starting level (top range 21 + 9 * level bits below level 5).</param>
public sealed record ModelSpec(string Name, ulong PgsizeBitmap, VaLayout Layout, int VaszLg2, int OaszLg2, int StartTopLevel = 0);

/// <summary>One installed leaf entry (a contiguous entry counts as one leaf of its full size).</summary>
public readonly record struct ModelLeaf(ulong Va, ulong Size, ulong Pa)
{
    /// <summary>Last byte of VA the leaf translates (never wraps).</summary>
    public ulong Last => Va + (Size - 1);

    public override string ToString() => $"[0x{Va:x} size 0x{Size:x} -> 0x{Pa:x}]";
}

/// <summary>Thrown when the model meets a case it was not written to predict (a generator bug, not an engine bug).</summary>
public sealed class ModelException : Exception
{
    public ModelException(string message) : base(message) { }
}

/// <summary>
/// An independent reference model of one iommupt domain behind the 6.19 iommu core (SPEC §2.0-§2.3), written from
/// the spec: the installed leaves are a sorted list va → (size, pa); there are no tables. The only other state is
/// the amdv1 top level, which decides which VAs unmap and iova_to_phys may touch (SCRIPT-FORMAT Reading 5).
/// </summary>
public sealed class ReferenceModel
{
    private readonly List<ModelLeaf> _leaves = [];
    private readonly ulong _minPage;

    public ReferenceModel(ModelSpec spec)
    {
        Spec = spec;
        if (spec.PgsizeBitmap == 0)
            throw new ModelException("Empty page size bitmap.");
        _minPage = LowestBit(spec.PgsizeBitmap);
        TopLevel = spec.Layout == VaLayout.AmdDynamic ? spec.StartTopLevel : -1;
    }

    public ModelSpec Spec { get; }

    /// <summary>amdv1: the current top level (grows in map only). -1 for the fixed layouts.</summary>
    public int TopLevel { get; private set; }

    /// <summary>The installed leaves in VA order.</summary>
    public IReadOnlyList<ModelLeaf> Leaves => _leaves;

    // ------------------------------------------------------------------------------------------------------------
    // Bit helpers (pt_log2.h semantics, written out here so that the model shares no code with the engine).

    private static ulong LowestBit(ulong x) => x & (~x + 1);

    /// <summary>fls: 1-based index of the highest set bit, 0 for 0.</summary>
    private static int Fls(ulong x) => 64 - BitOperations.LeadingZeroCount(x);

    /// <summary>__ffs: 0-based index of the lowest set bit (x != 0).</summary>
    private static int Ffs(ulong x) => BitOperations.TrailingZeroCount(x);

    /// <summary>GENMASK(h, 0): bits 0..h, h in 0..63.</summary>
    private static ulong MaskThrough(int h) => h >= 63 ? ulong.MaxValue : (1UL << (h + 1)) - 1;

    /// <summary>a &gt;&gt; b with b == 64 giving 0 (fvalog2_div).</summary>
    private static ulong Shr(ulong a, int b) => b >= 64 ? 0 : a >> b;

    // ------------------------------------------------------------------------------------------------------------
    // iommu core and pt_iter helpers, from SPEC §2.0 and §1.8.

    /// <summary>iommu_pgsize (SPEC §2.0), literally.</summary>
    public static ulong CorePgsize(ulong bitmap, ulong iova, ulong paddr, ulong size, out ulong count)
    {
        ulong addrMerge = iova | paddr;
        ulong pgsizes = bitmap & MaskThrough(Fls(size) - 1);
        if (addrMerge != 0)
            pgsizes &= MaskThrough(Ffs(addrMerge));
        if (pgsizes == 0)
            throw new ModelException($"iommu_pgsize BUG: bitmap 0x{bitmap:x} iova 0x{iova:x} paddr 0x{paddr:x} size 0x{size:x}");
        int idx = Fls(pgsizes) - 1;
        ulong pgsize = 1UL << idx;
        ulong next = bitmap & ~MaskThrough(idx);
        if (next != 0)
        {
            ulong pgsizeNext = LowestBit(next);
            if (((iova ^ paddr) & (pgsizeNext - 1)) == 0)
            {
                ulong offset = pgsizeNext - (addrMerge & (pgsizeNext - 1));
                bool overflow = offset > ulong.MaxValue - pgsizeNext;
                if (!overflow && offset + pgsizeNext <= size)
                    size = offset;
            }
        }
        count = size >> idx;
        return pgsize;
    }

    /// <summary>pt_compute_best_pgsize (SPEC §1.8): lg2 of the leaf size map_pages uses for the whole call, 0 = none.</summary>
    public static int BestPgsizeLg2(ulong bitmap, ulong va, ulong lastVa, ulong oa)
    {
        if (va >= lastVa)
            return 0;
        ulong len = lastVa - va + 1;
        if (len == 0)
            throw new ModelException("best_pgsize over the whole 64-bit space is not modelled.");
        ulong mask = va | oa | (1UL << (Fls(len) - 1));
        int best = Ffs(mask);
        if (best < 63)
            bitmap &= (1UL << (best + 1)) - 1;
        int p = Fls(bitmap);
        return p == 0 ? 0 : p - 1;
    }

    /// <summary>
    /// The greedy rule: repeatedly take the largest page size of the bitmap that the current va and pa are both aligned
    /// to and that fits in the remaining length. <paramref name="limit"/> stops early (returns false) after that many leaves.
    /// </summary>
    public static bool GreedyLeaves(ulong bitmap, ulong va, ulong pa, ulong size, List<ModelLeaf>? into, int limit, out int count)
    {
        count = 0;
        while (size != 0)
        {
            ulong chosen = 0;
            for (int b = 63; b >= 0; b--)
            {
                ulong s = 1UL << b;
                if ((bitmap & s) == 0 || s > size || (va & (s - 1)) != 0 || (pa & (s - 1)) != 0)
                    continue;
                chosen = s;
                break;
            }
            if (chosen == 0)
                throw new ModelException($"greedy: nothing fits at va 0x{va:x} pa 0x{pa:x} remaining 0x{size:x}");
            if (++count > limit)
                return false;
            into?.Add(new ModelLeaf(va, chosen, pa));
            va += chosen;
            pa += chosen;
            size -= chosen;
        }
        return true;
    }

    /// <summary>max_vasz_lg2 of the current top range.</summary>
    private int TopRangeBits => Spec.Layout == VaLayout.AmdDynamic ? AmdRangeBits(TopLevel) : Spec.VaszLg2;

    /// <summary>amdv1 with DYNAMIC_TOP: a top below level 5 spans num_items_lg2 + item_lg2sz = 21 + 9·level bits; level 5 all 64.</summary>
    private static int AmdRangeBits(int level) => level >= 5 ? 64 : 21 + (9 * level);

    /// <summary>pt_check_range (SPEC §1.7), literally, against a top range of <paramref name="bits"/> bits.</summary>
    private bool CheckRange(ulong va, ulong last, int bits)
    {
        ulong prefix = 0;
        if (Spec.Layout == VaLayout.SignExtend)
            prefix = Shr(va, bits - 1) != 0 ? ulong.MaxValue : 0;
        return Shr(va, bits) == Shr(prefix, bits) && Shr(last, bits) == Shr(prefix, bits);
    }

    /// <summary>
    /// True when a range that passes the literal check walks a table slot other than its own VA: the sign-extension
    /// quirks (a lower-half range whose last byte lies in [2^(n-1), 2^n), or a start in [2^64-2^n, 2^64-2^(n-1))).
    /// The model does not follow such aliases; the generator never produces them.
    /// </summary>
    private bool IsAliasing(ulong va, ulong last, int bits)
    {
        if (Spec.Layout != VaLayout.SignExtend || !CheckRange(va, last, bits))
            return false;
        ulong half = 1UL << (bits - 1);
        bool lower = last < half;
        bool upper = va >= 0UL - half;
        return !lower && !upper;
    }

    /// <summary>The check make_range does for unmap and iova_to_phys at the current top; throws on an alias.</summary>
    private bool InRange(ulong va, ulong last)
    {
        int bits = TopRangeBits;
        if (IsAliasing(va, last, bits))
            throw new ModelException($"{Spec.Name}: range 0x{va:x}..0x{last:x} aliases through the sign-extension quirk");
        return CheckRange(va, last, bits);
    }

    /// <summary>
    /// Whether the model predicts an op on [iova, iova+size) of this layout exactly: no 64-bit wrap, and for
    /// sign-extended tables no chunk that could alias (the whole range inside one canonical half, or starting in the
    /// non-canonical hole where the very first chunk already fails the check).
    /// </summary>
    public static bool IsPredictable(ModelSpec spec, ulong iova, ulong size)
    {
        if (size == 0)
            return true;
        if (size - 1 > ulong.MaxValue - iova)
            return false;
        if (spec.Layout != VaLayout.SignExtend)
            return true;
        ulong last = iova + (size - 1);
        ulong half = 1UL << (spec.VaszLg2 - 1);
        if (iova < half)
            return last < half;
        if (iova >= 0UL - half)
            return true;
        // Non-canonical start: fails the check unless it sits in the upper alias window [2^64-2^n, 2^64-2^(n-1)).
        ulong window = 0UL - (half << 1);
        return iova < window;
    }

    // ------------------------------------------------------------------------------------------------------------
    // Leaf store.

    /// <summary>Index of the last leaf whose Va ≤ <paramref name="va"/>, or -1.</summary>
    private int FloorIndex(ulong va)
    {
        int lo = 0, hi = _leaves.Count - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_leaves[mid].Va <= va)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }
        return found;
    }

    /// <summary>Index of the leaf translating <paramref name="va"/>, or -1.</summary>
    private int ContainingIndex(ulong va)
    {
        int i = FloorIndex(va);
        return i >= 0 && va - _leaves[i].Va < _leaves[i].Size ? i : -1;
    }

    /// <summary>True when an installed leaf overlaps [va, last].</summary>
    private bool Overlaps(ulong va, ulong last)
    {
        int i = FloorIndex(last);
        return i >= 0 && _leaves[i].Last >= va;
    }

    private void Insert(ModelLeaf leaf)
    {
        int i = FloorIndex(leaf.Va) + 1;
        _leaves.Insert(i, leaf);
    }

    private void Remove(ModelLeaf leaf)
    {
        int i = FloorIndex(leaf.Va);
        if (i < 0 || _leaves[i] != leaf)
            throw new ModelException($"unroll: leaf {leaf} is not installed");
        _leaves.RemoveAt(i);
    }

    // ------------------------------------------------------------------------------------------------------------
    // Operations.

    /// <summary>
    /// iommu_map (SPEC §2.0 + §2.1): EINVAL if unaligned to the smallest page; size 0 is ok; chunked by iommu_pgsize,
    /// one map_pages per chunk with one leaf size (pt_compute_best_pgsize); a chunk fails with ERANGE out of range
    /// (amdv1 grows its top instead, and stays grown), EADDRINUSE if any leaf overlaps it; on failure the core unrolls
    /// all that this call installed. Also checks that the leaves equal the greedy rule.
    /// </summary>
    public Errno Map(ulong iova, ulong pa, ulong size)
    {
        ulong bitmap = Spec.PgsizeBitmap;
        if (((iova | pa | size) & (_minPage - 1)) != 0)
            return Errno.EINVAL;
        if (size == 0)
            return Errno.None;
        if (!IsPredictable(Spec, iova, size))
            throw new ModelException($"{Spec.Name}: map 0x{iova:x} size 0x{size:x} is outside what the model predicts");

        var added = new List<ModelLeaf>();
        ulong cur = iova, curPa = pa, rem = size;
        var err = Errno.None;
        while (rem != 0)
        {
            ulong pgsize = CorePgsize(bitmap, cur, curPa, rem, out ulong count);
            ulong len = pgsize * count;
            err = MapPages(cur, curPa, len, pgsize, added);
            if (err != Errno.None)
                break;
            cur += len;
            curPa += len;
            rem -= len;
        }
        if (err != Errno.None)
        {
            foreach (var leaf in added)
                Remove(leaf);
            return err;
        }

        var greedy = new List<ModelLeaf>();
        GreedyLeaves(bitmap, iova, pa, size, greedy, int.MaxValue, out _);
        if (!greedy.SequenceEqual(added))
            throw new ModelException(
                $"{Spec.Name}: greedy rule != iommu_pgsize+best_pgsize for map 0x{iova:x} 0x{pa:x} 0x{size:x}: " +
                $"greedy {string.Join(" ", greedy)} core {string.Join(" ", added)}");
        return Errno.None;
    }

    /// <summary>One map_pages call of <paramref name="len"/> bytes; installs into the store and <paramref name="added"/>.</summary>
    private Errno MapPages(ulong va, ulong pa, ulong len, ulong pgsize, List<ModelLeaf> added)
    {
        if (Spec.OaszLg2 < 64 && Shr(pa, Spec.OaszLg2) != 0)
            return Errno.ERANGE;
        if (len - 1 > ulong.MaxValue - va)
            return Errno.EOVERFLOW;
        ulong last = va + (len - 1);
        int leafLg2;
        if (len == 1UL << 12 && pgsize == len)
            leafLg2 = 12; // the single 4 KiB page fast path
        else
            leafLg2 = BestPgsizeLg2(Spec.PgsizeBitmap, va, last, pa);
        if (leafLg2 == 0)
            return Errno.ENXIO;
        if (1UL << leafLg2 != pgsize)
            throw new ModelException(
                $"{Spec.Name}: best_pgsize 2^{leafLg2} differs from iommu_pgsize 0x{pgsize:x} at va 0x{va:x} pa 0x{pa:x} len 0x{len:x}");

        // check_map_range
        if (Spec.Layout == VaLayout.AmdDynamic)
        {
            int leafLevel = (leafLg2 - 12) / 9;
            int level = TopLevel;
            while (!(CheckRange(va, last, AmdRangeBits(level)) && leafLevel <= level))
            {
                level++;
                if (level > 5 || 12 + (9 * level) >= Spec.VaszLg2)
                    return Errno.ERANGE; // cannot grow (not reached with vasz 64)
            }
            TopLevel = level; // growth stays even if the map fails later
        }
        else if (!InRange(va, last))
        {
            return Errno.ERANGE;
        }

        // do_map: leaves in VA order; the first one that meets an existing leaf fails the call with EADDRINUSE.
        ulong size = 1UL << leafLg2;
        for (ulong off = 0; off < len; off += size)
        {
            if (Overlaps(va + off, va + off + (size - 1)))
                return Errno.EADDRINUSE;
            var leaf = new ModelLeaf(va + off, size, pa + off);
            Insert(leaf);
            added.Add(leaf);
        }
        return Errno.None;
    }

    /// <summary>
    /// iommu_unmap (SPEC §2.0 __iommu_unmap + §2.2 unmap_pages): 0 if size is 0 or unaligned; otherwise chunk with
    /// iommu_pgsize(iova, iova, size - unmapped) and walk each chunk; stop at the first chunk that removes nothing.
    /// </summary>
    public ulong Unmap(ulong iova, ulong size)
    {
        if (size == 0 || ((iova | size) & (_minPage - 1)) != 0)
            return 0;
        ulong unmapped = 0;
        while (unmapped < size)
        {
            ulong pgsize = CorePgsize(Spec.PgsizeBitmap, iova, iova, size - unmapped, out ulong count);
            ulong u = UnmapPages(iova, pgsize * count);
            if (u == 0)
                break;
            iova += u;
            unmapped += u;
        }
        return unmapped;
    }

    /// <summary>
    /// unmap_pages over [iova, iova+len): 0 on a range error or when iova is inside a leaf; otherwise removes the
    /// leaves met in VA order from iova, each whole (even past the end), until a hole or until past the last byte.
    /// </summary>
    private ulong UnmapPages(ulong iova, ulong len)
    {
        if (len == 0 || len - 1 > ulong.MaxValue - iova)
            return 0;
        ulong last = iova + (len - 1);
        if (!InRange(iova, last))
            return 0;
        int i = ContainingIndex(iova);
        if (i < 0 || _leaves[i].Va != iova)
            return 0; // a hole at the start, or a start in the middle of a leaf entry
        ulong removed = 0, cur = iova;
        while (i < _leaves.Count && _leaves[i].Va == cur)
        {
            var leaf = _leaves[i];
            _leaves.RemoveAt(i);
            removed += leaf.Size;
            if (leaf.Last >= last)
                break;
            cur = leaf.Last + 1;
        }
        return removed;
    }

    /// <summary>iova_to_phys (SPEC §2.3): ERANGE outside the current top range, ENOENT on a hole, else pa + offset.</summary>
    public Errno Phys(ulong va, out ulong pa)
    {
        pa = 0;
        if (!InRange(va, va))
            return Errno.ERANGE;
        int i = ContainingIndex(va);
        if (i < 0)
            return Errno.ENOENT;
        pa = _leaves[i].Pa + (va - _leaves[i].Va);
        return Errno.None;
    }
}
