using System.Diagnostics;
using System.Globalization;
using System.Text;
using Flora.Devices;
using Flora.Backends;
using Flora.Data;
using Flora.Nn;
using Flora.Nn.Models;
using Flora.Optim;
using Flora.Reporting;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Experiments.Reproduce;

/// <summary>What one arm of Table 5 measured: the selected checkpoint's accuracy, the memory, the curves.</summary>
public sealed record ClassifierArmResult(
    string Size, string Optimizer, VitConfig Config, long Parameters, double BestValidationAccuracy, long BestStep,
    double TestAccuracy, double TestLoss, long PeakBytes, long OptimizerStateBytes, MemorySnapshot Memory, double Seconds,
    IReadOnlyList<(long Step, double TrainLoss, double? ValidationAccuracy)> Curve, long DivergedAt = 0, long Resamplings = 0, int Kappa = 0)
{
    public bool Diverged => DivergedAt > 0;
    public double PeakGiB => PeakBytes / (1024.0 * 1024 * 1024);
}

/// <summary>
/// Table 5 of the paper (Appendix C.1): a ViT trained from scratch for image classification with Adam and with FLORA,
/// at two model sizes, accuracy and training memory. The paper uses CIFAR-100, which is not reachable here; we use
/// Fashion-MNIST (Debian's dataset-fashion-mnist). Each arm trains with the same learning rate, schedule, initial
/// weights and batch order; the checkpoint of the best validation accuracy (on images held out from the training set)
/// is evaluated on the test set; memory is the peak of the memory ledger over the run.
/// </summary>
public sealed class Table5 : IReproduction
{
    public string Name => "table5";
    public string Title => "ViT image classification with Adam and FLORA at two model sizes, accuracy and memory (paper: CIFAR-100; here: Fashion-MNIST)";

    /// <summary>The arms' results of the last <see cref="Run"/>.</summary>
    public IReadOnlyList<ClassifierArmResult> Results { get; private set; } = [];

    /// <summary>A ViT size of our own (Fashion-MNIST: 28 x 28 images in 16 patches of 7 x 7).</summary>
    public sealed record VitSize(string Name, int Layers, int Embed, int Heads)
    {
        public VitConfig Config => VitConfig.FashionMnist(Layers, Embed, Heads);
    }

    /// <summary>Sizes and budget of one scale. <see cref="TrainImages"/> = 0 takes every training image not held out.</summary>
    public sealed record ClassifierScale(VitSize Base, VitSize Large, int TrainImages, int ValidationImages, int TestImages, int Batch, int Epochs,
        int Evaluations, int Rank, float LearningRate);

    public static ClassifierScale ScaleOf(ReproduceSettings s) =>
        s.Quick ? new(new("base", 2, 64, 4), new("large", 3, 96, 4), 2000, 500, 2000, 50, 1, 4, 8, 2e-3f)
        : s.Scale == ReproductionScale.Paper ? new(new("base", 12, 384, 6), new("large", 12, 768, 12), 0, 5000, 0, 128, 3, 12, 128, 5e-4f)
        : new(new("base", 4, 128, 4), new("large", 6, 192, 6), 6000, 1000, 0, 64, 2, 8, 32, 1e-3f);

    /// <summary>Paper, Table 5: (size, optimizer, accuracy %, memory GiB).</summary>
    public static readonly IReadOnlyList<(string Size, string Optimizer, double Accuracy, double GiB)> Paper =
    [
        ("base", "Adam", 91.93, 4.12), ("base", "FLORA", 92.15, 3.14),
        ("large", "Adam", 92.97, 8.57), ("large", "FLORA", 92.98, 5.79),
    ];

