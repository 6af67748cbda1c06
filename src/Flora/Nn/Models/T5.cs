using Flora.Backends;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Nn.Models;

/// <summary>Sizes of the T5-style encoder-decoder.</summary>
/// <param name="EncoderLayers">Encoder blocks.</param>
/// <param name="DecoderLayers">Decoder blocks (each with cross-attention over the encoder output).</param>
/// <param name="Heads">H: attention heads per attention layer; <paramref name="Embed"/> must split into them.</param>
/// <param name="Embed">C: the model width.</param>
/// <param name="FeedForward">F: the width of the GELU feed-forward layer.</param>
/// <param name="Vocabulary">V: rows of the shared token embedding, which is also the output projection.</param>
/// <param name="Context">The longest source and the longest decoder sequence: rows of each position table.</param>
/// <param name="Dropout">Dropout probability on every residual branch (0, the default: none).</param>
public sealed record T5Config(int EncoderLayers, int DecoderLayers, int Heads, int Embed, int FeedForward, int Vocabulary, int Context, float Dropout = 0f)
{
    /// <summary>3 + 3 layers, 4 heads, 256 channels, feed-forward 1024, 256 positions: trains on a CPU.</summary>
    public static T5Config Small(int vocabulary) => new(3, 3, 4, 256, 1024, vocabulary, 256);
    /// <summary>1 + 1 layers, 2 heads, 64 channels, feed-forward 128, 64 positions: for tests and quick runs.</summary>
    public static T5Config Tiny(int vocabulary) => new(1, 1, 2, 64, 128, vocabulary, 64);
    /// <summary>T5-small's sizes (6 + 6 layers, 8 heads, 512 channels, 2048 feed-forward).</summary>
    public static T5Config T5SmallSize(int vocabulary = 32128) => new(6, 6, 8, 512, 2048, vocabulary, 512);

    /// <summary>
    /// Throws an <see cref="ArgumentException"/> when a size is not positive or the channels do not split into the
    /// heads.
    /// </summary>
    public void Validate()
    {
        if (EncoderLayers <= 0 || DecoderLayers <= 0 || Heads <= 0 || Embed <= 0 || FeedForward <= 0 || Vocabulary <= 0 || Context <= 0)
            throw new ArgumentException($"T5 sizes must be positive: {this}");
        if (Embed % Heads != 0) throw new ArgumentException($"T5: {Embed} channels do not split into {Heads} heads");
    }
}

/// <summary>
/// A T5-style encoder-decoder: pre-norm RMSNorm blocks, no biases, a shared token embedding tied to
/// the output projection, a GELU feed-forward. Positions: learned absolute position tables for the
/// encoder and the decoder (not T5's relative position bias), a documented simplification that keeps
/// every attention on the one fused kernel of the backend. The decoder's blocks add cross-attention
/// over the encoder output.
/// </summary>
public sealed class T5 : LanguageModel
{
    private readonly Embedding _shared;
    private readonly PositionEmbedding _encoderPositions, _decoderPositions;
    private readonly TransformerBlock[] _encoder, _decoder;
    private readonly RmsNorm _encoderNorm, _decoderNorm;
    private readonly OutputHead _head;
    private Tensor? _source, _memory;

