using System.Numerics;
using System.Runtime.CompilerServices;

namespace PtActors.Engine;

/// <summary>
/// pt_log2.h in C#. C# masks shift counts (x &lt;&lt; 64 == x), so every helper that can be asked for
/// a full-width shift handles lg2 == 64 explicitly, as the kernel's fvalog2_* variants do.
/// </summary>
public static class Log2
{
    /// <summary>2^a; a must be below 64.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong ToInt(int a) => 1UL << a;

    /// <summary>2^a - 1, with a == 64 giving all ones.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong ToMaxInt(int a) => a >= 64 ? ulong.MaxValue : (1UL << a) - 1;

    /// <summary>a &gt;&gt; b, 0 when b == 64.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Div(ulong a, int b) => b >= 64 ? 0 : a >> b;

    /// <summary>a mod 2^b, a itself when b == 64.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mod(ulong a, int b) => b >= 64 ? a : a & ((1UL << b) - 1);

    /// <summary>True when a and b agree above bit b-1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool DivEq(ulong a, ulong b, int c) => c >= 64 || ((a ^ b) >> c) == 0;

    /// <summary>(a mod 2^b) == 2^b - 1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool ModEqMax(ulong a, int b) => Mod(a, b) == ToMaxInt(b);

    /// <summary>Replace the low b bits of a by val.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SetMod(ulong a, ulong val, int b) => b >= 64 ? val : (a & ~((1UL << b) - 1)) | val;

    /// <summary>Set the low b bits of a.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong SetModMax(ulong a, int b) => b >= 64 ? ulong.MaxValue : a | ((1UL << b) - 1);

    /// <summary>a &lt;&lt; b, 0 when b == 64.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mul(ulong a, int b) => b >= 64 ? 0 : a << b;

    /// <summary>1-based index of the highest set bit; fls(0) == 0, fls(ulong.MaxValue) == 64.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Fls(ulong a) => 64 - BitOperations.LeadingZeroCount(a);

    /// <summary>1-based index of the highest set bit of a 32-bit value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Fls(uint a) => 32 - BitOperations.LeadingZeroCount(a);

    /// <summary>__ffs: 0-based index of the lowest set bit (64 for 0, where the kernel's is undefined).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Ffs(ulong a) => BitOperations.TrailingZeroCount(a);

    /// <summary>__ffs of a 32-bit value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Ffs(uint a) => BitOperations.TrailingZeroCount(a);

    /// <summary>0-based index of the lowest clear bit (64 for all ones).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Ffz(ulong a) => BitOperations.TrailingZeroCount(~a);

    /// <summary>0-based index of the lowest clear bit of a 32-bit value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Ffz(uint a) => BitOperations.TrailingZeroCount(~a);

    /// <summary>GENMASK_ULL(h, l): bits l..h set (h may be 63).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong GenMask(int h, int l) => (ulong.MaxValue >> (63 - h)) & (ulong.MaxValue << l);
}