    public const string FloraChoice =
        "Which FLORA: the paper's FLORA is Adafactor with FLORA's compressed momentum, and Appendix C.1 names no other base. " +
        "Its memory numbers also point there: the saving (0.98 GiB for ViT-Base, 86 M parameters; 2.78 GiB for ViT-Large, 304 M) is more than " +
        "the whole of Adam's first moment (0.32 / 1.13 GiB) and close to Adam's two moments (0.64 / 2.27 GiB), which only an optimizer that " +
        "drops Adam's full-size second moment can save; `adamw-flora` (Adam with a compressed first moment) could save at most the first. " +
        "So FLORA here is Adafactor (factored second moment, update clipping at 1) with compressed momentum (beta 0.9, kappa 1000, or a fifth of a shorter run). To give both " +
        "arms the same learning rate, Adafactor's parameter scaling (scale_parameter) is off: its step is then lr times a normalised update, " +
        "like Adam's, instead of lr times the weight's RMS. Adam is AdamW with weight decay 0. Both arms keep full-size gradient buffers (no " +
        "accumulation, no LOMO), so the memory difference is the optimizer state.";

    public ReproductionSummary Run(ReproduceSettings settings, IProgress<string>? log = null, CancellationToken cancel = default)
    {
        var clock = Stopwatch.StartNew();
        var scale = ScaleOf(settings);
        var report = new ReproductionReport(settings, Name, Title);
        string directory = settings.Data is string d && File.Exists(Path.Combine(d, "train-labels-idx1-ubyte.gz")) ? d : FashionMnist.DefaultDirectory;
        var (train, validation, test) = Split(FashionMnist.LoadTrain(directory), FashionMnist.LoadTest(directory), scale);
        log?.Report($"table5: {train.Count} training, {validation.Count} validation and {test.Count} test images from {directory}");

        var results = new List<ClassifierArmResult>();
        foreach (var (size, index) in new[] { scale.Base, scale.Large }.Select((s, i) => (s, i)))
            foreach (string optimizer in new[] { "Adam", "FLORA" })
            {
                cancel.ThrowIfCancellationRequested();
                log?.Report($"table5: {size.Name} ({size.Layers} layers, {size.Embed} channels), {optimizer}");
                var r = TrainArm(size, optimizer, scale, settings, Seeds.Derive(settings.Seed, (ulong)index), train, validation, test, log, cancel);
                results.Add(r);
                log?.Report($"  test accuracy {r.TestAccuracy:P2}, peak {r.PeakGiB:F4} GiB, {r.Seconds:F1} s");
                report.AddCommand($"# {size.Name} {optimizer}: ViT {size.Layers} layers x {size.Embed} channels, {size.Heads} heads; lr {scale.LearningRate.ToString(CultureInfo.InvariantCulture)}, " +
                    $"batch {scale.Batch}, {scale.Epochs} epoch(s), seed {Seeds.Derive(settings.Seed, (ulong)index)}{(optimizer == "FLORA" ? $", rank {scale.Rank}" : "")}");
            }
        Results = results;
        WriteOutputs(report, results, scale, settings, directory, train.Count, validation.Count, test.Count);
        var (verdict, holds) = Verdict(results);
        report.AddMarkdown($"Wall time of the whole reproduction: {clock.Elapsed.TotalSeconds:F1} s.");
        return report.Finish(verdict, holds);
    }

    /// <summary>
    /// Holds the last <see cref="ClassifierScale.ValidationImages"/> of the training set out for model selection, keeps
    /// <see cref="ClassifierScale.TrainImages"/> of the rest, and cuts every image into its patches (see <see cref="PatchRows"/>).
    /// </summary>
    public static (ImageDataset Train, ImageDataset Validation, ImageDataset Test) Split(ImageDataset trainSet, ImageDataset testSet, ClassifierScale scale)
    {
        int held = Math.Min(scale.ValidationImages, trainSet.Count / 5);
        int usable = trainSet.Count - held;
        int trainCount = scale.TrainImages > 0 ? Math.Min(scale.TrainImages, usable) : usable;
        int f = trainSet.Features;
        var train = new ImageDataset("train", trainCount, trainSet.Rows, trainSet.Cols, trainSet.Pixels.AsSpan(0, trainCount * f).ToArray(), trainSet.Labels[..trainCount], trainSet.Classes);
        var validation = new ImageDataset("validation", held, trainSet.Rows, trainSet.Cols, trainSet.Pixels.AsSpan(usable * f, held * f).ToArray(), trainSet.Labels[usable..], trainSet.Classes);
        var test = scale.TestImages > 0 ? testSet.Take(scale.TestImages) : testSet;
        var config = scale.Base.Config;
        return (PatchRows(train, config), PatchRows(validation, config), PatchRows(test, config));
    }

