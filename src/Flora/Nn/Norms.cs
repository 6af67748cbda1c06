using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// What LayerNorm and RMSNorm share: the output written by <see cref="Normalize"/> (again, into the same buffer, when it
/// is recomputed), and one backward that the plain and the residual-folding entry points both call.
/// </summary>
public abstract class NormLayer : Module, IRecomputable, IResidualNorm
{
    private Tensor? _x, _y;

    /// <summary>A norm named <paramref name="name"/> on <paramref name="backend"/>.</summary>
    protected NormLayer(IBackend backend, string name) : base(backend, name) { }

    /// <summary>Normalizes x into y (N, C), saving the statistics backward reads.</summary>
    protected abstract void Normalize(Tensor x, Tensor y);

    /// <summary>dx = norm'(gradOutput) (+ residual), and the parameter gradients to the sink.</summary>
    protected abstract void Backward(Tensor gradOutput, IGradientSink gradients, Tensor x, Tensor? residual, Tensor dx);

    /// <summary>
    /// The type of the output: Float32, or BFloat16 when the only reader is a product (a block's attention or MLP input
    /// projections, <see cref="IBackend.ActivationType"/>), which rounds its operands to bf16 anyway: written rounded to
    /// nearest even. Backward reads x and the saved statistics, never the output. Set by the block.
    /// </summary>
    /// <exception cref="ArgumentException">Another type.</exception>
    public DType OutputType
    {
        get => _outputType;
        set => _outputType = value is DType.Float32 or DType.BFloat16 ? value
            : throw new ArgumentException($"{GetType().Name} '{Name}': the output is Float32 or BFloat16, not {value}");
    }
    private DType _outputType = DType.Float32;

    /// <summary>The output buffer of <paramref name="shape"/> and <see cref="OutputType"/>: shared by the blocks when recomputed.</summary>
    protected Tensor Output(Shape shape) => OutputSlot(OutputType == DType.BFloat16 ? "out.bf16" : "out", RecomputesOutput, OutputType).Get(shape);

    /// <summary>Forward into <paramref name="y"/>, the buffer the subclass chose; returns it.</summary>
    protected Tensor ForwardInto(Tensor x, Tensor y)
    {
        (_x, _y) = (x, y);
        Normalize(x, y);
        return y;
    }

    /// <inheritdoc/>
    public bool RecomputesOutput { get; set; }

    /// <inheritdoc/>
    public void RecomputeOutput()
    {
        if (RecomputesOutput) Normalize(Saved(_x), Saved(_y));
    }

    /// <inheritdoc/>
    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor x = Saved(_x), dx = GradientSlot("dx").Get(x.Shape);
        Backward(gradOutput, gradients, x, null, dx);
        return ComputesInputGradient ? dx : null;
    }

    /// <inheritdoc/>
    public void BackwardWithResidual(Tensor gradOutput, IGradientSink gradients, Tensor residual, Tensor destination) =>
        Backward(gradOutput, gradients, Saved(_x), residual, destination);
}

/// <summary>LayerNorm over the last dimension: y = (x - mean) / sqrt(var + eps) gamma + beta; gamma = 1, beta = 0 at start.</summary>
public sealed class LayerNorm : NormLayer
{
    /// <summary>
    /// LayerNorm over a last dimension of width <paramref name="dimension"/>, with parameters "name.weight" (gamma, ones)
    /// and "name.bias" (beta, zeros), Float32, and <paramref name="eps"/> added to the variance.
    /// </summary>
    public LayerNorm(IBackend backend, string name, int dimension, float eps = 1e-5f) : base(backend, name)
    {
        Eps = eps;
        Weight = new Parameter(backend, Join(name, "weight"), backend.Allocate(new Shape(dimension), MemoryTag.Parameters));
        Bias = new Parameter(backend, Join(name, "bias"), backend.Allocate(new Shape(dimension), MemoryTag.Parameters));
        backend.Fill(Weight.Value, 1f);
    }

    /// <summary>epsilon, added to the variance before the square root (1e-5 by default).</summary>
    public float Eps { get; }
    /// <summary>gamma (C): the per-channel gain, 1 at start.</summary>
    public Parameter Weight { get; }
    /// <summary>beta (C): the per-channel offset, 0 at start.</summary>
    public Parameter Bias { get; }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor x) => ForwardInto(x, Output(x.Shape));                        // (N, C)

    /// <inheritdoc/>
    protected override void Normalize(Tensor x, Tensor y) =>
        Backend.LayerNormForward(x, Weight.Value, Bias.Value, y, Slot("mean").Get(new Shape(x.Rows)), Slot("rstd").Get(new Shape(x.Rows)), Eps);

    /// <inheritdoc/>
    protected override void Backward(Tensor gradOutput, IGradientSink gradients, Tensor x, Tensor? residual, Tensor dx)
    {
        Tensor mean = Slot("mean").Get(new Shape(x.Rows)), rstd = Slot("rstd").Get(new Shape(x.Rows));
        Tensor dGamma = GradientSlot("dgamma").Get(Weight.Shape), dBeta = GradientSlot("dbeta").Get(Bias.Shape);
        Backend.LayerNormBackward(gradOutput, x, mean, rstd, Weight.Value, dx, dGamma, dBeta, residual);
        Deliver(gradients, Weight, dGamma);
        Deliver(gradients, Bias, dBeta);
    }

    /// <inheritdoc/>
    protected override IEnumerable<Parameter> OwnParameters => [Weight, Bias];
}

/// <summary>RMSNorm over the last dimension: y = x / sqrt(mean(x^2) + eps) w; w = 1 at start (Llama, T5).</summary>
public sealed class RmsNorm : NormLayer
{
    /// <summary>
    /// RMSNorm over a last dimension of width <paramref name="dimension"/>, with the parameter "name.weight" (w, ones),
    /// Float32, and <paramref name="eps"/> added to mean(x^2).
    /// </summary>
    public RmsNorm(IBackend backend, string name, int dimension, float eps = 1e-6f) : base(backend, name)
    {
        Eps = eps;
        Weight = new Parameter(backend, Join(name, "weight"), backend.Allocate(new Shape(dimension), MemoryTag.Parameters));
        backend.Fill(Weight.Value, 1f);
    }

    /// <summary>epsilon, added to mean(x^2) before the square root (1e-6 by default).</summary>
    public float Eps { get; }
    /// <summary>w (C): the per-channel gain, 1 at start.</summary>
    public Parameter Weight { get; }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor x) => ForwardInto(x, Output(x.Shape));                        // (N, C)

    /// <inheritdoc/>
    protected override void Normalize(Tensor x, Tensor y) => Backend.RmsNormForward(x, Weight.Value, y, Slot("rstd").Get(new Shape(x.Rows)), Eps);

    /// <inheritdoc/>
    protected override void Backward(Tensor gradOutput, IGradientSink gradients, Tensor x, Tensor? residual, Tensor dx)
    {
        Tensor dWeight = GradientSlot("dweight").Get(Weight.Shape);
        Backend.RmsNormBackward(gradOutput, x, Slot("rstd").Get(new Shape(x.Rows)), Weight.Value, dx, dWeight, residual);
        Deliver(gradients, Weight, dWeight);
    }

    /// <inheritdoc/>
    protected override IEnumerable<Parameter> OwnParameters => [Weight];
}
