using System.Globalization;
using System.Text;
using Flora.Reporting;

namespace Flora.Experiments.Reproduce;

/// <summary>Renders arms as the paper's tables (ours next to the paper's), as CSV and as validation-loss curves; judges the ordering.</summary>
public static class TextTables
{
    private static string F(double? v, string format) => v is double d && double.IsFinite(d) ? d.ToString(format, CultureInfo.InvariantCulture) : "-";

    /// <summary>
    /// One table: for each arm its peak memory (GiB), Delta_M against <paramref name="baseline"/>, the bytes the
    /// method adds (optimizer state, or accumulation buffers), the learning rate, best validation loss, test loss,
    /// BLEU and ROUGE-1/2/L of the best checkpoint; then the paper's memory, Delta_M and score for the same label.
    /// </summary>
    public static string Render(IReadOnlyList<ArmResult> rows, ArmResult? baseline, IReadOnlyList<PaperRow> paper, string paperScore,
        string stateName, Func<ArmResult, long> stateBytes, Func<ArmResult, string>? label = null)
    {
        label ??= r => r.Arm.Label;
        var md = new StringBuilder();
        md.AppendLine($"| method | Mem (GiB) | Δ_M (MiB) | {stateName} (MiB) | lr | best val loss | test loss | BLEU | R1/R2/RL | paper Mem | paper Δ_M | paper {paperScore} |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var r in rows)
        {
            var p = PaperNumbers.Find(paper, label(r));
            string delta = baseline is null || r == baseline || r.Failed || baseline.Failed ? "-" : F((r.PeakBytes - baseline.PeakBytes) / 1048576.0, "0.0");
            string rouge = r.Rouge is { } g ? $"{100 * g.Rouge1.F:0.0}/{100 * g.Rouge2.F:0.00}/{100 * g.RougeL.F:0.0}" : "-";
            md.AppendLine(r.Failed
                ? $"| {label(r)} | - | - | - | {ArmRunner.Format(r.LearningRate)} | {r.Failure} | - | - | - | {p?.Memory} | {p?.DeltaM} | {p?.Score} |"
                : $"| {label(r)} | {ReproductionReport.GiB(r.PeakBytes)} | {delta} | {F(stateBytes(r) / 1048576.0, "0.00")} | {ArmRunner.Format(r.LearningRate)} | "
                + $"{F(r.BestValidationLoss, "0.000")} | {F(r.TestLoss, "0.000")} | {F(r.Bleu?.Score, "0.00")} | {rouge} | {p?.Memory} | {p?.DeltaM} | {p?.Score} |");
        }
        return md.ToString();
    }

    /// <summary>Every run of an experiment (sweeps included), one CSV row each.</summary>
    public static CsvTable Csv(string experiment, IEnumerable<(string Setting, ArmResult Result)> runs)
    {
        var csv = new CsvTable("experiment", "setting", "method", "rank", "optimizer", "lr", "kappa", "variant", "accumulate", "tau", "lora", "lomo",
            "model", "steps", "batch", "seed", "best_val_loss", "best_step", "test_loss", "test_ppl", "bleu", "rouge1_f", "rouge2_f", "rougeL_f",
            "peak_bytes", "optimizer_state_bytes", "accumulator_peak_bytes", "gradient_peak_bytes", "seconds", "failure", "command");
        foreach (var (setting, r) in runs)
        {
            var o = r.Arm.Options;
            csv.AddRow(experiment, setting, r.Arm.Method, r.Arm.Rank, o.Optimizer.Name, r.LearningRate, o.Optimizer.Kappa, o.Optimizer.Variant,
                o.Accumulation, o.AccumulationSteps, o.LoraRank, o.Lomo, o.Model, o.Steps, o.BatchSize, o.Seed, r.BestValidationLoss, r.BestStep, r.TestLoss,
                r.TestPerplexity, r.Bleu?.Score, r.Rouge?.Rouge1.F, r.Rouge?.Rouge2.F, r.Rouge?.RougeL.F, r.PeakBytes, r.OptimizerStateBytes,
                r.AccumulatorPeakBytes, r.GradientPeakBytes, r.Seconds, r.Failure, r.Command);
        }
        return csv;
    }

    /// <summary>Validation loss against step for each arm of a table.</summary>
    public static SvgLineChart Curves(string title, IEnumerable<ArmResult> rows, Func<ArmResult, string>? label = null)
    {
        label ??= r => r.Arm.Label;
        var chart = new SvgLineChart(title, "step", "validation loss");
        foreach (var r in rows.Where(r => r.ValidationCurve.Count > 0))
            chart.AddSeries(label(r), r.ValidationCurve.Select(p => ((double)p.Step, p.Loss)).ToList());
        return chart;
    }

    /// <summary>
    /// The paper's ordering for a compression table: FLORA at the largest rank close to Naive (test loss within
    /// <paramref name="tolerance"/> nats, or better), better than LoRA at the same rank, at lower memory than Naive.
    /// </summary>
    public static (string Text, bool Holds) Ordering(string setting, IReadOnlyList<ArmResult> rows, int rank, double tolerance = 0.05)
    {
        var naive = rows.FirstOrDefault(r => r.Arm.Method == "Naive");
        var flora = rows.FirstOrDefault(r => r.Arm.Method == "Flora" && r.Arm.Rank == rank);
        var lora = rows.FirstOrDefault(r => r.Arm.Method == "LoRA" && r.Arm.Rank == rank);
        if (naive is null || flora is null || lora is null || naive.Failed || flora.Failed || naive.TestLoss is null || flora.TestLoss is null)
            return ($"{setting}: not judged (a run is missing or diverged).", false);
        double loraLoss = lora.TestLoss ?? double.PositiveInfinity;
        bool close = flora.TestLoss <= naive.TestLoss + tolerance;
        bool aboveLora = flora.TestLoss < loraLoss;
        bool lessMemory = flora.PeakBytes < naive.PeakBytes;
        bool holds = close && aboveLora && lessMemory;
        string text = $"{setting}: Flora({rank}) test loss {flora.TestLoss:F3} vs Naive {naive.TestLoss:F3} ({(close ? "close or better" : "worse by more than " + tolerance.ToString(CultureInfo.InvariantCulture))}), "
            + $"vs LoRA({rank}) {F(lora.TestLoss, "0.000")} ({(aboveLora ? "better" : "not better")}); memory {ReproductionReport.GiB(flora.PeakBytes)} vs Naive {ReproductionReport.GiB(naive.PeakBytes)} GiB "
            + $"({(lessMemory ? "lower" : "not lower")}); BLEU {F(flora.Bleu?.Score, "0.00")} / {F(naive.Bleu?.Score, "0.00")} / {F(lora.Bleu?.Score, "0.00")} (Flora / Naive / LoRA). "
            + (holds ? "The paper's ordering holds." : "The paper's ordering does not fully hold here.");
        return (text, holds);
    }
}
