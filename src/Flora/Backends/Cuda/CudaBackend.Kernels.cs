using Flora.Tensors;

namespace Flora.Backends.Cuda;

/// <summary>The transformer, loss, optimizer, reduction and random ops of the CUDA backend.</summary>
internal sealed unsafe partial class CudaBackend
{
    // ---- transformer layers ---------------------------------------------------------------------

    public void EmbeddingForward(Tensor table, Tensor ids, Tensor output)
    {
        if (output.Rows != ids.Count || output.Columns != table.Columns)
            throw new ArgumentException($"EmbeddingForward: output {output.Shape} should be ({ids.Count}, {table.Columns})");
        CheckIds(ids, table.Rows, nameof(EmbeddingForward));
        if (table.DType is not (DType.Float32 or DType.BFloat16)) throw new ArgumentException($"EmbeddingForward: expected a Float32 or BFloat16 table, got {table}");
        using var _ = Time(nameof(EmbeddingForward));
        Elementwise(table.DType == DType.BFloat16 ? "embedding_forward_bf16" : "embedding_forward", output.Count, P(table), P(ids), P(output), ids.Count, table.Columns);
    }

    public void EmbeddingBackward(Tensor gradOutput, Tensor ids, Tensor gradTable, float alpha)
    {
        if (gradOutput.Rows != ids.Count || gradOutput.Columns != gradTable.Columns)
            throw new ArgumentException($"EmbeddingBackward: gradient {gradOutput.Shape} should be ({ids.Count}, {gradTable.Columns})");
        using var _ = Time(nameof(EmbeddingBackward));
        Elementwise("embedding_backward", gradOutput.Count, P(gradOutput), P(ids), P(gradTable), ids.Count, gradTable.Columns, alpha);
    }

    /// <summary>Token ids are checked on the host (one copy of the ids) so that a bad id is an error, not a fault.</summary>
    private static void CheckIds(Tensor ids, int vocabulary, string op)
    {
        var host = new int[ids.Count];
        ids.CopyTo<int>(host);
        for (int n = 0; n < host.Length; n++)
            if ((uint)host[n] >= (uint)vocabulary) throw new ArgumentException($"{op}: token id {host[n]} at position {n} is outside the vocabulary [0, {vocabulary})");
    }

    public void LayerNormForward(Tensor x, Tensor gamma, Tensor beta, Tensor y, Tensor mean, Tensor rstd, float eps)
    {
        CheckNorm(x, gamma, y, rstd, nameof(LayerNormForward));
        if (y.DType is not (DType.Float32 or DType.BFloat16)) throw new ArgumentException($"LayerNormForward: y must be Float32 or BFloat16, got {y}");
        using var _ = Time(nameof(LayerNormForward));
        string kernel = (y.DType == DType.BFloat16 ? "layernorm_forward_bf16" : "layernorm_forward") + (RowsInRegisters(x, gamma, beta, y) ? "_x4" : "");
        WarpPerRow(kernel, x.Rows, P(x), P(gamma), P(beta), P(y), P(mean), P(rstd), x.Rows, x.Columns, eps);
    }

    public void LayerNormBackward(Tensor dy, Tensor x, Tensor mean, Tensor rstd, Tensor gamma, Tensor dx, Tensor dGamma, Tensor dBeta, Tensor? residual = null)
    {
        CheckNorm(x, gamma, dx, rstd, nameof(LayerNormBackward));
        NormChecks.CheckResidual(residual, dx, nameof(LayerNormBackward));
        using var _ = Time(nameof(LayerNormBackward));
        WarpPerRow(RowsInRegisters(x, dy, gamma, dx, residual) ? "layernorm_backward_dx_x4" : "layernorm_backward_dx", x.Rows,
            P(dy), P(x), P(mean), P(rstd), P(gamma), residual is null ? 0UL : P(residual), P(dx), x.Rows, x.Columns);
        NormParameterGradients(dy, x, mean, rstd, dGamma, dBeta);
    }

    /// <summary>
    /// Whether a norm's row kernels can keep each row in registers (norms.cu's _x4 kernels): at most 1,024 columns, a
    /// multiple of 128, every tensor 16-byte aligned.
    /// </summary>
    private static bool RowsInRegisters(Tensor x, params Tensor?[] others) =>
        x.Columns % 128 == 0 && x.Columns <= 1024 && P(x) % 16 == 0 && others.All(t => t is null || P(t) % 16 == 0);

    public void RmsNormForward(Tensor x, Tensor weight, Tensor y, Tensor rstd, float eps)
    {
        CheckNorm(x, weight, y, rstd, nameof(RmsNormForward));
        if (y.DType is not (DType.Float32 or DType.BFloat16)) throw new ArgumentException($"RmsNormForward: y must be Float32 or BFloat16, got {y}");
        using var _ = Time(nameof(RmsNormForward));
        string kernel = y.DType == DType.BFloat16 ? "rmsnorm_forward_bf16" : "rmsnorm_forward";
        if (x.Rows > 0 && RowThreads(x, weight, y) is uint threads)
            _device.Launch(kernel.Replace("forward", "forward_rows"), (uint)x.Rows, 1, threads, 0, P(x), P(weight), P(y), P(rstd), x.Columns, eps);
        else WarpPerRow(kernel, x.Rows, P(x), P(weight), P(y), P(rstd), x.Rows, x.Columns, eps);
    }

    public void RmsNormBackward(Tensor dy, Tensor x, Tensor rstd, Tensor weight, Tensor dx, Tensor dWeight, Tensor? residual = null)
    {
        CheckNorm(x, weight, dx, rstd, nameof(RmsNormBackward));
        NormChecks.CheckResidual(residual, dx, nameof(RmsNormBackward));
        using var _ = Time(nameof(RmsNormBackward));
        if (x.Rows > 0 && RowThreads(x, dy, weight, dx, residual) is uint threads)
        {
            // dx and the weight gradient's partial sums in one pass (a chunk of rows per block), then the column sums.
            int chunks = Math.Min(x.Rows, 4 * _device.Multiprocessors);
            Tensor partial = _partials.Get(new Shape(chunks * x.Columns));
            _device.Launch("rmsnorm_backward_rows", (uint)chunks, 1, threads, 0, P(dy), P(x), P(rstd), P(weight), residual is null ? 0UL : P(residual), P(dx),
                P(partial), x.Rows, x.Columns);
            ColumnFinish("column_finish", x.Columns, P(partial), P(dWeight), chunks, x.Columns, 1f, 0f);
            return;
        }
        WarpPerRow("rmsnorm_backward_dx", x.Rows, P(dy), P(x), P(rstd), P(weight), residual is null ? 0UL : P(residual), P(dx), x.Rows, x.Columns);
        NormParameterGradients(dy, x, null, rstd, dWeight, null);
    }

    /// <summary>
    /// The threads of a block per row for norms.cu's RMSNorm row kernels (about four float4s per thread, 32 to 256), or
    /// null where they do not apply: over 1,024 columns (narrower rows keep a warp busy), a multiple of 4, at most
    /// 256 x 4 x NORM_ROW_X4 (8,192), every tensor 16-byte aligned.
    /// </summary>
    private static uint? RowThreads(Tensor x, params Tensor?[] others)
    {
        int quads = x.Columns / 4;
        if (x.Columns <= 1024 || x.Columns % 4 != 0 || quads > 256 * 8 || P(x) % 16 != 0 || others.Any(t => t is not null && P(t) % 16 != 0)) return null;
        return (uint)Math.Clamp((quads / 4 + 31) / 32 * 32, 32, 256);
    }

