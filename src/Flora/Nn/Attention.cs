using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// Multi-head self-attention with a fused QKV projection (C -&gt; 3C), optional rotary positions on q and
/// k, causal or not, and an output projection (C -&gt; C). Shapes: x (B, T, C), qkv (B*T, 3C) with q, k,
/// v at column offsets 0, C, 2C, y (B, T, C). Names follow Hugging Face GPT-2: c_attn, c_proj.
/// </summary>
public sealed class SelfAttention : Module
{
    private Tensor? _qkv, _attended;
    private AttentionShape _shape;

    /// <summary>
    /// Self-attention over <paramref name="dimension"/> channels C in <paramref name="heads"/> heads of C / H channels:
    /// <paramref name="qkv"/> maps C to 3C (q, k, v side by side) and <paramref name="output"/> maps C back to C. With
    /// <paramref name="rotaryTheta"/>, q and k get rotary positions of that base.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// C does not split into the heads, or rotary positions meet an odd head size.
    /// </exception>
    public SelfAttention(IBackend backend, string name, int dimension, int heads, bool causal, Module qkv, Module output,
        float? rotaryTheta = null)
        : base(backend, name)
    {
        if (dimension % heads != 0) throw new ArgumentException($"attention '{name}': {dimension} channels do not split into {heads} heads");
        if (rotaryTheta is not null && (dimension / heads) % 2 != 0) throw new ArgumentException($"attention '{name}': rotary positions need an even head dimension, got {dimension / heads}");
        Dimension = dimension;
        Heads = heads;
        Causal = causal;
        Qkv = qkv;
        Output = output;
        RotaryTheta = rotaryTheta;
    }

    /// <summary>C: the model width, the input's last dimension.</summary>
    public int Dimension { get; }
    /// <summary>H: the number of heads, each of C / H channels.</summary>
    public int Heads { get; }
    /// <summary>
    /// Whether position t attends only to positions up to t (decoders) rather than to every position (encoders, ViT).
    /// </summary>
    public bool Causal { get; }
    /// <summary>The fused q, k, v projection (C -&gt; 3C): a <see cref="Linear"/>, or a <see cref="LoraLinear"/> around one.</summary>
    public Module Qkv { get; }
    /// <summary>The output projection (C -&gt; C): a <see cref="Linear"/>, or a <see cref="LoraLinear"/> around one.</summary>
    public Module Output { get; }
    /// <summary>The rotary base theta applied to q and k, or null when positions come from a learned table instead.</summary>
    public float? RotaryTheta { get; }
    private int HeadDim => Dimension / Heads;

    /// <summary>Real keys per batch element when the input is right-padded (an encoder over sources of different lengths); null = all.</summary>
    public int[]? KeyLengths { get; set; }

    /// <summary>
    /// Whether q, k, v (the projection's output) and the attention's output, which backward reads only in products and
    /// the attention kernels, are kept in bf16 (<see cref="IBackend.ActivationType"/>): 4 C of the floats kept per token
    /// stored in half the bytes. Only with a plain <see cref="Linear"/> projection and without rotary positions (which
    /// turn q and k after the projection); set by the block.
    /// </summary>
    public bool KeepsBf16
    {
        get => _bf16;
        set
        {
            _bf16 = value && RotaryTheta is null && Qkv is Linear;
            if (Qkv is Linear qkv) qkv.OutputType = _bf16 ? DType.BFloat16 : DType.Float32;
        }
    }
    private bool _bf16;

    /// <inheritdoc/>
    public override IEnumerable<Module> Children => [Qkv, Output];

    /// <inheritdoc/>
    public override Tensor Forward(Tensor x)
    {
        if (x.Shape.Rank != 3) throw new ArgumentException($"attention '{Name}': input {x.Shape} should be (B, T, C)");
        int b = x.Shape[0], t = x.Shape[1], c = Dimension;
        Tensor qkv = Qkv.Forward(x).View(new Shape(b * t, 3 * c));                         // (B*T, 3C)
        if (RotaryTheta is float theta) Backend.Rotary(qkv, 0, 2 * Heads, HeadDim, t, theta, inverse: false); // rotate q and k
        _shape = new AttentionShape(b, Heads, t, t, HeadDim, Causal, 1f / MathF.Sqrt(HeadDim), KeyLengths);
        // (B*T, C); with bf16 activations written rounded to nearest even by the attention itself
        Tensor attended = (_bf16 ? Slot("att.bf16", DType.BFloat16) : Slot("att")).Get(new Shape(b * t, c));
        Backend.AttentionForward(_shape, new ColumnBlock(qkv, 0), new ColumnBlock(qkv, c), new ColumnBlock(qkv, 2 * c),
            attended, Slot("lse").Get(new Shape(b, Heads, t)));
        _qkv = qkv;
        _attended = attended;
        return Output.Forward(attended.View(new Shape(b, t, c)));                           // (B, T, C)
    }

