using System.Runtime.CompilerServices;

namespace Flora.Backends.Cpu;

/// <summary>A row-major single-precision product C = alpha op(A) op(B) + beta C, as cblas_sgemm computes it.</summary>
internal delegate void SgemmCall(bool transA, bool transB, int m, int n, int k, float alpha,
    ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc);

/// <summary>The outcome of <see cref="BlasKnownAnswer.Check"/>.</summary>
/// <param name="Passed">True when every element is within the bound.</param>
/// <param name="WorstError">The largest |C - reference| over all elements, in units of u (|alpha| |op(A)| |op(B)| + |beta| |C0|) for that element (u = 2^-24).</param>
/// <param name="Limit">The largest <see cref="WorstError"/> accepted.</param>
internal sealed record KnownAnswerResult(bool Passed, double WorstError, double Limit)
{
    /// <summary>"worst error 3.2 u|A||B| (limit 292)".</summary>
    public override string ToString() => $"worst error {WorstError:G3} u|A||B| (limit {Limit:G3})";
}

/// <summary>
/// Checks a single-precision matrix product against a float64 reference before Flora trusts a kernel family.
/// Two products large enough to run OpenBLAS's blocked kernels, not its small-matrix paths: 192 x 160 x 144 plain
/// (alpha 1, beta 0, C filled with a sentinel that beta 0 must overwrite) and 160 x 144 x 192 with both operands
/// transposed, leading dimensions wider than the rows, alpha 0.5 and beta 1 (so C is read as well as written).
/// <para>
/// Tolerance: each element may differ from the float64 value by (k + 2) u (|alpha| sum_k |a| |b| + |beta| |c0|),
/// twice over, where u = 2^-24. Any order of summation in float32 (blocking, FMA, threads) stays within k u of the
/// sum of magnitudes (the classical bound for a dot product), so a correct kernel always passes; a wrong kernel
/// (a misplaced block, an ignored transpose or leading dimension, an unwritten element, a write past a row's end) misses by a factor of a
/// million or more.
/// </para>
/// </summary>
internal static class BlasKnownAnswer
{
    private const double Unit = 1.0 / (1 << 24);
    private const float Sentinel = 7777f;

    private sealed record Case(bool TransA, bool TransB, int M, int N, int K, int Lda, int Ldb, int Ldc, float Alpha, float Beta);

    private static readonly Case[] Cases =
    [
        new(false, false, 192, 160, 144, Lda: 144, Ldb: 160, Ldc: 160, Alpha: 1f, Beta: 0f),
        new(true, true, 160, 144, 192, Lda: 160 + 5, Ldb: 192 + 3, Ldc: 144 + 7, Alpha: 0.5f, Beta: 1f),
    ];

    /// <summary>Runs both products through <paramref name="sgemm"/> and compares them with the float64 reference.</summary>
    public static KnownAnswerResult Check(SgemmCall sgemm)
    {
        double worst = 0, limit = double.PositiveInfinity;
        uint state = 0x9E3779B9u;
        foreach (var c in Cases)
        {
            // Stored shapes: op(A) is (M, K), so A is (K, M) when transposed; likewise B.
            int aRows = c.TransA ? c.K : c.M, bRows = c.TransB ? c.N : c.K;
            var a = Fill(aRows * c.Lda, ref state);
            var b = Fill(bRows * c.Ldb, ref state);
            var c0 = c.Beta == 0 ? Enumerable.Repeat(Sentinel, c.M * c.Ldc).ToArray() : Fill(c.M * c.Ldc, ref state);
            var result = (float[])c0.Clone();
            sgemm(c.TransA, c.TransB, c.M, c.N, c.K, c.Alpha, a, c.Lda, b, c.Ldb, c.Beta, result, c.Ldc);
            worst = Math.Max(worst, WorstError(c, a, b, c0, result));
            limit = Math.Min(limit, 2.0 * (c.K + 2));
        }
        return new KnownAnswerResult(worst <= limit, worst, limit);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double WorstError(Case c, float[] a, float[] b, float[] c0, float[] result)
    {
        // op(A) (M, K) and op(B) (K, N) densely in float64, and op(B)'s magnitudes, so that the inner loop runs along
        // contiguous rows without branches.
        var opA = new double[c.M * c.K];
        var opB = new double[c.K * c.N];
        for (int i = 0; i < c.M; i++)
            for (int p = 0; p < c.K; p++) opA[i * c.K + p] = c.TransA ? a[p * c.Lda + i] : a[i * c.Lda + p];
        for (int p = 0; p < c.K; p++)
            for (int j = 0; j < c.N; j++) opB[p * c.N + j] = c.TransB ? b[j * c.Ldb + p] : b[p * c.Ldb + j];
        var absB = new double[opB.Length];
        for (int i = 0; i < opB.Length; i++) absB[i] = Math.Abs(opB[i]);
        var exact = new double[c.N];
        var magnitude = new double[c.N];
        double worst = 0;
        for (int i = 0; i < c.M; i++)
        {
            Array.Clear(exact);
            Array.Clear(magnitude);
            for (int p = 0; p < c.K; p++)
            {
                double x = opA[i * c.K + p], ax = Math.Abs(x);
                var row = opB.AsSpan(p * c.N, c.N);
                var absRow = absB.AsSpan(p * c.N, c.N);
                for (int j = 0; j < row.Length; j++)
                {
                    exact[j] += x * row[j];
                    magnitude[j] += ax * absRow[j];
                }
            }
            for (int j = 0; j < c.N; j++)
            {
                double old = c.Beta == 0 ? 0 : c0[i * c.Ldc + j];
                double want = c.Alpha * exact[j] + c.Beta * old;
                double scale = Math.Abs(c.Alpha) * magnitude[j] + Math.Abs(c.Beta * old);
                double error = Math.Abs(result[i * c.Ldc + j] - want) / (Unit * Math.Max(scale, double.Epsilon));
                if (!(error <= worst)) worst = double.IsNaN(error) ? double.PositiveInfinity : error;
            }
            for (int j = c.N; j < c.Ldc; j++)
                if (result[i * c.Ldc + j] != c0[i * c.Ldc + j]) worst = double.PositiveInfinity;   // written past the row
        }
        return worst;
    }

    /// <summary>Values in [-1, 1) with full 24-bit mantissas from a xorshift stream (no two products alike).</summary>
    private static float[] Fill(int count, ref uint state)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            values[i] = (state >> 8) / (float)(1 << 23) - 1f;
        }
        return values;
    }
}
