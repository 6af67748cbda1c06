using System.Diagnostics;
using Flora.Tensors;

namespace Flora.Backends.Cuda;

/// <summary>
/// The kernel surface on an NVIDIA GPU: matrix products through cuBLAS, everything else through the
/// project's kernels (Backends/Cuda/Kernels/*.cu, compiled with NVRTC), device memory from a caching
/// allocator tagged in the ledger. All work goes to the default stream in issue order; results that
/// return a number to the host (reductions, the loss) wait for it.
/// </summary>
internal sealed unsafe partial class CudaBackend : IBackend
{
    private const uint Threads = 256;
    private readonly CudaDevice _device;
    private readonly CuBlas _blas;
    private readonly CudaAllocator _allocator;
    private readonly int _compute;
    private readonly TensorSlot _partials, _scores, _scoreGradients, _rowDots;
    private readonly TensorSlot _operandA, _operandB, _operandC, _operandV, _probabilities16;
    private readonly TensorSlot _coefficients, _gramA, _gramM, _rotaryTable;
    private readonly TensorSlot _floraSums, _floraX;
    private readonly TensorSlot _counter;
    private readonly TensorSlot _headLogits, _headLosses, _headLogits16, _keyLengths;
    private readonly CuBlasLt? _lt;
    private readonly Tensor? _ltWorkspace;

    private CudaBackend(MemoryLedger ledger, GemmPrecision precision, CudaDevice device, string kernels)
    {
        Ledger = ledger;
        Precision = precision;
        _device = device;
        _blas = new CuBlas();
        _allocator = new CudaAllocator(device, ledger);
        // bf16 mode rounds the operands to bf16 itself (to_bf16) and multiplies natively in bf16 with fp32
        // accumulation: cuBLAS then picks its bf16 tensor-core kernels.
        _compute = precision switch
        {
            GemmPrecision.Fp32 => CuBlas.Compute32F,
            GemmPrecision.Tf32 => CuBlas.Compute32FFastTF32,
            _ => CuBlas.Compute32F,
        };
        _partials = new TensorSlot(this, MemoryTag.Scratch);
        _scores = new TensorSlot(this, MemoryTag.Scratch);
        _scoreGradients = new TensorSlot(this, MemoryTag.Scratch);
        _rowDots = new TensorSlot(this, MemoryTag.Scratch);
        _counter = new TensorSlot(this, MemoryTag.Scratch, DType.Int32);
        _operandA = new TensorSlot(this, MemoryTag.Scratch, DType.BFloat16);
        _operandB = new TensorSlot(this, MemoryTag.Scratch, DType.BFloat16);
        _operandC = new TensorSlot(this, MemoryTag.Scratch, DType.BFloat16);
        _operandV = new TensorSlot(this, MemoryTag.Scratch, DType.BFloat16);
        _probabilities16 = new TensorSlot(this, MemoryTag.Scratch, DType.BFloat16);
        _coefficients = new TensorSlot(this, MemoryTag.Scratch);
        _rotaryTable = new TensorSlot(this, MemoryTag.Scratch);
        _gramA = new TensorSlot(this, MemoryTag.Scratch);
        _gramM = new TensorSlot(this, MemoryTag.Scratch);
        _floraSums = new TensorSlot(this, MemoryTag.Scratch);
        _floraX = new TensorSlot(this, MemoryTag.Scratch);
        _headLogits = new TensorSlot(this, MemoryTag.Scratch);
        _headLosses = new TensorSlot(this, MemoryTag.Scratch);
        _headLogits16 = new TensorSlot(this, MemoryTag.Scratch, DType.BFloat16);
        _keyLengths = new TensorSlot(this, MemoryTag.Scratch, DType.Int32);
        _wideA = new TensorSlot(this, MemoryTag.Scratch);
        _wideB = new TensorSlot(this, MemoryTag.Scratch);
        _wideC = new TensorSlot(this, MemoryTag.Scratch);
        _biasRounded = new TensorSlot(this, MemoryTag.Scratch);
        _bias16 = new TensorSlot(this, MemoryTag.Scratch, DType.BFloat16);
        // cuBLASLt fuses a linear layer's bias into its product; without it (an old toolkit) the bias is a separate pass.
        if (precision == GemmPrecision.Bf16)
        {
            _ltWorkspace = Allocate(new Shape(8 << 20), MemoryTag.Scratch);        // 32 MiB for its kernels
            try { _lt = new CuBlasLt(P(_ltWorkspace), _ltWorkspace.Bytes); }
            catch (FloraException) { _ltWorkspace.Dispose(); _ltWorkspace = null; }
        }
        Description = $"{device.Name} ({device.Architecture}, {device.Multiprocessors} SMs, {device.TotalMemory / 1073741824.0:F0} GiB), " +
            $"driver {Driver.Functions.Path}, {Nvrtc.Describe()}, cuBLAS {_blas.Path}{(_lt is null ? "" : $", cuBLASLt {_lt.Path}")}, GEMM {precision}; kernels {kernels}";
    }

