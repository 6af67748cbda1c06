using System.Diagnostics;
using Flora.Backends;
using Flora.Backends.Cpu;
using Flora.Data;
using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Experiments;

/// <summary>The five treatments of the square layer in the pilot study (paper, Figure 1).</summary>
public enum PilotVariant
{
    /// <summary>Plain SGD on the full matrix.</summary>
    Sgd,
    /// <summary>W frozen, y = Wx + B A x, B = 0, A Gaussian; A and B trained.</summary>
    Lora,
    /// <summary>As LoRA, with A frozen: only B trained.</summary>
    LoraB,
    /// <summary>W = W - eta (G A^T) A with one fixed A (Eq. 20).</summary>
    Rp,
    /// <summary>As RP with A resampled every step: FLORA's idea.</summary>
    Rrp,
}

/// <summary>
/// How the layers around the square layer are treated; the same for all five variants. The default,
/// frozen, isolates the layer under study as the paper's figure does: with the input and output layers
/// trained, they make up for whatever the square layer cannot learn and the five curves end close together.
/// </summary>
public enum PilotRest
{
    /// <summary>The input and output layers are trained by plain SGD with the same learning rate.</summary>
    Trained,
    /// <summary>The input and output layers stay at their (shared) random initialisation.</summary>
    Frozen,
}

/// <summary>Which layer of the pilot network is the square layer under study.</summary>
public enum PilotLayer
{
    /// <summary>784 -> 768 -> [768 x 768] -> 10: the square layer in the middle.</summary>
    Middle,
    /// <summary>
    /// [768 x 768] -> 768 -> 10: the square layer first, as the paper's Figure 1 caption says ("the first layer of the
    /// network with a shape of 768 x 768"); the image is cut to its last 768 pixels (the first 16 are background).
    /// </summary>
    First,
}

/// <summary>How LoRA's A is initialised in the pilot study.</summary>
public enum PilotLoraInit
{
    /// <summary>A ~ N(0, 1/r), the paper's random projection (LoRA(B) then follows RP exactly).</summary>
    Gaussian,
    /// <summary>The LoRA reference code's kaiming_uniform_(a = sqrt(5)): U(-1/sqrt(in), 1/sqrt(in)).</summary>
    KaimingUniform,
}

/// <summary>Settings of the pilot study (Figure 1).</summary>
public sealed record PilotOptions
{
    public int Steps { get; init; } = 2000;
    public int BatchSize { get; init; } = 128;
    public float LearningRate { get; init; } = 0.01f;
    public int Rank { get; init; } = 8;
    public int Hidden { get; init; } = 768;
    public int EvalEvery { get; init; } = 100;
    public ulong Seed { get; init; } = 0;
    public PilotRest Rest { get; init; } = PilotRest.Frozen;
    /// <summary>Where the square layer under study sits.</summary>
    public PilotLayer Layer { get; init; } = PilotLayer.Middle;
    /// <summary>LoRA's initialisation of A.</summary>
    public PilotLoraInit LoraInit { get; init; } = PilotLoraInit.Gaussian;
    public IReadOnlyList<PilotVariant> Variants { get; init; } = Enum.GetValues<PilotVariant>();

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad setting.</summary>
    public void Validate()
    {
        if (Steps <= 0) throw new ArgumentException($"steps must be positive, got {Steps}");
        if (BatchSize <= 0) throw new ArgumentException($"batch size must be positive, got {BatchSize}");
        if (!(LearningRate > 0) || !float.IsFinite(LearningRate)) throw new ArgumentException($"learning rate must be positive and finite, got {LearningRate}");
        if (Hidden <= 0) throw new ArgumentException($"hidden size must be positive, got {Hidden}");
        if (Rank <= 0 || Rank > Hidden) throw new ArgumentException($"rank {Rank} is invalid for the {Hidden}x{Hidden} layer: it must be in [1, {Hidden}]");
        if (EvalEvery <= 0) throw new ArgumentException($"evaluation interval must be positive, got {EvalEvery}");
        if (Variants.Count == 0) throw new ArgumentException("no variant selected");
    }
}

/// <summary>One logged step of one variant; <see cref="TestAccuracy"/> is set at evaluation steps (step 0 is before training).</summary>
public sealed record PilotStep(PilotVariant Variant, int Step, double? TrainLoss, double? TestAccuracy, double? TestLoss);

