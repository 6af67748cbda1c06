namespace Flora.Tensors;

/// <summary>
/// The dimensions of a tensor, outermost first (row-major). Immutable; compares by value.
/// </summary>
public readonly struct Shape : IEquatable<Shape>
{
    private readonly int[]? _dims;

    /// <summary>A shape of the dimensions <paramref name="dims"/> (copied); none gives a scalar.</summary>
    /// <exception cref="ArgumentException">A dimension is negative or the element count exceeds <see cref="int.MaxValue"/>.</exception>
    public Shape(params int[] dims)
    {
        ArgumentNullException.ThrowIfNull(dims);
        long count = 1;
        foreach (int d in dims)
        {
            if (d < 0) throw new ArgumentException($"shape ({string.Join(", ", dims)}) has a negative dimension", nameof(dims));
            count *= d;
        }
        if (count > int.MaxValue) throw new ArgumentException($"shape ({string.Join(", ", dims)}) has {count} elements, more than a tensor can hold ({int.MaxValue})", nameof(dims));
        _dims = (int[])dims.Clone();
    }

    /// <summary>Number of dimensions.</summary>
    public int Rank => _dims?.Length ?? 0;

    /// <summary>Size of dimension <paramref name="axis"/>; negative axes count from the end.</summary>
    public int this[int axis]
    {
        get
        {
            int rank = Rank;
            int a = axis < 0 ? axis + rank : axis;
            if ((uint)a >= (uint)rank) throw new ArgumentOutOfRangeException(nameof(axis), $"axis {axis} is out of range for shape {this}");
            return _dims![a];
        }
    }

    /// <summary>Total number of elements (1 for a scalar shape).</summary>
    public int Count
    {
        get
        {
            int count = 1;
            if (_dims is not null) foreach (int d in _dims) count *= d;
            return count;
        }
    }

    /// <summary>The dimensions as a new array.</summary>
    public int[] ToArray() => _dims is null ? [] : (int[])_dims.Clone();

    /// <inheritdoc/>
    public bool Equals(Shape other) => (_dims ?? []).AsSpan().SequenceEqual(other._dims ?? []);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Shape s && Equals(s);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        if (_dims is not null) foreach (int d in _dims) hash.Add(d);
        return hash.ToHashCode();
    }
    /// <summary>True when the shapes are equal dimension for dimension.</summary>
    public static bool operator ==(Shape a, Shape b) => a.Equals(b);

    /// <summary>True when the shapes differ in rank or in any dimension.</summary>
    public static bool operator !=(Shape a, Shape b) => !a.Equals(b);

    /// <summary>The dimensions in parentheses, e.g. "(4, 64)"; "()" for a scalar.</summary>
    public override string ToString() => "(" + string.Join(", ", _dims ?? []) + ")";
}
