using Flora.Backends;
using Flora.Nn;
using Flora.Tensors;

namespace Flora.Optim;

/// <summary>One tensor of a parameter's optimizer state, with a note on what it holds (e.g. "compressed r x m").</summary>
/// <param name="Name">The state's name for it, e.g. "exp_avg": the last part of its checkpoint name "{parameter}/{name}".</param>
/// <param name="Tensor">The tensor, owned by the <see cref="ParameterState"/> that lists it.</param>
/// <param name="Description">What it holds and its size class, e.g. "compressed n x r" or "full size".</param>
public sealed record StateTensor(string Name, Tensor Tensor, string Description)
{
    /// <summary>The shape of <see cref="Tensor"/>.</summary>
    public Shape Shape => Tensor.Shape;
    /// <summary>Bytes of <see cref="Tensor"/>.</summary>
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

    /// <summary>The parameter this state belongs to.</summary>
    public Parameter Parameter { get; }

    /// <summary>Updates applied so far.</summary>
    public long Step { get; set; }

    /// <summary>The state's tensors in the order <see cref="Add"/> made them: what a checkpoint saves.</summary>
    public IReadOnlyList<StateTensor> Tensors => _tensors;

    /// <summary>Bytes of all the state's tensors.</summary>
    public long Bytes => _tensors.Sum(t => t.Bytes);

    /// <summary>Allocates a zero tensor of the state and lists it.</summary>
    public Tensor Add(string name, Shape shape, string description)
    {
        var tensor = _backend.Allocate(shape, MemoryTag.OptimizerState);
        _tensors.Add(new StateTensor(name, tensor, description));
        return tensor;
    }

    /// <summary>
    /// One line: the parameter and its shape, the step, each tensor with its shape and description, the total bytes.
    /// </summary>
    public override string ToString() =>
        $"{Parameter.Name} {Parameter.Shape}: step {Step}, " +
        (_tensors.Count == 0 ? "no state" : string.Join(", ", _tensors.Select(t => $"{t.Name} {t.Shape} ({t.Description})"))) + $", {Bytes:N0} bytes";

    /// <summary>Frees every tensor of the state.</summary>
    public void Dispose()
    {
        foreach (var t in _tensors) t.Tensor.Dispose();
        _tensors.Clear();
        GC.SuppressFinalize(this);
    }
}
