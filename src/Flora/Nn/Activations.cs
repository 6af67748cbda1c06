using Flora.Backends;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Nn;

/// <summary>y = max(x, 0). Saves its output: dx = dy where y &gt; 0.</summary>
public sealed class Relu : Module
{
    private readonly TensorSlot _output, _gradInput;
    private Tensor? _y;

    public Relu(IBackend backend, string name = "relu") : base(backend, name)
    {
        _output = new TensorSlot(backend, MemoryTag.Activations);
        _gradInput = new TensorSlot(backend, MemoryTag.Activations);
    }

    public override Tensor Forward(Tensor input)
    {
        _y = _output.Get(input.Shape);
        Backend.Relu(input, _y);
        return _y;
    }

    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor y = Saved(_y);
        if (!ComputesInputGradient) return null;
        Tensor dx = _gradInput.Get(y.Shape);
        Backend.ReluBackward(y, gradOutput, dx);
        return dx;
    }

    public override void Dispose()
    {
        _output.Dispose();
        _gradInput.Dispose();
    }
}

/// <summary>GELU, tanh approximation (GPT-2's "gelu_new"). Saves its input.</summary>
public sealed class Gelu : Module
{
    private readonly TensorSlot _output, _gradInput;
    private Tensor? _x;

    public Gelu(IBackend backend, string name = "gelu") : base(backend, name)
    {
        _output = new TensorSlot(backend, MemoryTag.Activations);
        _gradInput = new TensorSlot(backend, MemoryTag.Activations);
    }

    public override Tensor Forward(Tensor input)
    {
        _x = input;
        Tensor y = _output.Get(input.Shape);
        Backend.Gelu(input, y);
        return y;
    }

    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor x = Saved(_x);
        if (!ComputesInputGradient) return null;
        Tensor dx = _gradInput.Get(x.Shape);
        Backend.GeluBackward(x, gradOutput, dx);
        return dx;
    }

    public override void Dispose()
    {
        _output.Dispose();
        _gradInput.Dispose();
    }
}
