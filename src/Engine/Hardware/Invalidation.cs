namespace PtActors.Engine.Hardware;

/// <summary>How an IOMMU turns a flushed IOVA range into page-selective invalidation commands.</summary>
public enum InvalidationFlavor
{
    /// <summary>AMD INVALIDATE_IOMMU_PAGES via build_inv_address: a block that differs above bit 51 invalidates everything.</summary>
    Amd,
    /// <summary>VT-d PSI via calculate_psi_aligned_address: a block above the maximum address mask becomes domain-selective.</summary>
    Vtd,
    /// <summary>
    /// A deliberately broken AMD encoding, as build_inv_address was before its fix: the block is one bit too
    /// small whenever the start is not aligned, so part of the range is never invalidated.
    /// </summary>
    AmdOneBitShort,
}

/// <summary>The kinds of invalidation command.</summary>
public enum InvalidationKind : byte
{
    /// <summary>Page-selective: one naturally aligned block of one domain.</summary>
    PageSelective,
    /// <summary>Every entry of one domain.</summary>
    Domain,
    /// <summary>Every entry of every domain.</summary>
    Global,
}

/// <summary>One invalidation command: the kind and, for page-selective, the block [Start, Last].</summary>
public readonly record struct InvalidationCommand(InvalidationKind Kind, int DomainId, ulong Start, ulong Last);

/// <summary>The address arithmetic of the drivers' page-selective invalidations.</summary>
public static class InvalidationBlocks
{
    /// <summary>
    /// The command that invalidates [<paramref name="start"/>, <paramref name="last"/>] in one domain: the
    /// smallest naturally aligned power-of-two block of at least 4 KiB containing the range, or the flavour's
    /// fallback (AMD: invalidate all when bit 51 or above differs; VT-d: domain-selective when the block's
    /// address mask exceeds <paramref name="vtdMaxAddressMask"/>).
    /// </summary>
    public static InvalidationCommand ForRange(InvalidationFlavor flavor, int domainId, ulong start, ulong last, int vtdMaxAddressMask = 57)
    {
        ulong startPage = start & ~0xfffUL;
        ulong lastPage = last & ~0xfffUL;
        if (startPage == lastPage)
            return new(InvalidationKind.PageSelective, domainId, startPage, startPage | 0xfff);

        int msbDiff = Log2.Fls(last ^ start) - 1;
        switch (flavor)
        {
            case InvalidationFlavor.Amd:
            case InvalidationFlavor.AmdOneBitShort:
            {
                if (msbDiff > 51)
                    return new(InvalidationKind.Domain, domainId, 0, ulong.MaxValue);
                // The block size is encoded by the lowest zero bit from bit 12 up (S bit set).
                ulong encoded = flavor == InvalidationFlavor.Amd
                    ? start | ((1UL << msbDiff) - 1)
                    : start | (1UL << (msbDiff - 1));
                encoded &= ~0xfffUL;
                int zero = Log2.Ffz(encoded >> 12) + 12;
                int sizeLg2 = zero + 1;
                ulong blockStart = Log2.SetMod(encoded, 0, sizeLg2);
                return new(InvalidationKind.PageSelective, domainId, blockStart, blockStart + Log2.ToMaxInt(sizeLg2));
            }
            default:
            {
                ulong pfn = start >> 12, endPfn = last >> 12;
                ulong pages = endPfn - pfn + 1;
                int mask = Log2.Fls(pages - 1);              // ilog2(roundup_pow_of_two(pages))
                ulong bitmask = Log2.ToMaxInt(mask);
                if ((bitmask & pfn) != 0)
                {
                    ulong shared = ~(pfn ^ endPfn) & ~bitmask;
                    mask = shared != 0 ? Log2.Ffs(shared) : 52;
                }
                if (mask > vtdMaxAddressMask)
                    return new(InvalidationKind.Domain, domainId, 0, ulong.MaxValue);
                int sizeLg2 = 12 + mask;
                ulong blockStart = Log2.SetMod(start, 0, sizeLg2);
                return new(InvalidationKind.PageSelective, domainId, blockStart, blockStart + Log2.ToMaxInt(sizeLg2));
            }
        }
    }
}
