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
/// in bf16): it is then widened, exactly, into the output (or the input gradient) and transformed there in place.
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
        _y = OutputSlot("out", RecomputesOutput).Get(input.Shape);
        Apply(input, _y);
        return _y;
    }

    /// <summary>y = GELU(x), x Float32 or BFloat16.</summary>
    private void Apply(Tensor x, Tensor y)
    {
        if (x.DType == DType.Float32) { Backend.Gelu(x, y); return; }
        Backend.Copy(x, y);                                                     // widened exactly
        Backend.Gelu(y, y);
    }

    /// <inheritdoc/>
    public bool RecomputesOutput { get; set; }

    /// <inheritdoc/>
    public void RecomputeOutput()
    {
        if (RecomputesOutput) Apply(Saved(_x), Saved(_y));
    }

    /// <inheritdoc/>
    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor x = Saved(_x);
        if (!ComputesInputGradient) return null;
        Tensor dx = GradientSlot("dx").Get(x.Shape);
        if (x.DType == DType.Float32) Backend.GeluBackward(x, gradOutput, dx);
        else
        {
            Backend.Copy(x, dx);                                                // widened exactly
            Backend.GeluBackward(dx, gradOutput, dx);
        }
        return dx;
    }
}
