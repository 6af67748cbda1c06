using Flora.Backends;
using Flora.Nn;
using Flora.Tensors;

namespace Flora.Optim;

/// <summary>Where Adafactor's first moment (beta1) sits relative to update clipping and the learning rate.</summary>
public enum AdafactorMomentumOrder
{
    /// <summary>
    /// The paper's and the official FLORA code's order: average the preconditioned update u, then clip the average
    /// and scale it by the learning rate (m = b1 m + (1 - b1) u; W -= lr_t clip(m)).
    /// </summary>
    AverageThenClip,
    /// <summary>
    /// Hugging Face's <c>Adafactor(beta1=...)</c>: clip u and scale it by the learning rate first, then average
    /// (m = b1 m + (1 - b1) lr_t clip(u); W -= m). Costs two reductions per parameter (on a GPU, two synchronisations).
    /// </summary>
    ClipThenAverage,
}

/// <summary>
/// Adafactor settings, with the semantics of the official Adafactor/FLORA code (Shazeer and Stern 2018;
/// Hugging Face; flora-opt): eps = (1e-30, 1e-3), clip threshold 1, decay rate -0.8
/// (beta2_t = 1 - t^-0.8), scale_parameter, relative_step, warmup_init, decoupled weight decay,
/// factored second moment for matrices (Factored = false is the linear-memory variant of Table 4).
/// </summary>
public sealed record AdafactorOptions
{
    /// <summary>External learning rate; null (the default) requires <see cref="RelativeStep"/>.</summary>
    public float? LearningRate { get; init; }
    /// <summary>eps1, added to G^2 in the second moment; 1e-30 by default.</summary>
    public float Eps1 { get; init; } = 1e-30f;
    /// <summary>eps2, the least RMS(W) the parameter scale uses; 1e-3 by default.</summary>
    public float Eps2 { get; init; } = 1e-3f;
    /// <summary>d: an update u is divided by max(1, RMS(u) / d); 1 by default.</summary>
    public float ClipThreshold { get; init; } = 1f;
    /// <summary>The exponent c of the second moment's decay beta2_t = 1 - t^c, in [-1, 0); -0.8 by default.</summary>
    public float DecayRate { get; init; } = -0.8f;
    /// <summary>Decoupled weight decay: W = W (1 - weightDecay lr_t) before the step; 0 by default.</summary>
    public float WeightDecay { get; init; }
    /// <summary>
    /// Multiply the step size by max(eps2, RMS(W)), so the learning rate is relative to each weight's size; on by
    /// default.
    /// </summary>
    public bool ScaleParameter { get; init; } = true;
    /// <summary>
    /// Use the step size min(1e-2, 1/sqrt(t)) instead of <see cref="LearningRate"/> (which must then be null); off by
    /// default.
    /// </summary>
    public bool RelativeStep { get; init; }
    /// <summary>With <see cref="RelativeStep"/>: start from 1e-6 t (a linear warm-up) instead of 1e-2; off by default.</summary>
    public bool WarmupInit { get; init; }
    /// <summary>Factored (row and column) second moment for matrices (on by default); false keeps a full-size one.</summary>
    public bool Factored { get; init; } = true;
    /// <summary>
    /// The first moment: none (the default), naive, or FLORA's compressed momentum
    /// (<see cref="MomentumOptions.Flora"/>).
    /// </summary>
    public MomentumOptions Momentum { get; init; } = MomentumOptions.None;
    /// <summary>
    /// Where the first moment averages: before clipping (the paper's, default) or after clipping and the learning rate
    /// (Hugging Face's).
    /// </summary>
    public AdafactorMomentumOrder MomentumOrder { get; init; } = AdafactorMomentumOrder.AverageThenClip;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad setting.</summary>
    public void Validate()
    {
        if (LearningRate is null && !RelativeStep) throw new ArgumentException("Adafactor needs a learning rate unless relative_step is on");
        if (LearningRate is float lr && RelativeStep) throw new ArgumentException($"cannot combine a manual learning rate ({lr}) with relative_step");
        if (LearningRate is float l && !(l > 0 && float.IsFinite(l))) throw new ArgumentException($"learning rate must be positive and finite, got {l}");
        if (WarmupInit && !RelativeStep) throw new ArgumentException("warmup_init requires relative_step");
        if (!(Eps1 >= 0 && float.IsFinite(Eps1))) throw new ArgumentException($"eps1 must be non-negative and finite, got {Eps1}");
        if (!(Eps2 >= 0 && float.IsFinite(Eps2))) throw new ArgumentException($"eps2 must be non-negative and finite, got {Eps2}");
        if (!(ClipThreshold > 0)) throw new ArgumentException($"clip threshold must be positive, got {ClipThreshold}");
        if (!(DecayRate < 0 && DecayRate >= -1)) throw new ArgumentException($"decay rate must be in [-1, 0), got {DecayRate}");
        if (!(WeightDecay >= 0 && float.IsFinite(WeightDecay))) throw new ArgumentException($"weight decay must be non-negative and finite, got {WeightDecay}");
        Momentum.Validate();
    }
}