    /// <inheritdoc/>
    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor qkv = Saved(_qkv), attended = Saved(_attended);
        int c = Dimension, t = _shape.QueryLength;
        Tensor dAttended = Output.Backward(gradOutput, gradients)!.View(attended.Shape);   // (B*T, C)
        Tensor dQkv = GradientSlot("dqkv").Get(qkv.Shape);                                          // (B*T, 3C)
        Backend.AttentionBackward(_shape, dAttended, new ColumnBlock(qkv, 0), new ColumnBlock(qkv, c), new ColumnBlock(qkv, 2 * c),
            attended, Slot("lse").Get(new Shape(_shape.Batch, Heads, t)),
            new ColumnBlock(dQkv, 0), new ColumnBlock(dQkv, c), new ColumnBlock(dQkv, 2 * c));
        if (RotaryTheta is float theta) Backend.Rotary(dQkv, 0, 2 * Heads, HeadDim, t, theta, inverse: true); // R^T on dq, dk
        Qkv.ComputesInputGradient = ComputesInputGradient;
        return Qkv.Backward(dQkv.View(new Shape(_shape.Batch, t, 3 * c)), gradients);
    }
}

/// <summary>
/// Multi-head cross-attention (the T5 decoder's): queries from x (B, Tq, C), keys and values from a
/// memory (B, Tk, C) set with <see cref="SetMemory"/> before Forward. Backward adds the memory's
/// gradient into <see cref="MemoryGradient"/> (callers zero it once per step).
/// </summary>
public sealed class CrossAttention : Module
{
    private Tensor? _memory, _q, _kv, _attended;
    private AttentionShape _shape;

    /// <summary>
    /// Cross-attention over <paramref name="dimension"/> channels C in <paramref name="heads"/> heads: <paramref name="query"/>
    /// maps x to q (C -&gt; C), <paramref name="keyValue"/> maps the memory to k and v side by side (C -&gt; 2C), and
    /// <paramref name="output"/> maps the attended values back (C -&gt; C).
    /// </summary>
    /// <exception cref="ArgumentException">C does not split into the heads.</exception>
    public CrossAttention(IBackend backend, string name, int dimension, int heads, Module query, Module keyValue, Module output)
        : base(backend, name)
    {
        if (dimension % heads != 0) throw new ArgumentException($"attention '{name}': {dimension} channels do not split into {heads} heads");
        Dimension = dimension;
        Heads = heads;
        Query = query;
        KeyValue = keyValue;
        Output = output;
    }

    /// <summary>C: the model width of the queries and of the memory.</summary>
    public int Dimension { get; }
    /// <summary>H: the number of heads, each of C / H channels.</summary>
    public int Heads { get; }
    /// <summary>The query projection applied to x (C -&gt; C).</summary>
    public Module Query { get; }
    /// <summary>The fused key/value projection applied to the memory (C -&gt; 2C): k in columns [0, C), v in [C, 2C).</summary>
    public Module KeyValue { get; }
    /// <summary>The output projection (C -&gt; C).</summary>
    public Module Output { get; }

    /// <inheritdoc/>
    public override IEnumerable<Module> Children => [Query, KeyValue, Output];

    /// <summary>The encoder output the queries attend to, (B, Tk, C), and its real length per batch element (null = all Tk).</summary>
    public void SetMemory(Tensor memory, int[]? lengths = null) => (_memory, _memoryLengths) = (memory, lengths);

    private int[]? _memoryLengths;

    /// <summary>Where backward adds dLoss/dMemory, (B, Tk, C); set by the model.</summary>
    public Tensor? MemoryGradient { get; set; }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor x)
    {
        Tensor memory = _memory ?? throw new InvalidOperationException($"cross-attention '{Name}': SetMemory before Forward");
        int b = x.Shape[0], tq = x.Shape[1], tk = memory.Shape[1], c = Dimension;
        Tensor q = Query.Forward(x).View(new Shape(b * tq, c));                              // (B*Tq, C)
        Tensor kv = KeyValue.Forward(memory).View(new Shape(b * tk, 2 * c));                 // (B*Tk, 2C)
        _shape = new AttentionShape(b, Heads, tq, tk, c / Heads, false, 1f / MathF.Sqrt(c / Heads), _memoryLengths);
        Tensor attended = Slot("att").Get(new Shape(b * tq, c));
        Backend.AttentionForward(_shape, new ColumnBlock(q, 0), new ColumnBlock(kv, 0), new ColumnBlock(kv, c),
            attended, Slot("lse").Get(new Shape(b, Heads, tq)));
        (_q, _kv, _attended) = (q, kv, attended);
        return Output.Forward(attended.View(new Shape(b, tq, c)));
    }

    /// <inheritdoc/>
    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor q = Saved(_q), kv = Saved(_kv), attended = Saved(_attended), memory = Saved(_memory);
        int c = Dimension;
        Tensor dAttended = Output.Backward(gradOutput, gradients)!.View(attended.Shape);
        Tensor dq = GradientSlot("dq").Get(q.Shape), dkv = GradientSlot("dkv").Get(kv.Shape);
        Backend.AttentionBackward(_shape, dAttended, new ColumnBlock(q, 0), new ColumnBlock(kv, 0), new ColumnBlock(kv, c),
            attended, Slot("lse").Get(new Shape(_shape.Batch, Heads, _shape.QueryLength)),
            new ColumnBlock(dq, 0), new ColumnBlock(dkv, 0), new ColumnBlock(dkv, c));
        Tensor? dMemory = KeyValue.Backward(dkv.View(new Shape(_shape.Batch, _shape.KeyLength, 2 * c)), gradients);
        if (dMemory is not null && MemoryGradient is not null) Backend.Axpy(1f, dMemory, MemoryGradient);   // dMemory accumulates over layers
        Query.ComputesInputGradient = ComputesInputGradient;
        return Query.Backward(dq.View(new Shape(_shape.Batch, _shape.QueryLength, c)), gradients);
    }
}
