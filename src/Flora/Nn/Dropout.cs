using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// Inverted dropout with a counter-based mask: the mask of a forward pass is a pure function of the
/// layer's name, the model seed and the step (<see cref="ModelContext.SeedFor"/>), so backward and a
/// recomputed forward regenerate it instead of storing it. Identity when not training or p = 0.
/// </summary>
public sealed class Dropout : Module
{
    private readonly ModelContext _context;
    private ulong _seed;
    private bool _active;

    /// <summary>
    /// Dropout named <paramref name="name"/> (its masks derive from the name) that, while <paramref name="context"/> is
    /// training, zeroes each element with <paramref name="probability"/> p and scales the others by 1 / (1 - p).
    /// </summary>
    /// <exception cref="ArgumentException">p is outside [0, 1).</exception>
    public Dropout(IBackend backend, string name, float probability, ModelContext context) : base(backend, name)
    {
        if (!(probability >= 0 && probability < 1)) throw new ArgumentException($"dropout probability must be in [0, 1), got {probability}");
        Probability = probability;
        _context = context;
    }

    /// <summary>p: the probability that an element is zeroed, in [0, 1).</summary>
    public float Probability { get; }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor x)
    {
        _active = _context.Training && Probability > 0;
        if (!_active) return x;
        _seed = _context.SeedFor(Name);
        Tensor y = Slot("out").Get(x.Shape);
        Backend.Dropout(x, y, Probability, _seed);
        return y;
    }

    /// <inheritdoc/>
    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        if (!ComputesInputGradient) return null;
        if (!_active) return gradOutput;
        Tensor dx = GradientSlot("dx").Get(gradOutput.Shape);
        Backend.Dropout(gradOutput, dx, Probability, _seed);                 // same mask, same scale
        return dx;
    }
}
