using Flora.Backends;
using Flora.Nn;
using Flora.Tensors;

namespace Flora.Training;

/// <summary>
/// The gradient pipeline: routes each parameter's gradient, as backward produces it, to the sink
/// chosen for that parameter (a default for all, overrides per parameter), and owns the one shared
/// scratch buffer that sinks without per-parameter gradient buffers compute into.
/// </summary>
public sealed class GradientPipeline : IGradientSink, IDisposable
{
    private readonly Dictionary<Parameter, IGradientSink> _routes = new();
    private readonly List<IGradientSink> _sinks = new();
    private IGradientSink? _default;

    public GradientPipeline(IBackend backend)
    {
        Scratch = new TensorSlot(backend, MemoryTag.Scratch);
    }

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

    public GradientTarget Target(Parameter parameter) => SinkFor(parameter).Target(parameter);

    public void OnGradient(Parameter parameter, Tensor gradient) => SinkFor(parameter).OnGradient(parameter, gradient);

    public void EndMicroBatch()
    {
        foreach (var sink in _sinks) sink.EndMicroBatch();
    }

    private IGradientSink SinkFor(Parameter parameter) =>
        _routes.TryGetValue(parameter, out var sink) ? sink
        : _default ?? throw new InvalidOperationException($"no gradient sink for '{parameter.Name}': call UseByDefault or Use first");

    private void Register(IGradientSink sink)
    {
        if (!_sinks.Contains(sink)) _sinks.Add(sink);
    }

    public void Dispose()
    {
        foreach (var sink in _sinks) (sink as IDisposable)?.Dispose();
        Scratch.Dispose();
    }
}