    /// <summary>The same images with each row rearranged into its patches in reading order, (P, p^2) per image, as the ViT reads them.</summary>
    public static ImageDataset PatchRows(ImageDataset images, VitConfig config)
    {
        if (images.Rows != config.ImageSize || images.Cols != config.ImageSize)
            throw new ArgumentException($"the ViT takes {config.ImageSize} x {config.ImageSize} images, the {images.Name} set has {images.Rows} x {images.Cols}");
        var patches = new float[images.Pixels.Length];
        Vit.Patchify(images.Pixels, images.Count, config.ImageSize, config.PatchSize, patches);
        return new ImageDataset(images.Name, images.Count, config.Patches, config.PatchDimension, patches, images.Labels, images.Classes);
    }

    /// <summary>The optimizer of an arm (see <see cref="FloraChoice"/>).</summary>
    public static Optimizer CreateOptimizer(IBackend backend, IReadOnlyList<Parameter> parameters, string optimizer, ClassifierScale scale, ulong seed,
        int kappa = TextScale.PaperKappa) => optimizer switch
    {
        "Adam" => new AdamW(backend, parameters, scale.LearningRate, weightDecay: 0f),
        "FLORA" => new FloraAdafactor(backend, parameters, new AdafactorOptions
        {
            LearningRate = scale.LearningRate,
            ScaleParameter = false,
            Momentum = MomentumOptions.Flora(scale.Rank, 0.9f, kappa, Table2Reproduction.Variant, Seeds.Derive(seed, 11)),
        }),
        _ => throw new ArgumentException($"unknown arm '{optimizer}': Adam or FLORA"),
    };

