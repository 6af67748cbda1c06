using Flora.Backends;
using Flora.Nn;
using Flora.Tensors;

namespace Flora.Optim;

/// <summary>
/// Immediate update (LOMO, Lv et al. 2023): the optimizer updates each parameter the moment its
/// gradient is computed, in the shared scratch buffer, so no gradient outlives its layer. When the
/// optimizer can fold its whole update into the gradient's own product (plain SGD:
/// W = W - lr G, see <see cref="Optimizer.FusedTarget"/>), the gradient is never materialised at all.
/// A parameter that receives several gradients per step (<see cref="Parameter.UsesPerStep"/>, a tied
/// embedding) collects them in a gradient buffer and is updated at the last one.
/// </summary>
public sealed class ImmediateUpdateSink : IGradientSink, IDataParallelSink
{
    private readonly IBackend _backend;
    private readonly TensorSlot _scratch;
    private readonly Optimizer _optimizer;
    private readonly Dictionary<Parameter, int> _arrivals = new();

    /// <summary>
    /// Applies <paramref name="optimizer"/> to each gradient as it arrives; gradients are computed into
    /// <paramref name="scratch"/>, one parameter at a time, and the buffers of tied parameters come from
    /// <paramref name="backend"/>.
    /// </summary>
    public ImmediateUpdateSink(IBackend backend, TensorSlot scratch, Optimizer optimizer)
    {
        _backend = backend;
        _scratch = scratch;
        _optimizer = optimizer;
    }

    /// <inheritdoc/>
    public GradientTarget Target(Parameter parameter)
    {
        if (parameter.UsesPerStep > 1)
        {
            parameter.Grad ??= _backend.Allocate(parameter.Shape, MemoryTag.Gradients);
            return _arrivals.GetValueOrDefault(parameter) > 0 ? GradientTarget.AddTo(parameter.Grad) : GradientTarget.Overwrite(parameter.Grad);
        }
        // Data parallel needs the gradient itself (to average it) before the update, and a bf16 weight must be rounded
        // after it: no update fused into the product then.
        bool fusable = Reducer is null && parameter.Value.DType == DType.Float32;
        return (fusable ? _optimizer.FusedTarget(parameter) : null) ?? GradientTarget.Overwrite(_scratch.Get(parameter.Shape));
    }

    /// <inheritdoc/>
    public void OnGradient(Parameter parameter, Tensor gradient)
    {
        if (parameter.UsesPerStep > 1)
        {
            int arrived = _arrivals.GetValueOrDefault(parameter) + 1;
            if (arrived < parameter.UsesPerStep) { _arrivals[parameter] = arrived; return; }
            _arrivals[parameter] = 0;
        }
        if (gradient == parameter.Value) return;                                 // already applied by the product
        Reducer?.Reduce(parameter, gradient, GradientForm.Full);                 // data parallel: the mean over ranks, inside backward
        _optimizer.Update(parameter, gradient);
    }

    /// <summary>Data parallel: averages each gradient across ranks before its update (null in a single process).</summary>
    public IGradientReducer? Reducer { get; set; }

    /// <summary>Does nothing: every update has happened inside backward.</summary>
    public void EndMicroBatch() { }
}
