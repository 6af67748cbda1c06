using System.CommandLine;
using Flora.Data;
using Flora.Experiments;
using Flora.Reporting;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary><c>flora pilot</c>: the paper's pilot study (Figure 1) on Fashion-MNIST.</summary>
internal static class PilotCommand
{
    private const int QuickSteps = 200, QuickEvalEvery = 50, QuickTestExamples = 2000;

    public static Command Create(IAnsiConsole console, TextWriter error)
    {
        var defaults = new PilotOptions();
        var data = new Option<string?>("--data") { Description = $"directory with the Fashion-MNIST IDX files (default {FashionMnist.DefaultDirectory})" };
        var output = new Option<string>("--out") { Description = "output directory", DefaultValueFactory = _ => "runs/pilot" };
        var steps = Options.PositiveInt("--steps", "training steps per variant", defaults.Steps);
        var batch = Options.PositiveInt("--batch", "mini-batch size", defaults.BatchSize);
        var lr = Options.PositiveFloat("--lr", "SGD learning rate (the paper: 0.01)", defaults.LearningRate);
        var rank = Options.PositiveInt("--rank", "rank r of LoRA and of the projections (the paper: 8)", defaults.Rank);
        var evalEvery = Options.PositiveInt("--eval-every", "evaluate test accuracy every N steps", defaults.EvalEvery);
        var seed = Options.Seed("--seed", "seed of the initial weights, data order and projections", 0);
        var rest = Options.Choice("--rest", "how the layers around the square layer are treated", defaults.Rest);
        var layer = Options.Choice("--layer", "the square layer under study: middle (784 -> 768 -> [768x768] -> 10) or first ([768x768] on the last 768 pixels -> 768 -> 10, as the paper's caption)", defaults.Layer);
        var loraInit = Options.Choice("--lora-init", "LoRA's A: gaussian (N(0, 1/r)) or kaiminguniform (the LoRA code's U(-1/sqrt(in), 1/sqrt(in)))", defaults.LoraInit);
        var variants = Options.Choices<PilotVariant>("--variants", "variants to run (default: all five)");
        var quick = new Option<bool>("--quick") { Description = $"a short run for CI: {QuickSteps} steps (unless --steps is given), evaluation every {QuickEvalEvery} steps on the first {QuickTestExamples} test images" };

        var command = new Command("pilot", "Pilot study of the paper (Figure 1): SGD, LoRA, LoRA(B), RP and RRP on a 768x768 layer, Fashion-MNIST.")
        {
            data, output, steps, batch, lr, rank, evalEvery, seed, rest, layer, loraInit, variants, quick,
        };
        command.SetAction(parse => CommandGuard.Run(error, () =>
        {
            bool isQuick = parse.GetValue(quick);
            var options = new PilotOptions
            {
                Steps = isQuick && parse.GetResult(steps) is null or { Implicit: true } ? QuickSteps : parse.GetValue(steps),
                BatchSize = parse.GetValue(batch),
                LearningRate = parse.GetValue(lr),
                Rank = parse.GetValue(rank),
                EvalEvery = isQuick && parse.GetResult(evalEvery) is null or { Implicit: true } ? QuickEvalEvery : parse.GetValue(evalEvery),
                Seed = parse.GetValue(seed),
                Rest = parse.GetValue(rest),
                Layer = parse.GetValue(layer),
                LoraInit = parse.GetValue(loraInit),
                Variants = parse.GetValue(variants) is { Length: > 0 } v ? v.Distinct().ToArray() : Enum.GetValues<PilotVariant>(),
            };
            options.Validate();
            var run = RunOutput.Create(parse.GetValue(output)!);
            string directory = parse.GetValue(data) ?? FashionMnist.DefaultDirectory;
            return Execute(console, options, run, directory, isQuick ? QuickTestExamples : null, string.Join(' ', ["flora", .. parse.Tokens.Select(t => t.Value)]));
        }));
        return command;
    }

    private static int Execute(IAnsiConsole console, PilotOptions options, RunOutput run, string directory, int? testLimit, string commandLine)
    {
        var train = FashionMnist.LoadTrain(directory);
        var test = FashionMnist.LoadTest(directory);
        if (testLimit is int n) test = test.Take(n);
        console.MarkupLine($"[bold]Pilot study (paper Figure 1)[/] on Fashion-MNIST: {train.Count} training and {test.Count} test images from {Markup.Escape(directory)}");
        console.MarkupLine($"network: {Markup.Escape(PilotStudy.DescribeNetwork(options))}");
        console.MarkupLine($"r = {options.Rank}, eta = {options.LearningRate}, batch {options.BatchSize}, {options.Steps} steps per variant, seed {options.Seed}");

        var names = options.Variants.Select(PilotStudy.DisplayName).ToList();
        var (results, log) = new ProgressReporter(console).Run(names, options.Steps, report =>
            PilotStudy.Run(train, test, options, new SynchronousProgress<PilotProgress>(p =>
            {
                string text = double.IsNaN(p.Loss) ? "" : $"loss {p.Loss:F4}";
                if (p.TestAccuracy is double acc) text += $"  test acc {acc:P1}";
                report(PilotStudy.DisplayName(p.Variant), p.Step, text, p.TestAccuracy is not null);
            }), (done, soFar) => PilotReport.Write(run, options, done, soFar, directory, commandLine)));

        var table = new Table().Title("Pilot study results").AddColumns("variant", "final train loss", "test accuracy", "test loss", "trainable params", "train s", "allocs after step 1");
        foreach (var r in results)
            table.AddRow(PilotStudy.DisplayName(r.Variant), $"{r.FinalTrainLoss:F4}", $"{r.TestAccuracy:P2}", $"{r.TestLoss:F4}",
                $"{r.TrainableParameters:N0}", $"{r.TrainSeconds:F1}", $"{r.AllocationsAfterFirstStep}");
        console.Write(table);
        console.MarkupLine($"final train loss = mean of the last {PilotStudy.FinalWindow(options.Steps)} steps");
        if (PilotStudy.OrderingVerdict(results, out bool holds) is string verdict)
            console.MarkupLine($"[{(holds ? "green" : "yellow")}]{Markup.Escape(verdict)}[/]");
        console.MarkupLine($"wrote {Markup.Escape(run.PathOf(PilotReport.MetricsFile))}, {PilotReport.FigureFile}, {PilotReport.AccuracyFile}, {PilotReport.SummaryFile}");
        return 0;
    }
}
