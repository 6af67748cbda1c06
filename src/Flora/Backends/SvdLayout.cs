using Flora.Tensors;

namespace Flora.Backends;

/// <summary>
/// What the CPU and CUDA implementations of <see cref="IBackend.Svd"/> share: argument checks, and the step
/// from LAPACK's column-major factors to the row-major outputs with the sign convention.
/// <para>
/// LAPACK (sgesvd) and cuSOLVER (gesvd) factor a column-major X (p, q) = U_x diag(s) V_x^T, k = min(p, q),
/// writing U_x (p, k) with leading dimension p and V_x^T (k, q) with leading dimension k. Read as row-major
/// buffers, <c>ux</c> is (k, p) with row j = column j of U_x, and <c>vtx</c> is (q, k) with column j = column j of V_x.
/// The row-major buffer of a (n, m) is the column-major X = a^T (p = m, q = n); then a = V_x diag(s) U_x^T, so
/// a's left vectors are V_x and its right vectors U_x. When X = a itself (a transposed copy, for cuSOLVER,
/// which needs p &gt;= q), a's left vectors are U_x and its right vectors V_x.
/// </para>
/// </summary>
internal static class SvdLayout
{
    /// <summary>Checks the shapes of <see cref="IBackend.Svd"/>'s arguments and returns r.</summary>
    public static int Rank(Tensor a, Tensor? u, Tensor? s, Tensor? vt)
    {
        if (a.Shape.Rank != 2) throw new ArgumentException($"Svd: the input must be a matrix, got shape {a.Shape}");
        if (a.DType != DType.Float32) throw new ArgumentException($"Svd: expected a Float32 matrix, got {a}");
        int n = a.Rows, m = a.Columns, k = Math.Min(n, m);
        int? r = null;
        void Agree(int value, string what)
        {
            if (r is int known && known != value) throw new ArgumentException($"Svd: {what} asks for {value} singular triplets, another output for {known}");
            r = value;
        }
        if (u is not null)
        {
            if (u.Shape.Rank != 2 || u.Rows != n) throw new ArgumentException($"Svd: u {u.Shape} must be ({n}, r) for a of shape {a.Shape}");
            Agree(u.Columns, $"u {u.Shape}");
        }
        if (s is not null) Agree(s.Count, $"s {s.Shape}");
        if (vt is not null)
        {
            if (vt.Shape.Rank != 2 || vt.Columns != m) throw new ArgumentException($"Svd: vt {vt.Shape} must be (r, {m}) for a of shape {a.Shape}");
            Agree(vt.Rows, $"vt {vt.Shape}");
        }
        if (r is not int rank) throw new ArgumentException("Svd: give at least one of u, s and vt");
        if (rank < 1 || rank > k) throw new ArgumentException($"Svd: {rank} singular triplets asked of a {a.Shape} matrix, which has {k}");
        foreach (var t in new[] { u, s, vt })
            if (t is not null && t.DType != DType.Float32) throw new ArgumentException($"Svd: expected Float32 outputs, got {t}");
        return rank;
    }

    /// <summary>
    /// Writes the leading <paramref name="r"/> singular vectors of a (n, m) from the factors of X (p, q) (see the
    /// class comment): <paramref name="u"/> (n, r) and <paramref name="vt"/> (r, m), row-major, either may be
    /// empty. <paramref name="ux"/> needs its first r rows (r p values), <paramref name="vtx"/> all q k values.
    /// Column j of U and row j of V^T are negated together when the entry of largest magnitude of column j of U
    /// is negative (a = U diag(s) V^T is unchanged).
    /// </summary>
    public static void Extract(ReadOnlySpan<float> ux, ReadOnlySpan<float> vtx, int p, int q, bool xIsTranspose, int r, Span<float> u, Span<float> vt)
    {
        int k = Math.Min(p, q);
        int n = xIsTranspose ? q : p, m = xIsTranspose ? p : q;
        for (int j = 0; j < r; j++)
        {
            // Left vector j of a: element i at left[leftOffset + i leftStride]; right vector j: right[rightOffset + c rightStride].
            ReadOnlySpan<float> left = xIsTranspose ? vtx : ux, right = xIsTranspose ? ux : vtx;
            int leftOffset = xIsTranspose ? j : j * p, leftStride = xIsTranspose ? k : 1;
            int rightOffset = xIsTranspose ? j * p : j, rightStride = xIsTranspose ? 1 : k;
            float largest = 0f;
            for (int i = 0; i < n; i++)
            {
                float value = left[leftOffset + i * leftStride];
                if (MathF.Abs(value) > MathF.Abs(largest)) largest = value;
            }
            float sign = largest < 0 ? -1f : 1f;
            if (!u.IsEmpty)
                for (int i = 0; i < n; i++) u[i * r + j] = sign * left[leftOffset + i * leftStride];
            if (!vt.IsEmpty)
                for (int c = 0; c < m; c++) vt[j * m + c] = sign * right[rightOffset + c * rightStride];
        }
    }
}
