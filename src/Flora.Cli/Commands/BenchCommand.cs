using System.CommandLine;
using Flora.Reporting;
using Flora.Devices;
using Flora.Experiments;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary><c>flora bench ...</c>: speed benchmarks, each reported against a reference measured in the same run.</summary>
internal static class BenchCommand
{
    public static Command Create(IAnsiConsole console, TextWriter error)
    {
        var batch = Options.PositiveInt("--batch", "mini-batch size", 128);
        var steps = Options.PositiveInt("--steps", "timed steps per variant", 50);
        var warmup = Options.PositiveInt("--warmup", "untimed steps before timing", 5);
        var pilot = new Command("pilot", "Examples per second of one training step of the pilot network, and the share of the step spent in GEMM.")
        {
            batch, steps, warmup,
        };
        pilot.SetAction(parse => CommandGuard.Run(error, () =>
        {
            var result = PilotBenchmark.Run(parse.GetValue(batch), parse.GetValue(steps), parse.GetValue(warmup));
            Print(console, result);
            return 0;
        }));
        var model = new Option<string>("--model") { Description = "parameter table: pilot, gpt2-124m or gpt2-350m", DefaultValueFactory = _ => "gpt2-124m" };
        var ranks = Options.Ints("--ranks", "FLORA ranks to time", NumberRange.Positive, [32, 256]);
        var optimSteps = Options.PositiveInt("--steps", "timed steps per optimizer", 5);
        var optimWarmup = Options.PositiveInt("--warmup", "untimed steps before timing", 2);
        var optim = new Command("optim", "Time of one optimizer step over a model's parameter table: Adafactor, naive momentum, FLORA, AdamW.")
        {
            model, ranks, optimSteps, optimWarmup,
        };
        optim.SetAction(parse => CommandGuard.Run(error, () =>
        {
            var table = ParameterTable.Parse(parse.GetValue(model)!);
            var result = OptimizerBenchmark.Run(table, parse.GetValue(ranks)!, parse.GetValue(optimSteps), parse.GetValue(optimWarmup),
                new Progress<string>(name => console.MarkupLine($"  timing {Markup.Escape(name)} ...")));
            Print(console, result);
            return 0;
        }));
        var trainModels = new Option<string>("--model") { Description = "model preset(s), comma-separated", DefaultValueFactory = _ => new Flora.Training.TrainOptions().Model };
        var trainOptimizers = new Option<string>("--optimizer") { Description = "optimizer(s), comma-separated; flora:R sets the rank (e.g. adamw,adafactor,adafactor-momentum,flora:32,flora:256)", DefaultValueFactory = _ => "flora:32" };
        var trainLomo = new Option<string>("--lomo") { Description = "off, on or both", DefaultValueFactory = _ => "off" };
        var trainSteps = Options.PositiveInt("--steps", "timed steps", 10);
        var trainWarmup = Options.PositiveInt("--warmup", "untimed steps before timing", 3);
        var trainBatch = Options.PositiveInt("--batch", "sequences per step", 8);
        var trainSeqLen = Options.PositiveInt("--seq-len", "tokens per sequence", 128);
        var trainDevice = new Option<string>("--device") { Description = "cpu or cuda", DefaultValueFactory = _ => "cpu" };
        var trainPrecision = new Option<string>("--precision") { Description = "GPU matrix products: bf16, tf32 or fp32", DefaultValueFactory = _ => "bf16" };
        var trainTokenizer = new Option<string>("--tokenizer") { Description = "bpe:N or gpt2", DefaultValueFactory = _ => "bpe:4096" };
        var trainWeights = new Option<string>("--weights") { Description = "weight matrices: fp32, bf16 (stochastic rounding) or auto (bf16 on cuda above 1B parameters)", DefaultValueFactory = _ => new Flora.Training.TrainOptions().Weights };
        var trainCheckpointing = new Option<bool>("--activation-checkpointing") { Description = "recompute each block in backward instead of keeping its activations" };
        var trainCheckpointBlocks = new Option<string?>("--checkpoint-blocks") { Description = "with --activation-checkpointing: recompute only the first N blocks, comma-separated values timed in turn (e.g. 32,24,16); default every block" };
        var trainVocabulary = new Option<string>("--vocabulary") { Description = "model vocabulary: tokenizer (its size), published (each preset's published size: llama-1b/3b 128,256, llama-7b 32,000, gpt2-* 50,257), or a number", DefaultValueFactory = _ => "tokenizer" };
        var trainJson = new Option<string?>("--json") { Description = "also write the results as JSON to this file" };
        var trainProfile = new Option<string?>("--profile") { Description = "append a per-op and per-product profile of one step of each configuration to this markdown file" };
        var trainBlas = new Option<string>("--blas-family") { Description = "CPU: OpenBLAS kernel families to time in turn, comma-separated: auto (selected at load), detected (OpenBLAS's own choice), generic (Prescott) or a family (Haswell, SkylakeX, ...); e.g. auto,generic", DefaultValueFactory = _ => "auto" };
        var train = new Command("train", "Tokens per second of training steps, split into forward, backward and optimizer, with the GEMM share, MFU and peak memory.")
        {
            trainModels, trainOptimizers, trainLomo, trainSteps, trainWarmup, trainBatch, trainSeqLen, trainDevice, trainPrecision, trainTokenizer, trainWeights, trainCheckpointing, trainCheckpointBlocks, trainVocabulary, trainJson, trainProfile, trainBlas,
        };
        train.SetAction(parse => CommandGuard.Run(error, () =>
        {
            string device = parse.GetValue(trainDevice)!, precision = parse.GetValue(trainPrecision)!;
            string deviceName = device == "cuda" ? DescribeDevice(precision) : $"CPU, {Environment.ProcessorCount} cores, {Flora.Backends.Cpu.CpuBackend.BlasDescription}";
            double peak = TrainBenchmark.PeakTflops(device, precision, deviceName);
            bool[] lomos = parse.GetValue(trainLomo) switch { "off" => [false], "on" => [true], "both" => [false, true], var v => throw new ArgumentException($"--lomo must be off, on or both, got '{v}'") };
            var rows = new List<TrainBenchRow>();
            // Block counts timed in turn; TrainOptions.Validate refuses negative ones and counts without checkpointing.
            int?[] checkpointBlocks = parse.GetValue(trainCheckpointBlocks) is string list
                ? list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(v => int.TryParse(v, out int n) ? (int?)n
                    : throw new ArgumentException($"--checkpoint-blocks takes block counts, comma-separated, got '{v}'")).ToArray()
                : [null];
            if (checkpointBlocks.Length == 0) throw new ArgumentException("--checkpoint-blocks needs at least one block count");
            string[] families = device == "cpu" ? parse.GetValue(trainBlas)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : ["auto"];
            try
            {
                foreach (string model in parse.GetValue(trainModels)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                    foreach (string optimizer in parse.GetValue(trainOptimizers)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                        foreach (bool lomo in lomos)
                            foreach (int? blocks in checkpointBlocks)
                                foreach (string family in families)
                                {
                                    var options = new Flora.Training.TrainOptions
                                    {
                                        Model = model, Device = device, Precision = precision, Tokenizer = parse.GetValue(trainTokenizer)!,
                                        BatchSize = parse.GetValue(trainBatch), SequenceLength = parse.GetValue(trainSeqLen), Lomo = lomo,
                                        Optimizer = TrainBenchmark.ParseOptimizer(optimizer), Weights = parse.GetValue(trainWeights)!,
                                        ActivationCheckpointing = parse.GetValue(trainCheckpointing),
                                        CheckpointBlocks = blocks,
                                        Vocabulary = TrainBenchmark.ParseVocabulary(parse.GetValue(trainVocabulary)!, model),
                                    };
                                    string? kernels = device == "cpu" ? Flora.Backends.Cpu.OpenBlas.Use(family) : null;
                                    console.MarkupLine($"  timing {Markup.Escape(model)}, {Markup.Escape(optimizer)}{(lomo ? ", LOMO" : "")}{(options.ActivationCheckpointing ? ", checkpointing" + (blocks is int b ? $" {b} blocks" : "") : "")}{(kernels is null ? "" : $", {kernels} kernels")} ...");
                                    rows.Add(TrainBenchmark.RunOne(options, parse.GetValue(trainWarmup), parse.GetValue(trainSteps), peak, parse.GetValue(trainProfile)) with { BlasKernels = kernels });
                                }
            }
            finally
            {
                if (device == "cpu") Flora.Backends.Cpu.OpenBlas.Use("auto");
            }
            var report = new TrainBenchReport(deviceName, device == "cuda" ? precision : "fp32", DateTime.UtcNow.ToString("yyyy-MM-dd"), peak, parse.GetValue(trainWarmup), parse.GetValue(trainSteps), rows);
            if (parse.GetValue(trainJson) is string json) TrainBenchmark.WriteJson(report, json);
            Print(console, report, cpu: device == "cpu");
            return 0;
        }));

        var ours = new Option<string>("--ours") { Description = "JSON written by flora bench train --json", Required = true };
        var torch = new Option<string?>("--torch") { Description = "JSON written by bench/torch_gpt2.py" };
        var reportOut = new Option<string?>("--out") { Description = "write the side-by-side table as markdown to this file" };
        var compare = new Command("compare", "Side-by-side table of a Flora benchmark and the PyTorch reference measured in the same run.") { ours, torch, reportOut };
        compare.SetAction(parse => CommandGuard.Run(error, () =>
        {
            foreach (string? input in new[] { parse.GetValue(ours), parse.GetValue(torch) })
                if (input is not null) Flora.Reporting.RegularFile.Open(input, 64 << 20).Dispose();   // a directory, /dev/zero: refused before reading
            string markdown = BenchmarkComparison.Markdown(TrainBenchmark.ReadJson(parse.GetValue(ours)!),
                parse.GetValue(torch) is string t ? BenchmarkComparison.ReadTorch(t) : null);
            if (parse.GetValue(reportOut) is string path) File.WriteAllText(path, markdown);
            console.WriteLine(markdown);
            return 0;
        }));

        var memoryModels = new Option<string>("--model") { Description = $"model preset(s), comma-separated: {string.Join(", ", StepMemoryPresets.Names)}", DefaultValueFactory = _ => "llama-7b" };
        var memoryOptimizer = new Option<string>("--optimizer") { Description = "optimizer; flora:R sets the rank", DefaultValueFactory = _ => "flora:256" };
        var memoryLomo = new Option<string>("--lomo") { Description = "on or off", DefaultValueFactory = _ => "on" };
        var memoryCheckpointing = new Option<string>("--activation-checkpointing") { Description = "on or off", DefaultValueFactory = _ => "on" };
        var memoryCheckpointBlocks = new Option<string?>("--checkpoint-blocks")
        {
            Description = "with checkpointing on: only the first N blocks recompute, the others keep their activations (default every block); " +
                "auto: the peak for every N, and the fewest checkpointed blocks (the fastest step) under --budget",
        };
        var memoryWeights = new Option<string>("--weights") { Description = "fp32 or bf16", DefaultValueFactory = _ => "bf16" };
        var memoryBatch = Options.PositiveInt("--batch", "sequences per step", 1);
        var memorySeqLen = Options.PositiveInt("--seq-len", "tokens per sequence", 2048);
        var memoryVocabulary = new Option<int?>("--vocabulary") { Description = "model vocabulary (default: the published one of the preset's shape)" };
        var memoryPrecision = new Option<string>("--precision") { Description = "the GPU's matrix products: bf16 (activations that only products read kept in bf16), tf32 or fp32", DefaultValueFactory = _ => "bf16" };
        var memoryBudget = new Option<double>("--budget") { Description = "GiB the estimate is compared with", DefaultValueFactory = _ => 24 };
        var memory = new Command("memory", "Peak GPU memory of one training step of a model too large to build here, per ledger tag, from ledgers of 2- and 3-layer versions stepped on the CPU.")
        {
            memoryModels, memoryOptimizer, memoryLomo, memoryCheckpointing, memoryCheckpointBlocks, memoryWeights, memoryBatch, memorySeqLen, memoryVocabulary, memoryPrecision, memoryBudget,
        };
        memory.SetAction(parse => CommandGuard.Run(error, () =>
        {
            bool OnOff(Option<string> o) => parse.GetValue(o) switch { "on" => true, "off" => false, var v => throw new ArgumentException($"{o.Name} must be on or off, got '{v}'") };
            var optimizer = TrainBenchmark.ParseOptimizer(parse.GetValue(memoryOptimizer)!);
            string? blocks = parse.GetValue(memoryCheckpointBlocks);
            bool auto = blocks == "auto";
            int? checkpointBlocks = blocks is null || auto ? null
                : int.TryParse(blocks, out int n) ? n : throw new ArgumentException($"--checkpoint-blocks takes a number of blocks or auto, got '{blocks}'");
            var settings = new StepMemorySettings
            {
                Optimizer = optimizer.Name, Rank = optimizer.Rank, Lomo = OnOff(memoryLomo), Checkpointing = OnOff(memoryCheckpointing), CheckpointBlocks = checkpointBlocks,
                Weights = Flora.Nn.WeightStorage.Parse(parse.GetValue(memoryWeights)!), Batch = parse.GetValue(memoryBatch), SequenceLength = parse.GetValue(memorySeqLen),
                Precision = Flora.Devices.BackendFactory.ParsePrecision(parse.GetValue(memoryPrecision)!),
            };
            double budget = parse.GetValue(memoryBudget);
            foreach (string name in parse.GetValue(memoryModels)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var (build, layers, vocabulary, attention) = StepMemoryPresets.Get(name, settings.SequenceLength, parse.GetValue(memoryVocabulary));
                if (auto && !settings.Checkpointing) throw new ArgumentException("--checkpoint-blocks auto needs --activation-checkpointing on");
                // auto: one estimate with all blocks but one checkpointed probes the per-block costs, which give every other count.
                var estimate = StepMemory.Estimate(name, build, layers, vocabulary, auto ? settings with { CheckpointBlocks = layers - 1 } : settings,
                    new Progress<string>(m => console.MarkupLine($"  {Markup.Escape(m)} ...")), attention);
                if (auto) PrintCheckpointChoices(console, estimate, budget);
                else Print(console, estimate, budget);
            }
            return 0;
        }));

        return new Command("bench", "Benchmarks.") { pilot, optim, train, compare, memory };
    }

    private static string DescribeDevice(string precision)
    {
        using var backend = Flora.Backends.Cuda.CudaBackend.Create(precision: Flora.Devices.BackendFactory.ParsePrecision(precision));
        return backend.Description;
    }

    private static void Print(IAnsiConsole console, TrainBenchReport r, bool cpu)
    {
        console.MarkupLine($"[bold]flora bench train[/]: {Markup.Escape(r.Device)}; median of {r.Steps} steps after {r.Warmup} warm-up; precision {r.Precision}");
        bool kernels = r.Rows.Select(row => row.BlasKernels).Distinct().Count() > 1;
        var table = new Table().AddColumns("model", "optimizer", "LOMO", "weights", "ms/step", "tokens/s", "MFU", "fwd ms", "bwd ms", "opt ms", "GEMM share", "peak MiB (ledger)", "driver MiB", "state MiB");
        foreach (var row in r.Rows)
            table.AddRow(Markup.Escape(row.Model + (kernels ? $" ({row.BlasKernels} kernels)" : "")), Markup.Escape(row.Optimizer), row.Lomo ? "on" : "off", row.WeightsAndCheckpointing, $"{row.MillisecondsPerStep:F1}", $"{row.TokensPerSecond:N0}",
                double.IsNaN(row.ModelFlopsUtilization) ? "-" : $"{row.ModelFlopsUtilization:P1}", $"{row.ForwardMilliseconds:F1}", $"{row.BackwardMilliseconds:F1}",
                $"{row.OptimizerMilliseconds:F1}", $"{row.GemmShare:P1}", $"{row.PeakLedgerBytes / 1048576.0:N0}", row.DriverUsedBytes == 0 ? "-" : $"{row.DriverUsedBytes / 1048576.0:N0}",
                $"{row.OptimizerStateBytes / 1048576.0:N1}");
        console.Write(table);
        foreach (string line in TrainBenchmark.KernelComparison(r.Rows)) console.MarkupLine(Markup.Escape(line));
        foreach (var row in r.Rows.Where(row => row.PeakByTag is not null))
            console.MarkupLine(Markup.Escape($"  {row.Model}, {row.Optimizer}: at the peak of {row.PeakLedgerBytes / 1073741824.0:F2} GiB (ledger), " +
                string.Join(", ", row.PeakByTag!.Where(kv => kv.Value > 0).Select(kv => $"{kv.Key} {kv.Value / 1073741824.0:F2}")) + " GiB" +
                (row.DriverUsedBytes > 0 ? $"; driver {row.DriverUsedBytes / 1073741824.0:F2} GiB" : "") + $"; vocabulary {row.Vocabulary:N0}, {row.Parameters:N0} parameters"));
        if (cpu && r.Rows.Count == 1 && r.Rows[0].GemmShare is var share)                 // the target is the CPU backend's
            console.MarkupLine($"GEMM share {share:P1} (target on the CPU: at least 70 %: {(share >= 0.7 ? "[green]met[/]" : "[red]missed[/]")})");
    }

    private static void Print(IAnsiConsole console, StepMemoryEstimate e, double budgetGiB)
    {
        var s = e.Settings;
        console.MarkupLine(Markup.Escape(Describe(e, "checkpointing " +
            (!s.Checkpointing ? "off" : s.CheckpointBlocks is int n && n < e.Layers ? $"first {n} of {e.Layers} blocks" : "on"))));
        var table = new Table().AddColumns("ledger tag", "GiB", "from");
        table.Columns[1].RightAligned();
        foreach (var t in e.Tags) table.AddRow(t.Tag.ToString(), $"{t.Bytes / 1073741824.0:F2}", Markup.Escape(t.Source));
        table.AddRow("[bold]total[/]", $"[bold]{e.TotalBytes / 1073741824.0:F2}[/]", "each tag at its own peak: an upper bound of the ledger's peak");
        console.Write(table);
        double total = e.TotalBytes / 1073741824.0;
        console.MarkupLine($"estimated peak {total:F2} GiB against {budgetGiB:F0} GiB: {(total < budgetGiB ? "[green]under[/]" : "[red]over[/]")} " +
            "(the driver adds the CUDA context, about 0.5 GiB, and the caching allocator's rounding)");
    }

    /// <summary>The header line of a memory estimate: the model and its settings, with <paramref name="checkpointing"/> among them.</summary>
    private static string Describe(StepMemoryEstimate e, string checkpointing)
    {
        var s = e.Settings;
        return $"flora bench memory: {e.Model} ({e.Parameters:N0} parameters, {e.Layers} layers, vocabulary {e.Vocabulary:N0}), " +
            $"{s.Optimizer}{(s.Optimizer.Contains("flora") ? $" r={s.Rank}" : "")}, LOMO {(s.Lomo ? "on" : "off")}, {checkpointing}, " +
            $"{(s.Weights == Flora.Tensors.DType.BFloat16 ? "bf16" : "fp32")} weights, {s.Precision.ToString().ToLowerInvariant()} products, batch {s.Batch} x {s.SequenceLength} tokens";
    }

    /// <summary>The estimated peak for every number of checkpointed blocks (a selection of them), and the fewest under the budget.</summary>
    private static void PrintCheckpointChoices(IAnsiConsole console, StepMemoryEstimate e, double budgetGiB)
    {
        console.MarkupLine(Markup.Escape(Describe(e, "the first N blocks checkpointed")));
        long budget = (long)(budgetGiB * 1073741824.0);
        int? best = e.FewestCheckpointedWithin(budget);
        int stride = Math.Max(1, e.Layers / 8);
        var table = new Table().AddColumns("checkpointed blocks", "activations GiB", "estimated peak GiB", $"under {budgetGiB:G} GiB");
        foreach (int c in new[] { 1, 2, 3 }) table.Columns[c].RightAligned();
        for (int n = e.Layers; n >= 1; n--)
        {
            if (n % stride != 0 && n != best && n != 1) continue;
            long total = e.TotalWithCheckpointed(n);
            string row = $"{n}{(n == best ? " (fewest under the budget)" : "")}";
            table.AddRow(row, $"{e.LeftOut!.Activations(n, e.Layers) / 1073741824.0:F2}", $"{total / 1073741824.0:F2}", total <= budget ? "[green]yes[/]" : "[red]no[/]");
        }
        console.Write(table);
        console.MarkupLine(best is int b
            ? $"fewest checkpointed blocks under {budgetGiB:G} GiB: [bold]{b}[/] of {e.Layers} (--activation-checkpointing --checkpoint-blocks {b}); each block left out costs " +
              $"{e.LeftOut!.Each / 1073741824.0:F2} GiB{(b == 1 ? "; with none checkpointed, estimate --activation-checkpointing off" : "")}. " +
              "The estimate is an upper bound of the ledger's peak; the driver adds the CUDA context, about 0.5 GiB, and the caching allocator's rounding."
            : $"[red]over {budgetGiB:G} GiB even with every block checkpointed[/] ({e.TotalWithCheckpointed(e.Layers) / 1073741824.0:F2} GiB): a smaller batch or sequence, or LOMO.");
    }

    private static void Print(IAnsiConsole console, OptimizerBenchmarkResult r)
    {
        console.MarkupLine($"[bold]flora bench optim[/]: {Markup.Escape(r.Model)} ({r.Parameters:N0} parameters), median of {r.Steps} steps after {r.Warmup} warm-up, {Markup.Escape(r.Blas)}, {Environment.ProcessorCount} cores");
        var table = new Table().AddColumns("optimizer", "ms/step", $"ratio to {OptimizerBenchmark.Reference}", "state MiB");
        foreach (var row in r.Rows)
            table.AddRow(Markup.Escape(row.Method), $"{row.MillisecondsPerStep:F1}", $"{row.RatioToAdafactor:F2}x", $"{row.StateBytes / 1048576.0:F1}");
        console.Write(table);
    }

    private static void Print(IAnsiConsole console, PilotBenchmarkResult r)
    {
        console.MarkupLine($"[bold]flora bench pilot[/]: batch {r.BatchSize}, {r.Steps} timed steps after {r.Warmup} warm-up steps, {Markup.Escape(r.Blas)}, {Environment.ProcessorCount} cores");
        console.MarkupLine($"reference in this run: sgemm {r.ReferenceSize}^3 at {r.ReferenceGflops:F1} GFLOP/s");
        var table = new Table().AddColumns("variant", "ms/step", "examples/s", "GEMM share", "GEMM GFLOP/s", "GEMM vs reference", "non-GEMM / GEMM", "target");
        foreach (var v in r.Variants)
        {
            bool met = v.GemmShare >= 0.8;
            table.AddRow(PilotStudy.DisplayName(v.Variant), $"{v.MillisecondsPerStep:F2}", $"{v.ExamplesPerSecond:N0}", $"{v.GemmShare:P1}",
                $"{v.GemmGflops:F1}", $"{v.GemmGflops / r.ReferenceGflops:P0}", $"{(1 - v.GemmShare) / v.GemmShare:P1}", met ? "[green]met[/]" : "[red]missed[/]");
        }
        console.Write(table);
        console.MarkupLine("target: GEMM at least 80% of the step (everything else together under a quarter of the GEMM time)");
        var ops = new Table().Title("time per op, SGD variant").AddColumns("op", "calls/step", "ms/step", "share of step");
        foreach (var (op, calls, ms, share) in r.SgdOps)
            ops.AddRow(Markup.Escape(op), $"{calls:F0}", $"{ms:F3}", $"{share:P1}");
        console.Write(ops);
    }
}
