using Flora.Backends;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Nn.Models;

/// <summary>Sizes of a ViT classifier over square greyscale images cut into square patches.</summary>
/// <param name="ImageSize">Side of the square greyscale image, in pixels.</param>
/// <param name="PatchSize">Side p of a square patch, in pixels; it must divide <paramref name="ImageSize"/>.</param>
/// <param name="Layers">Transformer blocks.</param>
/// <param name="Heads">Attention heads per block; <paramref name="Embed"/> must split into them.</param>
/// <param name="Embed">C: the model width.</param>
/// <param name="Classes">Output classes: the width of the logits.</param>
/// <param name="Dropout">Dropout probability on every residual branch (0, the default: none).</param>
public sealed record VitConfig(int ImageSize, int PatchSize, int Layers, int Heads, int Embed, int Classes, float Dropout = 0f)
{
    /// <summary>Patches along each side: ImageSize / PatchSize.</summary>
    public int PatchesPerSide => ImageSize / PatchSize;
    /// <summary>P: patches per image, the sequence length without the class token.</summary>
    public int Patches => PatchesPerSide * PatchesPerSide;
    /// <summary>p^2: pixels per patch, the input width of the patch embedding.</summary>
    public int PatchDimension => PatchSize * PatchSize;

    /// <summary>For Fashion-MNIST: 28 x 28 images, 7 x 7 patches (16 of them), 4 layers of 128 channels.</summary>
    public static VitConfig FashionMnist(int layers = 4, int embed = 128, int heads = 4) => new(28, 7, layers, heads, embed, 10);

    /// <summary>
    /// Throws an <see cref="ArgumentException"/> when the image is not a positive multiple of the patch, a size is not
    /// positive, or the channels do not split into the heads.
    /// </summary>
    public void Validate()
    {
        if (ImageSize <= 0 || PatchSize <= 0 || ImageSize % PatchSize != 0)
            throw new ArgumentException($"ViT: image size {ImageSize} must be a positive multiple of the patch size {PatchSize}");
        if (Layers <= 0 || Heads <= 0 || Embed <= 0 || Classes <= 0 || Embed % Heads != 0)
            throw new ArgumentException($"ViT sizes must be positive and channels must split into heads: {this}");
    }
}

/// <summary>
/// A Vision Transformer (Dosovitskiy et al. 2021) classifier: patches (B, P, p^2) through a Linear patch
/// embedding, a learned class token in front, learned positions (P + 1, C), pre-norm LayerNorm blocks
/// with full (non-causal) attention and a GELU MLP, a final LayerNorm and a Linear head on the class
/// token: logits (B, classes). <see cref="Patchify"/> cuts images into that layout.
/// </summary>
public sealed class Vit : Module
{
    private readonly Linear _patchEmbed;
    private readonly Parameter _classToken;
    private readonly PositionEmbedding _positions;
    private readonly TransformerBlock[] _blocks;
    private readonly LayerNorm _norm;
    private readonly Linear _head;
    private int _batch;

    /// <summary>
    /// A ViT of <paramref name="config"/>'s sizes on <paramref name="backend"/>, its random weights drawn from seeds
    /// derived from <paramref name="seed"/> and each parameter's name. <paramref name="adapt"/>, when given, wraps each
    /// attention and MLP projection (qkv, proj, fc1, fc2), e.g. in a <see cref="LoraLinear"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The sizes are invalid (<see cref="VitConfig.Validate"/>).</exception>
    public Vit(IBackend backend, VitConfig config, ulong seed = 0, Func<Linear, Module>? adapt = null) : base(backend, "")
    {
        config.Validate();
        Config = config;
        Context = new ModelContext { Seed = seed };
        int c = config.Embed;
        const float std = 0.02f;
        ulong Seed(string name) => Seeds.ForName(seed, name);
        Module A(Linear l) => adapt?.Invoke(l) ?? l;                          // LoRA hook for attention and MLP projections
        _patchEmbed = new Linear(backend, "patch_embed", config.PatchDimension, c, true, Seed("patch_embed"));
        _classToken = new Parameter(backend, "cls_token", backend.Allocate(new Shape(c), MemoryTag.Parameters));
        backend.FillGaussian(_classToken.Value, Seed("cls_token"), std);
        _positions = new PositionEmbedding(backend, "pos_embed", config.Patches + 1, c, Seed("pos_embed"), std);
        _blocks = new TransformerBlock[config.Layers];
        for (int i = 0; i < config.Layers; i++)
        {
            string b = $"blocks.{i}";
            var attention = new SelfAttention(backend, $"{b}.attn", c, config.Heads, causal: false,
                A(new Linear(backend, $"{b}.attn.qkv", c, 3 * c, true, Seed($"{b}.qkv"), WeightLayout.OutIn, std)),
                A(new Linear(backend, $"{b}.attn.proj", c, c, true, Seed($"{b}.proj"), WeightLayout.OutIn, std)));
            var mlp = new Mlp(backend, $"{b}.mlp",
                A(new Linear(backend, $"{b}.mlp.fc1", c, 4 * c, true, Seed($"{b}.fc1"), WeightLayout.OutIn, std)),
                A(new Linear(backend, $"{b}.mlp.fc2", 4 * c, c, true, Seed($"{b}.fc2"), WeightLayout.OutIn, std)));
            _blocks[i] = new TransformerBlock(backend, b, new LayerNorm(backend, $"{b}.norm1", c, 1e-6f), attention,
                new LayerNorm(backend, $"{b}.norm2", c, 1e-6f), mlp, config.Dropout, Context);
        }
        _norm = new LayerNorm(backend, "norm", c, 1e-6f);
        _head = new Linear(backend, "head", c, config.Classes, true, Seed("head"), WeightLayout.OutIn, std);
        _patchEmbed.ComputesInputGradient = false;
        _gradientBuffers = TransformerBlock.ShareGradientBuffers(_blocks, backend);
    }

