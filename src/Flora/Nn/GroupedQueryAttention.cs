using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// Causal self-attention with separate q, k and v projections and grouped key/value heads (Llama, Qwen2, Mistral;
/// Ainslie et al. 2023): H query heads of size hd share Hkv key/value heads, H / Hkv query heads per group, with
/// rotary positions on q and k. Shapes (legend: B batch, T time, C model width, H, Hkv, hd as above):
/// <code>
/// q = x Wq^T (+ bq)   (B*T, H hd)        rotary on q and k (rotate-half, theta, optional Llama 3 scaling)
/// k = x Wk^T (+ bk)   (B*T, Hkv hd)      o_h = softmax(q_h k_(h/g)^T / sqrt(hd), causal) v_(h/g)
/// v = x Wv^T (+ bv)   (B*T, Hkv hd)      y = o Wo^T   (B, T, C)
/// </code>
/// Names follow Hugging Face's LlamaAttention: q_proj, k_proj, v_proj, o_proj. H = Hkv is ordinary multi-head attention.
/// </summary>
public sealed class GroupedQueryAttention : Module
{
    private Tensor? _x, _q, _k, _v, _attended;
    private AttentionShape _shape;

    /// <summary>
    /// Attention with <paramref name="heads"/> query heads and <paramref name="keyValueHeads"/> key/value heads of
    /// <paramref name="headDim"/> each; the projections map C to H hd (q), Hkv hd (k, v) and H hd back to C (o).
    /// </summary>
    public GroupedQueryAttention(IBackend backend, string name, int heads, int keyValueHeads, int headDim,
        Module query, Module key, Module value, Module output, float rotaryTheta, RopeScaling? ropeScaling = null)
        : base(backend, name)
    {
        if (heads <= 0 || keyValueHeads <= 0 || heads % keyValueHeads != 0)
            throw new ArgumentException($"attention '{name}': {heads} query heads do not split into groups over {keyValueHeads} key/value heads");
        if (headDim <= 0 || headDim % 2 != 0) throw new ArgumentException($"attention '{name}': rotary positions need an even head dimension, got {headDim}");
        ropeScaling?.Validate();
        (Heads, KeyValueHeads, HeadDim, RotaryTheta, RopeScaling) = (heads, keyValueHeads, headDim, rotaryTheta, ropeScaling);
        (Query, Key, Value, Output) = (query, key, value, output);
    }

    /// <summary>Query heads H.</summary>
    public int Heads { get; }
    /// <summary>Key/value heads Hkv (H / Hkv query heads read each).</summary>
    public int KeyValueHeads { get; }
    /// <summary>Size hd of every head.</summary>
    public int HeadDim { get; }
    /// <summary>Rotary base theta.</summary>
    public float RotaryTheta { get; }
    /// <summary>Llama 3's rope scaling, or null.</summary>
    public RopeScaling? RopeScaling { get; }
    /// <summary>The q projection (C -&gt; H hd): a <see cref="Linear"/>, or a <see cref="LoraLinear"/> around one.</summary>
    public Module Query { get; }
    /// <summary>The k projection (C -&gt; Hkv hd).</summary>
    public Module Key { get; }
    /// <summary>The v projection (C -&gt; Hkv hd).</summary>
    public Module Value { get; }
    /// <summary>The output projection (H hd -&gt; C).</summary>
    public Module Output { get; }

    /// <inheritdoc/>
    public override IEnumerable<Module> Children => [Query, Key, Value, Output];

    /// <summary>
    /// Whether q, k, v (written in bf16 by their products and turned by the rotary positions in bf16) and the attention's
    /// output, which backward reads only in the attention kernels and products, are kept in bf16
    /// (<see cref="IBackend.ActivationType"/>): (2 H + 2 Hkv) hd values per token in half the bytes. Only with plain
    /// <see cref="Linear"/> projections; set by the block.
    /// </summary>
    public bool KeepsBf16
    {
        get => _bf16;
        set
        {
            _bf16 = value && Query is Linear && Key is Linear && Value is Linear;
            foreach (var projection in new[] { Query, Key, Value })
                if (projection is Linear linear) linear.OutputType = _bf16 ? DType.BFloat16 : DType.Float32;
        }
    }
    private bool _bf16;

