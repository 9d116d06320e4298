using System.Runtime.CompilerServices;

namespace PtActors.Engine.Formats;

/// <summary>Geometry shared by every merged format: 4 KiB granule, 4 KiB table pages of 512 u64 items.</summary>
public static class PtGeometry
{
    /// <summary>PT_GRANULE_LG2SZ.</summary>
    public const int GranuleLg2 = 12;

    /// <summary>pt_num_items_lg2 of every non-top table.</summary>
    public const int NumItemsLg2 = 9;

    /// <summary>Items in a table page.</summary>
    public const int NumItems = 1 << NumItemsLg2;

    /// <summary>pt_table_item_lg2sz: bytes of VA one item of <paramref name="level"/> translates, as log2.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int ItemLg2(int level) => GranuleLg2 + NumItemsLg2 * level;

    /// <summary>pt_pgsz_lg2_to_level: the level whose single-item size is at or below the page size.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int PgszLg2ToLevel(int pgszLg2) => (pgszLg2 - GranuleLg2) / NumItemsLg2;

    /// <summary>pt_can_have_table.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool CanHaveTable(int level) => level > 0;
}
