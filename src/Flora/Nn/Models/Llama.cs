using Flora.Backends;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Nn.Models;

/// <summary>
/// Sizes of a Llama-style decoder: L layers, H query heads, C channels, SwiGLU width F, vocabulary V, the longest
/// sequence (context) and the rotary base theta; the init properties add what the Llama family varies: grouped
/// key/value heads, an explicit head size, the RMSNorm epsilon, tied embeddings, q/k/v biases (Qwen2), Llama 3's rope
/// scaling and a sliding attention window (Mistral: sequences must fit in it).
/// </summary>
/// <param name="Layers">L: decoder blocks (num_hidden_layers).</param>
/// <param name="Heads">H: query heads (num_attention_heads).</param>
/// <param name="Embed">C: the model width (hidden_size).</param>
/// <param name="Intermediate">F: the width of the SwiGLU's gate and up projections (intermediate_size).</param>
/// <param name="Vocabulary">V: rows of the token embedding (vocab_size).</param>
/// <param name="Context">The longest sequence (max_position_embeddings); positions are rotary, so no table depends on it.</param>
/// <param name="RopeTheta">The rotary base theta (rope_theta; 10000 by default).</param>
public sealed record LlamaConfig(int Layers, int Heads, int Embed, int Intermediate, int Vocabulary, int Context, float RopeTheta = 10000f)
{
    /// <summary>Key/value heads Hkv (grouped-query attention); null means H.</summary>
    public int? KeyValueHeads { get; init; }

    /// <summary>Size hd of a head; null means C / H.</summary>
    public int? HeadDim { get; init; }

    /// <summary>RMSNorm epsilon (Hugging Face's rms_norm_eps); 1e-6 by default.</summary>
    public float NormEps { get; init; } = 1e-6f;

    /// <summary>The output projection reuses the token embedding (tie_word_embeddings); off by default.</summary>
    public bool TiedEmbeddings { get; init; }

    /// <summary>q, k and v projections with biases (Qwen2); off by default.</summary>
    public bool AttentionBias { get; init; }

    /// <summary>Llama 3's rope scaling, or null for plain rotary positions.</summary>
    public RopeScaling? RopeScaling { get; init; }

    /// <summary>Mistral's sliding attention window: sequences longer than it are refused (null: no window).</summary>
    public int? SlidingWindow { get; init; }

    /// <summary>Key/value heads in effect.</summary>
    public int KvHeads => KeyValueHeads ?? Heads;

    /// <summary>Head size in effect.</summary>
    public int HeadSize => HeadDim ?? (Heads > 0 ? Embed / Heads : 0);

    /// <summary>The paper's Table 6 scale for GaLore comparisons starts at 60M; this is a CPU-sized one.</summary>
    public static LlamaConfig Small(int vocabulary) => new(4, 4, 256, 688, vocabulary, 256);
    /// <summary>Two layers of 64 channels: trains in seconds on a CPU.</summary>
    public static LlamaConfig Tiny(int vocabulary) => new(2, 2, 64, 172, vocabulary, 64);
    /// <summary>About 60M parameters with a 32000 vocabulary (GaLore's smallest Llama).</summary>
    public static LlamaConfig Llama60M(int vocabulary = 32000) => new(8, 8, 512, 1376, vocabulary, 256);

    /// <summary>The shape of Llama 3.2 1B: 16 layers, 2048 channels, 32 heads over 8 key/value heads, SwiGLU 8192, tied, llama3 rope scaling.</summary>
    public static LlamaConfig Llama32_1B(int vocabulary = 128256, int context = 131072) =>
        new(16, 32, 2048, 8192, vocabulary, context, 500000f) { KeyValueHeads = 8, HeadDim = 64, NormEps = 1e-5f, TiedEmbeddings = true, RopeScaling = Llama3Scaling };

    /// <summary>The shape of Llama 3.2 3B: 28 layers, 3072 channels, 24 heads of 128 over 8 key/value heads, SwiGLU 8192, tied.</summary>
    public static LlamaConfig Llama32_3B(int vocabulary = 128256, int context = 131072) =>
        new(28, 24, 3072, 8192, vocabulary, context, 500000f) { KeyValueHeads = 8, HeadDim = 128, NormEps = 1e-5f, TiedEmbeddings = true, RopeScaling = Llama3Scaling };

    /// <summary>The shape of Llama 2 7B: 32 layers, 4096 channels, 32 heads, SwiGLU 11008, untied, theta 10000.</summary>
    public static LlamaConfig Llama2_7B(int vocabulary = 32000, int context = 4096) =>
        new(32, 32, 4096, 11008, vocabulary, context, 10000f) { NormEps = 1e-5f };

    /// <summary>Llama 3.1 and 3.2's rope scaling: factor 32, low 1, high 4, trained on 8192 positions.</summary>
    private static RopeScaling Llama3Scaling => new(32, 1, 4, 8192);

