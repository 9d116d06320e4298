namespace PtActors.Engine;

/// <summary>The 6.19 iommu core wrappers (drivers/iommu/iommu.c) over the page-table ops.</summary>
public abstract partial class IommuDomain
{
    private IotlbGather? _unmapGather;

    /// <summary>
    /// iommu_pgsize: the page size for the next chunk of [iova, iova+size) and how many of them to map,
    /// stopping early at the boundary where a bigger page size becomes possible.
    /// </summary>
    public static ulong Pgsize(ulong bitmap, ulong iova, ulong paddr, ulong size, out ulong count)
    {
        ulong addrMerge = iova | paddr;
        ulong pgsizes = bitmap & Log2.GenMask(Log2.Fls(size) - 1, 0);
        if (addrMerge != 0)
            pgsizes &= Log2.GenMask(Log2.Ffs(addrMerge), 0);
        if (pgsizes == 0)
            throw new InvalidOperationException(
                $"iommu_pgsize: no page size of 0x{bitmap:x} fits iova 0x{iova:x} paddr 0x{paddr:x} size 0x{size:x}.");
        int idx = Log2.Fls(pgsizes) - 1;
        ulong pgsize = 1UL << idx;
        ulong next = bitmap & ~Log2.GenMask(idx, 0);
        if (next != 0)
        {
            ulong pgsizeNext = 1UL << Log2.Ffs(next);
            if (((iova ^ paddr) & (pgsizeNext - 1)) == 0)
            {
                ulong offset = pgsizeNext - (addrMerge & (pgsizeNext - 1));
                ulong sizeNext = offset + pgsizeNext;
                if (sizeNext >= offset && sizeNext <= size)
                    size = offset;
            }
        }
        count = size >> idx;
        return pgsize;
    }

    /// <summary>
    /// iommu_map: alignment to the smallest page size is checked first (EINVAL); the range is chunked by
    /// <see cref="Pgsize"/>, one map_pages per chunk; on an error exactly what this call mapped is unmapped.
    /// </summary>
    public Errno IommuMap(ulong iova, ulong paddr, ulong size, IommuProt prot)
    {
        ulong bitmap = PgsizeBitmap;
        if (bitmap == 0)
            return Errno.ENODEV;
        ulong min = 1UL << Log2.Ffs(bitmap);
        if (((iova | paddr | size) & (min - 1)) != 0)
            return Errno.EINVAL;

        ulong origIova = iova, origSize = size;
        var err = Errno.None;
        while (size != 0)
        {
            ulong pgsize = Pgsize(bitmap, iova, paddr, size, out ulong count);
            ulong mapped = 0;
            err = MapPages(iova, paddr, pgsize, count, prot, ref mapped);
            size -= mapped;
            if (err != Errno.None)
                break;
            iova += mapped;
            paddr += mapped;
        }
        if (err != Errno.None)
            IommuUnmap(origIova, origSize - size);
        return err;
    }

    /// <summary>
    /// __iommu_unmap (iommu_unmap_fast): unmap_pages in chunks into <paramref name="gather"/>, stopping at
    /// the first call that unmaps nothing. Returns the bytes unmapped (may exceed <paramref name="size"/>).
    /// </summary>
    public ulong IommuUnmapFast(ulong iova, ulong size, IotlbGather gather)
    {
        ulong bitmap = PgsizeBitmap;
        if (bitmap == 0)
            return 0;
        ulong min = 1UL << Log2.Ffs(bitmap);
        if (((iova | size) & (min - 1)) != 0)
            return 0;
        ulong unmapped = 0;
        while (unmapped < size)
        {
            ulong pgsize = Pgsize(bitmap, iova, iova, size - unmapped, out ulong count);
            ulong done = UnmapPages(iova, pgsize, count, gather);
            if (done == 0)
                break;
            iova += done;
            unmapped += done;
        }
        return unmapped;
    }

    /// <summary>iommu_unmap: <see cref="IommuUnmapFast"/> into a gather of its own, then synced.</summary>
    public ulong IommuUnmap(ulong iova, ulong size)
    {
        var gather = _unmapGather ??= new IotlbGather();
        gather.Init();
        ulong unmapped = IommuUnmapFast(iova, size, gather);
        IotlbSync(gather);
        return unmapped;
    }

    /// <summary>
    /// iommu_iova_to_phys as the kernel returns it: 0 when nothing maps <paramref name="iova"/>, and the
    /// negative errno cast to an address when it lies outside the table (the quirk of make_range errors).
    /// </summary>
    public ulong IommuIovaToPhys(ulong iova)
    {
        var err = TryIovaToPhys(iova, out ulong pa);
        return err switch
        {
            Errno.None => pa,
            Errno.ENOENT => 0,
            _ => unchecked((ulong)-(long)err),
        };
    }
}
