using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// Feed-forward block: GELU (GPT-2: c_fc, gelu, c_proj) or SwiGLU (Llama: down(silu(gate(x)) up(x)), with separate
/// gate_proj, up_proj and down_proj as Hugging Face names them). Shapes: x (N, C), hidden (N, F), y (N, C).
/// </summary>
public sealed class Mlp : Module
{
    private readonly Gelu? _activation;
    private Tensor? _input, _hidden, _gate, _activated;

    /// <summary>GELU MLP: up (C -&gt; F), GELU, down (F -&gt; C).</summary>
    public Mlp(IBackend backend, string name, Module up, Module down) : base(backend, name)
    {
        Up = up;
        Down = down;
        _activation = new Gelu(backend, Join(name, "act"));
    }

    /// <summary>SwiGLU MLP: gate and up (C -&gt; F each), silu(gate) up, down (F -&gt; C).</summary>
    public Mlp(IBackend backend, string name, Module gate, Module up, Module down) : base(backend, name)
    {
        Gate = gate;
        Up = up;
        Down = down;
    }

    /// <summary>The gate projection of a SwiGLU MLP (null for GELU).</summary>
    public Module? Gate { get; }
    /// <summary>The up projection: a <see cref="Linear"/>, or a <see cref="LoraLinear"/> around one.</summary>
    public Module Up { get; }
    /// <summary>The down projection (F -&gt; C).</summary>
    public Module Down { get; }

    /// <inheritdoc/>
    public override IEnumerable<Module> Children => Gate is not null ? [Gate, Up, Down] : [Up, _activation!, Down];

    /// <inheritdoc/>
    public override Tensor Forward(Tensor x)
    {
        if (Gate is null && KeepsBf16 && Up is Linear { Bias: not null } fused)
        {
            // bf16: the up projection's product adds the bias and applies GELU in its epilogue, keeping h for backward.
            (_hidden, Tensor a) = fused.ForwardGelu(x, _activation!);          // (N, F) each
            return Down.Forward(a);                                            // (N, C)
        }
        if (Gate is null)
        {
            Tensor h = Up.Forward(x);                                          // (N, F)
            _hidden = h;
            return Down.Forward(_activation!.Forward(h));                      // (N, C)
        }
        Tensor g, u;
        using (Backend.ReuseOperand(x))                                        // x feeds both products: converted once
            (g, u) = (Gate.Forward(x), Up.Forward(x));                         // (N, F) each
        (_input, _gate, _hidden) = (x, g, u);
        _activated = (_bf16 ? OutputSlot("act.bf16", RecomputesActivation, DType.BFloat16) : OutputSlot("act", RecomputesActivation)).Get(u.Shape);   // (N, F)
        Backend.SwiGlu(g, u, _activated);                                      // a = silu(g) u
        return Down.Forward(_activated);                                       // (N, C)
    }

    /// <summary>
    /// Whether the activation (GELU's output, or silu(gate) up) lives in the blocks' shared backward buffers and is
    /// recomputed at the start of <see cref="Backward"/>, before the down projection reads it (its saved input). The MLP's
    /// own output is the down projection's and stays.
    /// </summary>
    public bool RecomputesActivation
    {
        get => _recomputes;
        set
        {
            _recomputes = value;
            if (_activation is not null) _activation.RecomputesOutput = value;
        }
    }
    private bool _recomputes;

    /// <summary>
    /// Whether the MLP keeps in bf16 (<see cref="IBackend.ActivationType"/>) what backward reads only in elementwise
    /// derivatives and products: a GELU MLP its pre-activation (the up projection's output; 4 C floats per token), a
    /// SwiGLU MLP its gate and up (2 F) and their gradients, with silu(gate) up written in bf16 too. Only with plain
    /// <see cref="Linear"/> projections; set by the block.
    /// </summary>
    public bool KeepsBf16
    {
        get => _bf16;
        set
        {
            _bf16 = value && Up is Linear && (Gate is null || Gate is Linear);
            foreach (var projection in new[] { Gate, Up })
                if (projection is Linear linear) linear.OutputType = _bf16 ? DType.BFloat16 : DType.Float32;
        }
    }
    private bool _bf16;

    /// <summary>Recomputes the activation (<see cref="RecomputesActivation"/>) before the down projection's backward.</summary>
    private void RecomputeActivation()
    {
        if (!_recomputes) return;
        if (_activation is not null) _activation.RecomputeOutput();
        else Backend.SwiGlu(Saved(_gate), Saved(_hidden), Saved(_activated));
    }

    /// <inheritdoc/>
    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor h = Saved(_hidden);
        RecomputeActivation();                                                 // the down projection's saved input
        Up.ComputesInputGradient = ComputesInputGradient;
        if (Gate is null && KeepsBf16 && Down is Linear down)
        {
            // bf16: GELU's backward rides on the down projection's input-gradient product, dh = (dy W) GELU'(h).
            down.GeluPreActivation = h;
            try { return Up.Backward(down.Backward(gradOutput, gradients)!, gradients); }
            finally { down.GeluPreActivation = null; }
        }
        Tensor da = Down.Backward(gradOutput, gradients)!;                     // (N, F)
        if (Gate is null) return Up.Backward(_activation!.Backward(da, gradients)!, gradients);
        Tensor g = Saved(_gate);
        DType gradientType = _bf16 ? DType.BFloat16 : DType.Float32;                 // read only by the two products
        Tensor dg = GradientSlot("dgate" + (_bf16 ? ".bf16" : ""), gradientType).Get(g.Shape), du = GradientSlot("dup" + (_bf16 ? ".bf16" : ""), gradientType).Get(h.Shape);
        Backend.SwiGluBackward(g, h, da, dg, du);                              // dg = da u silu'(g), du = da silu(g)
        Gate.ComputesInputGradient = ComputesInputGradient;
        // x feeds gate and up: dx = dx_gate + dx_up   (N, C), accumulated by the two products where they are plain Linear
        // layers; both weight gradients read x, converted once
        Tensor x = Saved(_input);
        Tensor? shared = ComputesInputGradient ? Linear.ShareInputGradient(GradientSlot("dx").Get(x.Shape), Gate, Up) : null;
        Tensor? dxGate, dxUp;
        using (Backend.ReuseOperand(x))
            (dxGate, dxUp) = (Gate.Backward(dg, gradients), Up.Backward(du, gradients));
        if (shared is not null || dxGate is null || dxUp is null) return shared;
        Tensor dx = GradientSlot("dx").Get(dxGate.Shape);
        Backend.Add(dxGate, dxUp, dx);
        return dx;
    }
}