    /// <summary>
    /// Trains one arm: cosine schedule with a 5 % warm-up, validation accuracy at <see cref="ClassifierScale.Evaluations"/>
    /// points, the best weights kept on the host and evaluated on the test set at the end. Evaluation runs in chunks of
    /// one batch, so it needs no larger buffers than training.
    /// </summary>
    public static ClassifierArmResult TrainArm(VitSize size, string optimizerName, ClassifierScale scale, ReproduceSettings settings, ulong seed,
        ImageDataset train, ImageDataset validation, ImageDataset test, IProgress<string>? log = null, CancellationToken cancel = default)
    {
        var clock = Stopwatch.StartNew();
        using var backend = BackendFactory.Create(settings.Device, precision: settings.Precision);
        using var model = new PatchedVit(new Vit(backend, size.Config, seed));
        var parameters = model.Parameters().ToArray();
        int steps = Math.Max(1, scale.Epochs * (train.Count / scale.Batch));
        int kappa = TextScale.ScaledKappa(TextScale.PaperKappa, steps);                  // resample at least 4 times in the run
        using var optimizer = CreateOptimizer(backend, parameters, optimizerName, scale, seed, kappa);
        using var pipeline = new PipelineOptions().Build(backend, parameters, optimizer);   // one full-size gradient buffer per parameter
        using var batches = new ImageBatcher(backend, train, scale.Batch, (int)(Seeds.Derive(seed, 5) & 0x7FFFFFFF));
        using var validate = new ClassifierEvaluator(backend, validation, scale.Batch);
        using var evaluateTest = new ClassifierEvaluator(backend, test, scale.Batch);
        using var loss = new SoftmaxCrossEntropyLoss(backend);

        int evalEvery = Math.Max(1, steps / Math.Max(1, scale.Evaluations));
        var schedule = new LearningRateSchedule(ScheduleKind.Cosine, Math.Max(1, steps / 20), steps);
        var curve = new List<(long, double, double?)>();
        double best = -1, recentLoss = 0;
        long bestStep = 0;
        float[][]? bestWeights = null;
        long divergedAt = 0;
        for (int step = 1; step <= steps; step++)
        {
            cancel.ThrowIfCancellationRequested();
            optimizer.LearningRateScale = schedule.Factor(step);
            var (images, labels) = batches.Next();
            double value = loss.Forward(model.Forward(images), labels);
            if (!double.IsFinite(value))                                           // diverged: keep the best checkpoint so far
            {
                divergedAt = step;
                log?.Report($"  step {step}: the training loss is {value}; training stops here");
                break;
            }
            model.Backward(loss.Backward(), pipeline);
            pipeline.EndMicroBatch();
            recentLoss = step == 1 ? value : 0.9 * recentLoss + 0.1 * value;          // smoothed for the curve
            double? accuracy = null;
            if (step % evalEvery == 0 || step == steps)
            {
                accuracy = validate.Evaluate(model).Accuracy;
                if (accuracy > best) (best, bestStep, bestWeights) = (accuracy.Value, step, Download(parameters));
                log?.Report($"  step {step}/{steps}: train loss {recentLoss:F4}, validation accuracy {accuracy:P2}");
            }
            curve.Add((step, recentLoss, accuracy));
        }
        var memory = backend.Ledger.Snapshot();                                     // the peak of training and validation
        long stateBytes = optimizer.StateBytes;
        var (testAccuracy, testLoss) = (double.NaN, double.NaN);
        if (bestWeights is not null)
        {
            Upload(parameters, bestWeights);
            (testAccuracy, testLoss) = evaluateTest.Evaluate(model);
        }
        return new ClassifierArmResult(size.Name, optimizerName, size.Config, parameters.Sum(p => (long)p.Value.Count), best, bestStep,
            testAccuracy, testLoss, memory.PeakTotalBytes, stateBytes, memory, clock.Elapsed.TotalSeconds, curve, divergedAt, optimizer.Resamplings,
            optimizerName == "FLORA" ? kappa : 0);
    }

    private static float[][] Download(IReadOnlyList<Parameter> parameters) => parameters.Select(p => p.Value.ToArray()).ToArray();

    private static void Upload(IReadOnlyList<Parameter> parameters, float[][] values)
    {
        for (int i = 0; i < parameters.Count; i++) parameters[i].Value.CopyFrom<float>(values[i]);
    }

