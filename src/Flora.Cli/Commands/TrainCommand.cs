using System.CommandLine;
using Flora.Optim;
using Flora.Nn.Models;
using Flora.Tensors;
using Flora.Training;
using Flora.Reporting;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary><c>flora train</c>: the main job. Trains a language model with FLORA on the embedded English corpus by default.</summary>
internal static class TrainCommand
{
    public static Command Create(IAnsiConsole console, TextWriter error)
    {
        var d = new TrainOptions();
        var model = new Option<string>("--model") { Description = $"model preset: {string.Join(", ", ModelFactory.Presets)}", DefaultValueFactory = _ => d.Model };
        var tokenizer = new Option<string>("--tokenizer") { Description = "bpe:N (train N tokens on the corpus), gpt2, hf (the tokenizer of the --init-from Hugging Face directory, the default there), or a directory with encoder.json and vocab.bpe", DefaultValueFactory = _ => d.Tokenizer };
        var corpus = new Option<string?>("--corpus") { Description = "a UTF-8 text file to train on (default: the embedded World English Bible selection)" };
        var optimizer = new Option<string>("--optimizer") { Description = $"optimizer: {string.Join(", ", OptimizerSpec.Names)}", DefaultValueFactory = _ => d.Optimizer.Name };
        var lr = Options.OptionalFloat("--lr", "peak learning rate; by default the optimizer's own: " + OptimizerDefaults(), NumberRange.Positive);
        var rank = Options.PositiveInt("--rank", "FLORA rank r (momentum and compressed accumulation)", d.Optimizer.Rank);
        var kappa = Options.PositiveInt("--kappa", "FLORA resampling interval (steps)", d.Optimizer.Kappa);
        var beta1 = Options.Float("--beta1", "momentum decay", d.Optimizer.Beta1, NumberRange.Fraction);
        var weightDecay = Options.Float("--weight-decay", "decoupled weight decay", 0f, NumberRange.NonNegative);
        var variant = Options.Choice("--variant", $"FLORA momentum: paper (Algorithm 2 as printed) or official (the official PyTorch code's: only the history compressed); default {d.Optimizer.Variant.ToString().ToLowerInvariant()}", d.Optimizer.Variant);
        var momentumOrder = new Option<string>("--momentum-order") { Description = "Adafactor's momentum: paper (average the preconditioned update, then clip; the official FLORA code's) or hf (clip and scale by the learning rate, then average; Hugging Face's Adafactor(beta1))", DefaultValueFactory = _ => "paper" };
        momentumOrder.AcceptOnlyFromAmong("paper", "hf");
        var unfactored = new Option<bool>("--unfactored") { Description = "Adafactor's unfactored (linear-memory) second moment" };
        var accumulate = Options.Choice("--accumulate", "gradient accumulation: none, naive or compressed (FLORA, Algorithm 1)", d.Accumulation);
        var tau = Options.PositiveInt("--tau", "micro-batches per update when accumulating", 1);
        var lomo = new Option<bool>("--lomo") { Description = "update each parameter inside backward (no gradient buffers)" };
        var checkpointing = new Option<bool>("--activation-checkpointing") { Description = "recompute each block in backward instead of keeping its activations" };
        var checkpointBlocks = new Option<int?>("--checkpoint-blocks") { Description = "with --activation-checkpointing: recompute only the first N blocks and keep the others' activations (more memory, faster; flora bench memory --checkpoint-blocks N estimates the peak); default every block" };
        var lora = Options.NonNegativeInt("--lora", "LoRA adapters of this rank on every attention and feed-forward matrix, which stay frozen; embeddings and vector weights train too, as in the FLORA paper (0 = off)", 0);
        var loraAdaptersOnly = new Option<bool>("--lora-adapters-only") { Description = "with --lora: train only the adapters (the common fine-tuning practice) instead of the paper's LoRA" };
        var evalBatches = Options.PositiveInt("--eval-batches", "validation batches per evaluation (drawn at random with a fixed seed from the whole validation split)", d.EvalBatches);
        var earlyStop = Options.NonNegativeInt("--early-stop", "stop after N evaluations in a row without a new best validation loss (0 = off)", 0);
        var steps = Options.PositiveInt("--steps", "optimizer steps", d.Steps);
        var batch = Options.PositiveInt("--batch", "sequences per micro-batch", d.BatchSize);
        var seqLen = Options.PositiveInt("--seq-len", "tokens per sequence", d.SequenceLength);
        var schedule = Options.Choice("--schedule", "learning-rate schedule: constant or cosine (with linear warm-up)", d.Schedule);
        var warmup = Options.NonNegativeInt("--warmup", "warm-up steps of the cosine schedule", d.WarmupSteps);
        var clip = Options.OptionalFloat("--clip", "clip the global gradient norm (needs full gradients: not with --lomo or compressed accumulation)", NumberRange.Positive);
        var dropout = Options.Float("--dropout", "dropout on embeddings and residual branches", 0f, NumberRange.Fraction);
        var evalEvery = Options.PositiveInt("--eval-every", "evaluate every N steps", d.EvalEvery);
        var checkpointEvery = Options.PositiveInt("--checkpoint-every", "write a checkpoint every N steps", d.CheckpointEvery);
        var seed = Options.Seed("--seed", "seed of initialisation, data order, dropout and projections", 0);
        var device = new Option<string>("--device") { Description = "cpu or cuda", DefaultValueFactory = _ => "cpu" };
        var precision = new Option<string>("--precision") { Description = "GPU matrix products: bf16, tf32 or fp32 (fp32 optimizer state in every case)", DefaultValueFactory = _ => d.Precision };
        var weights = new Option<string>("--weights") { Description = "weight matrices in fp32, or bf16 (updated in fp32, written back with stochastic rounding); auto: bf16 on cuda above 1B parameters", DefaultValueFactory = _ => d.Weights };
        var output = new Option<string>("--out") { Description = "run directory (metrics, charts, checkpoints)", DefaultValueFactory = _ => d.OutputDirectory };
        var resume = new Option<string?>("--resume") { Description = "continue the run in this directory (or checkpoint); its own settings are used, --steps may extend it" };
        var overwrite = new Option<bool>("--overwrite") { Description = "start a new run in --out even if it holds another run (that run is moved aside to OUT.replaced-DATE)" };
        var quick = new Option<bool>("--quick") { Description = "a short run for CI: gpt-tiny, bpe:512, 40 steps" };
        var task = new Option<string>("--task") { Description = "lm (next-token prediction on the corpus) or translate (Spanish to English verse pairs of --data)", DefaultValueFactory = _ => d.Task };
        var data = new Option<string?>("--data") { Description = $"a directory made by 'flora data prepare' (default {Flora.Data.Corpora.PreparedData.DefaultDirectory})" };
        var maxSource = Options.PositiveInt("--max-source", "translation: source tokens kept (the paper's 512)", d.MaxSourceTokens);
        var maxTarget = Options.PositiveInt("--max-target", "translation: target tokens kept (the paper's 128)", d.MaxTargetTokens);

        var initFrom = new Option<string?>("--init-from") { Description = "fine-tune: start from this checkpoint's (or run's) model weights (use its tokenizer: --tokenizer RUN/tokenizer), or from a Hugging Face model directory (its config.json is the model, its tokenizer the default)" };
        var keepBest = new Option<bool>("--keep-best") { Description = "also keep the checkpoint of the lowest validation loss in RUN/best" };
        var allReduce = DataParallelCli.AllReduce();
        var allReduceRank = DataParallelCli.AllReduceRank();
        var command = new Command("train", "Train a language model with FLORA (default: a small GPT on the embedded English corpus, Flora momentum r = 32).")
        {
            model, tokenizer, corpus, optimizer, lr, rank, kappa, beta1, weightDecay, variant, momentumOrder, unfactored, accumulate, tau, lomo, checkpointing, checkpointBlocks, lora,
            loraAdaptersOnly, steps, batch, seqLen, schedule, warmup, clip, dropout, evalEvery, evalBatches, earlyStop, checkpointEvery, seed, device, precision,
            weights, output, resume, overwrite, quick, task, data, maxSource, maxTarget, initFrom, keepBest, allReduce, allReduceRank,
        };
        command.SetAction(parse => CommandGuard.Run(error, () =>
        {
            bool isQuick = parse.GetValue(quick);
            bool Given(Option o) => parse.GetResult(o) is { Implicit: false };
            var options = new TrainOptions
            {
                Model = isQuick && !Given(model) ? "gpt-tiny" : parse.GetValue(model)!,
                Tokenizer = isQuick && !Given(tokenizer) ? "bpe:512" : parse.GetValue(tokenizer)!,
                Corpus = parse.GetValue(corpus),
                Task = parse.GetValue(task)!,
                Data = parse.GetValue(data),
                MaxSourceTokens = parse.GetValue(maxSource),
                MaxTargetTokens = parse.GetValue(maxTarget),
                Optimizer = new OptimizerSpec
                {
                    Name = parse.GetValue(optimizer)!, Rank = parse.GetValue(rank), Kappa = parse.GetValue(kappa),
                    LearningRate = parse.GetValue(lr) ?? OptimizerSpec.DefaultLearningRate(parse.GetValue(optimizer)!),
                    Beta1 = parse.GetValue(beta1), WeightDecay = parse.GetValue(weightDecay), Variant = parse.GetValue(variant),
                    Factored = !parse.GetValue(unfactored), Seed = parse.GetValue(seed),
                    MomentumOrder = parse.GetValue(momentumOrder) switch
                    {
                        "paper" => AdafactorMomentumOrder.AverageThenClip,
                        "hf" => AdafactorMomentumOrder.ClipThenAverage,
                        var other => throw new ArgumentException($"--momentum-order must be paper or hf, got '{other}'"),
                    },
                },
                Accumulation = parse.GetValue(accumulate),
                AccumulationSteps = parse.GetValue(tau),
                Lomo = parse.GetValue(lomo),
                ActivationCheckpointing = parse.GetValue(checkpointing),
                CheckpointBlocks = parse.GetValue(checkpointBlocks),
                LoraRank = parse.GetValue(lora),
                LoraMode = parse.GetValue(loraAdaptersOnly) ? LoraMode.AdaptersOnly : LoraMode.Paper,
                EvalBatches = parse.GetValue(evalBatches),
                EarlyStoppingPatience = parse.GetValue(earlyStop),
                Steps = isQuick && !Given(steps) ? 40 : parse.GetValue(steps),
                BatchSize = parse.GetValue(batch),
                SequenceLength = isQuick && !Given(seqLen) ? 64 : parse.GetValue(seqLen),
                Schedule = parse.GetValue(schedule),
                WarmupSteps = isQuick && !Given(warmup) ? 5 : parse.GetValue(warmup),
                ClipNorm = parse.GetValue(clip),
                Dropout = parse.GetValue(dropout),
                EvalEvery = isQuick && !Given(evalEvery) ? 20 : parse.GetValue(evalEvery),
                CheckpointEvery = isQuick && !Given(checkpointEvery) ? 20 : parse.GetValue(checkpointEvery),
                Seed = parse.GetValue(seed),
                Device = parse.GetValue(device)!,
                Precision = parse.GetValue(precision)!,
                Weights = parse.GetValue(weights)!,
                OutputDirectory = parse.GetValue(output)!,
                InitFrom = parse.GetValue(initFrom),
                KeepBest = parse.GetValue(keepBest),
                AllReduce = parse.GetValue(allReduce),
                AllReduceRank = parse.GetValue(allReduceRank),
            };
            if (Flora.Nn.Models.HuggingFace.HfDirectory.IsModelDirectory(options.InitFrom))
            {
                if (Given(model)) throw new ArgumentException($"--model: the model is {options.InitFrom}'s (its config.json); leave --model out");
                options = options with { Model = Trainer.HuggingFaceModel, Tokenizer = Given(tokenizer) ? options.Tokenizer : TokenizerSetup.HuggingFace };
            }
            string? resumeFrom = parse.GetValue(resume);
            if (resumeFrom is not null && command.Options.Where(o => o != resume && o != steps && Given(o)).Select(o => o.Name).ToList() is { Count: > 0 } fixedOnResume)
                throw new ArgumentException($"--resume continues a run with its own settings: {string.Join(", ", fixedOnResume)} cannot be given with it " +
                    "(only --steps, to extend the run); start a new run to change them");
            return Execute(console, error, options, resumeFrom, Given(steps) ? parse.GetValue(steps) : 0, parse.GetValue(overwrite));
        }));
        return command;
    }

