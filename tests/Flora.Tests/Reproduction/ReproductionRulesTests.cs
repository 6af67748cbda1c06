using Flora.Backends;
using Flora.Experiments;
using Flora.Experiments.Reproduce;
using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Tests.Reproduction;

/// <summary>
/// The rules of issue 15 for the reproductions, checked without training anything long: every momentum experiment at
/// the paper's scale resamples; resamplings are counted; LoRA as the paper ran it trains embeddings and vector weights;
/// a FLORA arm that never resampled leaves its claims untested; held-out samples are drawn from the whole split.
/// </summary>
public sealed class ReproductionRulesTests
{
    private static ReproduceSettings Paper(int? steps = null) => new() { Scale = ReproductionScale.Paper, OutputDirectory = "unused", Steps = steps };

    /// <summary>Updates t = 0 .. steps - 1 transfer M at t = kappa, 2 kappa, ...: that many new projections.</summary>
    private static long PlannedResamplings(int steps, int kappa) => (steps - 1) / kappa;

    [Theory]
    [InlineData(null)]      // the scale's own length
    [InlineData(1500)]      // the GPU script's shorter runs
    [InlineData(300)]
    public void Every_momentum_table_at_paper_scale_resamples(int? steps)
    {
        var text = TextScale.For(Paper(steps));
        Assert.True(PlannedResamplings(text.Steps, text.Kappa) >= 4, $"Table 2: {text.Steps} steps at kappa {text.Kappa} resample {PlannedResamplings(text.Steps, text.Kappa)} times");
        // Table 3's kappa = 1000 arm is scaled like Table 2's; 1, 10 and 100 resample whenever the run is longer than 100 steps.
        foreach (int paperKappa in new[] { 1, 10, 100, 1000 })
            Assert.True(PlannedResamplings(text.Steps, TextScale.ScaledKappa(paperKappa, text.Steps)) > 0, $"Table 3 kappa {paperKappa} never resamples in {text.Steps} steps");
        // The ablation uses a fifth of the run.
        Assert.True(PlannedResamplings(text.Steps, Math.Max(1, text.Steps / 5)) >= 4);
        var t6 = Table6Reproduction.Scale.For(Paper(steps));
        Assert.True(PlannedResamplings(t6.Steps, t6.Kappa) >= 4, $"Table 6: {t6.Steps} steps at kappa {t6.Kappa}");
    }

    [Theory]
    [InlineData(null)]
    [InlineData(1000)]
    public void Table2s_flora_arms_at_paper_scale_resample_even_when_early_stopping_ends_them_first(int? steps)
    {
        var settings = Paper(steps);
        var scale = TextScale.For(settings);
        var o = Table2Reproduction.Base(scale, settings, scale.GptModel, "gpt2", "data", "flora", 0.01f);
        Assert.Equal(scale.Kappa, o.Optimizer.Kappa);
        Assert.True(PlannedResamplings(o.Steps, o.Optimizer.Kappa) >= 4, $"{o.Steps} steps at kappa {o.Optimizer.Kappa}");
        // The earliest early stop: the best validation loss at the first evaluation, then patience evaluations without a better one.
        int earliest = o.EarlyStoppingPatience > 0 ? Math.Min(o.Steps, o.EvalEvery * (1 + o.EarlyStoppingPatience)) : o.Steps;
        Assert.True(PlannedResamplings(earliest, o.Optimizer.Kappa) >= 1, $"early stopping at step {earliest} comes before the first resampling (kappa {o.Optimizer.Kappa})");
    }

    [Fact]
    public void Kappa_is_the_papers_when_the_run_holds_five_of_them_and_a_fifth_of_the_run_otherwise()
    {
        Assert.Equal(1000, TextScale.ScaledKappa(1000, 5000));
        Assert.Equal(1000, TextScale.ScaledKappa(1000, 20000));
        Assert.Equal(300, TextScale.ScaledKappa(1000, 1500));
        Assert.Equal(10, TextScale.ScaledKappa(10, 1500));          // Table 3's small intervals are kept
        Assert.Equal(10000, TextScale.ScaledKappa(10000, 1500));    // and its longest (which then never resamples)
    }

