using Flora.Backends;
using Flora.Tensors;

namespace Flora.Data;

/// <summary>
/// Serves shuffled mini-batches of an <see cref="ImageDataset"/> as device tensors: images (B, H*W)
/// and Int32 labels (B). The order is a fresh permutation per epoch from a seed, identical across
/// runs with the same seed. The batch tensors are allocated once and refilled.
/// </summary>
public sealed class ImageBatcher : IDisposable
{
    private readonly IBackend _backend;
    private readonly ImageDataset _data;
    private readonly int _batchSize;
    private readonly Random _shuffle;
    private readonly int[] _order;
    private readonly float[] _hostImages;
    private readonly int[] _hostLabels;
    private readonly Tensor _images, _labels;
    private int _position;

    /// <summary>
    /// Batches of <paramref name="batchSize"/> examples of <paramref name="data"/>, shuffled with <paramref name="seed"/>;
    /// allocates the batch tensors on <paramref name="backend"/> under <see cref="MemoryTag.Activations"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The batch size is not positive or larger than the data set.</exception>
    public ImageBatcher(IBackend backend, ImageDataset data, int batchSize, int seed)
    {
        if (batchSize <= 0) throw new ArgumentException($"batch size must be positive, got {batchSize}", nameof(batchSize));
        if (data.Count < batchSize) throw new ArgumentException($"the {data.Name} set has {data.Count} examples, fewer than one batch of {batchSize}");
        _backend = backend;
        _data = data;
        _batchSize = batchSize;
        _shuffle = new Random(seed);
        _order = Enumerable.Range(0, data.Count).ToArray();
        _position = data.Count; // shuffle on first use
        _hostImages = new float[batchSize * data.Features];
        _hostLabels = new int[batchSize];
        _images = backend.Allocate(new Shape(batchSize, data.Features), MemoryTag.Activations);
        _labels = backend.Allocate(new Shape(batchSize), MemoryTag.Activations, DType.Int32);
    }

    /// <summary>Completed passes over the data.</summary>
    public int Epoch { get; private set; } = -1;

    /// <summary>The next batch; the tensors are overwritten by the following call. Drops the last partial batch of an epoch.</summary>
    public (Tensor Images, Tensor Labels) Next()
    {
        if (_position + _batchSize > _data.Count)
        {
            _shuffle.Shuffle(_order);
            _position = 0;
            Epoch++;
        }
        int features = _data.Features;
        for (int i = 0; i < _batchSize; i++)
        {
            int example = _order[_position + i];
            _data.Pixels.AsSpan(example * features, features).CopyTo(_hostImages.AsSpan(i * features, features));
            _hostLabels[i] = _data.Labels[example];
        }
        _position += _batchSize;
        _backend.Upload(_hostImages, _images);
        _backend.Upload(_hostLabels, _labels);
        return (_images, _labels);
    }

    /// <summary>Frees the two batch tensors; the data set is borrowed.</summary>
    public void Dispose()
    {
        _images.Dispose();
        _labels.Dispose();
    }
}
