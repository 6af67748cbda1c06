using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// Where and how a module writes a parameter gradient G: Tensor = Scale G + (Accumulate ? Tensor : 0),
/// which the producing matrix product does in one pass (alpha = Scale, beta = 0 or 1).
/// Scale = 1 with a gradient buffer is plain accumulation; Scale = -lr with the weight itself is an
/// SGD step fused into backward (no gradient buffer, no separate update pass).
/// </summary>
/// <param name="Tensor">
/// Where G goes: a gradient buffer, the shared scratch, or the weight itself for an update fused into the product.
/// </param>
/// <param name="Scale">alpha, the factor of G: 1 for a gradient, -lr for a fused SGD step.</param>
/// <param name="Accumulate">
/// Whether G is added to what <paramref name="Tensor"/> holds (beta = 1) rather than replacing it (beta = 0).
/// </param>
public readonly record struct GradientTarget(Tensor Tensor, float Scale, bool Accumulate)
{
    /// <summary>The beta to pass to the producing matrix product.</summary>
    public float Beta => Accumulate ? 1f : 0f;

    /// <summary>Write G into <paramref name="tensor"/>, replacing its contents.</summary>
    public static GradientTarget Overwrite(Tensor tensor) => new(tensor, 1f, false);

    /// <summary>Add <paramref name="scale"/> G to <paramref name="tensor"/>.</summary>
    public static GradientTarget AddTo(Tensor tensor, float scale = 1f) => new(tensor, scale, true);
}

/// <summary>
/// Receives each parameter gradient the moment backward computes it. A module asks for a
/// <see cref="Target"/>, computes dW into it as the target says, then calls <see cref="OnGradient"/>. A sink may keep
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
