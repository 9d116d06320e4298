using System.Runtime.CompilerServices;

namespace PtActors.Engine.Workloads;

/// <summary>
/// SplitMix64 (Steele, Lea and Flood; Vigna's reference <c>splitmix64.c</c>): a 64-bit counter through a
/// finaliser. Used to expand one seed into the state of <see cref="Xoshiro256StarStar"/>.
/// </summary>
public struct SplitMix64
{
    private ulong _state;

    /// <summary>Starts the sequence at <paramref name="seed"/>.</summary>
    public SplitMix64(ulong seed) => _state = seed;

    /// <summary>The next output.</summary>
    public ulong Next()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

/// <summary>
/// xoshiro256** 1.0 (Blackman and Vigna): the workloads' only source of randomness, so a run depends on
/// nothing but its seed (System.Random's algorithm is an implementation detail of the runtime). A mutable
/// struct: keep it in a field (not a readonly one) and never copy it by accident.
/// </summary>
public struct Xoshiro256StarStar
{
    private ulong _s0, _s1, _s2, _s3;

    /// <summary>Seeds the state with four outputs of <see cref="SplitMix64"/> started at <paramref name="seed"/>.</summary>
    public Xoshiro256StarStar(ulong seed)
    {
        var sm = new SplitMix64(seed);
        _s0 = sm.Next();
        _s1 = sm.Next();
        _s2 = sm.Next();
        _s3 = sm.Next(); // SplitMix64 outputs are a bijection of distinct counters: never all zero
    }

    /// <summary>
    /// An independent stream <paramref name="stream"/> of run seed <paramref name="seed"/> (one per device and
    /// purpose): the SplitMix64 seed is <c>seed ^ mix(stream)</c>, mix being SplitMix64's finaliser.
    /// </summary>
    public static Xoshiro256StarStar ForStream(ulong seed, ulong stream) => new(seed ^ new SplitMix64(stream).Next());

    /// <summary>The next 64 random bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Next()
    {
        ulong result = ulong.RotateLeft(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0;
        _s3 ^= _s1;
        _s1 ^= _s2;
        _s0 ^= _s3;
        _s2 ^= t;
        _s3 = ulong.RotateLeft(_s3, 45);
        return result;
    }

    /// <summary>A value in [0, <paramref name="n"/>) (0 when <paramref name="n"/> is 0): the high half of a 64×64 product (Lemire, without the rejection step).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong NextBelow(ulong n) => Math.BigMul(Next(), n, out _);

    /// <summary>True with the probability a <see cref="Threshold"/> encodes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool Chance(ulong threshold) => threshold == ulong.MaxValue || Next() < threshold;

    /// <summary>
    /// The integer threshold of probability <paramref name="p"/> for <see cref="Chance"/>: 0 never, <see cref="ulong.MaxValue"/>
    /// always. Computed once from the double so the draws themselves are integer-only.
    /// </summary>
    public static ulong Threshold(double p)
    {
        if (double.IsNaN(p) || p <= 0)
            return 0;
        double t = p * 18446744073709551616.0; // 2^64
        return t >= 18446744073709551615.0 ? ulong.MaxValue : (ulong)t;
    }
}