    /// <summary>"0.03 for flora, adafactor, ...; 0.001 for adamw, ...": each optimizer's default learning rate, for --help.</summary>
    private static string OptimizerDefaults() => string.Join("; ", OptimizerSpec.Names
        .GroupBy(n => OptimizerSpec.DefaultLearningRate(n))
        .Select(g => $"{g.Key.ToString(System.Globalization.CultureInfo.InvariantCulture)} for {string.Join(", ", g)}")) +
        " (Adafactor-based optimizers scale it by each weight's RMS)";

    /// <summary>
    /// Trains until done or stopped. Ctrl+C (SIGINT) and SIGTERM (what schedulers and container runtimes send) both
    /// finish the step, write a checkpoint and exit with 130 and 143; while preparing, they stop before training
    /// with no checkpoint to write. A second signal ends the process at once.
    /// </summary>
    private static int Execute(IAnsiConsole console, TextWriter error, TrainOptions options, string? resumeFrom, int extendSteps, bool overwrite)
    {
        var worker = DataParallelWorker.FromEnvironment();                     // a rank started by flora launch, or null
        if (worker is not null && resumeFrom is null && options.Device != "cuda")
            throw new ArgumentException("data-parallel training runs on GPUs through NCCL: pass --device cuda");
        if (worker is { Rank: not 0 }) console = DataParallelCli.Silent();     // rank 0 reports; the others print only errors
        if (worker is null && options.AllReduce != Flora.Distributed.AllReduceMode.Plain)
            console.MarkupLine("[yellow]note[/]: --allreduce applies to data-parallel runs (flora launch); a single process has nothing to all-reduce");
        using var stop = new StopSignals(console);
        console.MarkupLine(resumeFrom is null ? "[bold]flora train[/]: preparing (tokenizer, data, model)" : $"[bold]flora train[/]: resuming {Markup.Escape(resumeFrom)}");
        Trainer? trainer = null;
        try
        {
            trainer = new Trainer(resumeFrom is null ? options : options with { Steps = extendSteps }, resumeFrom, overwrite: overwrite, cancel: stop.Token,
                connect: worker is null ? null : worker.Connect, lead: worker is not { Rank: not 0 });
            stop.Token.ThrowIfCancellationRequested();
        }
        catch (OperationCanceledException) when (stop.Token.IsCancellationRequested)
        {
            trainer?.Dispose();
            console.MarkupLine("stopped before training: nothing was trained, so there is no checkpoint");
            return stop.ExitCode;
        }
        using (trainer)
        {
            foreach (string notice in trainer.Notices) error.WriteLine($"warning: {notice}");
            stop.Training = true;
            var o = trainer.Options;
            console.MarkupLine(Markup.Escape(trainer.Describe()));
            if (trainer.Layout.Length > 0) console.MarkupLine(Markup.Escape(trainer.Layout));
            if (o.Device == "cpu") console.MarkupLine(Markup.Escape(Flora.Backends.Cpu.CpuBackend.BlasDescription));
            console.MarkupLine(Markup.Escape($"batch {o.BatchSize} x {o.SequenceLength} tokens, {o.AccumulationSteps} micro-batch(es) per step ({o.Accumulation}), " +
                $"LOMO {(o.Lomo ? "on" : "off")}, activation checkpointing {Checkpointing(trainer.Model)}, {o.Schedule} schedule, steps {trainer.StartStep + 1}..{o.Steps}, device {o.Device}"));
            var result = new ProgressReporter(console).Run(["train"], o.Steps, report => trainer.Run(new SynchronousProgress<TrainProgress>(p =>
            {
                string text = $"step {p.Step}  loss {p.Loss:F4}  {p.TokensPerSecond:N0} tok/s";
                if (p.ValidationLoss is double v) text += $"  val {v:F4} (ppl {Math.Exp(v):F1})";
                report("train", p.Step, text, p.ValidationLoss is not null || p.Step % 10 == 0);
            }), stop.Token));
            PrintSummary(console, result, o);
            if (result.DataParallel is { } parallel && trainer.IsLead) DataParallelCli.Write(o.OutputDirectory, parallel, result);
            return stop.Token.IsCancellationRequested ? stop.ExitCode : 0;
        }
    }