    /// <summary>
    /// A T5-style model of <paramref name="config"/>'s sizes on <paramref name="backend"/>, its random weights drawn
    /// from seeds derived from <paramref name="seed"/> and each parameter's name. <paramref name="adapt"/>, when given,
    /// wraps every projection (attention and feed-forward), e.g. in a <see cref="LoraLinear"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The sizes are invalid (<see cref="T5Config.Validate"/>).</exception>
    public T5(IBackend backend, T5Config config, ulong seed = 0, Func<Linear, Module>? adapt = null) : base(backend, "", new ModelContext { Seed = seed })
    {
        config.Validate();
        Config = config;
        int c = config.Embed;
        const float std = 0.02f;
        ulong Seed(string name) => Seeds.ForName(seed, name);
        Module Proj(string name, int i, int o)                                 // LoRA hook for every projection
        {
            var linear = new Linear(backend, name, i, o, false, Seed(name), WeightLayout.OutIn, std);
            return adapt?.Invoke(linear) ?? linear;
        }
        Mlp FeedForward(string name) => new(backend, name, Proj($"{name}.wi", c, config.FeedForward), Proj($"{name}.wo", config.FeedForward, c));

        _shared = new Embedding(backend, "shared", config.Vocabulary, c, Seed("shared"), 1f);
        _encoderPositions = new PositionEmbedding(backend, "encoder.embed_positions", config.Context, c, Seed("encoder.pos"), std);
        _decoderPositions = new PositionEmbedding(backend, "decoder.embed_positions", config.Context, c, Seed("decoder.pos"), std);
        _encoder = new TransformerBlock[config.EncoderLayers];
        for (int i = 0; i < _encoder.Length; i++)
        {
            string b = $"encoder.block.{i}";
            var attention = new SelfAttention(backend, $"{b}.self_attn", c, config.Heads, causal: false,
                Proj($"{b}.self_attn.qkv", c, 3 * c), Proj($"{b}.self_attn.o", c, c));
            _encoder[i] = new TransformerBlock(backend, b, new RmsNorm(backend, $"{b}.norm_attn", c), attention,
                new RmsNorm(backend, $"{b}.norm_ff", c), FeedForward($"{b}.ff"), config.Dropout, Context);
        }
        _decoder = new TransformerBlock[config.DecoderLayers];
        for (int i = 0; i < _decoder.Length; i++)
        {
            string b = $"decoder.block.{i}";
            var attention = new SelfAttention(backend, $"{b}.self_attn", c, config.Heads, causal: true,
                Proj($"{b}.self_attn.qkv", c, 3 * c), Proj($"{b}.self_attn.o", c, c));
            var cross = new CrossAttention(backend, $"{b}.cross_attn", c, config.Heads,
                Proj($"{b}.cross_attn.q", c, c), Proj($"{b}.cross_attn.kv", c, 2 * c), Proj($"{b}.cross_attn.o", c, c));
            _decoder[i] = new TransformerBlock(backend, b, new RmsNorm(backend, $"{b}.norm_attn", c), attention,
                new RmsNorm(backend, $"{b}.norm_ff", c), FeedForward($"{b}.ff"), config.Dropout, Context,
                new RmsNorm(backend, $"{b}.norm_cross", c), cross);
        }
        _encoderNorm = new RmsNorm(backend, "encoder.final_norm", c);
        _decoderNorm = new RmsNorm(backend, "decoder.final_norm", c);
        _head = new OutputHead(backend, "lm_head", _shared.Weight);
        _shared.Weight.UsesPerStep = 3;                                        // output projection, decoder and encoder tokens
        _encoderGradients = TransformerBlock.ShareGradientBuffers(_encoder, backend);
        _decoderGradients = TransformerBlock.ShareGradientBuffers(_decoder, backend);
    }

    private readonly IDisposable _encoderGradients, _decoderGradients;

    /// <summary>The sizes this model was built with.</summary>
    public T5Config Config { get; }
    /// <inheritdoc/>
    public override int Vocabulary => Config.Vocabulary;
    /// <inheritdoc/>
    public override int MaxSequenceLength => Config.Context;
    /// <inheritdoc/>
    public override bool IsEncoderDecoder => true;

    /// <inheritdoc/>
    public override IEnumerable<Module> Children =>
        [_shared, _encoderPositions, _decoderPositions, .. _encoder, _encoderNorm, .. _decoder, _decoderNorm, _head];

    /// <inheritdoc/>
    public override string Describe() =>
        $"T5-style {Config.EncoderLayers}+{Config.DecoderLayers} layers, {Config.Heads} heads, {Config.Embed} channels, feed-forward {Config.FeedForward}, vocabulary {Config.Vocabulary}, {ParameterCount:N0} parameters";

