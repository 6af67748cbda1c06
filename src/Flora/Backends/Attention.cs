using Flora.Tensors;

namespace Flora.Backends;

/// <summary>
/// Columns [Offset, Offset + width) of every row of <see cref="Tensor"/>: how attention reads q, k
/// and v out of a fused projection (q at 0, k at C, v at 2C of a (B*T, 3C) tensor) without copies.
/// The row stride is the tensor's column count.
/// </summary>
/// <param name="Tensor">The tensor read as a matrix; the block borrows it and frees nothing.</param>
/// <param name="Offset">The first column of the block.</param>
public readonly record struct ColumnBlock(Tensor Tensor, int Offset)
{
    /// <summary>Elements from one row of the block to the next: the tensor's column count (3C for a fused q, k, v).</summary>
    public int Stride => Tensor.Columns;
}

/// <summary>
/// Sizes of a multi-head attention: batch B, heads H, query length Tq, key length Tk, head dimension
/// hd (so width H hd), whether position i may only attend to j &lt;= i, and the score scale
/// (usually 1/sqrt(hd)). Rows of q are (b, t) pairs in order, b * Tq + t; likewise for k and v with Tk.
/// <see cref="KeyLengths"/>, when given, holds for every batch element b how many keys are real: keys
/// j &gt;= KeyLengths[b] are padding and get no attention (right-padded sources of different lengths).
/// <see cref="KeyValueHeads"/>, when given (grouped-query attention, Ainslie et al. 2023), is the number of key
/// and value heads: query head h reads key/value head h / (H / KeyValueHeads), so k and v are
/// (KeyValueHeads hd) wide; 0 means H (every query head has its own).
/// </summary>
/// <param name="Batch">B, the batch elements.</param>
/// <param name="Heads">H, the query heads.</param>
/// <param name="QueryLength">Tq, the query positions per batch element.</param>
/// <param name="KeyLength">Tk, the key and value positions per batch element (Tq for self-attention).</param>
/// <param name="HeadDim">hd, the width of one head.</param>
/// <param name="Causal">Whether query i attends only to keys j &lt;= i (needs Tq = Tk).</param>
/// <param name="Scale">The factor on q k^T before the softmax, usually 1/sqrt(hd).</param>
/// <param name="KeyLengths">Real (unpadded) keys per batch element, B values in [1, Tk]; null when every key is real.</param>
/// <param name="KeyValueHeads">Hkv, the key/value heads of grouped-query attention, dividing H; 0 for H.</param>
public readonly record struct AttentionShape(int Batch, int Heads, int QueryLength, int KeyLength, int HeadDim, bool Causal, float Scale,
    int[]? KeyLengths = null, int KeyValueHeads = 0)
{
    /// <summary>Width of q and of the output: H hd.</summary>
    public int Width => Heads * HeadDim;

    /// <summary>Key/value heads Hkv (H unless grouped).</summary>
    public int KvHeads => KeyValueHeads == 0 ? Heads : KeyValueHeads;

    /// <summary>Query heads per key/value head, H / Hkv.</summary>
    public int Group => Heads / KvHeads;

    /// <summary>Width of k and v: Hkv hd.</summary>
    public int KvWidth => KvHeads * HeadDim;

    /// <summary>Keys of batch element b that are not padding.</summary>
    public int ValidKeys(int b) => KeyLengths?[b] ?? KeyLength;

    /// <summary>
    /// Checks the forward operands against these sizes: q (B Tq rows, H hd wide), k and v (B Tk rows, Hkv hd wide),
    /// output (B Tq, H hd), logSumExp B H Tq values; and the sizes themselves (causal with Tq = Tk, key lengths in
    /// [1, Tk], H divisible by Hkv).
    /// </summary>
    /// <exception cref="ArgumentException">Anything does not match; the message names the operand and the sizes.</exception>
    public void Validate(ColumnBlock q, ColumnBlock k, ColumnBlock v, Tensor output, Tensor logSumExp)
    {
        if (Causal && QueryLength != KeyLength) throw new ArgumentException($"causal attention needs equal query and key lengths, got {QueryLength} and {KeyLength}");
        int keyLength = KeyLength;
        if (KeyLengths is int[] lengths && (lengths.Length != Batch || lengths.Any(l => l < 1 || l > keyLength)))
            throw new ArgumentException($"attention key lengths [{string.Join(", ", lengths.Take(8))}{(lengths.Length > 8 ? ", ..." : "")}] should be {Batch} values in [1, {KeyLength}]");
        if (KeyValueHeads < 0 || KvHeads > Heads || Heads % KvHeads != 0)
            throw new ArgumentException($"attention: {Heads} query heads do not split into groups over {KeyValueHeads} key/value heads");
        Check(q, QueryLength, "q"); CheckKv(k, "k"); CheckKv(v, "v");
        if (output.Rows != Batch * QueryLength || output.Columns != Width)
            throw new ArgumentException($"attention output {output.Shape} should be ({Batch * QueryLength}, {Width})");
        if (logSumExp.Count != Batch * Heads * QueryLength)
            throw new ArgumentException($"attention log-sum-exp {logSumExp.Shape} should hold {Batch * Heads * QueryLength} values (B, H, Tq)");
    }

    /// <summary>Checks that a query-side block (q, dq) holds B rows of <paramref name="length"/> of width H hd.</summary>
    public void Check(ColumnBlock block, int length, string what) => Check(block, length, Width, what);

    /// <summary>Checks that a key/value-side block (k, v, dk, dv) holds B Tk rows of width Hkv hd.</summary>
    public void CheckKv(ColumnBlock block, string what) => Check(block, KeyLength, KvWidth, what);

    private void Check(ColumnBlock block, int length, int width, string what)
    {
        if (block.Tensor.Rows != Batch * length || block.Offset < 0 || block.Offset + width > block.Stride)
            throw new ArgumentException($"attention {what}: columns [{block.Offset}, {block.Offset + width}) of {block.Tensor.Shape} do not hold {Batch * length} rows of width {width}");
    }
}
