using Flora.Backends;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Nn.Models;

/// <summary>GPT-2 sizes. Presets: gpt2-124m, gpt2-350m, and small ones that train on two CPU cores.</summary>
/// <param name="Layers">L: transformer blocks.</param>
/// <param name="Heads">H: attention heads per block; <paramref name="Embed"/> must split into them.</param>
/// <param name="Embed">C: the model width.</param>
/// <param name="Vocabulary">V: rows of the token embedding wte, which is also the output projection.</param>
/// <param name="Context">The longest sequence: rows of the learned position table wpe.</param>
/// <param name="Dropout">Dropout probability on the embeddings and on every residual branch (0, the default: none).</param>
public sealed record Gpt2Config(int Layers, int Heads, int Embed, int Vocabulary, int Context, float Dropout = 0f)
{
    /// <summary>The sizes of GPT-2 124M: 12 layers, 12 heads, 768 channels, 1024 positions.</summary>
    public static Gpt2Config Gpt2_124M(int vocabulary = 50257) => new(12, 12, 768, vocabulary, 1024);
    /// <summary>The sizes of GPT-2 350M (gpt2-medium): 24 layers, 16 heads, 1024 channels, 1024 positions.</summary>
    public static Gpt2Config Gpt2_350M(int vocabulary = 50257) => new(24, 16, 1024, vocabulary, 1024);
    /// <summary>About 3.4M parameters at a 4096 vocabulary: trains on two CPU cores in minutes.</summary>
    public static Gpt2Config Small(int vocabulary) => new(4, 4, 256, vocabulary, 256);
    /// <summary>Two layers of 64 channels in 2 heads, 64 positions: trains in seconds, for tests and quick runs.</summary>
    public static Gpt2Config Tiny(int vocabulary) => new(2, 2, 64, vocabulary, 64);

    /// <summary>Width of the MLP's hidden layer (Hugging Face's n_inner); null means 4 C.</summary>
    public int? Inner { get; init; }

    /// <summary>LayerNorm epsilon (layer_norm_epsilon); 1e-5 by default.</summary>
    public float LayerNormEps { get; init; } = 1e-5f;

    /// <summary>The MLP width in effect.</summary>
    public int InnerSize => Inner ?? 4 * Embed;

    /// <summary>Parameters of a model of these sizes, counted from the shapes (the output projection is tied to wte).</summary>
    public long ParameterCount
    {
        get
        {
            long c = Embed, f = InnerSize;
            long layer = 2 * 2 * c + (c * 3 * c + 3 * c) + (c * c + c) + (c * f + f) + (f * c + c);
            return (long)Vocabulary * c + (long)Context * c + Layers * layer + 2 * c;
        }
    }

    /// <summary>
    /// Throws an <see cref="ArgumentException"/> naming the first problem: a size that is not positive, channels that do
    /// not split into the heads, a non-positive MLP width or LayerNorm epsilon.
    /// </summary>
    public void Validate()
    {
        if (Layers <= 0 || Heads <= 0 || Embed <= 0 || Vocabulary <= 0 || Context <= 0)
            throw new ArgumentException($"GPT-2 sizes must be positive: {this}");
        if (Embed % Heads != 0) throw new ArgumentException($"GPT-2: {Embed} channels do not split into {Heads} heads");
        if (InnerSize <= 0) throw new ArgumentException($"GPT-2: the MLP width must be positive, got {InnerSize}");
        if (!(LayerNormEps > 0)) throw new ArgumentException($"GPT-2: the LayerNorm epsilon must be positive, got {LayerNormEps}");
    }
}

/// <summary>
/// GPT-2 (Radford et al. 2019) with Hugging Face's parameter names and layout: wte, wpe, h.{i}.ln_1,
/// h.{i}.attn.c_attn (C x 3C, Conv1D), h.{i}.attn.c_proj, h.{i}.ln_2, h.{i}.mlp.c_fc, h.{i}.mlp.c_proj,
/// ln_f; pre-LN blocks, GELU (tanh), the output projection tied to wte. Initialisation as GPT-2:
/// N(0, 0.02), residual projections N(0, 0.02 / sqrt(2 L)), LayerNorms at (1, 0).
/// </summary>
public sealed class Gpt2 : LanguageModel
{
    private readonly Embedding _wte;
    private readonly PositionEmbedding _wpe;
    private readonly Dropout _drop;
    private readonly TransformerBlock[] _blocks;
    private readonly LayerNorm _lnF;
    private readonly OutputHead _head;