    /// <inheritdoc/>
    public override Tensor Forward(Tensor x)
    {
        if (x.Shape.Rank != 3) throw new ArgumentException($"attention '{Name}': input {x.Shape} should be (B, T, C)");
        int b = x.Shape[0], t = x.Shape[1], wq = Heads * HeadDim, wkv = KeyValueHeads * HeadDim;
        Tensor q, k, v;
        using (Backend.ReuseOperand(x))                                                      // x feeds three products: converted once
        {
            q = Query.Forward(x).View(new Shape(b * t, wq));                                 // (B*T, H hd)
            k = Key.Forward(x).View(new Shape(b * t, wkv));                                  // (B*T, Hkv hd)
            v = Value.Forward(x).View(new Shape(b * t, wkv));                                // (B*T, Hkv hd)
        }
        Backend.Rotary(q, 0, Heads, HeadDim, t, RotaryTheta, inverse: false, RopeScaling);    // q <- R q
        Backend.Rotary(k, 0, KeyValueHeads, HeadDim, t, RotaryTheta, inverse: false, RopeScaling); // k <- R k
        _shape = new AttentionShape(b, Heads, t, t, HeadDim, true, 1f / MathF.Sqrt(HeadDim), null, KeyValueHeads);
        // (B*T, H hd); with bf16 activations written rounded to nearest even by the attention itself
        Tensor attended = (_bf16 ? Slot("att.bf16", DType.BFloat16) : Slot("att")).Get(new Shape(b * t, wq));
        Backend.AttentionForward(_shape, new ColumnBlock(q, 0), new ColumnBlock(k, 0), new ColumnBlock(v, 0),
            attended, Slot("lse").Get(new Shape(b, Heads, t)));
        (_x, _q, _k, _v, _attended) = (x, q, k, v, attended);
        return Output.Forward(attended.View(new Shape(b, t, wq)));                            // (B, T, C)
    }

    /// <inheritdoc/>
    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor q = Saved(_q), k = Saved(_k), v = Saved(_v), attended = Saved(_attended);
        int b = _shape.Batch, t = _shape.QueryLength;
        Tensor dAttended = Output.Backward(gradOutput, gradients)!.View(attended.Shape);     // (B*T, H hd)
        Tensor dq = GradientSlot("dq").Get(q.Shape), dk = GradientSlot("dk").Get(k.Shape), dv = GradientSlot("dv").Get(v.Shape);
        Backend.AttentionBackward(_shape, dAttended, new ColumnBlock(q, 0), new ColumnBlock(k, 0), new ColumnBlock(v, 0),
            attended, Slot("lse").Get(new Shape(b, Heads, t)), new ColumnBlock(dq, 0), new ColumnBlock(dk, 0), new ColumnBlock(dv, 0));
        Backend.Rotary(dq, 0, Heads, HeadDim, t, RotaryTheta, inverse: true, RopeScaling);   // dq <- R^T dq
        Backend.Rotary(dk, 0, KeyValueHeads, HeadDim, t, RotaryTheta, inverse: true, RopeScaling);
        foreach (var projection in new[] { Query, Key, Value }) projection.ComputesInputGradient = ComputesInputGradient;
        // x feeds q, k and v: dx = dx_q + dx_k + dx_v   (B, T, C), accumulated by the three products where they are plain
        // Linear layers; each weight gradient reads x, converted once
        Tensor x = Saved(_x);
        Tensor? shared = ComputesInputGradient ? Linear.ShareInputGradient(GradientSlot("dx").Get(x.Shape), Query, Key, Value) : null;
        Tensor? dxq, dxk, dxv;
        using (Backend.ReuseOperand(x))
        {
            dxq = Query.Backward(dq.View(new Shape(b, t, dq.Columns)), gradients);
            dxk = Key.Backward(dk.View(new Shape(b, t, dk.Columns)), gradients);
            dxv = Value.Backward(dv.View(new Shape(b, t, dv.Columns)), gradients);
        }
        if (shared is not null || dxq is null || dxk is null || dxv is null) return shared;
        Tensor dx = GradientSlot("dx").Get(dxq.Shape);
        Backend.Add(dxq, dxk, dx);
        Backend.Axpy(1f, dxv, dx);
        return dx;
    }
}
