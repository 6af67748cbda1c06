
using Flora.Tensors;

namespace Flora.Backends;

/// <summary>
/// A reusable buffer that a module or sink writes every step. <see cref="Get"/> returns a view of the
/// requested shape; the storage grows to the largest shape ever asked for and never shrinks, so a
/// training loop that alternates batch sizes (train, evaluate) stops allocating after the first round.
/// A view returned earlier is invalid after a call that grew the buffer.
/// </summary>
public sealed class TensorSlot : IDisposable
{
    private readonly IBackend _backend;
    private readonly MemoryTag _tag;
    private readonly DType _dtype;
    private Tensor? _buffer;
    private Tensor? _view;

    /// <summary>An empty slot whose buffer <paramref name="backend"/> allocates, under <paramref name="tag"/>, of <paramref name="dtype"/> elements, on the first <see cref="Get"/>.</summary>
    public TensorSlot(IBackend backend, MemoryTag tag, DType dtype = DType.Float32)
    {
        _backend = backend;
        _tag = tag;
        _dtype = dtype;
    }

    /// <summary>Elements the buffer can hold without growing.</summary>
    public int Capacity => _buffer?.Count ?? 0;

    /// <summary>A view of <paramref name="shape"/> over the buffer; contents are whatever was last written.</summary>
    public Tensor Get(Shape shape)
    {
        if (_view is not null && _view.Shape == shape) return _view;
        if (_buffer is null || _buffer.Count < shape.Count)
        {
            _buffer?.Dispose();
            _buffer = _backend.Allocate(new Shape(shape.Count), _tag, _dtype);
        }
        _view = _buffer.View(shape);
        return _view;
    }

    /// <summary>A (rows, columns) view of the buffer holding <paramref name="values"/> (ids of a batch).</summary>
    public Tensor Upload(int[] values, int rows, int columns)
    {
        Tensor t = Get(new Shape(rows, columns));
        _backend.Upload(values, t);
        return t;
    }

    /// <summary>Frees the buffer; views returned earlier become invalid.</summary>
    public void Dispose()
    {
        _buffer?.Dispose();
        _buffer = null;
        _view = null;
    }
}
