using Flora.Tensors;

namespace Flora.Backends;

/// <summary>
/// The kernel surface: every operation that touches tensor elements. Models, optimizers and the
/// gradient pipeline call only this interface, so the CPU and CUDA backends are interchangeable.
/// Matrices are row-major; a tensor of more than two dimensions is read as a matrix of
/// (<see cref="Tensor.Rows"/>, <see cref="Tensor.Columns"/>). Every method validates shapes and throws
/// <see cref="ArgumentException"/> naming the mismatch before any kernel runs.
/// </summary>
public interface IBackend : IDisposable
{
    /// <summary>Short device name, e.g. "cpu".</summary>
    string Name { get; }

    /// <summary>
    /// The element type in which matrix products read their operands: Float32, or BFloat16 when products run on
    /// bf16 tensor cores. Matrices that exist only to be multiplied (FLORA's projections) are generated in this
    /// type, which saves a conversion; <see cref="MatMul"/> accepts operands of it as well as Float32.
    /// </summary>
    DType ProductOperandType { get; }

    /// <summary>
    /// The element type in which layers keep the activations they save for backward that only products (matrix
    /// products, attention) read: BFloat16 in bf16 precision mode, where every product rounds its operands to bf16
    /// anyway, so that keeping them rounded (to nearest even) changes no product's inputs and halves their memory;
    /// Float32 otherwise. The CUDA backend's bf16 mode, and the CPU backend made with <see cref="GemmPrecision.Bf16"/>
    /// (its products still compute in fp32, from the same stored bits).
    /// </summary>
    DType ActivationType { get; }

    /// <summary>The ledger every allocation of this backend reports to.</summary>
    MemoryLedger Ledger { get; }

    /// <summary>When set, every op adds its wall time to it (for benchmarks; a GPU backend then waits for each op).</summary>
    OpProfiler? Profiler { get; set; }

    /// <summary>Waits until every op issued so far has finished (a no-op on the CPU).</summary>
    void Synchronize();

    // ---- memory ------------------------------------------------------------------------------

    /// <summary>A new zero-filled tensor, tagged in the ledger.</summary>
    Tensor Allocate(Shape shape, MemoryTag tag, DType dtype = DType.Float32);

    /// <summary>destination = source, from host memory into a Float32 tensor of the same element count.</summary>
    /// <exception cref="ArgumentException">The element counts differ.</exception>
    void Upload(ReadOnlySpan<float> source, Tensor destination);

    /// <summary>destination = source, from host memory into an Int32 tensor (token ids, labels) of the same element count.</summary>
    /// <exception cref="ArgumentException">The element counts differ.</exception>
    void Upload(ReadOnlySpan<int> source, Tensor destination);

    /// <summary>destination = source, from a Float32 tensor into host memory of the same element count; returns when the copy is done.</summary>
    /// <exception cref="ArgumentException">The element counts differ.</exception>
    void Download(Tensor source, Span<float> destination);

    /// <summary>destination = source, from an Int32 tensor into host memory of the same element count; returns when the copy is done.</summary>
    /// <exception cref="ArgumentException">The element counts differ.</exception>
    void Download(Tensor source, Span<int> destination);

    /// <summary>
    /// destination = source (same element count; shapes may differ). Between Float32 and BFloat16 the elements are
    /// converted: widening is exact, narrowing rounds to nearest even (<see cref="BFloat16.RoundToNearestEven"/>).
    /// </summary>
    void Copy(Tensor source, Tensor destination);

    /// <summary>Every element of <paramref name="tensor"/> = <paramref name="value"/> (rounded to nearest even in a BFloat16 tensor).</summary>
    void Fill(Tensor tensor, float value);

    /// <summary>
    /// destination (BFloat16) = source (Float32) rounded stochastically: each element goes to the bf16 neighbour
    /// farther from zero with probability equal to its fraction of the gap between the two neighbours, so the rounding
    /// is unbiased and updates smaller than half a bf16 step survive on average (bf16 weights). The 16 random bits of
    /// element i are those of <see cref="StochasticRounding"/> for (<paramref name="seed"/>, i): a pure function of
    /// the seed and the index, bit-identical on every backend. Same element count; shapes may differ.
    /// </summary>
    void StochasticRound(Tensor source, Tensor destination, ulong seed);

