using Flora.Backends;
using Flora.Tensors;

namespace Flora.Optim;

/// <summary>Which dimension of an (n, m) matrix a projection compresses.</summary>
public enum CompressedAxis
{
    /// <summary>C = G A^T, (n, r); A is (r, m). The paper's orientation (Eq. 20, Algorithms 1 and 2).</summary>
    Columns,
    /// <summary>C = A G, (r, m); A is (r, n).</summary>
    Rows,
}

/// <summary>
/// FLORA's random projection A (r, d) with entries N(0, 1/r), so that E[A^T A] = I (Theorem 2.4).
/// A is a pure function of (seed, r, d) through the Philox Gaussian fill: it is regenerated into a
/// scratch buffer whenever it is needed and never kept. Two scratch slots let a transfer hold the
/// old and the new projection at once.
/// </summary>
public sealed class RandomProjection : IDisposable
{
    private readonly IBackend _backend;
    private readonly TensorSlot[] _matrices;

    /// <summary>
    /// Projections of rank <paramref name="rank"/> r, regenerated on <paramref name="backend"/> into two scratch slots in
    /// the type its products read.
    /// </summary>
    /// <exception cref="ArgumentException">The rank is not positive.</exception>
    public RandomProjection(IBackend backend, int rank)
    {
        if (rank <= 0) throw new ArgumentException($"rank must be positive, got {rank}", nameof(rank));
        _backend = backend;
        Rank = rank;
        // In the type products read (bf16 on tensor cores): A only ever feeds products.
        _matrices = [new TensorSlot(backend, MemoryTag.Scratch, backend.ProductOperandType), new TensorSlot(backend, MemoryTag.Scratch, backend.ProductOperandType)];
    }

    /// <summary>r: the rows of every projection, the size a compressed dimension shrinks to.</summary>
    public int Rank { get; }

    /// <summary>The rule of the official code: compress the smaller dimension (columns when square).</summary>
    public static CompressedAxis AxisFor(Shape weight) => weight[1] <= weight[0] ? CompressedAxis.Columns : CompressedAxis.Rows;

    /// <summary>Shape of the compressed state of an (n, m) weight: (n, r) or (r, m).</summary>
    public Shape CompressedShape(Shape weight, CompressedAxis axis) =>
        axis == CompressedAxis.Columns ? new Shape(weight[0], Rank) : new Shape(Rank, weight[1]);

    /// <summary>Checks that <paramref name="weight"/> can be compressed along <paramref name="axis"/> at this rank.</summary>
    public void CheckRank(Shape weight, CompressedAxis axis, string name)
    {
        if (weight.Rank != 2) throw new ArgumentException($"'{name}' {weight} is not a matrix and cannot be projected");
        int d = Dimension(weight, axis);
        if (Rank > d) throw new ArgumentException($"rank {Rank} is larger than the compressed dimension {d} of '{name}' {weight}");
    }

    /// <summary>Regenerates A (r, d) for <paramref name="seed"/> into scratch slot <paramref name="slot"/> (0 or 1) and returns it.</summary>
    public Tensor Generate(ulong seed, int dimension, int slot = 0)
    {
        Tensor a = _matrices[slot].Get(new Shape(Rank, dimension));
        _backend.FillGaussian(a, seed, 1f / MathF.Sqrt(Rank));
        return a;
    }

    /// <summary>The projection for <paramref name="weight"/> compressed along <paramref name="axis"/>.</summary>
    public Tensor Generate(ulong seed, Shape weight, CompressedAxis axis, int slot = 0) => Generate(seed, Dimension(weight, axis), slot);

    /// <summary>c = alpha compress(g) + beta c, where compress(g) is G A^T (columns) or A G (rows).</summary>
    public void Compress(Tensor g, Tensor a, Tensor c, CompressedAxis axis, float alpha = 1f, float beta = 0f) =>
        ComposedSteps.Compress(_backend, g, a, c, axis == CompressedAxis.Columns, alpha, beta);

    /// <summary>g = alpha decompress(c) + beta g, where decompress(c) is C A (columns) or A^T C (rows).</summary>
    public void Decompress(Tensor c, Tensor a, Tensor g, CompressedAxis axis, float alpha = 1f, float beta = 0f) =>
        ComposedSteps.Decompress(_backend, c, a, g, axis == CompressedAxis.Columns, alpha, beta);

    private static int Dimension(Shape weight, CompressedAxis axis) => axis == CompressedAxis.Columns ? weight[1] : weight[0];

    /// <summary>Frees the two scratch slots.</summary>
    public void Dispose()
    {
        foreach (var m in _matrices) m.Dispose();
    }
}
