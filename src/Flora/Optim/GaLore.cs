using Flora.Backends;
using Flora.Nn;
using Flora.Tensors;

namespace Flora.Optim;

/// <summary>
/// GaLore (Zhao et al. 2024; the paper's Appendix C.2, Table 6): AdamW whose moments live in a rank-r subspace
/// of each matrix's gradient, taken from the gradient's SVD and refreshed every <see cref="UpdateGap"/> steps.
/// For an eligible weight W (n, m) with gradient G (<see cref="FloraRules.IsEligible"/>, the same matrices FLORA
/// compresses):
/// <code>
/// every T steps:  U, s, V^T = svd(G);  n &lt;= m: P = U[:, :r] (n, r)   else: Q^T = V^T[:r, :] (r, m)
/// R = P^T G (r, m)              or  R = G Q (n, r)                         projected gradient
/// m = b1 m + (1 - b1) R;  v = b2 v + (1 - b2) R^2                          Adam moments, shape of R
/// N = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
/// W = W (1 - lr weightDecay) - lr alpha (P N   or   N Q^T)                 alpha = scale, 0.25 by default
/// </code>
/// Other parameters (vectors, embeddings, small or oblong matrices) get plain AdamW, computed with the same ops
/// as <see cref="AdamW"/>. Unlike FLORA's random projection, P (or Q^T) is stored: it is part of the optimizer
/// state, in the ledger as <see cref="MemoryTag.OptimizerState"/>, and in checkpoints with the step it was
/// computed at. As in the official code, the moments are kept (not reset) when the projection changes.
/// The gradient passed to Update is only read.
/// </summary>
public sealed class GaLore : Optimizer
{
    private readonly TensorSlot _projected;

    /// <summary>GaLore for <paramref name="parameters"/>, on the backend that holds them.</summary>
    public GaLore(IEnumerable<Parameter> parameters, float learningRate = 1e-3f, int rank = 128, int updateGap = 200,
        float scale = 0.25f, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f, float weightDecay = 0f)
        : this(BackendOf(parameters), OneGroup(parameters), learningRate, rank, updateGap, scale, beta1, beta2, eps, weightDecay) { }

    /// <summary>GaLore for <paramref name="parameters"/> (one group), whose state <paramref name="backend"/> allocates.</summary>
    public GaLore(IBackend backend, IEnumerable<Parameter> parameters, float learningRate = 1e-3f, int rank = 128, int updateGap = 200,
        float scale = 0.25f, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f, float weightDecay = 0f)
        : this(backend, OneGroup(parameters), learningRate, rank, updateGap, scale, beta1, beta2, eps, weightDecay) { }

    /// <summary>GaLore for <paramref name="groups"/>, whose state <paramref name="backend"/> allocates.</summary>
    /// <exception cref="ArgumentException">A hyper-parameter is out of range (each is named).</exception>
    public GaLore(IBackend backend, IEnumerable<ParameterGroup> groups, float learningRate = 1e-3f, int rank = 128, int updateGap = 200,
        float scale = 0.25f, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f, float weightDecay = 0f)
        : base(backend, groups, Positive(learningRate, "learning rate"), weightDecay)
    {
        Rank = rank > 0 ? rank : throw new ArgumentException($"GaLore rank must be positive, got {rank}", nameof(rank));
        UpdateGap = updateGap > 0 ? updateGap : throw new ArgumentException($"GaLore update gap (update_proj_gap) must be positive, got {updateGap}", nameof(updateGap));
        Scale = Positive(scale, "GaLore scale");
        Beta1 = Beta(beta1, nameof(beta1));
        Beta2 = Beta(beta2, nameof(beta2));
        Eps = NonNegative(eps, nameof(eps));
        _projected = new TensorSlot(backend, MemoryTag.Scratch);
    }

    /// <summary>r: the dimension of the subspace.</summary>
    public int Rank { get; }
    /// <summary>T: steps between two SVDs (GaLore's update_proj_gap).</summary>
    public int UpdateGap { get; }
    /// <summary>alpha: multiplies the projected-back update (GaLore's scale).</summary>
    public float Scale { get; }
    /// <summary>beta1: the decay of the projected first moment.</summary>
    public float Beta1 { get; }
    /// <summary>beta2: the decay of the projected second moment.</summary>
    public float Beta2 { get; }
    /// <summary>eps, added to sqrt(v / (1 - beta2^t)) in the denominator.</summary>
    public float Eps { get; }

    /// <inheritdoc/>
    public override string Configuration => $"galore r={Rank} gap={UpdateGap} scale={Scale} beta1={Beta1} beta2={Beta2} eps={Eps}";

    /// <summary>Whether <paramref name="shape"/> gets a projection (else plain AdamW).</summary>
    public bool IsProjected(Shape shape) => FloraRules.IsEligible(shape, Rank);

    /// <summary>The state of one parameter: Adam moments, and for a projected matrix its projection.</summary>
    public sealed class GaLoreState : ParameterState, IStateScalars
    {
        internal GaLoreState(IBackend backend, Parameter parameter) : base(backend, parameter) { }