    // ---- matrix products -----------------------------------------------------------------------

    /// <summary>
    /// C = alpha op(A) op(B) + beta C, where op(X) is X or its transpose. A, B and C are read as matrices.
    /// With beta = 1 the product accumulates into C (how parameter gradients accumulate). A and B may be BFloat16
    /// (weights stored in bf16) on every backend; C is Float32, or BFloat16 with beta = 0 (an output kept in bf16,
    /// <see cref="ActivationType"/>): the fp32 result rounded to nearest even, in the product's epilogue on the GPU.
    /// </summary>
    void MatMul(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor c, float alpha = 1f, float beta = 0f);

    /// <summary>
    /// C = op(A) op(B) + bias on every row: a biased linear layer's forward (the GPU adds the bias in the product's epilogue).
    /// C may be BFloat16, as in <see cref="MatMul"/>: then the bias is read rounded to bf16 (the only bias type the GPU's
    /// bf16 epilogue takes; autocast rounds it so too), added to the fp32 product, and the sum rounded once.
    /// </summary>
    void MatMulBias(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor c, Tensor bias);

    /// <summary>
    /// A residual branch's output projection and the residual add in one: output = residual + (op(A) op(B) + bias), all
    /// Float32, bias optional (the GPU adds the residual and the bias in the product's epilogue, which may round the
    /// two sums in the other order: a last-bit difference).
    /// </summary>
    void MatMulBiasAdd(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor? bias, Tensor residual, Tensor output);

    /// <summary>
    /// A linear layer and GELU (tanh approximation) in one, both outputs BFloat16 and C-shaped: preActivation =
    /// op(A) op(B) + bias as <see cref="MatMulBias"/> writes a bf16 C, and activation = GELU of it (a GPT-2 MLP's up
    /// projection; the GPU applies the bias and GELU in the product's epilogue). GELU may be taken of the fp32 sum before
    /// it is rounded (the GPU) or of the rounded preActivation (the CPU): the two differ by about one bf16 step at most.
    /// </summary>
    void MatMulBiasGelu(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor preActivation, Tensor activation, Tensor bias);

    /// <summary>
    /// GELU's backward in the product that makes its output gradient: dx (BFloat16) = (op(A) op(B)) times GELU'(preActivation)
    /// (BFloat16), the product in fp32 and rounded once: what <see cref="MatMul"/> into Float32 and then
    /// <see cref="GeluBackward"/> give (the GPU multiplies in the product's epilogue).
    /// </summary>
    void MatMulGeluBackward(Tensor a, bool transposeA, Tensor b, bool transposeB, Tensor preActivation, Tensor dx);

    // ---- element-wise ---------------------------------------------------------------------------

    /// <summary>result = a + b.</summary>
    void Add(Tensor a, Tensor b, Tensor result);

    /// <summary>y = y + alpha x.</summary>
    void Axpy(float alpha, Tensor x, Tensor y);

    /// <summary>x = alpha x.</summary>
    void Scale(Tensor x, float alpha);

    /// <summary>y = alpha x + beta y.</summary>
    void Axpby(float alpha, Tensor x, float beta, Tensor y);

    /// <summary>y[n, :] += bias for every row n of y (N, C); bias (C).</summary>
    void AddBias(Tensor y, Tensor bias);

    /// <summary>result = beta result + alpha (sum over rows of x); x (N, C) Float32 or BFloat16 (widened exactly), result (C).</summary>
    void SumRows(Tensor x, Tensor result, float alpha, float beta);

    /// <summary>y = max(x, 0).</summary>
    void Relu(Tensor x, Tensor y);

    /// <summary>dx = dy where y &gt; 0, else 0 (y is the forward output).</summary>
    void ReluBackward(Tensor y, Tensor dy, Tensor dx);

    /// <summary>
    /// y = GELU(x), tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); y may be x (in place). x and y
    /// are both Float32, or both BFloat16 (a pre-activation kept in bf16: widened exactly, the result rounded to nearest even).
    /// </summary>
    void Gelu(Tensor x, Tensor y);

