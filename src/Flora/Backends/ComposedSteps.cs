using Flora.Tensors;

namespace Flora.Backends;

/// <summary>
/// Steps a backend may fuse, written op by op: what the CPU runs, what a GPU runs where its fused kernels do not apply,
/// and the reference the fused kernels are checked against.
/// </summary>
internal static class ComposedSteps
{
    /// <summary><see cref="IBackend.AdafactorFloraOfficialStep"/> op by op, u and then y in place of g.</summary>
    public static void AdafactorFloraOfficial(IBackend b, Tensor p, Tensor g, Tensor rows, Tensor columns, Tensor m, Tensor a, bool compressedColumns,
        Tensor? rounded, Tensor compressed, float beta, float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter, ulong seed)
    {
        b.AdafactorFactoredPrecondition(g, rows, columns, g, 1f, 0f, rounded);        // u, and its copy in the products' type
        if (rounded is null) Compress(b, g, a, compressed, compressedColumns, 1f, 0f); // c = compress(u)
        Decompress(b, m, a, g, compressedColumns, beta, 1 - beta);                     // y = (1 - beta) u + beta decompress(M)
        if (rounded is null) b.Axpby(1 - beta, compressed, beta, m);                   // M = beta M + (1 - beta) c
        else Compress(b, rounded, a, m, compressedColumns, 1 - beta, beta);            // the same, one product from the kept u
        if (p.DType == DType.BFloat16) b.AdafactorUpdateRounded(p, g, lr, eps2, clipThreshold, weightDecay, scaleParameter, seed);
        else b.AdafactorUpdate(p, g, lr, eps2, clipThreshold, weightDecay, scaleParameter);
    }

    /// <summary>c = alpha compress(g) + beta c: G A^T, (n, r), for compressed columns; A G, (r, m), for rows (A is (r, m) or (r, n)).</summary>
    public static void Compress(IBackend b, Tensor g, Tensor a, Tensor c, bool compressedColumns, float alpha, float beta)
    {
        if (compressedColumns) b.MatMul(g, false, a, true, c, alpha, beta);
        else b.MatMul(a, false, g, false, c, alpha, beta);
    }

    /// <summary>g = alpha decompress(c) + beta g: C A for compressed columns, A^T C for rows; both (n, m).</summary>
    public static void Decompress(IBackend b, Tensor c, Tensor a, Tensor g, bool compressedColumns, float alpha, float beta)
    {
        if (compressedColumns) b.MatMul(c, false, a, false, g, alpha, beta);
        else b.MatMul(a, true, c, false, g, alpha, beta);
    }
}
