using System.Globalization;
using System.Text;
using Flora.Checkpoints;
using Flora.Data.Corpora;
using Flora.Optim;
using Flora.Reporting;
using Flora.Training;

namespace Flora.Experiments.Reproduce;

/// <summary>
/// Table 6 (Appendix C.2): GaLore against FLORA in Llama-style language-model pretraining, perplexity and memory.
/// The paper trains on C4 with GaLore's hyper-parameters for both methods, except that FLORA's learning rate is
/// 3 times smaller. Here a Llama-style model (RMSNorm, rotary positions, SwiGLU) trains from scratch on the
/// embedded English corpus. Arms: GaLore (rank r, gap 200, scale 0.25, AdamW), FLORA as AdamW with FLORA's
/// compressed momentum (rank r, learning rate swept around the paper's a third of GaLore's), plain AdamW (reference), and FLORA with its
/// own base optimizer, Adafactor (the official implementation; its learning rate is relative). Every arm keeps
/// its best validation checkpoint, which is scored on the test split; memory is the ledger's peak.
/// </summary>
public sealed class Table6Reproduction : IReproduction
{
    public string Name => "table6";
    public bool RunsArms => true;

    public string Title =>
        "Table 6: GaLore vs FLORA, Llama-style language-model pretraining (paper: C4, 60M/350M/7B; here: the English corpus), perplexity and memory";

    /// <summary>GaLore's update_proj_gap and scale, the GaLore paper's defaults, at every scale.</summary>
    public const int GaLoreGap = 200;
    public const float GaLoreScale = 0.25f;

    /// <summary>The sizes of one scale. GaLore's learning rate is the GaLore paper's 0.01; FLORA's is a third of it.</summary>
    public sealed record Scale(
        string Model, string PaperModel, string Tokenizer, int Rank, int Steps, int Batch, int SequenceLength, int Warmup, int EvalEvery, int EvalBatches,
        float GaLoreLearningRate = 0.01f, float AdamWLearningRate = 1e-3f, float AdafactorFloraLearningRate = 3e-2f, bool PreparedText = false, int Seeds = 3,
        int EarlyStopPatience = 0)
    {
        /// <summary>FLORA's resampling interval: the paper's 1000, or a fifth of a shorter run.</summary>
        public int Kappa => TextScale.ScaledKappa(TextScale.PaperKappa, Steps);

        public float FloraLearningRate => GaLoreLearningRate / 3;

        /// <summary>
        /// The rates FLORA on AdamW is swept over, by validation loss on the first seed (extended past an edge, twice at
        /// most): the paper's, a third of GaLore's, and two below it. Its momentum is the decompressed one, larger than
        /// the gradient whose second moment divides it, so the paper's rate need not be its best here.
        /// </summary>
        public IReadOnlyList<float> FloraGrid => [FloraLearningRate / 10, FloraLearningRate / 3, FloraLearningRate];

        public static Scale For(ReproduceSettings s)
        {
            var scale = s.Quick
                ? new Scale("llama-tiny", "60M", "bpe:512", Rank: 8, Steps: 30, Batch: 8, SequenceLength: 64, Warmup: 3, EvalEvery: 15, EvalBatches: 4, Seeds: 1)
                : s.Scale == ReproductionScale.Paper
                // GaLore's 60M setting: rank 128 of 512 channels, sequences of 256 tokens. The data budget: the whole prepared English Bible
                // (about 1.05 M GPT-2 tokens of training text, 256 steps of 16 x 256 tokens per pass) for 600 steps, about 2.3 passes, with early
                // stopping after 3 evaluations without a better validation loss; 1,000 steps on the smaller embedded corpus (9 passes) over-fitted
                // (validation perplexity 44 at best, 159 at the end).
                ? new Scale("llama-60m", "60M", "gpt2", Rank: 128, Steps: 600, Batch: 16, SequenceLength: 256, Warmup: 60, EvalEvery: 50, EvalBatches: 20,
                    PreparedText: true, Seeds: 3, EarlyStopPatience: 3)
                // A quarter of the 256 channels, like GaLore's 128 of 512.
                : new Scale("llama-small", "60M", "bpe:2048", Rank: 64, Steps: 250, Batch: 8, SequenceLength: 64, Warmup: 30, EvalEvery: 50, EvalBatches: 10);
            return scale with
            {
                Steps = s.Steps ?? scale.Steps,
                Rank = s.Ranks is { Count: > 0 } ranks ? ranks[0] : scale.Rank,
                Seeds = s.Seeds ?? scale.Seeds,
            };
        }
    }