    /// <summary>dGamma = sum_n dy xhat (and dBeta = sum_n dy), overwritten; xhat from LayerNorm's or RMSNorm's statistics.</summary>
    private void NormParameterGradients(Tensor dy, Tensor x, Tensor? mean, Tensor rstd, Tensor dGamma, Tensor? dBeta)
    {
        int rows = x.Rows, cols = x.Columns, perChunk = RowsPerChunk(rows, cols), chunks = Math.Max(1, (rows + perChunk - 1) / perChunk);
        Tensor partial = _partials.Get(new Shape(2 * chunks * cols));
        Tensor gammaPartial = partial.View(new Shape(chunks * cols)), betaPartial = partial.View(new Shape(chunks * cols), (long)chunks * cols);
        _device.Launch("layernorm_backward_params", (uint)((cols + Threads - 1) / Threads), (uint)chunks, Threads, 0,
            P(dy), P(x), mean is null ? 0UL : P(mean), P(rstd), P(gammaPartial), dBeta is null ? 0UL : P(betaPartial), rows, cols, perChunk);
        ColumnFinish("column_finish", cols, P(gammaPartial), P(dGamma), chunks, cols, 1f, 0f);
        if (dBeta is not null) ColumnFinish("column_finish", cols, P(betaPartial), P(dBeta), chunks, cols, 1f, 0f);
    }

    private static void CheckNorm(Tensor x, Tensor weight, Tensor y, Tensor rstd, string op)
    {
        if (weight.Count != x.Columns || y.Count != x.Count || rstd.Count != x.Rows)
            throw new ArgumentException($"{op}: x {x.Shape}, weight {weight.Shape}, output {y.Shape} and saved statistics {rstd.Shape} do not agree");
    }

    public void AttentionForward(AttentionShape s, ColumnBlock q, ColumnBlock k, ColumnBlock v, Tensor output, Tensor logSumExp)
    {
        s.Validate(q, k, v, output, logSumExp);
        CheckAttentionTypes(q, k, v, output, nameof(AttentionForward));
        int tq = s.QueryLength, tk = s.KeyLength, hd = s.HeadDim, h = s.Heads, g = s.Group, hkv = s.KvHeads;
        if (UsesFusedAttention(s, q, k, v, output, null, null, null))
        {
            var (fq, fk, fv) = Operands16(q, k, v);
            string kernel = $"flash_attention_forward_{hd}";
            int shared = FusedForwardSharedBytes(hd);
            AllowFusedSharedMemory(kernel, shared);
            using (new ProfileScope(this, nameof(AttentionForward), Profiler is null ? null : $"fused attention forward {tq}x{tk}x{hd} x{2 * s.Batch * h}", AttentionFlops(s, 2)))
                _device.Launch(kernel, (uint)(s.Batch * h), (uint)((tq + 127) / 128), 256, (uint)shared,
                    HeadBase(q, fq, 2, 0, tq), HeadBase(k, fk, 2, 0, tk), HeadBase(v, fv, 2, 0, tk),
                    (long)q.Stride, (long)k.Stride, (long)v.Stride, P(output), output.DType == DType.BFloat16 ? 1 : 0, (long)output.Columns, P(logSumExp),
                    h, tq, tk, s.Scale, s.Causal ? 1 : 0, KeyLengths(s), g);
            return;
        }
        if (output.DType == DType.BFloat16)
        {
            Tensor wide = _wideC.Get(output.Shape);                                      // computed in fp32, then rounded
            AttentionForward(s, q, k, v, wide, logSumExp);
            Copy(wide, output);
            return;
        }
        // Heads as strided batches. Grouped key/value heads: one batch per member m of the groups, over the Hkv
        // groups: query heads m, g + m, 2g + m, ... (stride g hd columns, g score blocks) against key/value heads
        // 0, 1, 2, ... (stride hd); without groups (g = 1) one batch of all heads.
        long scoreStride = (long)tq * tk;
        Tensor scores = _scores.Get(new Shape(h * tq * tk));                        // (H, Tq, Tk) for one batch element at a time
        bool half = Precision == GemmPrecision.Bf16;
        int input = half ? CuBlas.R16BF : CuBlas.R32F, es = half ? 2 : 4;
        ulong q16 = 0, k16 = 0, v16 = 0, p16 = 0;
        if (half)
        {
            (q16, k16, v16) = Operands16(q, k, v);
            p16 = P(_probabilities16.Get(new Shape(h * tq * tk)));
        }
        ulong Member(ulong headZero, int m, int elementSize) => headZero + (ulong)((long)m * hd * elementSize);
        ulong Scores(ulong baseAddress, int m, int elementSize) => baseAddress + (ulong)(m * scoreStride * elementSize);
        for (int b = 0; b < s.Batch; b++)
        {
            ulong qb = half ? HeadBase(q, q16, 2, b, tq) : HeadBase(q, P(q.Tensor), 4, b, tq);
            ulong kb = half ? HeadBase(k, k16, 2, b, tk) : HeadBase(k, P(k.Tensor), 4, b, tk);
            ulong vb = half ? HeadBase(v, v16, 2, b, tk) : HeadBase(v, P(v.Tensor), 4, b, tk);
            // S_h = scale Q_h K_(h/g)^T
            using (TimeProduct("attention S", tq, tk, hd, h))
                for (int m = 0; m < g; m++)
                    _blas.GemmStridedBatched(CuBlas.OpT, CuBlas.OpN, tk, tq, hd, s.Scale, kb, k.Stride, hd,
                        Member(qb, m, es), q.Stride, (long)g * hd, 0f, Scores(P(scores), m, 4), tk, g * scoreStride, hkv, _compute, input);
            using (Time(nameof(AttentionForward)))
                if (half) _device.Launch("attention_softmax_bf16", (uint)(h * tq), 1, Threads, 0, P(scores), p16, LseBase(logSumExp, b, h, tq), h * tq, tq, tk, s.Causal ? 1 : 0, s.ValidKeys(b));
                else _device.Launch("attention_softmax", (uint)(h * tq), 1, Threads, 0, P(scores), LseBase(logSumExp, b, h, tq), h * tq, tq, tk, s.Causal ? 1 : 0, s.ValidKeys(b));
            // O_h = P_h V_(h/g), written into the head's columns of the output; P as bf16 in bf16 mode.
            ulong probabilities = half ? p16 : P(scores);
            using (TimeProduct("attention PV", tq, hd, tk, h))
                for (int m = 0; m < g; m++)
                    _blas.GemmStridedBatched(CuBlas.OpN, CuBlas.OpN, hd, tq, tk, 1f, vb, v.Stride, hd,
                        Scores(probabilities, m, es), tk, g * scoreStride, 0f, Member(OutputBase(output, b, tq), m, 4), output.Columns, (long)g * hd, hkv, _compute, input);
        }
    }