    private readonly IDisposable _gradientBuffers;

    /// <summary>The sizes this model was built with.</summary>
    public VitConfig Config { get; }
    /// <summary>The training flag, step and seed the dropout layers read: set <c>Training</c> to false to evaluate.</summary>
    public ModelContext Context { get; }

    /// <summary>Images are data: Backward returns null.</summary>
    public override bool ComputesInputGradient { get => false; set { } }

    /// <inheritdoc/>
    public override IEnumerable<Module> Children => [_patchEmbed, _positions, .. _blocks, _norm, _head];
    /// <inheritdoc/>
    protected override IEnumerable<Parameter> OwnParameters => [_classToken];

    /// <summary>Turns on activation checkpointing for every block (one shared scope for their internals).</summary>
    public void EnableCheckpointing()
    {
        var shared = new ActivationScope(Backend);
        foreach (var block in _blocks) block.EnableCheckpointing(shared);
    }

    /// <summary>patches (B, P, p^2) -&gt; logits (B, classes).</summary>
    public override Tensor Forward(Tensor patches)
    {
        int p = Config.Patches, c = Config.Embed;
        if (patches.Shape.Rank != 3 || patches.Shape[1] != p || patches.Columns != Config.PatchDimension)
            throw new ArgumentException($"ViT: patches {patches.Shape} should be (B, {p}, {Config.PatchDimension})");
        int b = _batch = patches.Shape[0];
        Tensor e = _patchEmbed.Forward(patches);                               // (B, P, C)
        Tensor seq = Slot("seq").Get(new Shape(b, p + 1, c));                  // (B, P + 1, C): [cls, patches]
        for (int i = 0; i < b; i++)
        {
            Backend.Copy(_classToken.Value, seq.View(new Shape(c), (long)i * (p + 1) * c));
            Backend.Copy(e.View(new Shape(p * c), (long)i * p * c), seq.View(new Shape(p * c), ((long)i * (p + 1) + 1) * c));
        }
        Tensor x = _positions.Forward(seq);
        foreach (var block in _blocks) x = block.Forward(x);
        x = _norm.Forward(x);
        Tensor cls = Slot("cls").Get(new Shape(b, c));                         // the class token's final state
        for (int i = 0; i < b; i++) Backend.Copy(x.View(new Shape(c), (long)i * (p + 1) * c), cls.View(new Shape(c), (long)i * c));
        return _head.Forward(cls);
    }

    /// <summary>
    /// Backward from dLoss/dLogits (B, classes) of the last <see cref="Forward"/>: every parameter gradient, the class
    /// token's included, goes to <paramref name="gradients"/>. Returns null (images are data).
    /// </summary>
    public override Tensor? Backward(Tensor gradLogits, IGradientSink gradients)
    {
        int b = _batch, p = Config.Patches, c = Config.Embed;
        Tensor dCls = _head.Backward(gradLogits, gradients)!;                  // (B, C)
        Tensor dx = Slot("dnorm").Get(new Shape(b, p + 1, c));
        Backend.Fill(dx, 0f);                                                  // only class-token rows get a gradient
        for (int i = 0; i < b; i++) Backend.Copy(dCls.View(new Shape(c), (long)i * c), dx.View(new Shape(c), (long)i * (p + 1) * c));
        Tensor d = _norm.Backward(dx, gradients)!;
        for (int i = _blocks.Length - 1; i >= 0; i--) d = _blocks[i].Backward(d, gradients)!;
        d = _positions.Backward(d, gradients)!;                                // (B, P + 1, C)
        if (_classToken.RequiresGrad)
        {
            // d cls = sum over the batch of row 0: the rows (i (P + 1)) of d read as (B, (P + 1) C), first C columns.
            Tensor rows = Slot("dcls_rows").Get(new Shape(b, c));
            for (int i = 0; i < b; i++) Backend.Copy(d.View(new Shape(c), (long)i * (p + 1) * c), rows.View(new Shape(c), (long)i * c));
            var g = gradients.Target(_classToken);
            Backend.SumRows(rows, g.Tensor, g.Scale, g.Beta);
            gradients.OnGradient(_classToken, g.Tensor);
        }
        Tensor dPatches = Slot("dpatch").Get(new Shape(b, p, c));
        for (int i = 0; i < b; i++) Backend.Copy(d.View(new Shape(p * c), ((long)i * (p + 1) + 1) * c), dPatches.View(new Shape(p * c), (long)i * p * c));
        _patchEmbed.Backward(dPatches, gradients);
        return null;
    }

    /// <summary>Cuts images (N, H*W) row-major into patches (N, P, p^2), patch rows in reading order (host-side data preparation).</summary>
    public static void Patchify(ReadOnlySpan<float> images, int count, int imageSize, int patchSize, Span<float> patches)
    {
        int perSide = imageSize / patchSize, dim = patchSize * patchSize, perImage = perSide * perSide * dim;
        for (int n = 0; n < count; n++)
            for (int py = 0; py < perSide; py++)
                for (int px = 0; px < perSide; px++)
                    for (int y = 0; y < patchSize; y++)
                    {
                        int src = n * imageSize * imageSize + (py * patchSize + y) * imageSize + px * patchSize;
                        int dst = n * perImage + (py * perSide + px) * dim + y * patchSize;
                        images.Slice(src, patchSize).CopyTo(patches.Slice(dst, patchSize));
                    }
    }

    /// <summary>Frees every layer's parameters and buffers, the class token and the backward buffers the blocks share.</summary>
    public override void Dispose()
    {
        base.Dispose();
        _gradientBuffers.Dispose();
    }
}
