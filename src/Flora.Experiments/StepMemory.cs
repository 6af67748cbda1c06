using Flora.Backends;
using Flora.Backends.Cpu;
using Flora.Nn;
using Flora.Nn.Models;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Experiments;

/// <summary>What a training step of <see cref="StepMemory"/> runs: optimizer, rank, LOMO, checkpointing, weight type, tokens.</summary>
public sealed record StepMemorySettings
{
    /// <summary>An optimizer of <see cref="OptimizerSpec.Names"/>.</summary>
    public string Optimizer { get; init; } = "flora";
    /// <summary>FLORA's rank r.</summary>
    public int Rank { get; init; } = 256;
    /// <summary>Each parameter updated inside backward from one shared gradient buffer.</summary>
    public bool Lomo { get; init; } = true;
    /// <summary>Activation checkpointing: each block recomputed in backward.</summary>
    public bool Checkpointing { get; init; } = true;
    /// <summary>With checkpointing, only the first N blocks recompute (<see cref="LanguageModel.EnableCheckpointing"/>); null: every block.</summary>
    public int? CheckpointBlocks { get; init; }
    /// <summary>The type of the weight matrices (<see cref="WeightStorage"/>).</summary>
    public DType Weights { get; init; } = DType.BFloat16;
    /// <summary>Sequences per step.</summary>
    public int Batch { get; init; } = 1;
    /// <summary>Tokens per sequence.</summary>
    public int SequenceLength { get; init; } = 2048;
    /// <summary>
    /// The GPU's matrix-product precision: in bf16 the layers keep the activations that only products read in bf16
    /// (<see cref="IBackend.ActivationType"/>), which the CPU probes then do as well.
    /// </summary>
    public GemmPrecision Precision { get; init; } = GemmPrecision.Bf16;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad setting.</summary>
    public void Validate()
    {
        if (!OptimizerSpec.Names.Contains(Optimizer)) throw new ArgumentException($"unknown optimizer '{Optimizer}': choose one of {string.Join(", ", OptimizerSpec.Names)}");
        if (Rank <= 0 || Batch <= 0 || SequenceLength <= 0) throw new ArgumentException($"rank ({Rank}), batch ({Batch}) and sequence length ({SequenceLength}) must be positive");
        if (CheckpointBlocks is int blocks && (blocks < 0 || !Checkpointing))
            throw new ArgumentException(blocks < 0 ? $"checkpointed blocks must be 0 or more, got {blocks}" : "checkpointed blocks need checkpointing on");
    }
}

/// <summary>The bytes of one ledger tag at the peak of a step, and how the number was obtained.</summary>
public sealed record TagEstimate(MemoryTag Tag, long Bytes, string Source);

/// <summary>
/// What partial checkpointing adds to the activations of a step that checkpoints every block: the first block left out
/// (it also brings the buffers such blocks share) and each one after it.
/// </summary>
public sealed record BlocksLeftOut(long AllCheckpointed, long First, long Each)
{
    /// <summary>The activations with the first <paramref name="checkpointed"/> of <paramref name="layers"/> blocks checkpointed (1 to layers).</summary>
    public long Activations(int checkpointed, int layers) =>
        checkpointed >= layers ? AllCheckpointed : AllCheckpointed + First + (layers - checkpointed - 1) * Each;
}

/// <summary>The estimated peak memory of one training step of a model, per ledger tag.</summary>
public sealed record StepMemoryEstimate(string Model, long Parameters, int Layers, int Vocabulary, StepMemorySettings Settings, IReadOnlyList<TagEstimate> Tags)
{
    /// <summary>The sum over tags (each at its own peak: an upper bound of the ledger's total peak).</summary>
    public long TotalBytes => Tags.Sum(t => t.Bytes);

    /// <summary>The estimate of <paramref name="tag"/>.</summary>
    public TagEstimate this[MemoryTag tag] => Tags.First(t => t.Tag == tag);

    /// <summary>The per-block costs of partial checkpointing, where the estimate probed them (some blocks left out); else null.</summary>
    public BlocksLeftOut? LeftOut { get; init; }