/// <summary>The final numbers of one variant.</summary>
public sealed record PilotVariantResult(
    PilotVariant Variant,
    double FinalTrainLoss,
    double TestAccuracy,
    double TestLoss,
    double TrainSeconds,
    long TrainableParameters,
    long AllocationsAfterFirstStep,
    MemorySnapshot Memory);

/// <summary>Progress of a running pilot study, for a progress bar.</summary>
public readonly record struct PilotProgress(PilotVariant Variant, int Step, int Steps, double Loss, double? TestAccuracy);

/// <summary>
/// The pilot study of the paper (Section 2.3, Figure 1): a feed-forward Fashion-MNIST classifier
/// 784 -> 768 -> 768 -> 10 (ReLU) whose square middle layer (768x768, no bias) is trained five ways
/// (<see cref="PilotVariant"/>) with SGD at one learning rate, from the same initial weights and the
/// same data order. LoRA uses scale alpha/r = 1 and A ~ N(0, 1/r) drawn from the same seed as RP's
/// projection, so LoRA(B) and RP follow the same update (Eq. 20) and their curves coincide.
/// </summary>
public static class PilotStudy
{
    public const int Classes = 10;

    /// <summary>"final train loss" is the mean over this many last steps (fewer for short runs).</summary>
    public static int FinalWindow(int steps) => Math.Clamp(steps / 10, 1, 50);

    public static string DescribeNetwork(PilotOptions o) =>
        (o.Layer == PilotLayer.First
            ? $"[{o.Hidden}x{o.Hidden}, no bias, the layer under study, reading the last {o.Hidden} of the {28 * 28} pixels] (ReLU) -> {o.Hidden} (ReLU) -> {Classes}; "
            : $"{28 * 28} -> {o.Hidden} (ReLU) -> [{o.Hidden}x{o.Hidden}, no bias, the layer under study] (ReLU) -> {Classes}; ") +
        (o.LoraInit == PilotLoraInit.Gaussian ? "LoRA's A ~ N(0, 1/r); " : "LoRA's A ~ U(-1/sqrt(in), 1/sqrt(in)) (the LoRA code's Kaiming init); ") +
        (o.Rest == PilotRest.Trained
            ? "the input and output layers (weights and biases) are trained by plain SGD at the same learning rate in every variant"
            : "the input and output layers are frozen at the shared random initialisation in every variant");

    /// <summary>
    /// Runs every selected variant in turn. <paramref name="variantDone"/>, when given, sees the results
    /// and log so far after each variant, so that a caller can save them before the next one starts.
    /// </summary>
    public static (IReadOnlyList<PilotVariantResult> Results, IReadOnlyList<PilotStep> Log) Run(
        ImageDataset train, ImageDataset test, PilotOptions options, IProgress<PilotProgress>? progress = null,
        Action<IReadOnlyList<PilotVariantResult>, IReadOnlyList<PilotStep>>? variantDone = null)
    {
        options.Validate();
        (train, test) = (InputsFor(train, options), InputsFor(test, options));
        var results = new List<PilotVariantResult>();
        var log = new List<PilotStep>();
        foreach (var variant in options.Variants)
        {
            results.Add(RunVariant(variant, train, test, options, log, progress));
            variantDone?.Invoke(results, log);
        }
        return (results, log);
    }

    /// <summary>The images as the network reads them: whole, or (square layer first) cut to their last <see cref="PilotOptions.Hidden"/> pixels.</summary>
    public static ImageDataset InputsFor(ImageDataset data, PilotOptions o)
    {
        if (o.Layer == PilotLayer.Middle || data.Features == o.Hidden) return data;
        if (data.Features < o.Hidden) throw new ArgumentException($"the first layer is {o.Hidden} x {o.Hidden} but the images have {data.Features} pixels");
        int skip = data.Features - o.Hidden;
        var pixels = new float[data.Count * o.Hidden];
        for (int i = 0; i < data.Count; i++) Array.Copy(data.Pixels, i * data.Features + skip, pixels, i * o.Hidden, o.Hidden);
        return new ImageDataset(data.Name + $" (last {o.Hidden} pixels)", data.Count, 1, o.Hidden, pixels, data.Labels, data.Classes);
    }

