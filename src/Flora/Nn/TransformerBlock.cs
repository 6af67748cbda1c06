using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// A pre-norm residual block:
/// <code>
/// h = x + drop(attention(norm1(x)))
/// y = h + drop(mlp(norm2(h)))
/// </code>
/// With an optional cross-attention between the two (the T5 decoder):
/// h2 = h + drop(cross(normCross(h))), and the MLP then reads h2.
/// With activation checkpointing the block keeps only its input: its internals live in a scope
/// shared by all checkpointed blocks, and backward recomputes them (same dropout masks) first.
/// </summary>
public sealed class TransformerBlock : Module
{
    private readonly Module _norm1, _norm2;
    private readonly Module _attention;
    private readonly Mlp _mlp;
    private readonly Module? _normCross;
    private readonly CrossAttention? _cross;
    private readonly Dropout _dropAttention, _dropMlp, _dropCross;
    private ActivationScope? _shared;
    private Tensor? _input;

    /// <summary>
    /// A block named <paramref name="name"/> of <paramref name="norm1"/>, <paramref name="attention"/>,
    /// <paramref name="norm2"/> and <paramref name="mlp"/>, with <paramref name="normCross"/> and <paramref name="cross"/>
    /// between them in a decoder block that attends to an encoder (T5). Each residual branch gets dropout of probability
    /// <paramref name="dropout"/>, its masks drawn under <paramref name="context"/>.
    /// </summary>
    public TransformerBlock(IBackend backend, string name, Module norm1, Module attention, Module norm2, Mlp mlp,
        float dropout, ModelContext context, Module? normCross = null, CrossAttention? cross = null)
        : base(backend, name)
    {
        _norm1 = norm1;
        _attention = attention;
        _norm2 = norm2;
        _mlp = mlp;
        _normCross = normCross;
        _cross = cross;
        _dropAttention = new Dropout(backend, Join(name, "drop_attn"), dropout, context);
        _dropMlp = new Dropout(backend, Join(name, "drop_mlp"), dropout, context);
        _dropCross = new Dropout(backend, Join(name, "drop_cross"), dropout, context);
    }

    /// <summary>The self-attention: a <see cref="SelfAttention"/> (fused qkv) or a <see cref="GroupedQueryAttention"/>.</summary>
    public Module Attention => _attention;
    /// <summary>The cross-attention of a decoder block that reads an encoder's output (T5), else null.</summary>
    public CrossAttention? Cross => _cross;
    /// <summary>The feed-forward branch.</summary>
    public Mlp Mlp => _mlp;
    /// <summary>
    /// Whether activation checkpointing is on (<see cref="EnableCheckpointing"/>): the block keeps only its input and
    /// recomputes its internals at the start of backward.
    /// </summary>
    public bool Checkpointed => _shared is not null;

    /// <inheritdoc/>
    public override IEnumerable<Module> Children =>
        _cross is null
            ? [_norm1, _attention, _dropAttention, _norm2, _mlp, _dropMlp]
            : [_norm1, _attention, _dropAttention, _normCross!, _cross, _dropCross, _norm2, _mlp, _dropMlp];

    /// <summary>Internals go to <paramref name="shared"/>, shared with the other checkpointed blocks; backward recomputes them.</summary>
    public void EnableCheckpointing(ActivationScope shared)
    {
        _shared = shared;
        RecomputesCheapActivations = false;                                     // the whole block is recomputed anyway
        int i = 0;
        foreach (var child in Children) child.ShareActivations(shared, $"block.{i++}.");
    }

    /// <summary>Internal buffers: in the shared scope when checkpointed.</summary>
    private TensorSlot Internal(string role) => _shared?.Slot("block." + role) ?? Slot(role);

    /// <summary>Where backward writes the block's input gradient; set by <see cref="ShareGradientBuffers"/>.</summary>
    private TensorSlot? _outputGradient;

    /// <summary>
    /// Lets the blocks of a stack share their backward buffers (only one block is in backward at a time):
    /// one scope for every block's internal gradients, and two buffers for the gradients passed between
    /// blocks, used alternately so that a block never writes the gradient it is reading. Returns the
    /// scopes, for the model to dispose.
    /// </summary>
    public static IDisposable ShareGradientBuffers(IReadOnlyList<TransformerBlock> blocks, Flora.Backends.IBackend backend)
    {
        var internals = new ActivationScope(backend);
        var passed = new ActivationScope(backend);
        for (int i = 0; i < blocks.Count; i++)
        {
            var block = blocks[i];
            int j = 0;
            foreach (var child in block.Children) child.ShareGradients(internals, $"{j++}.");
            block.ShareGradientsOf(internals);
            block._outputGradient = passed.Slot(i % 2 == 0 ? "even" : "odd");
            block.RecomputesCheapActivations = !block.Checkpointed && RecomputeByDefault;
        }
        return new Scopes(internals, passed);
    }

