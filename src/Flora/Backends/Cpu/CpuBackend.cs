using System.Diagnostics;
using System.Numerics;
using System.Numerics.Tensors;
using Tensor = Flora.Tensors.Tensor;
using Flora.Tensors;

namespace Flora.Backends.Cpu;

/// <summary>
/// The kernel surface on the host: matrix products through OpenBLAS, element-wise work and
/// reductions through <see cref="TensorPrimitives"/>, split across cores where the work is large
/// enough to pay for it. This is the only place in Flora where C# loops over tensor elements.
/// </summary>
internal sealed unsafe partial class CpuBackend : IBackend
{
    /// <summary>
    /// Element count below which an op runs on the calling thread. Element-wise ops are memory-bound
    /// and OpenBLAS's threads spin for a while after each product, so splitting small ops across
    /// cores costs more than it saves.
    /// </summary>
    private const int ParallelThreshold = 1 << 20;

    /// <summary>
    /// A backend reporting to <paramref name="ledger"/>. Its products always compute in fp32; with
    /// <paramref name="precision"/> <see cref="GemmPrecision.Bf16"/> the layers keep the activations that only products
    /// read in bf16 (<see cref="ActivationType"/>), as the CUDA backend's bf16 mode does, so that the CPU stores the same
    /// bits and its ledger the same bytes. Fp32 and Tf32 are the same here.
    /// </summary>
    public CpuBackend(MemoryLedger? ledger = null, GemmPrecision precision = GemmPrecision.Fp32)
    {
        Ledger = ledger ?? new MemoryLedger();
        ActivationType = precision == GemmPrecision.Bf16 ? DType.BFloat16 : DType.Float32;
        OpenBlas.EnsureLoaded();
    }

    public string Name => "cpu";
    public MemoryLedger Ledger { get; }
    public OpProfiler? Profiler { get; set; }

    public DType ProductOperandType => DType.Float32;

    /// <inheritdoc/>
    public DType ActivationType { get; }

    /// <summary>The OpenBLAS library in use, its thread count and kernel family with how it was chosen, for reports.</summary>
    public static string BlasDescription => $"OpenBLAS ({OpenBlas.LibraryPath}, {OpenBlas.Threads} threads, {OpenBlas.KernelDescription})";

    // ---- memory ------------------------------------------------------------------------------

    public Tensor Allocate(Shape shape, MemoryTag tag, DType dtype = DType.Float32)
    {
        var storage = new HostStorage(Ledger, tag, (long)shape.Count * dtype.Size());
        return new Tensor(storage, shape, dtype, 0, ownsStorage: true);
    }

    public void Upload(ReadOnlySpan<float> source, Tensor destination)
    {
        CheckCount(source.Length, destination, nameof(Upload));
        source.CopyTo(F(destination));
    }

    public void Upload(ReadOnlySpan<int> source, Tensor destination)
    {
        CheckCount(source.Length, destination, nameof(Upload));
        source.CopyTo(I(destination));
    }

    public void Download(Tensor source, Span<float> destination)
    {
        CheckCount(destination.Length, source, nameof(Download));
        F(source).CopyTo(destination);
    }

    public void Download(Tensor source, Span<int> destination)
    {
        CheckCount(destination.Length, source, nameof(Download));
        I(source).CopyTo(destination);
    }

    public void Copy(Tensor source, Tensor destination)
    {
        CheckSameCount(source, destination, nameof(Copy));
        using var _ = Time(nameof(Copy));
        if (source.DType == destination.DType)
            Buffer.MemoryCopy((void*)source.Pointer, (void*)destination.Pointer, destination.Bytes, source.Bytes);
        else if (source.DType == DType.BFloat16 && destination.DType == DType.Float32)
            Chunked(source.Count, (s, n) => Widen(H(source).Slice(s, n), F(destination).Slice(s, n)));
        else if (source.DType == DType.Float32 && destination.DType == DType.BFloat16)
            Chunked(source.Count, (s, n) => Narrow(F(source).Slice(s, n), H(destination).Slice(s, n)));
        else throw new ArgumentException($"Copy: {source.DType} source into {destination.DType} destination");
    }

    public void Fill(Tensor tensor, float value)
    {
        using var _ = Time(nameof(Fill));
        if (tensor.DType == DType.BFloat16) H(tensor).Fill(BFloat16.RoundToNearestEven(value));
        else F(tensor).Fill(value);
    }

    /// <inheritdoc/>
    public void StochasticRound(Tensor source, Tensor destination, ulong seed)
    {
        CheckSameCount(source, destination, nameof(StochasticRound));
        CheckFloat(source, nameof(StochasticRound));
        if (destination.DType != DType.BFloat16) throw new ArgumentException($"StochasticRound: expected a BFloat16 destination, got {destination}");
        using var _ = Time(nameof(StochasticRound));
        // Philox costs about eight memory passes per block of eight: weight the split so; ranges start on whole blocks.
        int count = source.Count;
        Split((count + 7) / 8, 8L * count, 1024, (b0, bn) =>
        {
            int start = b0 * 8, length = Math.Min(bn * 8, count - start);
            StochasticRounding.Round(F(source).Slice(start, length), H(destination).Slice(start, length), seed, start);
        });
    }