    /// <summary>Seed of the square layer's projection (RP's A, RRP's first A, LoRA's A).</summary>
    public static ulong ProjectionSeed(PilotOptions o) => Seeds.Derive(Seeds.ForName(Seeds.Derive(o.Seed, 100), SquareLayer + ".weight"), 0);

    private const string SquareLayer = "fc2";

    private static PilotVariantResult RunVariant(PilotVariant variant, ImageDataset train, ImageDataset test,
        PilotOptions o, List<PilotStep> log, IProgress<PilotProgress>? progress)
    {
        using var backend = new CpuBackend(new MemoryLedger());
        using var model = BuildModel(backend, variant, train.Features, o, out Parameter[] trainable);
        using var pipeline = BuildPipeline(backend, variant, model, o);
        using var batches = new ImageBatcher(backend, train, o.BatchSize, seed: (int)(o.Seed % int.MaxValue));
        using var evaluator = new ClassifierEvaluator(backend, test);
        using var loss = new SoftmaxCrossEntropyLoss(backend);

        var (acc0, testLoss0) = evaluator.Evaluate(model);
        log.Add(new PilotStep(variant, 0, null, acc0, testLoss0));
        progress?.Report(new PilotProgress(variant, 0, o.Steps, double.NaN, acc0));

        var recent = new Queue<double>();
        int window = FinalWindow(o.Steps);
        long allocationsAfterFirst = 0;
        double accuracy = acc0, testLoss = testLoss0;
        var clock = new Stopwatch();
        for (int step = 1; step <= o.Steps; step++)
        {
            clock.Start();
            var (images, labels) = batches.Next();
            Tensor logits = model.Forward(images);
            double value = loss.Forward(logits, labels);
            model.Backward(loss.Backward(), pipeline);
            pipeline.EndMicroBatch();
            clock.Stop();
            if (!double.IsFinite(value))
                throw new FloraException($"pilot {variant}: the training loss became {value} at step {step}; lower the learning rate");
            if (step == 1) allocationsAfterFirst = backend.Ledger.Allocations;

            recent.Enqueue(value);
            if (recent.Count > window) recent.Dequeue();
            double? acc = null, tl = null;
            if (step % o.EvalEvery == 0 || step == o.Steps)
            {
                (accuracy, testLoss) = evaluator.Evaluate(model);
                (acc, tl) = (accuracy, testLoss);
            }
            log.Add(new PilotStep(variant, step, value, acc, tl));
            progress?.Report(new PilotProgress(variant, step, o.Steps, value, acc));
        }

        return new PilotVariantResult(variant, recent.Average(), accuracy, testLoss, clock.Elapsed.TotalSeconds,
            trainable.Sum(p => (long)p.Value.Count), backend.Ledger.Allocations - allocationsAfterFirst, backend.Ledger.Snapshot());
    }

    /// <summary>The pilot network with the square layer set up for <paramref name="variant"/>; same initial weights for every variant.</summary>
    public static Sequential BuildModel(IBackend backend, PilotVariant variant, int features, PilotOptions o, out Parameter[] trainable)
    {
        ulong root = o.Seed;
        bool first = o.Layer == PilotLayer.First;
        Module fc1 = first
            ? new Linear(backend, SquareLayer, o.Hidden, o.Hidden, bias: false, seed: Seeds.Derive(root, 2))
            : new Linear(backend, "fc1", features, o.Hidden, bias: true, seed: Seeds.Derive(root, 1));
        Module fc2 = first
            ? new Linear(backend, "fc1", o.Hidden, o.Hidden, bias: true, seed: Seeds.Derive(root, 1))
            : new Linear(backend, SquareLayer, o.Hidden, o.Hidden, bias: false, seed: Seeds.Derive(root, 2));
        var fc3 = new Linear(backend, "fc3", o.Hidden, Classes, bias: true, seed: Seeds.Derive(root, 3));
        Module Patch(Module m)
        {
            if (variant is not (PilotVariant.Lora or PilotVariant.LoraB)) return m;
            var lora = new LoraLinear((Linear)m, o.Rank, alpha: o.Rank, ProjectionSeed(o), trainA: variant == PilotVariant.Lora);
            if (o.LoraInit == PilotLoraInit.KaimingUniform)
            {
                // U(-b, b) with b = 1/sqrt(in), the bound kaiming_uniform_(a = sqrt(5)) gives for fan_in = in.
                float bound = 1f / MathF.Sqrt(((Linear)m).InFeatures);
                var values = new float[lora.A.Value.Count];
                var random = new Random((int)(ProjectionSeed(o) & 0x7FFFFFFF));
                for (int i = 0; i < values.Length; i++) values[i] = (float)((2 * random.NextDouble() - 1) * bound);
                lora.A.Value.CopyFrom<float>(values);
            }
            return lora;
        }
        if (first) fc1 = Patch(fc1); else fc2 = Patch(fc2);
        var rest = (first ? fc2 : fc1).Parameters().Concat(fc3.Parameters());
        if (o.Rest == PilotRest.Frozen)
            foreach (var p in rest) p.RequiresGrad = false;
        var model = new Sequential(backend, "", fc1, new Relu(backend, "relu1"), fc2, new Relu(backend, "relu2"), fc3)
        {
            ComputesInputGradient = false,
        };
        trainable = model.Parameters().Where(p => p.RequiresGrad).ToArray();
        return model;
    }

