using System.Numerics;
using System.Runtime.CompilerServices;

namespace PtActors.Engine;

/// <summary>
/// The physical memory that holds table pages: 4 KiB pages of 512 64-bit items, each with a physical
/// address <c>Base + index * 4096</c>. Allocation is deterministic (the lowest free page first), so the
/// same sequence of operations always lays the tables out at the same addresses whatever order pages
/// were freed in. Freeing a page that is not allocated is a bug in the caller and throws; pages still
/// allocated when a domain is torn down are a leak, visible in <see cref="AllocatedPages"/>.
/// A freed page keeps its contents until it is allocated again (then it is zeroed), as real memory does:
/// the hardware side reads them to detect use-after-free walks.
/// At most <see cref="PageLimit"/> pages are allocated at once (<see cref="DefaultPageLimit"/> unless set); past
/// it <see cref="Allocate"/> fails, as the kernel's table allocation does when memory runs out, and the page table
/// turns that into ENOMEM.
/// </summary>
public sealed class TableMemory
{
    /// <summary>Items per table page.</summary>
    public const int ItemsPerPage = 512;

    /// <summary>log2 of the table page size.</summary>
    public const int PageLg2 = 12;

    /// <summary>Default physical address of page 0 (4 GiB, clear of low memory).</summary>
    public const ulong DefaultBase = 0x1_0000_0000;

    /// <summary>Default <see cref="PageLimit"/>: 262144 pages, 1 GiB of 4 KiB table pages.</summary>
    public const int DefaultPageLimit = 262_144;

    private ulong[][] _pages = new ulong[16][];
    private byte[] _state = new byte[16];
    private ulong[] _freeBits = new ulong[1];
    private int _count;          // pages ever created
    private int _lowestFreeWord; // no free bit below this word
    private int _pageLimit;

    /// <summary>
    /// Creates an empty memory whose page 0 sits at <paramref name="baseAddress"/> and that holds at most
    /// <paramref name="pageLimit"/> pages at once.
    /// </summary>
    public TableMemory(ulong baseAddress = DefaultBase, int pageLimit = DefaultPageLimit)
    {
        if ((baseAddress & 0xfff) != 0)
            throw new ArgumentException("The base address must be 4 KiB aligned.", nameof(baseAddress));
        Base = baseAddress;
        PageLimit = pageLimit;
    }

    /// <summary>Physical address of page 0.</summary>
    public ulong Base { get; }

