using Flora.Backends;
using Flora.Nn;
using Flora.Tensors;

namespace Flora.Optim;

/// <summary>How an optimizer keeps its first moment (momentum).</summary>
public enum MomentumKind
{
    /// <summary>No first moment.</summary>
    None,
    /// <summary>A full-size exponential moving average: O(nm) per matrix.</summary>
    Naive,
    /// <summary>FLORA's compressed moving average (Algorithm 2): O(r max(n, m)) per eligible matrix.</summary>
    Compressed,
}

/// <summary>
/// Which form of FLORA's compressed momentum to use. The default is <see cref="Official"/>: our ablation (a learning-rate
/// sweep per variant, 3 seeds, several resamplings; docs/results.md) found it better than Algorithm 2 as printed.
/// </summary>
public enum FloraVariant
{
    /// <summary>Algorithm 2 as printed: M = beta M' + (1 - beta) compress(u); yield decompress(M).</summary>
    Paper,
    /// <summary>The official PyTorch code: yield (1 - beta) u + beta decompress(M_old); only the history is compressed.</summary>
    Official,
}

/// <summary>First-moment settings. <see cref="Seed"/> roots the per-parameter projection seeds (see <see cref="Seeds"/>).</summary>
public sealed record MomentumOptions
{
    /// <summary>None (the default), Naive (full size) or Compressed (FLORA's Algorithm 2).</summary>
    public MomentumKind Kind { get; init; }
    /// <summary>beta: the decay of the moving average, in [0, 1); 0.9 by default.</summary>
    public float Beta { get; init; } = 0.9f;
    /// <summary>r: the rank of compressed momentum's projections (required, positive, for Compressed).</summary>
    public int Rank { get; init; }
    /// <summary>kappa: updates between two resamplings of the projection; 1000 by default (the paper's).</summary>
    public int Kappa { get; init; } = 1000;
    /// <summary>The form of compressed momentum (default: the official code's, the better one in our ablation).</summary>
    public FloraVariant Variant { get; init; } = FloraVariant.Official;
    /// <summary>
    /// Compress every matrix, making a rank above its compressed dimension an error; off by default, when ineligible
    /// matrices (<see cref="FloraRules"/>) keep naive momentum.
    /// </summary>
    public bool ForceCompression { get; init; }
    /// <summary>
    /// Root of the projection seeds: parameter p in resampling period k uses Derive(ForName(Seed, p), k); 0 by default.
    /// </summary>
    public ulong Seed { get; init; }

    /// <summary>No first moment.</summary>
    public static MomentumOptions None { get; } = new() { Kind = MomentumKind.None };
    /// <summary>A full-size moving average with decay <paramref name="beta"/>: n m floats per matrix.</summary>
    public static MomentumOptions Naive(float beta = 0.9f) => new() { Kind = MomentumKind.Naive, Beta = beta };
    /// <summary>
    /// FLORA's compressed momentum (Algorithm 2): rank <paramref name="rank"/>, decay <paramref name="beta"/>, a new
    /// projection every <paramref name="kappa"/> updates, seeds rooted at <paramref name="seed"/>, in the form
    /// <paramref name="variant"/> says.
    /// </summary>
    public static MomentumOptions Flora(int rank, float beta = 0.9f, int kappa = 1000, FloraVariant variant = FloraVariant.Official, ulong seed = 0) =>
        new() { Kind = MomentumKind.Compressed, Beta = beta, Rank = rank, Kappa = kappa, Variant = variant, Seed = seed };

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad setting.</summary>
    public void Validate()
    {
        if (Kind == MomentumKind.None) return;
        if (!(Beta >= 0 && Beta < 1)) throw new ArgumentException($"momentum beta must be in [0, 1), got {Beta}");
        if (Kind != MomentumKind.Compressed) return;
        if (Rank <= 0) throw new ArgumentException($"FLORA rank must be positive, got {Rank}");
        if (Kappa <= 0) throw new ArgumentException($"FLORA resampling interval kappa must be positive, got {Kappa}");
    }

