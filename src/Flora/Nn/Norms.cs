using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>LayerNorm over the last dimension: y = (x - mean) / sqrt(var + eps) gamma + beta; gamma = 1, beta = 0 at start.</summary>
public sealed class LayerNorm : Module
{
    private Tensor? _x;

    public LayerNorm(IBackend backend, string name, int dimension, float eps = 1e-5f) : base(backend, name)
    {
        Eps = eps;
        Weight = new Parameter(backend, Join(name, "weight"), backend.Allocate(new Shape(dimension), MemoryTag.Parameters));
        Bias = new Parameter(backend, Join(name, "bias"), backend.Allocate(new Shape(dimension), MemoryTag.Parameters));
        backend.Fill(Weight.Value, 1f);
    }

    public float Eps { get; }
    public Parameter Weight { get; }
    public Parameter Bias { get; }

    public override Tensor Forward(Tensor x)
    {
        _x = x;
        Tensor y = Slot("out").Get(x.Shape);                                            // (N, C)
        Backend.LayerNormForward(x, Weight.Value, Bias.Value, y, Slot("mean").Get(new Shape(x.Rows)), Slot("rstd").Get(new Shape(x.Rows)), Eps);
        return y;
    }

    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor x = Saved(_x);
        Tensor dx = GradientSlot("dx").Get(x.Shape);
        Tensor mean = Slot("mean").Get(new Shape(x.Rows)), rstd = Slot("rstd").Get(new Shape(x.Rows));
        Tensor dGamma = GradientSlot("dgamma").Get(Weight.Shape), dBeta = GradientSlot("dbeta").Get(Bias.Shape);
        Backend.LayerNormBackward(gradOutput, x, mean, rstd, Weight.Value, dx, dGamma, dBeta);
        Deliver(gradients, Weight, dGamma);
        Deliver(gradients, Bias, dBeta);
        return ComputesInputGradient ? dx : null;
    }

    protected override IEnumerable<Parameter> OwnParameters => [Weight, Bias];
}

/// <summary>RMSNorm over the last dimension: y = x / sqrt(mean(x^2) + eps) w; w = 1 at start (Llama, T5).</summary>
public sealed class RmsNorm : Module
{
    private Tensor? _x;

    public RmsNorm(IBackend backend, string name, int dimension, float eps = 1e-6f) : base(backend, name)
    {
        Eps = eps;
        Weight = new Parameter(backend, Join(name, "weight"), backend.Allocate(new Shape(dimension), MemoryTag.Parameters));
        backend.Fill(Weight.Value, 1f);
    }

    public float Eps { get; }
    public Parameter Weight { get; }

    public override Tensor Forward(Tensor x)
    {
        _x = x;
        Tensor y = Slot("out").Get(x.Shape);
        Backend.RmsNormForward(x, Weight.Value, y, Slot("rstd").Get(new Shape(x.Rows)), Eps);
        return y;
    }

    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor x = Saved(_x);
        Tensor dx = GradientSlot("dx").Get(x.Shape), dWeight = GradientSlot("dweight").Get(Weight.Shape);
        Backend.RmsNormBackward(gradOutput, x, Slot("rstd").Get(new Shape(x.Rows)), Weight.Value, dx, dWeight);
        Deliver(gradients, Weight, dWeight);
        return ComputesInputGradient ? dx : null;
    }

    protected override IEnumerable<Parameter> OwnParameters => [Weight];
}
