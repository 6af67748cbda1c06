namespace Flora.Backends.Cuda;

/// <summary>
/// cuBLAS, bound at run time: one handle, matrix products through cublasGemmEx and
/// cublasGemmStridedBatchedEx with fp32 storage and a compute type that chooses the arithmetic:
/// plain fp32, TF32 tensor cores, or bf16 tensor cores (inputs rounded to bf16, fp32 accumulation).
/// </summary>
internal sealed unsafe class CuBlas : IDisposable
{
    public const int OpN = 0, OpT = 1;
    public const int R32F = 0, R16BF = 14;
    public const int Compute32F = 68, Compute32FFast16BF = 75, Compute32FFastTF32 = 77;
    private const int GemmDefault = -1;

    private readonly IntPtr _handle;
    private readonly delegate* unmanaged<IntPtr, int, int, int, int, int, void*, void*, int, int, void*, int, int, void*, void*, int, int, int, int, int> _gemmEx;
    private readonly delegate* unmanaged<IntPtr, int, int, int, int, int, void*, void*, int, int, long, void*, int, int, long, void*, void*, int, int, long, int, int, int, int> _gemmStridedBatchedEx;
    private readonly delegate* unmanaged<IntPtr, int> _destroy;
    private readonly delegate* unmanaged<IntPtr, int, int> _setPointerMode;
    private readonly delegate* unmanaged<int, byte*> _statusString;

    public CuBlas()
    {
        var lib = NativeLibraryHandle.TryLoad(NativeLibraryHandle.Candidates("libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"), out string tried)
            ?? throw new FloraException($"cuBLAS not found (tried {tried}): install the CUDA toolkit's cuBLAS");
        Path = lib.Path;
        var create = (delegate* unmanaged<IntPtr*, int>)lib.Export("cublasCreate_v2");
        _destroy = (delegate* unmanaged<IntPtr, int>)lib.Export("cublasDestroy_v2");
        _gemmEx = (delegate* unmanaged<IntPtr, int, int, int, int, int, void*, void*, int, int, void*, int, int, void*, void*, int, int, int, int, int>)lib.Export("cublasGemmEx");
        _gemmStridedBatchedEx = (delegate* unmanaged<IntPtr, int, int, int, int, int, void*, void*, int, int, long, void*, int, int, long, void*, void*, int, int, long, int, int, int, int>)lib.Export("cublasGemmStridedBatchedEx");
        _statusString = (delegate* unmanaged<int, byte*>)lib.TryExport("cublasGetStatusString");
        _setPointerMode = (delegate* unmanaged<IntPtr, int, int>)lib.Export("cublasSetPointerMode_v2");
        IntPtr handle;
        Check(create(&handle), "cublasCreate_v2()");
        _handle = handle;
    }

    public string Path { get; }

    /// <summary>
    /// Column-major C (m, n) = alpha op(A) op(B) + beta C in device memory; A and B of type <paramref name="inputType"/>
    /// (fp32 or bf16), C of type <paramref name="outputType"/> (fp32, or bf16: the fp32 result rounded).
    /// </summary>
    public void Gemm(int transA, int transB, int m, int n, int k, float alpha, ulong a, int lda, ulong b, int ldb, float beta, ulong c, int ldc, int compute,
        int inputType = R32F, int outputType = R32F)
    {
        int status = _gemmEx(_handle, transA, transB, m, n, k, &alpha, (void*)a, inputType, lda, (void*)b, inputType, ldb, &beta, (void*)c, outputType, ldc, compute, GemmDefault);
        if (status != 0) Check(status, $"cublasGemmEx(transa={transA}, transb={transB}, m={m}, n={n}, k={k}, lda={lda}, ldb={ldb}, ldc={ldc}, compute={compute})");
    }

    /// <summary>As <see cref="Gemm"/> with alpha and beta read from device memory (so that they can come from a kernel).</summary>
    public void GemmDeviceScalars(int transA, int transB, int m, int n, int k, ulong alpha, ulong a, int lda, ulong b, int ldb, ulong beta, ulong c, int ldc, int compute, int inputType)
    {
        Check(_setPointerMode(_handle, 1), "cublasSetPointerMode(DEVICE)");
        try
        {
            int status = _gemmEx(_handle, transA, transB, m, n, k, (void*)alpha, (void*)a, inputType, lda, (void*)b, inputType, ldb, (void*)beta, (void*)c, R32F, ldc, compute, GemmDefault);
            if (status != 0) Check(status, $"cublasGemmEx(device scalars, transa={transA}, transb={transB}, m={m}, n={n}, k={k}, lda={lda}, ldb={ldb}, ldc={ldc})");
        }
        finally
        {
            _setPointerMode(_handle, 0);
        }
    }

    /// <summary>As <see cref="Gemm"/> for <paramref name="batch"/> matrices at fixed element strides.</summary>
    public void GemmStridedBatched(int transA, int transB, int m, int n, int k, float alpha, ulong a, int lda, long strideA,
        ulong b, int ldb, long strideB, float beta, ulong c, int ldc, long strideC, int batch, int compute, int inputType = R32F)
    {
        int status = _gemmStridedBatchedEx(_handle, transA, transB, m, n, k, &alpha, (void*)a, inputType, lda, strideA, (void*)b, inputType, ldb, strideB,
            &beta, (void*)c, R32F, ldc, strideC, batch, compute, GemmDefault);
        if (status != 0)
            Check(status, $"cublasGemmStridedBatchedEx(transa={transA}, transb={transB}, m={m}, n={n}, k={k}, lda={lda}, strideA={strideA}, ldb={ldb}, strideB={strideB}, ldc={ldc}, strideC={strideC}, batch={batch})");
    }

    private void Check(int status, string call)
    {
        if (status == 0) return;
        string text = _statusString == null ? $"cuBLAS status {status}" : new string((sbyte*)_statusString(status));
        throw new CudaException(status, $"{call} failed: {text}");
    }

    public void Dispose() => _destroy(_handle);
}