    /// <summary>
    /// <see cref="TotalBytes"/> with the first <paramref name="checkpointed"/> blocks checkpointed (1 to <see cref="Layers"/>), from
    /// <see cref="LeftOut"/>: the same figure an estimate made for that count gives.
    /// </summary>
    /// <exception cref="InvalidOperationException">The estimate did not probe partial checkpointing.</exception>
    public long TotalWithCheckpointed(int checkpointed)
    {
        if (LeftOut is null) throw new InvalidOperationException($"{Model}: this estimate did not probe partial checkpointing");
        if (checkpointed < 1 || checkpointed > Layers) throw new ArgumentOutOfRangeException(nameof(checkpointed), $"between 1 and {Layers}, got {checkpointed}");
        return TotalBytes - this[MemoryTag.Activations].Bytes + LeftOut.Activations(checkpointed, Layers);
    }

    /// <summary>
    /// The fewest checkpointed blocks (the fastest step) whose <see cref="TotalWithCheckpointed"/> is at most
    /// <paramref name="budgetBytes"/>, or null when even every block checkpointed is over it.
    /// </summary>
    public int? FewestCheckpointedWithin(long budgetBytes)
    {
        for (int n = 1; n <= Layers; n++)
            if (TotalWithCheckpointed(n) <= budgetBytes) return n;
        return null;
    }
}

/// <summary>Builds a model of the family being estimated with <paramref name="layers"/> layers and <paramref name="vocabulary"/> rows of embedding.</summary>
public delegate LanguageModel ModelBuilder(IBackend backend, int layers, int vocabulary);

/// <summary>
/// The memory of a training step of a model too large for this machine, from the memory ledger of the same model
/// with two and three layers and a small vocabulary, stepped on the CPU:
/// <list type="bullet">
/// <item>Parameters, gradients, optimizer state and accumulators are sums over parameters: each tag's bytes are
/// c + a (L - 2) + b (V - V0), a from the third layer and b from a second, doubled vocabulary, which is exact for a
/// stack of identical layers (the probes keep vocabulary matrices too thin for FLORA, as they are at full size).</item>
/// <item>Activations are a sum over layers of buffers of a row per token (and a few of a fixed size): affine in the
/// tokens T for each layer count, (c + d T) + (L - 2)(e + f T), from 2 and 3 layers at T0 and 2 T0 tokens.</item>
/// <item>Scratch is backend-specific (the CPU widens bf16 weights for its products, the GPU does not): it is the
/// CUDA backend's buffers by formula, listed in <see cref="CudaScratch"/>.</item>
/// </list>
/// Every tag is counted at its own peak, so the total is an upper bound of the ledger's.
/// </summary>
public static class StepMemory
{
    private const int ProbeTokens = 16;