    public void AttentionBackward(AttentionShape s, Tensor dOutput, ColumnBlock q, ColumnBlock k, ColumnBlock v, Tensor output, Tensor logSumExp,
        ColumnBlock dq, ColumnBlock dk, ColumnBlock dv)
    {
        s.Validate(q, k, v, output, logSumExp);
        s.Check(dq, s.QueryLength, "dq"); s.CheckKv(dk, "dk"); s.CheckKv(dv, "dv");
        if (dOutput.Count != output.Count) throw new ArgumentException($"AttentionBackward: dOutput {dOutput.Shape} does not match output {output.Shape}");
        CheckAttentionTypes(q, k, v, output, nameof(AttentionBackward));
        int tq = s.QueryLength, tk = s.KeyLength, hd = s.HeadDim, h = s.Heads, g = s.Group, hkv = s.KvHeads;
        if (UsesFusedAttention(s, q, k, v, output, dq, dk, dv))
        {
            FusedAttentionBackward(s, dOutput, q, k, v, output, logSumExp, dq, dk, dv);
            return;
        }
        if (output.DType == DType.BFloat16)
        {
            Tensor wide = _wideC.Get(output.Shape);                                      // widened exactly for the row dots
            Copy(output, wide);
            output = wide;
        }
        Tensor scores = _scores.Get(new Shape(h * tq * tk)), dp = _scoreGradients.Get(new Shape(h * tq * tk)), d = _rowDots.Get(new Shape(h * tq));
        long scoreStride = (long)tq * tk;
        bool half = Precision == GemmPrecision.Bf16;
        int input = half ? CuBlas.R16BF : CuBlas.R32F, es = half ? 2 : 4;
        ulong q16 = 0, k16 = 0, v16 = 0, dOut16 = 0, p16 = 0;
        if (half)
        {
            (q16, k16, v16) = Operands16(q, k, v);
            dOut16 = ToBf16(dOutput, _operandC);
            p16 = P(_probabilities16.Get(new Shape(h * tq * tk)));
        }
        ulong Q(int b) => half ? HeadBase(q, q16, 2, b, tq) : HeadBase(q, P(q.Tensor), 4, b, tq);
        ulong K(int b) => half ? HeadBase(k, k16, 2, b, tk) : HeadBase(k, P(k.Tensor), 4, b, tk);
        ulong V(int b) => half ? HeadBase(v, v16, 2, b, tk) : HeadBase(v, P(v.Tensor), 4, b, tk);
        ulong DOut(int b) => half ? dOut16 + (ulong)((long)b * tq * dOutput.Columns * 2) : OutputBase(dOutput, b, tq);
        // Group member m (see AttentionForward): query-side head m of each group, its score block.
        ulong Member(ulong headZero, int m, int elementSize) => headZero + (ulong)((long)m * hd * elementSize);
        ulong Scores(ulong baseAddress, int m, int elementSize) => baseAddress + (ulong)(m * scoreStride * elementSize);
        long qs = (long)g * hd, ss = g * scoreStride;
        // The products read P and dS as bf16 copies in bf16 mode, as the fp32 scores buffer otherwise.
        ulong probabilities = half ? p16 : P(scores), scoreGradients = half ? p16 : P(dp);
        for (int b = 0; b < s.Batch; b++)
        {
            using (TimeProduct("attention backward S", tq, tk, hd, h))
                for (int m = 0; m < g; m++)                                                                       // S_h = scale Q_h K_j^T
                    _blas.GemmStridedBatched(CuBlas.OpT, CuBlas.OpN, tk, tq, hd, s.Scale, K(b), k.Stride, hd, Member(Q(b), m, es), q.Stride, qs,
                        0f, Scores(P(scores), m, 4), tk, ss, hkv, _compute, input);
            using (Time(nameof(AttentionBackward)))
                if (half) Elementwise("attention_probabilities_bf16", (long)h * tq * tk, P(scores), LseBase(logSumExp, b, h, tq), p16, h * tq, tq, tk, s.Causal ? 1 : 0, s.ValidKeys(b));
                else Elementwise("attention_probabilities", (long)h * tq * tk, P(scores), LseBase(logSumExp, b, h, tq), h * tq, tq, tk, s.Causal ? 1 : 0, s.ValidKeys(b));
            using (TimeProduct("attention dV, dP", tq, tk, hd, 2 * h))
                for (int m = 0; m < g; m++)
                {
                    // dV_j (+)= P_h^T dO_h   (Tk, hd): the group's heads add up
                    _blas.GemmStridedBatched(CuBlas.OpN, CuBlas.OpT, hd, tk, tq, 1f, Member(DOut(b), m, es), dOutput.Columns, qs, Scores(probabilities, m, es), tk, ss,
                        m == 0 ? 0f : 1f, HeadBase(dv, P(dv.Tensor), 4, b, tk), dv.Stride, hd, hkv, _compute, input);
                    // dP_h = dO_h V_j^T   (Tq, Tk)
                    _blas.GemmStridedBatched(CuBlas.OpT, CuBlas.OpN, tk, tq, hd, 1f, V(b), v.Stride, hd, Member(DOut(b), m, es), dOutput.Columns, qs, 0f,
                        Scores(P(dp), m, 4), tk, ss, hkv, _compute, input);
                }
            using (Time(nameof(AttentionBackward)))
            {
                // d_i = rowsum(dO_i O_i); dS = P (dP - d)
                _device.Launch("attention_row_dot", (uint)((h * tq + 7) / 8), 1, Threads, 0, OutputBase(dOutput, b, tq), OutputBase(output, b, tq), P(d), tq, h, hd, output.Columns);
                if (half) Elementwise("attention_softmax_backward_bf16", (long)h * tq * tk, P(scores), LseBase(logSumExp, b, h, tq), P(dp), P(d), p16, h * tq, tq, tk, s.Causal ? 1 : 0, s.ValidKeys(b));
                else Elementwise("attention_softmax_backward", (long)h * tq * tk, P(scores), P(dp), P(d), h * tq, tk);
            }
            using (TimeProduct("attention dQ, dK", tq, tk, hd, 2 * h))
                for (int m = 0; m < g; m++)
                {
                    // dQ_h = scale dS_h K_j   (Tq, hd);  dK_j (+)= scale dS_h^T Q_h   (Tk, hd)
                    _blas.GemmStridedBatched(CuBlas.OpN, CuBlas.OpN, hd, tq, tk, s.Scale, K(b), k.Stride, hd, Scores(scoreGradients, m, es), tk, ss, 0f,
                        Member(HeadBase(dq, P(dq.Tensor), 4, b, tq), m, 4), dq.Stride, qs, hkv, _compute, input);
                    _blas.GemmStridedBatched(CuBlas.OpN, CuBlas.OpT, hd, tk, tq, s.Scale, Member(Q(b), m, es), q.Stride, qs, Scores(scoreGradients, m, es), tk, ss,
                        m == 0 ? 0f : 1f, HeadBase(dk, P(dk.Tensor), 4, b, tk), dk.Stride, hd, hkv, _compute, input);
                }
        }
    }

    /// <summary>
    /// q, k and v may be BFloat16 tensors (activations kept in bf16, <see cref="ActivationType"/>) in bf16 mode, where
    /// every path reads bf16 copies of them (<see cref="Operands16"/> then reads them in place); otherwise Float32, as is
    /// the output.
    /// </summary>
    private void CheckAttentionTypes(ColumnBlock q, ColumnBlock k, ColumnBlock v, Tensor output, string op)
    {
        foreach (var t in new[] { q.Tensor, k.Tensor, v.Tensor })
            if (t.DType != DType.Float32 && (t.DType != DType.BFloat16 || Precision != GemmPrecision.Bf16))
                throw new ArgumentException($"{op}: q, k and v must be Float32{(Precision == GemmPrecision.Bf16 ? " or BFloat16" : "")}, got {t}");
        if (output.DType != DType.Float32 && (output.DType != DType.BFloat16 || Precision != GemmPrecision.Bf16))
            throw new ArgumentException($"{op}: the output must be Float32{(Precision == GemmPrecision.Bf16 ? " or BFloat16" : "")}, got {output}");
    }

    /// <summary>
    /// Whether attention runs as one fused kernel (Kernels/flash.cu): bf16 products, head dimension 64 or 128, rows of the
    /// bf16 copies of q, k, v 16-byte aligned (stride and offset multiples of 8) and the fp32 outputs 8-byte aligned.
    /// Otherwise scores go through device memory (cuBLAS + softmax kernels).
    /// </summary>
    private bool UsesFusedAttention(AttentionShape s, ColumnBlock q, ColumnBlock k, ColumnBlock v, Tensor output, ColumnBlock? dq, ColumnBlock? dk, ColumnBlock? dv) =>
        FusedAttention && Precision == GemmPrecision.Bf16 && s.HeadDim is 64 or 128 && output.Columns % 2 == 0
        && new[] { q, k, v }.All(c => c.Stride % 8 == 0 && c.Offset % 8 == 0)
        && new[] { dq, dk, dv }.All(c => c is not ColumnBlock b || (b.Stride % 2 == 0 && b.Offset % 2 == 0));

    /// <summary>Fused attention on or off (on by default; FLORA_ATTENTION=unfused turns it off, for comparisons).</summary>
    public bool FusedAttention { get; set; } = Environment.GetEnvironmentVariable("FLORA_ATTENTION") != "unfused";

    /// <summary>
    /// dQ's atomic adds in the fused backward as 16-byte vector reductions where the device and dq's alignment allow (on
    /// by default; FLORA_ATTENTION_DQ=scalar turns them off, for comparisons).
    /// </summary>
    public bool VectorDqReductions { get; set; } = Environment.GetEnvironmentVariable("FLORA_ATTENTION_DQ") != "scalar";

