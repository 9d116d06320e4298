namespace PtActors.Engine;

/// <summary>pt_compute_best_pgsize (pt_iter.h).</summary>
public static class BestPgsize
{
    /// <summary>
    /// The lg2 of the largest size in <paramref name="bitmap"/> that <paramref name="va"/> and <paramref name="oa"/>
    /// are aligned to and that fits in [va, last]; 0 when none does (or va &gt;= last).
    /// </summary>
    public static int Compute(ulong bitmap, ulong va, ulong last, ulong oa)
    {
        if (va >= last)
            return 0;
        ulong len = last - va + 1;
        ulong mask = va | oa | (len == 0 ? 1UL << 63 : 1UL << (Log2.Fls(len) - 1));
        int best = Log2.Ffs(mask);
        if (best < 63)
            bitmap = Log2.Mod(bitmap, best + 1);
        int p = Log2.Fls(bitmap);
        return p == 0 ? 0 : p - 1;
    }
}