    /// <summary>The encoder's blocks, then the decoder's.</summary>
    protected override IReadOnlyList<TransformerBlock> CheckpointableBlocks => [.. _encoder, .. _decoder];

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">
    /// The ids are not Int32 (B, Ts) within the context, or the lengths do not match them.
    /// </exception>
    public override void SetSource(Tensor sourceIds, int[]? lengths = null)
    {
        CheckIds(sourceIds, Config.Context, "T5 source");
        if (lengths is not null && (lengths.Length != sourceIds.Shape[0] || lengths.Any(l => l < 1 || l > sourceIds.Shape[1])))
            throw new ArgumentException($"T5: {lengths.Length} source lengths for {sourceIds.Shape[0]} sources of {sourceIds.Shape[1]} positions (each length in [1, {sourceIds.Shape[1]}])");
        _source = sourceIds;
        _sourceLengths = lengths;
        foreach (var block in _encoder) ((SelfAttention)block.Attention).KeyLengths = lengths;      // padding keys masked in the encoder
    }

    private int[]? _sourceLengths;
    private float HeadScale => 1f / MathF.Sqrt(Config.Embed);

    /// <inheritdoc/>
    protected override OutputHead Head => _head;

    /// <summary>Decoder input ids (B, T) -&gt; the decoder's last hidden states (B*T, C), attending to the source set with <see cref="SetSource"/>.</summary>
    protected override Tensor ForwardHidden(Tensor ids)
    {
        CheckIds(ids, Config.Context, "T5");
        Tensor source = _source ?? throw new InvalidOperationException("T5: SetSource before Forward");
        if (source.Shape[0] != ids.Shape[0]) throw new ArgumentException($"T5: {source.Shape[0]} sources for {ids.Shape[0]} targets");
        // The embedding is shared: the encoder's lookup goes to its own buffer so the decoder's does not overwrite it.
        Tensor e = Slot("source_embed").Get(new Shape(source.Shape[0], source.Shape[1], Config.Embed));
        Backend.Copy(_shared.Forward(source), e);
        Tensor m = _encoderPositions.Forward(e);
        foreach (var block in _encoder) m = block.Forward(m);
        _memory = _encoderNorm.Forward(m);                                     // (B, Ts, C)
        foreach (var block in _decoder) block.Cross!.SetMemory(_memory, _sourceLengths);   // and in cross-attention
        Tensor x = _decoderPositions.Forward(_shared.Forward(ids));
        foreach (var block in _decoder) x = block.Forward(x);
        x = _decoderNorm.Forward(x);
        // The head is tied to the shared embedding (entries ~ N(0, 1)): as in T5, the hidden state is scaled by
        // C^-1/2 first, so that the logits start with unit variance instead of variance C.
        Tensor h = Slot("head_input").Get(new Shape(x.Rows, Config.Embed));
        Backend.Copy(x.View(h.Shape), h);
        Backend.Scale(h, HeadScale);
        return h;                                                               // (B*T, C)
    }

    /// <inheritdoc/>
    protected override void BackwardHidden(Tensor gradHidden, IGradientSink gradients)
    {
        Tensor memory = Saved(_memory), source = Saved(_source);
        Tensor dMemory = Slot("dmemory").Get(memory.Shape);
        Backend.Fill(dMemory, 0f);
        foreach (var block in _decoder) block.Cross!.MemoryGradient = dMemory;

        Tensor g = Slot("dhead_input").Get(gradHidden.Shape);
        Backend.Copy(gradHidden, g);
        Backend.Scale(g, HeadScale);
        Tensor d = _decoderNorm.Backward(g, gradients)!;
        for (int i = _decoder.Length - 1; i >= 0; i--) d = _decoder[i].Backward(d, gradients)!;
        _shared.Backward(_decoderPositions.Backward(d, gradients)!, gradients);      // decoder tokens

        Tensor dm = _encoderNorm.Backward(dMemory, gradients)!;
        for (int i = _encoder.Length - 1; i >= 0; i--) dm = _encoder[i].Backward(dm, gradients)!;
        dm = _encoderPositions.Backward(dm, gradients)!;
        _shared.Forward(source);                                               // the lookup Backward reads the ids of
        _shared.Backward(dm, gradients);                                       // source tokens: the shared weight's third gradient
    }

    /// <summary>
    /// Frees every layer's parameters and buffers and the backward buffers the encoder's and the decoder's blocks
    /// share.
    /// </summary>
    public override void Dispose()
    {
        base.Dispose();
        _encoderGradients.Dispose();
        _decoderGradients.Dispose();
    }
}