    /// <summary>Bytes of a bf16 tile of <paramref name="rows"/> rows of <paramref name="columns"/>, rows padded by 8 elements (flash.cu's layout).</summary>
    private static int Tile(int rows, int columns) => rows * (columns + 8) * 2;

    /// <summary>Dynamic shared memory of flash_attention_forward_{d}: Q (128 rows), K and V (64 rows) double-buffered; 55,296 bytes for d = 64, 104,448 for 128.</summary>
    internal static int FusedForwardSharedBytes(int d) => Tile(128, d) + 4 * Tile(64, d);

    /// <summary>
    /// Dynamic shared memory of flash_attention_backward_{d}: K, V, Q x2, dO x2 (64 rows of d), P and dS (64 x 64), lse and
    /// row dots x2 (64 floats); 74,752 bytes for d = 64, 123,904 for 128.
    /// </summary>
    internal static int FusedBackwardSharedBytes(int d) => 6 * Tile(64, d) + 2 * Tile(64, 64) + 4 * 64 * 4;

    private readonly HashSet<string> _sharedMemoryAllowed = [];

    /// <summary>Raises <paramref name="kernel"/>'s dynamic shared-memory limit to <paramref name="bytes"/>, once per kernel.</summary>
    private void AllowFusedSharedMemory(string kernel, int bytes)
    {
        if (_sharedMemoryAllowed.Contains(kernel)) return;
        _device.AllowSharedMemory(kernel, bytes);
        _sharedMemoryAllowed.Add(kernel);
    }

    private void FusedAttentionBackward(AttentionShape s, Tensor dOutput, ColumnBlock q, ColumnBlock k, ColumnBlock v, Tensor output, Tensor logSumExp,
        ColumnBlock dq, ColumnBlock dk, ColumnBlock dv)
    {
        int tq = s.QueryLength, tk = s.KeyLength, hd = s.HeadDim, h = s.Heads, rows = s.Batch * tq;
        string kernel = $"flash_attention_backward_{hd}";
        int shared = FusedBackwardSharedBytes(hd);
        AllowFusedSharedMemory(kernel, shared);
        var (q16, k16, v16) = Operands16(q, k, v);
        ulong dOut16 = ToBf16(dOutput, _operandC);
        Tensor d = _rowDots.Get(new Shape(s.Batch * h * tq));                  // D = rowsum(dO * O) per (b, h, t)
        using (Time(nameof(AttentionBackward)))
        {
            _device.Launch("flash_attention_row_dot", (uint)((rows * h + 7) / 8), 1, Threads, 0, P(dOutput), (long)dOutput.Columns,
                P(output), output.DType == DType.BFloat16 ? 1 : 0, (long)output.Columns, P(d), rows, h, tq, hd);
            Elementwise("zero_columns", (long)rows * s.Width, Address(dq), (long)dq.Stride, rows, s.Width);   // dq gathers atomic adds
        }
        using (new ProfileScope(this, nameof(AttentionBackward), Profiler is null ? null : $"fused attention backward {tq}x{tk}x{s.HeadDim} x{5 * s.Batch * h}", AttentionFlops(s, 5)))
            _device.Launch(kernel, (uint)(s.Batch * s.KvHeads), (uint)((tk + 63) / 64), 128, (uint)shared,
                HeadBase(q, q16, 2, 0, tq), HeadBase(k, k16, 2, 0, tk), HeadBase(v, v16, 2, 0, tk), (long)q.Stride, (long)k.Stride, (long)v.Stride,
                dOut16, (long)dOutput.Columns, P(logSumExp), P(d),
                Address(dq), Address(dk), Address(dv), (long)dq.Stride, (long)dk.Stride, (long)dv.Stride, h, tq, tk, s.Scale, s.Causal ? 1 : 0, KeyLengths(s), s.Group,
                VectorDqReductions && Address(dq) % 16 == 0 && dq.Stride % 4 == 0 ? 1 : 0);   // dQ's rows 16-byte aligned: vector reductions
    }

    /// <summary>The key lengths of <paramref name="s"/> on the device (0 when every key is real).</summary>
    private ulong KeyLengths(AttentionShape s)
    {
        if (s.KeyLengths is not int[] lengths) return 0;
        Tensor t = _keyLengths.Get(new Shape(lengths.Length));
        Upload(lengths, t);
        return P(t);
    }

    /// <summary>Floating-point operations of <paramref name="products"/> score-sized products (half of them when causal).</summary>
    private static double AttentionFlops(AttentionShape s, int products) =>
        2.0 * products * s.Batch * s.Heads * s.QueryLength * (double)s.KeyLength * s.HeadDim * (s.Causal ? 0.5 : 1.0);

    private static ulong Address(ColumnBlock c) => P(c.Tensor) + (ulong)(c.Offset * 4L);

    /// <summary>
    /// bf16 copies of the tensors q, k and v live in (converted once each, however many of them are the same tensor:
    /// a fused qkv projection, or separate q, k and v projections).
    /// </summary>
    private (ulong Q, ulong K, ulong V) Operands16(ColumnBlock q, ColumnBlock k, ColumnBlock v)
    {
        ulong q16 = ToBf16(q.Tensor, _operandA);
        ulong k16 = k.Tensor == q.Tensor ? q16 : ToBf16(k.Tensor, _operandB);
        ulong v16 = v.Tensor == q.Tensor ? q16 : v.Tensor == k.Tensor ? k16 : ToBf16(v.Tensor, _operandV);
        return (q16, k16, v16);
    }

    /// <summary>
    /// Address of head 0 of batch element b in a column block (rows of <paramref name="length"/>), in the copy at
    /// <paramref name="baseAddress"/> whose elements have <paramref name="elementSize"/> bytes.
    /// </summary>
    private static ulong HeadBase(ColumnBlock c, ulong baseAddress, int elementSize, int b, int length) =>
        baseAddress + (ulong)(((long)b * length * c.Stride + c.Offset) * elementSize);

    private static ulong OutputBase(Tensor t, int b, int length) => P(t) + (ulong)((long)b * length * t.Columns * 4);

    private static ulong LseBase(Tensor lse, int b, int heads, int length) => P(lse) + (ulong)((long)b * heads * length * 4);

    public void Rotary(Tensor x, int offset, int heads, int headDim, int sequenceLength, float theta, bool inverse, RopeScaling? scaling = null)
    {
        if (headDim % 2 != 0) throw new ArgumentException($"Rotary: head dimension {headDim} must be even");
        if (offset < 0 || offset + heads * headDim > x.Columns || sequenceLength <= 0 || x.Rows % sequenceLength != 0)
            throw new ArgumentException($"Rotary: columns [{offset}, {offset + heads * headDim}) of {x.Shape} with sequence length {sequenceLength} do not fit");
        using var _ = Time(nameof(Rotary));
        // The cosines and sines of every (position, frequency), computed once per shape and kept (T hd floats).
        var key = (sequenceLength, headDim, theta, scaling?.Factor ?? 0.0, scaling?.LowFrequencyFactor ?? 0.0, scaling?.HighFrequencyFactor ?? 0.0, scaling?.OriginalContext ?? 0.0);
        Tensor table = _rotaryTable.Get(new Shape(sequenceLength * headDim));
        if (_rotaryKey != key || _rotaryTablePointer != table.Pointer)
        {
            Elementwise("rotary_table", (long)sequenceLength * (headDim / 2), P(table), sequenceLength, headDim, theta, key.Item4, key.Item5, key.Item6, key.Item7);
            (_rotaryKey, _rotaryTablePointer) = (key, table.Pointer);
        }
        if (x.DType is not (DType.Float32 or DType.BFloat16)) throw new ArgumentException($"Rotary: x must be Float32 or BFloat16, got {x}");
        Elementwise(x.DType == DType.BFloat16 ? "rotary_bf16" : "rotary", (long)x.Rows * heads * (headDim / 2), P(x), P(table), x.Rows, x.Columns, offset, heads, headDim, sequenceLength, inverse ? -1f : 1f);
    }

    private (int, int, float, double, double, double, double)? _rotaryKey;
    private IntPtr _rotaryTablePointer;

