using System.Globalization;
using System.Text;
using Flora.Experiments.Bible;
using Flora.Data.Corpora;
using Flora.Metrics;
using Flora.Optim;
using Flora.Reporting;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Experiments.Reproduce;

/// <summary>One row of a paper table: a method (None, Naive, LoRA, Flora, ...) at a rank, and the run that measures it.</summary>
public sealed record Arm(string Method, int Rank, TrainOptions Options, string Group = "")
{
    /// <summary>The paper's label: "Naive", "LoRA(8)", "Flora(32)".</summary>
    public string Label => Rank > 0 ? $"{Method}({Rank})" : Method;
}

/// <summary>
/// What one arm measured: model selection on validation, the test scores of the selected checkpoint, memory; the new
/// random projections FLORA drew during the run (Resamplings: momentum transfers or accumulation cycles, per matrix),
/// the parameters that trained (for LoRA: adapters, plus embeddings and vectors as the paper ran it), the step training
/// ended at (before the planned last one when early stopping ended it) and the mean sentence BLEU of the test pairs.
/// Pending: a stand-in, in a worker's walk, for a run another worker is training (<see cref="ReproductionWorker"/>);
/// it counts as failed, and the walk that met it writes nothing.
/// </summary>
public sealed record ArmResult(
    Arm Arm, float LearningRate, double? BestValidationLoss, long BestStep, double? TestLoss, double? TestPerplexity,
    BleuScore? Bleu, RougeCorpusScores? Rouge, long PeakBytes, long OptimizerStateBytes, long AccumulatorPeakBytes,
    long GradientPeakBytes, double Seconds, IReadOnlyList<(long Step, double Loss)> ValidationCurve, string Command, string? Failure,
    long Resamplings = 0, long TrainableParameters = 0, long LastStep = 0, double? SentenceBleu = null, bool Pending = false)
{
    /// <summary>Whether the run diverged.</summary>
    public bool Failed => Failure is not null;
    /// <summary>Peak memory in GiB.</summary>
    public double PeakGiB => PeakBytes / (1024.0 * 1024 * 1024);
    /// <summary>The run's seed.</summary>
    public ulong Seed => Arm.Options.Seed;
}

/// <summary>One arm run with several seeds at one learning rate: the rows a verdict compares (mean and spread).</summary>
public sealed record ArmSeries(IReadOnlyList<ArmResult> Runs)
{
    /// <summary>The first seed's run (the one the learning-rate sweep chose).</summary>
    public ArmResult First => Runs[0];
    /// <summary>The arm (of the first seed).</summary>
    public Arm Arm => First.Arm;
    /// <summary>The paper's label of the arm.</summary>
    public string Label => First.Arm.Label;
    /// <summary>Whether any seed diverged.</summary>
    public bool Failed => Runs.Any(r => r.Failed || r.TestLoss is null);
    /// <summary>Mean test loss over the seeds (NaN when a seed failed).</summary>
    public double TestLoss => Failed ? double.NaN : Runs.Average(r => r.TestLoss!.Value);
    /// <summary>Sample standard deviation of the test loss over the seeds (0 for one seed).</summary>
    public double TestLossSpread => Spread(Runs.Select(r => r.TestLoss ?? double.NaN).ToArray());
    /// <summary>Mean best validation loss over the seeds.</summary>
    public double BestValidationLoss => Runs.Any(r => r.BestValidationLoss is null) ? double.NaN : Runs.Average(r => r.BestValidationLoss!.Value);
    /// <summary>Mean corpus BLEU over the seeds (null without BLEU).</summary>
    public double? Bleu => Runs.All(r => r.Bleu is not null) ? Runs.Average(r => r.Bleu!.Score) : null;
    /// <summary>The fewest resamplings any seed made (they are equal unless a run stopped early).</summary>
    public long Resamplings => Runs.Min(r => r.Resamplings);

    /// <summary>Sample standard deviation (n - 1); 0 for fewer than two values.</summary>
    public static double Spread(IReadOnlyList<double> values)
    {
        if (values.Count < 2) return 0;
        double mean = values.Average();
        return Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
    }
}

/// <summary>
/// Runs the arms of a reproduction the paper's way: each arm trains from its own options, keeps the checkpoint of
/// the lowest validation loss, and that checkpoint is evaluated on the test split (loss, perplexity; for translation
/// also BLEU and ROUGE of greedy translations). The peak of the memory ledger over the run is the arm's memory.
/// A run that diverges is recorded as diverged, not thrown. Learning rates are swept with <see cref="Sweep"/>.
/// </summary>
public sealed class ArmRunner
{
    private readonly ReproduceSettings _settings;
    private readonly IProgress<string>? _log;
    private readonly CancellationToken _cancel;