    /// <summary>
    /// Whether blocks that share their backward buffers recompute their norms' outputs and the MLP's activation in
    /// backward instead of keeping them (on; FLORA_RECOMPUTE=off turns it off, for comparisons).
    /// </summary>
    internal static bool RecomputeByDefault => Environment.GetEnvironmentVariable("FLORA_RECOMPUTE") != "off";

    /// <summary>
    /// Whether blocks that recompute their cheap activations, or the whole block (checkpointed), also keep q, k, v, the
    /// attention output and the MLP's pre-activation in bf16 when the backend asks for it (<see cref="IBackend.ActivationType"/>;
    /// on, and FLORA_BF16_ACTIVATIONS=off turns it off, for comparisons).
    /// </summary>
    internal static bool Bf16ActivationsByDefault => Environment.GetEnvironmentVariable("FLORA_BF16_ACTIVATIONS") != "off";

    /// <summary>
    /// Whether the block keeps the outputs of its two norms and the MLP's activation (GELU's output, or silu(gate) up)
    /// only in the buffers shared by all blocks (<see cref="ShareGradientBuffers"/>) and recomputes them in backward, right
    /// before the layers that saved them need them; the outputs of the attention's and the MLP's output projections,
    /// which only the residual adds read, go there too. Per token, 4 C + F floats fewer per block (for GPT-2: 8 C of
    /// about 18 C), for two norm passes and one activation pass more per block. The recomputation gives the same bits.
    /// Off under activation checkpointing, which recomputes the whole block.
    /// </summary>
    public bool RecomputesCheapActivations
    {
        get => _recomputes;
        set
        {
            _recomputes = value;
            if (_norm1 is IRecomputable n1) n1.RecomputesOutput = value;
            if (_norm2 is IRecomputable n2) n2.RecomputesOutput = value;
            _mlp.RecomputesActivation = value;
            // The branches' output projections feed only the residual adds: one shared buffer serves every block.
            Module? attentionOutput = _attention switch { SelfAttention a => a.Output, GroupedQueryAttention a => a.Output, _ => null };
            foreach (var projection in new[] { attentionOutput, _mlp.Down })
                if (((projection as LoraLinear)?.Base ?? projection as Linear) is Linear linear) linear.OutputIsTransient = value;
            // In bf16 precision mode the activations that backward reads only in products are kept in bf16 (each written
            // rounded by the op that computes it): q, k, v, the attention's output and the MLP's pre-activation, 8 C of the
            // 10 C floats a GPT-2 block keeps per token; so are the recomputed values that only products read (the norms'
            // outputs feeding the input projections, GELU's output). The residual stream (the input x and h) stays fp32: it
            // is the running sum of every block's small updates, which rounding to bf16's 8-bit mantissa would lose, and
            // the norms read it, not products.
            // The Llama family keeps the same in bf16: q, k and v (turned by the rotary positions in bf16), the attention's
            // output, SwiGLU's gate and up, and the recomputed RMSNorm outputs and silu(gate) up.
            // A checkpointed block recomputes everything, and its internals (the norms' outputs and the MLP's activation
            // kept, not recomputed, while backward runs through it) are bf16 where only products read them, too.
            bool bf16 = (value || Checkpointed) && Backend.ActivationType == DType.BFloat16 && Bf16ActivationsByDefault;
            if (_attention is SelfAttention self) self.KeepsBf16 = bf16;
            if (_attention is GroupedQueryAttention grouped) grouped.KeepsBf16 = bf16;
            bool attentionBf16 = _attention is SelfAttention { KeepsBf16: true } or GroupedQueryAttention { KeepsBf16: true };
            _mlp.KeepsBf16 = bf16;
            if (_norm1 is NormLayer norm1) norm1.OutputType = attentionBf16 ? DType.BFloat16 : DType.Float32;
            if (_norm2 is NormLayer norm2) norm2.OutputType = _mlp.KeepsBf16 ? DType.BFloat16 : DType.Float32;
        }
    }
    private bool _recomputes;