    public void SwiGlu(Tensor gate, Tensor up, Tensor y)
    {
        if (gate.Count != y.Count || up.Count != y.Count || gate.Columns != y.Columns)
            throw new ArgumentException($"SwiGlu: gate {gate.Shape}, up {up.Shape} and output {y.Shape} should all be (N, F)");
        string kernel = (gate.DType, up.DType, y.DType) switch
        {
            (DType.Float32, DType.Float32, DType.Float32) => "swiglu",
            (DType.BFloat16, DType.BFloat16, DType.BFloat16) => "swiglu_bf16",
            _ => throw new ArgumentException($"SwiGlu: gate, up and y must all be Float32 or all BFloat16, got {gate}, {up} and {y}"),
        };
        using var _ = Time(nameof(SwiGlu));
        Elementwise(kernel, y.Count, P(gate), P(up), P(y), (long)y.Count);
    }

    public void SwiGluBackward(Tensor gate, Tensor up, Tensor dy, Tensor dGate, Tensor dUp)
    {
        if (gate.Count != dy.Count || up.Count != dy.Count || dGate.Count != dy.Count || dUp.Count != dy.Count || gate.Columns != dy.Columns)
            throw new ArgumentException($"SwiGluBackward: gate {gate.Shape}, up {up.Shape}, gradient {dy.Shape}, dGate {dGate.Shape} and dUp {dUp.Shape} should all be (N, F)");
        string kernel = (gate.DType, up.DType, dy.DType, dGate.DType, dUp.DType) switch
        {
            (DType.Float32, DType.Float32, DType.Float32, DType.Float32, DType.Float32) => "swiglu_backward",
            (DType.BFloat16, DType.BFloat16, DType.Float32, DType.BFloat16, DType.BFloat16) => "swiglu_backward_bf16",
            _ => throw new ArgumentException($"SwiGluBackward: all Float32, or gate, up, dGate and dUp BFloat16 with a Float32 dy; got {gate}, {up}, {dy}, {dGate} and {dUp}"),
        };
        using var _ = Time(nameof(SwiGluBackward));
        Elementwise(kernel, dy.Count, P(gate), P(up), P(dy), P(dGate), P(dUp), (long)dy.Count);
    }

    public void Dropout(Tensor x, Tensor y, float p, ulong seed)
    {
        CheckSameCount(x, y, nameof(Dropout));
        if (!(p >= 0 && p < 1)) throw new ArgumentException($"Dropout: probability must be in [0, 1), got {p}");
        using var _ = Time(nameof(Dropout));
        if (p == 0) { if (x.Pointer != y.Pointer) Copy(x, y); return; }
        Elementwise("dropout", (x.Count + 3) / 4, P(x), P(y), x.Count, p, 1f / (1f - p), (uint)seed, (uint)(seed >> 32));
    }

    // ---- losses and metrics -------------------------------------------------------------------

    public (double Sum, int Count) SoftmaxCrossEntropy(Tensor logits, Tensor targets, Tensor probabilities)
    {
        CheckTargets(logits, targets, nameof(SoftmaxCrossEntropy));
        CheckSameCount(logits, probabilities, nameof(SoftmaxCrossEntropy));
        using var _ = Time(nameof(SoftmaxCrossEntropy));
        int rows = logits.Rows;
        Tensor losses = _rowDots.Get(new Shape(rows));
        _device.Launch("softmax_cross_entropy", (uint)rows, 1, 1024, 0, P(logits), P(targets), P(probabilities), P(losses), rows, logits.Columns);
        var host = new float[rows];
        Download(losses, host);
        double sum = 0;
        int count = 0;
        foreach (float l in host) if (l >= 0) { sum += l; count++; }
        return (sum, count);
    }

    public void SoftmaxCrossEntropyBackward(Tensor probabilities, Tensor targets, Tensor dLogits, float scale)
    {
        CheckTargets(probabilities, targets, nameof(SoftmaxCrossEntropyBackward));
        CheckSameCount(probabilities, dLogits, nameof(SoftmaxCrossEntropyBackward));
        using var _ = Time(nameof(SoftmaxCrossEntropyBackward));
        Elementwise("softmax_cross_entropy_backward", probabilities.Count, P(probabilities), P(targets), P(dLogits), probabilities.Rows, probabilities.Columns, scale);
    }

    public int CountCorrect(Tensor logits, Tensor targets)
    {
        CheckTargets(logits, targets, nameof(CountCorrect));
        using var _ = Time(nameof(CountCorrect));
        Tensor counter = _counter.Get(new Shape(1));
        Driver.Check(Driver.Functions.MemsetD32(P(counter), 0, 1), "cuMemsetD32(counter)");
        _device.Launch("count_correct", (uint)logits.Rows, 1, Threads, 0, P(logits), P(targets), P(counter), logits.Rows, logits.Columns);
        var host = new int[1];
        Download(counter, host);
        return host[0];
    }

    /// <summary>Targets are checked on the host (one copy) so that an out-of-range target is an error, not a fault.</summary>
    private static void CheckTargets(Tensor logits, Tensor targets, string op)
    {
        if (targets.Count != logits.Rows)
            throw new ArgumentException($"{op}: {targets.Count} targets for {logits.Rows} rows of logits {logits.Shape}");
        CheckTargetRange(targets, logits.Columns, op);
    }

    private static void CheckTargetRange(Tensor targets, int classes, string op)
    {
        var host = new int[targets.Count];
        targets.CopyTo<int>(host);
        for (int r = 0; r < host.Length; r++)
            if (host[r] >= classes) throw new ArgumentException($"{op}: target {host[r]} at row {r} is outside [0, {classes}) (negative targets are ignored)");
    }

