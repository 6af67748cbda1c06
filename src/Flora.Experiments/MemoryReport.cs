using System.Globalization;
using System.Text;
using System.Text.Json;
using Flora.Reporting;

namespace Flora.Experiments;

/// <summary>Writes a memory study's outputs: memory.json (the whole result) and memory.md (one markdown table per setting).</summary>
public static class MemoryReport
{
    public const string JsonFile = "memory.json";
    public const string MarkdownFile = "memory.md";

    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public static void Write(RunOutput output, MemoryStudyResult result)
    {
        output.WriteJson(JsonFile, result);
        output.WriteText(MarkdownFile, Markdown(result));
    }

    /// <summary>The result as JSON with <see cref="RunOutput.JsonOptions"/> (camelCase), as in memory.json.</summary>
    public static string Json(MemoryStudyResult result) => JsonSerializer.Serialize(result, RunOutput.JsonOptions);

    /// <summary>Title of a setting's table.</summary>
    public static string Title(MemorySetting setting) => setting == MemorySetting.Momentum
        ? "Momentum (paper Table 2 setting): optimizer state"
        : "Gradient accumulation (paper Table 1 setting): accumulation buffers";

    /// <summary>One line that states the model, rank, tau and eligible matrices.</summary>
    public static string Header(MemoryStudyResult r) => string.Format(Invariant,
        "{0}: {1:N0} parameters ({3:F1} MiB) in {2} tensors; r = {4}, tau = {5}; {6} of {7} matrices FLORA-eligible; Adafactor {8}",
        r.Model, r.Parameters, r.Tensors, Mib(r.ParameterBytes), r.Rank, r.AccumulationSteps, r.EligibleMatrices, r.Matrices,
        r.Factored ? "factored" : "unfactored");

    public static string Markdown(MemoryStudyResult r)
    {
        var md = new StringBuilder();
        md.AppendLine($"# Memory of optimizer state and gradient accumulation: {r.Model}").AppendLine();
        md.AppendLine(Header(r)).AppendLine();
        md.AppendLine("Measured = bytes held in the memory ledger after allocating the method for real; formula = computed from the shapes alone.").AppendLine();
        foreach (var setting in r.Rows.Select(x => x.Setting).Distinct())
        {
            md.AppendLine($"## {Title(setting)}").AppendLine();
            bool accumulation = setting == MemorySetting.Accumulation;
            string what = accumulation ? "accumulation" : "optimizer state";
            md.AppendLine($"| method | base | {what} bytes (measured) | formula bytes | match | MiB | x of naive | LoRA adapters (MiB) |{(accumulation ? " optimizer state (MiB) |" : "")} description |");
            md.AppendLine($"| --- | --- | ---: | ---: | :---: | ---: | ---: | ---: |{(accumulation ? " ---: |" : "")} --- |");
            foreach (var row in r.Rows.Where(x => x.Setting == setting))
            {
                var c = Cells(row);
                md.AppendLine($"| {c.Method} | {c.Base} | {c.Measured} | {c.Formula} | {c.Match} | {c.MiB} | {c.Ratio} | {c.Adapters} |{(accumulation ? $" {c.State} |" : "")} {row.Description} |");
            }
            md.AppendLine();
        }
        md.AppendLine(string.Format(Invariant, "{0} in {1:F1} s.", r.AllMatch ? "Every measurement equals its formula" : "SOME MEASUREMENTS DIFFER FROM THE FORMULA", r.Seconds));
        return md.ToString();
    }

    /// <summary>The text cells of one row, shared by the markdown and the console tables.</summary>
    public readonly record struct RowCells(string Method, string Base, string Measured, string Formula, string Match,
        string MiB, string Ratio, string Adapters, string State);

    public static RowCells Cells(MemoryRow row)
    {
        string b = row.Base == MemoryBase.Adafactor ? "Adafactor" : "AdamW";
        if (row.Primary is not { } p)
            return new RowCells(row.Label, b, "n/a", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a");
        return new RowCells(row.Label, b,
            p.Measured.ToString("N0", Invariant), p.Formula.ToString("N0", Invariant), row.Match ? "✓" : "✗",
            Mib(p.Measured).ToString("F2", Invariant),
            row.RatioToNaive is double x ? x.ToString("F3", Invariant) + "x" : "-",
            row.Adapters is { Measured: > 0 } a ? Mib(a.Measured).ToString("F2", Invariant) : "-",
            row.State is { } s ? Mib(s.Measured).ToString("F2", Invariant) : "-");
    }

    public static double Mib(long bytes) => bytes / (1024.0 * 1024.0);
}
