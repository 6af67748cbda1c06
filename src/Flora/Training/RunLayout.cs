using Flora.Backends;
using Flora.Nn;
using Flora.Optim;

namespace Flora.Training;

/// <summary>
/// What a run actually trains, beyond its options: how many of the trainable matrices FLORA compresses (in the
/// momentum and in accumulation), and where LoRA sits with which rank. The run header shows it; a FLORA setting
/// that would compress nothing, and a LoRA rank no matrix can take, are errors rather than silent no-ops.
/// </summary>
internal sealed class RunLayout
{
    private readonly List<string> _parts = new();

    /// <summary>
    /// Wraps the model's projections in LoRA adapters of the run's rank (capped at each matrix's smaller side);
    /// null without LoRA. The adapters made are added to <paramref name="made"/>.
    /// </summary>
    public static Func<Linear, Module>? LoraAdapter(TrainOptions o, ICollection<LoraLinear>? made = null) => o.LoraRank <= 0 ? null : l =>
    {
        var adapter = new LoraLinear(l, Math.Min(o.LoraRank, Math.Min(l.InFeatures, l.OutFeatures)), o.LoraAlpha, Seeds.ForName(o.Seed, l.Name + ".lora"));
        made?.Add(adapter);
        return adapter;
    };

    /// <summary>Describes the run and throws <see cref="ArgumentException"/> for settings that would do nothing.</summary>
    public RunLayout(TrainOptions o, IReadOnlyList<Parameter> trainable, GradientPipeline pipeline, IReadOnlyList<LoraLinear> adapters, ICollection<string> notices)
    {
        var matrices = trainable.Where(p => p.Shape.Rank == 2).ToArray();
        string of = adapters.Count > 0 ? $"{matrices.Length} trainable matrices (LoRA adapters of rank {o.LoraRank})" : $"{matrices.Length} trainable matrices";
        const string rule = "FLORA compresses a matrix when min(n, m) >= r and max(n, m) <= 4 min(n, m)";
        if (adapters.Count > 0)
        {
            int capped = adapters.Count(a => a.Rank < o.LoraRank);
            int largest = adapters.Max(a => Math.Min(a.Base.InFeatures, a.Base.OutFeatures));
            if (capped == adapters.Count)
                throw new ArgumentException($"--lora {o.LoraRank} is larger than every adapted matrix's smaller side (at most {largest}): LoRA's rank must be at most that");
            if (capped > 0)
                notices.Add($"--lora {o.LoraRank} is larger than the smaller side of {capped} of the {adapters.Count} adapted matrices: their adapters have that side's rank instead");
            _parts.Add($"LoRA r = {o.LoraRank} on {adapters.Count} projections (attention and MLP{(capped > 0 ? $"; {capped} capped at their smaller side" : "")}), the rest frozen");
        }
        if (o.Optimizer.Name is "flora" or "adamw-flora" or "galore")
        {
            int compressed = matrices.Count(p => FloraRules.IsEligible(p.Shape, o.Optimizer.Rank));
            string what = o.Optimizer.Name == "galore" ? "GaLore projects" : "FLORA momentum compresses";
            if (compressed == 0)
                throw new ArgumentException($"{what} none of the {of} at rank {o.Optimizer.Rank} ({rule}): use a smaller --rank, or an optimizer without FLORA");
            _parts.Add($"{what} {compressed} of the {matrices.Length} trainable matrices (r = {o.Optimizer.Rank})");
        }
        if (o.Accumulation == AccumulationMode.Compressed)
        {
            int compressed = matrices.Count(p => pipeline.SinkOf(p) is CompressedAccumulateSink);
            if (compressed == 0)
                throw new ArgumentException($"compressed accumulation compresses none of the {of} at rank {o.Pipeline.Rank} ({rule}): use a smaller --rank, or --accumulate naive");
            _parts.Add($"compressed accumulation: {compressed} of the {matrices.Length} trainable matrices (r = {o.Pipeline.Rank}, tau = {o.AccumulationSteps})");
        }
    }

    /// <summary>One line, empty when the run uses neither FLORA nor LoRA.</summary>
    public override string ToString() => string.Join("; ", _parts);
}
