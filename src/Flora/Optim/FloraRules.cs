using Flora.Tensors;

namespace Flora.Optim;

/// <summary>
/// Which parameters FLORA compresses, and along which axis (paper.md, following the official code):
/// 2-D weights with min(n, m) &gt;= r and max(n, m) &lt;= 4 min(n, m); the smaller dimension is
/// compressed, so the state is r x max(n, m). Everything else (vectors, embeddings, small or very
/// oblong matrices) keeps an uncompressed state. <c>force</c> compresses every matrix and makes a rank
/// above the compressed dimension an error instead of a fallback.
/// </summary>
public static class FloraRules
{
    /// <summary>4: a matrix is compressed only when max(n, m) &lt;= 4 min(n, m), which leaves token embeddings out.</summary>
    public const int MaxAspectRatio = 4;

    /// <summary>
    /// Whether FLORA compresses a parameter of <paramref name="shape"/> at <paramref name="rank"/> r: a matrix with
    /// min(n, m) &gt;= r and max(n, m) &lt;= 4 min(n, m), or, with <paramref name="force"/>, any matrix.
    /// </summary>
    public static bool IsEligible(Shape shape, int rank, bool force = false)
    {
        if (shape.Rank != 2) return false;
        int small = Math.Min(shape[0], shape[1]), large = Math.Max(shape[0], shape[1]);
        if (force) return true;
        return small >= rank && large <= MaxAspectRatio * small;
    }

    /// <summary>Throws when compression is forced on a matrix whose compressed dimension is below the rank.</summary>
    public static void CheckForced(string name, Shape shape, int rank)
    {
        if (shape.Rank != 2) return;
        int small = Math.Min(shape[0], shape[1]);
        if (rank > small)
            throw new ArgumentException($"rank {rank} is larger than the compressed dimension {small} of '{name}' {shape} (compression is forced)");
    }
}
