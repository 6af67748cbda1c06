using Flora.Checkpoints;
using Flora.Data.Corpora;
using Flora.Optim;
using Flora.Training;

namespace Flora.Tests.Training;

/// <summary>The trainer on a tiny model and a small slice of the embedded corpus.</summary>
public class TrainerTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-train-").FullName;

    /// <summary>About 60 KB of the corpus in chapters (paragraphs), enough for a 300-token BPE and a few dozen batches.</summary>
    internal static string SmallCorpus(string directory)
    {
        string path = Path.Combine(directory, "corpus.txt");
        if (!File.Exists(path))
        {
            string text = EmbeddedCorpus.ReadText();
            File.WriteAllText(path, text[..text.IndexOf('\n', 60_000)]);
        }
        return path;
    }

    internal static TrainOptions Tiny(string directory, string output) => new()
    {
        Model = "gpt-tiny",
        Tokenizer = "bpe:300",
        Corpus = SmallCorpus(directory),
        SequenceLength = 32,
        BatchSize = 4,
        Steps = 8,
        EvalEvery = 4,
        EvalBatches = 2,
        CheckpointEvery = 4,
        WarmupSteps = 2,
        Optimizer = new OptimizerSpec { Name = "flora", LearningRate = 0.05f, Rank = 4, Kappa = 3 },
        OutputDirectory = output,
    };

    /// <summary>Trains, optionally stopping (as Ctrl+C would) once <paramref name="stopAfter"/> is done.</summary>
    private static List<TrainMetrics> Train(TrainOptions options, string? resume = null, long? stopAfter = null)
    {
        using var trainer = new Trainer(options, resume);
        using var cancel = new CancellationTokenSource();
        trainer.Run(new SyncProgress(p => { if (p.Step == stopAfter) cancel.Cancel(); }), cancel.Token);
        return MetricsLog.ReadCsv(Path.Combine(options.OutputDirectory, MetricsLog.CsvFile));
    }

    private sealed class SyncProgress(Action<TrainProgress> report) : IProgress<TrainProgress>
    {
        public void Report(TrainProgress value) => report(value);
    }

    public static TheoryData<string, string, int, bool> Configurations => new()
    {
        { "flora", "none", 1, false },
        { "flora", "compressed", 2, false },
        { "flora", "compressed", 2, true },
        { "adamw-flora", "naive", 3, false },
        { "adafactor-momentum", "none", 1, true },
    };

    [Theory]
    [MemberData(nameof(Configurations))]
    public void A_resumed_run_continues_the_same_loss_curve_bit_for_bit(string optimizer, string accumulation, int tau, bool lomo)
    {
        var baseOptions = Tiny(_temp, "") with
        {
            Optimizer = Tiny(_temp, "").Optimizer with { Name = optimizer },
            Accumulation = Enum.Parse<AccumulationMode>(accumulation, ignoreCase: true),
            AccumulationSteps = tau,
            Lomo = lomo,
            Dropout = 0.1f,
        };
        var whole = Train(baseOptions with { OutputDirectory = Path.Combine(_temp, "whole") });

        string split = Path.Combine(_temp, "split");
        Train(baseOptions with { OutputDirectory = split }, stopAfter: 3);           // interrupted after step 3 (mid-interval)
        var resumed = Train(baseOptions with { OutputDirectory = split }, resume: split);

        Assert.Equal(8, whole.Count);
        Assert.Equal(whole.Select(r => r.Step), resumed.Select(r => r.Step));
        Assert.Equal(whole.Select(r => r.TrainLoss), resumed.Select(r => r.TrainLoss));           // exact
        Assert.Equal(whole.Select(r => r.ValidationLoss), resumed.Select(r => r.ValidationLoss));
        using var a = SafeTensorsFile.Open(Path.Combine(_temp, "whole", "checkpoints", "step-00000008", TrainingCheckpoint.ModelFile));
        using var b = SafeTensorsFile.Open(Path.Combine(split, "checkpoints", "step-00000008", TrainingCheckpoint.ModelFile));
        foreach (var t in a.Tensors) Assert.Equal(a.ReadFloats(t.Name), b.ReadFloats(t.Name));
    }

    [Fact]
    public void Training_lowers_the_loss_and_writes_metrics_chart_and_a_loadable_checkpoint()
    {
        string output = Path.Combine(_temp, "run");
        var rows = Train(Tiny(_temp, output) with { Steps = 30, EvalEvery = 10, CheckpointEvery = 10 });
        Assert.True(rows.TakeLast(5).Average(r => r.TrainLoss) < rows.Take(5).Average(r => r.TrainLoss) - 0.3,
            $"loss did not fall: {rows.Take(5).Average(r => r.TrainLoss):F3} -> {rows.TakeLast(5).Average(r => r.TrainLoss):F3}");
        Assert.Equal(3, rows.Count(r => r.ValidationLoss is not null));
        Assert.True(File.Exists(Path.Combine(output, "loss.svg")));
        Assert.Equal(30, File.ReadLines(Path.Combine(output, MetricsLog.JsonFile)).Count());
        // Two checkpoints kept (20 and 30); latest points to 30; the weights use GPT-2's names.
        var dirs = Directory.GetDirectories(Path.Combine(output, "checkpoints")).Select(Path.GetFileName).Order().ToArray();
        Assert.Equal(new[] { "step-00000020", "step-00000030" }, dirs);
        string latest = TrainingCheckpoint.Resolve(output);
        Assert.EndsWith("step-00000030", latest);
        using var weights = SafeTensorsFile.Open(Path.Combine(latest, TrainingCheckpoint.ModelFile));
        Assert.True(weights.Contains("h.0.attn.c_attn.weight"));
        Assert.True(weights.Contains("wte.weight"));
        Assert.Contains("GPT2LMHeadModel", File.ReadAllText(Path.Combine(latest, TrainingCheckpoint.ConfigFile)));
        using var state = SafeTensorsFile.Open(Path.Combine(latest, TrainingCheckpoint.StateFile));
        Assert.Contains(state.Tensors, t => t.Name == "optimizer/h.0.attn.c_attn.weight/exp_avg");   // compressed momentum
        Assert.Equal(new long[] { 4, 192 }, state.GetInfo("optimizer/h.0.attn.c_attn.weight/exp_avg").Shape); // c_attn (64, 192): rows compressed
    }

    [Fact]
    public void Corrupted_or_mismatched_checkpoints_are_refused_and_nothing_on_disk_changes()
    {
        string output = Path.Combine(_temp, "run");
        Train(Tiny(_temp, output) with { Steps = 4 });
        string checkpoint = TrainingCheckpoint.Resolve(output);
        string metrics = File.ReadAllText(Path.Combine(output, MetricsLog.CsvFile));
        byte[] model = File.ReadAllBytes(Path.Combine(checkpoint, TrainingCheckpoint.ModelFile));

        // Truncated weights.
        File.WriteAllBytes(Path.Combine(checkpoint, TrainingCheckpoint.ModelFile), model[..(model.Length / 2)]);
        var e = Assert.ThrowsAny<Exception>(() => new Trainer(Tiny(_temp, output), resumeFrom: output));
        Assert.IsType<InvalidDataException>(e);
        Assert.Contains(TrainingCheckpoint.ModelFile, e.Message);
        Assert.Equal(metrics, File.ReadAllText(Path.Combine(output, MetricsLog.CsvFile)));

        // Weights of another model (llama-tiny) in place of GPT-2's.
        string other = Path.Combine(_temp, "other");
        Train(Tiny(_temp, other) with { Steps = 4, Model = "llama-tiny" });
        File.Copy(Path.Combine(TrainingCheckpoint.Resolve(other), TrainingCheckpoint.ModelFile), Path.Combine(checkpoint, TrainingCheckpoint.ModelFile), overwrite: true);
        e = Assert.Throws<InvalidDataException>(() => new Trainer(Tiny(_temp, output), resumeFrom: output));
        Assert.Contains("checksum mismatch", e.Message);                     // the manifest notices first
        string manifest = File.ReadAllText(Path.Combine(checkpoint, CheckpointManifest.FileName));
        CheckpointManifest.Write(checkpoint);                                // with matching checksums, the shapes do
        e = Assert.Throws<InvalidDataException>(() => new Trainer(Tiny(_temp, output), resumeFrom: output));
        Assert.Contains("another model", e.Message);
        File.WriteAllBytes(Path.Combine(checkpoint, TrainingCheckpoint.ModelFile), model);
        File.WriteAllText(Path.Combine(checkpoint, CheckpointManifest.FileName), manifest);

        // The state of another optimizer: load it into a trainer built for AdamW.
        using (var adamw = new Trainer(Tiny(_temp, Path.Combine(_temp, "adamw")) with { Optimizer = new OptimizerSpec { Name = "adamw" } }))
        {
            var field = typeof(Trainer).GetField("_optimizer", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!;
            var pipeline = typeof(Trainer).GetField("_pipeline", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!;
            e = Assert.Throws<InvalidDataException>(() => TrainingCheckpoint.Load(checkpoint, adamw.Model, (Optimizer)field.GetValue(adamw)!, (GradientPipeline)pipeline.GetValue(adamw)!));
            Assert.Contains("holds Flora state; this optimizer is AdamW", e.Message);
        }

        // A corrupt state file and a latest pointer to nowhere.
        File.WriteAllText(Path.Combine(checkpoint, TrainingCheckpoint.StateFile), "not a checkpoint");
        e = Assert.Throws<InvalidDataException>(() => new Trainer(Tiny(_temp, output), resumeFrom: output));
        Assert.Contains(TrainingCheckpoint.StateFile, e.Message);
        File.WriteAllText(Path.Combine(output, "checkpoints", TrainingCheckpoint.Latest), "step-99999999");
        e = Assert.Throws<InvalidDataException>(() => new Trainer(Tiny(_temp, output), resumeFrom: output));
        Assert.Contains("step-99999999", e.Message);
        Assert.Equal(metrics, File.ReadAllText(Path.Combine(output, MetricsLog.CsvFile)));
        Assert.Equal(model, File.ReadAllBytes(Path.Combine(checkpoint, TrainingCheckpoint.ModelFile)));
    }

    [Fact]
    public void A_diverging_run_stops_naming_the_step_and_keeps_the_last_good_checkpoint()
    {
        string output = Path.Combine(_temp, "run");
        var options = Tiny(_temp, output) with
        {
            Steps = 12, CheckpointEvery = 1, Schedule = ScheduleKind.Constant,
            Optimizer = new OptimizerSpec { Name = "sgd", LearningRate = 1e8f },
        };
        using var trainer = new Trainer(options);
        var e = Assert.Throws<NonFiniteException>(() => trainer.Run());
        Assert.Matches(@"^step \d+: ", e.Message);
        Assert.Matches("'[a-z_0-9.]+'|training loss", e.Message);
        string latest = TrainingCheckpoint.Resolve(output);
        var info = TrainingCheckpoint.ReadInfo(latest);
        Assert.True(info.Step < e.Step, $"checkpoint at step {info.Step} is not before the failure at step {e.Step}");
        using var weights = SafeTensorsFile.Open(Path.Combine(latest, TrainingCheckpoint.ModelFile));
        if (info.Step > 0) Assert.All(weights.Tensors, t => Assert.All(weights.ReadFloats(t.Name), v => Assert.True(float.IsFinite(v))));
    }

    public void Dispose() => Directory.Delete(_temp, recursive: true);
}

public class TrainerFeatureTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-features-").FullName;

    [Fact]
    public void Activation_checkpointing_lowers_the_activation_peak_and_keeps_the_numbers()
    {
        (double Loss, long Activations) Run(bool checkpointing)
        {
            var options = TrainerTests.Tiny(_temp, Path.Combine(_temp, $"ac-{checkpointing}")) with
            {
                Model = "gpt-small", SequenceLength = 64, Steps = 2, ActivationCheckpointing = checkpointing, Dropout = 0.1f,
            };
            using var trainer = new Trainer(options);
            var result = trainer.Run();
            return (result.FinalTrainLoss, result.Memory[Flora.Tensors.MemoryTag.Activations].PeakBytes);
        }
        var (plainLoss, plain) = Run(false);
        var (checkpointedLoss, checkpointed) = Run(true);
        Assert.Equal(plainLoss, checkpointedLoss);                                   // same masks, same numbers
        // gpt-small has 4 blocks: with checkpointing only one block's internals are alive at a time. (The run without it
        // already shares the norms', activation's and projections' buffers between blocks: 0.61 of it, measured.)
        Assert.True(checkpointed < 0.65 * plain, $"activations {checkpointed:N0} bytes with checkpointing vs {plain:N0} without");
    }

    [Fact]
    public void Gradient_clipping_bounds_the_global_norm()
    {
        using var cpu = TestUtil.Cpu();
        using var layer = new Flora.Nn.Linear(cpu, "fc", 8, 6, seed: 1);
        var sgd = new Sgd(cpu, layer.Parameters(), 1f);
        var sink = new AccumulateSink(cpu, sgd) { ClipNorm = 0.5f };
        using var x = TestUtil.Random(cpu, 2, 10, 4, 8);
        using var dy = TestUtil.Random(cpu, 3, 10, 4, 6);
        float[] before = layer.Parameters().SelectMany(p => TestUtil.ToArray(p.Value)).ToArray();
        layer.Forward(x);
        layer.Backward(dy, sink);
        sink.EndMicroBatch();
        float[] after = layer.Parameters().SelectMany(p => TestUtil.ToArray(p.Value)).ToArray();
        double step = Math.Sqrt(before.Zip(after, (a, b) => (double)(a - b) * (a - b)).Sum());
        Assert.True(sink.LastGradientNorm > 0.5, $"the test gradient ({sink.LastGradientNorm:F3}) should exceed the clip");
        Assert.Equal(0.5, step, 1e-4);                                               // lr 1: the step is the clipped gradient
        Assert.Throws<ArgumentException>(() => new PipelineOptions { Lomo = true, ClipNorm = 1f }.Validate());
    }

    [Fact]
    public void Lora_training_changes_only_the_adapters()
    {
        string output = Path.Combine(_temp, "lora");
        var options = TrainerTests.Tiny(_temp, output) with
        {
            LoraRank = 4, LoraMode = LoraMode.AdaptersOnly, Steps = 3, Optimizer = new OptimizerSpec { Name = "adamw", LearningRate = 1e-2f },
        };
        using var trainer = new Trainer(options);
        var initial = trainer.Model.Parameters().ToDictionary(p => p.Name, p => TestUtil.ToArray(p.Value));
        trainer.Run();
        int changedAdapters = 0;
        foreach (var p in trainer.Model.Parameters())
        {
            bool adapter = p.Name.EndsWith(".lora_A") || p.Name.EndsWith(".lora_B");
            bool changed = !initial[p.Name].SequenceEqual(TestUtil.ToArray(p.Value));
            Assert.True(adapter || !changed, $"{p.Name} changed but is not an adapter");
            if (adapter && changed) changedAdapters++;
        }
        Assert.True(changedAdapters >= 8, $"only {changedAdapters} adapters trained");
    }

    [Fact]
    public void Generate_continues_a_prompt_from_a_checkpoint()
    {
        string output = Path.Combine(_temp, "gen");
        using (var trainer = new Trainer(TrainerTests.Tiny(_temp, output) with { Steps = 2 })) trainer.Run();
        var stdout = new StringWriter();
        var console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
        {
            Ansi = Spectre.Console.AnsiSupport.No, Interactive = Spectre.Console.InteractionSupport.No, Out = new Spectre.Console.AnsiConsoleOutput(stdout),
        });
        var error = new StringWriter();
        int code = Flora.Cli.FloraCli.Run(["generate", "--checkpoint", output, "--prompt", "And God said", "--max-tokens", "12", "--seed", "3"], console, error);
        Assert.True(code == 0, error.ToString());
        Assert.Contains("And God said", stdout.ToString());
        Assert.Contains("step 2", stdout.ToString());
        code = Flora.Cli.FloraCli.Run(["generate", "--checkpoint", Path.Combine(_temp, "nothing")], console, error);
        Assert.Equal(Flora.Cli.FloraCli.UserError, code);
    }

    public void Dispose() => Directory.Delete(_temp, recursive: true);
}