    /// <summary>
    /// dx = dy GELU'(x) (x is the forward input, Float32 or BFloat16; dy Float32); dx may be x (in place). dx is Float32,
    /// or BFloat16 with a BFloat16 x (an up projection's output gradient, read only by its products and its bias sum).
    /// </summary>
    void GeluBackward(Tensor x, Tensor dy, Tensor dx);

    // ---- transformer layers ---------------------------------------------------------------------

    /// <summary>output[n, :] = table[ids[n], :]; table (V, C) Float32 or BFloat16 (widened exactly), ids Int32 (N), output (N, C) Float32.</summary>
    void EmbeddingForward(Tensor table, Tensor ids, Tensor output);

    /// <summary>gradTable[ids[n], :] += alpha gradOutput[n, :] (rows of repeated ids add up).</summary>
    void EmbeddingBackward(Tensor gradOutput, Tensor ids, Tensor gradTable, float alpha);

    /// <summary>
    /// y = (x - mean) rstd gamma + beta per row of x (N, C); saves mean (N) and rstd (N) = 1 / sqrt(var + eps),
    /// the variance being the biased one (divide by C). y may be BFloat16 (a norm read only by products): rounded to nearest even.
    /// </summary>
    void LayerNormForward(Tensor x, Tensor gamma, Tensor beta, Tensor y, Tensor mean, Tensor rstd, float eps);

    /// <summary>
    /// dx (overwritten), dGamma = sum_n dy xhat and dBeta = sum_n dy (overwritten). With <paramref name="residual"/> (of x's
    /// shape, not dx itself) dx = residual + the norm's input gradient: a pre-norm block's skip connection in the same pass.
    /// </summary>
    void LayerNormBackward(Tensor dy, Tensor x, Tensor mean, Tensor rstd, Tensor gamma, Tensor dx, Tensor dGamma, Tensor dBeta, Tensor? residual = null);

    /// <summary>
    /// y = x rstd weight per row, rstd = 1 / sqrt(mean(x^2) + eps) saved (N). y is Float32, or BFloat16 (rounded to
    /// nearest even) for a norm whose only reader is a product.
    /// </summary>
    void RmsNormForward(Tensor x, Tensor weight, Tensor y, Tensor rstd, float eps);

    /// <summary>dx (overwritten) and dWeight = sum_n dy x rstd (overwritten); <paramref name="residual"/> as in <see cref="LayerNormBackward"/>.</summary>
    void RmsNormBackward(Tensor dy, Tensor x, Tensor rstd, Tensor weight, Tensor dx, Tensor dWeight, Tensor? residual = null);

    /// <summary>
    /// Multi-head scaled dot-product attention: per batch and head, O = softmax(scale Q K^T [causal]) V.
    /// Saves only the log-sum-exp of every score row (B, H, Tq); backward recomputes the scores. With grouped
    /// key/value heads (<see cref="AttentionShape.KeyValueHeads"/>) query head h reads k and v head h / group.
    /// The output is Float32, or BFloat16 where <see cref="ActivationType"/> is (rounded to nearest even); backward
    /// reads it as it was written.
    /// </summary>
    void AttentionForward(AttentionShape shape, ColumnBlock q, ColumnBlock k, ColumnBlock v, Tensor output, Tensor logSumExp);

    /// <summary>
    /// dq, dk, dv (overwritten) from dOutput, the forward inputs, output and log-sum-exp. With grouped key/value
    /// heads, dk and dv of a key/value head are the sums over the query heads of its group.
    /// </summary>
    void AttentionBackward(AttentionShape shape, Tensor dOutput, ColumnBlock q, ColumnBlock k, ColumnBlock v, Tensor output, Tensor logSumExp,
        ColumnBlock dq, ColumnBlock dk, ColumnBlock dv);