    /// <summary>Opens device <paramref name="ordinal"/>, loads the kernels and cuBLAS; a machine without a driver gets one clear line.</summary>
    public static CudaBackend Create(MemoryLedger? ledger = null, GemmPrecision precision = GemmPrecision.Tf32, int ordinal = 0)
    {
        var device = CudaDevice.Open(ordinal);
        string kernels = device.LoadKernels();
        return new CudaBackend(ledger ?? new MemoryLedger(), precision, device, kernels);
    }

    /// <summary>Whether a CUDA driver can be loaded here, and why not.</summary>
    public static bool IsAvailable(out string? problem) => Driver.TryLoad(out problem);

    public string Name => "cuda";

    public DType ProductOperandType => Precision == GemmPrecision.Bf16 ? DType.BFloat16 : DType.Float32;
    /// <inheritdoc/>
    public DType ActivationType => ProductOperandType;
    public string Description { get; }
    public GemmPrecision Precision { get; }
    public MemoryLedger Ledger { get; }
    public OpProfiler? Profiler { get; set; }

    /// <summary>Device memory: the ledger's count, the allocator's reservation, and the driver's reading.</summary>
    public (long Ledger, long Reserved, long DriverUsed) MemoryReadings()
    {
        var (free, total) = _device.MemoryInfo();
        return (Ledger.CurrentTotal, _allocator.Reserved, total - free);
    }

    public long DriverAllocations => _allocator.DriverAllocations;

    public void Synchronize()
    {
        _device.Synchronize();
        ResolveEvents();
    }

    // ---- profiling with CUDA events: each op is bracketed by two events on the stream, read after a synchronise,
    // so that op times are GPU times and profiling does not stall the stream.
    private readonly List<(string Op, IntPtr Start, IntPtr End, string? Product, double Flops)> _pendingEvents = new();
    private readonly Stack<IntPtr> _freeEvents = new();

    private IntPtr RecordEvent()
    {
        IntPtr e;
        if (_freeEvents.Count > 0) e = _freeEvents.Pop();
        else Driver.Check(Driver.Functions.EventCreate(&e, 0), "cuEventCreate");
        Driver.Check(Driver.Functions.EventRecord(e, IntPtr.Zero), "cuEventRecord");
        return e;
    }

    private void ResolveEvents()
    {
        if (_pendingEvents.Count == 0) return;
        foreach (var (op, start, end, product, flops) in _pendingEvents)
        {
            float ms;
            Driver.Check(Driver.Functions.EventElapsedTime(&ms, start, end), "cuEventElapsedTime");
            long ticks = (long)(ms * 1e-3 * Stopwatch.Frequency);
            Profiler?.Record(op, ticks);
            if (product is not null) Profiler?.RecordProduct(product, ticks, flops);
            _freeEvents.Push(start);
            _freeEvents.Push(end);
        }
        _pendingEvents.Clear();
    }

    // ---- memory ------------------------------------------------------------------------------

    public Tensor Allocate(Shape shape, MemoryTag tag, DType dtype = DType.Float32)
    {
        long bytes = (long)shape.Count * dtype.Size();
        var storage = new DeviceStorage(_allocator, Ledger, tag, bytes);
        var tensor = new Tensor(storage, shape, dtype, 0, ownsStorage: true);
        if (bytes > 0) Driver.Check(Driver.Functions.MemsetD32(P(tensor), 0, (nuint)((bytes + 3) / 4)), $"cuMemsetD32({bytes} bytes)");
        return tensor;
    }

    public void Upload(ReadOnlySpan<float> source, Tensor destination)
    {
        CheckCount(source.Length, destination, nameof(Upload));
        fixed (float* s = source) Driver.Check(Driver.Functions.MemcpyHtoD(P(destination), s, (nuint)(source.Length * 4)), $"cuMemcpyHtoD({source.Length * 4} bytes)");
    }

    public void Upload(ReadOnlySpan<int> source, Tensor destination)
    {
        CheckCount(source.Length, destination, nameof(Upload));
        fixed (int* s = source) Driver.Check(Driver.Functions.MemcpyHtoD(P(destination), s, (nuint)(source.Length * 4)), $"cuMemcpyHtoD({source.Length * 4} bytes)");
    }

    public void Download(Tensor source, Span<float> destination)
    {
        CheckCount(destination.Length, source, nameof(Download));
        fixed (float* d = destination) Driver.Check(Driver.Functions.MemcpyDtoH(d, P(source), (nuint)(destination.Length * 4)), $"cuMemcpyDtoH({destination.Length * 4} bytes)");
    }

