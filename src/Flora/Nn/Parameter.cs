using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// A trainable tensor with a name (its path in the model, e.g. "h.0.attn.c_attn.weight").
/// <see cref="Grad"/> exists only when a gradient sink keeps a full-size gradient for it
/// (plain accumulation); FLORA's sinks and immediate updates never create it.
/// </summary>
public sealed class Parameter : IDisposable
{
    /// <summary>A parameter named <paramref name="name"/> holding <paramref name="value"/>, which <paramref name="backend"/> allocated.</summary>
    public Parameter(IBackend backend, string name, Tensor value, bool requiresGrad = true)
    {
        Backend = backend;
        Name = name;
        Value = value;
        RequiresGrad = requiresGrad;
    }

    /// <summary>The backend that holds <see cref="Value"/>: optimizers allocate this parameter's state there.</summary>
    public IBackend Backend { get; }

    /// <summary>The parameter's path in its model, e.g. "h.0.attn.c_attn.weight".</summary>
    public string Name { get; }
    /// <summary>
    /// The weights, owned by the parameter: Float32, or BFloat16 for a weight matrix built inside
    /// <see cref="WeightStorage.Use"/>. Optimizers update it in place.
    /// </summary>
    public Tensor Value { get; }
    /// <summary>
    /// The shape of <see cref="Value"/>, e.g. (out, in) for the weight of a <see cref="Linear"/> in the (out, in)
    /// layout.
    /// </summary>
    public Shape Shape => Value.Shape;

    /// <summary>False for frozen weights (LoRA's base matrix): modules then skip their gradient entirely.</summary>
    public bool RequiresGrad { get; set; }

    /// <summary>
    /// How many gradients the parameter receives per backward pass: 2 for an embedding tied to the
    /// output projection. Immediate-update sinks wait for the last one before updating.
    /// </summary>
    public int UsesPerStep { get; set; } = 1;

    /// <summary>Full-size gradient buffer, owned by the parameter once a sink creates it.</summary>
    public Tensor? Grad { get; set; }

    /// <summary>Frees <see cref="Value"/> and, when a sink created one, <see cref="Grad"/>.</summary>
    public void Dispose()
    {
        Value.Dispose();
        Grad?.Dispose();
        Grad = null;
    }

    /// <summary>The name and the shape, followed by "frozen" when <see cref="RequiresGrad"/> is false.</summary>
    public override string ToString() => $"{Name} {Shape}{(RequiresGrad ? "" : " frozen")}";
}