    /// <summary>
    /// Rotary position embedding in place on columns [offset, offset + heads headDim) of x (B*T, ...), rotate-half
    /// convention: for i &lt; headDim/2 the pair (x_i, x_{i + headDim/2}) of position t turns by angle
    /// t f_i with f_i = theta^(-2i/headDim), rescaled by <paramref name="scaling"/> when given (Llama 3's rope
    /// scaling, <see cref="RopeScaling.InverseFrequency"/>); inverse turns back (the backward pass).
    /// Position t = row % sequenceLength. x is Float32, or BFloat16 (q and k kept in bf16: each pair widened, turned in
    /// fp32 and rounded to nearest even).
    /// </summary>
    void Rotary(Tensor x, int offset, int heads, int headDim, int sequenceLength, float theta, bool inverse, RopeScaling? scaling = null);

    /// <summary>y = silu(gate) up, all (N, F); silu(a) = a sigmoid(a). All Float32, or all BFloat16 (fp32 arithmetic, y rounded).</summary>
    void SwiGlu(Tensor gate, Tensor up, Tensor y);

    /// <summary>
    /// dGate = dy up silu'(gate), dUp = dy silu(gate) (both overwritten). All Float32, or gate, up, dGate and dUp BFloat16
    /// with a Float32 dy (fp32 arithmetic, the gradients rounded to nearest even).
    /// </summary>
    void SwiGluBackward(Tensor gate, Tensor up, Tensor dy, Tensor dGate, Tensor dUp);

    /// <summary>
    /// Inverted dropout: y = x / (1 - p) where the Philox uniform of (seed, i) is at least p, else 0.
    /// The mask is regenerated from the seed in backward, never stored.
    /// </summary>
    void Dropout(Tensor x, Tensor y, float p, ulong seed);

    // ---- losses and metrics -------------------------------------------------------------------

    /// <summary>
    /// Row-wise softmax of logits (N, C) into probabilities (N, C), which may be the logits tensor itself
    /// (in place); returns the sum over rows of
    /// -log p[n, target[n]] and the number of rows counted. targets is Int32 (N), each in [0, C) or
    /// negative to ignore the row (padding, or tokens that carry no loss).
    /// </summary>
    (double Sum, int Count) SoftmaxCrossEntropy(Tensor logits, Tensor targets, Tensor probabilities);

    /// <summary>dLogits = scale (probabilities - onehot(targets)) for counted rows, 0 for ignored rows; dLogits may be the probabilities.</summary>
    void SoftmaxCrossEntropyBackward(Tensor probabilities, Tensor targets, Tensor dLogits, float scale);

    /// <summary>Number of rows n with argmax(logits[n, :]) == targets[n] (rows with a negative target are skipped).</summary>
    int CountCorrect(Tensor logits, Tensor targets);

    /// <summary>
    /// The output projection fused with softmax cross-entropy, over chunks of rows so that the (N, V) logits
    /// x W^T of x (N, C) and W (V, C) never exist whole. Returns the sum over counted rows of
    /// -log softmax(x W^T)[n, target[n]] and the count (targets as in <see cref="SoftmaxCrossEntropy"/>).
    /// With gradients, of gradScale times that sum, where dlogits = gradScale (softmax - onehot):
    /// dx = dlogits W (overwritten) when <paramref name="dx"/> is given, and
    /// dWeight = weightBeta dWeight + weightScale dlogits^T x when <paramref name="dWeight"/> is given.
    /// The weight may be BFloat16 (its gradient is Float32).
    /// </summary>
    (double Sum, int Count) LinearCrossEntropy(Tensor x, Tensor weight, Tensor targets, float gradScale,
        Tensor? dx, Tensor? dWeight, float weightScale, float weightBeta);

    /// <summary>
    /// Declares that the matrix products issued until the returned scope ends read <paramref name="operand"/>
    /// unchanged (a layer's output gradient, read by its input and weight gradients): a backend that converts
    /// product operands (bf16 tensor cores) converts it once. With <paramref name="sumRows"/> the caller will also
    /// ask <see cref="SumRows"/> of it (a bias gradient), which the conversion may compute on the way. The caller
    /// must not write the operand inside the scope.
    /// </summary>
    IDisposable ReuseOperand(Tensor operand, bool sumRows = false);

    // ---- optimizer kernels ------------------------------------------------------------------------

