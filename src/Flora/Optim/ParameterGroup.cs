using Flora.Nn;

namespace Flora.Optim;

/// <summary>
/// Parameters that share a learning rate and a weight decay. A null setting falls back to the
/// optimizer's own default, so a group may override only one of them.
/// </summary>
public sealed class ParameterGroup
{
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

    public IReadOnlyList<Parameter> Parameters { get; }
    public float? LearningRate { get; }
    public float? WeightDecay { get; }
}
