namespace Flora.Backends;

/// <summary>
/// Llama 3's rope scaling (Hugging Face's rope_type "llama3"), which stretches the rotary positions of a model trained
/// on <see cref="OriginalContext"/> tokens. With the wavelength w = 2 pi / f of an inverse frequency f:
/// <list type="bullet">
/// <item>w &lt; OriginalContext / HighFrequencyFactor: f is kept (high frequencies, local positions);</item>
/// <item>w &gt; OriginalContext / LowFrequencyFactor: f / Factor (low frequencies);</item>
/// <item>in between: f' = (1 - s) f / Factor + s f with s = (OriginalContext / w - LowFrequencyFactor) /
/// (HighFrequencyFactor - LowFrequencyFactor), a smooth passage between the two.</item>
/// </list>
/// </summary>
/// <param name="Factor">How much longer the new context is (factor: 8 for Llama 3.1, 32 for Llama 3.2).</param>
/// <param name="LowFrequencyFactor">low_freq_factor (1 in Llama 3).</param>
/// <param name="HighFrequencyFactor">high_freq_factor (4 in Llama 3).</param>
/// <param name="OriginalContext">original_max_position_embeddings (8192 in Llama 3).</param>
public sealed record RopeScaling(double Factor, double LowFrequencyFactor, double HighFrequencyFactor, double OriginalContext)
{
    /// <summary>Throws <see cref="ArgumentException"/> naming the first value that makes no sense.</summary>
    public void Validate()
    {
        if (!(Factor >= 1) || !double.IsFinite(Factor)) throw new ArgumentException($"rope scaling: factor must be at least 1, got {Factor}");
        if (!(LowFrequencyFactor > 0) || !(HighFrequencyFactor > LowFrequencyFactor) || !double.IsFinite(HighFrequencyFactor))
            throw new ArgumentException($"rope scaling: low_freq_factor ({LowFrequencyFactor}) must be positive and below high_freq_factor ({HighFrequencyFactor})");
        if (!(OriginalContext > 0) || !double.IsFinite(OriginalContext))
            throw new ArgumentException($"rope scaling: original_max_position_embeddings must be positive, got {OriginalContext}");
    }

    /// <summary>The scaled inverse frequency of <paramref name="inverseFrequency"/> (see the class summary).</summary>
    public double Apply(double inverseFrequency)
    {
        double wavelength = 2 * Math.PI / inverseFrequency;
        if (wavelength < OriginalContext / HighFrequencyFactor) return inverseFrequency;
        if (wavelength > OriginalContext / LowFrequencyFactor) return inverseFrequency / Factor;
        double s = (OriginalContext / wavelength - LowFrequencyFactor) / (HighFrequencyFactor - LowFrequencyFactor);
        return (1 - s) * inverseFrequency / Factor + s * inverseFrequency;
    }

    /// <summary>
    /// The inverse frequency of rotary pair <paramref name="i"/> (i &lt; headDim / 2): theta^(-2i / headDim), then
    /// scaled when <paramref name="scaling"/> is given. In double, the same on every backend.
    /// </summary>
    public static double InverseFrequency(int i, int headDim, double theta, RopeScaling? scaling)
    {
        double f = Math.Pow(theta, -2.0 * i / headDim);
        return scaling is null ? f : scaling.Apply(f);
    }
}
