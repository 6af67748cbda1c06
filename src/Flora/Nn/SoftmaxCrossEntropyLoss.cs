using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// Mean over counted rows of -log softmax(logits)[target]; rows whose target is negative are ignored
/// (padding, prompt tokens). Works in place: Forward turns the logits into probabilities and Backward
/// turns those into dLoss/dLogits = (softmax - onehot(target)) / N_counted (0 on ignored rows), so a
/// (tokens, vocabulary) matrix exists once, not three times. The logits are gone after Forward.
/// </summary>
public sealed class SoftmaxCrossEntropyLoss : IDisposable
{
    private readonly IBackend _backend;
    private Tensor? _p, _targets;
    private int _counted;

    /// <summary>A loss whose kernels run on <paramref name="backend"/>; it allocates nothing of its own.</summary>
    public SoftmaxCrossEntropyLoss(IBackend backend)
    {
        _backend = backend;
    }

    /// <summary>Rows that carried a loss in the last Forward.</summary>
    public int CountedRows => _counted;

    /// <summary>logits (N, C), targets Int32 (N); returns the mean loss over counted rows (0 if none).</summary>
    public float Forward(Tensor logits, Tensor targets)
    {
        _p = logits;
        _targets = targets;
        var (sum, count) = _backend.SoftmaxCrossEntropy(logits, targets, _p);
        _counted = count;
        return count == 0 ? 0f : (float)(sum / count);
    }

    /// <summary>dLoss/dLogits for the last Forward, (N, C).</summary>
    public Tensor Backward()
    {
        Tensor p = _p ?? throw new InvalidOperationException("SoftmaxCrossEntropyLoss: Backward called before Forward");
        _backend.SoftmaxCrossEntropyBackward(p, _targets!, p, 1f / Math.Max(1, _counted));
        _p = null;
        return p;
    }

    /// <summary>Does nothing: the loss works in the caller's logits and holds no memory.</summary>
    public void Dispose() { }
}
