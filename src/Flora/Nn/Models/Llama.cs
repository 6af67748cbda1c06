using Flora.Backends;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Nn.Models;

/// <summary>Sizes of a Llama-style decoder. Intermediate is the SwiGLU width F.</summary>
public sealed record LlamaConfig(int Layers, int Heads, int Embed, int Intermediate, int Vocabulary, int Context, float RopeTheta = 10000f)
{
    /// <summary>The paper's Table 6 scale for GaLore comparisons starts at 60M; this is a CPU-sized one.</summary>
    public static LlamaConfig Small(int vocabulary) => new(4, 4, 256, 688, vocabulary, 256);
    public static LlamaConfig Tiny(int vocabulary) => new(2, 2, 64, 172, vocabulary, 64);
    /// <summary>About 60M parameters with a 32000 vocabulary (GaLore's smallest Llama).</summary>
    public static LlamaConfig Llama60M(int vocabulary = 32000) => new(8, 8, 512, 1376, vocabulary, 256);

    public void Validate()
    {
        if (Layers <= 0 || Heads <= 0 || Embed <= 0 || Intermediate <= 0 || Vocabulary <= 0 || Context <= 0)
            throw new ArgumentException($"Llama sizes must be positive: {this}");
        if (Embed % Heads != 0 || (Embed / Heads) % 2 != 0)
            throw new ArgumentException($"Llama: {Embed} channels must split into {Heads} heads of even size (rotary positions)");
    }
}

/// <summary>
/// A Llama-style decoder: RMSNorm pre-norm blocks, rotary positions (rotate-half, theta 10000), SwiGLU
/// MLP, no biases, untied output. Names follow Hugging Face's LlamaForCausalLM except that q, k and v
/// are one fused projection (model.layers.{i}.self_attn.qkv_proj, rows [q; k; v]) and gate and up are
/// one (mlp.gate_up_proj, rows [gate; up]).
/// </summary>
public sealed class Llama : LanguageModel
{
    private readonly Embedding _embed;
    private readonly TransformerBlock[] _blocks;
    private readonly RmsNorm _norm;
    private readonly OutputHead _head;

    public Llama(IBackend backend, LlamaConfig config, ulong seed = 0, Func<Linear, Module>? adapt = null) : base(backend, "", new ModelContext { Seed = seed })
    {
        config.Validate();
        Config = config;
        int c = config.Embed, f = config.Intermediate;
        const float std = 0.02f;
        ulong Seed(string name) => Seeds.ForName(seed, name);
        Module A(Linear l) => adapt?.Invoke(l) ?? l;                          // LoRA hook for attention and MLP projections
        _embed = new Embedding(backend, "model.embed_tokens", config.Vocabulary, c, Seed("embed"), std);
        _blocks = new TransformerBlock[config.Layers];
        for (int i = 0; i < config.Layers; i++)
        {
            string l = $"model.layers.{i}";
            var attention = new SelfAttention(backend, $"{l}.self_attn", c, config.Heads, causal: true,
                A(new Linear(backend, $"{l}.self_attn.qkv_proj", c, 3 * c, false, Seed($"{l}.qkv"), WeightLayout.OutIn, std)),
                A(new Linear(backend, $"{l}.self_attn.o_proj", c, c, false, Seed($"{l}.o"), WeightLayout.OutIn, std)),
                rotaryTheta: config.RopeTheta);
            var mlp = new Mlp(backend, $"{l}.mlp",
                A(new Linear(backend, $"{l}.mlp.gate_up_proj", c, 2 * f, false, Seed($"{l}.gate_up"), WeightLayout.OutIn, std)),
                A(new Linear(backend, $"{l}.mlp.down_proj", f, c, false, Seed($"{l}.down"), WeightLayout.OutIn, std)), swiGlu: true);
            _blocks[i] = new TransformerBlock(backend, l, new RmsNorm(backend, $"{l}.input_layernorm", c), attention,
                new RmsNorm(backend, $"{l}.post_attention_layernorm", c), mlp, 0f, Context);
        }
        _norm = new RmsNorm(backend, "model.norm", c);
        _head = new OutputHead(backend, "lm_head", c, config.Vocabulary, Seed("lm_head"), std);
        _gradientBuffers = TransformerBlock.ShareGradientBuffers(_blocks, backend);
    }

    private readonly IDisposable _gradientBuffers;

    public LlamaConfig Config { get; }
    public override int Vocabulary => Config.Vocabulary;
    public override int MaxSequenceLength => Config.Context;

    public override IEnumerable<Module> Children => [_embed, .. _blocks, _norm, _head];

    public override double TrainingFlopsPerToken(int sequenceLength) =>
        6.0 * ParameterCount + 12.0 * Config.Layers * Config.Embed * sequenceLength;

    public override string Describe() =>
        $"Llama-style {Config.Layers} layers, {Config.Heads} heads, {Config.Embed} channels, SwiGLU {Config.Intermediate}, vocabulary {Config.Vocabulary}, {ParameterCount:N0} parameters";

    public override void EnableCheckpointing()
    {
        var shared = new ActivationScope(Backend);
        foreach (var block in _blocks) block.EnableCheckpointing(shared);
    }

    protected override OutputHead Head => _head;

    protected override Tensor ForwardHidden(Tensor ids)
    {
        CheckIds(ids, Config.Context, "Llama");
        Tensor x = _embed.Forward(ids);
        foreach (var block in _blocks) x = block.Forward(x);
        x = _norm.Forward(x);
        return x.View(new Shape(x.Rows, Config.Embed));                       // (B*T, C)
    }

    protected override void BackwardHidden(Tensor gradHidden, IGradientSink gradients)
    {
        Tensor d = _norm.Backward(gradHidden, gradients)!;
        for (int i = _blocks.Length - 1; i >= 0; i--) d = _blocks[i].Backward(d, gradients)!;
        _embed.Backward(d, gradients);
    }

    public override void Dispose()
    {
        base.Dispose();
        _gradientBuffers.Dispose();
    }
}
