using Flora.Tensors;

namespace Flora.Backends.Cpu;

internal sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    public void Svd(Tensor a, Tensor? u, Tensor? s, Tensor? vt)
    {
        int r = SvdLayout.Rank(a, u, s, vt);
        int n = a.Rows, m = a.Columns, k = Math.Min(n, m);
        using var _ = Time(nameof(Svd));
        // LAPACK is column-major: the row-major buffer of a is X = a^T (m, n), which LAPACK factors for any
        // shape. Then a = V_x diag(s) U_x^T (see SvdLayout). sgesvd destroys its input, so it gets a copy.
        int lwork = Lapack.GesvdWorkspace(m, n);
        using Tensor x = Allocate(new Shape(n * m), MemoryTag.Scratch);     // X = a^T  (m, n) column-major
        using Tensor sx = Allocate(new Shape(k), MemoryTag.Scratch);        // singular values (k)
        using Tensor ux = Allocate(new Shape(m * k), MemoryTag.Scratch);    // U_x (m, k) column-major
        using Tensor vtx = Allocate(new Shape(k * n), MemoryTag.Scratch);   // V_x^T (k, n) column-major
        using Tensor work = Allocate(new Shape(lwork), MemoryTag.Scratch);
        F(a).CopyTo(F(x));
        Lapack.Gesvd(m, n, (float*)x.Pointer, (float*)sx.Pointer, (float*)ux.Pointer, (float*)vtx.Pointer, (float*)work.Pointer, lwork);
        SvdLayout.Extract(F(ux), F(vtx), p: m, q: n, xIsTranspose: true, r,
            u is null ? Span<float>.Empty : F(u), vt is null ? Span<float>.Empty : F(vt));
        if (s is not null) F(sx)[..r].CopyTo(F(s));
    }
}
