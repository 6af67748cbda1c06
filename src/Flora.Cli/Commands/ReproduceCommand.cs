using System.CommandLine;
using System.Diagnostics;
using Flora.Experiments.Reproduce;
using Flora.Reporting;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary><c>flora reproduce NAME</c>: one experiment of the paper, our numbers next to the paper's.</summary>
internal static class ReproduceCommand
{
    public static Command Create(IAnsiConsole console, TextWriter error)
    {
        var name = new Argument<string[]>("name") { Description = $"experiments: {string.Join(", ", Reproductions.Names)}, or all", Arity = ArgumentArity.OneOrMore };
        var scale = new Option<string>("--scale") { Description = "default (minutes on two CPU cores) or paper (the paper's ranks and model sizes, for a GPU)", DefaultValueFactory = _ => "default" };
        var quick = new Option<bool>("--quick") { Description = "a CI-sized run of the default scale: fewest arms and steps that still run the whole protocol" };
        var device = new Option<string>("--device") { Description = "cpu or cuda", DefaultValueFactory = _ => "cpu" };
        var precision = new Option<string>("--precision") { Description = "GPU matrix products: bf16, tf32 or fp32", DefaultValueFactory = _ => "bf16" };
        var output = new Option<string>("--out") { Description = "root output directory; each experiment writes OUT/SCALE/NAME", DefaultValueFactory = _ => "runs/reproduce" };
        var seed = Options.Seed("--seed", "root seed of every run", 0);
        var data = new Option<string?>("--data") { Description = "prepared data directory (default: data/prepared/bible-v1, prepared when missing)" };
        var steps = Options.OptionalInt("--steps", "override the scale's training steps (to fit a time budget)", NumberRange.Positive);
        var ranks = Options.Ints("--ranks", "override the scale's ranks", NumberRange.Positive);
        var testPairs = Options.OptionalInt("--test-pairs", "override how many test pairs are translated per arm (drawn at random with a fixed seed; 0 = all)", NumberRange.NonNegative);
        var naiveLrs = Options.Floats("--naive-lrs", "learning rates of Naive's sweep instead of the scale's grid (not extended)", NumberRange.Positive);
        var loraLrs = Options.Floats("--lora-lrs", "learning rates of LoRA's sweep instead of the scale's grid (not extended)", NumberRange.Positive);
        var seeds = Options.OptionalInt("--seeds", "override the seeds per compared arm (the scales' 3; --quick 1)", NumberRange.Positive);
        var models = new Option<string[]>("--models") { Description = "only these model families where an experiment has several (gpt, t5)", AllowMultipleArgumentsPerToken = true };
        var gptModel = new Option<string?>("--gpt-model") { Description = "the decoder-only model of the text experiments instead of the scale's (e.g. gpt2-350m)" };
        var t5Model = new Option<string?>("--t5-model") { Description = "the encoder-decoder model of the text experiments instead of the scale's" };
        var resume = new Option<bool>("--resume") { Description = "reuse the runs an interrupted reproduction into the same --out finished with identical settings (runs/NAME/arm-result.json) instead of training them again" };
        var workers = Options.OptionalInt("--workers", "train the runs in this many processes side by side (several small models on one GPU, one GPU each with --gpus, or shares of the CPU's cores), then write the tables from their stored runs; implies --resume", NumberRange.Positive);
        var gpus = new Option<string?>("--gpus") { Description = "with --workers: the GPUs the workers take in turn, e.g. 0,1,2,3 (each worker sees one: CUDA_VISIBLE_DEVICES); default: every worker on this process's GPUs" };
        var worker = new Option<bool>("--worker") { Description = "(started by --workers) be one of several processes training this experiment's runs into the same --out; writes no table", Hidden = true };
        var results = new Option<string?>("--results") { Description = "also put the tables into this Markdown document (e.g. docs/results.md), replacing their previous versions" };
        var command = new Command("reproduce", "Run an experiment of the paper (Figure 1, Tables 1 to 6, Figure 2, our ablation) and write table.md with the paper's numbers, results.csv, charts and the commands.")
        {
            name, scale, quick, device, precision, output, seed, data, steps, ranks, testPairs, seeds, naiveLrs, loraLrs, models, gptModel, t5Model, resume, results,
            workers, gpus, worker,
        };
        command.SetAction((parse, cancel) => Task.FromResult(CommandGuard.Run(error, () =>
        {
            RunOutput.Create(parse.GetValue(output)!);                          // a bad --out fails now, not after the first experiment
            var requested = parse.GetValue(name)!;
            var experiments = requested.Contains("all") ? Reproductions.All : requested.Select(Reproductions.Find).ToList();
            var scaleValue = parse.GetValue(scale) switch
            {
                "default" => ReproductionScale.Default,
                "paper" => ReproductionScale.Paper,
                var other => throw new ArgumentException($"--scale must be default or paper, got '{other}'"),
            };
            string commandLine = string.Join(' ', ["flora", .. parse.Tokens.Select(t => t.Value)]);
            int workerCount = parse.GetValue(workers) ?? 1;
            bool isWorker = parse.GetValue(worker);
            string[] gpuList = ReproduceWorkers.ParseGpus(parse.GetValue(gpus));
            if (gpuList.Length > 0 && workerCount < 2) throw new ArgumentException("--gpus goes with --workers N (N of 2 or more): it says which GPU each worker takes");
            if (isWorker && workerCount > 1) throw new ArgumentException("--worker is one of the processes that --workers starts; give one or the other");
            if (workerCount > 1 && experiments.FirstOrDefault(e => !e.RunsArms) is { } whole)
                throw new ArgumentException($"{whole.Name} trains in one piece and cannot be shared among workers: run it without --workers (those that can: {string.Join(", ", Reproductions.All.Where(e => e.RunsArms).Select(e => e.Name))})");
            var summaries = new List<ReproductionSummary>();
            foreach (var experiment in experiments)
            {
                var settings = new ReproduceSettings
                {
                    Scale = scaleValue, Quick = parse.GetValue(quick), Device = parse.GetValue(device)!, Precision = parse.GetValue(precision)!, Seed = parse.GetValue(seed),
                    Data = parse.GetValue(data), Steps = parse.GetValue(steps), Ranks = parse.GetValue(ranks) is { Length: > 0 } r ? r.OrderBy(x => x).ToArray() : null,
                    GptModel = parse.GetValue(gptModel), T5Model = parse.GetValue(t5Model), Resume = parse.GetValue(resume) || workerCount > 1,
                    TestPairs = parse.GetValue(testPairs), Seeds = parse.GetValue(seeds),
                    NaiveGrid = parse.GetValue(naiveLrs) is { Length: > 0 } nl ? nl : null, LoraGrid = parse.GetValue(loraLrs) is { Length: > 0 } ll ? ll : null, Models = parse.GetValue(models) is { Length: > 0 } m ? m : null, CommandLine = commandLine,
                    OutputDirectory = Path.Combine(parse.GetValue(output)!, parse.GetValue(quick) ? "quick" : parse.GetValue(scale)!, experiment.Name),
                };
                console.MarkupLine($"[bold]{experiment.Name}[/]: {Markup.Escape(experiment.Title)} (scale {settings.ScaleName}, {settings.Device})");
                var clock = Stopwatch.StartNew();
                var log = new SynchronousProgress<string>(line => console.MarkupLine($"[grey]{clock.Elapsed:mm\\:ss}[/] {Markup.Escape(line)}"));
                if (isWorker)
                {
                    int trained = ReproductionWorker.Run(experiment, settings, log, cancel, TimeSpan.FromMinutes(1));
                    console.MarkupLine(Markup.Escape($"worker done: every run of {experiment.Name} is stored ({trained} trained here) in {settings.OutputDirectory}"));
                    continue;
                }
                if (workerCount > 1)
                {
                    var arguments = ReproduceWorkers.WorkerArguments(experiment.Name, settings, parse.GetValue(output)!, parse.GetValue(scale)!);
                    int code = ReproduceWorkers.Run(console, error, arguments, workerCount, gpuList, settings.Device == "cpu", cancel);
                    if (code != 0) return code;
                    console.MarkupLine(Markup.Escape($"every worker finished; writing the tables from the stored runs ({clock.Elapsed.TotalSeconds:F0} s)"));
                }
                var summary = experiment.Run(settings, log, cancel);
                summaries.Add(summary);
                console.WriteLine();
                console.WriteLine(summary.TableMarkdown);
                console.MarkupLine($"[{(summary.ConclusionHolds ? "green" : "yellow")}]{Markup.Escape(summary.Verdict)}[/]");
                console.MarkupLine($"wrote {Markup.Escape(summary.OutputDirectory)} (table.md, results.csv, charts, commands.txt) in {clock.Elapsed.TotalSeconds:F0} s");
                if (parse.GetValue(results) is string doc) Reproductions.UpdateResults(doc, summary);
            }
            if (summaries.Count > 1)
                foreach (var s in summaries) console.MarkupLine($"{s.Name}: conclusion {(s.ConclusionHolds ? "[green]holds[/]" : "[yellow]does not hold[/]")}");
            return 0;
        })));
        return command;
    }
}
