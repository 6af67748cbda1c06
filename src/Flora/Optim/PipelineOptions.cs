using Flora.Backends;
using Flora.Nn;

namespace Flora.Optim;

/// <summary>How gradients are accumulated across micro-batches.</summary>
public enum AccumulationMode
{
    /// <summary>No accumulation: one micro-batch per update.</summary>
    None,
    /// <summary>Full-size gradient buffers (O(nm) per matrix).</summary>
    Naive,
    /// <summary>FLORA's compressed accumulators (Algorithm 1, O(r max(n, m)) per eligible matrix).</summary>
    Compressed,
}

/// <summary>
/// The gradient path of a training run: accumulation mode, micro-batches per update (tau), FLORA rank
/// and seed for compressed accumulation, and LOMO (update each parameter inside backward).
/// </summary>
public sealed record PipelineOptions
{
    /// <summary>How gradients accumulate over micro-batches: None (the default), Naive or Compressed.</summary>
    public AccumulationMode Mode { get; init; } = AccumulationMode.None;
    /// <summary>tau: micro-batches per update; 1 by default (more needs Naive or Compressed).</summary>
    public int AccumulationSteps { get; init; } = 1;
    /// <summary>r of compressed accumulation's projections (required, positive, for Compressed; unused otherwise).</summary>
    public int Rank { get; init; }
    /// <summary>
    /// Update each parameter inside backward, as soon as its last gradient of the cycle is complete; off by default.
    /// </summary>
    public bool Lomo { get; init; }
    /// <summary>
    /// Root of the accumulators' projection seeds: cycle k of parameter p uses Derive(ForName(Seed, p), k); 0 by
    /// default.
    /// </summary>
    public ulong Seed { get; init; }
    /// <summary>
    /// With Compressed: compress every matrix, not only those <see cref="FloraRules"/> accepts, and refuse a rank above
    /// a compressed dimension; off by default.
    /// </summary>
    public bool ForceCompression { get; init; }

    /// <summary>
    /// Global gradient-norm clipping, the largest L2 norm; only where every full gradient exists before the update. Null
    /// (no clipping) by default.
    /// </summary>
    public float? ClipNorm { get; init; }

    /// <summary>
    /// Throws an <see cref="ArgumentException"/> naming the first bad setting: tau not positive, tau above 1 without a
    /// mode, Compressed without a rank, clipping with LOMO or Compressed, a clipping norm that is not positive.
    /// </summary>
    public void Validate()
    {
        if (AccumulationSteps <= 0) throw new ArgumentException($"accumulation steps must be positive, got {AccumulationSteps}");
        if (Mode == AccumulationMode.None && AccumulationSteps != 1)
            throw new ArgumentException($"{AccumulationSteps} accumulation steps need an accumulation mode (naive or compressed)");
        if (Mode == AccumulationMode.Compressed && Rank <= 0) throw new ArgumentException($"compressed accumulation needs a positive rank, got {Rank}");
        if (ClipNorm is not null && (Lomo || Mode == AccumulationMode.Compressed))
            throw new ArgumentException("gradient clipping needs every full gradient before the first update: it is not available with LOMO or compressed accumulation");
        if (ClipNorm is float c && !(c > 0)) throw new ArgumentException($"gradient clipping norm must be positive, got {c}");
    }

    /// <summary>
    /// Builds the pipeline for <paramref name="parameters"/>: with no accumulation, LOMO applies each
    /// update inside backward from the shared scratch (fused into the product where the optimizer allows);
    /// naive accumulation keeps gradient buffers; compressed accumulation routes FLORA-eligible matrices
    /// (<see cref="FloraRules"/>) to compressed accumulators and the rest to gradient buffers.
    /// </summary>
    public GradientPipeline Build(IBackend backend, IEnumerable<Parameter> parameters, Optimizer optimizer)
    {
        Validate();
        var pipeline = new GradientPipeline(backend);
        int tau = AccumulationSteps;
        parameters = parameters.ToArray();
        IGradientSink fallback;
        if (Mode == AccumulationMode.None && Lomo) fallback = new ImmediateUpdateSink(backend, pipeline.Scratch, optimizer);
        else
        {
            var accumulate = new AccumulateSink(backend, optimizer, tau, Lomo) { ClipNorm = ClipNorm };
            accumulate.Register(parameters);
            fallback = accumulate;
        }
        pipeline.UseByDefault(fallback);
        if (Mode == AccumulationMode.Compressed)
        {
            var compressed = new CompressedAccumulateSink(backend, pipeline.Scratch, optimizer, Rank, tau, Seed, resample: true, immediate: Lomo);
            compressed.Register(parameters);
            foreach (var p in parameters.Where(p => p.RequiresGrad))
            {
                if (ForceCompression) FloraRules.CheckForced(p.Name, p.Shape, Rank);
                if (FloraRules.IsEligible(p.Shape, Rank, ForceCompression) && !(Lomo && p.UsesPerStep > 1)) pipeline.Use(p, compressed);
            }
        }
        return pipeline;
    }
}
