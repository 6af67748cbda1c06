using System.Text.Json;
using Flora.Backends;
using Flora.Checkpoints;
using Flora.Nn;
using Flora.Tensors;

namespace Flora.Optim;

/// <summary>
/// Plain gradient accumulation: each parameter keeps a full-size gradient buffer (O(nm) memory),
/// products accumulate straight into it, and after <see cref="AccumulationSteps"/> micro-batches the
/// optimizer is applied to the mean. The first gradient of a cycle overwrites the buffer (beta = 0),
/// so no zeroing pass is needed. With <c>immediate</c> (LOMO) each parameter is updated inside the
/// last backward pass of the cycle, as soon as its gradient is complete (for a parameter used several
/// times per step, <see cref="Parameter.UsesPerStep"/>, at its last gradient).
/// </summary>
public sealed class AccumulateSink : IGradientSink, IStatefulSink, IDataParallelSink
{
    private readonly IBackend _backend;
    private readonly Optimizer _optimizer;
    private readonly bool _immediate;
    private readonly List<Parameter> _pending = new();
    private readonly HashSet<Parameter> _seen = new();
    private readonly Dictionary<Parameter, int> _arrivals = new();
    private int _microBatches;

    /// <summary>
    /// Accumulates into each parameter's <see cref="Parameter.Grad"/> (allocated on <paramref name="backend"/>) and applies
    /// <paramref name="optimizer"/> to the mean every <paramref name="accumulationSteps"/> micro-batches: after the last
    /// backward pass of a cycle, or inside it with <paramref name="immediate"/> (LOMO).
    /// </summary>
    /// <exception cref="ArgumentException">The number of accumulation steps is not positive.</exception>
    public AccumulateSink(IBackend backend, Optimizer optimizer, int accumulationSteps = 1, bool immediate = false)
    {
        if (accumulationSteps <= 0) throw new ArgumentException($"accumulation steps must be positive, got {accumulationSteps}", nameof(accumulationSteps));
        _backend = backend;
        _optimizer = optimizer;
        _immediate = immediate;
        AccumulationSteps = accumulationSteps;
    }

    /// <summary>tau: micro-batches per update.</summary>
    public int AccumulationSteps { get; }

    /// <inheritdoc/>
    public GradientTarget Target(Parameter parameter)
    {
        parameter.Grad ??= _backend.Allocate(parameter.Shape, MemoryTag.Gradients);
        return _seen.Contains(parameter) ? GradientTarget.AddTo(parameter.Grad) : GradientTarget.Overwrite(parameter.Grad);
    }

    /// <inheritdoc/>
    public void OnGradient(Parameter parameter, Tensor gradient)
    {
        if (_seen.Add(parameter)) _pending.Add(parameter);
        if ((_immediate || Reducer is not null) && _microBatches == AccumulationSteps - 1)
        {
            int arrived = _arrivals.GetValueOrDefault(parameter) + 1;
            if (arrived < parameter.UsesPerStep) { _arrivals[parameter] = arrived; return; }
            _arrivals[parameter] = 0;
            if (!_immediate)
            {
                // Data parallel: the gradient of the cycle is final; its all-reduce overlaps the rest of backward.
                if (_reduced.Add(parameter)) Reducer!.Ready(parameter, parameter.Grad!, GradientForm.Full);
                return;
            }
            Reducer?.Reduce(parameter, parameter.Grad!, GradientForm.Full);
            Apply(parameter);
            _pending.Remove(parameter);
        }
    }

    /// <summary>Data parallel: averages every gradient across ranks before it is used (null in a single process).</summary>
    public IGradientReducer? Reducer { get; set; }

    private readonly HashSet<Parameter> _reduced = new();

    /// <inheritdoc/>
    public void EndMicroBatch()
    {
        if (++_microBatches < AccumulationSteps) return;
        if (Reducer is not null)
        {
            foreach (var p in _pending) if (_reduced.Add(p)) Reducer.Ready(p, p.Grad!, GradientForm.Full);
            Reducer.Complete();
            _reduced.Clear();
        }
        if (!_immediate && _pending.Count > 0 && _clipNorm is not null) Clip();
        foreach (var p in _pending) Apply(p);
        _pending.Clear();
        _seen.Clear();
        _microBatches = 0;
    }