    /// <summary>
    /// Adafactor's factored second moment of g (n, m), in place on rows (n) and columns (m):
    /// rows = decay rows + (1 - decay) mean_j(g^2 + eps), columns = decay columns + (1 - decay) mean_i(g^2 + eps).
    /// </summary>
    void AdafactorFactoredMoments(Tensor g, Tensor rows, Tensor columns, float decay, float eps);

    /// <summary>
    /// Adafactor's preconditioned update u = alpha g / sqrt(rows_i / mean(rows) * columns_j) + beta u; u may be g
    /// when beta is 0. With alpha = 1 - b1 and beta = b1 it folds the update into a first moment u. u may also be
    /// of <see cref="ProductOperandType"/> (with beta 0), for an update that only feeds a product. With
    /// <paramref name="rounded"/> (beta 0) the pass also writes u converted to that tensor's type (bf16: rounded to
    /// nearest even, as a product's operand conversion), for a product that reads u beside its other uses.
    /// </summary>
    void AdafactorFactoredPrecondition(Tensor g, Tensor rows, Tensor columns, Tensor u, float alpha = 1f, float beta = 0f, Tensor? rounded = null);

    /// <summary>v = decay v + (1 - decay)(g^2 + eps): the unfactored second moment (Adafactor with eps = eps1, Adam with eps = 0).</summary>
    void SquaredMovingAverage(Tensor g, Tensor v, float decay, float eps);

    /// <summary>u = alpha g / sqrt(v) + beta u; u may be g when beta is 0, or of <see cref="ProductOperandType"/> (beta 0).</summary>
    void DivideBySqrt(Tensor g, Tensor v, Tensor u, float alpha = 1f, float beta = 0f);

    /// <summary>
    /// Adafactor's final step, with its scalars computed where the data is (no round trip to the host on a GPU):
    /// s = lr (scaleParameter ? max(eps2, RMS(p)) : 1), clip = max(1, RMS(u) / clipThreshold),
    /// p = p (1 - weightDecay s) - (s / clip) u. RMS(p) is taken before the update.
    /// </summary>
    void AdafactorUpdate(Tensor p, Tensor u, float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter);

    /// <summary>
    /// <see cref="AdafactorUpdate"/> on a BFloat16 weight: the step computed in fp32 on p's widened values and written
    /// back rounded stochastically with <paramref name="seed"/>, bit for bit what widening p into an fp32 copy,
    /// <see cref="AdafactorUpdate"/> on the copy and <see cref="StochasticRound"/>(copy, p, seed) give, without the copy
    /// (on a GPU: one pass for the sums and one that updates and rounds). u is Float32.
    /// </summary>
    void AdafactorUpdateRounded(Tensor p, Tensor u, float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter, ulong seed);

    /// <summary>
    /// Adafactor's whole step with an unfactored second moment: <see cref="SquaredMovingAverage"/>(g, v, decay, eps1),
    /// <see cref="DivideBySqrt"/>(g, v, u, alpha, beta), then <see cref="AdafactorUpdate"/>(p, u, ...), the same arithmetic
    /// as those three; on a GPU one launch for a small parameter (a bias, a norm's weight). u is Float32 and may be g.
    /// </summary>
    void AdafactorUnfactoredStep(Tensor p, Tensor g, Tensor v, Tensor u, float decay, float eps1, float alpha, float beta,
        float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter);

    /// <summary>
    /// The same step for an update given as the rank-r product decompress(M) (FLORA's momentum): for compressed
    /// columns u = M A (M (n, r), A (r, m)), for rows u = A^T M (A (r, n), M (r, m)). RMS(u) comes from
    /// sum((M^T M) o (A A^T)) (or M M^T), and W = (1 - weightDecay s) W - (s / clip) u is one matrix product.
    /// </summary>
    void AdafactorLowRankUpdate(Tensor p, Tensor m, Tensor a, bool compressedColumns, float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter);

