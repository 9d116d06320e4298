namespace PtActors.Engine.Dma;

/// <summary>What a device asks of a domain's DMA API.</summary>
public enum DmaOpKind : byte
{
    /// <summary>dma_map: allocate an IOVA for <c>Size</c> bytes and map it to <c>Paddr</c>.</summary>
    DmaMap = 1,
    /// <summary>Map at an IOVA the caller chose (iommufd style).</summary>
    Map = 2,
    /// <summary>Unmap [<c>Iova</c>, +<c>Size</c>); the IOVA returns to the allocator after the flush.</summary>
    Unmap = 3,
    /// <summary>read_and_clear_dirty over [<c>Iova</c>, +<c>Size</c>) (a shared lock).</summary>
    ReadDirty = 4,
}

/// <summary>
/// One operation as a device submits it, stamped (simulated time, id): every actor handles a window's inputs in
/// stamp order, which is what makes a run reproducible whatever the thread timing. <c>Id</c> is unique in a run
/// (device index in the high bits, the device's sequence number in the low).
/// </summary>
/// <para>Auto layout: the runtime packs the fields (48 bytes instead of 56 in declaration order); nothing depends on
/// the layout, and a run keeps millions of these (the in-memory journal holds every one).</para>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Auto)]
public readonly record struct DmaOp(ulong StampNs, long Id, DmaOpKind Kind, ulong Iova, ulong Paddr, ulong Size, IommuProt Prot)
    : IComparable<DmaOp>
{
    /// <summary>The id of the <paramref name="seq"/>-th operation of device <paramref name="device"/>.</summary>
    public static long MakeId(int device, uint seq) => ((long)device << 32) | seq;

    /// <summary>The device that submitted it.</summary>
    public int Device => (int)(Id >> 32);

    /// <summary>Stamp order: time, then id.</summary>
    public int CompareTo(DmaOp other)
    {
        int c = StampNs.CompareTo(other.StampNs);
        return c != 0 ? c : Id.CompareTo(other.Id);
    }
}

/// <summary>
/// What an operation did, as replied to the device and recorded in the journal: the error (or none), the IOVA
/// (chosen by the allocator for <see cref="DmaOpKind.DmaMap"/>), the bytes mapped or unmapped, how long it
/// waited for its range lock in simulated nanoseconds, and which kind of operation it answers (0 when the
/// answer does not say).
/// </summary>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Auto)]
public readonly record struct DmaOpResult(long Id, Errno Error, ulong Iova, ulong Bytes, ulong LockWaitNs, DmaOpKind Kind = 0);
