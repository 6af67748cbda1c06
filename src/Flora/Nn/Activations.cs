using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>y = max(x, 0). Saves its output: dx = dy where y &gt; 0.</summary>
public sealed class Relu : Module
{
    private Tensor? _y;

    /// <summary>A ReLU named <paramref name="name"/> on <paramref name="backend"/>; it has no parameters.</summary>
    public Relu(IBackend backend, string name = "relu") : base(backend, name) { }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        _y = Slot("out").Get(input.Shape);
        Backend.Relu(input, _y);
        return _y;
    }

    /// <inheritdoc/>
    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor y = Saved(_y);
        if (!ComputesInputGradient) return null;
        Tensor dx = GradientSlot("dx").Get(y.Shape);
        Backend.ReluBackward(y, gradOutput, dx);
        return dx;
    }
}

/// <summary>
/// GELU, tanh approximation (GPT-2's "gelu_new"). Saves its input, which may be BFloat16 (an MLP's pre-activation kept
/// in bf16): the output is then BFloat16 too (read only by the down projection's products, which round their operands
/// to bf16 anyway), and the kernels widen the input themselves.
/// </summary>
public sealed class Gelu : Module, IRecomputable
{
    private Tensor? _x, _y;

    /// <summary>A GELU named <paramref name="name"/> on <paramref name="backend"/>; it has no parameters.</summary>
    public Gelu(IBackend backend, string name = "gelu") : base(backend, name) { }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        _x = input;
        bool half = input.DType == DType.BFloat16;
        _y = OutputSlot(half ? "out.bf16" : "out", RecomputesOutput, input.DType).Get(input.Shape);
        Backend.Gelu(input, _y);
        return _y;
    }

    /// <inheritdoc/>
    public bool RecomputesOutput { get; set; }

    /// <inheritdoc/>
    public void RecomputeOutput()
    {
        if (RecomputesOutput) Backend.Gelu(Saved(_x), Saved(_y));
    }

    /// <inheritdoc/>
    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor x = Saved(_x);
        if (!ComputesInputGradient) return null;
        Tensor dx = GradientSlot("dx").Get(x.Shape);
        Backend.GeluBackward(x, gradOutput, dx);                                // x Float32 or BFloat16
        return dx;
    }
}
