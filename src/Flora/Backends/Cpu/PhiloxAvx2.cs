using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Flora.Backends.Cpu;

/// <summary>
/// <see cref="Philox"/> Gaussians eight pairs at a time with AVX2 and FMA: four Philox blocks in the
/// 64-bit lanes of four vectors (the 32 x 32 -&gt; 64 multiply of each round is vpmuludq), then Box-Muller
/// on eight lanes. Every float operation is the one the scalar definition performs, in the same
/// order, so the output is bit-identical to <see cref="Philox.GaussianBlock"/>.
/// </summary>
internal static class PhiloxAvx2
{
    public static bool IsSupported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>Writes std * z for blocks [firstBlock, firstBlock + blocks) into dst (4 values per block); blocks is a multiple of 4.</summary>
    public static unsafe void Fill(ulong seed, long firstBlock, int blocks, float std, float* dst)
    {
        Span<float> cosPart = stackalloc float[8], sinPart = stackalloc float[8];
        var lowMask = Vector256.Create(0xFFFFFFFFUL);
        for (int b = 0; b < blocks; b += 4)
        {
            ulong block = (ulong)(firstBlock + b);
            var index = Vector256.Create(block, block + 1, block + 2, block + 3);
            Vector256<ulong> c0 = index & lowMask, c1 = index >>> 32, c2 = Vector256<ulong>.Zero, c3 = Vector256<ulong>.Zero;
            uint k0 = (uint)seed, k1 = (uint)(seed >> 32);
            for (int round = 0; round < 10; round++)
            {
                if (round > 0) { k0 += 0x9E3779B9; k1 += 0xBB67AE85; }
                Vector256<ulong> p0 = Avx2.Multiply(c0.AsUInt32(), Vector256.Create(0xD2511F53UL).AsUInt32());
                Vector256<ulong> p1 = Avx2.Multiply(c2.AsUInt32(), Vector256.Create(0xCD9E8D57UL).AsUInt32());
                Vector256<ulong> hi0 = p0 >>> 32, lo0 = p0 & lowMask, hi1 = p1 >>> 32, lo1 = p1 & lowMask;
                (c0, c1, c2, c3) = (hi1 ^ c1 ^ Vector256.Create((ulong)k0), lo1, hi0 ^ c3 ^ Vector256.Create((ulong)k1), lo0);
            }
            // Lanes 0-3: the first pair (x0, x1) of blocks b..b+3; lanes 4-7: the second pair (x2, x3).
            Vector256<uint> a = Vector256.Narrow(c0, c2), bb = Vector256.Narrow(c1, c3);
            Vector256<float> radius = Avx.Sqrt(Vector256.Create(-2f) * Log(Uniform(a)));
            SinCosTurns(Uniform(bb), out var sin, out var cos);
            (radius * cos).CopyTo(cosPart);
            (radius * sin).CopyTo(sinPart);
            float* o = dst + (firstBlock + b) * 4;
            for (int k = 0; k < 4; k++)
            {
                o[4 * k + 0] = std * cosPart[k];
                o[4 * k + 1] = std * sinPart[k];
                o[4 * k + 2] = std * cosPart[k + 4];
                o[4 * k + 3] = std * sinPart[k + 4];
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Uniform(Vector256<uint> x) =>
        Vector256.ConvertToSingle((((x >>> 9) << 1) | Vector256.Create(1u)).AsInt32()) * Vector256.Create(1f / 16777216f);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Fma_(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Fma.MultiplyAdd(a, b, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Log(Vector256<float> u)
    {
        Vector256<int> bits = u.AsInt32();
        Vector256<int> e = ((bits >> 23) & Vector256.Create(0xFF)) - Vector256.Create(127);
        Vector256<float> m = ((bits & Vector256.Create(0x007FFFFF)) | Vector256.Create(0x3F800000)).AsSingle();
        Vector256<float> big = Vector256.GreaterThan(m, Vector256.Create(1.41421356f));
        m = Vector256.ConditionalSelect(big, m * Vector256.Create(0.5f), m);
        e = Vector256.ConditionalSelect(big.AsInt32(), e + Vector256.Create(1), e);
        Vector256<float> one = Vector256.Create(1f);
        Vector256<float> s = (m - one) / (m + one);
        Vector256<float> s2 = s * s;
        Vector256<float> p = Fma_(s2, Vector256.Create(1f / 11f), Vector256.Create(1f / 9f));
        p = Fma_(s2, p, Vector256.Create(1f / 7f));
        p = Fma_(s2, p, Vector256.Create(1f / 5f));
        p = Fma_(s2, p, Vector256.Create(1f / 3f));
        p = Fma_(s2, p, one);
        Vector256<float> lnM = Vector256.Create(2f) * s * p;
        Vector256<float> ef = Vector256.ConvertToSingle(e);
        return Fma_(ef, Vector256.Create(0.693145752f), Fma_(ef, Vector256.Create(1.42860677e-06f), lnM));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SinCosTurns(Vector256<float> t, out Vector256<float> sin, out Vector256<float> cos)
    {
        Vector256<float> quarters = t * Vector256.Create(4f);
        Vector256<int> q = Vector256.ConvertToInt32(quarters);
        Vector256<float> x = (quarters - Vector256.ConvertToSingle(q)) * Vector256.Create(1.57079637f);
        Vector256<float> x2 = x * x;
        Vector256<float> s = Fma_(x2, Vector256.Create(1.60590438e-10f), Vector256.Create(-2.50521084e-08f));
        s = Fma_(x2, s, Vector256.Create(2.75573192e-06f));
        s = Fma_(x2, s, Vector256.Create(-1.98412698e-04f));
        s = Fma_(x2, s, Vector256.Create(8.33333333e-03f));
        s = Fma_(x2, s, Vector256.Create(-1.66666667e-01f));
        s = Fma_(x2 * x, s, x);
        Vector256<float> c = Fma_(x2, Vector256.Create(-1.14707456e-11f), Vector256.Create(2.08767570e-09f));
        c = Fma_(x2, c, Vector256.Create(-2.75573192e-07f));
        c = Fma_(x2, c, Vector256.Create(2.48015873e-05f));
        c = Fma_(x2, c, Vector256.Create(-1.38888889e-03f));
        c = Fma_(x2, c, Vector256.Create(4.16666667e-02f));
        c = Fma_(x2, c, Vector256.Create(-0.5f));
        c = Fma_(x2, c, Vector256.Create(1f));
        // Quadrant q: (sin, cos) = (s, c), (c, -s), (-s, -c), (-c, s).
        Vector256<float> swap = Vector256.Equals(q & Vector256.Create(1), Vector256.Create(1)).AsSingle();
        Vector256<float> sinBase = Vector256.ConditionalSelect(swap, c, s), cosBase = Vector256.ConditionalSelect(swap, s, c);
        Vector256<float> negateSin = Vector256.Equals(q & Vector256.Create(2), Vector256.Create(2)).AsSingle();
        Vector256<float> negateCos = Vector256.Equals(((q ^ (q >> 1)) & Vector256.Create(1)), Vector256.Create(1)).AsSingle();
        sin = Vector256.ConditionalSelect(negateSin, -sinBase, sinBase);
        cos = Vector256.ConditionalSelect(negateCos, -cosBase, cosBase);
    }
}
