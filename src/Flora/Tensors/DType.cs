namespace Flora.Tensors;

/// <summary>Element type of a tensor. Float32 for values; Int32 for class labels and token ids.</summary>
public enum DType
{
    Float32,
    Int32,
}

public static class DTypeExtensions
{
    /// <summary>Bytes per element.</summary>
    public static int Size(this DType dtype) => dtype switch
    {
        DType.Float32 => 4,
        DType.Int32 => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };
}
