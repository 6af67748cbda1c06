using Flora.Backends;
using Flora.Nn;

namespace Flora.Optim;

/// <summary>
/// FLORA (Hao, Cao, Mou 2024) on the paper's base optimizer: Adafactor whose first moment is compressed by
/// Algorithm 2, with rank r, resampling interval kappa and per-parameter seeds. Eligible matrices
/// (<see cref="FloraRules"/>) keep r x max(n, m) momentum floats instead of n x m; everything else keeps naive
/// momentum. Works with the factored and the unfactored second moment.
/// <code>
/// using var opt = new FloraAdafactor(model.Parameters(), learningRate: 1e-2f, rank: 8);
/// // each step: model.Backward(dLoss, opt.Gradients); opt.Step();
/// </code>
/// Compressed gradient accumulation (Algorithm 1) and LOMO are chosen with <see cref="Optimizer.GradientOptions"/>.
/// </summary>
public sealed class FloraAdafactor : Adafactor
{
    /// <summary>"Flora": the name its checkpoints have carried since before this class was named FloraAdafactor.</summary>
    public override string StateName => "Flora";

    /// <summary>FLORA on Adafactor for <paramref name="parameters"/>, on the backend that holds them.</summary>
    /// <param name="parameters">The parameters to train (all on one backend).</param>
    /// <param name="learningRate">External learning rate (relative to each weight's RMS, as Adafactor's scale_parameter).</param>
    /// <param name="rank">Rank r of the random projections.</param>
    /// <param name="beta">Momentum decay.</param>
    /// <param name="kappa">Steps between two resamplings of the projection (Algorithm 2).</param>
    /// <param name="variant">Algorithm 2 as printed, or the official code's order.</param>
    /// <param name="factored">Factored (row and column) second moment; false keeps a full-size one.</param>
    /// <param name="weightDecay">Decoupled weight decay.</param>
    /// <param name="seed">Root of every projection seed.</param>
    public FloraAdafactor(IEnumerable<Parameter> parameters, float learningRate, int rank, float beta = 0.9f, int kappa = 1000,
        FloraVariant variant = FloraVariant.Official, bool factored = true, float weightDecay = 0, ulong seed = 0)
        : this(BackendOf(parameters), parameters, learningRate, rank, beta, kappa, variant, factored, weightDecay, seed) { }

    /// <summary>FLORA on Adafactor for <paramref name="parameters"/>, whose state <paramref name="backend"/> allocates.</summary>
    public FloraAdafactor(IBackend backend, IEnumerable<Parameter> parameters, float learningRate, int rank,
        float beta = 0.9f, int kappa = 1000, FloraVariant variant = FloraVariant.Official, bool factored = true,
        float weightDecay = 0, ulong seed = 0)
        : base(backend, parameters, FloraOptions(learningRate, rank, beta, kappa, variant, factored, weightDecay, seed)) { }

    /// <summary>FLORA on Adafactor with every Adafactor setting given; the momentum must be compressed.</summary>
    public FloraAdafactor(IBackend backend, IEnumerable<Parameter> parameters, AdafactorOptions options)
        : base(backend, parameters, RequireCompressed(options)) { }

    private static AdafactorOptions FloraOptions(float lr, int rank, float beta, int kappa, FloraVariant variant, bool factored, float wd, ulong seed) =>
        new()
        {
            LearningRate = lr,
            Factored = factored,
            WeightDecay = wd,
            Momentum = MomentumOptions.Flora(rank, beta, kappa, variant, seed),
        };

    private static AdafactorOptions RequireCompressed(AdafactorOptions options) =>
        options.Momentum.Kind == MomentumKind.Compressed ? options
        : throw new ArgumentException($"FloraAdafactor needs compressed momentum, got {options.Momentum}");
}
