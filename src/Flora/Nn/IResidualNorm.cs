using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// A norm at the head of a pre-norm block's branch (x + branch(norm(x))), whose backward can fold in the skip connection:
/// dx = dSkip + norm'(dBranch) in the pass that computes norm' instead of an addition of its own after it.
/// </summary>
public interface IResidualNorm
{
    /// <summary>
    /// Backward of the norm for the branch's gradient <paramref name="gradOutput"/>, plus <paramref name="residual"/> (the
    /// gradient that reaches the block's input through the skip connection), written into <paramref name="destination"/>
    /// (of x's shape, not <paramref name="residual"/> itself). Parameter gradients go to <paramref name="gradients"/> as
    /// in <see cref="Module.Backward"/>.
    /// </summary>
    void BackwardWithResidual(Tensor gradOutput, IGradientSink gradients, Tensor residual, Tensor destination);
}
