namespace Flora.Tensors;

/// <summary>Element type of a tensor. Float32 for values; Int32 for class labels and token ids.</summary>
public enum DType
{
    /// <summary>IEEE 754 single precision, 4 bytes: values, gradients, optimizer state.</summary>
    Float32,
    /// <summary>32-bit signed integer, 4 bytes: token ids, class labels, targets (negative to ignore a row).</summary>
    Int32,
    /// <summary>bfloat16: 8 exponent and 7 mantissa bits. Used by the GPU backend for tensor-core operands.</summary>
    BFloat16,
}

/// <summary>Facts about <see cref="DType"/> values.</summary>
public static class DTypeExtensions
{
    /// <summary>Bytes per element.</summary>
    public static int Size(this DType dtype) => dtype switch
    {
        DType.Float32 => 4,
        DType.Int32 => 4,
        DType.BFloat16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };
}
