using System.Numerics.Tensors;
using Flora.Tensors;
using Tensor = Flora.Tensors.Tensor;

namespace Flora.Backends.Cpu;

/// <summary>The transformer kernels of the CPU backend: embeddings, norms, attention, rotary, SwiGLU, dropout.</summary>
internal sealed unsafe partial class CpuBackend
{
    // ---- embeddings ------------------------------------------------------------------------------

    public void EmbeddingForward(Tensor table, Tensor ids, Tensor output)
    {
        CheckIds(ids, table.Rows, nameof(EmbeddingForward));
        if (output.Rows != ids.Count || output.Columns != table.Columns)
            throw new ArgumentException($"EmbeddingForward: output {output.Shape} should be ({ids.Count}, {table.Columns})");
        using var _ = Time(nameof(EmbeddingForward));
        int c = table.Columns;
        bool half = table.DType == DType.BFloat16;                                   // bf16 weights: rows widened exactly
        ChunkedRows(ids.Count, c, (r0, rn) =>
        {
            ReadOnlySpan<int> id = I(ids);
            for (int n = r0; n < r0 + rn; n++)
                if (half) Widen(H(table).Slice(id[n] * c, c), F(output).Slice(n * c, c));
                else F(table).Slice(id[n] * c, c).CopyTo(F(output).Slice(n * c, c));
        });
    }

    public void EmbeddingBackward(Tensor gradOutput, Tensor ids, Tensor gradTable, float alpha)
    {
        CheckIds(ids, gradTable.Rows, nameof(EmbeddingBackward));
        if (gradOutput.Rows != ids.Count || gradOutput.Columns != gradTable.Columns)
            throw new ArgumentException($"EmbeddingBackward: gradient {gradOutput.Shape} should be ({ids.Count}, {gradTable.Columns})");
        using var _ = Time(nameof(EmbeddingBackward));
        int c = gradTable.Columns, vocabulary = gradTable.Rows;
        // Each worker owns a range of table rows and scans every id, so repeated ids never race.
        Split(vocabulary, (long)ids.Count * c, 1, (v0, vn) =>
        {
            ReadOnlySpan<int> id = I(ids);
            for (int n = 0; n < id.Length; n++)
            {
                int row = id[n];
                if (row < v0 || row >= v0 + vn) continue;
                Span<float> dst = F(gradTable).Slice(row * c, c);
                TensorPrimitives.MultiplyAdd(F(gradOutput).Slice(n * c, c), alpha, dst, dst);
            }
        });
    }

    private static void CheckIds(Tensor ids, int vocabulary, string op)
    {
        ReadOnlySpan<int> id = I(ids);
        for (int n = 0; n < id.Length; n++)
            if ((uint)id[n] >= (uint)vocabulary) throw new ArgumentException($"{op}: token id {id[n]} at position {n} is outside the vocabulary [0, {vocabulary})");
    }

    // ---- norms -------------------------------------------------------------------------------------

