using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// A language model's output projection, logits = x W^T with W (V, C): tied to the token embedding
/// (GPT-2's and T5's lm_head) or a weight of its own (Llama's lm_head).
/// <list type="bullet">
/// <item><see cref="Forward"/>/<see cref="Backward"/> materialise the (N, V) logits (generation, tests).</item>
/// <item><see cref="ForwardLoss"/>/<see cref="BackwardLoss"/> fuse the projection with softmax cross-entropy
/// (<see cref="IBackend.LinearCrossEntropy"/>): the logits exist only a chunk of rows at a time, and backward
/// recomputes them, which costs one more product but saves the largest activation of a language model.</item>
/// </list>
/// </summary>
public sealed class OutputHead : Module
{
    private readonly bool _ownsWeight;
    private Tensor? _input, _targets;

    /// <summary>A head tied to <paramref name="weight"/> (V, C), which then takes one more gradient per step.</summary>
    public OutputHead(IBackend backend, string name, Parameter weight) : base(backend, name)
    {
        Weight = weight;
        weight.UsesPerStep++;
    }

    /// <summary>A head with its own weight "name.weight" (V, C), N(0, initStd^2) from a Philox seed, stored in <see cref="WeightStorage.Matrices"/>.</summary>
    public OutputHead(IBackend backend, string name, int features, int vocabulary, ulong seed, float initStd) : base(backend, name)
    {
        if (features <= 0 || vocabulary <= 0) throw new ArgumentException($"OutputHead '{name}': sizes must be positive, got {features} features, vocabulary {vocabulary}");
        Weight = new Parameter(backend, Join(name, "weight"), WeightStorage.AllocateMatrix(backend, new Shape(vocabulary, features)));
        backend.FillGaussian(Weight.Value, seed, initStd);
        _ownsWeight = true;
    }

    /// <summary>W (V, C): the token embedding's table when the head is tied, else the head's own "name.weight".</summary>
    public Parameter Weight { get; }

    /// <summary>Rows that carried a loss in the last <see cref="ForwardLoss"/>.</summary>
    public int CountedRows { get; private set; }

    /// <inheritdoc/>
    protected override IEnumerable<Parameter> OwnParameters => _ownsWeight ? [Weight] : [];

    /// <inheritdoc/>
    public override Tensor Forward(Tensor x)
    {
        _input = x;
        Tensor logits = Slot("out").Get(new Shape(x.Rows, Weight.Shape[0]));     // (N, V)
        Backend.MatMul(x, false, Weight.Value, true, logits);                     // x W^T
        return logits;
    }

    /// <inheritdoc/>
    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor x = Saved(_input);
        Tensor dx = GradientSlot("dx").Get(x.Shape);
        using (Backend.ReuseOperand(gradOutput))
        {
            Backend.MatMul(gradOutput, false, Weight.Value, false, dx);               // dx = dlogits W     (N, C)
            if (Weight.RequiresGrad)
            {
                var g = gradients.Target(Weight);
                Backend.MatMul(gradOutput, true, x, false, g.Tensor, g.Scale, g.Beta); // dW (+)= dlogits^T x (V, C)
                gradients.OnGradient(Weight, g.Tensor);
            }
        }
        return dx;
    }

    /// <summary>Mean cross-entropy of softmax(x W^T) against targets (N, Int32; negative ones ignored), without the logits.</summary>
    public float ForwardLoss(Tensor x, Tensor targets)
    {
        _input = x;
        _targets = targets;
        var (sum, count) = Backend.LinearCrossEntropy(x, Weight.Value, targets, 0f, null, null, 0f, 0f);
        CountedRows = count;
        return count == 0 ? 0f : (float)(sum / count);
    }

    /// <summary>dLoss/dx of the last <see cref="ForwardLoss"/> (the mean), and the weight's gradient to the sink.</summary>
    public Tensor BackwardLoss(IGradientSink gradients)
    {
        Tensor x = Saved(_input), targets = Saved(_targets);
        Tensor dx = GradientSlot("dx").Get(x.Shape);
        float scale = 1f / Math.Max(1, CountedRows);
        if (!Weight.RequiresGrad)
        {
            Backend.LinearCrossEntropy(x, Weight.Value, targets, scale, dx, null, 0f, 0f);
            return dx;
        }
        var g = gradients.Target(Weight);
        Backend.LinearCrossEntropy(x, Weight.Value, targets, scale, dx, g.Tensor, g.Scale, g.Beta);
        gradients.OnGradient(Weight, g.Tensor);
        return dx;
    }
}
