namespace Flora.Backends.Cuda;

/// <summary>
/// cuSOLVER's dense routines, bound at run time (libcusolver.so.12 with CUDA 12 and 13): one handle on the
/// default stream, and the single-precision SVD gesvd (GaLore's projection). Loaded on first use, so a machine
/// without cuSOLVER can still train with every other optimizer.
/// </summary>
internal sealed unsafe class CuSolver : IDisposable
{
    private readonly IntPtr _handle;
    private readonly delegate* unmanaged<IntPtr, int> _destroy;
    private readonly delegate* unmanaged<IntPtr, int, int, int*, int> _gesvdBufferSize;
    // (handle, jobu, jobvt, m, n, A, lda, S, U, ldu, VT, ldvt, work, lwork, rwork, devInfo)
    private readonly delegate* unmanaged<IntPtr, sbyte, sbyte, int, int, void*, int, void*, void*, int, void*, int, void*, int, void*, void*, int> _gesvd;

    public CuSolver()
    {
        var lib = NativeLibraryHandle.TryLoad(NativeLibraryHandle.Candidates("libcusolver.so.12", "libcusolver.so.11", "libcusolver.so"), out string tried)
            ?? throw new FloraException($"cuSOLVER not found (tried {tried}): GaLore's SVD on a GPU needs the CUDA toolkit's cuSOLVER (libcusolver.so.12)");
        Path = lib.Path;
        var create = (delegate* unmanaged<IntPtr*, int>)lib.Export("cusolverDnCreate");
        var setStream = (delegate* unmanaged<IntPtr, IntPtr, int>)lib.Export("cusolverDnSetStream");
        _destroy = (delegate* unmanaged<IntPtr, int>)lib.Export("cusolverDnDestroy");
        _gesvdBufferSize = (delegate* unmanaged<IntPtr, int, int, int*, int>)lib.Export("cusolverDnSgesvd_bufferSize");
        _gesvd = (delegate* unmanaged<IntPtr, sbyte, sbyte, int, int, void*, int, void*, void*, int, void*, int, void*, int, void*, void*, int>)lib.Export("cusolverDnSgesvd");
        IntPtr handle;
        Check(create(&handle), "cusolverDnCreate()");
        _handle = handle;
        // The legacy default stream (null), where every other op of the backend runs: the SVD is ordered after them.
        Check(setStream(_handle, IntPtr.Zero), "cusolverDnSetStream(default stream)");
    }

    public string Path { get; }

    /// <summary>Elements of the float workspace gesvd needs for a column-major (m, n) matrix.</summary>
    public int GesvdBufferSize(int m, int n)
    {
        int lwork;
        Check(_gesvdBufferSize(_handle, m, n, &lwork), $"cusolverDnSgesvd_bufferSize(m={m}, n={n})");
        return lwork;
    }

    /// <summary>
    /// Column-major thin SVD of x (m, n) = U diag(s) V^T with m &gt;= n (cuSOLVER's restriction), jobu = jobvt = 'S':
    /// s (n), u (m, n) with leading dimension m, vt (n, n) with leading dimension n. x is destroyed. Asynchronous:
    /// <paramref name="info"/> (one int on the device) is 0 on success, &gt; 0 when it did not converge.
    /// </summary>
    public void Gesvd(int m, int n, ulong x, ulong s, ulong u, ulong vt, ulong work, int lwork, ulong rwork, ulong info)
    {
        if (m < n) throw new ArgumentException($"cuSOLVER gesvd needs rows >= columns, got ({m}, {n})");
        const sbyte job = (sbyte)'S';
        Check(_gesvd(_handle, job, job, m, n, (void*)x, m, (void*)s, (void*)u, m, (void*)vt, n, (void*)work, lwork, (void*)rwork, (void*)info),
            $"cusolverDnSgesvd(m={m}, n={n}, lwork={lwork})");
    }

    private static void Check(int status, string call)
    {
        if (status == 0) return;
        string text = status switch
        {
            1 => "NOT_INITIALIZED (is the CUDA context current?)",
            2 => "ALLOC_FAILED",
            3 => "INVALID_VALUE",
            4 => "ARCH_MISMATCH",
            6 => "EXECUTION_FAILED",
            7 => "INTERNAL_ERROR",
            _ => $"status {status}",
        };
        throw new CudaException(status, $"{call} failed: cuSOLVER {text}");
    }

    public void Dispose() => _destroy(_handle);
}
