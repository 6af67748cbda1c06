using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Training;

/// <summary>
/// Immediate update (LOMO, Lv et al. 2023): the optimizer updates each parameter the moment its
/// gradient is computed, in the shared scratch buffer, so no gradient outlives its layer. When the
/// optimizer can fold its whole update into the gradient's own product (plain SGD:
/// W = W - lr G, see <see cref="Optimizer.FusedTarget"/>), the gradient is never materialised at all.
/// Not compatible with accumulation across micro-batches or with a parameter used twice in one
/// forward pass (its first partial gradient would be applied alone).
/// </summary>
public sealed class ImmediateUpdateSink : IGradientSink
{
    private readonly TensorSlot _scratch;
    private readonly Optimizer _optimizer;

    public ImmediateUpdateSink(TensorSlot scratch, Optimizer optimizer)
    {
        _scratch = scratch;
        _optimizer = optimizer;
    }

    public GradientTarget Target(Parameter parameter) =>
        _optimizer.FusedTarget(parameter) ?? GradientTarget.Overwrite(_scratch.Get(parameter.Shape));

    public void OnGradient(Parameter parameter, Tensor gradient)
    {
        if (gradient != parameter.Value) _optimizer.Update(parameter, gradient); // else already applied by the product
    }

    public void EndMicroBatch() { }
}