    /// <summary>
    /// At most this many pages may be allocated at once; beyond it allocation fails (ENOMEM). Lowering it below
    /// <see cref="AllocatedPages"/> frees nothing: only further allocations fail.
    /// </summary>
    public int PageLimit
    {
        get => _pageLimit;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value, nameof(PageLimit));
            _pageLimit = value;
        }
    }

    /// <summary>Pages allocated now.</summary>
    public int AllocatedPages { get; private set; }

    /// <summary>Most pages allocated at once.</summary>
    public int PeakPages { get; private set; }

    /// <summary>Pages ever created (allocated or free).</summary>
    public int TotalPages => _count;

    /// <summary>Allocations served so far.</summary>
    public long Allocations { get; private set; }

    /// <summary>Frees so far.</summary>
    public long Frees { get; private set; }

    /// <summary>Allocates a zeroed page; -1 when <see cref="PageLimit"/> is reached.</summary>
    public int Allocate()
    {
        if (AllocatedPages >= _pageLimit)
            return -1;
        int page = FindLowestFree();
        if (page < 0)
        {
            page = _count;
            Grow(page + 1);
            _pages[page] = new ulong[ItemsPerPage];
            _count++;
        }
        else
        {
            _freeBits[page >> 6] &= ~(1UL << page);
            Array.Clear(_pages[page]);
        }
        _state[page] = 1;
        Allocations++;
        AllocatedPages++;
        if (AllocatedPages > PeakPages)
            PeakPages = AllocatedPages;
        return page;
    }

    /// <summary>Returns a page to the allocator. Throws on a double free or an unknown page.</summary>
    public void Free(int page)
    {
        if ((uint)page >= (uint)_count || _state[page] != 1)
            throw new InvalidOperationException(
                $"Double free or free of an unallocated table page {page} (PA 0x{PageToPa(page):x}).");
        _state[page] = 0;
        _freeBits[page >> 6] |= 1UL << page;
        if ((page >> 6) < _lowestFreeWord)
            _lowestFreeWord = page >> 6;
        Frees++;
        AllocatedPages--;
    }

    /// <summary>True while the page is allocated.</summary>
    public bool IsAllocated(int page) => (uint)page < (uint)_count && _state[page] == 1;

    /// <summary>The items of a page (allocated or not).</summary>
    public ulong[] this[int page]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _pages[page];
    }

    /// <summary>Physical address of a page.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong PageToPa(int page) => Base + ((ulong)(uint)page << PageLg2);

    /// <summary>Page index of a physical address inside this memory.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int PaToPage(ulong pa) => (int)((pa - Base) >> PageLg2);

    /// <summary>True when <paramref name="pa"/> falls inside a page this memory has created.</summary>
    public bool Contains(ulong pa) => pa >= Base && (pa - Base) >> PageLg2 < (ulong)_count;

    /// <summary>Captures the allocator state and the contents of every allocated page.</summary>
    public TableMemorySnapshot Capture()
    {
        var bits = new ulong[(_count + 63) >> 6];
        var pages = new ulong[AllocatedPages][];
        int n = 0;
        for (int i = 0; i < _count; i++)
        {
            if (_state[i] != 1)
                continue;
            bits[i >> 6] |= 1UL << i;
            pages[n++] = (ulong[])_pages[i].Clone();
        }
        return new TableMemorySnapshot(Base, _count, PageLimit, bits, pages);
    }

    /// <summary>
    /// Rebuilds a memory from <paramref name="snapshot"/>: the same pages allocated with the same contents, the
    /// same free pages (zeroed), so that allocation continues exactly as it would have.
    /// </summary>
    public static TableMemory Restore(TableMemorySnapshot snapshot)
    {
        var mem = new TableMemory(snapshot.Base, snapshot.PageLimit);
        int count = snapshot.PageCount;
        if (count < 0 || snapshot.AllocatedBits.Length < (count + 63) >> 6)
            throw new ArgumentException("Snapshot page count and allocation bitmap disagree.", nameof(snapshot));
        mem.Grow(Math.Max(count, 1));
        mem._count = count;
        int n = 0;
        for (int i = 0; i < count; i++)
        {
            bool allocated = (snapshot.AllocatedBits[i >> 6] & (1UL << i)) != 0;
            if (allocated)
            {
                if (n >= snapshot.AllocatedPages.Length || snapshot.AllocatedPages[n].Length != ItemsPerPage)
                    throw new ArgumentException("Snapshot lacks the contents of an allocated page.", nameof(snapshot));
                mem._pages[i] = (ulong[])snapshot.AllocatedPages[n++].Clone();
                mem._state[i] = 1;
                mem.AllocatedPages++;
            }
            else
            {
                mem._pages[i] = new ulong[ItemsPerPage];
                mem._freeBits[i >> 6] |= 1UL << i;
            }
        }
        if (n != snapshot.AllocatedPages.Length)
            throw new ArgumentException("Snapshot holds more page contents than allocated pages.", nameof(snapshot));
        mem.PeakPages = mem.AllocatedPages;
        return mem;
    }

    private int FindLowestFree()
    {
        var bits = _freeBits;
        int words = (_count + 63) >> 6;
        for (int w = _lowestFreeWord; w < words; w++)
        {
            ulong v = bits[w];
            if (v != 0)
            {
                _lowestFreeWord = w;
                return (w << 6) + BitOperations.TrailingZeroCount(v);
            }
        }
        _lowestFreeWord = words;
        return -1;
    }

    private void Grow(int needed)
    {
        if (needed <= _pages.Length)
            return;
        int size = Math.Max(needed, _pages.Length * 2);
        Array.Resize(ref _pages, size);
        Array.Resize(ref _state, size);
        Array.Resize(ref _freeBits, (size + 63) >> 6);
    }
}