    private void ShareGradientsOf(ActivationScope internals) => _internalGradients = internals;

    private ActivationScope? _internalGradients;

    /// <summary>Internal backward buffers: shared across blocks when the model asked for it.</summary>
    private TensorSlot InternalGradient(string role) => _internalGradients?.Slot("block." + role) ?? Internal(role);

    private sealed class Scopes(ActivationScope a, ActivationScope b) : IDisposable
    {
        public void Dispose()
        {
            a.Dispose();
            b.Dispose();
        }
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor x)
    {
        _input = x;
        Tensor h = Internal("h").Get(x.Shape);
        Branch(_attention, _dropAttention, AttentionOutput, _norm1, x, h);      // h = x + attn
        if (_cross is not null)
        {
            Tensor c = _dropCross.Forward(_cross.Forward(_normCross!.Forward(h)));
            Tensor h2 = Internal("h2").Get(x.Shape);
            Backend.Add(h, c, h2);                                              // h2 = h + cross
            h = h2;
        }
        Tensor y = Slot("y").Get(x.Shape);                                      // private: the next block's saved input
        Branch(_mlp, _dropMlp, _mlp.Down as Linear, _norm2, h, y);              // y = h + mlp
        return y;
    }

    /// <summary>
    /// sum = x + dropout(branch(norm(x))). Without dropout the branch's output projection does the add in its product
    /// (<see cref="Linear.AddNextOutputTo"/>): no branch output and no separate add.
    /// </summary>
    private void Branch(Module branch, Dropout dropout, Linear? projection, Module norm, Tensor x, Tensor sum)
    {
        if (dropout.Probability == 0 && projection is { OutputType: DType.Float32 })
        {
            projection.AddNextOutputTo(x, sum);
            try
            {
                Tensor written = dropout.Forward(branch.Forward(norm.Forward(x)));
                if (written.Pointer != sum.Pointer) throw new InvalidOperationException($"block '{Name}': the branch did not end in its output projection");
            }
            finally { projection.CancelOutputAdd(); }                           // a branch that failed leaves no add behind
            return;
        }
        Backend.Add(x, dropout.Forward(branch.Forward(norm.Forward(x))), sum);
    }

    /// <summary>The attention's output projection when it is a plain <see cref="Linear"/> (not LoRA-wrapped).</summary>
    private Linear? AttentionOutput => (_attention switch { SelfAttention a => a.Output, GroupedQueryAttention a => a.Output, _ => null }) as Linear;

    /// <inheritdoc/>
    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor x = Saved(_input);
        if (Checkpointed) Forward(x);                                           // recompute the internals
        // y = h + mlp(norm2(h)):  dh = dy + norm2'(mlp'(dy))
        Tensor dh = InternalGradient("dh").Get(x.Shape);
        (_norm2 as IRecomputable)?.RecomputeOutput();                           // the MLP's saved input
        ThroughNorm(_norm2, _mlp.Backward(_dropMlp.Backward(gradOutput, gradients)!, gradients)!, gradients, gradOutput, dh);
        if (_cross is not null)
        {
            // h2 = h + cross(normCross(h)):  dh = dh2 + normCross'(cross'(dh2))
            Tensor dh1 = InternalGradient("dh1").Get(x.Shape);
            ThroughNorm(_normCross!, _cross.Backward(_dropCross.Backward(dh, gradients)!, gradients)!, gradients, dh, dh1);
            dh = dh1;
        }
        // h = x + attn(norm1(x)):  dx = dh + norm1'(attn'(dh))
        (_norm1 as IRecomputable)?.RecomputeOutput();                           // the attention's saved input
        Tensor dx = (_outputGradient ?? Slot("dx")).Get(x.Shape);
        ThroughNorm(_norm1, _attention.Backward(_dropAttention.Backward(dh, gradients)!, gradients)!, gradients, dh, dx);
        return dx;
    }

    /// <summary>destination = skip + norm'(branch): in the norm's own pass where it can fold the skip connection in.</summary>
    private void ThroughNorm(Module norm, Tensor branch, IGradientSink gradients, Tensor skip, Tensor destination)
    {
        if (norm is IResidualNorm folding && norm.ComputesInputGradient) folding.BackwardWithResidual(branch, gradients, skip, destination);
        else Backend.Add(skip, norm.Backward(branch, gradients)!, destination);
    }
}
