using Flora.Nn;
using Flora.Tensors;

namespace Flora.Optim;

/// <summary>What a gradient sink hands to a <see cref="IGradientReducer"/>.</summary>
public enum GradientForm
{
    /// <summary>The full (n, m) gradient; with wire compression an eligible matrix is compressed for the all-reduce.</summary>
    Full,
    /// <summary>A FLORA-compressed accumulator (n, r) or (r, m) under a projection every rank shares: reduced as it is.</summary>
    Compressed,
}

/// <summary>
/// Averages gradients across data-parallel ranks for the gradient sinks. A sink calls <see cref="Ready"/> the
/// moment a parameter's gradient for the coming update is final (during the last backward pass of a cycle),
/// and <see cref="Complete"/> before its first update; a sink that keeps no gradient beyond the current one
/// (LOMO) calls <see cref="Reduce"/>, which does both at once.
/// </summary>
public interface IGradientReducer
{
    /// <summary>
    /// <paramref name="gradient"/> of <paramref name="parameter"/> is final; the reducer may start averaging it. The
    /// tensor must stay untouched until <see cref="Complete"/>, which leaves the mean over ranks in it.
    /// </summary>
    void Ready(Parameter parameter, Tensor gradient, GradientForm form);

    /// <summary>Every tensor made ready since the last call holds its mean over ranks for work issued after this returns.</summary>
    void Complete();

    /// <summary><see cref="Ready"/> and <see cref="Complete"/> for one gradient that lives in a buffer about to be reused.</summary>
    void Reduce(Parameter parameter, Tensor gradient, GradientForm form);
}
