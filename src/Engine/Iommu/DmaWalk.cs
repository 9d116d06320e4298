using System.Runtime.CompilerServices;

namespace PtActors.Engine;

/// <summary>The tables a hardware walk read, top first: (level, page) pairs.</summary>
[InlineArray(8)]
public struct WalkPath
{
    private int _element0;
}

/// <summary>
/// A page walk as the IOMMU does it for a DMA: it reads the PTEs from the table pages, starting at the top
/// or at a table a walk cache supplied, and reports the leaf (or the hole) and every table it read.
/// </summary>
public struct DmaWalk
{
    /// <summary>The IOVA translated.</summary>
    public ulong Va;
    /// <summary>Level to start at; negative starts at the top.</summary>
    public int StartLevel;
    /// <summary>Page of the table to start at (with <see cref="StartLevel"/>).</summary>
    public int StartPage;

    /// <summary>Oa when a leaf translates <see cref="Va"/>; Empty for a hole or a VA outside the table.</summary>
    public PtEntryType Result;
    /// <summary>VA of the leaf entry (aligned to its size).</summary>
    public ulong EntryVa;
    /// <summary>log2 of the leaf entry's size.</summary>
    public int SizeLg2;
    /// <summary>OA of the leaf entry's start.</summary>
    public ulong EntryOa;
    /// <summary>Leaf permissions.</summary>
    public IommuProt Perms;
    /// <summary>Page and index of the item that translated <see cref="Va"/>.</summary>
    public int LeafPage, LeafIndex;
    /// <summary>Levels of the tables read, in order.</summary>
    public WalkPath Levels;
    /// <summary>Pages of the tables read, in order.</summary>
    public WalkPath Pages;
    /// <summary>How many tables were read.</summary>
    public int Depth;

    /// <summary>The full translated address (offset included).</summary>
    public readonly ulong Pa => EntryOa | Log2.Mod(Va, SizeLg2);
}
