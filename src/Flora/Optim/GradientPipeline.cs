using Flora.Backends;
using Flora.Checkpoints;
using Flora.Nn;
using Flora.Tensors;

namespace Flora.Optim;

/// <summary>
/// The gradient pipeline: routes each parameter's gradient, as backward produces it, to the sink
/// chosen for that parameter (a default for all, overrides per parameter), and owns the one shared
/// scratch buffer that sinks without per-parameter gradient buffers compute into.
/// </summary>
public sealed class GradientPipeline : IGradientSink, IDisposable
{
    private readonly IBackend _backend;
    private readonly Dictionary<Parameter, IGradientSink> _routes = new();
    private readonly List<IGradientSink> _sinks = new();
    private IGradientSink? _default;

    /// <summary>A pipeline with no sink yet, whose shared scratch <paramref name="backend"/> allocates.</summary>
    public GradientPipeline(IBackend backend)
    {
        _backend = backend;
        Scratch = new TensorSlot(backend, MemoryTag.Scratch);
    }

    /// <summary>When set, every gradient is checked for NaN or infinity as it arrives (one reduction each).</summary>
    public bool CheckFinite { get; set; }

    /// <summary>The training step, for error messages.</summary>
    public long Step { get; set; }

    /// <summary>The sinks, in the order they were first used.</summary>
    public IReadOnlyList<IGradientSink> Sinks => _sinks;

    /// <summary>The shared full-size scratch: holds one parameter's gradient at a time.</summary>
    public TensorSlot Scratch { get; }

    /// <summary>Sends every parameter without its own route to <paramref name="sink"/>.</summary>
    public GradientPipeline UseByDefault(IGradientSink sink)
    {
        _default = sink;
        Register(sink);
        return this;
    }

    /// <summary>Sends the gradients of <paramref name="parameter"/> to <paramref name="sink"/>.</summary>
    public GradientPipeline Use(Parameter parameter, IGradientSink sink)
    {
        _routes[parameter] = sink;
        Register(sink);
        return this;
    }

    /// <inheritdoc/>
    public GradientTarget Target(Parameter parameter) => SinkOf(parameter).Target(parameter);

    /// <inheritdoc/>
    /// <exception cref="NonFiniteException">
    /// <see cref="CheckFinite"/> is on and the gradient (or, for an update fused into the product, the weight) holds a NaN
    /// or an infinity.
    /// </exception>
    public void OnGradient(Parameter parameter, Tensor gradient)
    {
        if (CheckFinite && !double.IsFinite(_backend.SumOfSquares(gradient)))
            throw new NonFiniteException(Step, gradient == parameter.Value
                ? $"parameter '{parameter.Name}' became NaN or infinite in its update"
                : $"the gradient of '{parameter.Name}' is NaN or infinite");
        SinkOf(parameter).OnGradient(parameter, gradient);
    }

    /// <summary>
    /// Data parallel: every sink averages its gradients across ranks through <paramref name="reducer"/> before it
    /// updates (call after the routes are set). Throws for a sink that cannot.
    /// </summary>
    public void UseReducer(IGradientReducer reducer)
    {
        foreach (var sink in _sinks)
        {
            if (sink is not IDataParallelSink parallel) throw new ArgumentException($"{sink.GetType().Name} cannot average gradients across ranks");
            parallel.Reducer = reducer;
        }
    }

    /// <summary>Saves every stateful sink's state under "{prefix}{index}/".</summary>
    public void SaveState(SafeTensorsWriter writer, string prefix)
    {
        for (int i = 0; i < _sinks.Count; i++) (_sinks[i] as IStatefulSink)?.SaveState(writer, $"{prefix}{i}/");
    }

    /// <summary>
    /// Restores what <see cref="SaveState"/> wrote under <paramref name="prefix"/> into a pipeline built with the same
    /// options.
    /// </summary>
    /// <exception cref="InvalidDataException">The saved state does not fit these sinks.</exception>
    public void LoadState(SafeTensorsFile file, string prefix)
    {
        for (int i = 0; i < _sinks.Count; i++) (_sinks[i] as IStatefulSink)?.LoadState(file, $"{prefix}{i}/");
    }

    /// <summary>Backward of one micro-batch is over: sinks whose accumulation cycle is complete apply the optimizer.</summary>
    public void EndMicroBatch()
    {
        foreach (var sink in _sinks) sink.EndMicroBatch();
    }

    /// <summary>Drops whatever the sinks accumulated since their last update; the next gradient starts a new cycle.</summary>
    public void Discard()
    {
        foreach (var sink in _sinks) (sink as IStatefulSink)?.Discard();
    }

    /// <summary>The sink the gradients of <paramref name="parameter"/> go to.</summary>
    public IGradientSink SinkOf(Parameter parameter) =>
        _routes.TryGetValue(parameter, out var sink) ? sink
        : _default ?? throw new InvalidOperationException($"no gradient sink for '{parameter.Name}': call UseByDefault or Use first");

    private void Register(IGradientSink sink)
    {
        if (!_sinks.Contains(sink)) _sinks.Add(sink);
    }

    /// <summary>Frees every sink that holds memory (compressed accumulators among them) and the shared scratch.</summary>
    public void Dispose()
    {
        foreach (var sink in _sinks) (sink as IDisposable)?.Dispose();
        Scratch.Dispose();
    }
}

/// <summary>Training produced a NaN or an infinity: the message names the step and where it appeared.</summary>
public sealed class NonFiniteException : FloraException
{
    /// <summary>
    /// Training stopped at <paramref name="step"/>: <paramref name="what"/> (e.g. "the gradient of 'wte.weight' is NaN
    /// or infinite").
    /// </summary>
    public NonFiniteException(long step, string what)
        : base($"step {step}: {what}; training stopped (lower the learning rate, or enable gradient clipping); the last checkpoint is kept") => Step = step;

    /// <summary>The training step at which the NaN or infinity appeared.</summary>
    public long Step { get; }
}
