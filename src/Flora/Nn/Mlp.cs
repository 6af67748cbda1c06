using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>Feed-forward block, GELU (GPT-2: c_fc, gelu, c_proj) or SwiGLU (Llama: fused gate/up, silu(gate) up, down).</summary>
public sealed class Mlp : Module
{
    private readonly Module _activation;
    private Tensor? _hidden;
    private readonly bool _swiGlu;

    /// <summary>GELU MLP: up (C -&gt; F), GELU, down (F -&gt; C).</summary>
    public Mlp(IBackend backend, string name, Module up, Module down) : base(backend, name)
    {
        Up = up;
        Down = down;
        _activation = new Gelu(backend, Join(name, "act"));
    }

    /// <summary>SwiGLU MLP: gateUp (C -&gt; 2F) holding [gate | up], silu(gate) up, down (F -&gt; C).</summary>
    public Mlp(IBackend backend, string name, Module gateUp, Module down, bool swiGlu) : base(backend, name)
    {
        if (!swiGlu) throw new ArgumentException("use the three-argument constructor for a GELU MLP");
        Up = gateUp;
        Down = down;
        _swiGlu = true;
        _activation = null!;
    }

    /// <summary>The up (or fused gate/up) projection: a <see cref="Linear"/>, or a <see cref="LoraLinear"/> around one.</summary>
    public Module Up { get; }
    public Module Down { get; }

    public override IEnumerable<Module> Children => _swiGlu ? [Up, Down] : [Up, _activation, Down];

    public override Tensor Forward(Tensor x)
    {
        Tensor h = Up.Forward(x);                                              // (N, F) or (N, 2F)
        _hidden = h;
        Tensor a;
        if (_swiGlu)
        {
            a = Slot("act").Get(WithLastDimension(h.Shape, h.Columns / 2));   // (N, F)
            Backend.SwiGlu(h, a);
        }
        else a = _activation.Forward(h);
        return Down.Forward(a);
    }

    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor h = Saved(_hidden);
        Tensor da = Down.Backward(gradOutput, gradients)!;
        Tensor dh;
        if (_swiGlu)
        {
            dh = GradientSlot("dh").Get(h.Shape);
            Backend.SwiGluBackward(h, da, dh);
        }
        else dh = _activation.Backward(da, gradients)!;
        Up.ComputesInputGradient = ComputesInputGradient;
        return Up.Backward(dh, gradients);
    }
}
