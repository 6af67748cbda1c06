using Flora.Backends;
using Flora.Nn;

namespace Flora.Optim;

/// <summary>Optimizer settings of the command line and of experiments.</summary>
public sealed record OptimizerSpec
{
    /// <summary>The names <see cref="Create"/> accepts, as <c>flora train --optimizer</c> lists them.</summary>
    public static readonly IReadOnlyList<string> Names = ["flora", "adafactor", "adafactor-momentum", "adamw", "adamw-flora", "sgd", "sgd-momentum", "galore"];

    /// <summary>One of <see cref="Names"/>; "flora" by default.</summary>
    public string Name { get; init; } = "flora";
    /// <summary>
    /// The learning rate before any schedule; 1e-3 by default (<see cref="DefaultLearningRate"/> gives each optimizer's
    /// usual one). Relative to each weight's RMS for the Adafactor-based optimizers.
    /// </summary>
    public float LearningRate { get; init; } = 1e-3f;
    /// <summary>
    /// Weight decay: decoupled for Adafactor, AdamW and GaLore, L2 added to the gradient for SGD; 0 by default.
    /// </summary>
    public float WeightDecay { get; init; }
    /// <summary>The first-moment decay (momentum beta), and SGD's momentum factor for sgd-momentum; 0.9 by default.</summary>
    public float Beta1 { get; init; } = 0.9f;
    /// <summary>r: FLORA's rank (flora, adamw-flora) or GaLore's subspace rank; 32 by default.</summary>
    public int Rank { get; init; } = 32;
    /// <summary>kappa: FLORA's resampling interval, in updates; 1000 by default.</summary>
    public int Kappa { get; init; } = 1000;
    /// <summary>FLORA's momentum variant: the official code's by default (better than Algorithm 2 as printed in our ablation).</summary>
    public FloraVariant Variant { get; init; } = FloraVariant.Official;
    /// <summary>Adafactor's factored second moment (on by default); false is the unfactored (linear-memory) one.</summary>
    public bool Factored { get; init; } = true;
    /// <summary>
    /// Adafactor with momentum (and FLORA): average before clipping (the paper's, the default) or after clipping and the
    /// learning rate (Hugging Face's).
    /// </summary>
    public AdafactorMomentumOrder MomentumOrder { get; init; } = AdafactorMomentumOrder.AverageThenClip;
    /// <summary>Root of FLORA's projection seeds; 0 by default.</summary>
    public ulong Seed { get; init; }
    /// <summary>GaLore: steps between two SVDs of the gradient (update_proj_gap); 200 by default, the GaLore paper's.</summary>
    public int GaLoreGap { get; init; } = 200;
    /// <summary>GaLore: the scale alpha of the projected-back update; 0.25 by default, the GaLore paper's.</summary>
    public float GaLoreScale { get; init; } = 0.25f;

    /// <summary>
    /// A learning rate that works for each optimizer on the small models: Adafactor-based ones scale it by
    /// each weight's RMS (scale_parameter), so their rate is relative and larger than Adam's.
    /// </summary>
    public static float DefaultLearningRate(string name) => name switch
    {
        "flora" or "adafactor" or "adafactor-momentum" => 3e-2f,
        "adamw" or "adamw-flora" or "galore" => 1e-3f,
        _ => 0.1f,
    };

    /// <summary>One line for logs: the optimizer and the settings that matter for it.</summary>
    public override string ToString() => Name switch
    {
        "flora" => $"Flora (Adafactor, compressed momentum beta {Beta1}, r = {Rank}, kappa = {Kappa}, {Variant.ToString().ToLowerInvariant()}{(Factored ? "" : ", unfactored")}{Order}), lr {LearningRate}",
        "adamw-flora" => $"AdamW with FLORA momentum (r = {Rank}, kappa = {Kappa}), lr {LearningRate}, weight decay {WeightDecay}",
        "adafactor-momentum" => $"Adafactor with naive momentum {Beta1}{(Factored ? "" : ", unfactored")}{Order}, lr {LearningRate}",
        "adafactor" => $"Adafactor{(Factored ? "" : " (unfactored)")}, lr {LearningRate}",
        "adamw" => $"AdamW, lr {LearningRate}, weight decay {WeightDecay}",
        "galore" => $"GaLore (AdamW in the gradient's rank-{Rank} SVD subspace, refreshed every {GaLoreGap} steps, scale {GaLoreScale}), lr {LearningRate}, weight decay {WeightDecay}",
        _ => $"{Name}, lr {LearningRate}",
    };

    private string Order => MomentumOrder == AdafactorMomentumOrder.ClipThenAverage ? ", momentum after clipping (Hugging Face's order)" : "";

    /// <summary>
    /// The optimizer <see cref="Name"/> names, with these settings, for <paramref name="parameters"/>, its state on
    /// <paramref name="backend"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The name is unknown, or a setting is out of range for that optimizer.</exception>
    public Optimizer Create(IBackend backend, IEnumerable<Parameter> parameters)
    {
        var p = parameters.ToArray();
        AdafactorOptions Adafactor(MomentumOptions m) => new() { LearningRate = LearningRate, WeightDecay = WeightDecay, Factored = Factored, Momentum = m, MomentumOrder = MomentumOrder };
        return Name switch
        {
            "flora" => new FloraAdafactor(backend, p, Adafactor(MomentumOptions.Flora(Rank, Beta1, Kappa, Variant, Seed))),
            "adafactor" => new Adafactor(backend, p, Adafactor(MomentumOptions.None)),
            "adafactor-momentum" => new Adafactor(backend, p, Adafactor(MomentumOptions.Naive(Beta1))),
            "adamw" => new AdamW(backend, p, LearningRate, Beta1, weightDecay: WeightDecay),
            "adamw-flora" => new AdamW(backend, p, LearningRate, Beta1, weightDecay: WeightDecay, momentum: MomentumOptions.Flora(Rank, Beta1, Kappa, Variant, Seed)),
            "sgd" => new Sgd(backend, p, LearningRate, weightDecay: WeightDecay),
            "sgd-momentum" => new Sgd(backend, p, LearningRate, Beta1, weightDecay: WeightDecay),
            "galore" => new GaLore(backend, p, LearningRate, Rank, GaLoreGap, GaLoreScale, Beta1, weightDecay: WeightDecay),
            _ => throw new ArgumentException($"unknown optimizer '{Name}': choose one of {string.Join(", ", Names)}"),
        };
    }
}
