namespace PtActors.Engine.Formats;

/// <summary>
/// pt_entry_is_write_dirty / pt_entry_make_write_clean / pt_entry_make_write_dirty for every format that
/// tracks dirty bits in its items: a contiguous entry is dirty when any of its items is; cleaning clears them
/// all; a device write sets the bit of the one item it hit (a compare-and-swap against the entry last read).
/// </summary>
internal static class PtDirty<TFmt> where TFmt : struct, IPtFormat
{
    /// <summary>True when any item of the entry containing <paramref name="index"/> is dirty.</summary>
    public static bool IsWriteDirty(ulong[] table, int index, int level)
    {
        int n = TFmt.NumContigLg2(table[index], level);
        int start = index & ~((1 << n) - 1);
        ulong d = TFmt.DirtyBit;
        for (int i = start; i < start + (1 << n); i++)
        {
            if ((Volatile.Read(ref table[i]) & d) != 0)
                return true;
        }
        return false;
    }

    /// <summary>Clears the dirty bit of every item of the entry containing <paramref name="index"/>.</summary>
    public static void MakeWriteClean(ulong[] table, int index, int level)
    {
        int n = TFmt.NumContigLg2(table[index], level);
        int start = index & ~((1 << n) - 1);
        ulong clean = ~TFmt.DirtyBit;
        for (int i = start; i < start + (1 << n); i++)
            table[i] &= clean;
    }

    /// <summary>Sets the dirty bit of item <paramref name="index"/> if it still holds <paramref name="expected"/>.</summary>
    public static bool MakeWriteDirty(ulong[] table, int index, ulong expected)
        => Interlocked.CompareExchange(ref table[index], expected | TFmt.DirtyBit, expected) == expected;
}
