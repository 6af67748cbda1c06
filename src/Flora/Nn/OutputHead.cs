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

    /// <summary>
    /// Mean cross-entropy of softmax(x W^T) against targets (N, Int32; negative ones ignored), without the logits.
    /// Given the <paramref name="gradients"/> sink that the <see cref="BackwardLoss"/> to follow will receive (training),
    /// the same pass over the logits also computes dx and the weight's gradient (into the sink's target), so that
    /// backward neither recomputes the logits nor reads them again; the sink hears of the gradient in
    /// <see cref="BackwardLoss"/>, as before.
    /// </summary>
    public float ForwardLoss(Tensor x, Tensor targets, IGradientSink? gradients = null)
    {
        _input = x;
        _targets = targets;
        _pending = null;
        if (gradients is null)
        {
            var (sum, count) = Backend.LinearCrossEntropy(x, Weight.Value, targets, 0f, null, null, 0f, 0f);
            CountedRows = count;
            return count == 0 ? 0f : (float)(sum / count);
        }
        // The gradient of the mean needs the count first: the rows whose target is not ignored.
        var ids = new int[targets.Count];
        targets.CopyTo<int>(ids);
        int counted = ids.Count(id => id >= 0);
        var (lossSum, lossCount) = LossWithGradients(x, targets, 1f / Math.Max(1, counted), gradients, out var pending);
        _pending = pending;
        CountedRows = lossCount;
        return lossCount == 0 ? 0f : (float)(lossSum / lossCount);
    }

    /// <summary>dLoss/dx of the last <see cref="ForwardLoss"/> (the mean), and the weight's gradient to the sink.</summary>
    public Tensor BackwardLoss(IGradientSink gradients)
    {
        if (_pending is { } pending)
        {
            _pending = null;                                                           // computed by ForwardLoss
            if (pending.Target is GradientTarget g) gradients.OnGradient(Weight, g.Tensor);
            return pending.Dx;
        }
        Tensor x = Saved(_input), targets = Saved(_targets);
        float scale = 1f / Math.Max(1, CountedRows);
        LossWithGradients(x, targets, scale, gradients, out var computed);
        if (computed.Target is GradientTarget t) gradients.OnGradient(Weight, t.Tensor);
        return computed.Dx;
    }

    /// <summary>dx and (when the weight trains) dW into the sink's target, scaled by <paramref name="scale"/>; returns the loss sum and count.</summary>
    private (double Sum, int Count) LossWithGradients(Tensor x, Tensor targets, float scale, IGradientSink gradients, out (Tensor Dx, GradientTarget? Target) computed)
    {
        Tensor dx = GradientSlot("dx").Get(x.Shape);
        GradientTarget? target = Weight.RequiresGrad ? gradients.Target(Weight) : null;
        Tensor w = Weight.Value;
        if (target is GradientTarget t && t.Tensor.Pointer == w.Pointer)
        {
            // An update folded into the dW product (SGD with LOMO) changes W chunk by chunk: the logits of later chunks
            // must read W as it was before the step, so they read a copy.
            w = Slot("weight before the step", Weight.Value.DType).Get(w.Shape);
            Backend.Copy(Weight.Value, w);
        }
        var result = target is GradientTarget g
            ? Backend.LinearCrossEntropy(x, w, targets, scale, dx, g.Tensor, g.Scale, g.Beta)
            : Backend.LinearCrossEntropy(x, w, targets, scale, dx, null, 0f, 0f);
        computed = (dx, target);
        return result;
    }

    /// <summary>dx and the weight's gradient target from a <see cref="ForwardLoss"/> that computed them, until <see cref="BackwardLoss"/>.</summary>
    private (Tensor Dx, GradientTarget? Target)? _pending;
}
