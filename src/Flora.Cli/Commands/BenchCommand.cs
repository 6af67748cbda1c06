using System.CommandLine;
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
        pilot.SetAction(parse => FloraCli.Guard(error, () =>
        {
            var result = PilotBenchmark.Run(parse.GetValue(batch), parse.GetValue(steps), parse.GetValue(warmup));
            Print(console, result);
            return 0;
        }));
        var model = new Option<string>("--model") { Description = "parameter table: pilot, gpt2-124m or gpt2-350m", DefaultValueFactory = _ => "gpt2-124m" };
        var ranks = new Option<int[]>("--ranks") { Description = "FLORA ranks to time", DefaultValueFactory = _ => [32, 256], AllowMultipleArgumentsPerToken = true };
        var optimSteps = Options.PositiveInt("--steps", "timed steps per optimizer", 5);
        var optimWarmup = Options.PositiveInt("--warmup", "untimed steps before timing", 2);
        var optim = new Command("optim", "Time of one optimizer step over a model's parameter table: Adafactor, naive momentum, FLORA, AdamW.")
        {
            model, ranks, optimSteps, optimWarmup,
        };
        optim.SetAction(parse => FloraCli.Guard(error, () =>
        {
            var table = Flora.Nn.ParameterTable.Parse(parse.GetValue(model)!);
            var result = OptimizerBenchmark.Run(table, parse.GetValue(ranks)!, parse.GetValue(optimSteps), parse.GetValue(optimWarmup),
                new Progress<string>(name => console.MarkupLine($"  timing {Markup.Escape(name)} ...")));
            Print(console, result);
            return 0;
        }));
        var trainModel = new Option<string>("--model") { Description = "model preset", DefaultValueFactory = _ => new Flora.Training.TrainOptions().Model };
        var trainSteps = Options.PositiveInt("--steps", "timed steps", 10);
        var trainWarmup = Options.PositiveInt("--warmup", "untimed steps before timing", 3);
        var trainDevice = new Option<string>("--device") { Description = "cpu or cuda", DefaultValueFactory = _ => "cpu" };
        var trainOptimizer = new Option<string>("--optimizer") { Description = "optimizer", DefaultValueFactory = _ => "flora" };
        var train = new Command("train", "Tokens per second of training steps of a model, split into forward, backward and optimizer, and the GEMM share.")
        {
            trainModel, trainSteps, trainWarmup, trainDevice, trainOptimizer,
        };
        train.SetAction(parse => FloraCli.Guard(error, () =>
        {
            string run = Path.Combine(Path.GetTempPath(), $"flora-bench-{Environment.ProcessId}");
            try
            {
                var options = new Flora.Training.TrainOptions
                {
                    Model = parse.GetValue(trainModel)!, Device = parse.GetValue(trainDevice)!, OutputDirectory = run,
                    Optimizer = new Flora.Optim.OptimizerSpec { Name = parse.GetValue(trainOptimizer)!, LearningRate = Flora.Optim.OptimizerSpec.DefaultLearningRate(parse.GetValue(trainOptimizer)!), Rank = 32 },
                };
                using var trainer = new Flora.Training.Trainer(options);
                var t = trainer.MeasureSteps(parse.GetValue(trainWarmup), parse.GetValue(trainSteps));
                console.MarkupLine($"[bold]flora bench train[/]: {Markup.Escape(trainer.Describe())}");
                console.MarkupLine($"batch {options.BatchSize} x {options.SequenceLength} tokens, median of {parse.GetValue(trainSteps)} steps after {parse.GetValue(trainWarmup)} warm-up, device {options.Device}, {Environment.ProcessorCount} cores");
                var table = new Table().AddColumns("tokens/s", "ms/step", "forward ms", "backward ms", "optimizer ms", "GEMM share", "target (>= 70%)");
                table.AddRow($"{t.TokensPerSecond:N0}", $"{t.Step * 1000:F1}", $"{t.Forward * 1000:F1}", $"{t.Backward * 1000:F1}", $"{t.Optimizer * 1000:F1}",
                    $"{t.GemmShare:P1}", t.GemmShare >= 0.7 ? "[green]met[/]" : "[red]missed[/]");
                console.Write(table);
                var ops = new Table().Title("share of step time per op").AddColumns("op", "share");
                foreach (var (op, share) in t.Ops.Take(15)) ops.AddRow(Markup.Escape(op), $"{share:P1}");
                console.Write(ops);
                return 0;
            }
            finally
            {
                if (Directory.Exists(run)) Directory.Delete(run, recursive: true);
            }
        }));
        return new Command("bench", "Benchmarks.") { pilot, optim, train };
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
