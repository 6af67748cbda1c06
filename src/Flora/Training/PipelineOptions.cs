using Flora.Backends;
using Flora.Nn;
using Flora.Optim;

namespace Flora.Training;

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

    public void Validate()
    {
        if (AccumulationSteps <= 0) throw new ArgumentException($"accumulation steps must be positive, got {AccumulationSteps}");
        if (Mode == AccumulationMode.None && AccumulationSteps != 1)
            throw new ArgumentException($"{AccumulationSteps} accumulation steps need an accumulation mode (naive or compressed)");
        if (Mode == AccumulationMode.Compressed && Rank <= 0) throw new ArgumentException($"compressed accumulation needs a positive rank, got {Rank}");
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
        pipeline.UseByDefault(Mode == AccumulationMode.None && Lomo
            ? new ImmediateUpdateSink(backend, pipeline.Scratch, optimizer)
            : new AccumulateSink(backend, optimizer, tau, Lomo));
        if (Mode == AccumulationMode.Compressed)
        {
            var compressed = new CompressedAccumulateSink(backend, pipeline.Scratch, optimizer, Rank, tau, Seed, resample: true, immediate: Lomo);
            foreach (var p in parameters.Where(p => p.RequiresGrad))
            {
                if (ForceCompression) FloraRules.CheckForced(p.Name, p.Shape, Rank);
                if (FloraRules.IsEligible(p.Shape, Rank, ForceCompression) && !(Lomo && p.UsesPerStep > 1)) pipeline.Use(p, compressed);
            }
        }
        return pipeline;
    }
}
