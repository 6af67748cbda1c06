using System.Runtime.InteropServices;

namespace Flora.Backends.Cpu;

/// <summary>
/// The LAPACK routines Flora uses, from the OpenBLAS instance that <see cref="OpenBlas"/> selected at load (Debian's
/// OpenBLAS bundles LAPACK). The Fortran symbols are bound (LAPACKE is not exported by Debian's build): every
/// argument is passed by address, matrices are column-major, and each character argument has a hidden length
/// argument at the end (gfortran's convention).
/// </summary>
internal static unsafe class Lapack
{
    // sgesvd_(jobu, jobvt, m, n, a, lda, s, u, ldu, vt, ldvt, work, lwork, info, len(jobu), len(jobvt))
    private static readonly Lazy<IntPtr> Sgesvd = new(() =>
    {
        IntPtr address = OpenBlas.Export("sgesvd_");
        return address != IntPtr.Zero ? address
            : throw new FloraException($"{OpenBlas.LibraryPath} has no LAPACK routine sgesvd_: install an OpenBLAS with LAPACK ('sudo apt-get install {OpenBlas.DebianPackage}')");
    }, LazyThreadSafetyMode.ExecutionAndPublication);

    private static delegate* unmanaged<byte*, byte*, int*, int*, float*, int*, float*, float*, int*, float*, int*, float*, int*, int*, nuint, nuint, void> Function =>
        (delegate* unmanaged<byte*, byte*, int*, int*, float*, int*, float*, float*, int*, float*, int*, float*, int*, int*, nuint, nuint, void>)Sgesvd.Value;

    /// <summary>Elements of workspace <see cref="Gesvd"/> wants for an (m, n) matrix (LAPACK's query, lwork = -1).</summary>
    public static int GesvdWorkspace(int m, int n)
    {
        int k = Math.Min(m, n), lda = Math.Max(1, m), ldu = Math.Max(1, m), ldvt = Math.Max(1, k), query = -1, info = 0;
        byte job = (byte)'S';
        float optimal = 0, dummy = 0;
        Function(&job, &job, &m, &n, &dummy, &lda, &dummy, &dummy, &ldu, &dummy, &ldvt, &optimal, &query, &info, 1, 1);
        if (info != 0) throw new FloraException($"LAPACK sgesvd workspace query for ({m}, {n}) failed: info = {info}");
        return Math.Max(1, (int)optimal);
    }

    /// <summary>
    /// Column-major thin SVD of x (m, n) = U diag(s) V^T, k = min(m, n) (LAPACK sgesvd with jobu = jobvt = 'S'):
    /// s (k), u (m, k) with leading dimension m, vt (k, n) with leading dimension k; work holds
    /// <see cref="GesvdWorkspace"/> elements. x is destroyed. Throws when LAPACK reports a bad argument or no
    /// convergence.
    /// </summary>
    public static void Gesvd(int m, int n, float* x, float* s, float* u, float* vt, float* work, int lwork)
    {
        int k = Math.Min(m, n), lda = Math.Max(1, m), ldu = Math.Max(1, m), ldvt = Math.Max(1, k), info = 0;
        byte job = (byte)'S';
        Function(&job, &job, &m, &n, x, &lda, s, u, &ldu, vt, &ldvt, work, &lwork, &info, 1, 1);
        if (info < 0) throw new FloraException($"LAPACK sgesvd: argument {-info} is invalid (m = {m}, n = {n})");
        if (info > 0) throw new FloraException($"LAPACK sgesvd did not converge on a ({m}, {n}) matrix ({info} superdiagonals left); does it hold NaN or infinite values?");
    }
}