    /// <summary>
    /// Chunks of rows whose logits take about 256 MB. Per chunk: logits = x W^T (cuBLAS), one kernel for the row
    /// losses (and the logit gradients), then dx and dW (cuBLAS). In bf16 mode the product writes the logits in bf16,
    /// as autocast's lm_head does (the loss then reads logits rounded to bf16, and the chunks are twice as many rows),
    /// and their gradients, bf16 too, are written over them.
    /// Logit rows are padded so that every operand is aligned for the tensor cores; in bf16 mode the vocabulary
    /// itself is padded to a multiple of 128 with zero rows of W (GPT-2's 50,257 becomes 50,304), because an
    /// odd product dimension makes cuBLAS fall back to slow kernels: the padding logits are 0 and left out of
    /// the loss, their gradients are 0.
    /// </summary>
    public (double Sum, int Count) LinearCrossEntropy(Tensor x, Tensor weight, Tensor targets, float gradScale,
        Tensor? dx, Tensor? dWeight, float weightScale, float weightBeta)
    {
        LinearCrossEntropyChecks.Validate(x, weight, targets, dx, dWeight);
        CheckTargetRange(targets, weight.Rows, nameof(LinearCrossEntropy));
        bool half = Precision == GemmPrecision.Bf16, gradients = dx is not null || dWeight is not null;
        int n = x.Rows, c = x.Columns, v = weight.Rows, ld = half ? (v + 127) & ~127 : (v + 7) & ~7, vp = half ? ld : v;
        int chunk = Math.Clamp((half ? 128 << 20 : 64 << 20) / ld, 1, n);          // 256 MB of logits (fp32, or bf16 in bf16 mode)
        if (chunk > 128) chunk -= chunk % 128;
        int input = half ? CuBlas.R16BF : CuBlas.R32F, es = half ? 2 : 4;
        ulong xs = half ? ToBf16(x, _operandA) : P(x), ws = half ? 0 : ToF32(weight, _wideB);   // fp32 modes widen a bf16 weight
        if (half && weight.DType == DType.BFloat16 && vp == v) ws = P(weight);          // bf16 weights need no copy when V is aligned
        else if (half)
        {
            Tensor w16 = _operandB.Get(new Shape(vp * c));                             // W (V, C) then V_pad - V zero rows
            ws = P(w16);
            if (weight.DType == DType.BFloat16)
                Driver.Check(Driver.Functions.MemcpyDtoD(ws, P(weight), (nuint)weight.Bytes), $"cuMemcpyDtoD({weight.Bytes} bytes)");
            else ConvertToBf16(weight, ws);
            using (Time(nameof(ToBf16))) Elementwise("zero_u16", (long)(vp - v) * c, ws + (ulong)((long)v * c * 2), (long)(vp - v) * c);
        }
        // bf16 mode: the product writes the logits in bf16 (as autocast's lm_head does) and their gradients replace them.
        ulong logits = half ? P(_headLogits16.Get(new Shape(chunk * ld))) : P(_headLogits.Get(new Shape(chunk * ld)));
        Tensor losses = _headLosses.Get(new Shape(n));
        uint threads = v >= 8192 ? 1024u : 256u;
        for (int r0 = 0; r0 < n; r0 += chunk)
        {
            int rn = Math.Min(chunk, n - r0);
            ulong xc = xs + (ulong)((long)r0 * c * es), tc = P(targets) + (ulong)(r0 * 4L), lc = P(losses) + (ulong)(r0 * 4L);
            using (TimeProduct("head logits NT", rn, vp, c))                             // logits (rn, V_pad) = x_c W^T
                _blas.Gemm(CuBlas.OpT, CuBlas.OpN, vp, rn, c, 1f, ws, c, xc, c, 0f, logits, ld, _compute, input, input);
            using (Time(nameof(LinearCrossEntropy)))
            {
                if (!gradients) _device.Launch(half ? "cross_entropy_rows_bf16" : "cross_entropy_rows", (uint)rn, 1, threads, 0, logits, (long)ld, tc, lc, rn, v);
                else if (half) _device.Launch("cross_entropy_backward_bf16_in_place", (uint)rn, 1, threads, 0, logits, (long)ld, tc, lc, rn, v, gradScale);
                else _device.Launch("cross_entropy_backward_f32", (uint)rn, 1, threads, 0, logits, (long)ld, tc, lc, rn, v, gradScale);
            }
            if (!gradients) continue;
            ulong dl = logits;                                                           // the logits' gradients, written over them
            if (dx is not null)
                using (TimeProduct("head dx NN", rn, c, vp))                             // dx_c (rn, C) = dlogits W
                    _blas.Gemm(CuBlas.OpN, CuBlas.OpN, c, rn, vp, 1f, ws, c, dl, ld, 0f, P(dx) + (ulong)((long)r0 * c * 4), c, _compute, input);
            if (dWeight is not null)
                using (TimeProduct("head dW TN", v, c, rn))                              // dW (V, C) (+)= dlogits^T x_c
                    _blas.Gemm(CuBlas.OpN, CuBlas.OpT, c, v, rn, weightScale, xc, c, dl, ld, r0 == 0 ? weightBeta : 1f, P(dWeight), c, _compute, input);
        }
        var host = new float[n];
        Download(losses, host);
        double sum = 0;
        int count = 0;
        foreach (float l in host) if (l >= 0) { sum += l; count++; }
        return (sum, count);
    }

    // ---- optimizer kernels ------------------------------------------------------------------------

    public void AdafactorFactoredMoments(Tensor g, Tensor rows, Tensor columns, float decay, float eps)
    {
        if (g.Shape.Rank != 2 || rows.Count != g.Rows || columns.Count != g.Columns)
            throw new ArgumentException($"AdafactorFactoredMoments: rows {rows.Shape} and columns {columns.Shape} do not match the matrix {g.Shape}");
        using var _ = Time(nameof(AdafactorFactoredMoments));
        // Rows of whole 16-byte quads: float4 loads (four columns a thread in the column pass).
        bool quads = g.Columns % 4 == 0 && P(g) % 16 == 0;
        WarpPerRow(quads ? "adafactor_row_moments_x4" : "adafactor_row_moments", g.Rows, P(g), P(rows), g.Rows, g.Columns, decay, eps);
        int perChunk = RowsPerChunk(g.Rows, quads ? g.Columns / 4 : g.Columns), chunks = Math.Max(1, (g.Rows + perChunk - 1) / perChunk);
        Tensor partial = _partials.Get(new Shape(chunks * g.Columns));
        int threadColumns = quads ? g.Columns / 4 : g.Columns;
        _device.Launch(quads ? "column_partial_squares_x4" : "column_partial_squares", (uint)((threadColumns + Threads - 1) / Threads), (uint)chunks, Threads, 0,
            P(g), P(partial), g.Rows, g.Columns, perChunk);
        ColumnFinish("adafactor_column_finish", g.Columns, P(partial), P(columns), chunks, g.Rows, g.Columns, decay, eps);
    }

    public void AdafactorFactoredPrecondition(Tensor g, Tensor rows, Tensor columns, Tensor u, float alpha = 1f, float beta = 0f, Tensor? rounded = null)
    {
        if (g.Shape.Rank != 2 || rows.Count != g.Rows || columns.Count != g.Columns || u.Count != g.Count)
            throw new ArgumentException($"AdafactorFactoredPrecondition: rows {rows.Shape}, columns {columns.Shape} and u {u.Shape} do not match the matrix {g.Shape}");
        if (rounded is not null && (beta != 0 || rounded.Count != u.Count || u.DType != DType.Float32 || rounded.DType is not (DType.BFloat16 or DType.Float32)))
            throw new ArgumentException($"AdafactorFactoredPrecondition: a rounded copy {rounded} of u {u} needs a Float32 u, beta 0 and as many elements");
        using var _ = Time(nameof(AdafactorFactoredPrecondition));
        Tensor mean = _rowDots.Get(new Shape(1));
        _device.Launch("mean_of", 1, 1, 1024, 0, P(rows), P(mean), rows.Count);
        if (u.DType == DType.BFloat16 && beta != 0) throw new ArgumentException("AdafactorFactoredPrecondition: a bf16 u cannot accumulate (beta must be 0)");
        // Rows of whole 16-byte quads: a warp per row (the same values as the element-wise kernels, faster).
        bool quads = g.Columns % 4 == 0 && P(g) % 16 == 0 && P(columns) % 16 == 0 && P(u) % 16 == 0 && (rounded is null || P(rounded) % 8 == 0);
        ulong rounded16 = rounded is { DType: DType.BFloat16 } ? P(rounded) : 0UL;
        if (u.DType == DType.Float32 && quads)
            WarpPerRow("adafactor_precondition_x4", g.Rows, P(g), P(rows), P(columns), P(mean), P(u), rounded16, g.Rows, g.Columns, alpha, beta);
        else if (rounded16 != 0)
            Elementwise("adafactor_precondition_and_bf16", g.Count, P(g), P(rows), P(columns), P(mean), P(u), rounded16, g.Rows, g.Columns, alpha);
        else Elementwise(u.DType == DType.BFloat16 ? "adafactor_precondition_bf16" : "adafactor_precondition", g.Count, P(g), P(rows), P(columns), P(mean), P(u), g.Rows, g.Columns, alpha, beta);
        if (rounded is { DType: DType.Float32 }) Copy(u, rounded);
    }

    public void SquaredMovingAverage(Tensor g, Tensor v, float decay, float eps)
    {
        CheckSameCount(g, v, nameof(SquaredMovingAverage));
        using var _ = Time(nameof(SquaredMovingAverage));
        Elementwise("squared_moving_average", g.Count, P(g), P(v), g.Count, decay, eps);
    }

    public void DivideBySqrt(Tensor g, Tensor v, Tensor u, float alpha = 1f, float beta = 0f)
    {
        CheckSameCount(g, v, nameof(DivideBySqrt)); CheckSameCount(g, u, nameof(DivideBySqrt));
        using var _ = Time(nameof(DivideBySqrt));
        if (u.DType == DType.BFloat16 && beta != 0) throw new ArgumentException("DivideBySqrt: a bf16 u cannot accumulate (beta must be 0)");
        Elementwise(u.DType == DType.BFloat16 ? "divide_by_sqrt_bf16" : "divide_by_sqrt", g.Count, P(g), P(v), P(u), g.Count, alpha, beta);
    }

