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
    public AccumulationMode Mode { get; init; } = AccumulationMode.None;
    public int AccumulationSteps { get; init; } = 1;
    public int Rank { get; init; }
    public bool Lomo { get; init; }
    public ulong Seed { get; init; }
    public bool ForceCompression { get; init; }

    /// <summary>Global gradient-norm clipping; only where every full gradient exists before the update.</summary>
    public float? ClipNorm { get; init; }

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