    /// <summary>
    /// When set, the mean gradients of a cycle are scaled so that their global L2 norm is at most this,
    /// before any update (torch.nn.utils.clip_grad_norm_). Needs every gradient of the cycle at once,
    /// so it is refused with immediate updates.
    /// </summary>
    public float? ClipNorm
    {
        get => _clipNorm;
        set
        {
            if (value is float c && !(c > 0)) throw new ArgumentException($"gradient clipping norm must be positive, got {c}");
            if (value is not null && _immediate) throw new ArgumentException("gradient clipping needs every gradient before the first update; it is not available with LOMO");
            _clipNorm = value;
        }
    }

    private float? _clipNorm;

    /// <summary>Global L2 norm of the last cycle's mean gradients, before clipping (NaN before the first cycle).</summary>
    public double LastGradientNorm { get; private set; } = double.NaN;

    private void Clip()
    {
        double sumSquares = _pending.Sum(p => _backend.SumOfSquares(p.Grad!)) / ((double)AccumulationSteps * AccumulationSteps);
        LastGradientNorm = Math.Sqrt(sumSquares);
        if (_clipNorm is float max && LastGradientNorm > max)
            foreach (var p in _pending) _backend.Scale(p.Grad!, (float)(max / LastGradientNorm));
    }

    /// <inheritdoc/>
    public void SaveState(SafeTensorsWriter writer, string prefix)
    {
        writer.AddMetadata(prefix + "micro_batches", _microBatches.ToString(System.Globalization.CultureInfo.InvariantCulture));
        writer.AddMetadata(prefix + "pending", JsonSerializer.Serialize(_pending.Select(p => p.Name)));
        if (_microBatches > 0) foreach (var p in _pending) writer.Add(prefix + p.Name, p.Grad!);
    }

    /// <inheritdoc/>
    public void LoadState(SafeTensorsFile file, string prefix)
    {
        _microBatches = int.Parse(Meta(file, prefix + "micro_batches"), System.Globalization.CultureInfo.InvariantCulture);
        if (_microBatches < 0 || _microBatches >= AccumulationSteps)
            throw new InvalidDataException($"{file.Path}: {_microBatches} micro-batches accumulated, but a cycle has {AccumulationSteps}");
        _pending.Clear();
        _seen.Clear();
        var names = JsonSerializer.Deserialize<string[]>(Meta(file, prefix + "pending")) ?? [];
        if (_microBatches == 0) return;
        var byName = _parametersByName ?? throw new InvalidOperationException("AccumulateSink: call Register with the trainable parameters before loading a mid-cycle state");
        foreach (string name in names)
        {
            if (!byName.TryGetValue(name, out var p)) throw new InvalidDataException($"{file.Path}: accumulated gradient of unknown parameter '{name}'");
            p.Grad ??= _backend.Allocate(p.Shape, MemoryTag.Gradients);
            file.ReadInto(prefix + name, p.Grad);
            _seen.Add(p);
            _pending.Add(p);
        }
    }

    /// <inheritdoc/>
    public void Discard()
    {
        _pending.Clear();
        _seen.Clear();
        _arrivals.Clear();
        _microBatches = 0;
    }

    private Dictionary<string, Parameter>? _parametersByName;

    /// <summary>The parameters this sink may see, so that a mid-cycle state can be matched by name on load.</summary>
    public void Register(IEnumerable<Parameter> parameters) => _parametersByName = parameters.ToDictionary(p => p.Name);

    internal static string Meta(SafeTensorsFile file, string key) =>
        file.Metadata.TryGetValue(key, out var value) ? value : throw new InvalidDataException($"{file.Path}: metadata '{key}' is missing");

    private void Apply(Parameter p)
    {
        Tensor g = p.Grad!;
        if (AccumulationSteps > 1) _backend.Scale(g, 1f / AccumulationSteps);   // sum -> mean
        _optimizer.Update(p, g);
    }
}