    private static void WriteOutputs(ReproductionReport report, List<ClassifierArmResult> results, ClassifierScale scale, ReproduceSettings settings,
        string directory, int trainCount, int validationCount, int testCount)
    {
        var c = CultureInfo.InvariantCulture;
        var csv = new CsvTable("size", "optimizer", "layers", "channels", "heads", "parameters", "best_validation_accuracy", "best_step", "test_accuracy",
            "test_loss", "peak_bytes", "peak_gib", "optimizer_state_bytes", "gradients_at_peak_bytes", "activations_at_peak_bytes", "seconds");
        foreach (var r in results)
            csv.AddRow(r.Size, r.Optimizer, r.Config.Layers, r.Config.Embed, r.Config.Heads, r.Parameters, r.BestValidationAccuracy.ToString("F4", c), r.BestStep,
                r.TestAccuracy.ToString("F4", c), r.TestLoss.ToString("F4", c), r.PeakBytes, r.PeakGiB.ToString("F6", c), r.OptimizerStateBytes,
                r.Memory[MemoryTag.Gradients].BytesAtTotalPeak, r.Memory[MemoryTag.Activations].BytesAtTotalPeak, r.Seconds.ToString("F1", c));
        report.WriteCsv(csv);
        var curves = new CsvTable("size", "optimizer", "step", "train_loss_smoothed", "validation_accuracy");
        foreach (var r in results)
            foreach (var (step, trainLoss, accuracy) in r.Curve)
                curves.AddRow(r.Size, r.Optimizer, step, trainLoss.ToString("F5", c), accuracy?.ToString("F4", c) ?? "");
        report.WriteCsv(curves, "curves.csv");

        var accuracyChart = new SvgLineChart("ViT on Fashion-MNIST: validation accuracy", "training step", "validation accuracy") { Subtitle = $"lr {scale.LearningRate.ToString(c)}, batch {scale.Batch}, FLORA rank {scale.Rank}" };
        var lossChart = new SvgLineChart("ViT on Fashion-MNIST: training loss (smoothed)", "training step", "cross-entropy") { Subtitle = accuracyChart.Subtitle };
        for (int i = 0; i < results.Count; i++)
        {
            var r = results[i];
            string name = $"{r.Size} ({r.Config.Layers}x{r.Config.Embed}), {r.Optimizer}";
            int colour = i / 2;                                                    // one colour per size, FLORA dashed
            accuracyChart.AddSeries(name, r.Curve.Where(p => p.ValidationAccuracy is not null).Select(p => ((double)p.Step, p.ValidationAccuracy!.Value)).ToArray(), r.Optimizer == "FLORA", colour);
            lossChart.AddSeries(name, r.Curve.Select(p => ((double)p.Step, p.TrainLoss)).ToArray(), r.Optimizer == "FLORA", colour);
        }
        report.WriteChart("accuracy.svg", accuracyChart);
        report.WriteChart("loss.svg", lossChart);

        var md = new StringBuilder();
        md.AppendLine("## Setting").AppendLine();
        md.AppendLine($"- Data: Fashion-MNIST from {directory} (the paper's CIFAR-100 is not reachable here): {trainCount:N0} training images, {validationCount:N0} held out " +
            $"from the end of the training set for choosing the checkpoint, {testCount:N0} test images. 28 x 28 greyscale images in 16 patches of 7 x 7, 10 classes.");
        md.AppendLine($"- Models: ViT (pre-norm, class token, learned positions, GELU MLP of 4x): base = {Describe(scale.Base)}, large = {Describe(scale.Large)}.");
        md.AppendLine($"- Training: {scale.Epochs} epoch(s) of batches of {scale.Batch}, the same learning rate {scale.LearningRate.ToString(c)} for both optimizers with a cosine schedule " +
            $"(5 % linear warm-up, down to 10 %), the same initial weights and batch order within a size; validation accuracy at {scale.Evaluations} points, the best checkpoint evaluated on test. " +
            $"Device {settings.Device}{(settings.Device == "cuda" ? $" (matrix products in {settings.Precision})" : "")}.");
        md.AppendLine($"- Memory: the peak of the memory ledger over training and validation (parameters, gradients, optimizer state, activations, scratch, the batch buffers), in GiB; the optimizer state separately.");
        md.AppendLine($"- {FloraChoice} FLORA rank r = {scale.Rank}.").AppendLine();
        md.AppendLine("## Table 5: ours next to the paper's").AppendLine();
        md.AppendLine("| Model size | Optimizer | Accuracy (ours, test) | Memory (ours, peak) | Optimizer state (ours) | Accuracy (paper, CIFAR-100) | Memory (paper) |");
        md.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in results)
        {
            var adam = results.First(a => a.Size == r.Size && a.Optimizer == "Adam");
            var paper = Paper.First(p => p.Size == r.Size && p.Optimizer == r.Optimizer);
            var paperAdam = Paper.First(p => p.Size == r.Size && p.Optimizer == "Adam");
            string saving = r.Optimizer == "Adam" ? "" : $" ({Percent(r.PeakBytes, adam.PeakBytes)})";
            string paperSaving = r.Optimizer == "Adam" ? "" : $" ({Percent(paper.GiB, paperAdam.GiB)})";
            md.AppendLine($"| {r.Size} ({r.Config.Layers} x {r.Config.Embed}, {r.Parameters / 1e6:F2} M) | {r.Optimizer}{(r.Diverged ? $" (diverged at step {r.DivergedAt})" : "")} | {100 * r.TestAccuracy:F2} | {ReproductionReport.GiB(r.PeakBytes)} GiB = {r.PeakBytes / 1048576.0:F1} MiB{saving} | " +
                $"{r.OptimizerStateBytes / 1048576.0:F2} MiB | {paper.Accuracy:F2} | {paper.GiB:F2} GiB{paperSaving} |");
        }
        var flora = results.Where(r => r.Optimizer == "FLORA").ToList();
        if (flora.Count > 0)
            md.AppendLine().AppendLine($"resamplings per FLORA arm: {string.Join(", ", flora.Select(r => r.Resamplings).Distinct())} (kappa = {string.Join(", ", flora.Select(r => r.Kappa).Distinct())} here, "
                + $"the paper's {TextScale.PaperKappa}: a fifth of the run when the run is shorter than five of the paper's). One seed per arm.");
        md.AppendLine().AppendLine("Charts: `accuracy.svg` (validation accuracy), `loss.svg` (training loss); every point in `curves.csv`.");
        report.AddMarkdown(md.ToString());
    }

    private static string Describe(VitSize s) => $"{s.Layers} layers of {s.Embed} channels, {s.Heads} heads";

    private static string Percent(double value, double reference) =>
        (value >= reference ? "+" : "") + (100 * (value - reference) / reference).ToString("F1", CultureInfo.InvariantCulture) + " %";

    /// <summary>FLORA keeps the accuracy (within one point of Adam's, or better) at a lower peak, at both sizes.</summary>
    private static (string Verdict, bool Holds) Verdict(IReadOnlyList<ClassifierArmResult> results)
    {
        var parts = new List<string>();
        bool holds = true;
        foreach (var size in results.Select(r => r.Size).Distinct())
        {
            var adam = results.First(r => r.Size == size && r.Optimizer == "Adam");
            var flora = results.First(r => r.Size == size && r.Optimizer == "FLORA");
            bool keeps = !flora.Diverged && flora.TestAccuracy >= adam.TestAccuracy - 0.01, lower = flora.PeakBytes < adam.PeakBytes;
            holds &= keeps && lower;
            parts.Add($"{size}: FLORA {100 * flora.TestAccuracy:F2} % vs Adam {100 * adam.TestAccuracy:F2} % ({(keeps ? "kept" : "lost")}, within 1 point counts as kept), " +
                $"peak {ReproductionReport.GiB(flora.PeakBytes)} vs {ReproductionReport.GiB(adam.PeakBytes)} GiB ({Percent(flora.PeakBytes, adam.PeakBytes)}; paper {(size == "base" ? "-23.8" : "-32.4")} %)");
        }
        return ((holds ? "FLORA keeps Adam's accuracy at lower memory here, as in the paper. " : "The paper's conclusion does not fully hold here. ") + string.Join("; ", parts) + ".", holds);
    }
}

/// <summary>
/// A ViT fed with flat rows: each row holds one image's patches in reading order (<see cref="Table5.PatchRows"/>), so the
/// batchers and evaluators that serve (B, features) rows can drive a ViT; the rows are viewed as (B, P, p^2).
/// </summary>
public sealed class PatchedVit(Vit vit) : Module(vit.Backend, "")
{
    public Vit Vit { get; } = vit;

    public override bool ComputesInputGradient { get => false; set { } }

    public override IEnumerable<Module> Children => [Vit];

    public override Tensor Forward(Tensor rows) =>
        Vit.Forward(rows.View(new Shape(rows.Shape[0], Vit.Config.Patches, Vit.Config.PatchDimension)));

    public override Tensor? Backward(Tensor gradLogits, IGradientSink gradients) => Vit.Backward(gradLogits, gradients);
}
