using Flora.Tensors;

namespace Flora.Backends;

/// <summary>Shape checks of <see cref="IBackend.LinearCrossEntropy"/>, shared by the backends.</summary>
internal static class LinearCrossEntropyChecks
{
    public static void Validate(Tensor x, Tensor weight, Tensor targets, Tensor? dx, Tensor? dWeight)
    {
        if (weight.Shape.Rank != 2 || x.Columns != weight.Columns)
            throw new ArgumentException($"LinearCrossEntropy: x {x.Shape} and weight {weight.Shape} (V, C) disagree on C");
        if (targets.DType != DType.Int32 || targets.Count != x.Rows)
            throw new ArgumentException($"LinearCrossEntropy: {targets.Count} targets ({targets.DType}) for {x.Rows} rows of x {x.Shape}");
        if (dx is not null && dx.Count != x.Count)
            throw new ArgumentException($"LinearCrossEntropy: dx {dx.Shape} does not match x {x.Shape}");
        if (dWeight is not null && dWeight.Count != weight.Count)
            throw new ArgumentException($"LinearCrossEntropy: dWeight {dWeight.Shape} does not match weight {weight.Shape}");
    }
}

/// <summary>A scope that does nothing (backends without the optimisation a scope enables).</summary>
internal sealed class NoScope : IDisposable
{
    public static readonly NoScope Instance = new();
    public void Dispose() { }
}
