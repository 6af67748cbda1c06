using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Flora.Experiments;

/// <summary>One row of bench/torch_gpt2.py's JSON: eager PyTorch, or <paramref name="Compiled"/> with torch.compile(model).</summary>
public sealed record TorchBenchRow(string Model, string Optimizer, double MillisecondsPerStep, double TokensPerSecond, double PeakGiB, double StateMiB,
    bool Compiled = false);

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
        sb.AppendLine("| model | optimizer | LOMO | Flora ms/step | Flora tokens/s | MFU | Flora peak GiB (ledger / driver) | state MiB | PyTorch ms/step | PyTorch tokens/s | PyTorch peak GiB | speed-up | compiled ms/step | compiled tokens/s | compiled peak GiB | speed-up over compiled |");
        sb.AppendLine("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in ours.Rows)
        {
            var t = TorchRow(torch, r.Model, r.Optimizer, compiled: false);
            var tc = TorchRow(torch, r.Model, r.Optimizer, compiled: true);
            sb.AppendLine(string.Create(c, $"| {r.Model} | {r.Optimizer} | {(r.Lomo ? "on" : "off")} | {r.MillisecondsPerStep:F1} | {r.TokensPerSecond:N0} | " +
                $"{(double.IsNaN(r.ModelFlopsUtilization) ? "-" : r.ModelFlopsUtilization.ToString("P1", c))} | {r.PeakLedgerBytes / 1073741824.0:F2} / {r.DriverUsedBytes / 1073741824.0:F2} | {r.OptimizerStateBytes / 1048576.0:F1} | " +
                $"{TorchCells(t, r, c)} | {TorchCells(tc, r, c)} |"));
        }
        sb.AppendLine();
        foreach (string model in ours.Rows.Select(r => r.Model).Distinct()) Targets(sb, c, model, ours.Rows.Where(r => r.Model == model).ToList(), torch);
        LargeModelTargets(sb, c, ours.Rows.Where(r => r.Weights == "bf16").ToList(), torch);
        return sb.ToString();
    }

    /// <summary>
    /// Issue 12's targets for rows with bf16 weights (the 1B to 7B Llama shapes): the peak against 24 GiB (stretch 20 GiB)
    /// for the 7B shape, and tokens/s against the fastest PyTorch configuration of the same model that fitted on the card.
    /// </summary>
    private static void LargeModelTargets(StringBuilder sb, CultureInfo c, List<TrainBenchRow> rows, TorchBenchReport? torch)
    {
        if (rows.Count == 0) return;
        sb.AppendLine("bf16 weights (issue 12):");
        foreach (var r in rows)
        {
            double ledger = r.PeakLedgerBytes / 1073741824.0, driver = r.DriverUsedBytes / 1073741824.0;
            string parts = r.PeakByTag is null ? "" : " (" + string.Join(", ", r.PeakByTag.Where(kv => kv.Value > 0).Select(kv => string.Create(c, $"{kv.Key} {kv.Value / 1073741824.0:F2}"))) + ")";
            string memory = string.Create(c, $"- {r.Model}, {r.Optimizer}{(r.Lomo ? ", LOMO" : "")}{(r.Checkpointing ? ", checkpointing" + (r.CheckpointedBlocks > 0 && r.CheckpointedBlocks < r.Blocks ? $" {r.CheckpointedBlocks} of {r.Blocks} blocks" : "") : "")}: peak {ledger:F2} GiB (ledger){parts}, {driver:F2} GiB (driver)");
            if (r.Model.Contains("7b", StringComparison.OrdinalIgnoreCase))
                memory += string.Create(c, $"; target under 24 GiB: {(driver > 0 && driver < 24 && ledger < 24 ? "met" : "NOT met")}, stretch under 20 GiB: {(driver > 0 && driver < 20 && ledger < 20 ? "met" : "not met")}");
            sb.AppendLine(memory + ".");
            var fastest = torch?.Rows.Where(t => ModelKey(t.Model) == ModelKey(r.Model)).OrderByDescending(t => t.TokensPerSecond).FirstOrDefault();
            sb.AppendLine(fastest is null
                ? $"  {r.TokensPerSecond.ToString("N0", c)} tokens/s; no PyTorch configuration of {r.Model} was measured (or none fitted)."
                : string.Create(c, $"  {r.TokensPerSecond:N0} tokens/s against PyTorch's fastest that fitted, {fastest.Optimizer}{(fastest.Compiled ? " compiled" : "")} at {fastest.TokensPerSecond:N0} ({fastest.PeakGiB:F2} GiB): {r.TokensPerSecond / fastest.TokensPerSecond:F2}x (target at least 1x)."));
        }
        sb.AppendLine();
    }

    private static TorchBenchRow? TorchRow(TorchBenchReport? torch, string model, string optimizer, bool compiled) =>
        torch?.Rows.FirstOrDefault(x => ModelKey(x.Model) == ModelKey(model) && Key(x.Optimizer) == Key(optimizer) && x.Compiled == compiled);

    /// <summary>"ms | tokens/s | peak | speed-up" of a PyTorch row next to ours, or dashes.</summary>
    private static string TorchCells(TorchBenchRow? t, TrainBenchRow r, CultureInfo c) => t is null ? "- | - | - | -"
        : string.Create(c, $"{t.MillisecondsPerStep:F1} | {t.TokensPerSecond:N0} | {t.PeakGiB:F2} | {t.MillisecondsPerStep / r.MillisecondsPerStep:F2}x");

    /// <summary>The targets of the CUDA issue, read off one model's rows: speed against PyTorch, FLORA's cost over Adafactor, memory.</summary>
    private static void Targets(StringBuilder sb, CultureInfo c, string model, List<TrainBenchRow> rows, TorchBenchReport? torch)
    {
        TrainBenchRow? Row(string optimizer, bool lomo) => rows.FirstOrDefault(r => Key(r.Optimizer) == Key(optimizer) && r.Lomo == lomo);
        TorchBenchRow? Torch(string optimizer) => TorchRow(torch, model, optimizer, compiled: false);
        TorchBenchRow? Compiled(string optimizer) => TorchRow(torch, model, optimizer, compiled: true);
        sb.AppendLine($"{model}:");
        if (Row("flora r=256", false) is { } fc && Compiled("adamw") is { } adamwCompiled)
            sb.AppendLine(string.Create(c, $"- Flora r=256 {fc.TokensPerSecond:N0} tokens/s against compiled PyTorch's fused AdamW {adamwCompiled.TokensPerSecond:N0}: {fc.TokensPerSecond / adamwCompiled.TokensPerSecond:F2}x (target at least 1.3x)."));
        if (Row("flora r=256", false) is { } fm && Compiled("flora r=256") is { } floraCompiled)
            sb.AppendLine(string.Create(c, $"- Flora r=256 peak {fm.PeakLedgerBytes / 1073741824.0:F2} GiB against compiled PyTorch's FLORA r=256 {floraCompiled.PeakGiB:F2} GiB: {fm.PeakLedgerBytes / 1073741824.0 / floraCompiled.PeakGiB:F2}x (target at most 0.8x)."));
        if (Compiled("adamw") is { } compiledAdamw)
            foreach (var r in rows.Where(r => !r.Lomo))
                sb.AppendLine(string.Create(c, $"- {r.Optimizer}: peak {r.PeakLedgerBytes / 1073741824.0:F2} GiB against compiled PyTorch AdamW's {compiledAdamw.PeakGiB:F2} GiB ({(r.PeakLedgerBytes / 1073741824.0 < compiledAdamw.PeakGiB ? "below" : "NOT below")})."));
        if (Row("flora r=256", false) is { } flora && Torch("adamw") is { } adamw)
            sb.AppendLine(string.Create(c, $"- Flora r=256 {flora.TokensPerSecond:N0} tokens/s against PyTorch's fused AdamW {adamw.TokensPerSecond:N0}: {flora.TokensPerSecond / adamw.TokensPerSecond:F2}x (target at least 1x, stretch 2x)."));
        foreach (bool lomo in new[] { false, true })
            if (Row("flora r=256", lomo) is { } f && Row("adafactor", lomo) is { } a)
                sb.AppendLine(string.Create(c, $"- Flora r=256 step over Adafactor's (no momentum){(lomo ? ", both with LOMO" : "")}: {f.MillisecondsPerStep:F1} / {a.MillisecondsPerStep:F1} ms = {f.MillisecondsPerStep / a.MillisecondsPerStep:F3} (target at most 1.05)."));
        foreach (var r in rows.Where(r => !r.Lomo))
            if (Torch(r.Optimizer) is { } t)
            {
                double ours = r.PeakLedgerBytes / 1073741824.0, lomoPeak = Row(r.Optimizer, true) is { } l ? l.PeakLedgerBytes / 1073741824.0 : double.NaN;
                double gradients = r.Parameters * 4.0 / 1073741824.0;
                string withLomo = double.IsNaN(lomoPeak) ? "."
                    : string.Create(c, $"; with LOMO {lomoPeak:F2} GiB, {t.PeakGiB - lomoPeak:F2} GiB below PyTorch, gradients are {gradients:F2} GiB ({(t.PeakGiB - lomoPeak >= gradients ? "met" : "NOT met")}).");
                sb.AppendLine(string.Create(c, $"- {r.Optimizer}: peak {ours:F2} GiB against PyTorch's {t.PeakGiB:F2} GiB ({(ours < t.PeakGiB ? "below" : "NOT below")})") + withLomo);
            }
        sb.AppendLine();
    }
}