/// <summary>
/// Adafactor, the paper's base optimizer, as composable steps per parameter (Update):
/// <code>
/// beta2_t = 1 - t^decay;  lr_t = (relative ? min(1e-2 or 1e-6 t, 1/sqrt t) : lr) * (scale ? max(eps2, RMS(W)) : 1)
/// second moment: factored rows/columns of G^2 + eps1, or full v    -> u = G / sqrt(v^)
/// first moment:  none | naive EMA of u | FLORA compressed EMA of u  (before clipping, as the official code)
/// clip:          u = u / max(1, RMS(u) / d)
/// apply:         W = W (1 - weightDecay lr_t) - lr_t u
/// </code>
/// The gradient passed to Update is used as the working buffer for u.
/// </summary>
public class Adafactor : Optimizer
{
    private readonly MomentumScratch _scratch;

    /// <summary>Adafactor for <paramref name="parameters"/>, on the backend that holds them.</summary>
    public Adafactor(IEnumerable<Parameter> parameters, AdafactorOptions options)
        : this(BackendOf(parameters), OneGroup(parameters), options) { }

    /// <summary>Adafactor for <paramref name="parameters"/> (one group), whose state <paramref name="backend"/> allocates.</summary>
    public Adafactor(IBackend backend, IEnumerable<Parameter> parameters, AdafactorOptions options)
        : this(backend, OneGroup(parameters), options) { }

    /// <summary>Adafactor for <paramref name="groups"/>, whose state <paramref name="backend"/> allocates.</summary>
    /// <exception cref="ArgumentException">
    /// A setting is invalid, or forced compression meets a matrix whose compressed dimension is below the rank.
    /// </exception>
    public Adafactor(IBackend backend, IEnumerable<ParameterGroup> groups, AdafactorOptions options)
        : base(backend, groups, Validated(options).LearningRate ?? 1f, options.WeightDecay)
    {
        Options = options;
        _scratch = new MomentumScratch(backend, options.Momentum.Rank);
        if (options.Momentum is { Kind: MomentumKind.Compressed, ForceCompression: true })
            foreach (var p in Groups.SelectMany(g => g.Parameters))
                FloraRules.CheckForced(p.Name, p.Shape, options.Momentum.Rank);
    }

    /// <summary>The settings this optimizer was built with.</summary>
    public AdafactorOptions Options { get; }

    /// <inheritdoc/>
    public override long Resamplings => States.OfType<State>().Select(s => (s.Momentum as CompressedMomentum)?.Resamplings ?? 0).DefaultIfEmpty(0).Max();

    /// <inheritdoc/>
    public override string Configuration =>
        $"factored={Options.Factored} momentum=({Options.Momentum})"
        + (Options.MomentumOrder == AdafactorMomentumOrder.ClipThenAverage && Options.Momentum.Kind != MomentumKind.None ? " order=clip-then-average" : "");

    private static AdafactorOptions Validated(AdafactorOptions options)
    {
        options.Validate();
        return options;
    }

    private sealed class State(IBackend backend, Parameter parameter) : ParameterState(backend, parameter)
    {
        public Tensor? Rows, Columns, V;
        public Momentum? Momentum;
        public bool Factored => Rows is not null;
    }