    public void Download(Tensor source, Span<int> destination)
    {
        CheckCount(destination.Length, source, nameof(Download));
        fixed (int* d = destination) Driver.Check(Driver.Functions.MemcpyDtoH(d, P(source), (nuint)(destination.Length * 4)), $"cuMemcpyDtoH({destination.Length * 4} bytes)");
    }

    /// <summary>The raw bits of a BFloat16 tensor (for checks).</summary>
    public ushort[] DownloadBFloat16(Tensor source)
    {
        if (source.DType != DType.BFloat16) throw new ArgumentException($"DownloadBFloat16: {source} is not BFloat16");
        var host = new ushort[source.Count];
        fixed (ushort* d = host) Driver.Check(Driver.Functions.MemcpyDtoH(d, P(source), (nuint)(host.Length * 2)), $"cuMemcpyDtoH({host.Length * 2} bytes)");
        return host;
    }

    public void Copy(Tensor source, Tensor destination)
    {
        if (source.Count != destination.Count) throw new ArgumentException($"Copy: {source} into {destination}");
        if (source.Count == 0) return;
        using var _ = Time(nameof(Copy));
        int n = source.Count;
        if (source.DType == destination.DType)
            Driver.Check(Driver.Functions.MemcpyDtoD(P(destination), P(source), (nuint)source.Bytes), $"cuMemcpyDtoD({source.Bytes} bytes)");
        else if (source.DType == DType.BFloat16 && destination.DType == DType.Float32)
            Elementwise("bf16_to_f32", n, P(source), P(destination), n);                   // exact
        else if (source.DType == DType.Float32 && destination.DType == DType.BFloat16)
            Elementwise("to_bf16", n, P(source), P(destination), n);                       // round to nearest even
        else throw new ArgumentException($"Copy: {source} into {destination}");
    }

    public void Fill(Tensor tensor, float value)
    {
        using var _ = Time(nameof(Fill));
        if (tensor.DType == DType.BFloat16) Elementwise("fill_u16", tensor.Count, P(tensor), (uint)BFloat16.RoundToNearestEven(value), tensor.Count);
        else Elementwise("fill", tensor.Count, P(tensor), value, tensor.Count);
    }

    /// <inheritdoc/>
    public void StochasticRound(Tensor source, Tensor destination, ulong seed)
    {
        if (source.Count != destination.Count || source.DType != DType.Float32 || destination.DType != DType.BFloat16)
            throw new ArgumentException($"StochasticRound: expected a Float32 source and a BFloat16 destination of as many elements, got {source} into {destination}");
        if (source.Count == 0) return;
        using var _ = Time(nameof(StochasticRound));
        int n = source.Count;
        uint k0 = (uint)seed, k1 = (uint)(seed >> 32);
        if (n % 8 == 0 && P(source) % 16 == 0 && P(destination) % 16 == 0) Elementwise("stochastic_round_bf16_x8", n / 8, P(source), P(destination), n / 8, k0, k1);
        else Elementwise("stochastic_round_bf16", (n + 7) / 8, P(source), P(destination), n, k0, k1);
    }

    // ---- matrix products -----------------------------------------------------------------------

    public void MatMul(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor c, float alpha = 1f, float beta = 0f)
    {
        int m = transposeA ? a.Columns : a.Rows, k = transposeA ? a.Rows : a.Columns;
        int kb = transposeB ? b.Columns : b.Rows, n = transposeB ? b.Rows : b.Columns;
        if (k != kb || c.Rows != m || c.Columns != n)
            throw new ArgumentException($"MatMul: op(A) is ({m}, {k}) from {a.Shape}{(transposeA ? "^T" : "")}, op(B) is ({kb}, {n}) from {b.Shape}{(transposeB ? "^T" : "")}, C is ({c.Rows}, {c.Columns}) from {c.Shape}");
        CheckProductOutput(c, beta, nameof(MatMul));
        if (m == 0 || n == 0) return;
        if (k == 0) { if (beta == 0) Fill(c, 0f); else Scale(c, beta); return; }
        if (c.DType == DType.BFloat16 && Precision != GemmPrecision.Bf16)
        {
            Tensor wide = _wideC.Get(c.Shape);                                         // fp32 and TF32 products write fp32: rounded after
            MatMul(a, transposeA, b, transposeB, wide, alpha);
            Copy(wide, c);
            return;
        }
        // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
        if (Precision == GemmPrecision.Bf16)
        {
            ulong a16 = ToBf16(a, _operandA), b16 = a == b ? a16 : ToBf16(b, _operandB);
            int output = c.DType == DType.BFloat16 ? CuBlas.R16BF : CuBlas.R32F;     // a bf16 C: the fp32 result rounded in the product's epilogue
            using var product = TimeProduct($"{(transposeA ? "T" : "N")}{(transposeB ? "T" : "N")}{(output == CuBlas.R16BF ? " -> bf16" : "")}", m, n, k);
            // cuBLASLt with a plan cached per shape costs the host less per call than cublasGemmEx; either computes the same.
            if (_lt is not null && _lt.TryMatmul(transposeB ? CuBlas.OpT : CuBlas.OpN, transposeA ? CuBlas.OpT : CuBlas.OpN, n, m, k, alpha,
                    b16, b.Columns, a16, a.Columns, beta, P(c), c.Columns, _compute, CuBlas.R16BF, outputType: output))
                return;
            _blas.Gemm(transposeB ? CuBlas.OpT : CuBlas.OpN, transposeA ? CuBlas.OpT : CuBlas.OpN, n, m, k, alpha,
                b16, b.Columns, a16, a.Columns, beta, P(c), c.Columns, _compute, CuBlas.R16BF, output);
            return;
        }
        // fp32 and TF32 products read fp32: bf16 operands (weights stored in bf16) are widened into scratch first.
        ulong a32 = ToF32(a, _wideA), b32 = a == b ? a32 : ToF32(b, _wideB);
        using var _ = TimeProduct($"{(transposeA ? "T" : "N")}{(transposeB ? "T" : "N")}", m, n, k);
        _blas.Gemm(transposeB ? CuBlas.OpT : CuBlas.OpN, transposeA ? CuBlas.OpT : CuBlas.OpN, n, m, k, alpha,
            b32, b.Columns, a32, a.Columns, beta, P(c), c.Columns, _compute);
    }

