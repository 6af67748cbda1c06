using Flora.Tensors;

namespace Flora.Backends.Cuda;

internal sealed unsafe partial class CudaBackend
{
    /// <summary>cuSOLVER, loaded by the first SVD (GaLore's projection) and disposed with the backend.</summary>
    private CuSolver? _solver;

    /// <inheritdoc/>
    /// <remarks>
    /// The factorisation runs on the device (cuSOLVER gesvd); the leading r vectors are picked, their signs fixed and
    /// (for a tall matrix) the input transposed on the host, which costs a transfer of O((n + m) min(n, m)) values.
    /// GaLore asks for an SVD once every few hundred steps per matrix, so the round trip is not on the hot path.
    /// </remarks>
    public void Svd(Tensor a, Tensor? u, Tensor? s, Tensor? vt)
    {
        int r = SvdLayout.Rank(a, u, s, vt);
        int n = a.Rows, m = a.Columns;
        _solver ??= new CuSolver();
        using var _ = Time(nameof(Svd));
        // gesvd factors a column-major X (p, q) with p >= q. For n <= m the row-major buffer of a is X = a^T (m, n)
        // as it stands; for a tall a, X = a (n, m), whose column-major buffer is the transpose of a's row-major one.
        bool xIsTranspose = n <= m;
        int p = xIsTranspose ? m : n, q = xIsTranspose ? n : m, k = q;
        int lwork = Math.Max(1, _solver.GesvdBufferSize(p, q));
        using Tensor x = Allocate(new Shape(n * m), MemoryTag.Scratch);          // X (p, q) column-major
        using Tensor sx = Allocate(new Shape(k), MemoryTag.Scratch);             // singular values (k)
        using Tensor ux = Allocate(new Shape(p * k), MemoryTag.Scratch);         // U_x (p, k) column-major
        using Tensor vtx = Allocate(new Shape(k * k), MemoryTag.Scratch);        // V_x^T (k, q) column-major
        using Tensor work = Allocate(new Shape(lwork), MemoryTag.Scratch);
        using Tensor rwork = Allocate(new Shape(Math.Max(1, k - 1)), MemoryTag.Scratch);
        using Tensor info = Allocate(new Shape(1), MemoryTag.Scratch, DType.Int32);
        if (xIsTranspose) Copy(a, x);
        else
        {
            var rowMajor = new float[n * m];
            Download(a, rowMajor);
            var columnMajor = new float[n * m];
            for (int i = 0; i < n; i++)
                for (int c = 0; c < m; c++) columnMajor[c * n + i] = rowMajor[i * m + c];
            Upload(columnMajor, x);
        }
        _solver.Gesvd(p, q, P(x), P(sx), P(ux), P(vtx), P(work), lwork, P(rwork), P(info));
        var status = new int[1];
        Download(info, status);                                                   // waits for the factorisation
        if (status[0] < 0) throw new FloraException($"cuSOLVER gesvd: argument {-status[0]} is invalid (m = {p}, n = {q})");
        if (status[0] > 0) throw new FloraException($"cuSOLVER gesvd did not converge on a {a.Shape} matrix ({status[0]} superdiagonals left); does it hold NaN or infinite values?");
        var uxHost = new float[r * p];                                            // the first r rows of U_x^T
        Download(ux.View(new Shape(r * p)), uxHost);
        var vtxHost = new float[k * k];
        Download(vtx, vtxHost);
        float[] uHost = u is null ? [] : new float[n * r], vtHost = vt is null ? [] : new float[r * m];
        SvdLayout.Extract(uxHost, vtxHost, p, q, xIsTranspose, r, uHost, vtHost);
        if (u is not null) Upload(uHost, u);
        if (vt is not null) Upload(vtHost, vt);
        if (s is not null) Copy(sx.View(new Shape(r)), s);
    }
}