    /// <inheritdoc/>
    protected override ParameterState CreateState(Parameter parameter, ParameterGroup group)
    {
        var state = new State(Backend, parameter);
        if (Options.Factored && parameter.Shape.Rank == 2)
        {
            state.Rows = state.Add("exp_avg_sq_row", new Shape(parameter.Shape[0]), "row means");
            state.Columns = state.Add("exp_avg_sq_col", new Shape(parameter.Shape[1]), "column means");
        }
        else
        {
            state.V = state.Add("exp_avg_sq", parameter.Shape, "full size");
        }
        state.Momentum = Momentum.Create(Backend, Options.Momentum, parameter, state, _scratch);
        return state;
    }

    /// <inheritdoc/>
    protected override void Apply(Parameter parameter, Tensor weight, Tensor gradient) => Step(parameter, weight, gradient, null);

    /// <summary>
    /// A bf16 weight whose step ends in <see cref="IBackend.AdafactorUpdate"/> (a factored matrix, without FLORA's
    /// low-rank yield or Hugging Face's momentum order) is updated and rounded in that last pass
    /// (<see cref="IBackend.AdafactorUpdateRounded"/>): no fp32 copy of the weight, the same bits.
    /// </summary>
    protected override void UpdateBf16(Parameter parameter, Tensor value, Tensor gradient, ulong seed)
    {
        var state = (State)StateOf(parameter);
        bool endsInUpdate = state.Factored
            && !(state.Momentum is not null && Options.MomentumOrder == AdafactorMomentumOrder.ClipThenAverage)
            && state.Momentum is not CompressedMomentum { YieldsLowRank: true };
        if (Rounding == WeightRounding.Stochastic && endsInUpdate) Step(parameter, value, gradient, seed);
        else base.UpdateBf16(parameter, value, gradient, seed);
    }

    /// <summary>One step on <paramref name="weight"/>: Float32, or BFloat16 rounded with <paramref name="roundingSeed"/> (see <see cref="UpdateBf16"/>).</summary>
    private void Step(Parameter parameter, Tensor weight, Tensor gradient, ulong? roundingSeed)
    {
        var state = (State)StateOf(parameter);
        var group = GroupOf(parameter);
        long t = state.Step++;                                   // 0-based step of Algorithm 2
        long step = t + 1;                                       // 1-based step of Adafactor
        float decay = 1f - MathF.Pow(step, Options.DecayRate);   // beta2_t
        if (state.Momentum is not null && Options.MomentumOrder == AdafactorMomentumOrder.ClipThenAverage)
        {
            UpdateClipThenAverage(weight, gradient, state, group, t, step, decay);
            return;
        }

        // u = the preconditioned update, in place of the gradient; with naive momentum the precondition kernel
        // writes m = b1 m + (1 - b1) u directly (one pass instead of two), and m is the update. FLORA's low-rank
        // path only compresses u: on bf16 tensor cores it is written in bf16, ready for the product.
        var naive = state.Momentum as NaiveMomentum;
        var lowRank = state.Momentum is CompressedMomentum { YieldsLowRank: true } c ? c : null;
        Tensor u = naive?.Moment
            ?? (lowRank is not null && Backend.ProductOperandType != DType.Float32 ? _scratch.Update.Get(gradient.Shape) : gradient);   // (n, m)
        float alpha = naive is null ? 1f : 1f - naive.Beta, beta = naive?.Beta ?? 0f;
        float lr = RelativeStepSize(group, step), wd = WeightDecayOf(group);
        if (!state.Factored && (state.Momentum is null || naive is not null))
        {
            // Nothing between the precondition and the update: the backend's one-pass step (one launch on a GPU).
            Backend.AdafactorUnfactoredStep(weight, gradient, state.V!, u, decay, Options.Eps1, alpha, beta,
                lr, Options.Eps2, Options.ClipThreshold, wd, Options.ScaleParameter);
            return;
        }
        // FLORA's official variant compresses u and keeps it: on bf16 tensor cores the precondition pass also writes the
        // bf16 copy the compression reads, instead of a conversion pass over u. Inside a projection period the yield, the
        // fold into M and the update are one backend op (four passes over the matrix on a GPU instead of five).
        var official = state.Momentum is CompressedMomentum { YieldsLowRank: false } o && state.Factored ? o : null;
        Tensor? rounded = official is not null && Backend.ProductOperandType != DType.Float32 ? _scratch.Update.Get(gradient.Shape) : null;
        if (state.Factored) Backend.AdafactorFactoredMoments(gradient, state.Rows!, state.Columns!, decay, Options.Eps1);
        if (official is not null && official.TryStepOfficial(t, weight, gradient, state.Rows!, state.Columns!, rounded, lr, Options.Eps2,
                Options.ClipThreshold, wd, Options.ScaleParameter, roundingSeed ?? 0)) return;
        if (state.Factored) Backend.AdafactorFactoredPrecondition(gradient, state.Rows!, state.Columns!, u, alpha, beta, rounded);
        else
        {
            Backend.SquaredMovingAverage(gradient, state.V!, decay, Options.Eps1);
            Backend.DivideBySqrt(gradient, state.V!, u, alpha, beta);
        }
        if (lowRank is CompressedMomentum flora)
        {
            // FLORA's yield decompress(M) is rank r: clip with its norm from r x r products and apply it to W
            // in one product, W = keep W - (lr / clip) M A, never forming the n x m update.
            Tensor a = flora.UpdateCompressed(u, t);
            Backend.AdafactorLowRankUpdate(weight, flora.Moment, a, flora.Axis == CompressedAxis.Columns,
                lr, Options.Eps2, Options.ClipThreshold, wd, Options.ScaleParameter);
            return;
        }
        if (official is not null) u = rounded is null ? official.Apply(u, t) : official.Apply(u, t, rounded);
        else if (state.Momentum is not null and not NaiveMomentum) u = state.Momentum.Apply(u, t);
        if (roundingSeed is ulong seed) Backend.AdafactorUpdateRounded(weight, u, lr, Options.Eps2, Options.ClipThreshold, wd, Options.ScaleParameter, seed);
        else Backend.AdafactorUpdate(weight, u, lr, Options.Eps2, Options.ClipThreshold, wd, Options.ScaleParameter);
    }

