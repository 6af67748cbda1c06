using Flora.Backends;
using Flora.Data;
using Flora.Nn;
using Flora.Tensors;

namespace Flora.Training;

/// <summary>
/// Accuracy and mean cross-entropy of a classifier on a whole <see cref="ImageDataset"/>, in chunks of
/// at most <see cref="ChunkSize"/> examples. Its buffers are allocated once, so repeated evaluations
/// during training allocate nothing.
/// </summary>
internal sealed class ClassifierEvaluator : IDisposable
{
    private readonly IBackend _backend;
    private readonly ImageDataset _data;
    private readonly Tensor _images, _labels;
    private readonly SoftmaxCrossEntropyLoss _loss;
    private readonly int[] _hostLabels;

    public ClassifierEvaluator(IBackend backend, ImageDataset data, int chunkSize = 1000)
    {
        if (data.Count == 0) throw new ArgumentException($"the {data.Name} set is empty: nothing to evaluate on");
        _backend = backend;
        _data = data;
        ChunkSize = Math.Min(chunkSize, data.Count);
        _images = backend.Allocate(new Shape(ChunkSize, data.Features), MemoryTag.Activations);
        _labels = backend.Allocate(new Shape(ChunkSize), MemoryTag.Activations, DType.Int32);
        _hostLabels = new int[ChunkSize];
        _loss = new SoftmaxCrossEntropyLoss(backend);
    }

    public int ChunkSize { get; }

    public (double Accuracy, double Loss) Evaluate(Module model)
    {
        long correct = 0;
        double lossSum = 0;
        for (int start = 0; start < _data.Count; start += ChunkSize)
        {
            int n = Math.Min(ChunkSize, _data.Count - start);
            Tensor images = _images.RowSlice(0, n), labels = _labels.View(new Shape(n));
            _backend.Upload(_data.Pixels.AsSpan(start * _data.Features, n * _data.Features), images);
            for (int i = 0; i < n; i++) _hostLabels[i] = _data.Labels[start + i];
            _backend.Upload(_hostLabels.AsSpan(0, n), labels);
            Tensor logits = model.Forward(images);
            lossSum += (double)_loss.Forward(logits, labels) * n;
            correct += _backend.CountCorrect(logits, labels);
        }
        return ((double)correct / _data.Count, lossSum / _data.Count);
    }

    public void Dispose()
    {
        _images.Dispose();
        _labels.Dispose();
        _loss.Dispose();
    }
}
