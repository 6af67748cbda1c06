using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// Mean over rows of -log softmax(logits)[target]. Forward saves the probabilities; backward returns
/// dLoss/dLogits = (softmax - onehot(target)) / N.
/// </summary>
public sealed class SoftmaxCrossEntropyLoss : IDisposable
{
    private readonly IBackend _backend;
    private readonly TensorSlot _probabilities, _gradLogits;
    private Tensor? _p, _targets;

    public SoftmaxCrossEntropyLoss(IBackend backend)
    {
        _backend = backend;
        _probabilities = new TensorSlot(backend, MemoryTag.Activations);
        _gradLogits = new TensorSlot(backend, MemoryTag.Activations);
    }

    /// <summary>logits (N, C), targets Int32 (N); returns the mean loss.</summary>
    public float Forward(Tensor logits, Tensor targets)
    {
        _p = _probabilities.Get(logits.Shape);
        _targets = targets;
        return _backend.SoftmaxCrossEntropy(logits, targets, _p);
    }

    /// <summary>dLoss/dLogits for the last Forward, (N, C).</summary>
    public Tensor Backward()
    {
        Tensor p = _p ?? throw new InvalidOperationException("SoftmaxCrossEntropyLoss: Backward called before Forward");
        Tensor d = _gradLogits.Get(p.Shape);
        _backend.SoftmaxCrossEntropyBackward(p, _targets!, d, 1f / p.Rows);
        return d;
    }

    public void Dispose()
    {
        _probabilities.Dispose();
        _gradLogits.Dispose();
    }
}