    public ArmRunner(ReproduceSettings settings, IProgress<string>? log, CancellationToken cancel, int testPairs, int maxNewTokens)
    {
        _settings = settings;
        _log = log;
        _cancel = cancel;
        TestPairs = testPairs;
        MaxNewTokens = maxNewTokens;
    }

    /// <summary>Test pairs translated per arm (0 = the whole split).</summary>
    public int TestPairs { get; }
    public int MaxNewTokens { get; }

    /// <summary>Every arm run so far, sweeps included, in order (for results.csv).</summary>
    public List<ArmResult> All { get; } = [];

    /// <summary>
    /// Trains <paramref name="arm"/> into RUNS/NAME, evaluates its best checkpoint on test, and stores what it measured
    /// in RUNS/NAME/arm-result.json; with <see cref="ReproduceSettings.Resume"/>, a stored result of the same settings is
    /// returned instead of training again.
    /// </summary>
    public ArmResult Run(Arm arm, string runName)
    {
        _cancel.ThrowIfCancellationRequested();
        string directory = Path.Combine(_settings.OutputDirectory, "runs", runName);
        var options = arm.Options with
        {
            OutputDirectory = directory, KeepBest = true, Device = _settings.Device, Precision = _settings.Precision,
            CheckpointEvery = int.MaxValue / 2, KeepCheckpoints = 1,
        };
        arm = arm with { Options = options };
        var worker = _settings.Worker;
        if (worker is not null && float.IsNaN(options.Optimizer.LearningRate)) return Pending(arm);   // its rate waits on a pending sweep
        string identity = StoredArm.IdentityOf(options, TestPairs, MaxNewTokens);
        if (_settings.Resume && StoredArm.TryLoad(directory, identity, arm) is ArmResult stored)
        {
            if (worker is null) _log?.Report($"{runName}: {arm.Label}: reusing the result stored in {StoredArm.FileIn(directory)} (test loss {stored.TestLoss:F3}, {stored.Seconds:F0} s)");
            All.Add(stored);
            return stored;
        }
        if (worker is null) return Train(arm, runName, directory, identity);
        using var claim = RunClaim.TryTake(directory);
        if (claim is null) return Pending(arm);
        if (StoredArm.TryLoad(directory, identity, arm) is ArmResult justStored)   // finished between the two looks
        {
            All.Add(justStored);
            return justStored;
        }
        try
        {
            var result = Train(arm, runName, directory, identity);
            worker.CountTrained();
            return result;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new WorkerRunException($"{runName}: {e.Message}", e);
        }
    }

    /// <summary>A worker's stand-in for a run another worker holds (or whose rate waits on one).</summary>
    private ArmResult Pending(Arm arm)
    {
        _settings.Worker!.CountPending();
        return new ArmResult(arm, arm.Options.Optimizer.LearningRate, null, 0, null, null, null, null, 0, 0, 0, 0, 0, [], CommandLine(arm.Options),
            "pending in another worker", Pending: true);
    }

    private ArmResult Train(Arm arm, string runName, string directory, string identity)
    {
        var options = arm.Options;
        if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        string command = CommandLine(options);
        var curve = new List<(long, double)>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        TrainResult trained;
        _log?.Report($"{runName}: {arm.Label}, {options.Optimizer}");
        try
        {
            using var trainer = new Trainer(options);
            var progress = new SynchronousProgress<TrainProgress>(p =>
            {
                if (p.ValidationLoss is double v)
                {
                    curve.Add((p.Step, v));
                    _log?.Report($"  step {p.Step}/{p.Steps}: train loss {p.Loss:F3}, validation {v:F3}");
                }
            });
            trained = trainer.Run(progress, _cancel);
        }
        catch (NonFiniteException e)
        {
            _log?.Report($"  diverged: {e.Message}");
            var failed = new ArmResult(arm, options.Optimizer.LearningRate, null, 0, null, null, null, null, 0, 0, 0, 0, clock.Elapsed.TotalSeconds,
                curve, command, $"diverged at step {e.Step}");
            StoredArm.Save(directory, identity, failed);
            All.Add(failed);
            return failed;
        }
        _cancel.ThrowIfCancellationRequested();

        EvaluationResult? test = null;
        if (trained.BestCheckpoint is string best)
        {
            test = Evaluation.Run(new EvaluationOptions
            {
                Checkpoint = best, Split = CorpusSplit.Test, MaxPairs = TestPairs, Device = _settings.Device, Precision = _settings.Precision,
                Beam = new BeamOptions(BeamSize: 1, MaxTokens: MaxNewTokens), BatchSize = 32,
                Data = options.Task == "translate" ? options.Data : null,
            });
        }
        var memory = trained.Memory;
        var result = new ArmResult(arm, options.Optimizer.LearningRate, trained.BestValidationLoss, trained.BestStep, test?.Loss, test?.Perplexity,
            test?.Bleu, test?.Rouge, memory.PeakTotalBytes, trained.OptimizerStateBytes, memory[MemoryTag.Accumulator].PeakBytes,
            memory[MemoryTag.Gradients].PeakBytes, clock.Elapsed.TotalSeconds, curve, command, null,
            trained.Resamplings, trained.TrainableParameters, trained.LastStep, test?.MeanSentenceBleu);
        _log?.Report($"  best validation {result.BestValidationLoss:F3} at step {result.BestStep}; test loss {result.TestLoss:F3}"
            + (result.Bleu is { } b ? $", BLEU {b.Score:F2}" : "") + $"; peak {memory.PeakTotalBytes / 1048576.0:F1} MiB; "
            + $"resamplings {result.Resamplings}; trainable {result.TrainableParameters:N0}; {result.Seconds:F0} s"
            + (trained.LastStep < options.Steps ? $"; stopped early at step {trained.LastStep}" : ""));
        StoredArm.Save(directory, identity, result);
        All.Add(result);
        return result;
    }