    /// <summary>
    /// Hugging Face's order: u = G / sqrt(v^); u = u / max(1, RMS(u) / d); u = lr_t u (lr_t with the parameter scale);
    /// m = b1 m + (1 - b1) u (naive, or FLORA's compressed average of the scaled update); W = W (1 - wd lr_t) - m.
    /// </summary>
    private void UpdateClipThenAverage(Tensor weight, Tensor gradient, State state, ParameterGroup group, long t, long step, float decay)
    {
        Tensor u = gradient;                                                        // (n, m), in place of the gradient
        if (state.Factored)
        {
            Backend.AdafactorFactoredMoments(gradient, state.Rows!, state.Columns!, decay, Options.Eps1);
            Backend.AdafactorFactoredPrecondition(gradient, state.Rows!, state.Columns!, u);
        }
        else
        {
            Backend.SquaredMovingAverage(gradient, state.V!, decay, Options.Eps1);
            Backend.DivideBySqrt(gradient, state.V!, u);
        }
        float lr = RelativeStepSize(group, step);
        if (Options.ScaleParameter) lr *= Math.Max(Options.Eps2, Rms(weight));
        float clip = Math.Max(1f, Rms(u) / Options.ClipThreshold);
        Backend.Scale(u, lr / clip);                                                // u = lr_t clip(u)
        Tensor m = state.Momentum!.Apply(u, t);                                     // m = b1 m + (1 - b1) u
        Backend.Axpby(-1f, m, 1f - WeightDecayOf(group) * lr, weight);              // W = W (1 - wd lr_t) - m
    }

    /// <summary>The relative or external step size of the official code, before the parameter scale (applied by the backend).</summary>
    private float RelativeStepSize(ParameterGroup group, long step) =>
        Options.RelativeStep
            ? Math.Min(Options.WarmupInit ? 1e-6f * step : 1e-2f, 1f / MathF.Sqrt(step)) * LearningRateScale
            : LearningRateOf(group);

    /// <summary>Frees what <see cref="Optimizer.Dispose"/> frees, and the scratch of compressed momentum.</summary>
    public override void Dispose()
    {
        base.Dispose();
        _scratch.Dispose();
    }
}