    /// <summary>destination = the floats of bf16 bits (exact): each 16-bit pattern moved to the top of a 32-bit one.</summary>
    private static void Widen(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            int w = Vector<ushort>.Count;
            Span<uint> bits = System.Runtime.InteropServices.MemoryMarshal.Cast<float, uint>(destination);
            for (; i <= source.Length - w; i += w)
            {
                Vector.Widen(new Vector<ushort>(source.Slice(i, w)), out Vector<uint> low, out Vector<uint> high);
                Vector.ShiftLeft(low, 16).CopyTo(bits.Slice(i, w / 2));
                Vector.ShiftLeft(high, 16).CopyTo(bits.Slice(i + w / 2, w / 2));
            }
        }
        for (; i < source.Length; i++) destination[i] = BFloat16.ToSingle(source[i]);
    }

    /// <summary>destination = source rounded to nearest even bf16.</summary>
    private static void Narrow(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        for (int i = 0; i < source.Length; i++) destination[i] = BFloat16.RoundToNearestEven(source[i]);
    }

    private TensorSlot? _widenedA, _widenedB, _floatOutput, _floatOutput2, _widenedActivation, _widenedActivation2;

    /// <summary>
    /// Scratch of <paramref name="output"/>'s shape in which an op that writes a BFloat16 output computes it in fp32
    /// before <see cref="Copy"/> rounds it in: an output kept in bf16 (<see cref="ActivationType"/>), as the GPU rounds it.
    /// </summary>
    private Tensor FloatOutput(Tensor output) => (_floatOutput ??= new TensorSlot(this, MemoryTag.Scratch)).Get(output.Shape);

    /// <summary>A second <see cref="FloatOutput"/>, for an op with two bf16 outputs.</summary>
    private Tensor SecondFloatOutput(Tensor output) => (_floatOutput2 ??= new TensorSlot(this, MemoryTag.Scratch)).Get(output.Shape);

    /// <summary>A Float32 operand: the tensor itself, or its bf16 elements widened into <paramref name="slot"/>.</summary>
    private Tensor Widened(Tensor t, ref TensorSlot? slot)
    {
        if (t.DType == DType.Float32) return t;
        if (t.DType != DType.BFloat16) throw new ArgumentException($"expected a Float32 or BFloat16 operand, got {t}");
        slot ??= new TensorSlot(this, MemoryTag.Scratch);
        Tensor wide = slot.Get(t.Shape);
        Copy(t, wide);
        return wide;
    }

    // ---- matrix products -----------------------------------------------------------------------

    public void MatMul(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor c, float alpha = 1f, float beta = 0f)
    {
        int m = transposeA ? a.Columns : a.Rows, k = transposeA ? a.Rows : a.Columns;
        int kb = transposeB ? b.Columns : b.Rows, n = transposeB ? b.Rows : b.Columns;
        if (k != kb || c.Rows != m || c.Columns != n)
            throw new ArgumentException(
                $"MatMul: op(A) is ({m}, {k}) from {a.Shape}{(transposeA ? "^T" : "")}, op(B) is ({kb}, {n}) from {b.Shape}{(transposeB ? "^T" : "")}, C is ({c.Rows}, {c.Columns}) from {c.Shape}");
        if (c.DType == DType.BFloat16 && beta == 0)
        {
            Tensor wide = FloatOutput(c);                                                 // computed in fp32, then rounded
            MatMul(a, transposeA, b, transposeB, wide, alpha);
            Copy(wide, c);
            return;
        }
        if (c.DType != DType.Float32) throw new ArgumentException($"MatMul: C must be Float32, or BFloat16 with beta = 0, got {c} (beta {beta})");
        if (m == 0 || n == 0) return;
        // bf16 operands (weights stored in bf16) are widened into scratch first: slower than a bf16 GEMM, exact.
        if (a.DType != DType.Float32 || b.DType != DType.Float32)
        {
            bool same = a == b;
            a = Widened(a, ref _widenedA);
            b = same ? a : Widened(b, ref _widenedB);
        }
        using var _ = Time(nameof(MatMul));
        if (k == 0) { if (beta == 0) F(c).Clear(); else TensorPrimitives.Multiply(F(c), beta, F(c)); return; }
        OpenBlas.Sgemm(transposeA, transposeB, m, n, k, alpha,
            (float*)a.Pointer, a.Columns, (float*)b.Pointer, b.Columns, beta, (float*)c.Pointer, c.Columns);
    }

    // ---- element-wise ---------------------------------------------------------------------------

    public void Add(Tensor a, Tensor b, Tensor result)
    {
        CheckSameCount(a, b, nameof(Add)); CheckSameCount(a, result, nameof(Add));
        using var _ = Time(nameof(Add));
        Chunked(a.Count, (s, n) => TensorPrimitives.Add(F(a).Slice(s, n), F(b).Slice(s, n), F(result).Slice(s, n)));
    }

    public void Axpy(float alpha, Tensor x, Tensor y)
    {
        CheckSameCount(x, y, nameof(Axpy));
        using var _ = Time(nameof(Axpy));
        Chunked(x.Count, (s, n) => TensorPrimitives.MultiplyAdd(F(x).Slice(s, n), alpha, F(y).Slice(s, n), F(y).Slice(s, n)));
    }

    public void Scale(Tensor x, float alpha)
    {
        using var _ = Time(nameof(Scale));
        Chunked(x.Count, (s, n) => TensorPrimitives.Multiply(F(x).Slice(s, n), alpha, F(x).Slice(s, n)));
    }

    public void Axpby(float alpha, Tensor x, float beta, Tensor y)
    {
        CheckSameCount(x, y, nameof(Axpby));
        using var _ = Time(nameof(Axpby));
        Chunked(x.Count, (s, n) =>
        {
            Span<float> ys = F(y).Slice(s, n);
            if (beta != 1) TensorPrimitives.Multiply(ys, beta, ys);
            TensorPrimitives.MultiplyAdd(F(x).Slice(s, n), alpha, ys, ys);
        });
    }

    public void AddBias(Tensor y, Tensor bias)
    {
        if (bias.Count != y.Columns) throw new ArgumentException($"AddBias: bias {bias.Shape} does not match the {y.Columns} columns of {y.Shape}");
        using var _ = Time(nameof(AddBias));
        int cols = y.Columns;
        ChunkedRows(y.Rows, cols, (r0, rn) =>
        {
            Span<float> rows = F(y).Slice(r0 * cols, rn * cols);
            ReadOnlySpan<float> b = F(bias);
            for (int r = 0; r < rn; r++) TensorPrimitives.Add(rows.Slice(r * cols, cols), b, rows.Slice(r * cols, cols));
        });
    }

    public void SumRows(Tensor x, Tensor result, float alpha, float beta)
    {
        if (result.Count != x.Columns) throw new ArgumentException($"SumRows: result {result.Shape} does not match the {x.Columns} columns of {x.Shape}");
        x = Widened(x, ref _widenedActivation);                                          // a gradient kept in bf16, widened exactly
        using var _ = Time(nameof(SumRows));
        int rows = x.Rows, cols = x.Columns;
        // Each worker owns a range of columns and walks all rows, so no two workers write the same element.
        ChunkedColumns(rows, cols, (c0, cn) =>
        {
            Span<float> acc = F(result).Slice(c0, cn);
            ReadOnlySpan<float> src = F(x);
            if (beta == 0) acc.Clear(); else if (beta != 1) TensorPrimitives.Multiply(acc, beta, acc);
            for (int r = 0; r < rows; r++)
            {
                if (alpha == 1) TensorPrimitives.Add(acc, src.Slice(r * cols + c0, cn), acc);
                else TensorPrimitives.MultiplyAdd(src.Slice(r * cols + c0, cn), alpha, acc, acc);
            }
        });
    }

    public void Relu(Tensor x, Tensor y)
    {
        CheckSameCount(x, y, nameof(Relu));
        using var _ = Time(nameof(Relu));
        Chunked(x.Count, (s, n) => TensorPrimitives.Max(F(x).Slice(s, n), 0f, F(y).Slice(s, n)));
    }

    public void ReluBackward(Tensor y, Tensor dy, Tensor dx)
    {
        CheckSameCount(y, dy, nameof(ReluBackward)); CheckSameCount(y, dx, nameof(ReluBackward));
        using var _ = Time(nameof(ReluBackward));
        Chunked(y.Count, (s, n) => ReluMask(F(y).Slice(s, n), F(dy).Slice(s, n), F(dx).Slice(s, n)));
    }

    /// <summary>dx = y &gt; 0 ? dy : 0. TensorPrimitives has no select, so this one loop is written with Vector&lt;T&gt;.</summary>
    private static void ReluMask(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            int w = Vector<float>.Count;
            for (; i <= y.Length - w; i += w)
            {
                var mask = Vector.GreaterThan(new Vector<float>(y.Slice(i, w)), Vector<float>.Zero);
                Vector.ConditionalSelect(mask, new Vector<float>(dy.Slice(i, w)), Vector<float>.Zero).CopyTo(dx.Slice(i, w));
            }
        }
        for (; i < y.Length; i++) dx[i] = y[i] > 0 ? dy[i] : 0f;
    }

    private const float GeluC = 0.7978845608f; // sqrt(2 / pi)
    private const float GeluA = 0.044715f;
    
    public void Gelu(Tensor x, Tensor y)
    {
        CheckSameCount(x, y, nameof(Gelu));
        if (x.DType != y.DType) throw new ArgumentException($"Gelu: x and y must both be Float32 or both BFloat16, got {x} and {y}");
        if (x.DType == DType.BFloat16)
        {
            Tensor wide = Widened(x, ref _widenedActivation);                            // bf16 in, bf16 out: fp32 in between
            Gelu(wide, wide);
            Copy(wide, y);
            return;
        }
        using var _ = Time(nameof(Gelu));
        Chunked(x.Count, (s, n) =>
        {
            Span<float> t = stackalloc float[Block];
            for (int o = 0; o < n; o += Block)
            {
                int len = Math.Min(Block, n - o);
                ReadOnlySpan<float> xs = F(x).Slice(s + o, len);
                Span<float> ys = F(y).Slice(s + o, len), ts = t[..len];
                GeluTanh(xs, ts);                          // t = tanh(c (x + a x^3))
                TensorPrimitives.Add(ts, 1f, ts);          // 1 + t
                TensorPrimitives.Multiply(ts, xs, ts);     // x (1 + t)
                TensorPrimitives.Multiply(ts, 0.5f, ys);   // y = 0.5 x (1 + t)
            }
        });
    }

    public void GeluBackward(Tensor x, Tensor dy, Tensor dx)
    {
        CheckSameCount(x, dy, nameof(GeluBackward)); CheckSameCount(x, dx, nameof(GeluBackward));
        CheckFloat(dy, nameof(GeluBackward));
        if (dx.DType == DType.BFloat16 && x.DType == DType.BFloat16)
        {
            Tensor wide = FloatOutput(dx);                                               // computed in fp32, then rounded
            GeluBackward(x, dy, wide);
            Copy(wide, dx);
            return;
        }
        CheckFloat(dx, nameof(GeluBackward));
        x = Widened(x, ref _widenedActivation);                                          // a bf16 x, widened exactly
        using var _ = Time(nameof(GeluBackward));
        Chunked(x.Count, (s, n) =>
        {
            Span<float> t = stackalloc float[Block], u = stackalloc float[Block];
            for (int o = 0; o < n; o += Block)
            {
                int len = Math.Min(Block, n - o);
                ReadOnlySpan<float> xs = F(x).Slice(s + o, len), dys = F(dy).Slice(s + o, len);
                Span<float> dxs = F(dx).Slice(s + o, len), ts = t[..len], us = u[..len];
                // GELU'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2),  t = tanh(c (x + a x^3))
                GeluTanh(xs, ts);
                TensorPrimitives.Multiply(xs, xs, us);                        // x^2
                TensorPrimitives.Multiply(us, 3f * GeluA * GeluC, us);
                TensorPrimitives.Add(us, GeluC, us);                          // c (1 + 3 a x^2)
                TensorPrimitives.Multiply(us, xs, us);                        // x c (1 + 3 a x^2)
                TensorPrimitives.Multiply(us, 0.5f, us);
                TensorPrimitives.Multiply(ts, ts, dxs);                       // t^2 (dx as scratch)
                TensorPrimitives.Subtract(1f, dxs, dxs);                      // 1 - t^2
                TensorPrimitives.Multiply(us, dxs, us);                       // 0.5 x (1 - t^2) c (1 + 3 a x^2)
                TensorPrimitives.MultiplyAdd(ts, 0.5f, us, us);               // + 0.5 t
                TensorPrimitives.Add(us, 0.5f, us);                           // + 0.5
                TensorPrimitives.Multiply(us, dys, dxs);
            }
        });
    }

    /// <summary>t = tanh(c (x + a x^3)).</summary>
    private static void GeluTanh(ReadOnlySpan<float> x, Span<float> t)
    {
        TensorPrimitives.Multiply(x, x, t);                 // x^2
        TensorPrimitives.Multiply(t, GeluA, t);
        TensorPrimitives.Add(t, 1f, t);                     // 1 + a x^2
        TensorPrimitives.Multiply(t, x, t);                 // x + a x^3
        TensorPrimitives.Multiply(t, GeluC, t);
        TensorPrimitives.Tanh(t, t);
    }

    // ---- losses and metrics -------------------------------------------------------------------

    public (double Sum, int Count) SoftmaxCrossEntropy(Tensor logits, Tensor targets, Tensor probabilities)
    {
        CheckTargets(logits, targets, nameof(SoftmaxCrossEntropy));
        CheckSameCount(logits, probabilities, nameof(SoftmaxCrossEntropy));
        using var _ = Time(nameof(SoftmaxCrossEntropy));
        int rows = logits.Rows, cols = logits.Columns;
        var losses = new double[rows];
        ChunkedRows(rows, cols, (r0, rn) =>
        {
            for (int r = r0; r < r0 + rn; r++)
            {
                ReadOnlySpan<float> x = F(logits).Slice(r * cols, cols);
                Span<float> p = F(probabilities).Slice(r * cols, cols);               // may be the logits themselves
                int t = I(targets)[r];
                float target = t < 0 ? 0f : x[t];                                       // read before p overwrites x
                float max = TensorPrimitives.Max(x);
                TensorPrimitives.Subtract(x, max, p);
                TensorPrimitives.Exp(p, p);
                float sum = TensorPrimitives.Sum(p);
                TensorPrimitives.Divide(p, sum, p);
                // -log softmax(x)[t] = log(sum exp(x - max)) + max - x[t], exact even where p[t] underflows
                losses[r] = t < 0 ? 0 : Math.Log(sum) + max - target;
            }
        });
        int counted = 0;
        foreach (int t in I(targets)) if (t >= 0) counted++;
        return (losses.Sum(), counted);
    }

    public void MatMulBiasAdd(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor? bias, Tensor residual, Tensor output)
    {
        ProductChecks.CheckResidualOutput(residual, output, nameof(MatMulBiasAdd));
        Tensor y = (_branchOutput ??= new TensorSlot(this, MemoryTag.Scratch)).Get(output.Shape);   // the branch's output
        if (bias is null) MatMul(a, transposeA, b, transposeB, y);
        else MatMulBias(a, transposeA, b, transposeB, y, bias);
        Add(residual, y, output);
    }

    private TensorSlot? _branchOutput;

    public void MatMulBiasGelu(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor preActivation, Tensor activation, Tensor bias)
    {
        ProductChecks.CheckGeluPair(preActivation, activation, nameof(MatMulBiasGelu));
        MatMulBias(a, transposeA, b, transposeB, preActivation, bias);
        Gelu(preActivation, activation);                                               // of the rounded pre-activation
    }

    public void MatMulGeluBackward(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor preActivation, Tensor dx)
    {
        ProductChecks.CheckGeluPair(preActivation, dx, nameof(MatMulGeluBackward));
        Tensor product = (_geluProduct ??= new TensorSlot(this, MemoryTag.Scratch)).Get(dx.Shape);   // (GeluBackward rounds through FloatOutput)
        MatMul(a, transposeA, b, transposeB, product);
        GeluBackward(preActivation, product, dx);
    }

    private TensorSlot? _geluProduct;

    public void MatMulBias(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor c, Tensor bias)
    {
        if (c.DType != DType.BFloat16)
        {
            MatMul(a, transposeA, b, transposeB, c);
            AddBias(c, bias);
            return;
        }
        // A bf16 C: the fp32 product plus the bias rounded to bf16 (as the GPU's epilogue reads it), rounded once.
        Tensor wide = FloatOutput(c);
        MatMul(a, transposeA, b, transposeB, wide);
        Tensor bias16 = (_bias16 ??= new TensorSlot(this, MemoryTag.Scratch, DType.BFloat16)).Get(bias.Shape);
        Tensor rounded = (_roundedBias ??= new TensorSlot(this, MemoryTag.Scratch)).Get(bias.Shape);
        Copy(bias, bias16);
        Copy(bias16, rounded);                                                         // the bias rounded to bf16, widened
        AddBias(wide, rounded);
        Copy(wide, c);
    }

    private TensorSlot? _bias16, _roundedBias;

    private TensorSlot? _headLogits;

    public (double Sum, int Count) LinearCrossEntropy(Tensor x, Tensor weight, Tensor targets, float gradScale,
        Tensor? dx, Tensor? dWeight, float weightScale, float weightBeta)
    {
        LinearCrossEntropyChecks.Validate(x, weight, targets, dx, dWeight);
        weight = Widened(weight, ref _widenedB);                                            // a bf16 weight, widened once for every chunk
        int n = x.Rows, vocabulary = weight.Rows;
        // Chunks of about 32 MB of logits: big enough for the products, small next to the model.
        int chunk = Math.Clamp((8 << 20) / vocabulary, 1, n);
        _headLogits ??= new TensorSlot(this, MemoryTag.Scratch);
        Tensor buffer = _headLogits.Get(new Shape(chunk * vocabulary));
        double sum = 0;
        int count = 0;
        for (int r0 = 0; r0 < n; r0 += chunk)
        {
            int rn = Math.Min(chunk, n - r0);
            Tensor xc = x.RowSlice(r0, rn), logits = buffer.View(new Shape(rn, vocabulary)), tc = targets.View(new Shape(rn), r0);
            MatMul(xc, false, weight, true, logits);                                        // logits = x W^T   (rn, V)
            var (s, c) = SoftmaxCrossEntropy(logits, tc, logits);
            sum += s; count += c;
            if (dx is null && dWeight is null) continue;
            SoftmaxCrossEntropyBackward(logits, tc, logits, gradScale);                    // dlogits
            if (dx is not null) MatMul(logits, false, weight, false, dx.RowSlice(r0, rn));  // dx = dlogits W
            if (dWeight is not null) MatMul(logits, true, xc, false, dWeight, weightScale, r0 == 0 ? weightBeta : 1f); // dW (+)= dlogits^T x
        }
        return (sum, count);
    }

    public IDisposable ReuseOperand(Tensor operand, bool sumRows = false) => NoScope.Instance;

    public void SoftmaxCrossEntropyBackward(Tensor probabilities, Tensor targets, Tensor dLogits, float scale)
    {
        CheckTargets(probabilities, targets, nameof(SoftmaxCrossEntropyBackward));
        CheckSameCount(probabilities, dLogits, nameof(SoftmaxCrossEntropyBackward));
        using var _ = Time(nameof(SoftmaxCrossEntropyBackward));
        int rows = probabilities.Rows, cols = probabilities.Columns;
        ChunkedRows(rows, cols, (r0, rn) =>
        {
            ReadOnlySpan<int> t = I(targets);
            for (int r = r0; r < r0 + rn; r++)
            {
                Span<float> d = F(dLogits).Slice(r * cols, cols);
                if (t[r] < 0) { d.Clear(); continue; }
                TensorPrimitives.Multiply(F(probabilities).Slice(r * cols, cols), scale, d);
                d[t[r]] -= scale;
            }
        });
    }

    public int CountCorrect(Tensor logits, Tensor targets)
    {
        CheckTargets(logits, targets, nameof(CountCorrect));
        using var _ = Time(nameof(CountCorrect));
        int rows = logits.Rows, cols = logits.Columns, correct = 0;
        ReadOnlySpan<float> x = F(logits);
        ReadOnlySpan<int> t = I(targets);
        for (int r = 0; r < rows; r++)
            if (t[r] >= 0 && TensorPrimitives.IndexOfMax(x.Slice(r * cols, cols)) == t[r]) correct++;
        return correct;
    }

    // ---- optimizer kernels ------------------------------------------------------------------------

    public void AdafactorFactoredMoments(Tensor g, Tensor rows, Tensor columns, float decay, float eps)
    {
        CheckFactored(g, rows, columns, nameof(AdafactorFactoredMoments));
        using var _ = Time(nameof(AdafactorFactoredMoments));
        int n = g.Rows, m = g.Columns;
        // rows_i: each row's mean square, independent across rows.
        ChunkedRows(n, m, (r0, rn) =>
        {
            Span<float> gs = F(g), rs = F(rows);
            for (int i = r0; i < r0 + rn; i++)
                rs[i] = decay * rs[i] + (1 - decay) * (TensorPrimitives.SumOfSquares(gs.Slice(i * m, m)) / m + eps);
        });
        // columns_j: a column range per worker, walking all rows.
        ChunkedColumns(n, m, (c0, cn) =>
        {
            float[] sums = new float[cn];
            ReadOnlySpan<float> gs = F(g);
            for (int i = 0; i < n; i++)
            {
                ReadOnlySpan<float> row = gs.Slice(i * m + c0, cn);
                TensorPrimitives.MultiplyAdd(row, row, sums, sums);
            }
            Span<float> cs = F(columns).Slice(c0, cn);
            TensorPrimitives.Multiply(sums, (1 - decay) / n, sums);                 // (1 - decay) mean_i g^2
            TensorPrimitives.MultiplyAdd(cs, decay, sums, cs);                       // + decay columns
            TensorPrimitives.Add(cs, (1 - decay) * eps, cs);                         // + (1 - decay) eps
        });
    }

    public void AdafactorFactoredPrecondition(Tensor g, Tensor rows, Tensor columns, Tensor u, float alpha = 1f, float beta = 0f, Tensor? rounded = null)
    {
        if (rounded is not null)
        {
            if (beta != 0 || rounded.Count != u.Count) throw new ArgumentException($"AdafactorFactoredPrecondition: a rounded copy {rounded} of u {u} needs beta 0 and as many elements");
            AdafactorFactoredPrecondition(g, rows, columns, u, alpha, beta);
            Copy(u, rounded);                                                            // converted as a product's operand
            return;
        }
        CheckFactored(g, rows, columns, nameof(AdafactorFactoredPrecondition));
        CheckSameCount(g, u, nameof(AdafactorFactoredPrecondition));
        using var _ = Time(nameof(AdafactorFactoredPrecondition));
        int n = g.Rows, m = g.Columns;
        float meanRows = TensorPrimitives.Sum(F(rows)) / n;
        float[] columnFactor = new float[m];
        TensorPrimitives.ReciprocalSqrt(F(columns), columnFactor);                  // 1 / sqrt(columns_j)
        ChunkedRows(n, m, (r0, rn) =>
        {
            Span<float> gs = F(g), us = F(u);
            ReadOnlySpan<float> rs = F(rows);
            Span<float> t = beta == 0 ? default : stackalloc float[Math.Min(m, Block)];
            for (int i = r0; i < r0 + rn; i++)
            {
                float rowFactor = 1f / MathF.Sqrt(rs[i] / meanRows);                // 1 / sqrt(rows_i / mean(rows))
                Span<float> ui = us.Slice(i * m, m);
                if (beta == 0)
                {
                    TensorPrimitives.Multiply(gs.Slice(i * m, m), columnFactor, ui);
                    TensorPrimitives.Multiply(ui, alpha * rowFactor, ui);
                    continue;
                }
                for (int o = 0; o < m; o += Block)                                 // u = alpha g rowFactor columnFactor + beta u
                {
                    int len = Math.Min(Block, m - o);
                    Span<float> ts = t[..len], uo = ui.Slice(o, len);
                    TensorPrimitives.Multiply(gs.Slice(i * m + o, len), columnFactor.AsSpan(o, len), ts);
                    TensorPrimitives.Multiply(ts, alpha * rowFactor, ts);
                    TensorPrimitives.MultiplyAdd(uo, beta, ts, uo);
                }
            }
        });
    }

    public void SquaredMovingAverage(Tensor g, Tensor v, float decay, float eps)
    {
        CheckSameCount(g, v, nameof(SquaredMovingAverage));
        using var _ = Time(nameof(SquaredMovingAverage));
        Chunked(g.Count, (s, n) =>
        {
            Span<float> t = stackalloc float[Block];
            for (int o = 0; o < n; o += Block)
            {
                int len = Math.Min(Block, n - o);
                ReadOnlySpan<float> gs = F(g).Slice(s + o, len);
                Span<float> vs = F(v).Slice(s + o, len), ts = t[..len];
                TensorPrimitives.Multiply(gs, gs, ts);                               // g^2
                TensorPrimitives.Add(ts, eps, ts);                                   // g^2 + eps
                TensorPrimitives.Multiply(ts, 1 - decay, ts);
                TensorPrimitives.MultiplyAdd(vs, decay, ts, vs);                     // decay v + (1 - decay)(g^2 + eps)
            }
        });
    }

    public void DivideBySqrt(Tensor g, Tensor v, Tensor u, float alpha = 1f, float beta = 0f)
    {
        CheckSameCount(g, v, nameof(DivideBySqrt)); CheckSameCount(g, u, nameof(DivideBySqrt));
        using var _ = Time(nameof(DivideBySqrt));
        Chunked(g.Count, (s, n) =>
        {
            Span<float> t = stackalloc float[Block];
            for (int o = 0; o < n; o += Block)
            {
                int len = Math.Min(Block, n - o);
                Span<float> ts = t[..len];
                TensorPrimitives.ReciprocalSqrt(F(v).Slice(s + o, len), ts);
                Span<float> us = F(u).Slice(s + o, len);
                if (beta == 0)
                {
                    TensorPrimitives.Multiply(F(g).Slice(s + o, len), ts, us);
                    if (alpha != 1) TensorPrimitives.Multiply(us, alpha, us);
                    continue;
                }
                TensorPrimitives.Multiply(F(g).Slice(s + o, len), ts, ts);
                TensorPrimitives.Multiply(ts, alpha, ts);
                TensorPrimitives.MultiplyAdd(us, beta, ts, us);                          // beta u + alpha g / sqrt(v)
            }
        });
    }

    public void AdafactorUpdate(Tensor p, Tensor u, float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter)
    {
        CheckSameCount(p, u, nameof(AdafactorUpdate));
        var (keep, step) = AdafactorCoefficients(SumOfSquares(p), p.Count, SumOfSquares(u), u.Count, lr, eps2, clipThreshold, weightDecay, scaleParameter);
        Axpby(step, u, keep, p);
    }

    public void AdafactorUpdateRounded(Tensor p, Tensor u, float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter, ulong seed)
    {
        CheckSameCount(p, u, nameof(AdafactorUpdateRounded));
        if (p.DType != DType.BFloat16 || u.DType != DType.Float32)
            throw new ArgumentException($"AdafactorUpdateRounded: expected a BFloat16 p and a Float32 u, got {p} and {u}");
        using var wide = Allocate(p.Shape, MemoryTag.Scratch);                        // the definition: copy, update, round
        Copy(p, wide);
        AdafactorUpdate(wide, u, lr, eps2, clipThreshold, weightDecay, scaleParameter);
        StochasticRound(wide, p, seed);
    }

    public void AdafactorUnfactoredStep(Tensor p, Tensor g, Tensor v, Tensor u, float decay, float eps1, float alpha, float beta,
        float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter)
    {
        SquaredMovingAverage(g, v, decay, eps1);
        DivideBySqrt(g, v, u, alpha, beta);
        AdafactorUpdate(p, u, lr, eps2, clipThreshold, weightDecay, scaleParameter);
    }

    private TensorSlot? _gram, _gramM;

    public void AdafactorLowRankUpdate(Tensor p, Tensor m, Tensor a, bool compressedColumns, float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter)
    {
        int r = a.Rows;
        _gram ??= new TensorSlot(this, MemoryTag.Scratch);
        _gramM ??= new TensorSlot(this, MemoryTag.Scratch);
        Tensor k = _gram.Get(new Shape(r, r)), l = _gramM.Get(new Shape(r, r));
        MatMul(a, false, a, true, k);                                              // A A^T
        if (compressedColumns) MatMul(m, true, m, false, l);                       // M^T M
        else MatMul(m, false, m, true, l);                                         // M M^T
        var (keep, step) = AdafactorCoefficients(SumOfSquares(p), p.Count, Dot(k, l), p.Count, lr, eps2, clipThreshold, weightDecay, scaleParameter);
        if (compressedColumns) MatMul(m, false, a, false, p, step, keep);         // W = keep W + step M A
        else MatMul(a, true, m, false, p, step, keep);                             // W = keep W + step A^T M
    }

    public void AdafactorFloraOfficialStep(Tensor p, Tensor g, Tensor rows, Tensor columns, Tensor m, Tensor a, bool compressedColumns, Tensor? rounded,
        Tensor compressed, float beta, float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter, ulong seed) =>
        ComposedSteps.AdafactorFloraOfficial(this, p, g, rows, columns, m, a, compressedColumns, rounded, compressed, beta, lr, eps2, clipThreshold,
            weightDecay, scaleParameter, seed);

    /// <summary>(1 - wd s, -s / clip) of Adafactor's step from the squared norms of p and u.</summary>
    internal static (float Keep, float Step) AdafactorCoefficients(double pSquares, long pCount, double uSquares, long uCount,
        float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter)
    {
        float s = lr * (scaleParameter ? Math.Max(eps2, (float)Math.Sqrt(pSquares / Math.Max(1, pCount))) : 1f);
        float clip = Math.Max(1f, (float)Math.Sqrt(uSquares / Math.Max(1, uCount)) / clipThreshold);
        return (1f - weightDecay * s, -s / clip);
    }

    public void AdamApply(Tensor p, Tensor m, Tensor v, float lr, float weightDecay, float eps, float biasCorrection1, float biasCorrection2)
    {
        CheckSameCount(p, m, nameof(AdamApply)); CheckSameCount(p, v, nameof(AdamApply));
        using var _ = Time(nameof(AdamApply));
        float stepSize = lr / biasCorrection1, sqrtBc2 = MathF.Sqrt(biasCorrection2), decay = 1 - lr * weightDecay;
        Chunked(p.Count, (s, n) =>
        {
            Span<float> t = stackalloc float[Block];
            for (int o = 0; o < n; o += Block)
            {
                int len = Math.Min(Block, n - o);
                Span<float> ts = t[..len], ps = F(p).Slice(s + o, len);
                // sqrt(v / bc2) + eps = sqrt(v) / sqrt(bc2) + eps, as PyTorch computes it
                TensorPrimitives.Sqrt(F(v).Slice(s + o, len), ts);
                TensorPrimitives.Divide(ts, sqrtBc2, ts);
                TensorPrimitives.Add(ts, eps, ts);
                TensorPrimitives.Divide(F(m).Slice(s + o, len), ts, ts);             // m / (sqrt(v / bc2) + eps)
                if (decay != 1) TensorPrimitives.Multiply(ps, decay, ps);           // decoupled weight decay
                TensorPrimitives.MultiplyAdd(ts, -stepSize, ps, ps);                 // p -= lr / bc1 * ...
            }
        });
    }

    public void AdamStep(Tensor p, Tensor g, Tensor m, Tensor v, float beta1, float beta2, float lr, float weightDecay, float eps, float biasCorrection1, float biasCorrection2)
    {
        SquaredMovingAverage(g, v, beta2, 0f);                                       // v = b2 v + (1 - b2) g^2
        Axpby(1 - beta1, g, beta1, m);                                                // m = b1 m + (1 - b1) g
        AdamApply(p, m, v, lr, weightDecay, eps, biasCorrection1, biasCorrection2);
    }

    /// <summary>Elements per stack-allocated temporary of the chunked element-wise kernels.</summary>
    private const int Block = 2048;

    private static void CheckFactored(Tensor g, Tensor rows, Tensor columns, string op)
    {
        if (g.Shape.Rank != 2 || rows.Count != g.Rows || columns.Count != g.Columns)
            throw new ArgumentException($"{op}: rows {rows.Shape} and columns {columns.Shape} do not match the matrix {g.Shape}");
    }

    // ---- reductions -----------------------------------------------------------------------------

    private const int ReductionBlock = 4096; // float partial sums stay accurate over blocks this short

    public double Sum(Tensor x)
    {
        using var _ = Time(nameof(Sum));
        double total = 0;
        ReadOnlySpan<float> s = F(x);
        for (int o = 0; o < s.Length; o += ReductionBlock) total += TensorPrimitives.Sum(s.Slice(o, Math.Min(ReductionBlock, s.Length - o)));
        return total;
    }

    public double SumOfSquares(Tensor x)
    {
        using var _ = Time(nameof(SumOfSquares));
        double total = 0;
        ReadOnlySpan<float> s = F(x);
        for (int o = 0; o < s.Length; o += ReductionBlock) total += TensorPrimitives.SumOfSquares(s.Slice(o, Math.Min(ReductionBlock, s.Length - o)));
        return total;
    }

    public double Dot(Tensor a, Tensor b)
    {
        CheckSameCount(a, b, nameof(Dot));
        using var _ = Time(nameof(Dot));
        double total = 0;
        ReadOnlySpan<float> x = F(a), y = F(b);
        for (int o = 0; o < x.Length; o += ReductionBlock)
        {
            int n = Math.Min(ReductionBlock, x.Length - o);
            total += TensorPrimitives.Dot(x.Slice(o, n), y.Slice(o, n));
        }
        return total;
    }

    public double SumOfMagnitudes(Tensor x)
    {
        using var _ = Time(nameof(SumOfMagnitudes));
        double total = 0;
        ReadOnlySpan<float> s = F(x);
        for (int o = 0; o < s.Length; o += ReductionBlock) total += TensorPrimitives.SumOfMagnitudes(s.Slice(o, Math.Min(ReductionBlock, s.Length - o)));
        return total;
    }

    public float MaxMagnitude(Tensor x)
    {
        using var _ = Time(nameof(MaxMagnitude));
        return x.Count == 0 ? 0f : MathF.Abs(TensorPrimitives.MaxMagnitude(F(x)));
    }

    // ---- random -----------------------------------------------------------------------------------

    public void FillGaussian(Tensor tensor, ulong seed, float std)
    {
        if (tensor.DType == DType.BFloat16)
        {
            // The Float32 values rounded to nearest even, a block of rows at a time (no full-size Float32 copy).
            const int Chunk = 1 << 20;
            using var wide = Allocate(new Shape(Math.Min(Chunk, Math.Max(tensor.Count, 1))), MemoryTag.Scratch);
            for (int start = 0; start < tensor.Count; start += Chunk)
            {
                int n = Math.Min(Chunk, tensor.Count - start);
                Tensor part = wide.View(new Shape(n));
                FillGaussianRange(part, seed, std, start);
                Copy(part, tensor.View(new Shape(n), start));
            }
            return;
        }
        CheckFloat(tensor, nameof(FillGaussian));
        FillGaussianRange(tensor, seed, std, 0);
    }

    /// <summary>tensor[i] = std z(seed, first + i); <paramref name="first"/> is a multiple of 4.</summary>
    private void FillGaussianRange(Tensor tensor, ulong seed, float std, int first)
    {
        using var _ = Time(nameof(FillGaussian));
        int count = tensor.Count, firstBlock = first / 4;
        int blocks = (count + 3) / 4;
        float* dst = (float*)tensor.Pointer - first;                 // indexed by the stream's element index
        // Philox is compute-bound (about 16 times the cost of a memory pass per element): weight the work so.
        Split(blocks, 16L * count, 1024, (b0, bn) =>
        {
            Span<float> four = stackalloc float[4];
            int b = b0;
            if (PhiloxAvx2.IsSupported)
            {
                int whole = Math.Min(bn, (count / 4 - b0)) & ~3;   // full blocks only, four at a time
                if (whole > 0) PhiloxAvx2.Fill(seed, firstBlock + b0, whole, std, dst);
                b += Math.Max(whole, 0);
            }
            for (; b < b0 + bn; b++)
            {
                Philox.GaussianBlock(seed, (ulong)(firstBlock + b), four);
                int i = (firstBlock + b) * 4;
                for (int j = 0; j < 4 && i + j - first < count; j++) dst[i + j] = std * four[j];
            }
        });
    }

    public void Synchronize() { }

    public void Dispose() { }

    // ---- helpers ----------------------------------------------------------------------------------

    private static Span<float> F(Tensor t)
    {
        if (t.DType != DType.Float32) throw new ArgumentException($"expected a Float32 tensor, got {t}");
        if (!t.Storage.IsHost) throw new ArgumentException($"the CPU backend got a tensor that is not in host memory: {t}");
        return new Span<float>((void*)t.Pointer, t.Count);
    }

    private static Span<ushort> H(Tensor t)
    {
        if (t.DType != DType.BFloat16) throw new ArgumentException($"expected a BFloat16 tensor, got {t}");
        if (!t.Storage.IsHost) throw new ArgumentException($"the CPU backend got a tensor that is not in host memory: {t}");
        return new Span<ushort>((void*)t.Pointer, t.Count);
    }

    private static Span<int> I(Tensor t)
    {
        if (t.DType != DType.Int32) throw new ArgumentException($"expected an Int32 tensor, got {t}");
        if (!t.Storage.IsHost) throw new ArgumentException($"the CPU backend got a tensor that is not in host memory: {t}");
        return new Span<int>((void*)t.Pointer, t.Count);
    }

    private static void CheckFloat(Tensor t, string op)
    {
        if (t.DType != DType.Float32) throw new ArgumentException($"{op}: expected a Float32 tensor, got {t}");
    }

    private static void CheckCount(int length, Tensor t, string op)
    {
        if (length != t.Count) throw new ArgumentException($"{op}: {length} host elements for a tensor of shape {t.Shape} ({t.Count} elements)");
    }

    private static void CheckSameCount(Tensor a, Tensor b, string op)
    {
        if (a.Count != b.Count) throw new ArgumentException($"{op}: shapes {a.Shape} and {b.Shape} have different element counts");
    }

    private static void CheckTargets(Tensor logits, Tensor targets, string op)
    {
        if (targets.Count != logits.Rows)
            throw new ArgumentException($"{op}: {targets.Count} targets for {logits.Rows} rows of logits {logits.Shape}");
        int classes = logits.Columns;
        ReadOnlySpan<int> t = I(targets);
        for (int r = 0; r < t.Length; r++)
            if (t[r] >= classes) throw new ArgumentException($"{op}: target {t[r]} at row {r} is outside [0, {classes}) (negative targets are ignored)");
    }

    /// <summary>Runs body(start, length) over [0, count), split across cores when count is large.</summary>
    private static void Chunked(int count, Action<int, int> body) => Split(count, count, 16, body);

    /// <summary>Runs body(firstRow, rowCount) over the rows of a (rows, cols) matrix, split across cores when large.</summary>
    private static void ChunkedRows(int rows, int cols, Action<int, int> body) => Split(rows, (long)rows * cols, 1, body);

    /// <summary>Runs body(firstColumn, columnCount) over the columns of a (rows, cols) matrix, split across cores when large.</summary>
    private static void ChunkedColumns(int rows, int cols, Action<int, int> body) => Split(cols, (long)rows * cols, 64, body);

    /// <summary>Splits [0, items) into one range per core (multiples of <paramref name="granule"/>) when the work is large.</summary>
    private static void Split(int items, long work, int granule, Action<int, int> body)
    {
        int workers = Math.Min(Environment.ProcessorCount, items / granule);
        if (work < ParallelThreshold || workers < 2) { body(0, items); return; }
        int chunk = (items + workers - 1) / workers;
        chunk = (chunk + granule - 1) / granule * granule;
        Parallel.For(0, (items + chunk - 1) / chunk, i => body(i * chunk, Math.Min(chunk, items - i * chunk)));
    }

    private ProfileScope Time(string op) => new(this, op, nested: false);

    /// <summary>Times a fused kernel whose inner matrix products are profiled as MatMul: they are subtracted here.</summary>
    private ProfileScope TimeWithGemms(string op) => new(this, op, nested: true);

    /// <summary>Ticks of matrix products inside the fused kernel being timed.</summary>
    private long _nestedGemmTicks;

    private readonly struct ProfileScope : IDisposable
    {
        private readonly CpuBackend _backend;
        private readonly string _op;
        private readonly long _start;
        private readonly bool _nested;

        public ProfileScope(CpuBackend backend, string op, bool nested)
        {
            _backend = backend;
            _op = op;
            _nested = nested;
            _start = backend.Profiler is null ? 0 : Stopwatch.GetTimestamp();
            if (nested) backend._nestedGemmTicks = 0;
        }

        public void Dispose()
        {
            if (_backend.Profiler is not OpProfiler profiler) return;
            long elapsed = Stopwatch.GetTimestamp() - _start;
            profiler.Record(_op, _nested ? elapsed - _backend._nestedGemmTicks : elapsed);
        }
    }
}