    /// <summary>The paper's Table 6: (model, method, PPL, memory GiB).</summary>
    public static readonly IReadOnlyList<(string Model, string Method, string Perplexity, string MemoryGiB)> Paper =
    [
        ("60M", "GaLore", "34.64", "27.7"), ("60M", "FLORA", "32.52", "27.5"),
        ("350M", "GaLore", "27.17", "36.50"), ("350M", "FLORA", "23.69", "36.48"),
        ("7B", "GaLore", "-", "22.9"), ("7B", "FLORA", "-", "21.2"),
    ];

    /// <summary>One arm's result with the split of its optimizer state read back from its checkpoint.</summary>
    public sealed record Row(string Key, string Label, ArmResult Result, double? FinalValidationLoss, long ProjectionBytes, long MomentBytes,
        int ProjectedMatrices, IReadOnlyList<string> UnprojectedMatrices, ArmSeries? Series = null)
    {
        /// <summary>Mean test perplexity over the seeds (the first seed's when there is one).</summary>
        public double? MeanPerplexity => Series is { Failed: false } s ? s.Runs.Average(r => r.TestPerplexity ?? double.NaN) : Perplexity;
        /// <summary>Sample standard deviation of the test perplexity over the seeds.</summary>
        public double PerplexitySpread => Series is { Failed: false } s ? ArmSeries.Spread(s.Runs.Select(r => r.TestPerplexity ?? double.NaN).ToArray()) : 0;
        public double? FinalPerplexity => FinalValidationLoss is double v ? Math.Exp(v) : null;
        public double? BestPerplexity => Result.BestValidationLoss is double v ? Math.Exp(v) : null;
        /// <summary>Test perplexity of the best checkpoint, or the best validation perplexity when there is none.</summary>
        public double? Perplexity => Result.TestPerplexity ?? BestPerplexity;
    }

    public ReproductionSummary Run(ReproduceSettings settings, IProgress<string>? log = null, CancellationToken cancel = default)
    {
        var scale = Scale.For(settings);
        var report = new ReproductionReport(settings, Name, Title);
        string tokenizer = PrepareTokenizer(settings, scale, log);
        string? corpus = scale.PreparedText ? Path.Combine(ArmRunner.EnsureData(settings, log), "lm-train.txt") : null;
        var baseOptions = new TrainOptions
        {
            Model = scale.Model, Tokenizer = tokenizer, Corpus = corpus, Task = "lm", SequenceLength = scale.SequenceLength, BatchSize = scale.Batch,
            Steps = scale.Steps, Schedule = ScheduleKind.Cosine, WarmupSteps = scale.Warmup, EvalEvery = Math.Min(scale.EvalEvery, scale.Steps),
            EvalBatches = scale.EvalBatches, Seed = settings.Seed, EarlyStoppingPatience = scale.EarlyStopPatience,
        };
        OptimizerSpec Spec(string name, float lr) => new()
        {
            Name = name, LearningRate = lr, Rank = scale.Rank, Seed = settings.Seed, WeightDecay = 0f, Kappa = scale.Kappa, Variant = Table2Reproduction.Variant,
        };
        var arms = new (string Key, string Label, Arm Arm)[]
        {
            ("galore", $"GaLore({scale.Rank})", new Arm("GaLore", scale.Rank, baseOptions with
                { Optimizer = Spec("galore", scale.GaLoreLearningRate) with { GaLoreGap = GaLoreGap, GaLoreScale = GaLoreScale } })),
            ("flora", $"FLORA({scale.Rank}), AdamW", Flora(scale.FloraLearningRate)),
            ("adamw", "AdamW (full rank)", new Arm("AdamW", 0, baseOptions with { Optimizer = Spec("adamw", scale.AdamWLearningRate) })),
            ("flora-adafactor", $"FLORA({scale.Rank}), Adafactor", new Arm("Flora-Adafactor", scale.Rank, baseOptions with
                { Optimizer = Spec("flora", scale.AdafactorFloraLearningRate) })),
        };
        Arm Flora(float lr) => new("Flora", scale.Rank, baseOptions with { Optimizer = Spec("adamw-flora", lr) });
        log?.Report($"table6 ({settings.ScaleName}): {scale.Model}, rank {scale.Rank}, {scale.Steps} steps of {scale.Batch} x {scale.SequenceLength} tokens, device {settings.Device}");

        var runner = new ArmRunner(settings, log, cancel, testPairs: 0, maxNewTokens: 1) { SeedCount = scale.Seeds };   // (generation settings are unused by language modelling)
        var rows = new List<Row>();
        foreach (var (key, label, arm) in arms)
        {
            cancel.ThrowIfCancellationRequested();
            // FLORA on AdamW at its best rate of the sweep (run directories flora-lrRATE), the other arms at their published rates.
            var result = key == "flora" ? runner.Sweep(Flora, scale.FloraGrid, key) : runner.Run(arm, key);
            string directory = key == "flora" ? $"{key}-lr{ArmRunner.Format(result.LearningRate)}" : key;
            var series = key == "adamw" ? new ArmSeries([result]) : runner.Seeds(result, key);
            rows.Add(Describe(key, label, result, Path.Combine(settings.OutputDirectory, "runs", directory)) with { Series = series });
            foreach (var r in series.Runs) report.AddCommand(CommandOf(r.Arm.Options));
        }

        report.AddMarkdown(Setting(settings, scale));
        report.AddMarkdown(Table(rows, scale));
        var floraRows = rows.Where(r => r.Key.StartsWith("flora", StringComparison.Ordinal) && r.Series is not null).Select(r => r.Series!).ToList();
        report.AddMarkdown(TextTables.ResamplingLine(floraRows, scale.Kappa) + $". Seeds: {scale.Seeds} for GaLore and both FLORA arms (perplexity: mean ± sample "
            + "standard deviation of the test perplexity over the seeds), one for the AdamW reference. " + Table2Reproduction.SweepLine(runner, "flora"));
        report.AddMarkdown(PaperTable());
        report.AddMarkdown(StateNote(rows));
        report.WriteCsv(Csv(rows, scale));
        report.WriteChart("loss.svg", Curves(rows, settings, scale));
        var (verdict, holds) = Verdict(rows);
        log?.Report(verdict);
        return report.Finish(verdict, holds);
    }