    /// <summary>
    /// FLORA's official variant closing Adafactor's factored step (after <see cref="AdafactorFactoredMoments"/>), within one
    /// projection period (A is the old and the new projection). With u the preconditioned g
    /// (<see cref="AdafactorFactoredPrecondition"/>, alpha 1) and compress / decompress as <see cref="AdafactorLowRankUpdate"/>'s:
    /// y = (1 - beta) u + beta decompress(M); M = beta M + (1 - beta) compress(u); then <see cref="AdafactorUpdate"/>(p, y),
    /// or for a BFloat16 p <see cref="AdafactorUpdateRounded"/>(p, y, ..., seed). g may be overwritten. Scratch: rounded
    /// (n, m) in <see cref="ProductOperandType"/> (null where that is Float32) and compressed (M's shape, Float32).
    /// On a GPU in bf16: four passes over the (n, m) matrices instead of five (22 bytes an element instead of 34 with a bf16
    /// p), u never stored in fp32, beta decompress(M) written in bf16 over the rounded u, and
    /// RMS(y) from r-space: ||y||^2 = (1 - beta)^2 ||u||^2 + 2 beta (1 - beta) &lt;compress(u), M&gt; + beta^2 ||decompress(M)||^2.
    /// </summary>
    void AdafactorFloraOfficialStep(Tensor p, Tensor g, Tensor rows, Tensor columns, Tensor m, Tensor a, bool compressedColumns, Tensor? rounded,
        Tensor compressed, float beta, float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter, ulong seed);

    /// <summary>
    /// The AdamW step: p = p (1 - lr weightDecay) - lr (m / biasCorrection1) / (sqrt(v / biasCorrection2) + eps).
    /// </summary>
    void AdamApply(Tensor p, Tensor m, Tensor v, float lr, float weightDecay, float eps, float biasCorrection1, float biasCorrection2);

    /// <summary>
    /// The whole AdamW step with a full-size first moment, in one pass where the backend can (the GPU): v = beta2 v +
    /// (1 - beta2) g^2, m = beta1 m + (1 - beta1) g, then <see cref="AdamApply"/>; the same arithmetic as those three.
    /// </summary>
    void AdamStep(Tensor p, Tensor g, Tensor m, Tensor v, float beta1, float beta2, float lr, float weightDecay, float eps, float biasCorrection1, float biasCorrection2);

    // ---- reductions -----------------------------------------------------------------------------

    /// <summary>Sum of all elements, accumulated in double.</summary>
    double Sum(Tensor x);

    /// <summary>Sum of squares of all elements, accumulated in double.</summary>
    double SumOfSquares(Tensor x);

    /// <summary>Sum of a[i] b[i] over all elements, accumulated in double.</summary>
    double Dot(Tensor a, Tensor b);

    /// <summary>Sum of absolute values of all elements, accumulated in double.</summary>
    double SumOfMagnitudes(Tensor x);

    /// <summary>Largest absolute value (0 for an empty tensor).</summary>
    float MaxMagnitude(Tensor x);

    // ---- random -----------------------------------------------------------------------------------

    /// <summary>
    /// tensor[i] = std * z(seed, i) where z is the Philox4x32-10 Gaussian of <see cref="Philox"/>:
    /// a pure function of (seed, i), the same on every backend and for any thread count. A BFloat16 tensor gets the
    /// same Float32 values rounded to nearest even.
    /// </summary>
    void FillGaussian(Tensor tensor, ulong seed, float std);

    // ---- linear algebra ---------------------------------------------------------------------------

    /// <summary>
    /// The leading r singular triplets of a (n, m) = U diag(s) V^T (thin SVD, singular values descending),
    /// r &lt;= min(n, m) read from the outputs given: <paramref name="u"/> (n, r) the left singular vectors as
    /// columns, <paramref name="s"/> (r) the singular values, <paramref name="vt"/> (r, m) the right singular
    /// vectors as rows. Any output may be null, not all. Each pair (column j of U, row j of V^T) has its sign
    /// fixed so that the entry of largest magnitude of column j of U is positive (the first such entry on a tie),
    /// so that backends agree. <paramref name="a"/> is not modified; the workspace is tagged
    /// <see cref="MemoryTag.Scratch"/> and freed before returning. GaLore's projection (LAPACK sgesvd on the CPU,
    /// cuSOLVER gesvd on a GPU, which waits for the device).
    /// </summary>
    void Svd(Tensor a, Tensor? u, Tensor? s, Tensor? vt);
}
