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

    public Dropout(IBackend backend, string name, float probability, ModelContext context) : base(backend, name)
    {
        if (!(probability >= 0 && probability < 1)) throw new ArgumentException($"dropout probability must be in [0, 1), got {probability}");
        Probability = probability;
        _context = context;
    }

    public float Probability { get; }

    public override Tensor Forward(Tensor x)
    {
        _active = _context.Training && Probability > 0;
        if (!_active) return x;
        _seed = _context.SeedFor(Name);
        Tensor y = Slot("out").Get(x.Shape);
        Backend.Dropout(x, y, Probability, _seed);
        return y;
    }

    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        if (!ComputesInputGradient) return null;
        if (!_active) return gradOutput;
        Tensor dx = GradientSlot("dx").Get(gradOutput.Shape);
        Backend.Dropout(gradOutput, dx, Probability, _seed);                 // same mask, same scale
        return dx;
    }
}