    /// <summary>Trains the scale's BPE once (or reuses it) in a directory shared by every arm; "gpt2" needs none.</summary>
    private static string PrepareTokenizer(ReproduceSettings settings, Scale scale, IProgress<string>? log)
    {
        if (!scale.Tokenizer.StartsWith("bpe:", StringComparison.Ordinal)) return scale.Tokenizer;
        string shared = Path.Combine(settings.OutputDirectory, "shared");
        string directory = Path.Combine(shared, TokenizerSetup.Directory);
        using var claim = RunClaim.Wait(directory, CancellationToken.None);   // workers sharing the directory train it once
        if (!File.Exists(Path.Combine(directory, "encoder.json"))) log?.Report($"training the {scale.Tokenizer} tokenizer on the corpus's training split");
        TokenizerSetup.Prepare(scale.Tokenizer, shared, () => EmbeddedCorpus.Load().Train);
        return directory;
    }

    /// <summary>
    /// The arm's final validation loss (the trainer evaluates at the last step) and the split of its optimizer state,
    /// read from the tensors of its best checkpoint: GaLore's projections, and which matrices have one.
    /// </summary>
    private static Row Describe(string key, string label, ArmResult result, string runDirectory)
    {
        double? final = result.ValidationCurve.Count > 0 ? result.ValidationCurve[^1].Loss : null;
        long projection = 0, moments = 0;
        var projected = new HashSet<string>();
        var matrices = new List<string>();
        string state = Path.Combine(runDirectory, TrainingCheckpoint.Best, TrainingCheckpoint.StateFile);
        if (!result.Failed && File.Exists(state))
        {
            using var file = SafeTensorsFile.Open(state);
            foreach (var t in file.Tensors.Where(t => t.Name.StartsWith(OptimizerCheckpoint.DefaultPrefix, StringComparison.Ordinal)))
            {
                string name = t.Name[OptimizerCheckpoint.DefaultPrefix.Length..];
                int slash = name.LastIndexOf('/');
                string parameter = name[..slash], tensor = name[(slash + 1)..];
                if (tensor == "projection") { projection += t.ByteCount; projected.Add(parameter); }
                else moments += t.ByteCount;
                if ((tensor == "exp_avg_sq" && t.Shape.Count == 2) || tensor == "projection") matrices.Add(parameter);
            }
        }
        // Matrices without a projection, named by their role (the part after "model.layers.N.").
        var unprojected = matrices.Distinct().Where(p => !projected.Contains(p)).Select(Role).Distinct().ToArray();
        return new Row(key, label, result, final, projection, moments, projected.Count, key == "galore" ? unprojected : []);
    }

