using System.CommandLine;
using Flora.Data.Corpora;
using Flora.Training;
using Flora.Reporting;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary>
/// <c>flora eval</c>: a checkpoint on a split: loss and perplexity; for translation also BLEU and ROUGE of its
/// translations, with the hypotheses, references and scores.json written next to the run.
/// </summary>
internal static class EvalCommand
{
    public static Command Create(IAnsiConsole console, TextWriter error)
    {
        var d = new EvaluationOptions { Checkpoint = "" };
        var checkpoint = new Option<string>("--checkpoint") { Description = "a run directory (its latest checkpoint) or a checkpoint directory", Required = true };
        var split = new Option<string>("--split") { Description = "train, validation or test", DefaultValueFactory = _ => "validation" };
        var maxPairs = Options.NonNegativeInt("--max-pairs", "evaluate N pairs of the split, drawn at random with a fixed seed (the same N every time; 0 = all)", 0);
        var beam = Options.PositiveInt("--beam", "beam size (1 = greedy)", d.Beam.BeamSize);
        var lengthPenalty = Options.Float("--length-penalty", "beam score = log-probability / length^penalty", d.Beam.LengthPenalty, NumberRange.Finite);
        var maxTokens = Options.PositiveInt("--max-tokens", "longest translation in tokens", d.Beam.MaxTokens);
        var batch = Options.PositiveInt("--batch", "pairs per batch (loss and generation)", d.BatchSize);
        var data = new Option<string?>("--data") { Description = "prepared data directory (default: the one the run trained on)" };
        var output = new Option<string?>("--out") { Description = "output directory (default: RUN/eval/SPLIT-step-N)" };
        var device = new Option<string>("--device") { Description = "cpu or cuda", DefaultValueFactory = _ => "cpu" };
        var noStem = new Option<bool>("--no-stem") { Description = "ROUGE without the Porter stemmer" };
        var command = new Command("eval", "Evaluate a checkpoint on a split: loss, perplexity, and for translation BLEU (SacreBLEU) and ROUGE (rouge-score).")
        {
            checkpoint, split, maxPairs, beam, lengthPenalty, maxTokens, batch, data, output, device, noStem,
        };
        command.SetAction(parse => CommandGuard.Run(error, () =>
        {
            var options = new EvaluationOptions
            {
                Checkpoint = parse.GetValue(checkpoint)!,
                Split = parse.GetValue(split) switch
                {
                    "train" => CorpusSplit.Train, "validation" => CorpusSplit.Validation, "test" => CorpusSplit.Test,
                    var s => throw new ArgumentException($"--split must be train, validation or test, got '{s}'"),
                },
                MaxPairs = parse.GetValue(maxPairs),
                Beam = new BeamOptions(parse.GetValue(beam), parse.GetValue(lengthPenalty), parse.GetValue(maxTokens)),
                BatchSize = parse.GetValue(batch),
                Data = parse.GetValue(data),
                OutputDirectory = parse.GetValue(output),
                Device = parse.GetValue(device)!,
                Stem = !parse.GetValue(noStem),
            };
            console.MarkupLine($"[bold]flora eval[/]: {Markup.Escape(options.Checkpoint)}, {Markup.Escape(parse.GetValue(split)!)} split");
            EvaluationResult result = EvaluateWithProgress(console, options);
            foreach (string note in result.Notes) error.WriteLine($"warning: {note}");
            Print(console, result);
            return 0;
        }));
        return command;
    }

    private static EvaluationResult EvaluateWithProgress(IAnsiConsole console, EvaluationOptions options)
    {
        var reporter = new ProgressReporter(console);
        int lastMilestone = -1;
        return reporter.Run(["loss", "generation"], 100, report => Evaluation.Run(options, new SynchronousProgress<EvaluationProgress>(p =>
        {
            double percent = p.Total == 0 ? 100 : 100.0 * p.Done / p.Total;
            int milestone = (int)(percent / 10);                        // plain output: a line every 10 %
            bool print = milestone != lastMilestone || p.Done == p.Total;
            lastMilestone = milestone;
            report(p.Phase, percent, $"{p.Done}/{p.Total}", print);
        })));
    }

    private static void Print(IAnsiConsole console, EvaluationResult r)
    {
        var table = new Table().Title("evaluation").AddColumn("").AddColumn("");
        table.AddRow("checkpoint", Markup.Escape($"{r.Checkpoint} (step {r.Step}, task {r.Task})"));
        table.AddRow("split", Markup.Escape(r.Task == "translate" ? $"{r.Split}, {r.Pairs:N0} pairs" : r.Split));
        table.AddRow("loss / perplexity", $"{r.Loss:F4} / {r.Perplexity:F2} (over {r.LossTokens:N0} tokens)");
        if (r.Bleu is { } b)
        {
            table.AddRow("BLEU", Markup.Escape(b.ToString()));
            table.AddRow("BLEU signature", Markup.Escape(b.Signature));
        }
        if (r.Rouge is { } g)
            table.AddRow("ROUGE F (1 / 2 / L)", $"{100 * g.Rouge1.F:F2} / {100 * g.Rouge2.F:F2} / {100 * g.RougeL.F:F2}");
        table.AddRow("time", $"{r.Seconds:F1} s");
        console.Write(table);
        console.MarkupLine($"wrote {Markup.Escape(Path.Combine(r.OutputDirectory, Evaluation.ScoresFile))}" + (r.Task == "translate" ? " with sources.txt, hypotheses.txt and references.txt" : ""));
    }
}
