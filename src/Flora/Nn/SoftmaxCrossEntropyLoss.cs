using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// Mean over counted rows of -log softmax(logits)[target]; rows whose target is negative are ignored
/// (padding, prompt tokens). Forward saves the probabilities; backward returns
/// dLoss/dLogits = (softmax - onehot(target)) / N_counted, and 0 on ignored rows.
/// </summary>
public sealed class SoftmaxCrossEntropyLoss : IDisposable
{
    private readonly IBackend _backend;
    private readonly TensorSlot _probabilities, _gradLogits;
    private Tensor? _p, _targets;
    private int _counted;

    public SoftmaxCrossEntropyLoss(IBackend backend)
    {
        _backend = backend;
        _probabilities = new TensorSlot(backend, MemoryTag.Activations);
        _gradLogits = new TensorSlot(backend, MemoryTag.Activations);
    }

    /// <summary>Rows that carried a loss in the last Forward.</summary>
    public int CountedRows => _counted;

    /// <summary>logits (N, C), targets Int32 (N); returns the mean loss over counted rows (0 if none).</summary>
    public float Forward(Tensor logits, Tensor targets)
    {
        _p = _probabilities.Get(logits.Shape);
        _targets = targets;
        var (sum, count) = _backend.SoftmaxCrossEntropy(logits, targets, _p);
        _counted = count;
        return count == 0 ? 0f : (float)(sum / count);
    }

    /// <summary>dLoss/dLogits for the last Forward, (N, C).</summary>
    public Tensor Backward()
    {
        Tensor p = _p ?? throw new InvalidOperationException("SoftmaxCrossEntropyLoss: Backward called before Forward");
        Tensor d = _gradLogits.Get(p.Shape);
        _backend.SoftmaxCrossEntropyBackward(p, _targets!, d, 1f / Math.Max(1, _counted));
        return d;
    }

    public void Dispose()
    {
        _probabilities.Dispose();
        _gradLogits.Dispose();
    }
}