        /// <summary>True: P (n, r) multiplies from the left (n &lt;= m); false: Q^T (r, m) from the right.</summary>
        public bool Left { get; internal set; }
        /// <summary>P (n, r) or Q^T (r, m); null for a parameter that gets plain AdamW.</summary>
        public Tensor? Projection { get; internal set; }
        /// <summary>The step (0 for the first update) whose gradient gave <see cref="Projection"/>; -1 before the first.</summary>
        public long ProjectionStep { get; internal set; } = -1;
        /// <summary>
        /// m: the first moment, (r, m) or (n, r) in the subspace, or full size for a parameter that gets plain AdamW.
        /// </summary>
        public Tensor M { get; internal set; } = null!;
        /// <summary>v: the second moment, of the shape of <see cref="M"/>.</summary>
        public Tensor V { get; internal set; } = null!;

        IReadOnlyDictionary<string, long> IStateScalars.SaveScalars() =>
            Projection is null ? new Dictionary<string, long>() : new Dictionary<string, long> { ["projection_step"] = ProjectionStep };

        void IStateScalars.LoadScalars(IReadOnlyDictionary<string, long> values)
        {
            if (Projection is null) return;
            ProjectionStep = values.TryGetValue("projection_step", out long step) ? step
                : throw new InvalidDataException($"the checkpoint has no projection step for '{Parameter.Name}'");
        }
    }

    /// <summary>The GaLore state of <paramref name="parameter"/> (created on first use).</summary>
    public GaLoreState StateOfParameter(Parameter parameter) => (GaLoreState)StateOf(parameter);

    /// <inheritdoc/>
    protected override ParameterState CreateState(Parameter parameter, ParameterGroup group)
    {
        var state = new GaLoreState(Backend, parameter);
        Shape shape = parameter.Shape;
        if (!IsProjected(shape))
        {
            state.M = state.Add("exp_avg", shape, "full size (not projected)");
            state.V = state.Add("exp_avg_sq", shape, "full size (not projected)");
            return state;
        }
        int n = shape[0], m = shape[1];
        state.Left = n <= m;
        Shape projected = state.Left ? new Shape(Rank, m) : new Shape(n, Rank);
        state.Projection = state.Left
            ? state.Add("projection", new Shape(n, Rank), "left singular vectors P, n x r")
            : state.Add("projection", new Shape(Rank, m), "right singular vectors Q^T, r x m");
        string where = state.Left ? "projected r x m" : "projected n x r";
        state.M = state.Add("exp_avg", projected, where);
        state.V = state.Add("exp_avg_sq", projected, where);
        return state;
    }

    /// <inheritdoc/>
    protected override void Apply(Parameter parameter, Tensor weight, Tensor gradient)
    {
        var state = StateOfParameter(parameter);
        var group = GroupOf(parameter);
        long t = state.Step++;
        long step = t + 1;
        float lr = LearningRateOf(group), weightDecay = WeightDecayOf(group);
        float bc1 = 1f - MathF.Pow(Beta1, step), bc2 = 1f - MathF.Pow(Beta2, step);
        if (state.Projection is not Tensor projection)
        {
            // Plain AdamW, the same ops as AdamW with naive momentum.
            Backend.SquaredMovingAverage(gradient, state.V, Beta2, 0f);             // v = b2 v + (1 - b2) g^2
            Backend.Axpby(1 - Beta1, gradient, Beta1, state.M);                     // m = b1 m + (1 - b1) g
            Backend.AdamApply(weight, state.M, state.V, lr, weightDecay, Eps, bc1, bc2);
            return;
        }
        if (state.ProjectionStep < 0 || t - state.ProjectionStep >= UpdateGap)
        {
            // A new subspace from this step's gradient: P = U[:, :r] or Q^T = V^T[:r, :].
            Backend.Svd(gradient, state.Left ? projection : null, null, state.Left ? null : projection);
            state.ProjectionStep = t;
        }
        Tensor r = _projected.Get(state.M.Shape);
        if (state.Left) Backend.MatMul(projection, true, gradient, false, r);        // R = P^T G      (r, m)
        else Backend.MatMul(gradient, false, projection, true, r);                  // R = G Q        (n, r)
        Backend.SquaredMovingAverage(r, state.V, Beta2, 0f);                        // v = b2 v + (1 - b2) R^2
        Backend.Axpby(1 - Beta1, r, Beta1, state.M);                                // m = b1 m + (1 - b1) R
        // N = m_hat / (sqrt(v_hat) + eps), written over R: AdamApply on a zero tensor with lr = -1 and no decay
        // computes 0 - (-1 / bc1) m / (sqrt(v / bc2) + eps), the same arithmetic as AdamW's step.
        Backend.Fill(r, 0f);
        Backend.AdamApply(r, state.M, state.V, -1f, 0f, Eps, bc1, bc2);
        // W = (1 - lr weightDecay) W - lr alpha (P N  or  N Q^T): one product that also applies the decay.
        float alpha = -lr * Scale, keep = 1f - lr * weightDecay;
        if (state.Left) Backend.MatMul(projection, false, r, false, weight, alpha, keep);
        else Backend.MatMul(r, false, projection, false, weight, alpha, keep);
    }

    /// <summary>Frees what <see cref="Optimizer.Dispose"/> frees, and the buffer of the projected gradient.</summary>
    public override void Dispose()
    {
        base.Dispose();
        _projected.Dispose();
    }
}