    /// <summary>
    /// Parameters of a model of these sizes, counted from the shapes alone (nothing allocated): the embedding, per layer
    /// q (C, H hd), k and v (C, Hkv hd), their biases when present, o (H hd, C), gate, up and down (C F each) and two
    /// norms, the final norm, and the output projection unless tied.
    /// </summary>
    public long ParameterCount
    {
        get
        {
            long c = Embed, f = Intermediate, q = (long)Heads * HeadSize, kv = (long)KvHeads * HeadSize;
            long attention = c * q + 2 * c * kv + q * c + (AttentionBias ? q + 2 * kv : 0);
            long layer = attention + 3 * c * f + 2 * c;
            return (long)Vocabulary * c + Layers * layer + c + (TiedEmbeddings ? 0 : (long)Vocabulary * c);
        }
    }

    /// <summary>
    /// Throws an <see cref="ArgumentException"/> naming the first problem: a size that is not positive, channels that do
    /// not split into heads, an odd head size, query heads that do not split into key/value groups, a non-positive theta,
    /// epsilon or sliding window, or invalid rope scaling.
    /// </summary>
    public void Validate()
    {
        if (Layers <= 0 || Heads <= 0 || Embed <= 0 || Intermediate <= 0 || Vocabulary <= 0 || Context <= 0)
            throw new ArgumentException($"Llama sizes must be positive: {this}");
        if (HeadDim is null && Embed % Heads != 0) throw new ArgumentException($"Llama: {Embed} channels do not split into {Heads} heads");
        if (HeadSize <= 0 || HeadSize % 2 != 0) throw new ArgumentException($"Llama: rotary positions need an even head size, got {HeadSize}");
        if (KvHeads <= 0 || Heads % KvHeads != 0) throw new ArgumentException($"Llama: {Heads} query heads do not split into groups over {KvHeads} key/value heads");
        if (!(RopeTheta > 0) || !float.IsFinite(RopeTheta)) throw new ArgumentException($"Llama: rope theta must be positive, got {RopeTheta}");
        if (!(NormEps > 0)) throw new ArgumentException($"Llama: the RMSNorm epsilon must be positive, got {NormEps}");
        if (SlidingWindow is <= 0) throw new ArgumentException($"Llama: the sliding window must be positive, got {SlidingWindow}");
        RopeScaling?.Validate();
    }
}

/// <summary>
/// A Llama-style decoder (Llama 2 and 3, Qwen2, Mistral): RMSNorm pre-norm blocks, grouped-query attention with
/// rotary positions (rotate-half, optional Llama 3 scaling), a SwiGLU MLP, no biases except Qwen2's on q, k and v,
/// the output projection tied to the embedding or not. Every parameter has Hugging Face's LlamaForCausalLM name:
/// model.embed_tokens, model.layers.{i}.input_layernorm, self_attn.{q,k,v,o}_proj, post_attention_layernorm,
/// mlp.{gate,up,down}_proj, model.norm, lm_head. q, k, v, gate and up are separate matrices, as in the checkpoints:
/// each gets its own optimizer state, FLORA's rule decides for each on its own shape (a fused gate/up of 2F x C would
/// fail its 4:1 test at every published size), and LoRA targets each by its name.
/// </summary>
public sealed class Llama : LanguageModel
{
    private readonly Embedding _embed;
    private readonly TransformerBlock[] _blocks;
    private readonly RmsNorm _norm;
    private readonly OutputHead _head;