    /// <summary>The settings in one line, as checkpoints record and compare them, e.g. "naive beta=0.9".</summary>
    public override string ToString() => Kind switch
    {
        MomentumKind.None => "none",
        MomentumKind.Naive => $"naive beta={Beta}",
        _ => $"flora beta={Beta} r={Rank} kappa={Kappa} variant={Variant.ToString().ToLowerInvariant()}{(ForceCompression ? " forced" : "")} seed={Seed}",
    };
}

/// <summary>The first moment of one parameter. <see cref="Apply"/> folds an update into it.</summary>
internal abstract class Momentum
{
    /// <summary>
    /// Folds <paramref name="u"/> into the moment at step <paramref name="t"/> (0 for the first update) and
    /// returns the tensor that holds the averaged update: the state itself or <paramref name="u"/>, overwritten.
    /// </summary>
    public abstract Tensor Apply(Tensor u, long t);

    /// <summary>The state for <paramref name="parameter"/> as <paramref name="options"/> ask, its tensors added to <paramref name="state"/>.</summary>
    public static Momentum? Create(IBackend backend, MomentumOptions options, Parameter parameter, ParameterState state, MomentumScratch scratch)
    {
        switch (options.Kind)
        {
            case MomentumKind.None:
                return null;
            case MomentumKind.Naive:
                return new NaiveMomentum(backend, options.Beta, state.Add("exp_avg", parameter.Shape, "full size"));
            default:
                if (options.ForceCompression) FloraRules.CheckForced(parameter.Name, parameter.Shape, options.Rank);
                if (!FloraRules.IsEligible(parameter.Shape, options.Rank, options.ForceCompression))
                    return new NaiveMomentum(backend, options.Beta, state.Add("exp_avg", parameter.Shape, "full size (not eligible for compression)"));
                var axis = RandomProjection.AxisFor(parameter.Shape);
                var m = state.Add("exp_avg", scratch.Projection.CompressedShape(parameter.Shape, axis),
                    axis == CompressedAxis.Columns ? "compressed n x r" : "compressed r x m");
                return new CompressedMomentum(backend, options, parameter, m, axis, scratch);
        }
    }
}

/// <summary>M = beta M + (1 - beta) u; the averaged update is M.</summary>
internal sealed class NaiveMomentum(IBackend backend, float beta, Tensor m) : Momentum
{
    /// <summary>The first moment m (full size).</summary>
    public Tensor Moment => m;

    public float Beta => beta;

    public override Tensor Apply(Tensor u, long t)
    {
        backend.Axpby(1 - beta, u, beta, m);
        return m;
    }
}

/// <summary>
/// Buffers shared by every compressed momentum of one optimizer: the projection matrices (regenerated,
/// never kept) and one compressed-size temporary. Only one parameter is updated at a time.
/// </summary>
internal sealed class MomentumScratch(IBackend backend, int rank) : IDisposable
{
    public RandomProjection Projection { get; } = new(backend, Math.Max(rank, 1));
    /// <summary>A compressed update (official variant).</summary>
    public TensorSlot Compressed { get; } = new(backend, MemoryTag.Scratch);
    /// <summary>The r x r product A_old A_new^T of a transfer.</summary>
    public TensorSlot Product { get; } = new(backend, MemoryTag.Scratch);
    /// <summary>The transferred M before it is copied back.</summary>
    public TensorSlot Moved { get; } = new(backend, MemoryTag.Scratch);
    /// <summary>
    /// The preconditioned update in the type products read, when that is not Float32 (bf16 tensor cores): the
    /// low-rank path only compresses it, so the precondition kernel writes it there directly.
    /// </summary>
    public TensorSlot Update { get; } = new(backend, MemoryTag.Scratch, backend.ProductOperandType);

    public void Dispose()
    {
        Projection.Dispose();
        Compressed.Dispose();
        Product.Dispose();
        Moved.Dispose();
        Update.Dispose();
    }
}