    public void AdafactorUpdate(Tensor p, Tensor u, float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter)
    {
        CheckSameCount(p, u, nameof(AdafactorUpdate));
        CheckFloat32(nameof(AdafactorUpdate), p, u);
        using var _ = Time(nameof(AdafactorUpdate));
        Tensor coef = AdafactorCoefficients(p, u, lr, eps2, clipThreshold, weightDecay, scaleParameter);
        Elementwise("scaled_update", p.Count, P(p), P(u), P(coef), p.Count);
    }

    /// <summary>
    /// Adafactor's two scalars, left on the device: coef[0] = 1 - wd s and coef[1] = -s / clip from the sums of squares of
    /// p (Float32, or BFloat16 read widened: the same sums in the same order) and u (optimizer.cu's adafactor_coefficients).
    /// </summary>
    private Tensor AdafactorCoefficients(Tensor p, Tensor u, float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter)
    {
        uint blocks = ReductionBlocks(Math.Max(p.Count, u.Count));
        Tensor partials = _partials.Get(new Shape((int)blocks * 4));                 // 2 doubles per block
        if (p.DType == DType.BFloat16) _device.Launch("sum_squares_pair_bf16", blocks, 1, Threads, 0, P(p), p.Count, P(u), u.Count, P(partials));
        else _device.Launch("sum_squares_pair", blocks, 1, Threads, 0, P(p), p.Count, P(u), 0UL, u.Count, P(partials));
        Tensor coef = _coefficients.Get(new Shape(2));
        _device.Launch("adafactor_coefficients", 1, 1, Threads, 0, P(partials), (int)blocks, 2, (long)p.Count, P(partials) + 8, (int)blocks, 2, (long)u.Count,
            lr, eps2, clipThreshold, weightDecay, scaleParameter ? 1 : 0, P(coef));
        return coef;
    }

    public void AdafactorUpdateRounded(Tensor p, Tensor u, float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter, ulong seed)
    {
        CheckSameCount(p, u, nameof(AdafactorUpdateRounded));
        if (p.DType != DType.BFloat16 || u.DType != DType.Float32)
            throw new ArgumentException($"AdafactorUpdateRounded: expected a BFloat16 p and a Float32 u, got {p} and {u}");
        if (p.Count == 0) return;
        using var _ = Time(nameof(AdafactorUpdateRounded));
        Tensor coef = AdafactorCoefficients(p, u, lr, eps2, clipThreshold, weightDecay, scaleParameter);   // as AdafactorUpdate's
        int n = p.Count;
        uint k0 = (uint)seed, k1 = (uint)(seed >> 32);
        if (n % 8 == 0 && P(p) % 16 == 0 && P(u) % 16 == 0) Elementwise("scaled_update_rounded_bf16_x8", n / 8, P(p), P(u), P(coef), n / 8, k0, k1);
        else Elementwise("scaled_update_rounded_bf16", (n + 7) / 8, P(p), P(u), P(coef), n, k0, k1);
    }

    /// <summary>Parameters up to this many elements take <see cref="AdafactorUnfactoredStep"/> as one block (1,024 threads).</summary>
    private const int SingleBlockStepLimit = 1 << 16;

    public void AdafactorUnfactoredStep(Tensor p, Tensor g, Tensor v, Tensor u, float decay, float eps1, float alpha, float beta,
        float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter)
    {
        CheckSameCount(p, g, nameof(AdafactorUnfactoredStep)); CheckSameCount(p, v, nameof(AdafactorUnfactoredStep)); CheckSameCount(p, u, nameof(AdafactorUnfactoredStep));
        CheckFloat32(nameof(AdafactorUnfactoredStep), p, g, v, u);
        if (p.Count > SingleBlockStepLimit)
        {
            SquaredMovingAverage(g, v, decay, eps1);
            DivideBySqrt(g, v, u, alpha, beta);
            AdafactorUpdate(p, u, lr, eps2, clipThreshold, weightDecay, scaleParameter);
            return;
        }
        using var _ = Time(nameof(AdafactorUnfactoredStep));
        _device.Launch("adafactor_unfactored_step", 1, 1, 1024, 0, P(p), P(g), P(v), P(u), p.Count, decay, eps1, alpha, beta,
            lr, eps2, clipThreshold, weightDecay, scaleParameter ? 1 : 0);
    }

    public void AdafactorLowRankUpdate(Tensor p, Tensor m, Tensor a, bool compressedColumns, float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter)
    {
        int r = a.Rows, rows = p.Rows, cols = p.Columns;
        CheckFloat32(nameof(AdafactorLowRankUpdate), p, m);
        bool half = Precision == GemmPrecision.Bf16;
        using var reuseM = ReuseOperand(m);                                          // M feeds its Gram matrix and the update
        Tensor k = _gramA.Get(new Shape(r, r)), l = _gramM.Get(new Shape(r, r));
        MatMul(a, false, a, true, k);                                               // A A^T
        if (compressedColumns) MatMul(m, true, m, false, l);                        // M^T M
        else MatMul(m, false, m, true, l);                                          // M M^T
        using var _ = Time(nameof(AdafactorLowRankUpdate));
        // ||M A||^2 = sum (A A^T) o (M^T M): the update's RMS without the n x m update; one launch sums p^2 and K o L.
        uint blocks = ReductionBlocks(Math.Max(p.Count, k.Count));
        Tensor partials = _partials.Get(new Shape((int)blocks * 4));                 // 2 doubles per block
        _device.Launch("sum_squares_pair", blocks, 1, Threads, 0, P(p), p.Count, P(k), P(l), k.Count, P(partials));
        Tensor coef = _coefficients.Get(new Shape(2));
        _device.Launch("adafactor_coefficients", 1, 1, Threads, 0, P(partials), (int)blocks, 2, (long)p.Count, P(partials) + 8, (int)blocks, 2, (long)p.Count,
            lr, eps2, clipThreshold, weightDecay, scaleParameter ? 1 : 0, P(coef));
        // W = coef[0] W + coef[1] decompress(M): columns W (n, m) = M (n, r) A (r, m); rows W = A^T (n, r) M (r, m). Row-major, so swap.
        int input = half ? CuBlas.R16BF : CuBlas.R32F;
        ulong mp = half ? ToBf16(m, _operandA) : P(m), ap = half ? ToBf16(a, _operandB) : P(a);
        var (first, firstLd, second, secondLd, transSecond) = compressedColumns ? (ap, a.Columns, mp, m.Columns, CuBlas.OpN) : (mp, m.Columns, ap, a.Columns, CuBlas.OpT);
        if (_lt is not null && half && _lt.TryMatmulDeviceScalars(CuBlas.OpN, transSecond, cols, rows, r, P(coef) + 4, first, firstLd, second, secondLd, P(coef), P(p), cols, _compute, input))
            return;
        _blas.GemmDeviceScalars(CuBlas.OpN, transSecond, cols, rows, r, P(coef) + 4, first, firstLd, second, secondLd, P(coef), P(p), cols, _compute, input);
    }

    /// <summary>
    /// The fewest elements for which <see cref="AdafactorFloraOfficialStep"/> takes its fused kernels: below, the r-space
    /// products and launches cost about what the fused kernels save (on an H100 with every matrix fused, GPT-2's FLORA
    /// step went from 27.9 to 28.9 ms at 124M and 69.4 to 71.3 ms at 350M, whose largest blocks' matrices have 2^22
    /// elements; llama-7b's, of 2^24 elements and more, from 303 to 280 ms).
    /// </summary>
    private const int FusedFloraStepMinimum = 1 << 23;

