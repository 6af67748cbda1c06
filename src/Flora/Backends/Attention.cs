using Flora.Tensors;

namespace Flora.Backends;

/// <summary>
/// Columns [Offset, Offset + width) of every row of <see cref="Tensor"/>: how attention reads q, k
/// and v out of a fused projection (q at 0, k at C, v at 2C of a (B*T, 3C) tensor) without copies.
/// The row stride is the tensor's column count.
/// </summary>
public readonly record struct ColumnBlock(Tensor Tensor, int Offset)
{
    public int Stride => Tensor.Columns;
}

/// <summary>
/// Sizes of a multi-head attention: batch B, heads H, query length Tq, key length Tk, head dimension
/// hd (so width H hd), whether position i may only attend to j &lt;= i, and the score scale
/// (usually 1/sqrt(hd)). Rows of q are (b, t) pairs in order, b * Tq + t; likewise for k and v with Tk.
/// <see cref="KeyLengths"/>, when given, holds for every batch element b how many keys are real: keys
/// j &gt;= KeyLengths[b] are padding and get no attention (right-padded sources of different lengths).
/// </summary>
public readonly record struct AttentionShape(int Batch, int Heads, int QueryLength, int KeyLength, int HeadDim, bool Causal, float Scale, int[]? KeyLengths = null)
{
    public int Width => Heads * HeadDim;

    /// <summary>Keys of batch element b that are not padding.</summary>
    public int ValidKeys(int b) => KeyLengths?[b] ?? KeyLength;

    public void Validate(ColumnBlock q, ColumnBlock k, ColumnBlock v, Tensor output, Tensor logSumExp)
    {
        if (Causal && QueryLength != KeyLength) throw new ArgumentException($"causal attention needs equal query and key lengths, got {QueryLength} and {KeyLength}");
        int keyLength = KeyLength;
        if (KeyLengths is int[] lengths && (lengths.Length != Batch || lengths.Any(l => l < 1 || l > keyLength)))
            throw new ArgumentException($"attention key lengths [{string.Join(", ", lengths.Take(8))}{(lengths.Length > 8 ? ", ..." : "")}] should be {Batch} values in [1, {KeyLength}]");
        Check(q, QueryLength, "q"); Check(k, KeyLength, "k"); Check(v, KeyLength, "v");
        if (output.Rows != Batch * QueryLength || output.Columns != Width)
            throw new ArgumentException($"attention output {output.Shape} should be ({Batch * QueryLength}, {Width})");
        if (logSumExp.Count != Batch * Heads * QueryLength)
            throw new ArgumentException($"attention log-sum-exp {logSumExp.Shape} should hold {Batch * Heads * QueryLength} values (B, H, Tq)");
    }

    public void Check(ColumnBlock block, int length, string what)
    {
        if (block.Tensor.Rows != Batch * length || block.Offset < 0 || block.Offset + Width > block.Stride)
            throw new ArgumentException($"attention {what}: columns [{block.Offset}, {block.Offset + Width}) of {block.Tensor.Shape} do not hold {Batch * length} rows of width {Width}");
    }
}