    /// <summary>C is Float32, or BFloat16 written whole (beta = 0): a product that only rounds can not accumulate.</summary>
    private static void CheckProductOutput(Tensor c, float beta, string op)
    {
        if (c.DType == DType.BFloat16 && beta != 0) throw new ArgumentException($"{op}: a BFloat16 C cannot accumulate (beta must be 0), got {c}");
        if (c.DType is not (DType.Float32 or DType.BFloat16)) throw new ArgumentException($"{op}: C must be Float32 or BFloat16, got {c}");
    }

    private readonly TensorSlot _wideA, _wideB, _wideC, _biasRounded;
    private readonly TensorSlot _bias16;

    /// <summary>The address of <paramref name="t"/> as fp32: itself, or its bf16 elements widened into <paramref name="slot"/>.</summary>
    private ulong ToF32(Tensor t, TensorSlot slot)
    {
        if (t.DType == DType.Float32) return P(t);
        if (t.DType != DType.BFloat16) throw new ArgumentException($"expected a Float32 or BFloat16 operand, got {t}");
        Tensor wide = slot.Get(new Shape(t.Count));
        Copy(t, wide);
        return P(wide);
    }

    public void MatMulBias(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor c, Tensor bias)
    {
        if (bias.Count != c.Columns) throw new ArgumentException($"MatMulBias: bias {bias.Shape} does not match the {c.Columns} columns of {c.Shape}");
        CheckProductOutput(c, 0f, nameof(MatMulBias));
        if (TryEpilogueProduct(a, transposeA, b, transposeB, c, $" + bias{(c.DType == DType.BFloat16 ? " -> bf16" : "")}", CuBlasLt.EpilogueBias, bias: bias))
            return;
        // Without a fused epilogue for this C (MatMul also reports any shape mismatch): the bias as a pass of its own; a
        // bf16 C as the fp32 product plus the bias rounded to bf16 (the same sums as the epilogue's), rounded after.
        if (c.DType == DType.Float32) { MatMul(a, transposeA, b, transposeB, c); AddBias(c, bias); return; }
        Tensor wide = _wideC.Get(c.Shape), bias16 = _bias16.Get(bias.Shape), rounded = _biasRounded.Get(bias.Shape);
        Copy(bias, bias16);
        Copy(bias16, rounded);                                                         // the bias rounded to bf16, widened
        MatMulBias(a, transposeA, b, transposeB, wide, rounded);
        Copy(wide, c);
    }