    /// <summary>
    /// A GPT-2 of <paramref name="config"/>'s sizes on <paramref name="backend"/>, its random weights drawn from
    /// seeds derived from <paramref name="seed"/> and each parameter's name. <paramref name="adapt"/>, when given,
    /// wraps each attention and MLP projection (c_attn, c_proj, c_fc), e.g. in a <see cref="LoraLinear"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The sizes are invalid (<see cref="Gpt2Config.Validate"/>).</exception>
    public Gpt2(IBackend backend, Gpt2Config config, ulong seed = 0, Func<Linear, Module>? adapt = null) : base(backend, "", new ModelContext { Seed = seed })
    {
        config.Validate();
        Config = config;
        int c = config.Embed;
        float std = 0.02f, residualStd = 0.02f / MathF.Sqrt(2 * config.Layers);
        ulong Seed(string name) => Seeds.ForName(seed, name);
        Module A(Linear l) => adapt?.Invoke(l) ?? l;                          // LoRA hook for attention and MLP projections
        _wte = new Embedding(backend, "wte", config.Vocabulary, c, Seed("wte"), std);
        _wpe = new PositionEmbedding(backend, "wpe", config.Context, c, Seed("wpe"), std);
        _drop = new Dropout(backend, "drop", config.Dropout, Context);
        _blocks = new TransformerBlock[config.Layers];
        for (int i = 0; i < config.Layers; i++)
        {
            string h = $"h.{i}";
            var attention = new SelfAttention(backend, $"{h}.attn", c, config.Heads, causal: true,
                A(new Linear(backend, $"{h}.attn.c_attn", c, 3 * c, true, Seed($"{h}.attn.c_attn"), WeightLayout.InOut, std)),
                A(new Linear(backend, $"{h}.attn.c_proj", c, c, true, Seed($"{h}.attn.c_proj"), WeightLayout.InOut, residualStd)));
            var mlp = new Mlp(backend, $"{h}.mlp",
                A(new Linear(backend, $"{h}.mlp.c_fc", c, config.InnerSize, true, Seed($"{h}.mlp.c_fc"), WeightLayout.InOut, std)),
                A(new Linear(backend, $"{h}.mlp.c_proj", config.InnerSize, c, true, Seed($"{h}.mlp.c_proj"), WeightLayout.InOut, residualStd)));
            _blocks[i] = new TransformerBlock(backend, h, new LayerNorm(backend, $"{h}.ln_1", c, config.LayerNormEps), attention,
                new LayerNorm(backend, $"{h}.ln_2", c, config.LayerNormEps), mlp, config.Dropout, Context);
        }
        _lnF = new LayerNorm(backend, "ln_f", c, config.LayerNormEps);
        _head = new OutputHead(backend, "lm_head", _wte.Weight);
        _gradientBuffers = TransformerBlock.ShareGradientBuffers(_blocks, backend);
    }

    private readonly IDisposable _gradientBuffers;

    /// <summary>The sizes this model was built with.</summary>
    public Gpt2Config Config { get; }
    /// <inheritdoc/>
    public override int Vocabulary => Config.Vocabulary;
    /// <inheritdoc/>
    public override int MaxSequenceLength => Config.Context;
    /// <summary>The L blocks h.0 to h.{L-1}, in order.</summary>
    public IReadOnlyList<TransformerBlock> Blocks => _blocks;

    /// <inheritdoc/>
    public override IEnumerable<Module> Children => [_wte, _wpe, _drop, .. _blocks, _lnF, _head];

    /// <summary>
    /// 6 N for the weights plus 12 L C T for the attention scores and values at <paramref name="sequenceLength"/> T.
    /// </summary>
    public override double TrainingFlopsPerToken(int sequenceLength) =>
        6.0 * ParameterCount + 12.0 * Config.Layers * Config.Embed * sequenceLength;

    /// <inheritdoc/>
    public override string Describe() =>
        $"GPT-2 {Config.Layers} layers, {Config.Heads} heads, {Config.Embed} channels, vocabulary {Config.Vocabulary}, context {Config.Context}, {ParameterCount:N0} parameters";

    /// <inheritdoc/>
    protected override IReadOnlyList<TransformerBlock> CheckpointableBlocks => _blocks;

    /// <inheritdoc/>
    protected override OutputHead Head => _head;

    /// <summary>ids (B, T) -&gt; the final LayerNorm's output (B*T, C).</summary>
    protected override Tensor ForwardHidden(Tensor ids)
    {
        CheckIds(ids, Config.Context, "GPT-2");
        Tensor x = _drop.Forward(_wpe.Forward(_wte.Forward(ids)));            // (B, T, C)
        foreach (var block in _blocks) x = block.Forward(x);
        x = _lnF.Forward(x);
        return x.View(new Shape(x.Rows, Config.Embed));                       // (B*T, C)
    }

    /// <summary>The head has given the tied weight its first gradient; the embedding gives the second.</summary>
    protected override void BackwardHidden(Tensor gradHidden, IGradientSink gradients)
    {
        Tensor d = _lnF.Backward(gradHidden, gradients)!;
        for (int i = _blocks.Length - 1; i >= 0; i--) d = _blocks[i].Backward(d, gradients)!;
        d = _wpe.Backward(_drop.Backward(d, gradients)!, gradients)!;
        _wte.Backward(d, gradients);
    }

    /// <summary>Frees every layer's parameters and buffers and the backward buffers the blocks share.</summary>
    public override void Dispose()
    {
        base.Dispose();
        _gradientBuffers.Dispose();
    }
}