/// <summary>
/// FLORA's compressed momentum (Algorithm 2). M is (n, r) or (r, m); the projection of period
/// k = t / kappa has seed Derive(ForName(root, name), k) and is regenerated when needed. At the
/// start of each period (t = k kappa, k &gt; 0) M moves to the new projection:
/// M = compress_new(decompress_old(M)), computed without a full-size temporary as
/// M (A_old A_new^T) for compressed columns or (A_new A_old^T) M for compressed rows.
/// </summary>
internal sealed class CompressedMomentum : Momentum
{
    private readonly IBackend _backend;
    private readonly float _beta;
    private readonly int _kappa;
    private readonly FloraVariant _variant;
    private readonly Shape _shape;
    private readonly Tensor _m;
    private readonly CompressedAxis _axis;
    private readonly ulong _parameterSeed;
    private readonly MomentumScratch _scratch;

    internal CompressedMomentum(IBackend backend, MomentumOptions options, Parameter parameter, Tensor m, CompressedAxis axis, MomentumScratch scratch)
    {
        _backend = backend;
        _beta = options.Beta;
        _kappa = options.Kappa;
        _variant = options.Variant;
        _shape = parameter.Shape;
        _m = m;
        _axis = axis;
        _parameterSeed = Seeds.ForName(options.Seed, parameter.Name);
        _scratch = scratch;
    }

    public CompressedAxis Axis => _axis;

    /// <summary>True for Algorithm 2 as printed, whose yield decompress(M) is a rank-r product that need not be materialised.</summary>
    public bool YieldsLowRank => _variant == FloraVariant.Paper;

    /// <summary>Transfers of M to a new projection so far (the resampling period of the latest update).</summary>
    public long Resamplings { get; private set; }

    /// <summary>Seed of the projection of resampling period <paramref name="period"/>.</summary>
    public ulong SeedOfPeriod(long period) => Seeds.Derive(_parameterSeed, (ulong)period);

    private RandomProjection P => _scratch.Projection;

    public override Tensor Apply(Tensor u, long t)
    {
        return _variant == FloraVariant.Paper ? ApplyPaper(u, t) : ApplyOfficial(u, t, null);
    }

    /// <summary>
    /// <see cref="Apply(Tensor, long)"/> given u also in the type products read (<paramref name="rounded"/>, written by the pass that made
    /// u), which the compression then reads instead of converting u itself, after u has taken the yield, straight into M.
    /// Official variant only.
    /// </summary>
    public Tensor Apply(Tensor u, long t, Tensor rounded)
    {
        if (_variant != FloraVariant.Official) throw new InvalidOperationException("only the official variant compresses a u that it also keeps");
        return ApplyOfficial(u, t, rounded);
    }

    // Algorithm 2 (lines 9-20): transfer at a period start, M = beta M + (1 - beta) u A^T, yield M A.
    private Tensor ApplyPaper(Tensor u, long t)
    {
        Tensor a = UpdateCompressed(u, t);
        P.Decompress(_m, a, u, _axis);                                              // line 20: yield M A
        return u;
    }

    /// <summary>
    /// Lines 9-19 of Algorithm 2 (paper variant): folds u into M and returns this step's projection A,
    /// leaving the yield decompress(M) to the caller, which applies it to W in one product
    /// (<see cref="Backends.IBackend.AdafactorLowRankUpdate"/>).
    /// </summary>
    public Tensor UpdateCompressed(Tensor u, long t)
    {
        if (!YieldsLowRank) throw new InvalidOperationException("the official variant's yield is not low-rank");
        long period = t / _kappa;
        if (t > 0 && t % _kappa == 0) TransferTo(period - 1, period);               // lines 10-13
        Resamplings = period;
        Tensor a = P.Generate(SeedOfPeriod(period), _shape, _axis);
        P.Compress(u, a, _m, _axis, alpha: 1 - _beta, beta: _beta);                 // line 19
        return a;
    }