    /// <summary>
    /// output = op(A) op(B) (+ the residual, + the bias) through cuBLASLt with <paramref name="epilogue"/>, bf16 products
    /// only; a bf16 output takes the bias in bf16 too (cuBLASLt pairs a bf16 D only with a bf16 bias; autocast rounds the
    /// bias so as well) and the epilogue rounds the fp32 result once. <paramref name="aux"/> is the GELU epilogues'
    /// pre-activation (written or read). False, with nothing run, without cuBLASLt, for empty or mismatched shapes, or
    /// where cuBLASLt has no algorithm: the caller then computes the same another way.
    /// </summary>
    private bool TryEpilogueProduct(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor output, string label, int epilogue,
        Tensor? bias = null, Tensor? residual = null, Tensor? aux = null)
    {
        int m = transposeA ? a.Columns : a.Rows, k = transposeA ? a.Rows : a.Columns, n = transposeB ? b.Rows : b.Columns;
        if (_lt is null || Precision != GemmPrecision.Bf16 || m == 0 || n == 0 || k == 0 || (transposeB ? b.Columns : b.Rows) != k
            || output.Rows != m || output.Columns != n || (residual is not null && residual.Columns != n))
            return false;
        ulong a16 = ToBf16(a, _operandA), b16 = a == b ? a16 : ToBf16(b, _operandB);
        bool half = output.DType == DType.BFloat16;
        ulong biasAddress = bias is null ? 0 : half ? ToBf16(bias, _bias16) : P(bias);
        // Row-major output = op(A) op(B) is column-major D^T = op(B)^T op(A)^T; a residual is C, with D written apart.
        using var _ = TimeProduct($"{(transposeA ? "T" : "N")}{(transposeB ? "T" : "N")}{label}", m, n, k);
        return _lt.TryMatmul(transposeB ? CuBlas.OpT : CuBlas.OpN, transposeA ? CuBlas.OpT : CuBlas.OpN, n, m, k, 1f, b16, b.Columns, a16, a.Columns,
            residual is null ? 0f : 1f, residual is null ? P(output) : P(residual), output.Columns, _compute, CuBlas.R16BF, epilogue, biasAddress,
            half ? CuBlas.R16BF : CuBlas.R32F, aux: aux is null ? 0 : P(aux), auxLd: aux?.Columns ?? 0, d: residual is null ? 0 : P(output));
    }

    public void MatMulBiasAdd(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor? bias, Tensor residual, Tensor output)
    {
        ProductChecks.CheckResidualOutput(residual, output, nameof(MatMulBiasAdd));
        if (bias is not null && bias.Count != output.Columns) throw new ArgumentException($"MatMulBiasAdd: bias {bias.Shape} does not match the {output.Columns} columns of {output.Shape}");
        // D = product + 1 C (the residual) + bias, in fp32, into the output: no separate add, no branch output.
        if (TryEpilogueProduct(a, transposeA, b, transposeB, output, $"{(bias is null ? "" : " + bias")} + residual",
                bias is null ? CuBlasLt.EpilogueDefault : CuBlasLt.EpilogueBias, bias: bias, residual: residual))
            return;
        Tensor y = _wideC.Get(output.Shape);                                           // the branch's output, then the add
        if (bias is null) MatMul(a, transposeA, b, transposeB, y);
        else MatMulBias(a, transposeA, b, transposeB, y, bias);
        Add(residual, y, output);
    }

    public void MatMulBiasGelu(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor preActivation, Tensor activation, Tensor bias)
    {
        ProductChecks.CheckGeluPair(preActivation, activation, nameof(MatMulBiasGelu));
        if (bias.Count != activation.Columns) throw new ArgumentException($"MatMulBiasGelu: bias {bias.Shape} does not match the {activation.Columns} columns of {activation.Shape}");
        // D = GELU(product + bias) and aux = product + bias, both rounded from the same fp32 sum.
        if (TryEpilogueProduct(a, transposeA, b, transposeB, activation, " + bias, gelu -> bf16", CuBlasLt.EpilogueGeluAuxBias, bias: bias, aux: preActivation))
            return;
        MatMulBias(a, transposeA, b, transposeB, preActivation, bias);
        Gelu(preActivation, activation);
    }

    public void MatMulGeluBackward(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor preActivation, Tensor dx)
    {
        ProductChecks.CheckGeluPair(preActivation, dx, nameof(MatMulGeluBackward));
        if (TryEpilogueProduct(a, transposeA, b, transposeB, dx, " x gelu' -> bf16", CuBlasLt.EpilogueDGelu, aux: preActivation))
            return;
        Tensor product = _wideC.Get(dx.Shape);
        MatMul(a, transposeA, b, transposeB, product);
        GeluBackward(preActivation, product, dx);
    }

    // ---- element-wise ---------------------------------------------------------------------------

    public void Add(Tensor a, Tensor b, Tensor result)
    {
        CheckSameCount(a, b, nameof(Add)); CheckSameCount(a, result, nameof(Add));
        using var _ = Time(nameof(Add));
        Elementwise("add", a.Count, P(a), P(b), P(result), a.Count);
    }

    public void Axpy(float alpha, Tensor x, Tensor y) => Axpby(alpha, x, 1f, y);

    public void Axpby(float alpha, Tensor x, float beta, Tensor y)
    {
        CheckSameCount(x, y, nameof(Axpby));
        using var _ = Time(nameof(Axpby));
        Elementwise("axpby", x.Count, alpha, P(x), beta, P(y), x.Count);
    }

    public void Scale(Tensor x, float alpha)
    {
        using var _ = Time(nameof(Scale));
        Elementwise("scale", x.Count, P(x), alpha, x.Count);
    }

