using Flora.Backends;
using Flora.Nn;
using Flora.Tensors;

namespace Flora.Optim;

/// <summary>
/// AdamW (Loshchilov and Hutter 2019) with the semantics of torch.optim.AdamW:
/// <code>
/// v = beta2 v + (1 - beta2) g^2
/// m = beta1 m + (1 - beta1) g          (naive, or FLORA-compressed: m = decompress(M), Algorithm 2)
/// W = W (1 - lr weightDecay) - lr (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
/// </code>
/// With <see cref="MomentumKind.Compressed"/> momentum this is FLORA with an Adam-style second moment,
/// which the official code does not offer. The gradient passed to Update is consumed.
/// </summary>
public class AdamW : Optimizer
{
    private readonly MomentumScratch _scratch;

    /// <summary>AdamW for <paramref name="parameters"/>, on the backend that holds them.</summary>
    public AdamW(IEnumerable<Parameter> parameters, float learningRate = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f,
        float eps = 1e-8f, float weightDecay = 0.01f)
        : this(BackendOf(parameters), parameters, learningRate, beta1, beta2, eps, weightDecay) { }

    /// <summary>AdamW for <paramref name="parameters"/> with one group; <paramref name="momentum"/> naive (the default) or FLORA-compressed.</summary>
    public AdamW(IBackend backend, IEnumerable<Parameter> parameters, float learningRate = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f,
        float eps = 1e-8f, float weightDecay = 0.01f, MomentumOptions? momentum = null)
        : this(backend, OneGroup(parameters), learningRate, beta1, beta2, eps, weightDecay, momentum) { }

    /// <summary>
    /// AdamW for <paramref name="groups"/>, whose state <paramref name="backend"/> allocates; the first moment is naive
    /// with <paramref name="beta1"/> unless <paramref name="momentum"/> says otherwise (FLORA-compressed, say).
    /// </summary>
    /// <exception cref="ArgumentException">
    /// A hyper-parameter is out of range, the momentum is none or invalid, or forced compression meets a matrix whose
    /// compressed dimension is below the rank.
    /// </exception>
    public AdamW(IBackend backend, IEnumerable<ParameterGroup> groups, float learningRate = 1e-3f, float beta1 = 0.9f, float beta2 = 0.999f,
        float eps = 1e-8f, float weightDecay = 0.01f, MomentumOptions? momentum = null)
        : base(backend, groups, Positive(learningRate, "learning rate"), weightDecay)
    {
        Beta2 = Beta(beta2, nameof(beta2));
        Eps = NonNegative(eps, nameof(eps));
        Momentum = momentum ?? MomentumOptions.Naive(Beta(beta1, nameof(beta1)));
        if (Momentum.Kind == MomentumKind.None) throw new ArgumentException("AdamW needs a first moment (naive or compressed)");
        Momentum.Validate();
        _scratch = new MomentumScratch(backend, Momentum.Rank);
        if (Momentum is { Kind: MomentumKind.Compressed, ForceCompression: true })
            foreach (var p in Groups.SelectMany(g => g.Parameters))
                FloraRules.CheckForced(p.Name, p.Shape, Momentum.Rank);
    }

    /// <summary>beta1: the decay of the first moment (the momentum's beta).</summary>
    public float Beta1 => Momentum.Beta;
    /// <summary>beta2: the decay of the second moment, in [0, 1).</summary>
    public float Beta2 { get; }
    /// <summary>eps, added to sqrt(v / (1 - beta2^t)) in the denominator.</summary>
    public float Eps { get; }
    /// <summary>How the first moment is kept: naive (full size) or FLORA-compressed.</summary>
    public MomentumOptions Momentum { get; }

    /// <inheritdoc/>
    public override string Configuration => $"beta2={Beta2} momentum=({Momentum})";

    /// <inheritdoc/>
    public override long Resamplings => States.OfType<State>().Select(s => (s.M as CompressedMomentum)?.Resamplings ?? 0).DefaultIfEmpty(0).Max();

    private sealed class State(IBackend backend, Parameter parameter) : ParameterState(backend, parameter)
    {
        public Tensor V = null!;
        public Momentum M = null!;
    }

    /// <inheritdoc/>
    protected override ParameterState CreateState(Parameter parameter, ParameterGroup group)
    {
        var state = new State(Backend, parameter);
        state.M = Optim.Momentum.Create(Backend, Momentum, parameter, state, _scratch)!;
        state.V = state.Add("exp_avg_sq", parameter.Shape, "full size");
        return state;
    }

    /// <inheritdoc/>
    protected override void Apply(Parameter parameter, Tensor weight, Tensor gradient)
    {
        var state = (State)StateOf(parameter);
        var group = GroupOf(parameter);
        long t = state.Step++;
        long step = t + 1;
        float bc1 = 1f - MathF.Pow(Beta1, step), bc2 = 1f - MathF.Pow(Beta2, step);
        if (state.M is NaiveMomentum naive)
        {
            // The three passes below in one (the GPU fuses them; the same arithmetic)
            Backend.AdamStep(weight, gradient, naive.Moment, state.V, naive.Beta, Beta2, LearningRateOf(group), WeightDecayOf(group), Eps, bc1, bc2);
            return;
        }
        Backend.SquaredMovingAverage(gradient, state.V, Beta2, 0f);                 // v = b2 v + (1 - b2) g^2
        Tensor m = state.M.Apply(gradient, t);                                      // m = b1 m + (1 - b1) g
        Backend.AdamApply(weight, m, state.V, LearningRateOf(group), WeightDecayOf(group), Eps, bc1, bc2);
    }

    /// <summary>Frees what <see cref="Optimizer.Dispose"/> frees, and the scratch of compressed momentum.</summary>
    public override void Dispose()
    {
        base.Dispose();
        _scratch.Dispose();
    }
}
