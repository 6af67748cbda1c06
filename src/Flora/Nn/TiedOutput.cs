using Flora.Backends;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Nn;

/// <summary>
/// Output projection tied to an embedding table: logits = x W^T with W (V, C) the embedding's weight
/// (GPT-2's lm_head). The shared weight receives this gradient and the embedding's in one step.
/// </summary>
public sealed class TiedOutput : Module
{
    private Tensor? _input;

    public TiedOutput(IBackend backend, string name, Parameter weight) : base(backend, name)
    {
        Weight = weight;
        weight.UsesPerStep++;
    }

    public Parameter Weight { get; }

    public override Tensor Forward(Tensor x)
    {
        _input = x;
        Tensor logits = Slot("out").Get(new Shape(x.Rows, Weight.Shape[0]));     // (N, V)
        Backend.MatMul(x, false, Weight.Value, true, logits);                     // x W^T
        return logits;
    }

    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor x = Saved(_input);
        Tensor dx = GradientSlot("dx").Get(x.Shape);
        Backend.MatMul(gradOutput, false, Weight.Value, false, dx);               // dx = dlogits W     (N, C)
        if (Weight.RequiresGrad)
        {
            var g = gradients.Target(Weight);
            Backend.MatMul(gradOutput, true, x, false, g.Tensor, g.Scale, g.Beta); // dW (+)= dlogits^T x (V, C)
            gradients.OnGradient(Weight, g.Tensor);
        }
        return dx;
    }
}