    public void AddBias(Tensor y, Tensor bias)
    {
        if (bias.Count != y.Columns) throw new ArgumentException($"AddBias: bias {bias.Shape} does not match the {y.Columns} columns of {y.Shape}");
        using var _ = Time(nameof(AddBias));
        Elementwise("add_bias", y.Count, P(y), P(bias), y.Rows, y.Columns);
    }

    public void SumRows(Tensor x, Tensor result, float alpha, float beta)
    {
        if (result.Count != x.Columns) throw new ArgumentException($"SumRows: result {result.Shape} does not match the {x.Columns} columns of {x.Shape}");
        using var _ = Time(nameof(SumRows));
        if (FindReused(x) is { Ready: true, Chunks: > 0 } entry && x.Columns == entry.Operand!.Columns)
        {
            // The conversion of this reused operand already summed its row chunks.
            ColumnFinish("column_finish", x.Columns, P(entry.Partials.Get(new Shape(entry.Chunks * x.Columns))), P(result), entry.Chunks, x.Columns, alpha, beta);
            return;
        }
        if (x.DType is not (DType.Float32 or DType.BFloat16)) throw new ArgumentException($"SumRows: expected a Float32 or BFloat16 x, got {x}");
        if (x.DType == DType.BFloat16 && x.Columns % 4 == 0 && P(x) % 8 == 0)
        {
            // Four columns per thread (8-byte loads) for a bf16 gradient: the chunks as RowsPerChunk sizes them for a quarter of the columns.
            int rows = x.Rows, cols = x.Columns, quads = cols / 4, perChunk = RowsPerChunk(rows, quads), chunks = Math.Max(1, (rows + perChunk - 1) / perChunk);
            Tensor partial = _partials.Get(new Shape(chunks * cols));
            _device.Launch("column_partial_sums_bf16_x4", (uint)((quads + Threads - 1) / Threads), (uint)chunks, Threads, 0, P(x), P(partial), rows, cols, perChunk);
            ColumnFinish("column_finish", cols, P(partial), P(result), chunks, cols, alpha, beta);
            return;
        }
        ColumnReduce(x.DType == DType.BFloat16 ? "column_partial_sums_bf16" : "column_partial_sums", x, null, result, alpha, beta);
    }

    public void Relu(Tensor x, Tensor y)
    {
        CheckSameCount(x, y, nameof(Relu));
        using var _ = Time(nameof(Relu));
        Elementwise("relu", x.Count, P(x), P(y), x.Count);
    }

    public void ReluBackward(Tensor y, Tensor dy, Tensor dx)
    {
        CheckSameCount(y, dy, nameof(ReluBackward)); CheckSameCount(y, dx, nameof(ReluBackward));
        using var _ = Time(nameof(ReluBackward));
        Elementwise("relu_backward", y.Count, P(y), P(dy), P(dx), y.Count);
    }

    public void Gelu(Tensor x, Tensor y)
    {
        CheckSameCount(x, y, nameof(Gelu));
        using var _ = Time(nameof(Gelu));
        if (x.DType == DType.BFloat16 && y.DType == DType.BFloat16) Elementwise("gelu_bf16", x.Count, P(x), P(y), x.Count);
        else if (x.DType == DType.Float32 && y.DType == DType.Float32) Elementwise("gelu", x.Count, P(x), P(y), x.Count);
        else throw new ArgumentException($"Gelu: x and y must both be Float32 or both BFloat16, got {x} and {y}");
    }

    public void GeluBackward(Tensor x, Tensor dy, Tensor dx)
    {
        CheckSameCount(x, dy, nameof(GeluBackward)); CheckSameCount(x, dx, nameof(GeluBackward));
        string kernel = (x.DType, dy.DType, dx.DType) switch
        {
            (DType.Float32, DType.Float32, DType.Float32) => "gelu_backward",
            (DType.BFloat16, DType.Float32, DType.Float32) => "gelu_backward_bf16",
            (DType.BFloat16, DType.Float32, DType.BFloat16) => "gelu_backward_bf16_bf16",
            _ => throw new ArgumentException($"GeluBackward: x must be Float32 or BFloat16, dy Float32, dx Float32 (or BFloat16 with a BFloat16 x), got {x}, {dy} and {dx}"),
        };
        using var _ = Time(nameof(GeluBackward));
        Elementwise(kernel, x.Count, P(x), P(dy), P(dx), x.Count);
    }

    // ---- helpers ----------------------------------------------------------------------------------

    /// <summary>The bf16 copy of <paramref name="t"/> in <paramref name="slot"/> (round to nearest even); returns its address.</summary>
    private ulong ToBf16(Tensor t, TensorSlot slot)
    {
        if (t.DType == DType.BFloat16) return P(t);                                  // generated in bf16 already
        if (FindReused(t) is ReuseEntry entry)
        {
            if (!entry.Ready) ConvertReused(entry);
            return P(entry.Copy.Get(new Shape(t.Count)));
        }
        return Convert(t, slot);

        ulong Convert(Tensor t, TensorSlot slot)
        {
            ulong copy = P(slot.Get(new Shape(t.Count)));
            ConvertToBf16(t, copy);
            return copy;
        }
    }