    /// <summary>
    /// The estimate for the model <paramref name="build"/> makes at <paramref name="layers"/> layers (at least 2) and
    /// <paramref name="vocabulary"/> rows, trained as <paramref name="settings"/> say; <paramref name="progress"/> hears of
    /// each probe; <paramref name="attention"/> (query heads, head size) adds the CUDA backend's unfused attention buffers
    /// where the fused kernels do not apply, head sizes other than 64 and 128 (null: none counted).
    /// </summary>
    /// <exception cref="ArgumentException">Bad settings, fewer than 2 layers, or a vocabulary matrix FLORA would compress at full size.</exception>
    public static StepMemoryEstimate Estimate(string name, ModelBuilder build, int layers, int vocabulary, StepMemorySettings settings,
        IProgress<string>? progress = null, (int Heads, int HeadDim)? attention = null)
    {
        settings.Validate();
        if (layers < 2 || vocabulary <= 1) throw new ArgumentException($"the estimate is for stacks of at least 2 layers (got {layers}) and a vocabulary larger than 1 (got {vocabulary})");
        if (settings.CheckpointBlocks > layers) throw new ArgumentException($"{name}: cannot checkpoint {settings.CheckpointBlocks} blocks of {layers}");
        int? partialBlocks = settings.CheckpointBlocks;
        settings = settings with { CheckpointBlocks = null };                      // the stacked probes checkpoint every block
        bool flora = settings.Optimizer.Contains("flora");
        // Probe vocabularies below the rank (vocabulary matrices stay uncompressed) and unlike any other dimension.
        int v0 = flora ? Math.Max(2, settings.Rank / 4 - 1) : 61;
        // Two and three layers: a stack shares some buffers between neighbouring layers (two alternating gradient
        // buffers), so the second layer adds more than each later one.
        progress?.Report($"{name}: probing 2 layers, vocabulary {v0}");
        var p11 = Probe(build, 2, v0, ProbeTokens, settings);
        progress?.Report($"{name}: probing 3 layers");
        var p21 = Probe(build, 3, v0, ProbeTokens, settings);
        progress?.Report($"{name}: probing vocabulary {2 * v0}");
        var p12 = Probe(build, 2, 2 * v0, ProbeTokens, settings);
        progress?.Report($"{name}: probing {2 * ProbeTokens} tokens");
        var p1T = Probe(build, 2, v0, 2 * ProbeTokens, settings);
        var p2T = Probe(build, 3, v0, 2 * ProbeTokens, settings);

        // Vocabulary matrices at full size must be as ineligible for compression as they are in the probes.
        if (flora)
            foreach (var shape in p12.Shapes.Where(s => s.Rank == 2 && (s[0] == 2 * v0 || s[1] == 2 * v0)))
            {
                var full = new Shape(shape[0] == 2 * v0 ? vocabulary : shape[0], shape[1] == 2 * v0 ? vocabulary : shape[1]);
                if (FloraRules.IsEligible(full, settings.Rank))
                    throw new ArgumentException($"{name}: a vocabulary matrix of {full} is compressed at rank {settings.Rank}; the estimate assumes it is not");
            }

        long Stacked(Func<ProbeResult, long> value) =>
            value(p11) + (layers - 2) * (value(p21) - value(p11)) + (long)((double)(vocabulary - v0) / v0 * (value(p12) - value(p11)));
        long tokens = (long)settings.Batch * settings.SequenceLength;
        // Activations per layer count: intercept + slope x tokens, from ProbeTokens and twice as many.
        (double Intercept, double Slope) Line(ProbeResult at, ProbeResult twice)
        {
            double slope = (double)(twice[MemoryTag.Activations] - at[MemoryTag.Activations]) / ProbeTokens;
            return (at[MemoryTag.Activations] - slope * ProbeTokens, slope);
        }
        var (i1, s1) = Line(p11, p1T);
        var (i2, s2) = Line(p21, p2T);
        long activations = (long)Math.Round(i1 + (layers - 2) * (i2 - i1) + settings.SequenceLength * (s1 + (layers - 2) * (s2 - s1)));
        string partial = "";
        BlocksLeftOut? leftOut = null;
        if (settings.Checkpointing && partialBlocks is int kept && kept < layers)
        {
            if (kept == 0) throw new ArgumentException("0 checkpointed blocks is checkpointing off: estimate with checkpointing off");
            // Each block left out of checkpointing keeps its activations, and the first one also brings the buffers that
            // such blocks share (their recomputed norms and activation): from 3 layers with 2 and with 1 checkpointed, at
            // the probes' two token counts.
            progress?.Report($"{name}: probing 3 layers with 2 and with 1 checkpointed");
            var (i32, s32) = Line(Probe(build, 3, v0, ProbeTokens, settings with { CheckpointBlocks = 2 }), Probe(build, 3, v0, 2 * ProbeTokens, settings with { CheckpointBlocks = 2 }));
            var (i31, s31) = Line(Probe(build, 3, v0, ProbeTokens, settings with { CheckpointBlocks = 1 }), Probe(build, 3, v0, 2 * ProbeTokens, settings with { CheckpointBlocks = 1 }));
            double first = i32 - i2 + settings.SequenceLength * (s32 - s2), each = i31 - i32 + settings.SequenceLength * (s31 - s32);
            leftOut = new BlocksLeftOut(activations, (long)Math.Round(first), (long)Math.Round(each));
            activations = leftOut.Activations(kept, layers);
            partial = $", the last {layers - kept} blocks not checkpointed (from 3 layers with 2 and with 1 checkpointed)";
        }
        string stacked = $"ledger of 2 and 3 layers, vocabulary {v0} and {2 * v0}, extrapolated to {layers} layers and {vocabulary:N0}";
        var tags = new List<TagEstimate>
        {
            new(MemoryTag.Parameters, Stacked(p => p[MemoryTag.Parameters]), stacked),
            new(MemoryTag.Gradients, Stacked(p => p[MemoryTag.Gradients]), stacked),
            new(MemoryTag.OptimizerState, Stacked(p => p[MemoryTag.OptimizerState]), stacked),
            new(MemoryTag.Accumulator, Stacked(p => p[MemoryTag.Accumulator]), stacked),
            new(MemoryTag.Activations, activations,
                $"ledger of 2 and 3 layers at {ProbeTokens} and {2 * ProbeTokens} tokens per sequence, extrapolated to {layers} layers and {settings.SequenceLength:N0} (affine in tokens, in layers){partial}"),
        };
        // The CUDA scratch formula needs the parameter shapes at full size: vocabulary dimensions scaled up.
        List<Shape> Full(IEnumerable<Shape> shapes) => shapes.Select(s => s.Rank == 2 && (s[0] == v0 || s[1] == v0)
            ? new Shape(s[0] == v0 ? vocabulary : s[0], s[1] == v0 ? vocabulary : s[1]) : s).ToList();
        var scratch = CudaScratch(settings, Full(p11.Shapes), Full(p11.Untied), vocabulary, attention);
        tags.Add(new(MemoryTag.Scratch, scratch.Sum(s => s.Bytes), "CUDA backend buffers by formula: " + string.Join("; ", scratch.Select(s => $"{s.What} {s.Bytes / 1048576.0:N0} MiB"))));
        return new StepMemoryEstimate(name, Stacked(p => p.ParameterCount), layers, vocabulary, settings with { CheckpointBlocks = partialBlocks }, tags) { LeftOut = leftOut };
    }