    /// <summary>
    /// The paper's learning-rate protocol: trains <paramref name="make"/>(lr) for every rate of the grid and keeps the
    /// one of the lowest best-validation loss (diverged runs lose). When the best rate is at an end of the grid, the
    /// grid is extended past that end by the ratio of its neighbours (up to <paramref name="maxExtensions"/> times), so
    /// that the rate chosen has a worse (or diverged) rate on both sides whenever the budget allows.
    /// </summary>
    public ArmResult Sweep(Func<float, Arm> make, IReadOnlyList<float> grid, string runPrefix, int maxExtensions = 2)
    {
        if (grid.Count == 0) throw new ArgumentException("the learning-rate grid is empty");
        var tried = new List<ArmResult>();
        ArmResult RunAt(float lr)
        {
            var r = Run(make(lr), $"{runPrefix}-lr{Format(lr)}");
            tried.Add(r);
            return r;
        }
        static bool Better(ArmResult a, ArmResult? b) => !a.Failed && (b is null || b.Failed || a.BestValidationLoss < b.BestValidationLoss);
        foreach (float lr in grid.Order()) RunAt(lr);
        // A worker whose sweep has a rate pending elsewhere cannot choose yet: the runs at the chosen rate wait (NaN rate).
        ArmResult PendingChoice() => Pending(make(float.NaN));
        if (tried.Any(r => r.Pending)) return PendingChoice();
        float ratio = grid.Count > 1 ? grid.Max() / grid.Order().ElementAt(grid.Count - 2) : 3f;
        for (int extension = 0; extension < maxExtensions; extension++)
        {
            var ordered = tried.OrderBy(r => r.LearningRate).ToList();
            ArmResult? best = null;
            foreach (var r in ordered) if (Better(r, best)) best = r;
            if (best is null || ordered.Count < 2 && extension > 0) break;
            if (best == ordered[^1]) RunAt(best.LearningRate * ratio);
            else if (best == ordered[0]) RunAt(best.LearningRate / ratio);
            else break;
            if (tried[^1].Pending) return PendingChoice();
        }
        ArmResult? chosen = null;
        foreach (var r in tried) if (Better(r, chosen)) chosen = r;
        chosen ??= tried[0];
        var rates = tried.Select(r => r.LearningRate).Order().ToList();
        bool inside = !chosen.Failed && rates.Count > 2 && chosen.LearningRate > rates[0] && chosen.LearningRate < rates[^1];
        SweepNotes[runPrefix] = $"{string.Join(", ", rates.Select(Format))}: chose {Format(chosen.LearningRate)}"
            + (inside ? " (inside the grid)" : maxExtensions == 0 ? " (grid fixed on the command line, not extended)" : " (at the edge of the grid after extending it)");
        _log?.Report($"{runPrefix}: learning rate {Format(chosen.LearningRate)} chosen on validation loss from {string.Join(", ", rates.Select(Format))}");
        return chosen;
    }

    /// <summary>Per swept arm (its run prefix): the rates tried and the one chosen, for the tables' notes.</summary>
    public Dictionary<string, string> SweepNotes { get; } = new();

    /// <summary>Number of seeds the verdicts compare (mean and spread over them).</summary>
    public int SeedCount { get; init; } = 1;

