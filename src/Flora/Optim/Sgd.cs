using Flora.Backends;
using Flora.Nn;
using Flora.Tensors;

namespace Flora.Optim;

/// <summary>
/// Stochastic gradient descent with the semantics of torch.optim.SGD (dampening 0):
/// <code>
/// g = g + weightDecay W                                   (coupled L2, if set)
/// b = g on the first step, else momentum b + g            (if momentum &gt; 0)
/// g = g + momentum b (Nesterov) or g = b
/// W = W - lr g
/// </code>
/// Without momentum and weight decay the step is fused into the gradient's own product.
/// </summary>
public sealed class Sgd : Optimizer
{
    /// <summary>SGD for <paramref name="parameters"/>, on the backend that holds them.</summary>
    public Sgd(IEnumerable<Parameter> parameters, float learningRate, float momentum = 0, bool nesterov = false, float weightDecay = 0)
        : this(BackendOf(parameters), OneGroup(parameters), learningRate, momentum, nesterov, weightDecay) { }

    /// <summary>SGD for <paramref name="parameters"/> (one group), whose state <paramref name="backend"/> allocates.</summary>
    public Sgd(IBackend backend, IEnumerable<Parameter> parameters, float learningRate, float momentum = 0, bool nesterov = false, float weightDecay = 0)
        : this(backend, OneGroup(parameters), learningRate, momentum, nesterov, weightDecay) { }

    /// <summary>SGD for <paramref name="groups"/>, whose state <paramref name="backend"/> allocates.</summary>
    /// <exception cref="ArgumentException">
    /// The learning rate is not positive, the momentum outside [0, 1), or Nesterov is asked for without momentum.
    /// </exception>
    public Sgd(IBackend backend, IEnumerable<ParameterGroup> groups, float learningRate, float momentum = 0, bool nesterov = false, float weightDecay = 0)
        : base(backend, groups, Positive(learningRate, "learning rate"), weightDecay)
    {
        Momentum = Beta(momentum, nameof(momentum));
        if (nesterov && momentum == 0) throw new ArgumentException("Nesterov momentum needs momentum > 0", nameof(nesterov));
        Nesterov = nesterov;
    }

    /// <summary>mu: the momentum factor in [0, 1); 0 is plain SGD, with no state.</summary>
    public float Momentum { get; }
    /// <summary>Whether the step uses g + mu b (Nesterov) rather than b.</summary>
    public bool Nesterov { get; }

    /// <inheritdoc/>
    public override string Configuration => $"momentum={Momentum} nesterov={Nesterov}";

    /// <inheritdoc/>
    protected override ParameterState CreateState(Parameter parameter, ParameterGroup group)
    {
        var state = new ParameterState(Backend, parameter);
        if (Momentum > 0) state.Add("momentum_buffer", parameter.Shape, "full size");
        return state;
    }

    /// <inheritdoc/>
    protected override void Apply(Parameter parameter, Tensor weight, Tensor gradient)
    {
        var group = GroupOf(parameter);
        var state = StateOf(parameter);
        float lr = LearningRateOf(group), wd = WeightDecayOf(group);
        if (wd != 0) Backend.Axpy(wd, weight, gradient);                           // g += wd W
        if (Momentum > 0)
        {
            Tensor buffer = state.Tensors[0].Tensor;
            if (state.Step == 0) Backend.Copy(gradient, buffer);                   // b = g
            else Backend.Axpby(1f, gradient, Momentum, buffer);                    // b = momentum b + g
            if (Nesterov) Backend.Axpy(Momentum, buffer, gradient);                // g = g + momentum b
            else gradient = buffer;
        }
        Backend.Axpy(-lr, gradient, weight);                                       // W -= lr g
        state.Step++;
    }

    /// <summary>W = W - lr G is one product with alpha = -lr, beta = 1 into W.</summary>
    public override GradientTarget? FusedTarget(Parameter parameter)
    {
        if (Momentum > 0 || WeightDecayOf(GroupOf(parameter)) != 0 || parameter.Value.DType != DType.Float32) return null;
        return GradientTarget.AddTo(parameter.Value, -LearningRateOf(GroupOf(parameter)));
    }
}