    /// <summary>
    /// The CUDA backend's scratch buffers in a step with bf16 products (each a slot that keeps its largest size):
    /// the pipeline's gradient buffer (LOMO: the largest parameter with one gradient per step), the optimizer's fp32 copy of a bf16
    /// weight (the largest), FLORA's projection and bf16 update (the largest compressed matrix), the fused head's
    /// logits of a chunk of rows (fp32, about 256 MiB at most) and their bf16 gradients, the bf16 copies of product
    /// operands (activations; bf16 weights are read in place), cuBLASLt's 32 MiB workspace, and, for a head size other
    /// than the fused attention kernels' 64 and 128, the unfused attention's score buffers of one sequence.
    /// </summary>
    public static IReadOnlyList<(string What, long Bytes)> CudaScratch(StepMemorySettings s, IReadOnlyList<Shape> parameters, IReadOnlyList<Shape> untied, int vocabulary,
        (int Heads, int HeadDim)? attention = null)
    {
        long tokens = (long)s.Batch * s.SequenceLength;
        long largest = parameters.Max(p => (long)p.Count);
        var matrices = parameters.Where(p => p.Rank == 2).ToList();
        int width = matrices.Where(p => p[0] != vocabulary && p[1] != vocabulary).Select(p => Math.Max(p[0], p[1])).DefaultIfEmpty(1).Max();
        int channels = matrices.Where(p => p[0] == vocabulary || p[1] == vocabulary).Select(p => p[0] == vocabulary ? p[1] : p[0]).DefaultIfEmpty(width).Max();
        var rows = new List<(string, long)>();
        if (s.Lomo) rows.Add(("LOMO gradient (largest untied parameter, fp32)", untied.Max(p => (long)p.Count) * 4));
        if (s.Weights == DType.BFloat16) rows.Add(("fp32 copy of a bf16 weight being updated", largest * 4));
        if (s.Optimizer.Contains("flora"))
        {
            var eligible = matrices.Where(p => FloraRules.IsEligible(p, s.Rank)).ToList();
            if (eligible.Count > 0)
            {
                rows.Add(("FLORA projection (r x d, bf16)", (long)s.Rank * eligible.Max(p => Math.Max(p[0], p[1])) * 2));
                rows.Add(("FLORA bf16 update of the low-rank path", eligible.Max(p => (long)p.Count) * 2));
            }
        }
        long ld = (vocabulary + 127) & ~127, chunk = Math.Clamp((64L << 20) / ld, 1, tokens);
        if (chunk > 128) chunk -= chunk % 128;
        rows.Add(("fused head: logits of a chunk (fp32) and their gradients (bf16)", chunk * ld * 6 + tokens * 4));
        if (vocabulary % 128 != 0) rows.Add(("fused head: padded bf16 copy of the output weight", ld * channels * 2));
        rows.Add(("bf16 copies of product operands (three, and two reused gradients)", 5 * tokens * width * 2));
        rows.Add(("cuBLASLt workspace", 32L << 20));
        // The fused attention kernels take head sizes 64 and 128; other sizes go through device memory, one sequence at a
        // time: scores and their gradients in fp32, probabilities in bf16 (H x T x T each).
        if (attention is (int heads, int headDim) && headDim is not (64 or 128))
            rows.Add(($"unfused attention (head size {headDim}): scores, score gradients, bf16 probabilities", 10L * heads * s.SequenceLength * s.SequenceLength));
        return rows;
    }

