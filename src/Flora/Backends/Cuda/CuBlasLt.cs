using System.Runtime.InteropServices;

namespace Flora.Backends.Cuda;

/// <summary>
/// cuBLASLt, bound at run time, for products with a fused epilogue: D = alpha op(A) op(B) + beta C, then
/// + bias on every column of the column-major D (a linear layer's bias, added in the product's own
/// epilogue instead of another pass over the output). Plans (descriptors, layouts and the algorithm the
/// heuristic picks) are cached per shape, so a training step asks the heuristic once per product shape;
/// a shape the library has no algorithm for is remembered and reported, so that the caller falls back.
/// </summary>
internal sealed unsafe class CuBlasLt : IDisposable
{
    private const int DescPointerMode = 2, DescTransA = 3, DescTransB = 4, DescEpilogue = 7, DescBiasPointer = 8, DescAuxPointer = 11, DescAuxLd = 12,
        DescBiasDataType = 26;                                                                                         // cublasLtMatmulDescAttributes_t
    private const int PreferenceMaxWorkspaceBytes = 1, PreferenceMinAlignmentA = 5;                                // cublasLtMatmulPreferenceAttributes_t (A, B, C, D: 5 to 8)
    // cublasLtEpilogue_t. GELU is the tanh approximation; GELU_AUX_BIAS also stores the pre-activation (+ bias) as "aux",
    // of D's type, and DGELU multiplies the product by GELU's derivative at an aux it reads.
    public const int EpilogueDefault = 1, EpilogueBias = 4, EpilogueGeluAuxBias = 164, EpilogueDGelu = 192;

    private static bool HasBias(int epilogue) => epilogue is EpilogueBias or EpilogueGeluAuxBias;
    private static bool HasAux(int epilogue) => epilogue is EpilogueGeluAuxBias or EpilogueDGelu;
    private const int R32F = 0, R16BF = 14;

    [StructLayout(LayoutKind.Sequential)]
    private struct HeuristicResult
    {
        public fixed ulong Algo[8];
        public nuint WorkspaceSize;
        public int State;
        public float WavesCount;
        public fixed int Reserved[4];
    }

    private sealed class Plan
    {
        public IntPtr Desc, A, B, C;
        public HeuristicResult Result;
    }

    private readonly IntPtr _handle;
    private readonly ulong _workspace;
    private readonly nuint _workspaceBytes;
    private readonly Dictionary<(int, int, int, int, int, int, int, int, int, int, int, int, bool, int, int), Plan?> _plans = new();
    private readonly delegate* unmanaged<IntPtr, int> _destroy;
    private readonly delegate* unmanaged<IntPtr*, int, int, int> _descCreate;
    private readonly delegate* unmanaged<IntPtr, int> _descDestroy;
    private readonly delegate* unmanaged<IntPtr, int, void*, nuint, int> _descSet;
    private readonly delegate* unmanaged<IntPtr*, int, ulong, ulong, long, int> _layoutCreate;
    private readonly delegate* unmanaged<IntPtr, int> _layoutDestroy;
    private readonly delegate* unmanaged<IntPtr*, int> _preferenceCreate;
    private readonly delegate* unmanaged<IntPtr, int> _preferenceDestroy;
    private readonly delegate* unmanaged<IntPtr, int, void*, nuint, int> _preferenceSet;
    private readonly delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, HeuristicResult*, int*, int> _heuristic;
    private readonly delegate* unmanaged<IntPtr, IntPtr, void*, void*, IntPtr, void*, IntPtr, void*, void*, IntPtr, void*, IntPtr, void*, void*, nuint, IntPtr, int> _matmul;