    /// <summary>
    /// A Llama-style decoder of <paramref name="config"/>'s sizes on <paramref name="backend"/>, its random weights
    /// drawn N(0, 0.02^2) from seeds derived from <paramref name="seed"/> and each parameter's name.
    /// <paramref name="adapt"/>, when given, wraps each of q, k, v, o, gate, up and down (e.g. in a
    /// <see cref="LoraLinear"/>).
    /// </summary>
    /// <exception cref="ArgumentException">The sizes are invalid (<see cref="LlamaConfig.Validate"/>).</exception>
    public Llama(IBackend backend, LlamaConfig config, ulong seed = 0, Func<Linear, Module>? adapt = null) : base(backend, "", new ModelContext { Seed = seed })
    {
        config.Validate();
        Config = config;
        int c = config.Embed, f = config.Intermediate, hd = config.HeadSize, wq = config.Heads * hd, wkv = config.KvHeads * hd;
        bool bias = config.AttentionBias;
        const float std = 0.02f;
        ulong Seed(string name) => Seeds.ForName(seed, name);
        Module A(Linear l) => adapt?.Invoke(l) ?? l;                          // LoRA hook for attention and MLP projections
        Linear Projection(string name, int inFeatures, int outFeatures, bool withBias = false) =>
            new(backend, name, inFeatures, outFeatures, withBias, Seed(name), WeightLayout.OutIn, std);
        _embed = new Embedding(backend, "model.embed_tokens", config.Vocabulary, c, Seed("embed"), std);
        _blocks = new TransformerBlock[config.Layers];
        for (int i = 0; i < config.Layers; i++)
        {
            string l = $"model.layers.{i}";
            var attention = new GroupedQueryAttention(backend, $"{l}.self_attn", config.Heads, config.KvHeads, hd,
                A(Projection($"{l}.self_attn.q_proj", c, wq, bias)), A(Projection($"{l}.self_attn.k_proj", c, wkv, bias)),
                A(Projection($"{l}.self_attn.v_proj", c, wkv, bias)), A(Projection($"{l}.self_attn.o_proj", wq, c)),
                config.RopeTheta, config.RopeScaling);
            var mlp = new Mlp(backend, $"{l}.mlp", A(Projection($"{l}.mlp.gate_proj", c, f)), A(Projection($"{l}.mlp.up_proj", c, f)),
                A(Projection($"{l}.mlp.down_proj", f, c)));
            _blocks[i] = new TransformerBlock(backend, l, new RmsNorm(backend, $"{l}.input_layernorm", c, config.NormEps), attention,
                new RmsNorm(backend, $"{l}.post_attention_layernorm", c, config.NormEps), mlp, 0f, Context);
        }
        _norm = new RmsNorm(backend, "model.norm", c, config.NormEps);
        _head = config.TiedEmbeddings ? new OutputHead(backend, "lm_head", _embed.Weight) : new OutputHead(backend, "lm_head", c, config.Vocabulary, Seed("lm_head"), std);
        _gradientBuffers = TransformerBlock.ShareGradientBuffers(_blocks, backend);
    }

    private readonly IDisposable _gradientBuffers;

    /// <summary>The sizes this model was built with.</summary>
    public LlamaConfig Config { get; }
    /// <inheritdoc/>
    public override int Vocabulary => Config.Vocabulary;
    /// <summary>The context, or the sliding window when that is shorter: longer sequences are refused.</summary>
    public override int MaxSequenceLength => Math.Min(Config.Context, Config.SlidingWindow ?? int.MaxValue);

    /// <summary>The L decoder layers model.layers.0 to model.layers.{L-1}, in order.</summary>
    public IReadOnlyList<TransformerBlock> Blocks => _blocks;

    /// <inheritdoc/>
    public override IEnumerable<Module> Children => [_embed, .. _blocks, _norm, _head];

    /// <summary>
    /// 6 N for the weights plus 12 L H hd T for the attention scores and values at <paramref name="sequenceLength"/> T.
    /// </summary>
    public override double TrainingFlopsPerToken(int sequenceLength) =>
        6.0 * ParameterCount + 12.0 * Config.Layers * Config.Heads * Config.HeadSize * sequenceLength;

    /// <inheritdoc/>
    public override string Describe() =>
        $"Llama-style {Config.Layers} layers, {Config.Heads} heads ({Config.KvHeads} key/value) of {Config.HeadSize}, {Config.Embed} channels, " +
        $"SwiGLU {Config.Intermediate}, vocabulary {Config.Vocabulary}{(Config.TiedEmbeddings ? " (tied)" : "")}, {ParameterCount:N0} parameters";

    /// <inheritdoc/>
    protected override IReadOnlyList<TransformerBlock> CheckpointableBlocks => _blocks;

    /// <inheritdoc/>
    protected override OutputHead Head => _head;

    /// <summary>ids (B, T) -&gt; the final RMSNorm's output (B*T, C).</summary>
    protected override Tensor ForwardHidden(Tensor ids)
    {
        if (Config.SlidingWindow is int window && ids.Shape.Rank == 2 && ids.Shape[1] > window)
            throw new ArgumentException($"Llama: sequence length {ids.Shape[1]} exceeds the sliding window of {window} tokens (sliding_window): attention restricted to a window is not supported");
        CheckIds(ids, Config.Context, "Llama");
        Tensor x = _embed.Forward(ids);                                       // (B, T, C)
        foreach (var block in _blocks) x = block.Forward(x);
        x = _norm.Forward(x);
        return x.View(new Shape(x.Rows, Config.Embed));                       // (B*T, C)
    }

    /// <summary>With tied embeddings the head has given the embedding its first gradient; the embedding gives the second.</summary>
    protected override void BackwardHidden(Tensor gradHidden, IGradientSink gradients)
    {
        Tensor d = _norm.Backward(gradHidden, gradients)!;
        for (int i = _blocks.Length - 1; i >= 0; i--) d = _blocks[i].Backward(d, gradients)!;
        _embed.Backward(d, gradients);
    }

    /// <summary>Frees every layer's parameters and buffers and the backward buffers the blocks share.</summary>
    public override void Dispose()
    {
        base.Dispose();
        _gradientBuffers.Dispose();
    }
}