    /// <summary>Writes <paramref name="t"/> rounded to bf16 at <paramref name="destination"/>.</summary>
    private void ConvertToBf16(Tensor t, ulong destination)
    {
        using var _ = Time(nameof(ToBf16));
        // Four elements per thread when both ends are aligned for 16- and 8-byte accesses.
        if (t.Count % 4 == 0 && P(t) % 16 == 0 && destination % 8 == 0) Elementwise("to_bf16_x4", t.Count / 4, P(t), destination, t.Count / 4);
        else Elementwise("to_bf16", t.Count, P(t), destination, t.Count);
    }

    /// <summary>
    /// Operands declared reused, innermost last (a layer's output gradient, and inside it, when LOMO updates the
    /// layer's weight, FLORA's moment): each with its bf16 copy and the column sums taken while converting it.
    /// </summary>
    private readonly List<ReuseEntry> _reuse = new();
    private int _reuseDepth;

    private sealed class ReuseEntry(CudaBackend backend) : IDisposable
    {
        public Tensor? Operand;
        public bool Ready, SumRows;
        public int Chunks;
        public readonly TensorSlot Copy = new(backend, MemoryTag.Scratch, DType.BFloat16);
        public readonly TensorSlot Partials = new(backend, MemoryTag.Scratch);

        public void Dispose()
        {
            Copy.Dispose();
            Partials.Dispose();
        }
    }

    private ReuseEntry? FindReused(Tensor t)
    {
        for (int i = _reuseDepth - 1; i >= 0; i--)
        {
            var entry = _reuse[i];
            if (entry.Operand is Tensor o && t.Pointer == o.Pointer && t.Count == o.Count && t.DType == o.DType) return entry;
        }
        return null;
    }

    /// <summary>
    /// The bf16 copy of a reused operand, with the column sums of its row chunks on the way (a layer's bias
    /// gradient, which <see cref="SumRows"/> then finishes without reading the operand again).
    /// </summary>
    private void ConvertReused(ReuseEntry entry)
    {
        Tensor t = entry.Operand!;
        Tensor copy = entry.Copy.Get(new Shape(t.Count));
        entry.Ready = true;
        entry.Chunks = 0;
        int rows = t.Rows, cols = t.Columns;
        if (!entry.SumRows || cols % 4 != 0 || P(t) % 16 != 0)
        {
            ConvertToBf16(t, P(copy));
            return;
        }
        // Four columns per thread (16-byte loads), each thread down a chunk of rows.
        int quads = cols / 4, perChunk = RowsPerChunk(rows, quads);
        entry.Chunks = Math.Max(1, (rows + perChunk - 1) / perChunk);
        Tensor partial = entry.Partials.Get(new Shape(entry.Chunks * cols));
        using (Time(nameof(ToBf16)))
            _device.Launch("to_bf16_column_partials", (uint)((quads + Threads - 1) / Threads), (uint)entry.Chunks, Threads, 0, P(t), P(copy), P(partial), rows, cols, perChunk);
    }

    public IDisposable ReuseOperand(Tensor operand, bool sumRows = false)
    {
        if (Precision != GemmPrecision.Bf16) return NoScope.Instance;
        if (_reuseDepth == _reuse.Count) _reuse.Add(new ReuseEntry(this));
        var entry = _reuse[_reuseDepth++];
        entry.Operand = operand;
        entry.Ready = false;
        entry.SumRows = sumRows;
        return new ReuseScope(this, entry);
    }