    private static string Role(string parameter)
    {
        string[] parts = parameter.Split('.');
        int layer = Array.IndexOf(parts, "layers");
        return layer >= 0 && layer + 2 <= parts.Length ? string.Join('.', parts[(layer + 2)..]) : parameter;
    }

    /// <summary>The `flora train` line that reruns an arm; GaLore's rank is given explicitly (gap and scale are its defaults).</summary>
    private static string CommandOf(TrainOptions o)
    {
        string command = ArmRunner.CommandLine(o);
        return o.Optimizer.Name == "galore" && !command.Contains("--rank", StringComparison.Ordinal)
            ? command.Replace(" --lr ", $" --rank {o.Optimizer.Rank} --lr ", StringComparison.Ordinal)
            : command;
    }

    private static string F(double? v, string format) => v is double d && double.IsFinite(d) ? d.ToString(format, CultureInfo.InvariantCulture) : "-";

    private static string MiB(long bytes) => (bytes / 1048576.0).ToString("0.00", CultureInfo.InvariantCulture);

    private static string Setting(ReproduceSettings settings, Scale scale) =>
        $"Setting: {scale.Model} (Llama-style: RMSNorm, rotary positions, SwiGLU; separate q/k/v and gate/up projections under Hugging Face's names) trained from scratch on the "
        + (scale.PreparedText ? "whole prepared English Bible (World English Bible with the deuterocanon, lm-train.txt of flora data prepare)" : "embedded English corpus (World English Bible)")
        + $", tokenizer {scale.Tokenizer}, up to {scale.Steps} steps of {scale.Batch} x {scale.SequenceLength} tokens"
        + (scale.EarlyStopPatience > 0 ? $" (early stopping after {scale.EarlyStopPatience} evaluations without a better validation loss)" : "") + ", "
        + $"cosine schedule with {scale.Warmup} warm-up steps, no weight decay, seed {settings.Seed}. Rank r = {scale.Rank} for GaLore and FLORA; GaLore refreshes "
        + $"its projection every {GaLoreGap} steps with scale {GaLoreScale.ToString(CultureInfo.InvariantCulture)} and learning rate "
        + $"{ArmRunner.Format(scale.GaLoreLearningRate)} (the GaLore paper's); FLORA (AdamW with FLORA's compressed momentum, kappa {scale.Kappa}) takes the best of "
        + $"{string.Join(", ", scale.FloraGrid.Select(ArmRunner.Format))} on validation loss, among them the paper's a third of GaLore's, "
        + $"{ArmRunner.Format(scale.FloraLearningRate)}. AdamW at {ArmRunner.Format(scale.AdamWLearningRate)} is the full-rank reference, and "
        + $"FLORA on its own base optimizer (Adafactor, the official implementation) runs at its relative rate {ArmRunner.Format(scale.AdafactorFloraLearningRate)}. "
        + "Each arm keeps its best validation checkpoint, whose test-split perplexity is reported (PPL); memory is the peak of the memory ledger over the run "
        + "(parameters, gradients, optimizer state, activations and scratch), the paper's being GPU peaks at the paper's batch sizes.";