    [Theory]
    [InlineData(FloraVariant.Paper, 10, 3, 3)]      // t = 0..9, transfers at t = 3, 6, 9
    [InlineData(FloraVariant.Official, 10, 3, 3)]   // transfers after t = 2, 5, 8
    [InlineData(FloraVariant.Paper, 3, 5, 0)]       // shorter than kappa: never
    [InlineData(FloraVariant.Official, 5, 5, 1)]    // the official code moves M after the fifth update
    public void Compressed_momentum_counts_its_transfers(FloraVariant variant, int steps, int kappa, long expected)
    {
        using var cpu = TestUtil.Cpu();
        using var layer = new Linear(cpu, "layer", 8, 6, bias: true, seed: 3);
        var parameters = layer.Parameters().ToArray();
        using var optimizer = new FloraAdafactor(cpu, parameters, 0.01f, rank: 2, kappa: kappa, variant: variant);
        using var g = cpu.Allocate(new Shape(6, 8), MemoryTag.Scratch);
        using var gb = cpu.Allocate(new Shape(6), MemoryTag.Scratch);
        for (int t = 0; t < steps; t++)
        {
            cpu.FillGaussian(g, 10 + (ulong)t, 0.1f);
            cpu.FillGaussian(gb, 20 + (ulong)t, 0.1f);
            optimizer.Update(parameters.Single(p => p.Name.EndsWith("weight", StringComparison.Ordinal)), g);
            optimizer.Update(parameters.Single(p => p.Name.EndsWith("bias", StringComparison.Ordinal)), gb);
        }
        Assert.Equal(expected, optimizer.Resamplings);
        using var adafactor = new Adafactor(cpu, parameters, new AdafactorOptions { LearningRate = 0.01f, Momentum = MomentumOptions.Naive() });
        Assert.Equal(0, adafactor.Resamplings);                    // naive momentum never resamples
    }

