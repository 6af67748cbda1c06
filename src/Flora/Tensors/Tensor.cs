using System.Runtime.CompilerServices;

namespace Flora.Tensors;

/// <summary>
/// A dense, row-major tensor over a <see cref="Tensors.Storage"/>. An owning tensor frees its storage
/// when disposed; a view (<see cref="View(Shape)"/>) shares the storage of its parent and frees nothing.
/// Tensors never run element loops: all arithmetic goes through the backend that allocated them
/// (<c>Flora.Backends.IBackend</c>); a tensor only knows its storage, so it can be copied to and from the host.
/// </summary>
public sealed class Tensor : IDisposable
{
    private readonly bool _ownsStorage;

    internal Tensor(Storage storage, Shape shape, DType dtype, long offset, bool ownsStorage)
    {
        long needed = (offset + shape.Count) * dtype.Size();
        if (offset < 0 || needed > storage.Bytes)
            throw new ArgumentException($"a tensor of shape {shape} at element offset {offset} does not fit in a storage of {storage.Bytes} bytes");
        Storage = storage;
        Shape = shape;
        DType = dtype;
        Offset = offset;
        _ownsStorage = ownsStorage;
    }

    /// <summary>The memory the elements live in; shared with every view of the same owning tensor.</summary>
    public Storage Storage { get; }

    /// <summary>The dimensions, outermost first; the last one is the columns of the matrix view.</summary>
    public Shape Shape { get; }

    /// <summary>The element type, which fixes the bytes per element.</summary>
    public DType DType { get; }

    /// <summary>Offset of the first element inside <see cref="Storage"/>, in elements.</summary>
    public long Offset { get; }

    /// <summary>Number of elements.</summary>
    public int Count => Shape.Count;

    /// <summary>Size of the last dimension (columns when the tensor is read as a matrix).</summary>
    public int Columns => Shape.Rank == 0 ? 1 : Shape[-1];

    /// <summary>Number of rows when the tensor is read as a matrix of <see cref="Columns"/> columns.</summary>
    public int Rows => Columns == 0 ? 0 : Count / Columns;

    /// <summary>Address of the first element (host or device).</summary>
    public IntPtr Pointer => Storage.Pointer + (nint)(Offset * DType.Size());

    /// <summary>Bytes the elements occupy: <see cref="Count"/> times the element size (not the whole storage).</summary>
    public long Bytes => (long)Count * DType.Size();

    /// <summary>A tensor of another shape over the same elements (no copy). The view must not outlive this tensor.</summary>
    public Tensor View(Shape shape) => View(shape, 0);

    /// <summary>A tensor of <paramref name="shape"/> starting <paramref name="elementOffset"/> elements into this one.</summary>
    public Tensor View(Shape shape, long elementOffset)
    {
        if (elementOffset < 0 || elementOffset + shape.Count > Count + CapacityBeyondShape)
            throw new ArgumentException($"a view of shape {shape} at offset {elementOffset} does not fit in a tensor of shape {Shape}");
        return new Tensor(Storage, shape, DType, Offset + elementOffset, ownsStorage: false);
    }

    /// <summary>Rows [start, start + count) of this tensor read as a matrix.</summary>
    public Tensor RowSlice(int start, int count)
    {
        if (start < 0 || count < 0 || start + count > Rows)
            throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + count}) are outside a tensor of {Rows} rows");
        return new Tensor(Storage, new Shape(count, Columns), DType, Offset + (long)start * Columns, ownsStorage: false);
    }

    /// <summary>Elements the storage holds beyond this tensor's shape (views of a grown buffer may use them).</summary>
    private long CapacityBeyondShape => Storage.Bytes / DType.Size() - Offset - Count;

    /// <summary>Copies every element to <paramref name="destination"/> (host memory; waits for a device copy to finish).</summary>
    /// <exception cref="ArgumentException">The element type's size differs from <see cref="DType"/>'s or the lengths differ.</exception>
    public void CopyTo<T>(Span<T> destination) where T : unmanaged
    {
        CheckHostBuffer<T>(destination.Length);
        Storage.CopyToHost(Offset * DType.Size(), System.Runtime.InteropServices.MemoryMarshal.AsBytes(destination));
    }

    /// <summary>Overwrites every element with <paramref name="source"/> (host memory).</summary>
    /// <exception cref="ArgumentException">The element type's size differs from <see cref="DType"/>'s or the lengths differ.</exception>
    public void CopyFrom<T>(ReadOnlySpan<T> source) where T : unmanaged
    {
        CheckHostBuffer<T>(source.Length);
        Storage.CopyFromHost(System.Runtime.InteropServices.MemoryMarshal.AsBytes(source), Offset * DType.Size());
    }

    /// <summary>The elements as a new host array (Float32 tensors).</summary>
    public float[] ToArray()
    {
        var values = new float[Count];
        CopyTo<float>(values);
        return values;
    }

    private void CheckHostBuffer<T>(int length) where T : unmanaged
    {
        if (Unsafe.SizeOf<T>() != DType.Size())
            throw new ArgumentException($"a host buffer of {typeof(T).Name} does not match a {DType} tensor");
        if (length != Count)
            throw new ArgumentException($"a host buffer of {length} elements does not match tensor {this} of {Count}");
    }

    /// <summary>True once the storage has been freed (by this tensor, or by the owner of a view).</summary>
    public bool IsDisposed => Storage.IsDisposed;

    /// <summary>Frees the storage if this tensor owns it; a view frees nothing.</summary>
    public void Dispose()
    {
        if (_ownsStorage) Storage.Dispose();
    }

    /// <summary>Shape, element type and memory tag, e.g. "Tensor(4, 64) Float32 Activations".</summary>
    public override string ToString() => $"Tensor{Shape} {DType} {Storage.Tag}";
}
