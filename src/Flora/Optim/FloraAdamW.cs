using Flora.Backends;
using Flora.Nn;

namespace Flora.Optim;

/// <summary>
/// AdamW whose first moment is FLORA's compressed moving average (Algorithm 2): Adam's full-size second moment,
/// an r x max(n, m) first moment per eligible matrix. The official code offers FLORA only on Adafactor; this is
/// the variant GaLore comparisons (Table 6) call for.
/// </summary>
public sealed class FloraAdamW : AdamW
{
    /// <summary>FLORA on AdamW for <paramref name="parameters"/>, on the backend that holds them.</summary>
    /// <param name="parameters">The parameters to train (all on one backend).</param>
    /// <param name="learningRate">Learning rate.</param>
    /// <param name="rank">Rank r of the random projections.</param>
    /// <param name="beta1">First-moment decay.</param>
    /// <param name="beta2">Second-moment decay.</param>
    /// <param name="kappa">Steps between two resamplings of the projection.</param>
    /// <param name="weightDecay">Decoupled weight decay.</param>
    /// <param name="variant">Algorithm 2 as printed, or the official code's order.</param>
    /// <param name="seed">Root of every projection seed.</param>
    public FloraAdamW(IEnumerable<Parameter> parameters, float learningRate, int rank, float beta1 = 0.9f, float beta2 = 0.999f,
        int kappa = 1000, float weightDecay = 0.01f, FloraVariant variant = FloraVariant.Official, ulong seed = 0)
        : this(BackendOf(parameters), parameters, learningRate, rank, beta1, beta2, kappa, weightDecay, variant, seed) { }

    /// <summary>FLORA on AdamW for <paramref name="parameters"/>, whose state <paramref name="backend"/> allocates.</summary>
    public FloraAdamW(IBackend backend, IEnumerable<Parameter> parameters, float learningRate, int rank, float beta1 = 0.9f,
        float beta2 = 0.999f, int kappa = 1000, float weightDecay = 0.01f, FloraVariant variant = FloraVariant.Official, ulong seed = 0)
        : base(backend, parameters, learningRate, beta1, beta2, weightDecay: weightDecay,
            momentum: MomentumOptions.Flora(rank, beta1, kappa, variant, seed)) { }
}