    [Fact]
    public void A_training_run_reports_its_resamplings_and_trainable_parameters()
    {
        string dir = Directory.CreateTempSubdirectory("flora-resample-").FullName;
        try
        {
            var options = new TrainOptions
            {
                Model = "gpt-tiny", Tokenizer = "bpe:300", Steps = 9, BatchSize = 2, SequenceLength = 16, EvalEvery = 9, EvalBatches = 1, WarmupSteps = 1,
                Optimizer = new OptimizerSpec { Name = "flora", LearningRate = 0.01f, Rank = 4, Kappa = 4 }, OutputDirectory = dir, CheckpointEvery = 100,
            };
            using var trainer = new Trainer(options);
            var result = trainer.Run();
            Assert.Equal(2, result.Resamplings);                        // t = 0..8: transfers at 4 and 8
            Assert.Equal(trainer.Model.Parameters().Sum(p => (long)p.Value.Count), result.TrainableParameters);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Early_stopping_ends_a_run_after_patience_evaluations_without_a_better_validation_loss()
    {
        string dir = Directory.CreateTempSubdirectory("flora-early-").FullName;
        try
        {
            // A learning rate too small to change a float32 weight: the validation loss stays the same, so it never improves
            // after the first evaluation (step 2); with patience 2 the run stops at the evaluation of step 6, not at step 20.
            var options = new TrainOptions
            {
                Model = "gpt-tiny", Tokenizer = "bpe:300", Steps = 20, BatchSize = 2, SequenceLength = 16, EvalEvery = 2, EvalBatches = 1,
                Schedule = ScheduleKind.Constant, WarmupSteps = 0, EarlyStoppingPatience = 2, CheckpointEvery = 100,
                Optimizer = new OptimizerSpec { Name = "sgd", LearningRate = 1e-12f }, OutputDirectory = dir,
            };
            using var trainer = new Trainer(options);
            var result = trainer.Run();
            Assert.Equal(6, result.LastStep);
            Assert.Equal(2, result.BestStep);
            Assert.NotNull(result.LastCheckpoint);                          // the stopped run leaves a checkpoint to resume from
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void LoRA_as_the_paper_ran_it_trains_embeddings_and_vector_weights_and_adapters_only_does_not()
    {
        string dir = Directory.CreateTempSubdirectory("flora-lora-").FullName;
        try
        {
            var options = new TrainOptions
            {
                Model = "gpt-tiny", Tokenizer = "bpe:300", Steps = 1, BatchSize = 2, SequenceLength = 16, LoraRank = 4,
                Optimizer = new OptimizerSpec { Name = "adafactor-momentum", LearningRate = 0.01f }, OutputDirectory = dir,
            };
            long Trainable(Trainer t) => t.Model.Parameters().Where(p => p.RequiresGrad).Sum(p => (long)p.Value.Count);
            using var paper = new Trainer(options);
            var all = paper.Model.Parameters().ToList();
            var adapters = all.Where(p => LoraLinear.IsAdapter(p.Name)).ToList();
            var vectors = all.Where(p => p.Value.Shape.Rank == 1).ToList();
            var embeddings = all.Where(p => p.Name.Contains("wte", StringComparison.Ordinal) || p.Name.Contains("wpe", StringComparison.Ordinal)).ToList();
            Assert.NotEmpty(adapters);
            Assert.NotEmpty(vectors);
            Assert.NotEmpty(embeddings);
            Assert.All(adapters.Concat(vectors).Concat(embeddings), p => Assert.True(p.RequiresGrad, $"{p.Name} is frozen in the paper's LoRA"));
            // The wrapped matrices (those with adapters) are frozen; nothing else is.
            var wrapped = adapters.Select(p => p.Name[..p.Name.LastIndexOf('.')] + ".weight").ToHashSet();
            Assert.Equal(adapters.Count / 2, wrapped.Count);
            Assert.All(all, p => Assert.Equal(!wrapped.Contains(p.Name), p.RequiresGrad));
            long paperCount = Trainable(paper);
            Assert.Equal(adapters.Concat(vectors).Concat(embeddings).Distinct().Sum(p => (long)p.Value.Count)
                + all.Where(p => p.Value.Shape.Rank == 2 && !wrapped.Contains(p.Name) && !LoraLinear.IsAdapter(p.Name) && !embeddings.Contains(p)).Sum(p => (long)p.Value.Count),
                paperCount);

            using var adaptersOnly = new Trainer(options with { LoraMode = LoraMode.AdaptersOnly, OutputDirectory = Path.Combine(dir, "a") });
            Assert.Equal(adapters.Sum(p => (long)p.Value.Count), Trainable(adaptersOnly));
            Assert.True(paperCount > Trainable(adaptersOnly) + embeddings.Sum(p => (long)p.Value.Count) - 1, "the paper's LoRA must add the embeddings to the adapters");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static ArmResult Result(string method, int rank, double testLoss, long resamplings, long peak = 100)
    {
        var arm = new Arm(method, rank, new TrainOptions());
        return new ArmResult(arm, 0.01f, testLoss, 10, testLoss, Math.Exp(testLoss), null, null, peak, 0, 0, 0, 1, [], "flora train", null, resamplings);
    }

    [Fact]
    public void A_flora_arm_without_resampling_leaves_its_claims_untested_and_the_verdict_is_never_yes()
    {
        ArmSeries S(string method, int rank, long resamplings, long peak, params double[] losses) =>
            new(losses.Select(l => Result(method, rank, l, resamplings, peak)).ToList());
        var rows = new List<ArmSeries>
        {
            S("None", 0, 0, 80, 4.80, 4.82, 4.81), S("Naive", 0, 0, 120, 4.85, 4.86, 4.84), S("LoRA", 8, 0, 90, 7.5, 7.6, 7.4),
            S("Flora", 8, 0, 100, 4.83, 4.84, 4.85),
        };
        var claims = TextTables.CompressionClaims("gpt", rows, [8], momentum: true);
        var close = claims.Claims.Single(c => c.Statement.Contains("within", StringComparison.Ordinal));
        Assert.Equal(ClaimOutcome.NotTested, close.Outcome);
        Assert.Contains("0 resamplings", close.Evidence);
        Assert.Equal(ClaimOutcome.Holds, claims.Claims.Single(c => c.Statement.Contains("memory", StringComparison.Ordinal)).Outcome);
        Assert.False(claims.AllHold);
        Assert.DoesNotContain("yes", claims.Summary);
        Assert.Contains("momentum itself does not help", claims.Verdict());

        // The same numbers with resampling: FLORA within 0.05 of Naive and better than LoRA hold; better than None does not.
        rows[3] = S("Flora", 8, 4, 100, 4.83, 4.84, 4.85);
        var tested = TextTables.CompressionClaims("gpt", rows, [8], momentum: true);
        Assert.Equal(ClaimOutcome.Holds, tested.Claims.Single(c => c.Statement.Contains("within", StringComparison.Ordinal)).Outcome);
        Assert.Equal(ClaimOutcome.Holds, tested.Claims.Single(c => c.Statement.Contains("LoRA", StringComparison.Ordinal)).Outcome);
        Assert.Equal(ClaimOutcome.Fails, tested.Claims.Single(c => c.Statement.Contains("None", StringComparison.Ordinal)).Outcome);
        Assert.StartsWith("partly", tested.Summary);
        Assert.Equal(0.01, rows[3].TestLossSpread, 6);
    }

    [Fact]
    public void Figure1_claims_are_judged_separately()
    {
        var losses = new Dictionary<PilotVariant, double>
        {
            [PilotVariant.Sgd] = 0.85, [PilotVariant.Lora] = 0.88, [PilotVariant.LoraB] = 1.39, [PilotVariant.Rp] = 1.3896, [PilotVariant.Rrp] = 0.848,
        };
        var claims = Figure1Reproduction.Claims(v => losses[v], _ => 0);
        Assert.Equal([ClaimOutcome.Fails, ClaimOutcome.Holds, ClaimOutcome.Holds], claims.Claims.Select(c => c.Outcome));
        losses[PilotVariant.Lora] = 1.30;
        Assert.Equal(ClaimOutcome.Holds, Figure1Reproduction.Claims(v => losses[v], _ => 0).Claims[0].Outcome);
    }

    [Fact]
    public void Held_out_samples_are_spread_over_the_whole_split_the_same_every_time()
    {
        int[] a = HeldOut.Sample(613, 64), b = HeldOut.Sample(613, 64);
        Assert.Equal(a, b);
        Assert.Equal(64, a.Distinct().Count());
        Assert.Equal(a.Order(), a);
        Assert.True(a[^1] > 500 && a[0] < 100, $"the sample {a[0]}..{a[^1]} does not cover the split");
        Assert.NotEqual(Enumerable.Range(0, 64), a);                  // not the first 64
        Assert.Equal(Enumerable.Range(0, 10), HeldOut.Sample(10, 0));  // 0 = all
        Assert.Equal(Enumerable.Range(0, 10), HeldOut.Sample(10, 20));
    }
}
