using Flora.Nn;

namespace Flora.Optim;

/// <summary>
/// Parameters that share a learning rate and a weight decay. A null setting falls back to the
/// optimizer's own default, so a group may override only one of them.
/// </summary>
public sealed class ParameterGroup
{
    /// <summary>
    /// A group of <paramref name="parameters"/> with its own <paramref name="learningRate"/> and
    /// <paramref name="weightDecay"/>; null keeps the optimizer's default.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// The learning rate is not positive and finite, or the weight decay not non-negative and finite.
    /// </exception>
    public ParameterGroup(IEnumerable<Parameter> parameters, float? learningRate = null, float? weightDecay = null)
    {
        Parameters = parameters.ToArray();
        if (learningRate is float lr && !(lr > 0 && float.IsFinite(lr)))
            throw new ArgumentException($"group learning rate must be positive and finite, got {lr}", nameof(learningRate));
        if (weightDecay is float wd && !(wd >= 0 && float.IsFinite(wd)))
            throw new ArgumentException($"group weight decay must be non-negative and finite, got {wd}", nameof(weightDecay));
        LearningRate = learningRate;
        WeightDecay = weightDecay;
    }

    /// <summary>The parameters of the group, in the order given.</summary>
    public IReadOnlyList<Parameter> Parameters { get; }
    /// <summary>
    /// The group's learning rate, before <see cref="Optimizer.LearningRateScale"/>; null for the optimizer's default.
    /// </summary>
    public float? LearningRate { get; }
    /// <summary>The group's decoupled weight decay; null for the optimizer's default.</summary>
    public float? WeightDecay { get; }
}