    public void AdafactorFloraOfficialStep(Tensor p, Tensor g, Tensor rows, Tensor columns, Tensor m, Tensor a, bool compressedColumns, Tensor? rounded,
        Tensor compressed, float beta, float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter, ulong seed)
    {
        int n = g.Rows, cols = g.Columns, r = a.Rows;
        if (g.Shape.Rank != 2 || p.Count != g.Count || rows.Count != n || columns.Count != cols || m.Count != compressed.Count
            || m.Count != (compressedColumns ? n * r : r * cols) || a.Columns != (compressedColumns ? cols : n) || (rounded is not null && rounded.Count != g.Count))
            throw new ArgumentException($"AdafactorFloraOfficialStep: p {p.Shape}, rows {rows.Shape}, columns {columns.Shape}, M {m.Shape}, A {a.Shape}, " +
                $"compressed {compressed.Shape} and rounded {rounded?.Shape} do not fit the matrix {g.Shape} compressed along its {(compressedColumns ? "columns" : "rows")}");
        CheckFloat32(nameof(AdafactorFloraOfficialStep), g, rows, columns, m, compressed);
        bool fused = rounded is { DType: DType.BFloat16 } && Precision == GemmPrecision.Bf16 && p.DType is DType.Float32 or DType.BFloat16
            && g.Count >= FusedFloraStepMinimum && cols % 8 == 0 && new[] { g, columns, rounded, p }.All(t => P(t) % 16 == 0);
        if (!fused)
        {
            ComposedSteps.AdafactorFloraOfficial(this, p, g, rows, columns, m, a, compressedColumns, rounded, compressed, beta, lr, eps2, clipThreshold,
                weightDecay, scaleParameter, seed);
            return;
        }
        int pBf16 = p.DType == DType.BFloat16 ? 1 : 0;
        uint rowBlocks = (uint)((n + 7) / 8);                                          // WarpPerRow's blocks
        Tensor mean = _rowDots.Get(new Shape(1));
        Tensor sums = _floraSums.Get(new Shape((int)rowBlocks * 4));                   // 2 doubles per block
        using (Time(nameof(AdafactorFloraOfficialStep)))
        {
            _device.Launch("mean_of", 1, 1, 1024, 0, P(rows), P(mean), n);
            WarpPerRow("flora_precondition_sums", n, P(g), P(rows), P(columns), P(mean), P(rounded!), P(p), pBf16, n, cols, P(sums));
        }
        // r-space: c = compress(u) from its bf16 copy; X = M A A^T (rows: A A^T M), so that <M, X> = ||decompress(M)||^2.
        using (ReuseOperand(m))                                                        // M feeds X and the decompression
        {
            ComposedSteps.Compress(this, rounded!, a, compressed, compressedColumns, 1f, 0f);
            Tensor gram = _gramA.Get(new Shape(r, r)), x = _floraX.Get(m.Shape);
            MatMul(a, false, a, true, gram);
            if (compressedColumns) MatMul(m, false, gram, false, x);
            else MatMul(gram, false, m, false, x);
            ComposedSteps.Decompress(this, m, a, rounded!, compressedColumns, beta, 0f);   // d = beta decompress(M), bf16, over the rounded u
            uint dotBlocks = ReductionBlocks(m.Count);
            Tensor dots = _partials.Get(new Shape((int)dotBlocks * 4));
            Tensor coef = _coefficients.Get(new Shape(2));
            using var _ = Time(nameof(AdafactorFloraOfficialStep));
            _device.Launch("dot_pair", dotBlocks, 1, Threads, 0, P(m), P(x), P(compressed), m.Count, P(dots));
            _device.Launch("flora_official_coefficients", 1, 1, Threads, 0, P(sums), (int)rowBlocks, P(dots), (int)dotBlocks, (long)g.Count, beta,
                lr, eps2, clipThreshold, weightDecay, scaleParameter ? 1 : 0, P(coef));
            WarpPerRow("flora_official_update", n, P(g), P(rows), P(columns), P(mean), P(rounded!), P(p), pBf16, n, cols, beta, P(coef), (uint)seed, (uint)(seed >> 32));
        }
        Axpby(1 - beta, compressed, beta, m);                                          // M = beta M + (1 - beta) c, after its last read
    }

    /// <summary>
    /// Kernels that write fp32 arithmetic through raw pointers would misread a bf16 tensor: bf16 weights reach the
    /// optimizer ops as their Float32 working copy (<c>Optimizer.Update</c>).
    /// </summary>
    private static void CheckFloat32(string op, params Tensor[] tensors)
    {
        foreach (var t in tensors)
            if (t.DType != DType.Float32) throw new ArgumentException($"{op}: expected Float32 tensors, got {t}");
    }

    private uint ReductionBlocks(long count) => (uint)Math.Max(1, Math.Min((count + Threads - 1) / Threads, _device.Multiprocessors * 4));

    public void AdamApply(Tensor p, Tensor m, Tensor v, float lr, float weightDecay, float eps, float biasCorrection1, float biasCorrection2)
    {
        CheckSameCount(p, m, nameof(AdamApply)); CheckSameCount(p, v, nameof(AdamApply));
        CheckFloat32(nameof(AdamApply), p, m, v);
        using var _ = Time(nameof(AdamApply));
        Elementwise("adam_apply", p.Count, P(p), P(m), P(v), p.Count, lr / biasCorrection1, MathF.Sqrt(biasCorrection2), eps, 1 - lr * weightDecay);
    }

    public void AdamStep(Tensor p, Tensor g, Tensor m, Tensor v, float beta1, float beta2, float lr, float weightDecay, float eps, float biasCorrection1, float biasCorrection2)
    {
        CheckSameCount(p, g, nameof(AdamStep)); CheckSameCount(p, m, nameof(AdamStep)); CheckSameCount(p, v, nameof(AdamStep));
        CheckFloat32(nameof(AdamStep), p, g, m, v);
        using var _ = Time(nameof(AdamStep));
        Elementwise("adam_step", p.Count, P(p), P(g), P(m), P(v), p.Count, beta1, beta2, lr / biasCorrection1, MathF.Sqrt(biasCorrection2), eps, 1 - lr * weightDecay);
    }

    // ---- reductions -----------------------------------------------------------------------------

    public double Sum(Tensor x) => Reduce(x, null, 0, nameof(Sum));
    public double SumOfSquares(Tensor x) => Reduce(x, null, 1, nameof(SumOfSquares));
    public double SumOfMagnitudes(Tensor x) => Reduce(x, null, 2, nameof(SumOfMagnitudes));

    public double Dot(Tensor a, Tensor b)
    {
        CheckSameCount(a, b, nameof(Dot));
        return Reduce(a, b, 3, nameof(Dot));
    }

    private double Reduce(Tensor a, Tensor? b, int kind, string op)
    {
        if (a.Count == 0) return 0;
        using var _ = Time(op);
        uint blocks = (uint)Math.Min((a.Count + Threads - 1) / Threads, _device.Multiprocessors * 4);
        Tensor partials = _partials.Get(new Shape((int)blocks * 2));                 // doubles: two floats each
        _device.Launch("reduce_partials", blocks, 1, Threads, 0, P(a), b is null ? 0UL : P(b), P(partials), a.Count, kind);
        var host = new float[blocks * 2];
        Download(partials, host);
        double total = 0;
        fixed (float* f = host)
            for (int i = 0; i < blocks; i++) total += ((double*)f)[i];
        return total;
    }

    public float MaxMagnitude(Tensor x)
    {
        if (x.Count == 0) return 0;
        using var _ = Time(nameof(MaxMagnitude));
        uint blocks = (uint)Math.Min((x.Count + Threads - 1) / Threads, _device.Multiprocessors * 4);
        Tensor partials = _partials.Get(new Shape((int)blocks));
        _device.Launch("max_magnitude_partials", blocks, 1, Threads, 0, P(x), P(partials), x.Count);
        var host = new float[blocks];
        Download(partials, host);
        return host.Max();
    }

    // ---- random -----------------------------------------------------------------------------------

    public void FillGaussian(Tensor tensor, ulong seed, float std)
    {
        if (tensor.DType is not (DType.Float32 or DType.BFloat16)) throw new ArgumentException($"FillGaussian: expected a Float32 or BFloat16 tensor, got {tensor}");
        using var _ = Time(nameof(FillGaussian));
        Elementwise(tensor.DType == DType.Float32 ? "fill_gaussian" : "fill_gaussian_bf16", (tensor.Count + 3) / 4, P(tensor), tensor.Count, (uint)seed, (uint)(seed >> 32), std);
    }
}
