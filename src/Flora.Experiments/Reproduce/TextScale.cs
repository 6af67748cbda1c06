using System.Text.Json;
using Flora.Data.Corpora;
using Flora.Optim;
using Flora.Training;

namespace Flora.Experiments.Reproduce;

/// <summary>
/// The sizes of the text experiments (Tables 1 to 4 and the ablation) at each scale. The paper sweeps the learning
/// rate from 1e-5 to 1e-1; Adafactor's rate here is relative (scale_parameter), so the grids sit around its default.
/// </summary>
public sealed record TextScale(
    string GptModel, string T5Model, string Tokenizer, IReadOnlyList<int> Ranks, int Steps, int EvalEvery, int EvalBatches,
    int MaxSource, int MaxTarget, int Context, IReadOnlyList<float> NaiveGrid, IReadOnlyList<float> LoraGrid, int TestPairs, int MaxNewTokens,
    int PretrainSteps, int PretrainBatch, int FineTuneExamples, int Seeds = 3, int EarlyStopPatience = 0, int GridExtensions = 2)
{
    /// <summary>The paper's resampling interval (Table 2 and the default of the official code).</summary>
    public const int PaperKappa = 1000;

    /// <summary>
    /// The resampling interval the momentum experiments use in place of the paper's <paramref name="paperKappa"/>: the
    /// paper's 1000 when the run lasts at least 5 of them, else a fifth of the run, so that FLORA draws a new projection
    /// four times or more; other intervals (Table 3's 1, 10, 100, 10000) are kept as they are.
    /// </summary>
    public static int ScaledKappa(int paperKappa, int steps) => paperKappa == PaperKappa ? Math.Clamp(steps / 5, 1, PaperKappa) : paperKappa;

    /// <summary>Table 2's kappa at this scale.</summary>
    public int Kappa => ScaledKappa(PaperKappa, Steps);

    public static TextScale For(ReproduceSettings s)
    {
        var scale = s.Quick
            ? new TextScale("gpt-tiny", "t5-tiny", "bpe:512", [8], Steps: 24, EvalEvery: 12, EvalBatches: 4, MaxSource: 32, MaxTarget: 32, Context: 80,
                NaiveGrid: [0.01f, 0.03f], LoraGrid: [0.03f], TestPairs: 16, MaxNewTokens: 24, PretrainSteps: 30, PretrainBatch: 8, FineTuneExamples: 24 * 16,
                Seeds: 1, GridExtensions: 1)
            : s.Scale == ReproductionScale.Paper
            // 5,000 steps: five of the paper's kappa = 1000, so FLORA resamples 4 times; early stopping after 1,000 steps without a better validation loss.
            ? new TextScale("gpt2-124m", "t5-small-size", "gpt2", [8, 32, 128, 256], Steps: 5000, EvalEvery: 250, EvalBatches: 40, MaxSource: 512, MaxTarget: 128,
                Context: 1024, NaiveGrid: [3e-3f, 1e-2f, 3e-2f], LoraGrid: [1e-2f, 3e-2f, 1e-1f], TestPairs: 300, MaxNewTokens: 96, PretrainSteps: 1500, PretrainBatch: 8,
                FineTuneExamples: 200 * 16, Seeds: 3, EarlyStopPatience: 4)
            : new TextScale("gpt-small", "t5-tiny", "bpe:2048", [8, 32], Steps: 300, EvalEvery: 50, EvalBatches: 16, MaxSource: 64, MaxTarget: 64, Context: 144,
                NaiveGrid: [0.003f, 0.01f, 0.03f], LoraGrid: [0.01f, 0.03f, 0.1f], TestPairs: 64, MaxNewTokens: 48, PretrainSteps: 600, PretrainBatch: 8,
                FineTuneExamples: 150 * 16, Seeds: 3, EarlyStopPatience: 4);
        return scale with
        {
            GptModel = s.GptModel ?? scale.GptModel,
            T5Model = s.T5Model ?? scale.T5Model,
            Steps = s.Steps ?? scale.Steps,
            Ranks = s.Ranks ?? scale.Ranks,
            TestPairs = s.TestPairs ?? scale.TestPairs,
            Seeds = s.Seeds ?? scale.Seeds,
            NaiveGrid = s.NaiveGrid ?? scale.NaiveGrid,
            LoraGrid = s.LoraGrid ?? scale.LoraGrid,
            GridExtensions = s.NaiveGrid is not null || s.LoraGrid is not null ? 0 : scale.GridExtensions,
            FineTuneExamples = s.Steps is int steps ? steps * 16 : scale.FineTuneExamples,
        };
    }

    public bool Runs(ReproduceSettings s, string family) => s.Models is null || s.Models.Contains(family);

    /// <summary>The translation run every arm starts from: the paper's protocol (no schedule, no weight decay, no clipping).</summary>
    public TrainOptions Translation(string model, string tokenizer, string data, ulong seed, int batch, int steps) => new()
    {
        Model = model, Tokenizer = tokenizer, Task = "translate", Data = data, MaxSourceTokens = MaxSource, MaxTargetTokens = MaxTarget,
        SequenceLength = Context, BatchSize = batch, Steps = steps, Schedule = ScheduleKind.Constant, WarmupSteps = 0,
        EvalEvery = Math.Min(EvalEvery, steps), EvalBatches = EvalBatches, Seed = seed, EarlyStoppingPatience = EarlyStopPatience,
        Optimizer = new OptimizerSpec { Name = "adafactor", LearningRate = 0.03f, Seed = seed },
    };

    /// <summary>Directory shared by the experiments of one scale (tokenizer, pretrained model): next to the experiment's own.</summary>
    public static string SharedDirectory(ReproduceSettings s)
    {
        string full = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(s.OutputDirectory))!, $"shared-{s.ScaleName}");
        // Relative to the working directory when it lies below it, so that the commands written into table.md name no machine's paths.
        string relative = Path.GetRelativePath(Directory.GetCurrentDirectory(), full);
        return relative.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(relative) ? full : relative;
    }

    /// <summary>The tokenizer of every text experiment at a scale: GPT-2's, or a BPE trained once on both sides of the training pairs.</summary>
    public string PrepareTokenizer(ReproduceSettings s, string data, IProgress<string>? log)
    {
        if (Tokenizer == "gpt2") return "gpt2";
        string shared = SharedDirectory(s);
        Directory.CreateDirectory(shared);
        string directory = Path.Combine(shared, TokenizerSetup.Directory);
        using var claim = RunClaim.Wait(directory, CancellationToken.None);   // workers sharing the directory train it once
        if (!File.Exists(Path.Combine(directory, "encoder.json"))) log?.Report($"training the {Tokenizer} tokenizer on the Spanish and English training pairs");
        TokenizerSetup.Prepare(Tokenizer, shared, () => string.Join("\n", PreparedData.Open(data).ReadPairs(CorpusSplit.Train).Select(p => p.Source + "\n" + p.Target)));
        return directory;
    }

    /// <summary>
    /// Table 1's starting point (no pretrained weights exist here): the GPT of this scale pretrained with FLORA itself
    /// on a bilingual text (the English language-modelling corpus and the Spanish sides of the training pairs). Reused
    /// while its options are unchanged. Returns the best checkpoint's directory.
    /// </summary>
    public string Pretrained(ReproduceSettings s, string data, string tokenizer, IProgress<string>? log, CancellationToken cancel)
    {
        string shared = SharedDirectory(s);
        Directory.CreateDirectory(shared);
        string run = Path.Combine(shared, "pretrained");
        string corpus = Path.Combine(shared, "bilingual.txt");
        var prepared = PreparedData.Open(data);
        var options = new TrainOptions
        {
            Model = GptModel, Tokenizer = tokenizer, Corpus = corpus, SequenceLength = Context, BatchSize = PretrainBatch, Steps = PretrainSteps,
            Schedule = ScheduleKind.Cosine, WarmupSteps = Math.Min(50, PretrainSteps / 10), EvalEvery = Math.Max(1, PretrainSteps / 4), EvalBatches = EvalBatches,
            Optimizer = new OptimizerSpec { Name = "flora", LearningRate = 0.03f, Rank = Ranks[^1], Seed = s.Seed }, Seed = s.Seed,
            Device = s.Device, Precision = s.Precision, OutputDirectory = run, KeepBest = true, CheckpointEvery = int.MaxValue / 2, KeepCheckpoints = 1,
        };
        using var claim = RunClaim.Wait(run, cancel);                       // workers sharing the directory pretrain once
        string stamp = Path.Combine(run, "pretrain-options.json");
        string best = Path.Combine(run, TrainingCheckpoint.Best);
        string identity = JsonSerializer.Serialize(options with { Device = "", Precision = "" });
        if (File.Exists(stamp) && File.ReadAllText(stamp) == identity && File.Exists(Path.Combine(best, TrainingCheckpoint.StateFile)))
        {
            log?.Report($"pretrained model: reusing {best}");
            return best;
        }
        if (Directory.Exists(run)) Directory.Delete(run, recursive: true);
        // Bilingual text: English chapters and Spanish verses, so the fine-tuned model has seen both languages.
        var spanish = prepared.ReadPairs(CorpusSplit.Train).Select(p => p.Source);
        Reporting.AtomicFile.WriteAllText(corpus, prepared.ReadLanguageModel(CorpusSplit.Train) + "\n" + string.Join("\n", spanish) + "\n");
        log?.Report($"pretraining {GptModel} with FLORA (r = {Ranks[^1]}) for {PretrainSteps} steps on {corpus}");
        TrainResult result;
        using (var trainer = new Trainer(options)) result = trainer.Run(cancel: cancel);
        cancel.ThrowIfCancellationRequested();
        log?.Report($"pretrained: validation loss {result.BestValidationLoss:F3} at step {result.BestStep}");
        Reporting.AtomicFile.WriteAllText(stamp, identity);
        return best;
    }
}
