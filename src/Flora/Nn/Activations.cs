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
/// in bf16): the output and the input gradient are then BFloat16 too (read only by products, which round their operands
/// to bf16 anyway, and a bias sum), and the kernels widen the input themselves.
/// </summary>
public sealed class Gelu : Module, IRecomputable
{
    private Tensor? _x, _y;

    /// <summary>A GELU named <paramref name="name"/> on <paramref name="backend"/>; it has no parameters.</summary>
    public Gelu(IBackend backend, string name = "gelu") : base(backend, name) { }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        Tensor y = OutputFor(input);
        Backend.Gelu(input, y);
        return y;
    }

    /// <summary>
    /// Saves <paramref name="input"/> and returns the buffer <see cref="Forward"/> would write GELU of it into, without
    /// computing it: for a product that applies GELU in its epilogue (<see cref="IBackend.MatMulBiasGelu"/>).
    /// </summary>
    internal Tensor OutputFor(Tensor input)
    {
        _x = input;
        bool half = input.DType == DType.BFloat16;
        _y = OutputSlot(half ? "out.bf16" : "out", RecomputesOutput, input.DType).Get(input.Shape);
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
        // With a bf16 x (an MLP that keeps its pre-activation in bf16) dx is bf16 too: the up projection reads its output
        // gradient only in its products, which round it to bf16 anyway, and in its bias gradient, which then sums the
        // rounded values (as autocast's bf16 gradients do).
        bool half = x.DType == DType.BFloat16;
        Tensor dx = GradientSlot(half ? "dx.bf16" : "dx", x.DType).Get(x.Shape);
        Backend.GeluBackward(x, gradOutput, dx);
        return dx;
    }
}
