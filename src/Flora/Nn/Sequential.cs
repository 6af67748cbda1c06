using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// Runs children in order; backward runs them in reverse. A shape error names the index and type of
/// the child that failed. Setting <see cref="ComputesInputGradient"/> to false (a model fed with data)
/// sets it on the first child.
/// </summary>
public sealed class Sequential : Module
{
    private readonly Module[] _children;

    /// <summary>A container named <paramref name="name"/> that runs <paramref name="children"/> in the order given.</summary>
    /// <exception cref="ArgumentException">No child is given.</exception>
    public Sequential(IBackend backend, string name, params Module[] children) : base(backend, name)
    {
        if (children.Length == 0) throw new ArgumentException($"Sequential '{name}' needs at least one child");
        _children = children;
    }

    /// <summary>The first child's setting, read and written through: only the first child sees the container's input.</summary>
    public override bool ComputesInputGradient
    {
        get => _children[0].ComputesInputGradient;
        set => _children[0].ComputesInputGradient = value;
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        Tensor x = input;
        for (int i = 0; i < _children.Length; i++)
            x = Run(i, () => _children[i].Forward(x));
        return x;
    }

    /// <inheritdoc/>
    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor? g = gradOutput;
        for (int i = _children.Length - 1; i >= 0; i--)
        {
            Tensor dy = g ?? throw new InvalidOperationException($"Sequential '{Name}': child {i + 1} returned no input gradient");
            g = Run(i, () => _children[i].Backward(dy, gradients));
        }
        return g;
    }

    private T Run<T>(int index, Func<T> step)
    {
        try
        {
            return step();
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"{Name}[{index}] ({_children[index].GetType().Name} '{_children[index].Name}'): {e.Message}", e);
        }
    }

    /// <inheritdoc/>
    public override IEnumerable<Module> Children => _children;
}
