using Flora.Nn;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Optim;

/// <summary>
/// Updates one parameter at a time from its gradient, so an update can run inside backward
/// (immediate update, LOMO) or after it, at the end of an accumulation cycle.
/// </summary>
public abstract class Optimizer : IDisposable
{
    /// <summary>Applies one step to <paramref name="parameter"/> given its (possibly decompressed or averaged) gradient.</summary>
    public abstract void Update(Parameter parameter, Tensor gradient);

    /// <summary>
    /// When the whole update is W = W + c G for a constant c, the target that makes the gradient's own
    /// product apply it (<see cref="GradientTarget.AddTo"/>(W, c)); null otherwise (the default).
    /// </summary>
    public virtual GradientTarget? FusedTarget(Parameter parameter) => null;

    public virtual void Dispose() => GC.SuppressFinalize(this);

    /// <summary>Throws an <see cref="ArgumentException"/> naming the hyper-parameter unless it is positive and finite.</summary>
    protected static float Positive(float value, string name) =>
        value > 0 && float.IsFinite(value) ? value : throw new ArgumentException($"{name} must be positive and finite, got {value}", name);
}
