using Flora.Nn;
using Flora.Tensors;

namespace Flora.Training;

/// <summary>
/// Where a module computes a parameter gradient: into <see cref="Tensor"/>, adding to its contents
/// when <see cref="Accumulate"/> is set (GEMM beta = 1) or overwriting them (beta = 0).
/// </summary>
public readonly record struct GradientTarget(Tensor Tensor, bool Accumulate)
{
    /// <summary>The beta to pass to the producing matrix product.</summary>
    public float Beta => Accumulate ? 1f : 0f;
}

/// <summary>
/// Receives each parameter gradient the moment backward computes it. A module asks for a
/// <see cref="Target"/>, computes dW into it, then calls <see cref="OnGradient"/>. A sink may keep
/// the gradient (plain accumulation into the parameter's buffer), compress it into a small
/// accumulator (FLORA, Algorithm 1), or apply an update at once (LOMO); the last two never need a
/// full-size gradient buffer per parameter, only one shared scratch.
/// </summary>
public interface IGradientSink
{
    /// <summary>The buffer the module must compute the gradient of <paramref name="parameter"/> into.</summary>
    GradientTarget Target(Parameter parameter);

    /// <summary>The gradient of <paramref name="parameter"/> for this micro-batch is complete in <paramref name="gradient"/>.</summary>
    void OnGradient(Parameter parameter, Tensor gradient);

    /// <summary>Backward of one micro-batch is over; a sink whose accumulation cycle is complete updates the parameters.</summary>
    void EndMicroBatch();
}
