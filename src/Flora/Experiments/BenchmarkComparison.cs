using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Flora.Experiments;

/// <summary>One row of bench/torch_gpt2.py's JSON.</summary>
public sealed record TorchBenchRow(string Model, string Optimizer, double MillisecondsPerStep, double TokensPerSecond, double PeakGiB, double StateMiB);

public sealed record TorchBenchReport(string Device, string Versions, IReadOnlyList<TorchBenchRow> Rows);

/// <summary>The side-by-side markdown table of a Flora benchmark and the PyTorch reference of the same run.</summary>
public static class BenchmarkComparison
{
    public static TorchBenchReport ReadTorch(string path) =>
        JsonSerializer.Deserialize<TorchBenchReport>(File.ReadAllText(path), new JsonSerializerOptions { PropertyNameCaseInsensitive = true })
        ?? throw new InvalidDataException($"{path}: empty PyTorch benchmark report");

    /// <summary>Matches a Flora optimizer label with PyTorch's ("adamw" with "AdamW (fused)", "flora r=32" with "Flora r=32", ...).</summary>
    private static string Key(string optimizer) => optimizer.ToLowerInvariant() switch
    {
        var o when o.StartsWith("adamw") && !o.Contains("flora") => "adamw",
        "adafactor" => "adafactor",
        "adafactor-momentum" => "adafactor-momentum",
        var o when o.StartsWith("flora") => "flora" + new string(o.Where(char.IsDigit).ToArray()),
        var o => o,
    };

    private static string ModelKey(string model) => model.ToLowerInvariant().Replace("gpt2-", "");

    public static string Markdown(TrainBenchReport ours, TorchBenchReport? torch)
    {
        var sb = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        sb.AppendLine($"Flora: {ours.Device}; precision {ours.Precision}; median of {ours.Steps} steps after {ours.Warmup}; {ours.Date}.");
        if (torch is not null) sb.AppendLine($"PyTorch (same run): {torch.Device}; {torch.Versions}.");
        sb.AppendLine();
        sb.AppendLine("| model | optimizer | LOMO | Flora ms/step | Flora tokens/s | MFU | Flora peak GiB (ledger / driver) | state MiB | PyTorch ms/step | PyTorch tokens/s | PyTorch peak GiB | speed-up |");
        sb.AppendLine("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in ours.Rows)
        {
            var t = torch?.Rows.FirstOrDefault(x => ModelKey(x.Model) == ModelKey(r.Model) && Key(x.Optimizer) == Key(r.Optimizer));
            sb.AppendLine(string.Create(c, $"| {r.Model} | {r.Optimizer} | {(r.Lomo ? "on" : "off")} | {r.MillisecondsPerStep:F1} | {r.TokensPerSecond:N0} | " +
                $"{(double.IsNaN(r.ModelFlopsUtilization) ? "-" : r.ModelFlopsUtilization.ToString("P1", c))} | {r.PeakLedgerBytes / 1073741824.0:F2} / {r.DriverUsedBytes / 1073741824.0:F2} | {r.OptimizerStateBytes / 1048576.0:F1} | " +
                $"{(t is null ? "-" : t.MillisecondsPerStep.ToString("F1", c))} | {(t is null ? "-" : t.TokensPerSecond.ToString("N0", c))} | {(t is null ? "-" : t.PeakGiB.ToString("F2", c))} | " +
                $"{(t is null ? "-" : (t.MillisecondsPerStep / r.MillisecondsPerStep).ToString("F2", c) + "x")} |"));
        }
        return sb.ToString();
    }
}