    /// <summary>
    /// The official variant's step t closed by Adafactor's update, as one backend op
    /// (<see cref="IBackend.AdafactorFloraOfficialStep"/>: the same yield, fold and update as <see cref="Apply(Tensor, long)"/>
    /// then <see cref="IBackend.AdafactorUpdate"/>), when no period ends at t; false otherwise, and nothing done.
    /// </summary>
    public bool TryStepOfficial(long t, Tensor p, Tensor g, Tensor rows, Tensor columns, Tensor? rounded,
        float lr, float eps2, float clipThreshold, float weightDecay, bool scaleParameter, ulong seed)
    {
        if (_variant != FloraVariant.Official) throw new InvalidOperationException("only the official variant closes its step with the update");
        long period = t / _kappa;
        if ((t + 1) / _kappa != period) return false;                               // a transfer follows the yield: op by op
        Tensor a = P.Generate(SeedOfPeriod(period), _shape, _axis);
        Resamplings = period;
        _backend.AdafactorFloraOfficialStep(p, g, rows, columns, _m, a, _axis == CompressedAxis.Columns, rounded, _scratch.Compressed.Get(_m.Shape),
            _beta, lr, eps2, clipThreshold, weightDecay, scaleParameter, seed);
        return true;
    }

    /// <summary>The compressed moment M itself, (n, r) or (r, m).</summary>
    public Tensor Moment => _m;

    // Official PyTorch: yield (1 - beta) u + beta decompress_old(M); then transfer if the period ends;
    // then M = beta M + (1 - beta) compress_new(u).
    private Tensor ApplyOfficial(Tensor u, long t, Tensor? rounded)
    {
        long oldPeriod = t / _kappa, newPeriod = (t + 1) / _kappa;
        Tensor aNew = P.Generate(SeedOfPeriod(newPeriod), _shape, _axis);
        // Within a period the old projection is the new one: regenerated only when the period ends.
        Tensor aOld = newPeriod == oldPeriod ? aNew : P.Generate(SeedOfPeriod(oldPeriod), _shape, _axis, slot: 1);
        if (rounded is not null)
        {
            // u is kept as `rounded` too: u can take the yield first, and the compression of the kept copy goes
            // straight into M (the product's beta does the average; no scratch, no separate pass).
            P.Decompress(_m, aOld, u, _axis, alpha: _beta, beta: 1 - _beta);        // u = (1 - beta) u + beta M_old A_old
            if (newPeriod != oldPeriod) Transfer(aOld, aNew);
            Resamplings = newPeriod;
            P.Compress(rounded, aNew, _m, _axis, alpha: 1 - _beta, beta: _beta);   // M = beta M + (1 - beta) compress_new(u)
            return u;
        }
        Tensor compressed = _scratch.Compressed.Get(_m.Shape);
        P.Compress(u, aNew, compressed, _axis);                                     // c = compress_new(u), raw update
        P.Decompress(_m, aOld, u, _axis, alpha: _beta, beta: 1 - _beta);            // u = (1 - beta) u + beta M_old A_old
        if (newPeriod != oldPeriod) Transfer(aOld, aNew);
        Resamplings = newPeriod;
        _backend.Axpby(1 - _beta, compressed, _beta, _m);                           // M = beta M + (1 - beta) c
        return u;
    }

    /// <summary>Moves M from the projection of period <paramref name="from"/> to that of <paramref name="to"/>.</summary>
    public void TransferTo(long from, long to)
    {
        Tensor aOld = P.Generate(SeedOfPeriod(from), _shape, _axis, slot: 1);
        Tensor aNew = P.Generate(SeedOfPeriod(to), _shape, _axis);
        Transfer(aOld, aNew);
    }

    private void Transfer(Tensor aOld, Tensor aNew)
    {
        int r = P.Rank;
        Tensor t = _scratch.Product.Get(new Shape(r, r));
        Tensor moved = _scratch.Moved.Get(_m.Shape);
        if (_axis == CompressedAxis.Columns)
        {
            _backend.MatMul(aOld, false, aNew, true, t);                            // T = A_old A_new^T   (r, r)
            _backend.MatMul(_m, false, t, false, moved);                             // M T                 (n, r)
        }
        else
        {
            _backend.MatMul(aNew, false, aOld, true, t);                            // T = A_new A_old^T   (r, r)
            _backend.MatMul(t, false, _m, false, moved);                             // T M                 (r, m)
        }
        _backend.Copy(moved, _m);
    }
}
