using Flora.Backends;
using Flora.Nn;
using Flora.Tensors;

namespace Flora.Optim;

/// <summary>One tensor of a parameter's optimizer state, with a note on what it holds (e.g. "compressed r x m").</summary>
public sealed record StateTensor(string Name, Tensor Tensor, string Description)
{
    public Shape Shape => Tensor.Shape;
    public long Bytes => Tensor.Bytes;
}

/// <summary>
/// The optimizer state of one parameter: the number of updates so far and the tensors it keeps,
/// each tagged <see cref="MemoryTag.OptimizerState"/> in the ledger. Optimizers add their own fields
/// through subclasses; the tensors listed here are what a checkpoint saves.
/// </summary>
public class ParameterState : IDisposable
{
    private readonly List<StateTensor> _tensors = new();
    private readonly IBackend _backend;

    /// <summary>An empty state of <paramref name="parameter"/>, whose tensors <paramref name="backend"/> allocates.</summary>
    public ParameterState(IBackend backend, Parameter parameter)
    {
        _backend = backend;
        Parameter = parameter;
    }

    public Parameter Parameter { get; }

    /// <summary>Updates applied so far.</summary>
    public long Step { get; set; }

    public IReadOnlyList<StateTensor> Tensors => _tensors;

    public long Bytes => _tensors.Sum(t => t.Bytes);

    /// <summary>Allocates a zero tensor of the state and lists it.</summary>
    public Tensor Add(string name, Shape shape, string description)
    {
        var tensor = _backend.Allocate(shape, MemoryTag.OptimizerState);
        _tensors.Add(new StateTensor(name, tensor, description));
        return tensor;
    }

    public override string ToString() =>
        $"{Parameter.Name} {Parameter.Shape}: step {Step}, " +
        (_tensors.Count == 0 ? "no state" : string.Join(", ", _tensors.Select(t => $"{t.Name} {t.Shape} ({t.Description})"))) + $", {Bytes:N0} bytes";

    public void Dispose()
    {
        foreach (var t in _tensors) t.Tensor.Dispose();
        _tensors.Clear();
        GC.SuppressFinalize(this);
    }
}
