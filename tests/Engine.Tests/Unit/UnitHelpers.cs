using PtActors.Engine.Formats;
using Xunit;

namespace PtActors.Engine.Tests.Unit;

/// <summary>Small helpers shared by the unit tests (no engine logic is re-implemented here).</summary>
internal static class UnitHelpers
{
    public const IommuProt RW = IommuProt.Read | IommuProt.Write;

    /// <summary>Creates a domain that must succeed.</summary>
    public static IommuDomain Make(PtConfig cfg, TableMemory? memory = null)
    {
        var err = IommuDomain.Create(cfg, memory ?? new TableMemory(), out var d);
        Assert.Equal(Errno.None, err);
        Assert.NotNull(d);
        return d!;
    }

    /// <summary>The default cfg of a format (a script's <c>domain</c> line without options).</summary>
    public static IommuDomain Make(PtFormatKind kind, TableMemory? memory = null)
        => Make(PtConfig.Default(kind), memory);

    /// <summary>Every present leaf entry: (VA, size lg2, first item).</summary>
    public static List<(ulong Va, int Lg2, ulong Pte)> Leaves(IommuDomain d)
    {
        var list = new List<(ulong, int, ulong)>();
        d.ForEachLeaf((va, lg2, pte) => list.Add((va, lg2, pte)));
        return list;
    }

    /// <summary>Leaf entries as (VA, size) only.</summary>
    public static List<(ulong Va, ulong Size)> LeafSizes(IommuDomain d)
        => Leaves(d).Select(l => (l.Va, 1UL << l.Lg2)).ToList();

    /// <summary>
    /// Walks the table items by hand (format decode only) down to <paramref name="level"/> and returns the
    /// table page holding the item that translates <paramref name="va"/> and its index; null when a
    /// non-table item is met above that level.
    /// </summary>
    public static (ulong[] Table, int Index)? ItemAt(IommuDomain d, ulong va, int level)
    {
        var ops = d.FormatOps;
        int lvl = d.TopLevel;
        int page = d.TopPage;
        while (true)
        {
            int isz = PtGeometry.ItemLg2(lvl);
            int index;
            if (lvl == d.TopLevel)
            {
                int max = d.TopRangeVaszLg2;
                ulong mod = max >= 64 ? va : va & ((1UL << max) - 1);
                index = (int)(mod >> isz);
            }
            else
            {
                index = (int)((va >> isz) & 511);
            }
            var table = d.Memory[page];
            if (lvl == level)
                return (table, index);
            ulong pte = table[index];
            if (ops.Load(pte, lvl) != PtEntryType.Table)
                return null;
            page = d.Memory.PaToPage(ops.TablePa(pte));
            lvl--;
        }
    }

    /// <summary>Records dirty runs and merges them as the script output does (union, touching runs merged).</summary>
    public sealed class DirtyRuns : IDirtySink
    {
        public List<(ulong Iova, ulong Length)> Raw { get; } = new();

        public void Set(ulong iova, ulong length) => Raw.Add((iova, length));

        /// <summary>The union as inclusive (start, end) runs.</summary>
        public List<(ulong Start, ulong End)> Runs()
        {
            var sorted = Raw.Select(r => (Start: r.Iova, End: r.Iova + r.Length - 1)).OrderBy(r => r.Start).ToList();
            var merged = new List<(ulong Start, ulong End)>();
            foreach (var r in sorted)
            {
                if (merged.Count > 0 && merged[^1].End != ulong.MaxValue && r.Start <= merged[^1].End + 1)
                {
                    var last = merged[^1];
                    merged[^1] = (last.Start, Math.Max(last.End, r.End));
                }
                else
                {
                    merged.Add(r);
                }
            }
            return merged;
        }
    }
}
