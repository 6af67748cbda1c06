using System.Runtime.CompilerServices;

namespace Flora.Backends;

/// <summary>
/// Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
/// 1, 2, 3", SC 2011) and a Box-Muller Gaussian built on it.
/// <para>
/// The Gaussian at index i of a stream with seed s is a pure function of (s, i):
/// key = (low 32 bits of s, high 32 bits of s), counter = (low and high 32 bits of i / 4, 0, 0);
/// the four 32-bit outputs u0..u3 give two Box-Muller pairs, and i % 4 picks
/// r1 cos t1, r1 sin t1, r2 cos t2, r2 sin t2 with r = sqrt(-2 ln u_a), t = 2 pi u_b.
/// </para>
/// <para>
/// Every step is IEEE single precision with explicit fused multiply-adds (log and sin/cos are our own
/// polynomials, not the C library's), so a CUDA kernel written with the same operations and no
/// implicit FMA contraction reproduces the CPU bit for bit. This is what lets a FLORA projection be
/// regenerated anywhere from its seed instead of being stored.
/// </para>
/// </summary>
public static class Philox
{
    private const uint M0 = 0xD2511F53, M1 = 0xCD9E8D57; // round multipliers
    private const uint W0 = 0x9E3779B9, W1 = 0xBB67AE85; // Weyl key increments

    /// <summary>One Philox4x32-10 block: 10 rounds of the counter (c0..c3) under the key (k0, k1).</summary>
    public static (uint X0, uint X1, uint X2, uint X3) Block(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1)
    {
        for (int round = 0; round < 10; round++)
        {
            if (round > 0) { k0 += W0; k1 += W1; }
            ulong p0 = (ulong)M0 * c0;
            ulong p1 = (ulong)M1 * c2;
            uint hi0 = (uint)(p0 >> 32), lo0 = (uint)p0;
            uint hi1 = (uint)(p1 >> 32), lo1 = (uint)p1;
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0);
        }
        return (c0, c1, c2, c3);
    }

    /// <summary>The standard normal value at <paramref name="index"/> of the stream <paramref name="seed"/>.</summary>
    public static float Gaussian(ulong seed, long index)
    {
        Span<float> four = stackalloc float[4];
        GaussianBlock(seed, (ulong)index >> 2, four);
        return four[(int)(index & 3)];
    }

    /// <summary>The four standard normal values of block <paramref name="block"/> (indices 4 block .. 4 block + 3).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void GaussianBlock(ulong seed, ulong block, Span<float> destination)
    {
        var (u0, u1, u2, u3) = Block((uint)block, (uint)(block >> 32), 0, 0, (uint)seed, (uint)(seed >> 32));
        BoxMuller(u0, u1, out destination[0], out destination[1]);
        BoxMuller(u2, u3, out destination[2], out destination[3]);
    }

    /// <summary>Uniform in (0, 1): the top 23 bits of x as (2k + 1) 2^-24, exact in single precision.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Uniform(uint x) => (float)((x >> 9) * 2 + 1) * (1f / 16777216f);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void BoxMuller(uint a, uint b, out float z0, out float z1)
    {
        float radius = MathF.Sqrt(-2f * Log(Uniform(a)));
        SinCosTurns(Uniform(b), out float sin, out float cos);
        z0 = radius * cos;
        z1 = radius * sin;
    }

    private const float Ln2Hi = 0.693145752f;      // ln 2 split so that e * Ln2Hi is exact for |e| < 2^8
    private const float Ln2Lo = 1.42860677e-06f;
    private const float Sqrt2 = 1.41421356f;

    /// <summary>Natural log for normal positive floats: u = m 2^e, ln m = 2 atanh((m-1)/(m+1)) as an odd series.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Log(float u)
    {
        int bits = BitConverter.SingleToInt32Bits(u);
        int e = ((bits >> 23) & 0xFF) - 127;
        float m = BitConverter.Int32BitsToSingle((bits & 0x007FFFFF) | 0x3F800000); // [1, 2)
        if (m > Sqrt2) { m *= 0.5f; e += 1; }                                        // [0.707, 1.414]
        float s = (m - 1f) / (m + 1f);                                               // |s| <= 0.1716
        float s2 = s * s;
        float p = MathF.FusedMultiplyAdd(s2, 1f / 11f, 1f / 9f);
        p = MathF.FusedMultiplyAdd(s2, p, 1f / 7f);
        p = MathF.FusedMultiplyAdd(s2, p, 1f / 5f);
        p = MathF.FusedMultiplyAdd(s2, p, 1f / 3f);
        p = MathF.FusedMultiplyAdd(s2, p, 1f);
        float lnM = 2f * s * p;
        float ef = e;
        return MathF.FusedMultiplyAdd(ef, Ln2Hi, MathF.FusedMultiplyAdd(ef, Ln2Lo, lnM));
    }

    /// <summary>sin and cos of 2 pi t for t in [0, 1): exact quadrant split, then Taylor polynomials on [0, pi/2).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void SinCosTurns(float t, out float sin, out float cos)
    {
        float quarters = t * 4f;                 // exact
        int q = (int)quarters;                   // quadrant 0..3
        float x = (quarters - q) * 1.57079637f;  // [0, pi/2)
        float x2 = x * x;
        float s = MathF.FusedMultiplyAdd(x2, 1.60590438e-10f, -2.50521084e-08f);
        s = MathF.FusedMultiplyAdd(x2, s, 2.75573192e-06f);
        s = MathF.FusedMultiplyAdd(x2, s, -1.98412698e-04f);
        s = MathF.FusedMultiplyAdd(x2, s, 8.33333333e-03f);
        s = MathF.FusedMultiplyAdd(x2, s, -1.66666667e-01f);
        s = MathF.FusedMultiplyAdd(x2 * x, s, x);
        float c = MathF.FusedMultiplyAdd(x2, -1.14707456e-11f, 2.08767570e-09f);
        c = MathF.FusedMultiplyAdd(x2, c, -2.75573192e-07f);
        c = MathF.FusedMultiplyAdd(x2, c, 2.48015873e-05f);
        c = MathF.FusedMultiplyAdd(x2, c, -1.38888889e-03f);
        c = MathF.FusedMultiplyAdd(x2, c, 4.16666667e-02f);
        c = MathF.FusedMultiplyAdd(x2, c, -0.5f);
        c = MathF.FusedMultiplyAdd(x2, c, 1f);
        switch (q & 3)
        {
            case 0: sin = s; cos = c; break;
            case 1: sin = c; cos = -s; break;
            case 2: sin = -s; cos = -c; break;
            default: sin = -c; cos = s; break;
        }
    }
}
