using System.Runtime.InteropServices;

namespace Flora.Backends.Cpu;

/// <summary>
/// OpenBLAS loaded at run time with <see cref="NativeLibrary"/> (Debian package libopenblas0-pthread).
/// Only the calls Flora uses are bound, as unmanaged function pointers.
/// </summary>
internal static unsafe class OpenBlas
{
    public const string DebianPackage = "libopenblas0-pthread";

    private static readonly string[] Candidates =
    [
        "libopenblas.so.0",
        "libopenblas.so",
        "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
        "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
        "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
        "libopenblas.dylib",
        "libopenblas.dll",
    ];

    // CBLAS enums.
    private const int RowMajor = 101, NoTrans = 111, Trans = 112;

    private static readonly Lazy<Api> Loaded = new(() => Load(Candidates), LazyThreadSafetyMode.ExecutionAndPublication);

    private sealed class Api
    {
        public required IntPtr Handle;
        public required string Path;
        public required delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> Sgemm;
        public required delegate* unmanaged<int> GetNumThreads;
    }

    /// <summary>The library path that was loaded; loads it on first use.</summary>
    public static string LibraryPath => Loaded.Value.Path;

    /// <summary>Threads OpenBLAS uses for one call.</summary>
    public static int Threads => Loaded.Value.GetNumThreads is null ? 1 : Loaded.Value.GetNumThreads();

    /// <summary>Loads the first of <paramref name="candidates"/> that exports cblas_sgemm, or throws naming all of them and the package.</summary>
    internal static void Probe(IReadOnlyList<string> candidates) => Load(candidates);

    private static Api Load(IReadOnlyList<string> candidates)
    {
        foreach (string name in candidates)
        {
            if (!NativeLibrary.TryLoad(name, out IntPtr handle)) continue;
            if (!NativeLibrary.TryGetExport(handle, "cblas_sgemm", out IntPtr sgemm)) continue;
            NativeLibrary.TryGetExport(handle, "openblas_get_num_threads", out IntPtr getThreads);
            return new Api
            {
                Handle = handle,
                Path = name,
                Sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)sgemm,
                GetNumThreads = (delegate* unmanaged<int>)getThreads,
            };
        }
        throw new FloraException(
            $"OpenBLAS not found (tried {string.Join(", ", candidates)}): install it with 'sudo apt-get install {DebianPackage}'");
    }

    /// <summary>Throws the clear "not found" error now rather than inside the first matrix product.</summary>
    public static void EnsureLoaded() => _ = Loaded.Value;

    /// <summary>Row-major C (m x n) = alpha op(A) op(B) + beta C with op(A) (m x k), op(B) (k x n).</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        Loaded.Value.Sgemm(RowMajor, transA ? Trans : NoTrans, transB ? Trans : NoTrans,
            m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
}