    /// <summary>"off", "on" (every block) or "on, first N of L blocks".</summary>
    private static string Checkpointing(Flora.Nn.Models.LanguageModel model) =>
        model.CheckpointedBlocks == 0 ? "off" : model.CheckpointedBlocks == model.BlockCount ? "on" : $"on, first {model.CheckpointedBlocks} of {model.BlockCount} blocks";

    private static void PrintSummary(IAnsiConsole console, TrainResult r, TrainOptions o)
    {
        var table = new Table().Title("training summary").AddColumns("", "");
        table.AddRow("steps", $"{r.FirstStep}..{r.LastStep}");
        table.AddRow("final train loss (last 20 steps)", $"{r.FinalTrainLoss:F4}");
        if (r.FinalValidationLoss is double v) table.AddRow("validation loss / perplexity", $"{v:F4} / {Math.Exp(v):F2}");
        table.AddRow("throughput", $"{r.TokensPerSecond:N0} tokens/s ({r.TokensSeen:N0} tokens in {r.Seconds:F1} s)");
        table.AddRow("data loading", $"{r.DataSeconds * 1e3:N0} ms, {r.DataSeconds / Math.Max(r.Seconds, 1e-9):P1} of the run");
        table.AddRow("optimizer state", $"{r.OptimizerStateBytes / 1048576.0:F2} MiB");
        if (r.DataParallel is { } parallel) DataParallelCli.AddRows(table, parallel);
        table.AddRow("last checkpoint", Markup.Escape(r.LastCheckpoint ?? "none"));
        console.Write(table);
        var memory = new Table().Title("memory ledger (peak bytes by category)").AddColumns("category", "peak MiB", "at overall peak MiB");
        foreach (var t in r.Memory.Tags)
            memory.AddRow(t.Tag.ToString(), $"{t.PeakBytes / 1048576.0:F2}", $"{t.BytesAtTotalPeak / 1048576.0:F2}");
        memory.AddRow("total", $"{r.Memory.PeakTotalBytes / 1048576.0:F2}", "");
        console.Write(memory);
        console.MarkupLine($"wrote {Markup.Escape(Path.Combine(o.OutputDirectory, MetricsLog.CsvFile))}, {MetricsLog.JsonFile}, loss.svg and checkpoints/");
    }
}
