using System.CommandLine;
using Flora.Experiments;
using Flora.Nn;
using Flora.Reporting;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary>
/// <c>flora memory</c>: the exact optimizer-state and accumulation bytes of None, Naive, LoRA(r) and FLORA(r)
/// for a model shape, measured on the memory ledger and set against the analytic formula.
/// </summary>
internal static class MemoryCommand
{
    private const string DefaultModel = "gpt2-124m", QuickModel = "pilot";

    public static Command Create(IAnsiConsole console, TextWriter error)
    {
        var defaults = new MemoryStudyOptions();
        var model = new Option<string>("--model")
        {
            Description = $"model shape: {string.Join(", ", ParameterTable.Presets)}",
            DefaultValueFactory = _ => DefaultModel,
        };
        model.AcceptOnlyFromAmong(StringComparer.OrdinalIgnoreCase, [.. ParameterTable.Presets]);
        var rank = Options.PositiveInt("--rank", "rank r of FLORA and LoRA (a matrix whose smaller dimension is below r stays uncompressed)", defaults.Rank);
        var tau = Options.PositiveInt("--tau", "micro-batches per update (tau) of the accumulation setting", defaults.AccumulationSteps);
        var json = new Option<bool>("--json") { Description = "print the result as JSON on stdout, and nothing else" };
        var output = new Option<string?>("--out") { Description = $"also write {MemoryReport.JsonFile} and {MemoryReport.MarkdownFile} to this directory" };
        var quick = new Option<bool>("--quick") { Description = $"a small run for tests: the {QuickModel} model" };

        var command = new Command("memory",
            "Exact optimizer-state and gradient-accumulation bytes of None, Naive, LoRA(r) and FLORA(r) on Adafactor and AdamW, " +
            "measured on the memory ledger next to the analytic formula.")
        {
            model, rank, tau, json, output, quick,
        };
        command.SetAction(parse => CommandGuard.Run(error, () =>
        {
            bool isQuick = parse.GetValue(quick);
            bool explicitModel = parse.GetResult(model) is { Implicit: false };
            string name = parse.GetValue(model)!;
            if (isQuick && explicitModel && !name.Equals(QuickModel, StringComparison.OrdinalIgnoreCase))
                throw new ArgumentException($"--quick measures the {QuickModel} model; drop --model {name} or --quick");
            var table = ParameterTable.Parse(isQuick ? QuickModel : name);
            var options = new MemoryStudyOptions { Rank = parse.GetValue(rank), AccumulationSteps = parse.GetValue(tau) };
            options.Validate();
            var run = parse.GetValue(output) is string directory ? RunOutput.Create(directory) : null;
            bool asJson = parse.GetValue(json);
            if (!asJson)
                console.MarkupLine($"[bold]flora memory[/]: measuring {Markup.Escape(table.Name)} at r = {options.Rank}, tau = {options.AccumulationSteps} ...");

            var result = MemoryStudy.Run(table, options);
            if (run is not null) MemoryReport.Write(run, result);
            if (asJson)
            {
                console.Profile.Out.Writer.WriteLine(MemoryReport.Json(result));
                return 0;
            }
            Print(console, result);
            if (run is not null)
                console.MarkupLine($"wrote {Markup.Escape(run.PathOf(MemoryReport.JsonFile))} and {MemoryReport.MarkdownFile}");
            return 0;
        }));
        return command;
    }

    private static void Print(IAnsiConsole console, MemoryStudyResult r)
    {
        console.MarkupLine(Markup.Escape(MemoryReport.Header(r)));
        foreach (var setting in r.Rows.Select(x => x.Setting).Distinct())
        {
            bool accumulation = setting == MemorySetting.Accumulation;
            var table = new Table().Title(Markup.Escape(MemoryReport.Title(setting)))
                .AddColumns("method", "base", "measured bytes", "formula bytes", "match", "MiB", "x of naive", "LoRA adapters MiB");
            if (accumulation) table.AddColumn("opt. state MiB");
            foreach (int i in new[] { 2, 3, 5, 6, 7 }) table.Columns[i].RightAligned();
            if (accumulation) table.Columns[8].RightAligned();
            table.Columns[4].Centered();
            foreach (var row in r.Rows.Where(x => x.Setting == setting))
            {
                var c = MemoryReport.Cells(row);
                string match = !row.Available ? "[grey]n/a[/]" : row.Match ? "[green]✓[/]" : "[red]✗[/]";
                var cells = new List<string> { Markup.Escape(c.Method), c.Base, c.Measured, c.Formula, match, c.MiB, c.Ratio, c.Adapters };
                if (accumulation) cells.Add(c.State);
                table.AddRow(cells.ToArray());
            }
            console.Write(table);
        }
        console.MarkupLine("LoRA adapters: A (r, in) and B (out, r) for every FLORA-eligible matrix, the model frozen; their bytes are not part of the state column.");
        console.MarkupLine("Accumulation None: tau = 1 with each update applied inside backward (LOMO), so no gradient outlives backward.");
        console.MarkupLine(r.AllMatch
            ? $"[green]every measurement equals its formula[/] ({r.Seconds:F1} s)"
            : $"[red]some measurements differ from the formula[/] ({r.Seconds:F1} s)");
    }
}