    /// <summary>
    /// <paramref name="first"/> (seed s) and the same arm with seeds s + 1, ..., s + <see cref="SeedCount"/> - 1
    /// (initialisation, data order, projections and dropout all derive from the seed), at the same learning rate.
    /// </summary>
    public ArmSeries Seeds(ArmResult first, string runName)
    {
        var runs = new List<ArmResult> { first };
        for (int k = 1; k < SeedCount; k++)
        {
            var o = first.Arm.Options;
            ulong seed = o.Seed + (ulong)k;
            runs.Add(Run(first.Arm with { Options = o with { Seed = seed, Optimizer = o.Optimizer with { Seed = o.Optimizer.Seed + (ulong)k } } }, $"{runName}-seed{seed}"));
        }
        return new ArmSeries(runs);
    }

    public static string Format(float lr) => lr.ToString("0.#####", CultureInfo.InvariantCulture);

    /// <summary>The `flora train` command line that reruns an arm by itself.</summary>
    public static string CommandLine(TrainOptions o)
    {
        var s = new StringBuilder("flora train");
        void Add(string flag, object? value) { if (value is not null) s.Append(' ').Append(flag).Append(' ').Append(Convert.ToString(value, CultureInfo.InvariantCulture)); }
        void Flag(string flag, bool on) { if (on) s.Append(' ').Append(flag); }
        Add("--model", o.Model); Add("--tokenizer", o.Tokenizer); Add("--task", o.Task);
        if (o.Task == "translate") { Add("--data", o.Data); Add("--max-source", o.MaxSourceTokens); Add("--max-target", o.MaxTargetTokens); }
        else Add("--corpus", o.Corpus);
        Add("--optimizer", o.Optimizer.Name); Add("--lr", Format(o.Optimizer.LearningRate));
        if (o.Optimizer.Name.Contains("flora") || o.Accumulation == AccumulationMode.Compressed) { Add("--rank", o.Optimizer.Rank); Add("--kappa", o.Optimizer.Kappa); }
        else if (o.Optimizer.Name == "galore") Add("--rank", o.Optimizer.Rank);
        if (o.Optimizer.Name.Contains("flora")) Add("--variant", o.Optimizer.Variant.ToString().ToLowerInvariant());
        if (o.Optimizer.MomentumOrder == AdafactorMomentumOrder.ClipThenAverage) Add("--momentum-order", "hf");
        if (o.Optimizer.Name.Contains("momentum") || o.Optimizer.Name.Contains("flora")) Add("--beta1", o.Optimizer.Beta1);
        Flag("--unfactored", !o.Optimizer.Factored);
        if (o.Accumulation != AccumulationMode.None) { Add("--accumulate", o.Accumulation.ToString().ToLowerInvariant()); Add("--tau", o.AccumulationSteps); }
        Flag("--lomo", o.Lomo); Flag("--activation-checkpointing", o.ActivationCheckpointing);
        if (o.LoraRank > 0) { Add("--lora", o.LoraRank); Flag("--lora-adapters-only", o.LoraMode == LoraMode.AdaptersOnly); }
        Add("--init-from", o.InitFrom);
        Add("--steps", o.Steps); Add("--batch", o.BatchSize); Add("--seq-len", o.SequenceLength);
        Add("--schedule", o.Schedule.ToString().ToLowerInvariant()); if (o.Schedule != ScheduleKind.Constant) Add("--warmup", o.WarmupSteps);
        Add("--eval-every", o.EvalEvery); Add("--eval-batches", o.EvalBatches); Flag("--keep-best", o.KeepBest);
        if (o.EarlyStoppingPatience > 0) Add("--early-stop", o.EarlyStoppingPatience); Add("--seed", o.Seed); Add("--device", o.Device);
        Add("--out", o.OutputDirectory);
        return s.ToString();
    }

    /// <summary>The prepared data directory of a reproduction: the settings', or the default one, prepared now when missing.</summary>
    public static string EnsureData(ReproduceSettings settings, IProgress<string>? log)
    {
        string directory = settings.Data ?? PreparedData.DefaultDirectory;
        if (File.Exists(Path.Combine(directory, "manifest.json"))) return directory;
        if (settings.Data is not null) throw new FloraException($"{directory}: no prepared data here (run 'flora data prepare --out {directory}')");
        using var claim = RunClaim.Wait(directory, CancellationToken.None);   // workers starting together prepare it once
        if (File.Exists(Path.Combine(directory, "manifest.json"))) return directory;
        log?.Report($"preparing the Bible data sets into {directory} (flora data prepare)");
        BiblePreparation.Prepare(new PrepareOptions { OutputDirectory = directory, InstallMissingPackages = true, Progress = line => log?.Report("  " + line) });
        return directory;
    }
}
