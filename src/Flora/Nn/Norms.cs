using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>LayerNorm over the last dimension: y = (x - mean) / sqrt(var + eps) gamma + beta; gamma = 1, beta = 0 at start.</summary>
public sealed class LayerNorm : Module, IRecomputable, IResidualNorm
{
    private Tensor? _x, _y;

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
    public override Tensor Forward(Tensor x)
    {
        _x = x;
        bool half = OutputType == DType.BFloat16;
        _y = OutputSlot(half ? "out.bf16" : "out", RecomputesOutput, OutputType).Get(x.Shape);   // (N, C)
        Normalize(x, _y);
        return _y;
    }

    /// <summary>
    /// The type of the output: Float32, or BFloat16 when the only reader is a product (a block's attention or MLP input
    /// projection, <see cref="IBackend.ActivationType"/>), which rounds its operands to bf16 anyway: written rounded to
    /// nearest even. Backward reads x and the saved statistics, never the output. Set by the block.
    /// </summary>
    /// <exception cref="ArgumentException">Another type.</exception>
    public DType OutputType
    {
        get => _outputType;
        set => _outputType = value is DType.Float32 or DType.BFloat16 ? value
            : throw new ArgumentException($"LayerNorm '{Name}': the output is Float32 or BFloat16, not {value}");
    }
    private DType _outputType = DType.Float32;

    private void Normalize(Tensor x, Tensor y) =>
        Backend.LayerNormForward(x, Weight.Value, Bias.Value, y, Slot("mean").Get(new Shape(x.Rows)), Slot("rstd").Get(new Shape(x.Rows)), Eps);

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
        Tensor dx = GradientSlot("dx").Get(Saved(_x).Shape);
        Backward(gradOutput, gradients, null, dx);
        return ComputesInputGradient ? dx : null;
    }

    /// <inheritdoc/>
    public void BackwardWithResidual(Tensor gradOutput, IGradientSink gradients, Tensor residual, Tensor destination) =>
        Backward(gradOutput, gradients, residual, destination);

    private void Backward(Tensor gradOutput, IGradientSink gradients, Tensor? residual, Tensor dx)
    {
        Tensor x = Saved(_x);
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
public sealed class RmsNorm : Module, IRecomputable, IResidualNorm
{
    private Tensor? _x, _y;

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
    public override Tensor Forward(Tensor x)
    {
        _x = x;
        _y = OutputSlot("out", RecomputesOutput).Get(x.Shape);
        Normalize(x, _y);
        return _y;
    }

    private void Normalize(Tensor x, Tensor y) => Backend.RmsNormForward(x, Weight.Value, y, Slot("rstd").Get(new Shape(x.Rows)), Eps);

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
        Tensor dx = GradientSlot("dx").Get(Saved(_x).Shape);
        Backward(gradOutput, gradients, null, dx);
        return ComputesInputGradient ? dx : null;
    }

    /// <inheritdoc/>
    public void BackwardWithResidual(Tensor gradOutput, IGradientSink gradients, Tensor residual, Tensor destination) =>
        Backward(gradOutput, gradients, residual, destination);

    private void Backward(Tensor gradOutput, IGradientSink gradients, Tensor? residual, Tensor dx)
    {
        Tensor x = Saved(_x), dWeight = GradientSlot("dweight").Get(Weight.Shape);
        Backend.RmsNormBackward(gradOutput, x, Slot("rstd").Get(new Shape(x.Rows)), Weight.Value, dx, dWeight, residual);
        Deliver(gradients, Weight, dWeight);
    }

    /// <inheritdoc/>
    protected override IEnumerable<Parameter> OwnParameters => [Weight];
}
