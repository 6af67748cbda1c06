using System.CommandLine;
using Flora.Devices;
using Flora.Backends;
using Flora.Experiments;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary><c>flora check --device cuda</c>: the device backend's conformance suite against the CPU.</summary>
internal static class CheckCommand
{
    public static Command Create(IAnsiConsole console, TextWriter error)
    {
        var device = new Option<string>("--device") { Description = "the device to check against the CPU (cuda)", DefaultValueFactory = _ => "cuda" };
        var precision = new Option<string>("--precision") { Description = "matrix-product precision to check: bf16 (the training default), tf32 or fp32", DefaultValueFactory = _ => "bf16" };
        var command = new Command("check", "Run every op on the CPU and on the GPU and compare (exit code 1 on any mismatch).") { device, precision };
        command.SetAction(parse => CommandGuard.Run(error, () =>
        {
            if (parse.GetValue(device) != "cuda") throw new ArgumentException($"flora check compares a device with the CPU: use --device cuda (got '{parse.GetValue(device)}')");
            var gemm = BackendFactory.ParsePrecision(parse.GetValue(precision)!);
            var rows = ConformanceCheck.Run(gemm, new Progress<string>(op => { }));
            using (var probe = Flora.Backends.Cuda.CudaBackend.Create(precision: gemm)) console.MarkupLine($"[bold]flora check[/]: {Markup.Escape(probe.Description)}");
            var table = new Table().AddColumns("op", "error", "tolerance", "metric", "result");
            foreach (var r in rows)
                table.AddRow(Markup.Escape(r.Op), $"{r.Error:G3}", $"{r.Tolerance:G3}", r.Metric, r.Passed ? "[green]pass[/]" : "[red]FAIL[/]");
            console.Write(table);
            int failed = rows.Count(r => !r.Passed);
            console.MarkupLine(failed == 0 ? $"[green]all {rows.Count} checks passed[/]" : $"[red]{failed} of {rows.Count} checks failed[/]");
            return failed == 0 ? 0 : CommandGuard.UserError;
        }));
        return command;
    }
}
