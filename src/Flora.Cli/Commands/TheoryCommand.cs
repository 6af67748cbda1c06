using System.CommandLine;
using Flora.Backends;
using Flora.Experiments;
using Flora.Reporting;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary><c>flora theory</c>: the paper's Theorem 2.4 (A^T A is close to I entry by entry) measured on a grid of d and r.</summary>
internal static class TheoryCommand
{
    public static Command Create(IAnsiConsole console, TextWriter error)
    {
        var defaults = new TheoremOptions();
        var quickGrid = TheoremOptions.Quick;
        var output = new Option<string>("--out") { Description = "output directory", DefaultValueFactory = _ => "runs/theory" };
        var seeds = Options.PositiveInt("--seeds", "independent projections per (d, r); every figure is their mean", defaults.Seeds);
        var seed = Options.Seed("--seed", "root seed of the projections and of the test matrix G", defaults.Seed);
        var dims = Options.Ints("--dims", $"dimensions d (default: {string.Join(' ', defaults.Dimensions)})", NumberRange.Positive);
        var ranks = Options.Ints("--ranks", $"ranks r (default: {string.Join(' ', defaults.Ranks)})", NumberRange.Positive);
        var quick = new Option<bool>("--quick")
        {
            Description = $"a small grid for CI: d in {{{string.Join(", ", quickGrid.Dimensions)}}}, r in {{{string.Join(", ", quickGrid.Ranks)}}}, " +
                          $"{quickGrid.Seeds} seeds (unless --dims, --ranks or --seeds are given)",
        };

        var command = new Command("theory", "Theorem 2.4 of the paper: max |A^T A - I| for A (r, d) with N(0, 1/r) entries falls like sqrt(ln d / r).")
        {
            output, seeds, seed, dims, ranks, quick,
        };
        command.SetAction(parse => CommandGuard.Run(error, () =>
        {
            var grid = parse.GetValue(quick) ? quickGrid : defaults;
            var options = new TheoremOptions
            {
                Dimensions = parse.GetValue(dims) is { Length: > 0 } d ? d : grid.Dimensions,
                Ranks = parse.GetValue(ranks) is { Length: > 0 } r ? r : grid.Ranks,
                Seeds = parse.GetResult(seeds) is null or { Implicit: true } ? grid.Seeds : parse.GetValue(seeds),
                Seed = parse.GetValue(seed),
            };
            options.Validate();
            var run = RunOutput.Create(parse.GetValue(output)!);
            return Execute(console, options, run, string.Join(' ', ["flora", .. parse.Tokens.Select(t => t.Value)]));
        }));
        return command;
    }

    private static int Execute(IAnsiConsole console, TheoremOptions options, RunOutput run, string commandLine)
    {
        console.MarkupLine("[bold]Theorem 2.4[/]: for A (r, d) with N(0, 1/r) entries, every entry of A^T A - I is at most eps w.h.p. once r = c ln(2d/delta) / eps^2");
        console.MarkupLine($"d in {{{string.Join(", ", options.Dimensions)}}}, r in {{{string.Join(", ", options.Ranks)}}}, {options.Seeds} seeds each, " +
                           $"root seed {options.Seed}; reconstruction error on a fixed N(0, 1) matrix G ({options.GradientRows}, d)");

        var names = options.Dimensions.Select(Name).ToList();
        int perDimension = options.Ranks.Count * options.Seeds;
        var result = new ProgressReporter(console).Run(names, perDimension, report =>
            TheoremStudy.Run(options, new SynchronousProgress<TheoremProgress>(p =>
                report(Name(p.Dimension), p.Done, $"r = {p.Rank}", p.Done % options.Seeds == 0))));
        TheoremReport.Write(run, result, commandLine);

        var table = new Table().Title("Theorem 2.4: element-wise error of A^T A (means over seeds)")
            .AddColumns("d", "r", "max |A^T A - I|", "mean |A^T A - I|", "sqrt(2/(pi r))", "sqrt(ln d / r)", "ratio", "reconstruction error", "sqrt((d+1)/r)");
        foreach (var p in result.Points)
            table.AddRow($"{p.Dimension}", $"{p.Rank}", $"{p.MaxError:F4}", $"{p.MeanError:F4}", $"{p.TheoryMeanError:F4}", $"{p.Scale:F4}",
                $"{p.Ratio:F3}", $"{p.ReconstructionError:F3}", $"{p.TheoryReconstructionError:F3}");
        foreach (int i in Enumerable.Range(1, table.Columns.Count - 1)) table.Columns[i].RightAligned();
        console.Write(table);
        console.MarkupLine("ratio = max |A^T A - I| / sqrt(ln d / r); reconstruction error = ||G A^T A - G||_F / ||G||_F, " +
                           "unbiased but of size sqrt((d+1)/r): accurate entry by entry, not in norm, when r < d");
        if (TheoremStudy.SlopeVerdict(result, out bool holds) is string verdict)
        {
            console.MarkupLine($"[{(holds ? "green" : "yellow")}]{Markup.Escape(verdict)}[/]");
            if (!holds && result.Slopes.All(s => s.Slope < -0.5))
                console.MarkupLine($"note: sqrt(ln d / r) is the rate as r grows; at small r (here r <= {options.Ranks.Max()}) the entries of A^T A - I " +
                                   "have heavier tails than a Gaussian and the maximum falls faster than r^(-1/2); the default grid runs r up to 512");
        }
        console.MarkupLine($"{result.Seconds:F1} s; wrote {Markup.Escape(run.PathOf(TheoremReport.ChartFile))}, {TheoremReport.CsvFile}, {TheoremReport.SummaryFile}");
        return 0;
    }

    private static string Name(int d) => $"d = {d}";
}