    /// <summary>Per-tag peak bytes of one training step on the CPU, the parameter count and the parameter shapes.</summary>
    private sealed class ProbeResult(Dictionary<MemoryTag, long> peaks, long parameterCount, IReadOnlyList<Shape> shapes, IReadOnlyList<Shape> untied)
    {
        /// <summary>Shapes of the parameters with one gradient per step (LOMO updates them from the shared scratch; a tied one collects its gradients in a buffer).</summary>
        public IReadOnlyList<Shape> Untied => untied;
        public long this[MemoryTag tag] => peaks[tag];
        public IReadOnlyDictionary<MemoryTag, long> Peaks => peaks;
        public long ParameterCount => parameterCount;
        public IReadOnlyList<Shape> Shapes => shapes;
    }

    /// <summary>The ledger's peak bytes per tag over one training step of the model <paramref name="build"/> makes, on the CPU.</summary>
    internal static IReadOnlyDictionary<MemoryTag, long> MeasureStep(ModelBuilder build, int layers, int vocabulary, StepMemorySettings s) =>
        Probe(build, layers, vocabulary, s.SequenceLength, s).Peaks;

    private static ProbeResult Probe(ModelBuilder build, int layers, int vocabulary, int tokens, StepMemorySettings s)
    {
        using var backend = new CpuBackend(new MemoryLedger(), s.Precision);
        LanguageModel model;
        using (WeightStorage.Use(s.Weights)) model = build(backend, layers, vocabulary);
        using (model)
        {
            if (s.Checkpointing) model.EnableCheckpointing(s.CheckpointBlocks);
            var spec = new OptimizerSpec { Name = s.Optimizer, Rank = s.Rank, LearningRate = OptimizerSpec.DefaultLearningRate(s.Optimizer) };
            using var optimizer = spec.Create(backend, model.Parameters().Where(p => p.RequiresGrad));
            optimizer.GradientOptions = new PipelineOptions { Lomo = s.Lomo, Rank = s.Rank };
            int[] ids = Enumerable.Range(0, s.Batch * tokens).Select(i => (i * 7 + 1) % vocabulary).ToArray();
            using var inputs = backend.Allocate(new Shape(s.Batch, tokens), MemoryTag.Activations, DType.Int32);
            using var targets = backend.Allocate(new Shape(s.Batch, tokens), MemoryTag.Activations, DType.Int32);
            backend.Upload(ids, inputs);
            backend.Upload(ids.Select(i => (i + 1) % vocabulary).ToArray(), targets);
            model.ForwardLoss(inputs, targets, optimizer.Gradients);
            model.BackwardLoss(optimizer.Gradients);
            optimizer.Step();
            var snapshot = backend.Ledger.Snapshot();
            return new ProbeResult(snapshot.Tags.ToDictionary(t => t.Tag, t => t.PeakBytes), model.ParameterCount, model.Parameters().Select(p => p.Shape).ToList(),
                model.Parameters().Where(p => p.UsesPerStep == 1).Select(p => p.Shape).ToList());
        }
    }
}

/// <summary>The model presets <see cref="StepMemory"/> estimates: each as a builder of any layer count and vocabulary, with its own.</summary>
public static class StepMemoryPresets
{
    /// <summary>The presets with a stack of identical layers (the GPT-2 and Llama ones).</summary>
    public static IReadOnlyList<string> Names { get; } =
        ModelFactory.Presets.Where(n => ModelFactory.Config(n, 1000) is Gpt2Config or LlamaConfig).ToArray();

    /// <summary>
    /// The builder, layer count, vocabulary and attention heads of preset <paramref name="name"/> (the published vocabulary of the shape
    /// it copies, or <paramref name="vocabulary"/> when given) for sequences of <paramref name="sequenceLength"/> tokens.
    /// </summary>
    public static (ModelBuilder Build, int Layers, int Vocabulary, (int Heads, int HeadDim) Attention) Get(string name, int sequenceLength, int? vocabulary = null)
    {
        int v = vocabulary ?? TrainBenchmark.PublishedVocabulary(name) ?? 32_000;
        return ModelFactory.Config(name, v, context: Math.Max(sequenceLength, 1)) switch
        {
            Gpt2Config g => ((b, l, vv) => new Gpt2(b, g with { Layers = l, Vocabulary = vv }, seed: 1), g.Layers, v, (g.Heads, g.Embed / g.Heads)),
            LlamaConfig c => ((b, l, vv) => new Llama(b, c with { Layers = l, Vocabulary = vv }, seed: 1), c.Layers, v, (c.Heads, c.HeadSize)),
            _ => throw new ArgumentException($"no memory estimate for '{name}': choose one of {string.Join(", ", Names)}"),
        };
    }
}