    /// <summary>Loads cuBLASLt and keeps <paramref name="workspaceBytes"/> of device memory at <paramref name="workspace"/> for its kernels.</summary>
    public CuBlasLt(ulong workspace, long workspaceBytes)
    {
        var lib = NativeLibraryHandle.TryLoad(NativeLibraryHandle.Candidates("libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so"), out string tried)
            ?? throw new FloraException($"cuBLASLt not found (tried {tried}): install the CUDA toolkit's cuBLAS");
        Path = lib.Path;
        var create = (delegate* unmanaged<IntPtr*, int>)lib.Export("cublasLtCreate");
        _destroy = (delegate* unmanaged<IntPtr, int>)lib.Export("cublasLtDestroy");
        _descCreate = (delegate* unmanaged<IntPtr*, int, int, int>)lib.Export("cublasLtMatmulDescCreate");
        _descDestroy = (delegate* unmanaged<IntPtr, int>)lib.Export("cublasLtMatmulDescDestroy");
        _descSet = (delegate* unmanaged<IntPtr, int, void*, nuint, int>)lib.Export("cublasLtMatmulDescSetAttribute");
        _layoutCreate = (delegate* unmanaged<IntPtr*, int, ulong, ulong, long, int>)lib.Export("cublasLtMatrixLayoutCreate");
        _layoutDestroy = (delegate* unmanaged<IntPtr, int>)lib.Export("cublasLtMatrixLayoutDestroy");
        _preferenceCreate = (delegate* unmanaged<IntPtr*, int>)lib.Export("cublasLtMatmulPreferenceCreate");
        _preferenceDestroy = (delegate* unmanaged<IntPtr, int>)lib.Export("cublasLtMatmulPreferenceDestroy");
        _preferenceSet = (delegate* unmanaged<IntPtr, int, void*, nuint, int>)lib.Export("cublasLtMatmulPreferenceSetAttribute");
        _heuristic = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, HeuristicResult*, int*, int>)lib.Export("cublasLtMatmulAlgoGetHeuristic");
        _matmul = (delegate* unmanaged<IntPtr, IntPtr, void*, void*, IntPtr, void*, IntPtr, void*, void*, IntPtr, void*, IntPtr, void*, void*, nuint, IntPtr, int>)lib.Export("cublasLtMatmul");
        IntPtr handle;
        Check(create(&handle), "cublasLtCreate()");
        _handle = handle;
        _workspace = workspace;
        _workspaceBytes = (nuint)workspaceBytes;
    }

    public string Path { get; }

    /// <summary>
    /// Column-major D = C (m, n) = alpha op(A) op(B) + beta C with <paramref name="epilogue"/> (bias: + bias[i] on row i
    /// of D, bias of length m, of D's type); A and B of <paramref name="inputType"/>, C and D of <paramref name="outputType"/>
    /// (fp32, or bf16: the fp32 result, the widened bf16 bias included, rounded once). False when cuBLASLt has no algorithm for this shape,
    /// epilogue and alignment: then nothing ran and the caller computes it another way. The GELU epilogues take
    /// <paramref name="aux"/> (m, n) column-major with leading dimension <paramref name="auxLd"/>, of D's type: written by
    /// GELU_AUX_BIAS (D = GELU(aux), aux = the product + bias), read by DGELU (D = the product times GELU'(aux)). With
    /// <paramref name="d"/> D is written there instead of over C (the same layout): D = alpha op(A) op(B) + beta C (+ bias).
    /// </summary>
    public bool TryMatmul(int transA, int transB, int m, int n, int k, float alpha, ulong a, int lda, ulong b, int ldb, float beta, ulong c, int ldc,
        int compute, int inputType, int epilogue = EpilogueDefault, ulong bias = 0, int outputType = R32F, ulong aux = 0, int auxLd = 0, ulong d = 0) =>
        Run(transA, transB, m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc, compute, inputType, epilogue, bias, deviceScalars: false, outputType, aux, auxLd, d);

    /// <summary>As <see cref="TryMatmul"/> with alpha and beta read from device memory (written by a kernel).</summary>
    public bool TryMatmulDeviceScalars(int transA, int transB, int m, int n, int k, ulong alpha, ulong a, int lda, ulong b, int ldb, ulong beta, ulong c, int ldc,
        int compute, int inputType) =>
        Run(transA, transB, m, n, k, (void*)alpha, a, lda, b, ldb, (void*)beta, c, ldc, compute, inputType, EpilogueDefault, 0, deviceScalars: true, R32F, 0, 0, 0);

    private bool Run(int transA, int transB, int m, int n, int k, void* alpha, ulong a, int lda, ulong b, int ldb, void* beta, ulong c, int ldc,
        int compute, int inputType, int epilogue, ulong bias, bool deviceScalars, int outputType, ulong aux, int auxLd, ulong d)
    {
        if (d == 0) d = c;                                                    // D over C unless another D is given (same layout)
        // Algorithms are chosen for the operands' alignment: 256 bytes (whole allocations) or 16 (row views).
        ulong all = a | b | c | d | (HasBias(epilogue) ? bias : 0) | (HasAux(epilogue) ? aux : 0);
        int alignment = all % 256 == 0 ? 256 : all % 16 == 0 ? 16 : 0;
        if (alignment == 0 || (HasAux(epilogue) && auxLd % 8 != 0)) return false;
        var key = (transA, transB, m, n, k, lda, ldb, ldc, compute, inputType, epilogue, alignment, deviceScalars, outputType, auxLd);
        if (!_plans.TryGetValue(key, out Plan? plan))
            _plans[key] = plan = CreatePlan(transA, transB, m, n, k, lda, ldb, ldc, compute, inputType, epilogue, alignment, deviceScalars, outputType, auxLd);
        if (plan is null) return false;
        if (HasBias(epilogue)) Check(_descSet(plan.Desc, DescBiasPointer, &bias, 8), "cublasLtMatmulDescSetAttribute(BIAS_POINTER)");
        if (HasAux(epilogue)) Check(_descSet(plan.Desc, DescAuxPointer, &aux, 8), "cublasLtMatmulDescSetAttribute(EPILOGUE_AUX_POINTER)");
        HeuristicResult result = plan.Result;
        int status = _matmul(_handle, plan.Desc, alpha, (void*)a, plan.A, (void*)b, plan.B, beta, (void*)c, plan.C, (void*)d, plan.C,
            result.Algo, (void*)_workspace, _workspaceBytes, IntPtr.Zero);
        if (status != 0) Check(status, $"cublasLtMatmul(transa={transA}, transb={transB}, m={m}, n={n}, k={k}, lda={lda}, ldb={ldb}, ldc={ldc}, epilogue={epilogue})");
        return true;
    }

    private Plan? CreatePlan(int transA, int transB, int m, int n, int k, int lda, int ldb, int ldc, int compute, int inputType, int epilogue, int alignment, bool deviceScalars,
        int outputType, int auxLd)
    {
        var plan = new Plan();
        IntPtr desc, la, lb, lc, preference;
        Check(_descCreate(&desc, compute, R32F), "cublasLtMatmulDescCreate");
        plan.Desc = desc;
        int pointerMode = deviceScalars ? 1 : 0;
        Check(_descSet(desc, DescPointerMode, &pointerMode, 4), "cublasLtMatmulDescSetAttribute(POINTER_MODE)");
        Check(_descSet(desc, DescTransA, &transA, 4), "cublasLtMatmulDescSetAttribute(TRANSA)");
        Check(_descSet(desc, DescTransB, &transB, 4), "cublasLtMatmulDescSetAttribute(TRANSB)");
        Check(_descSet(desc, DescEpilogue, &epilogue, 4), "cublasLtMatmulDescSetAttribute(EPILOGUE)");
        int biasType = outputType == R16BF ? R16BF : R32F;                   // a bf16 D takes a bf16 bias (no algorithm pairs it with fp32)
        if (HasBias(epilogue)) Check(_descSet(desc, DescBiasDataType, &biasType, 4), "cublasLtMatmulDescSetAttribute(BIAS_DATA_TYPE)");
        long ld = auxLd;
        if (HasAux(epilogue)) Check(_descSet(desc, DescAuxLd, &ld, 8), "cublasLtMatmulDescSetAttribute(EPILOGUE_AUX_LD)");
        // Stored shapes: op(A) is (m, k), so A is (m, k) or (k, m); op(B) is (k, n).
        Check(_layoutCreate(&la, inputType, (ulong)(transA == 0 ? m : k), (ulong)(transA == 0 ? k : m), lda), "cublasLtMatrixLayoutCreate(A)");
        Check(_layoutCreate(&lb, inputType, (ulong)(transB == 0 ? k : n), (ulong)(transB == 0 ? n : k), ldb), "cublasLtMatrixLayoutCreate(B)");
        Check(_layoutCreate(&lc, outputType, (ulong)m, (ulong)n, ldc), "cublasLtMatrixLayoutCreate(C)");
        (plan.A, plan.B, plan.C) = (la, lb, lc);
        Check(_preferenceCreate(&preference), "cublasLtMatmulPreferenceCreate");
        try
        {
            ulong bytes = _workspaceBytes;
            Check(_preferenceSet(preference, PreferenceMaxWorkspaceBytes, &bytes, 8), "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)");
            uint align = (uint)alignment;
            for (int attribute = PreferenceMinAlignmentA; attribute < PreferenceMinAlignmentA + 4; attribute++)
                Check(_preferenceSet(preference, attribute, &align, 4), "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)");
            HeuristicResult result;
            int found = 0;
            int status = _heuristic(_handle, desc, la, lb, lc, lc, preference, 1, &result, &found);
            if (status != 0 || found == 0 || result.State != 0)
            {
                Destroy(plan);
                return null;
            }
            plan.Result = result;
            return plan;
        }
        finally
        {
            _preferenceDestroy(preference);
        }
    }

    private void Destroy(Plan plan)
    {
        _layoutDestroy(plan.A);
        _layoutDestroy(plan.B);
        _layoutDestroy(plan.C);
        _descDestroy(plan.Desc);
    }

    private static void Check(int status, string call)
    {
        if (status != 0) throw new CudaException(status, $"{call} failed: cuBLASLt status {status}");
    }

    public void Dispose()
    {
        foreach (var plan in _plans.Values)
            if (plan is not null) Destroy(plan);
        _plans.Clear();
        _destroy(_handle);
    }
}
