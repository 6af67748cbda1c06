using Flora.Backends;
using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Training;

/// <summary>
/// Plain gradient accumulation: each parameter keeps a full-size gradient buffer (O(nm) memory),
/// products accumulate straight into it, and after <see cref="AccumulationSteps"/> micro-batches the
/// optimizer is applied to the mean. The first gradient of a cycle overwrites the buffer (beta = 0),
/// so no zeroing pass is needed. With <c>immediate</c> (LOMO) each parameter is updated inside the
/// last backward pass of the cycle, as soon as its gradient is complete (for a parameter used several
/// times per step, <see cref="Parameter.UsesPerStep"/>, at its last gradient).
/// </summary>
public sealed class AccumulateSink : IGradientSink
{
    private readonly IBackend _backend;
    private readonly Optimizer _optimizer;
    private readonly bool _immediate;
    private readonly List<Parameter> _pending = new();
    private readonly HashSet<Parameter> _seen = new();
    private readonly Dictionary<Parameter, int> _arrivals = new();
    private int _microBatches;

    public AccumulateSink(IBackend backend, Optimizer optimizer, int accumulationSteps = 1, bool immediate = false)
    {
        if (accumulationSteps <= 0) throw new ArgumentException($"accumulation steps must be positive, got {accumulationSteps}", nameof(accumulationSteps));
        _backend = backend;
        _optimizer = optimizer;
        _immediate = immediate;
        AccumulationSteps = accumulationSteps;
    }

    public int AccumulationSteps { get; }

    public GradientTarget Target(Parameter parameter)
    {
        parameter.Grad ??= _backend.Allocate(parameter.Shape, MemoryTag.Gradients);
        return _seen.Contains(parameter) ? GradientTarget.AddTo(parameter.Grad) : GradientTarget.Overwrite(parameter.Grad);
    }

    public void OnGradient(Parameter parameter, Tensor gradient)
    {
        if (_seen.Add(parameter)) _pending.Add(parameter);
        if (_immediate && _microBatches == AccumulationSteps - 1)
        {
            int arrived = _arrivals.GetValueOrDefault(parameter) + 1;
            if (arrived < parameter.UsesPerStep) { _arrivals[parameter] = arrived; return; }
            _arrivals[parameter] = 0;
            Apply(parameter);
            _pending.Remove(parameter);
        }
    }

    public void EndMicroBatch()
    {
        if (++_microBatches < AccumulationSteps) return;
        foreach (var p in _pending) Apply(p);
        _pending.Clear();
        _seen.Clear();
        _microBatches = 0;
    }

    private void Apply(Parameter p)
    {
        Tensor g = p.Grad!;
        if (AccumulationSteps > 1) _backend.Scale(g, 1f / AccumulationSteps);   // sum -> mean
        _optimizer.Update(p, g);
    }
}