    /// <summary>
    /// SGD for every trainable parameter, applied inside backward (fused into the gradient's product);
    /// RP and RRP route the square layer's weight through the random projection first.
    /// </summary>
    public static GradientPipeline BuildPipeline(IBackend backend, PilotVariant variant, Sequential model, PilotOptions o)
    {
        var sgd = new Sgd(backend, model.Parameters().Where(p => p.RequiresGrad), o.LearningRate);
        var pipeline = new GradientPipeline(backend);
        pipeline.UseByDefault(new ImmediateUpdateSink(backend, pipeline.Scratch, sgd));
        if (variant is PilotVariant.Rp or PilotVariant.Rrp)
        {
            var weight = model.Parameters().Single(p => p.Name == SquareLayer + ".weight");
            // RP: one projection forever; RRP: a new projection every step (tau = 1). Both seeded so that
            // the first projection equals LoRA's A.
            var sink = new CompressedAccumulateSink(backend, pipeline.Scratch, sgd, o.Rank, accumulationSteps: 1,
                seed: Seeds.Derive(o.Seed, 100), resample: variant == PilotVariant.Rrp);
            pipeline.Use(weight, sink);
        }
        return pipeline;
    }

    /// <summary>
    /// The paper's reading of Figure 1: RRP close to SGD and clearly better than LoRA, LoRA(B) and RP.
    /// "Close" here: RRP's final loss is below all three, and its gap to SGD is under half the gap
    /// between SGD and the best of the three.
    /// </summary>
    public static string? OrderingVerdict(IReadOnlyList<PilotVariantResult> results, out bool holds)
    {
        holds = false;
        double Loss(PilotVariant v) => results.First(r => r.Variant == v).FinalTrainLoss;
        var needed = Enum.GetValues<PilotVariant>();
        if (!needed.All(v => results.Any(r => r.Variant == v))) return null;
        double sgd = Loss(PilotVariant.Sgd), rrp = Loss(PilotVariant.Rrp);
        double bestLowRank = new[] { PilotVariant.Lora, PilotVariant.LoraB, PilotVariant.Rp }.Min(Loss);
        bool beatsLowRank = rrp < bestLowRank;
        bool closeToSgd = rrp - sgd < 0.5 * (bestLowRank - sgd);
        holds = beatsLowRank && closeToSgd;
        return $"final train loss: SGD {sgd:F4}, RRP {rrp:F4}, best of LoRA/LoRA(B)/RP {bestLowRank:F4}. " +
               $"RRP {(beatsLowRank ? "beats" : "does not beat")} all three low-rank variants and its gap to SGD ({rrp - sgd:F4}) is " +
               $"{(closeToSgd ? "under" : "not under")} half the low-rank gap ({bestLowRank - sgd:F4}): " +
               $"the paper's ordering {(holds ? "holds" : "does not hold")}.";
    }

    public static string DisplayName(PilotVariant v) => v switch
    {
        PilotVariant.Sgd => "SGD",
        PilotVariant.Lora => "LoRA",
        PilotVariant.LoraB => "LoRA(B)",
        PilotVariant.Rp => "RP",
        PilotVariant.Rrp => "RRP",
        _ => v.ToString(),
    };
}