    public void LayerNormForward(Tensor x, Tensor gamma, Tensor beta, Tensor y, Tensor mean, Tensor rstd, float eps)
    {
        CheckNorm(x, gamma, y, rstd, nameof(LayerNormForward));
        if (y.DType == DType.BFloat16)
        {
            Tensor wide = FloatOutput(y);                                                // a norm read only by products: rounded
            LayerNormForward(x, gamma, beta, wide, mean, rstd, eps);
            Copy(wide, y);
            return;
        }
        using var _ = Time(nameof(LayerNormForward));
        int c = x.Columns;
        ChunkedRows(x.Rows, c, (r0, rn) =>
        {
            for (int n = r0; n < r0 + rn; n++)
            {
                ReadOnlySpan<float> xs = F(x).Slice(n * c, c);
                Span<float> ys = F(y).Slice(n * c, c);
                float mu = TensorPrimitives.Sum(xs) / c;
                TensorPrimitives.Subtract(xs, mu, ys);                       // x - mean
                float r = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(ys) / c + eps);
                TensorPrimitives.Multiply(ys, r, ys);                        // xhat
                TensorPrimitives.Multiply(ys, F(gamma), ys);
                TensorPrimitives.Add(ys, F(beta), ys);                       // y = xhat gamma + beta
                F(mean)[n] = mu;
                F(rstd)[n] = r;
            }
        });
    }

    public void LayerNormBackward(Tensor dy, Tensor x, Tensor mean, Tensor rstd, Tensor gamma, Tensor dx, Tensor dGamma, Tensor dBeta, Tensor? residual = null)
    {
        CheckNorm(x, gamma, dx, rstd, nameof(LayerNormBackward));
        NormChecks.CheckResidual(residual, dx, nameof(LayerNormBackward));
        using var _ = Time(nameof(LayerNormBackward));
        int c = x.Columns;
        var partials = new SortedList<int, (float[] G, float[] B)>();                // by first row: a fixed summation order
        ChunkedRows(x.Rows, c, (r0, rn) =>
        {
            float[] dg = new float[c], db = new float[c], xhat = new float[c], dxhat = new float[c];
            for (int n = r0; n < r0 + rn; n++)
            {
                ReadOnlySpan<float> dys = F(dy).Slice(n * c, c);
                float r = F(rstd)[n];
                TensorPrimitives.Subtract(F(x).Slice(n * c, c), F(mean)[n], xhat);
                TensorPrimitives.Multiply(xhat, r, xhat);                     // xhat = (x - mean) rstd
                TensorPrimitives.MultiplyAdd(dys, xhat, dg, dg);              // dGamma += dy xhat
                TensorPrimitives.Add(db, dys, db);                            // dBeta += dy
                TensorPrimitives.Multiply(dys, F(gamma), dxhat);              // dxhat = dy gamma
                float meanD = TensorPrimitives.Sum(dxhat) / c;
                float meanDX = TensorPrimitives.Dot(dxhat, xhat) / c;
                // dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
                Span<float> d = F(dx).Slice(n * c, c);
                TensorPrimitives.MultiplyAdd(xhat, -meanDX, dxhat, d);
                TensorPrimitives.Subtract(d, meanD, d);
                TensorPrimitives.Multiply(d, r, d);
                if (residual is not null) TensorPrimitives.Add(F(residual).Slice(n * c, c), d, d);   // + the skip connection's gradient
            }
            lock (partials) partials.Add(r0, (dg, db));
        });
        SumPartials(partials.Values.Select(p => p.G), F(dGamma));
        SumPartials(partials.Values.Select(p => p.B), F(dBeta));
    }

    public void RmsNormForward(Tensor x, Tensor weight, Tensor y, Tensor rstd, float eps)
    {
        CheckNorm(x, weight, y, rstd, nameof(RmsNormForward));
        if (y.DType == DType.BFloat16)
        {
            Tensor wide = FloatOutput(y);                                                // a norm read only by products: rounded
            RmsNormForward(x, weight, wide, rstd, eps);
            Copy(wide, y);
            return;
        }
        using var _ = Time(nameof(RmsNormForward));
        int c = x.Columns;
        ChunkedRows(x.Rows, c, (r0, rn) =>
        {
            for (int n = r0; n < r0 + rn; n++)
            {
                ReadOnlySpan<float> xs = F(x).Slice(n * c, c);
                Span<float> ys = F(y).Slice(n * c, c);
                float r = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(xs) / c + eps);
                TensorPrimitives.Multiply(xs, r, ys);
                TensorPrimitives.Multiply(ys, F(weight), ys);
                F(rstd)[n] = r;
            }
        });
    }

    public void RmsNormBackward(Tensor dy, Tensor x, Tensor rstd, Tensor weight, Tensor dx, Tensor dWeight, Tensor? residual = null)
    {
        CheckNorm(x, weight, dx, rstd, nameof(RmsNormBackward));
        NormChecks.CheckResidual(residual, dx, nameof(RmsNormBackward));
        using var _ = Time(nameof(RmsNormBackward));
        int c = x.Columns;
        var partials = new SortedList<int, float[]>();                              // by first row: a fixed summation order
        ChunkedRows(x.Rows, c, (r0, rn) =>
        {
            float[] dw = new float[c], xhat = new float[c], dxhat = new float[c];
            for (int n = r0; n < r0 + rn; n++)
            {
                ReadOnlySpan<float> dys = F(dy).Slice(n * c, c);
                float r = F(rstd)[n];
                TensorPrimitives.Multiply(F(x).Slice(n * c, c), r, xhat);    // xhat = x rstd
                TensorPrimitives.MultiplyAdd(dys, xhat, dw, dw);              // dWeight += dy xhat
                TensorPrimitives.Multiply(dys, F(weight), dxhat);
                float meanDX = TensorPrimitives.Dot(dxhat, xhat) / c;
                Span<float> d = F(dx).Slice(n * c, c);
                TensorPrimitives.MultiplyAdd(xhat, -meanDX, dxhat, d);        // dx = rstd (dxhat - xhat mean(dxhat xhat))
                TensorPrimitives.Multiply(d, r, d);
                if (residual is not null) TensorPrimitives.Add(F(residual).Slice(n * c, c), d, d);
            }
            lock (partials) partials.Add(r0, dw);
        });
        SumPartials(partials.Values, F(dWeight));
    }

    private static void SumPartials(IEnumerable<float[]> partials, Span<float> result)
    {
        result.Clear();
        foreach (var p in partials) TensorPrimitives.Add(result, p, result);
    }

    private static void CheckNorm(Tensor x, Tensor weight, Tensor y, Tensor rstd, string op)
    {
        if (weight.Count != x.Columns || y.Count != x.Count || rstd.Count != x.Rows)
            throw new ArgumentException($"{op}: x {x.Shape}, weight {weight.Shape}, output {y.Shape} and saved statistics {rstd.Shape} do not agree");
    }

    // ---- attention ------------------------------------------------------------------------------------

    private TensorSlot? _attentionScores, _attentionGrads;

    private TensorSlot? _wideQ, _wideK, _wideV;

    /// <summary>
    /// q, k and v as Float32 blocks: those of BFloat16 tensors (activations kept in bf16, <see cref="ActivationType"/>)
    /// widened exactly into scratch, each tensor once, as the GPU's kernels read the same bf16 bits.
    /// </summary>
    private (ColumnBlock Q, ColumnBlock K, ColumnBlock V) Widened(ColumnBlock q, ColumnBlock k, ColumnBlock v)
    {
        if (q.Tensor.DType == DType.Float32 && k.Tensor.DType == DType.Float32 && v.Tensor.DType == DType.Float32) return (q, k, v);
        Tensor wq = Widened(q.Tensor, ref _wideQ);
        Tensor wk = k.Tensor == q.Tensor ? wq : Widened(k.Tensor, ref _wideK);
        Tensor wv = v.Tensor == q.Tensor ? wq : v.Tensor == k.Tensor ? wk : Widened(v.Tensor, ref _wideV);
        return (new ColumnBlock(wq, q.Offset), new ColumnBlock(wk, k.Offset), new ColumnBlock(wv, v.Offset));
    }

    public void AttentionForward(AttentionShape s, ColumnBlock q, ColumnBlock k, ColumnBlock v, Tensor output, Tensor logSumExp)
    {
        s.Validate(q, k, v, output, logSumExp);
        if (output.DType == DType.BFloat16)
        {
            Tensor wide = FloatOutput(output);                                           // an output kept in bf16: rounded
            AttentionForward(s, q, k, v, wide, logSumExp);
            Copy(wide, output);
            return;
        }
        CheckFloat(output, nameof(AttentionForward));
        (q, k, v) = Widened(q, k, v);
        using var _ = TimeWithGemms(nameof(AttentionForward));
        int tq = s.QueryLength, tk = s.KeyLength, hd = s.HeadDim;
        float* scores = (float*)Scores(ref _attentionScores, tq * tk).Pointer;
        for (int b = 0; b < s.Batch; b++)
            for (int h = 0; h < s.Heads; h++)
            {
                int j = h / s.Group;                                                                  // the key/value head of query head h
                float* qp = HeadBlock(q, b, tq, h, hd), kp = HeadBlock(k, b, tk, j, hd), vp = HeadBlock(v, b, tk, j, hd);
                float* op = (float*)output.Pointer + ((long)b * tq * output.Columns + h * hd);
                Gemm(false, true, tq, tk, hd, s.Scale, qp, q.Stride, kp, k.Stride, 0f, scores, tk);   // S = scale Q K^T
                float* lse = (float*)logSumExp.Pointer + ((long)b * s.Heads + h) * tq;
                SoftmaxRows(scores, tq, tk, s.Causal, s.ValidKeys(b), lse);                                   // P, and log-sum-exp
                Gemm(false, false, tq, hd, tk, 1f, scores, tk, vp, v.Stride, 0f, op, output.Columns); // O = P V
            }
    }

    public void AttentionBackward(AttentionShape s, Tensor dOutput, ColumnBlock q, ColumnBlock k, ColumnBlock v, Tensor output, Tensor logSumExp,
        ColumnBlock dq, ColumnBlock dk, ColumnBlock dv)
    {
        s.Validate(q, k, v, output, logSumExp);
        s.Check(dq, s.QueryLength, "dq"); s.CheckKv(dk, "dk"); s.CheckKv(dv, "dv");
        if (dOutput.Count != output.Count) throw new ArgumentException($"AttentionBackward: dOutput {dOutput.Shape} does not match output {output.Shape}");
        if (output.DType == DType.BFloat16) output = Widened(output, ref _widenedActivation);   // read in the row dots
        CheckFloat(output, nameof(AttentionBackward));
        (q, k, v) = Widened(q, k, v);
        using var _ = TimeWithGemms(nameof(AttentionBackward));
        int tq = s.QueryLength, tk = s.KeyLength, hd = s.HeadDim;
        float* p = (float*)Scores(ref _attentionScores, tq * tk).Pointer;
        float* dp = (float*)Scores(ref _attentionGrads, tq * tk).Pointer;
        int os = output.Columns;
        for (int b = 0; b < s.Batch; b++)
            for (int h = 0; h < s.Heads; h++)
            {
                int j = h / s.Group;                                                                  // the key/value head of query head h
                float kvBeta = h % s.Group == 0 ? 0f : 1f;                                            // dk, dv: the group's heads add up
                float* qp = HeadBlock(q, b, tq, h, hd), kp = HeadBlock(k, b, tk, j, hd), vp = HeadBlock(v, b, tk, j, hd);
                float* dqp = HeadBlock(dq, b, tq, h, hd), dkp = HeadBlock(dk, b, tk, j, hd), dvp = HeadBlock(dv, b, tk, j, hd);
                long o0 = (long)b * tq * os + h * hd;
                float* op = (float*)output.Pointer + o0, dop = (float*)dOutput.Pointer + o0;
                float* lse = (float*)logSumExp.Pointer + ((long)b * s.Heads + h) * tq;
                Gemm(false, true, tq, tk, hd, s.Scale, qp, q.Stride, kp, k.Stride, 0f, p, tk);      // S = scale Q K^T
                RecomputeProbabilities(p, tq, tk, s.Causal, s.ValidKeys(b), lse);                             // P = exp(S - lse)
                Gemm(true, false, tk, hd, tq, 1f, p, tk, dop, os, kvBeta, dvp, dv.Stride);           // dV (+)= P^T dO
                Gemm(false, true, tq, tk, hd, 1f, dop, os, vp, v.Stride, 0f, dp, tk);                // dP = dO V^T
                for (int i = 0; i < tq; i++)                                                                    // dS = P (dP - rowsum(dO O))
                {
                    var orow = new ReadOnlySpan<float>(op + (long)i * os, hd);
                    float d = TensorPrimitives.Dot(new ReadOnlySpan<float>(dop + (long)i * os, hd), orow);
                    var dps = new Span<float>(dp + (long)i * tk, tk);
                    TensorPrimitives.Subtract(dps, d, dps);
                    TensorPrimitives.Multiply(dps, new ReadOnlySpan<float>(p + (long)i * tk, tk), dps);
                }
                Gemm(false, false, tq, hd, tk, s.Scale, dp, tk, kp, k.Stride, 0f, dqp, dq.Stride);   // dQ = scale dS K
                Gemm(true, false, tk, hd, tq, s.Scale, dp, tk, qp, q.Stride, kvBeta, dkp, dk.Stride); // dK (+)= scale dS^T Q
            }
    }

    /// <summary>A matrix product inside a fused kernel: profiled as "MatMul", and not counted again in the kernel's own time.</summary>
    private void Gemm(bool transA, bool transB, int m, int n, int k, float alpha, float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        if (Profiler is null) { OpenBlas.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc); return; }
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        OpenBlas.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        long elapsed = System.Diagnostics.Stopwatch.GetTimestamp() - start;
        Profiler.Record(nameof(MatMul), elapsed);
        _nestedGemmTicks += elapsed;
    }

    /// <summary>Start of head h of batch b in a column block.</summary>
    private static float* HeadBlock(ColumnBlock c, int b, int length, int h, int hd) =>
        (float*)c.Tensor.Pointer + ((long)b * length * c.Stride + c.Offset + h * hd);

    private Tensor Scores(ref TensorSlot? slot, int count)
    {
        slot ??= new TensorSlot(this, MemoryTag.Scratch);
        return slot.Get(new Shape(count));
    }

    /// <summary>Softmax of each score row in place (only j &lt;= i when causal, the rest set to 0); writes the log-sum-exp.</summary>
    /// <summary>Softmax of each score row over its visible keys (j &lt;= i when causal, j &lt; keys always), 0 elsewhere; lse per row.</summary>
    private static void SoftmaxRows(float* scores, int rows, int cols, bool causal, int keys, float* lse)
    {
        Split(rows, (long)rows * cols * 8, 1, (r0, rn) =>
        {
            for (int i = r0; i < r0 + rn; i++)
            {
                int valid = Math.Min(causal ? i + 1 : cols, keys);
                var row = new Span<float>(scores + (long)i * cols, valid);
                float max = TensorPrimitives.Max(row);
                TensorPrimitives.Subtract(row, max, row);
                TensorPrimitives.Exp(row, row);
                float sum = TensorPrimitives.Sum(row);
                TensorPrimitives.Divide(row, sum, row);
                lse[i] = max + MathF.Log(sum);
                if (valid < cols) new Span<float>(scores + (long)i * cols + valid, cols - valid).Clear();
            }
        });
    }

    /// <summary>P = exp(S - lse) per row over its visible keys, 0 elsewhere (above the diagonal when causal, padding keys).</summary>
    private static void RecomputeProbabilities(float* scores, int rows, int cols, bool causal, int keys, float* lse)
    {
        Split(rows, (long)rows * cols * 8, 1, (r0, rn) =>
        {
            for (int i = r0; i < r0 + rn; i++)
            {
                int valid = Math.Min(causal ? i + 1 : cols, keys);
                var row = new Span<float>(scores + (long)i * cols, valid);
                TensorPrimitives.Subtract(row, lse[i], row);
                TensorPrimitives.Exp(row, row);
                if (valid < cols) new Span<float>(scores + (long)i * cols + valid, cols - valid).Clear();
            }
        });
    }

    // ---- rotary, SwiGLU, dropout ------------------------------------------------------------------------

    public void Rotary(Tensor x, int offset, int heads, int headDim, int sequenceLength, float theta, bool inverse, RopeScaling? scaling = null)
    {
        if (headDim % 2 != 0) throw new ArgumentException($"Rotary: head dimension {headDim} must be even");
        if (offset < 0 || offset + heads * headDim > x.Columns || sequenceLength <= 0 || x.Rows % sequenceLength != 0)
            throw new ArgumentException($"Rotary: columns [{offset}, {offset + heads * headDim}) of {x.Shape} with sequence length {sequenceLength} do not fit");
        if (x.DType == DType.BFloat16)
        {
            Tensor wide = Widened(x, ref _widenedActivation);                            // bf16 q or k: turned in fp32, rounded back
            Rotary(wide, offset, heads, headDim, sequenceLength, theta, inverse, scaling);
            Copy(wide, x);
            return;
        }
        CheckFloat(x, nameof(Rotary));
        using var _ = Time(nameof(Rotary));
        int half = headDim / 2, stride = x.Columns;
        var (cos, sin) = RotaryTable(sequenceLength, headDim, theta, scaling);
        float sign = inverse ? -1f : 1f;
        ChunkedRows(x.Rows, heads * headDim, (r0, rn) =>
        {
            for (int row = r0; row < r0 + rn; row++)
            {
                int t = row % sequenceLength;
                for (int h = 0; h < heads; h++)
                {
                    float* p = (float*)x.Pointer + (long)row * stride + offset + h * headDim;
                    for (int i = 0; i < half; i++)
                    {
                        float c = cos[t * half + i], sn = sign * sin[t * half + i];
                        float a = p[i], b = p[i + half];
                        p[i] = a * c - b * sn;
                        p[i + half] = a * sn + b * c;
                    }
                }
            }
        });
    }

    private (int Length, int HeadDim, float Theta, RopeScaling? Scaling, float[] Cos, float[] Sin)? _rotaryCache;

    /// <summary>cos and sin of t f_i (f_i = theta^(-2i/headDim), scaled) for every position t and i &lt; headDim / 2, computed in double.</summary>
    private (float[] Cos, float[] Sin) RotaryTable(int length, int headDim, float theta, RopeScaling? scaling)
    {
        if (_rotaryCache is var (l, d, th, sc, c, s) && l == length && d == headDim && th == theta && sc == scaling) return (c, s);
        int half = headDim / 2;
        var cos = new float[length * half];
        var sin = new float[length * half];
        for (int i = 0; i < half; i++)
        {
            double f = RopeScaling.InverseFrequency(i, headDim, theta, scaling);
            for (int t = 0; t < length; t++)
            {
                double angle = t * f;
                cos[t * half + i] = (float)Math.Cos(angle);
                sin[t * half + i] = (float)Math.Sin(angle);
            }
        }
        _rotaryCache = (length, headDim, theta, scaling, cos, sin);
        return (cos, sin);
    }

    public void SwiGlu(Tensor gate, Tensor up, Tensor y)
    {
        if (gate.Count != y.Count || up.Count != y.Count || gate.Columns != y.Columns)
            throw new ArgumentException($"SwiGlu: gate {gate.Shape}, up {up.Shape} and output {y.Shape} should all be (N, F)");
        if (gate.DType == DType.BFloat16 && up.DType == DType.BFloat16 && y.DType == DType.BFloat16)
        {
            Tensor wide = FloatOutput(y);                                                // bf16 in, bf16 out: fp32 in between
            SwiGlu(Widened(gate, ref _widenedActivation), Widened(up, ref _widenedActivation2), wide);
            Copy(wide, y);
            return;
        }
        if (gate.DType != DType.Float32 || up.DType != DType.Float32 || y.DType != DType.Float32)
            throw new ArgumentException($"SwiGlu: gate, up and y must all be Float32 or all BFloat16, got {gate}, {up} and {y}");
        using var _ = Time(nameof(SwiGlu));
        int f = y.Columns;
        ChunkedRows(y.Rows, 2 * f, (r0, rn) =>
        {
            float[] sig = new float[f];
            for (int n = r0; n < r0 + rn; n++)
            {
                ReadOnlySpan<float> a = F(gate).Slice(n * f, f), b = F(up).Slice(n * f, f);
                Span<float> ys = F(y).Slice(n * f, f);
                TensorPrimitives.Sigmoid(a, sig);
                TensorPrimitives.Multiply(a, sig, ys);              // silu(a)
                TensorPrimitives.Multiply(ys, b, ys);               // silu(a) b
            }
        });
    }

    public void SwiGluBackward(Tensor gate, Tensor up, Tensor dy, Tensor dGate, Tensor dUp)
    {
        if (gate.Count != dy.Count || up.Count != dy.Count || dGate.Count != dy.Count || dUp.Count != dy.Count || gate.Columns != dy.Columns)
            throw new ArgumentException($"SwiGluBackward: gate {gate.Shape}, up {up.Shape}, gradient {dy.Shape}, dGate {dGate.Shape} and dUp {dUp.Shape} should all be (N, F)");
        bool bf16 = gate.DType == DType.BFloat16 && up.DType == DType.BFloat16 && dy.DType == DType.Float32 && dGate.DType == DType.BFloat16 && dUp.DType == DType.BFloat16;
        if (bf16)
        {
            // bf16 gate and up widened exactly; dGate and dUp computed in fp32 and rounded to nearest even
            Tensor wideGate = FloatOutput(dGate), wideUp = SecondFloatOutput(dUp);
            SwiGluBackward(Widened(gate, ref _widenedActivation), Widened(up, ref _widenedActivation2), dy, wideGate, wideUp);
            Copy(wideGate, dGate);
            Copy(wideUp, dUp);
            return;
        }
        if (new[] { gate, up, dy, dGate, dUp }.Any(t => t.DType != DType.Float32))
            throw new ArgumentException($"SwiGluBackward: all Float32, or gate, up, dGate and dUp BFloat16 with a Float32 dy; got {gate}, {up}, {dy}, {dGate} and {dUp}");
        using var _ = Time(nameof(SwiGluBackward));
        int f = dy.Columns;
        ChunkedRows(dy.Rows, 2 * f, (r0, rn) =>
        {
            float[] sig = new float[f], t = new float[f];
            for (int n = r0; n < r0 + rn; n++)
            {
                ReadOnlySpan<float> a = F(gate).Slice(n * f, f), b = F(up).Slice(n * f, f), dys = F(dy).Slice(n * f, f);
                Span<float> da = F(dGate).Slice(n * f, f), db = F(dUp).Slice(n * f, f);
                TensorPrimitives.Sigmoid(a, sig);
                TensorPrimitives.Multiply(a, sig, t);               // silu(a)
                TensorPrimitives.Multiply(dys, t, db);              // db = dy silu(a)
                // silu'(a) = s (1 + a (1 - s))
                TensorPrimitives.Subtract(1f, sig, t);
                TensorPrimitives.Multiply(t, a, t);
                TensorPrimitives.Add(t, 1f, t);
                TensorPrimitives.Multiply(t, sig, t);
                TensorPrimitives.Multiply(t, b, t);
                TensorPrimitives.Multiply(t, dys, da);              // da = dy b silu'(a)
            }
        });
    }

    public void Dropout(Tensor x, Tensor y, float p, ulong seed)
    {
        CheckSameCount(x, y, nameof(Dropout));
        if (!(p >= 0 && p < 1)) throw new ArgumentException($"Dropout: probability must be in [0, 1), got {p}");
        using var _ = Time(nameof(Dropout));
        if (p == 0) { if (x.Pointer != y.Pointer) Copy(x, y); return; }
        float scale = 1f / (1f - p);
        int count = x.Count;
        Split((count + 3) / 4, 4L * count, 256, (b0, bn) =>
        {
            float* xs = (float*)x.Pointer, ys = (float*)y.Pointer;
            for (int b = b0; b < b0 + bn; b++)
            {
                var (u0, u1, u2, u3) = Philox.Block((uint)b, 0, 0, 0, (uint)seed, (uint)(seed >> 32));
                uint w0 = u0, w1 = u1, w2 = u2, w3 = u3;
                for (int j = 0; j < 4; j++)
                {
                    int i = b * 4 + j;
                    if (i >= count) break;
                    uint word = j switch { 0 => w0, 1 => w1, 2 => w2, _ => w3 };
                    ys[i] = Philox.Uniform(word) >= p ? xs[i] * scale : 0f;
                }
            }
        });
    }
}
