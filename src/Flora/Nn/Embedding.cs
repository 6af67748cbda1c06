using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// Token embedding: ids Int32 (B, T) -> rows of the table W (V, C), output (B, T, C). Backward adds
/// each row's gradient into the row of its id. The weight can also serve as a tied output projection
/// (<see cref="OutputHead"/>), so it may receive two gradients per step (<see cref="Parameter.UsesPerStep"/>).
/// The table is stored in <see cref="WeightStorage.Matrices"/>.
/// </summary>
public sealed class Embedding : Module
{
    private Tensor? _ids;

    /// <summary>
    /// A table W (<paramref name="vocabulary"/>, <paramref name="dimension"/>) named "name.weight", drawn
    /// N(0, <paramref name="initStd"/>^2) from <paramref name="seed"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A size is not positive.</exception>
    public Embedding(IBackend backend, string name, int vocabulary, int dimension, ulong seed, float initStd)
        : base(backend, name)
    {
        if (vocabulary <= 0 || dimension <= 0) throw new ArgumentException($"Embedding '{name}': sizes must be positive, got {vocabulary} x {dimension}");
        Weight = new Parameter(backend, Join(name, "weight"), WeightStorage.AllocateMatrix(backend, new Shape(vocabulary, dimension)));
        backend.FillGaussian(Weight.Value, seed, initStd);
    }

    /// <summary>The table W (V, C), one row per token id.</summary>
    public Parameter Weight { get; }
    /// <summary>V: the number of token ids the table has rows for.</summary>
    public int Vocabulary => Weight.Shape[0];
    /// <summary>C: the width of a row, the model width.</summary>
    public int Dimension => Weight.Shape[1];

    /// <summary>Always false: token ids have no gradient, and setting it changes nothing.</summary>
    public override bool ComputesInputGradient { get => false; set { } }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor ids)
    {
        if (ids.DType != DType.Int32) throw new ArgumentException($"Embedding '{Name}': ids must be Int32, got {ids.DType}");
        _ids = ids;
        Tensor y = Slot("out").Get(new Shape([.. ids.Shape.ToArray(), Dimension]));   // (B, T, C)
        Backend.EmbeddingForward(Weight.Value, ids, y);
        return y;
    }

    /// <inheritdoc/>
    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor ids = Saved(_ids);
        if (!Weight.RequiresGrad) return null;
        var g = gradients.Target(Weight);
        if (!g.Accumulate) Backend.Fill(g.Tensor, 0f);                                  // overwrite = zero, then scatter
        Backend.EmbeddingBackward(gradOutput, ids, g.Tensor, g.Scale);                  // dW[id] += dy
        gradients.OnGradient(Weight, g.Tensor);
        return null;
    }

    /// <inheritdoc/>
    protected override IEnumerable<Parameter> OwnParameters => [Weight];
}

/// <summary>
/// Learned absolute positions: y[b, t, :] = x[b, t, :] + P[t, :], P (context, C). Backward sums the
/// gradient over the batch into the first T rows of P. P stays Float32 (it is added, not multiplied; see <see cref="WeightStorage"/>).
/// </summary>
public sealed class PositionEmbedding : Module
{
    /// <summary>
    /// A table P (<paramref name="context"/>, <paramref name="dimension"/>) named "name.weight", drawn
    /// N(0, <paramref name="initStd"/>^2) from <paramref name="seed"/>.
    /// </summary>
    public PositionEmbedding(IBackend backend, string name, int context, int dimension, ulong seed, float initStd)
        : base(backend, name)
    {
        Weight = new Parameter(backend, Join(name, "weight"), backend.Allocate(new Shape(context, dimension), MemoryTag.Parameters));
        backend.FillGaussian(Weight.Value, seed, initStd);
    }

    /// <summary>The position table P (context, C), Float32.</summary>
    public Parameter Weight { get; }
    /// <summary>The longest sequence the table covers: its number of rows.</summary>
    public int Context => Weight.Shape[0];

    private int _length;

    /// <inheritdoc/>
    public override Tensor Forward(Tensor x)
    {
        if (x.Shape.Rank != 3 || x.Columns != Weight.Shape[1])
            throw new ArgumentException($"PositionEmbedding '{Name}': input {x.Shape} should be (B, T, {Weight.Shape[1]})");
        int b = x.Shape[0], t = x.Shape[1], c = x.Columns;
        if (t > Context) throw new ArgumentException($"PositionEmbedding '{Name}': sequence length {t} exceeds the context of {Context} positions");
        _length = t;
        Tensor y = Slot("out").Get(x.Shape);
        Backend.Copy(x, y);
        Backend.AddBias(y.View(new Shape(b, t * c)), Weight.Value.View(new Shape(t * c)));   // y[b] += P[:T], flattened
        return y;
    }

    /// <inheritdoc/>
    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        int b = gradOutput.Shape[0], t = _length, c = gradOutput.Columns;
        if (Weight.RequiresGrad)
        {
            var g = gradients.Target(Weight);
            bool partial = t < Context;
            if (partial && !g.Accumulate) Backend.Fill(g.Tensor, 0f);                   // rows beyond T get no gradient
            Backend.SumRows(gradOutput.View(new Shape(b, t * c)), g.Tensor.View(new Shape(t * c)), g.Scale,
                partial ? 1f : g.Beta);                                                  // dP[:T] (+)= sum_b dy[b]
            gradients.OnGradient(Weight, g.Tensor);
        }
        return ComputesInputGradient ? gradOutput : null;                               // dx = dy
    }

    /// <inheritdoc/>
    protected override IEnumerable<Parameter> OwnParameters => [Weight];
}
