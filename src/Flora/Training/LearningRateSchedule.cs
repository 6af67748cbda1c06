namespace Flora.Training;

/// <summary>How the learning rate changes over training; <see cref="LearningRateSchedule.Factor"/> multiplies the optimizer's rates.</summary>
public enum ScheduleKind
{
    /// <summary>The same rate throughout (the paper's protocol: no schedule).</summary>
    Constant,
    /// <summary>Linear warm-up from 0 over the warm-up steps, then a cosine decay to <c>MinFactor</c> at the last step.</summary>
    Cosine,
}

/// <summary>
/// The factor a run multiplies every learning rate by at each step (<see cref="Optim.Optimizer.LearningRateScale"/>):
/// 1 throughout, or a linear warm-up to 1 followed by a cosine decay to <paramref name="MinFactor"/> at the last step.
/// </summary>
/// <param name="Kind">Constant or cosine.</param>
/// <param name="WarmupSteps">Steps over which the cosine schedule's factor rises linearly to 1.</param>
/// <param name="TotalSteps">The run's last step, where the cosine decay ends.</param>
/// <param name="MinFactor">The cosine schedule's factor at the last step; 0.1 by default.</param>
public sealed record LearningRateSchedule(ScheduleKind Kind, int WarmupSteps, int TotalSteps, float MinFactor = 0.1f)
{
    /// <summary>
    /// Throws an <see cref="ArgumentException"/> for negative warm-up steps, total steps that are not positive, or a
    /// minimum factor outside [0, 1].
    /// </summary>
    public void Validate()
    {
        if (WarmupSteps < 0) throw new ArgumentException($"warm-up steps must be non-negative, got {WarmupSteps}");
        if (TotalSteps <= 0) throw new ArgumentException($"total steps must be positive, got {TotalSteps}");
        if (!(MinFactor >= 0 && MinFactor <= 1)) throw new ArgumentException($"the minimum factor must be in [0, 1], got {MinFactor}");
    }

    /// <summary>The factor at 1-based <paramref name="step"/>.</summary>
    public float Factor(long step)
    {
        if (Kind == ScheduleKind.Constant) return 1f;
        if (step <= WarmupSteps) return (float)step / WarmupSteps;
        double progress = Math.Clamp((double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps), 0, 1);
        return (float)(MinFactor + (1 - MinFactor) * 0.5 * (1 + Math.Cos(Math.PI * progress)));
    }
}