    private static string Table(IReadOnlyList<Row> rows, Scale scale)
    {
        var md = new StringBuilder();
        md.AppendLine($"| model | optimizer | lr | PPL (test, mean ± sd, seeds) | best val PPL (first seed) | final val PPL (first seed) | Mem GiB (MiB) | optimizer state (MiB) | of which projections (MiB) | paper PPL ({scale.PaperModel}) | paper Mem GiB ({scale.PaperModel}) |");
        md.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in rows)
        {
            var paper = Paper.FirstOrDefault(p => p.Model == scale.PaperModel && r.Key == (p.Method == "GaLore" ? "galore" : "flora"));
            string paperPpl = paper.Method is null ? "-" : paper.Perplexity, paperMem = paper.Method is null ? "-" : paper.MemoryGiB;
            string lr = ArmRunner.Format(r.Result.LearningRate);
            md.AppendLine(r.Result.Failed
                ? $"| {scale.Model} | {r.Label} | {lr} | {r.Result.Failure} | - | - | - | - | - | {paperPpl} | {paperMem} |"
                : $"| {scale.Model} | {r.Label} | {lr} | {F(r.MeanPerplexity, "0.00")} ± {F(r.PerplexitySpread, "0.00")} ({r.Series?.Runs.Count ?? 1}) | {F(r.BestPerplexity, "0.00")} | {F(r.FinalPerplexity, "0.00")} | "
                + $"{ReproductionReport.GiB(r.Result.PeakBytes)} ({MiB(r.Result.PeakBytes)}) | {MiB(r.Result.OptimizerStateBytes)} | {(r.Key == "galore" ? MiB(r.ProjectionBytes) : "-")} | {paperPpl} | {paperMem} |");
        }
        return md.ToString();
    }

    private static string PaperTable()
    {
        var md = new StringBuilder("The paper's Table 6 (C4, token-level perplexity; peak GPU memory; 7B: memory only, batch 16):\n\n");
        md.AppendLine("| model | method | PPL | Mem (GiB) |");
        md.AppendLine("| --- | --- | ---: | ---: |");
        foreach (var p in Paper) md.AppendLine($"| {p.Model} | {p.Method} | {p.Perplexity} | {p.MemoryGiB} |");
        return md.ToString();
    }

    private static string StateNote(IReadOnlyList<Row> rows)
    {
        var galore = rows.FirstOrDefault(r => r.Key == "galore");
        if (galore is null || galore.Result.Failed) return "";
        return $"GaLore projected {galore.ProjectedMatrices} matrices (those FLORA compresses: 2-D, min(n, m) >= r, at most 4:1); their projections "
            + $"(P or Q^T, stored) take {MiB(galore.ProjectionBytes)} MiB of its {MiB(galore.Result.OptimizerStateBytes)} MiB of optimizer state, the "
            + $"moments {MiB(galore.MomentBytes)} MiB. Matrices with full-size AdamW state in GaLore (and full-size momentum in FLORA): "
            + $"{(galore.UnprojectedMatrices.Count == 0 ? "none" : string.Join(", ", galore.UnprojectedMatrices))}. FLORA with AdamW keeps Adam's second "
            + "moment at full size (only the momentum is compressed), so its state is larger than GaLore's; FLORA with Adafactor factors it. "
            + "The paper gives FLORA less memory than GaLore, which a full-size second moment cannot give: this suggests its FLORA is the Adafactor-based "
            + "official one.";
    }

    private static CsvTable Csv(IReadOnlyList<Row> rows, Scale scale)
    {
        var csv = new CsvTable("experiment", "model", "arm", "optimizer", "rank", "lr", "galore_gap", "galore_scale", "kappa", "steps", "batch", "seq_len", "seed",
            "final_val_loss", "final_val_ppl", "best_val_loss", "best_val_ppl", "best_step", "test_loss", "test_ppl", "peak_bytes", "optimizer_state_bytes",
            "projection_bytes", "moment_bytes", "projected_matrices", "seconds", "failure", "command");
        foreach (var r in rows)
        {
            var o = r.Result.Arm.Options;
            bool galore = o.Optimizer.Name == "galore";
            csv.AddRow("table6", scale.Model, r.Key, o.Optimizer.Name, o.Optimizer.Name == "adamw" ? 0 : o.Optimizer.Rank, r.Result.LearningRate,
                galore ? o.Optimizer.GaLoreGap : null, galore ? o.Optimizer.GaLoreScale : null, o.Optimizer.Name.Contains("flora") ? o.Optimizer.Kappa : null,
                o.Steps, o.BatchSize, o.SequenceLength, o.Seed, r.FinalValidationLoss, r.FinalPerplexity, r.Result.BestValidationLoss, r.BestPerplexity,
                r.Result.BestStep, r.Result.TestLoss, r.Result.TestPerplexity, r.Result.PeakBytes, r.Result.OptimizerStateBytes, r.ProjectionBytes,
                r.MomentBytes, r.ProjectedMatrices, r.Result.Seconds, r.Result.Failure, CommandOf(o));
        }
        return csv;
    }

    /// <summary>Training loss of every step (from each run's metrics.csv) and validation loss (dashed), per arm.</summary>
    private static SvgLineChart Curves(IReadOnlyList<Row> rows, ReproduceSettings settings, Scale scale)
    {
        var chart = new SvgLineChart($"Table 6: {scale.Model}, GaLore vs FLORA", "step", "loss") { Subtitle = "training loss (solid), validation loss (dashed)" };
        int colour = 0;
        foreach (var r in rows)
        {
            string metrics = Path.Combine(settings.OutputDirectory, "runs", r.Key, MetricsLog.CsvFile);
            var train = File.Exists(metrics)
                ? MetricsLog.ReadCsv(metrics).Where(m => double.IsFinite(m.TrainLoss)).Select(m => ((double)m.Step, m.TrainLoss)).ToList()
                : [];
            if (train.Count > 0) chart.AddSeries(r.Label, train, colour: colour);
            var validation = r.Result.ValidationCurve.Where(p => double.IsFinite(p.Loss)).Select(p => ((double)p.Step, p.Loss)).ToList();
            if (validation.Count > 0) chart.AddSeries($"{r.Label} (validation)", validation, dashed: true, colour: colour);
            colour++;
        }
        return chart;
    }

    /// <summary>
    /// Does FLORA reach a lower or similar perplexity than GaLore at lower or similar memory (similar: within 2%)? The
    /// answer is that of FLORA as AdamW with compressed momentum (the protocol's FLORA); FLORA on Adafactor is judged
    /// in the same words beside it.
    /// </summary>
    private static (string Verdict, bool Holds) Verdict(IReadOnlyList<Row> rows)
    {
        Row galore = rows.Single(r => r.Key == "galore"), flora = rows.Single(r => r.Key == "flora"), adafactor = rows.Single(r => r.Key == "flora-adafactor");
        Row adamw = rows.Single(r => r.Key == "adamw");
        if (galore.Result.Failed) return ($"GaLore {galore.Result.Failure}: no comparison. FLORA (AdamW) {Outcome(flora)}; FLORA (Adafactor) {Outcome(adafactor)}.", false);
        var (floraText, holds) = Compare(flora, galore);
        var (adafactorText, adafactorHolds) = Compare(adafactor, galore);
        string verdict = $"FLORA as AdamW with compressed momentum (learning rate {ArmRunner.Format(flora.Result.LearningRate)}, the best of its sweep): {floraText}. "
            + (holds ? "The paper's conclusion holds for it here." : "The paper's conclusion does not hold for it here.")
            + $" FLORA on Adafactor (the official implementation, factored second moment): {adafactorText}; "
            + (adafactorHolds ? "with it the conclusion holds." : "with it the conclusion does not hold either.")
            + $" Full-rank AdamW (reference): {Outcome(adamw)}.";
        return (verdict, holds);
    }

    private static string Outcome(Row r) => r.Result.Failed ? r.Result.Failure! :
        $"PPL {F(r.MeanPerplexity, "0.00")}, peak {ReproductionReport.GiB(r.Result.PeakBytes)} GiB, optimizer state {MiB(r.Result.OptimizerStateBytes)} MiB";

    /// <summary>One FLORA arm against GaLore, in words, and whether it is lower or similar in both perplexity and peak memory.</summary>
    private static (string Text, bool Holds) Compare(Row flora, Row galore)
    {
        if (flora.Result.Failed || flora.Series is { Failed: true }) return ($"{flora.Result.Failure ?? "a seed diverged"} (GaLore: PPL {F(galore.MeanPerplexity, "0.00")})", false);
        double gp = galore.MeanPerplexity ?? double.NaN, fp = flora.MeanPerplexity ?? double.NaN;
        long gm = galore.Result.PeakBytes, fm = flora.Result.PeakBytes;
        bool better = fp <= gp * 1.02, lighter = fm <= gm * 1.02;
        string ppl = fp < gp ? $"PPL {fp:F2} vs GaLore's {gp:F2} ({100 * (gp - fp) / gp:F1}% lower)"
            : $"PPL {fp:F2} vs GaLore's {gp:F2} ({100 * (fp - gp) / gp:F1}% higher{(better ? ", within 2%" : "")})";
        string memory = $"peak memory {ReproductionReport.GiB(fm)} vs {ReproductionReport.GiB(gm)} GiB ({(fm <= gm ? "lower" : lighter ? "within 2%" : "higher")}), "
            + $"optimizer state {MiB(flora.Result.OptimizerStateBytes)} vs {MiB(galore.Result.OptimizerStateBytes)} MiB (GaLore's stored projections: {MiB(galore.ProjectionBytes)} MiB)";
        return ($"{ppl}; {memory}", better && lighter);
    }
}
