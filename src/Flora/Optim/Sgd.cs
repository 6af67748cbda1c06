using Flora.Backends;
using Flora.Nn;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Optim;

/// <summary>Plain stochastic gradient descent: W = W - lr G. No state.</summary>
public sealed class Sgd : Optimizer
{
    private readonly IBackend _backend;

    public Sgd(IBackend backend, float learningRate)
    {
        _backend = backend;
        LearningRate = Positive(learningRate, nameof(learningRate));
    }

    public float LearningRate { get; }

    public override void Update(Parameter parameter, Tensor gradient) =>
        _backend.Axpy(-LearningRate, gradient, parameter.Value);

    /// <summary>W = W - lr G is one product with alpha = -lr, beta = 1 into W.</summary>
    public override GradientTarget? FusedTarget(Parameter parameter) => GradientTarget.AddTo(parameter.Value, -LearningRate);
}