    private sealed class ReuseScope(CudaBackend backend, ReuseEntry entry) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            // Scopes end innermost first; an outer scope ending early also ends the ones inside it.
            int index = backend._reuse.IndexOf(entry);
            if (index < 0 || index >= backend._reuseDepth) return;
            for (int i = index; i < backend._reuseDepth; i++) { backend._reuse[i].Operand = null; backend._reuse[i].Ready = false; }
            backend._reuseDepth = index;
        }
    }

    private static ulong P(Tensor t)
    {
        if (t.Storage.IsHost) throw new ArgumentException($"the CUDA backend got a tensor in host memory: {t}");
        return (ulong)(long)t.Pointer;
    }

    /// <summary>A grid-stride launch over <paramref name="count"/> elements.</summary>
    private void Elementwise(string kernel, long count, params object[] args)
    {
        if (count == 0) return;
        uint blocks = (uint)Math.Min((count + Threads - 1) / Threads, (long)_device.Multiprocessors * 32);
        _device.Launch(kernel, blocks, 1, Threads, 0, args);
    }

    /// <summary>Launches a column-finishing kernel (block_column_sum in common.cuh): a block of 256 threads per 32 of <paramref name="cols"/>.</summary>
    private void ColumnFinish(string kernel, int cols, params object[] args)
    {
        if (cols == 0) return;
        _device.Launch(kernel, (uint)((cols + 31) / 32), 1, Threads, 0, args);
    }

    /// <summary>Launches one warp per row (8 rows per block of 256 threads).</summary>
    private void WarpPerRow(string kernel, int rows, params object[] args)
    {
        if (rows == 0) return;
        _device.Launch(kernel, (uint)((rows + 7) / 8), 1, Threads, 0, args);
    }

    /// <summary>
    /// Rows per chunk of a column reduction of (rows, cols): enough chunks that the partial-sum grid has about
    /// four blocks per multiprocessor (a 768-column reduction has only three column blocks), 32 to 256 rows each.
    /// </summary>
    private int RowsPerChunk(int rows, int cols)
    {
        int columnBlocks = (cols + (int)Threads - 1) / (int)Threads, wanted = (4 * _device.Multiprocessors + columnBlocks - 1) / columnBlocks;
        return Math.Clamp((rows + wanted - 1) / wanted, 32, 256);
    }

    /// <summary>
    /// A deterministic column reduction of x (rows, cols): the partial kernel writes one row of sums per
    /// chunk of rows, then result = beta result + alpha (sum of the partial rows).
    /// </summary>
    private void ColumnReduce(string partialKernel, Tensor x, Tensor? unused, Tensor result, float alpha, float beta)
    {
        int rows = x.Rows, cols = x.Columns, perChunk = RowsPerChunk(rows, cols), chunks = Math.Max(1, (rows + perChunk - 1) / perChunk);
        Tensor partial = _partials.Get(new Shape(chunks * cols));
        _device.Launch(partialKernel, (uint)((cols + Threads - 1) / Threads), (uint)chunks, Threads, 0, P(x), P(partial), rows, cols, perChunk);
        ColumnFinish("column_finish", cols, P(partial), P(result), chunks, cols, alpha, beta);
    }

    private static void CheckCount(int length, Tensor t, string op)
    {
        if (length != t.Count) throw new ArgumentException($"{op}: {length} host elements for a tensor of shape {t.Shape} ({t.Count} elements)");
    }

    private static void CheckSameCount(Tensor a, Tensor b, string op)
    {
        if (a.Count != b.Count) throw new ArgumentException($"{op}: shapes {a.Shape} and {b.Shape} have different element counts");
    }

    private ProfileScope Time(string op) => new(this, op, null, 0);

    /// <summary>Times a matrix product, also by shape: (m, n, k) times <paramref name="batch"/>.</summary>
    private ProfileScope TimeProduct(string what, int m, int n, int k, int batch = 1) =>
        new(this, nameof(MatMul), Profiler is null ? null : $"{what} {m}x{n}x{k}{(batch > 1 ? $" x{batch}" : "")} {Precision.ToString().ToLowerInvariant()}", 2.0 * m * n * k * batch);

    /// <summary>With a profiler attached, brackets the op with two CUDA events; the times are read at the next Synchronize.</summary>
    private readonly struct ProfileScope : IDisposable
    {
        private readonly CudaBackend _backend;
        private readonly string _op;
        private readonly IntPtr _start;
        private readonly string? _product;
        private readonly double _flops;

        public ProfileScope(CudaBackend backend, string op, string? product, double flops)
        {
            _backend = backend;
            _op = op;
            _product = product;
            _flops = flops;
            _start = backend.Profiler is null ? IntPtr.Zero : backend.RecordEvent();
        }

        public void Dispose()
        {
            if (_start == IntPtr.Zero) return;
            _backend._pendingEvents.Add((_op, _start, _backend.RecordEvent(), _product, _flops));
        }
    }

    public void Dispose()
    {
        ResolveEvents();
        foreach (IntPtr e in _freeEvents) Driver.Functions.EventDestroy(e);
        _partials.Dispose();
        _scores.Dispose();
        _scoreGradients.Dispose();
        _rowDots.Dispose();
        _counter.Dispose();
        _operandA.Dispose();
        _operandB.Dispose();
        _operandC.Dispose();
        _operandV.Dispose();
        _probabilities16.Dispose();
        _coefficients.Dispose();
        _rotaryTable.Dispose();
        _gramA.Dispose();
        _gramM.Dispose();
        _floraSums.Dispose();
        _floraX.Dispose();
        _headLogits.Dispose();
        _headLosses.Dispose();
        _headLogits16.Dispose();
        _keyLengths.Dispose();
        _wideA.Dispose();
        _wideB.Dispose();
        _wideC.Dispose();
        _biasRounded.Dispose();
        _bias16.Dispose();
        foreach (var entry in _reuse) entry.Dispose();
        _lt?.Dispose();
        _ltWorkspace?.Dispose();
        _allocator.Dispose();
        _blas.Dispose();
        _solver?.Dispose();
    }
}
