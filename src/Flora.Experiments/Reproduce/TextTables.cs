using System.Globalization;
using System.Text;
using Flora.Reporting;

namespace Flora.Experiments.Reproduce;

/// <summary>Renders arms as the paper's tables (ours next to the paper's), as CSV and as validation-loss curves; judges the ordering.</summary>
public static class TextTables
{
    private static string F(double? v, string format) => v is double d && double.IsFinite(d) ? d.ToString(format, CultureInfo.InvariantCulture) : "-";

    /// <summary>
    /// One table of arms run with several seeds: memory of the first seed (the same for every seed), the state the
    /// method adds, trainable parameters, the learning rate, the resamplings FLORA made, the mean best validation loss,
    /// the test loss as mean ± sample standard deviation over the seeds, mean BLEU, ROUGE of the first seed; then the
    /// paper's memory, Delta_M and score for the same label.
    /// </summary>
    public static string RenderSeries(IReadOnlyList<ArmSeries> rows, ArmSeries? baseline, IReadOnlyList<PaperRow> paper, string paperScore,
        string stateName, Func<ArmResult, long> stateBytes, Func<ArmSeries, string>? label = null)
    {
        label ??= r => r.Label;
        var md = new StringBuilder();
        md.AppendLine($"| method | Mem (GiB) | Δ_M (MiB) | {stateName} (MiB) | trainable params | lr | resamplings | best val loss | test loss (mean ± sd) | BLEU | R1/R2/RL | paper Mem | paper Δ_M | paper {paperScore} |");
        md.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var series in rows)
        {
            var r = series.First;
            var p = PaperNumbers.Find(paper, label(series));
            string delta = baseline is null || series == baseline || r.Failed || baseline.First.Failed ? "-" : F((r.PeakBytes - baseline.First.PeakBytes) / 1048576.0, "0.0");
            string rouge = r.Rouge is { } g ? $"{100 * g.Rouge1.F:0.0}/{100 * g.Rouge2.F:0.00}/{100 * g.RougeL.F:0.0}" : "-";
            string resamplings = r.Arm.Method.StartsWith("Flora", StringComparison.Ordinal) || r.Arm.Options.Accumulation == Flora.Optim.AccumulationMode.Compressed
                ? series.Resamplings.ToString(CultureInfo.InvariantCulture) : "-";
            md.AppendLine(r.Failed
                ? $"| {label(series)} | - | - | - | - | {ArmRunner.Format(r.LearningRate)} | - | {r.Failure} | - | - | - | {p?.Memory} | {p?.DeltaM} | {p?.Score} |"
                : $"| {label(series)} | {ReproductionReport.GiB(r.PeakBytes)} | {delta} | {F(stateBytes(r) / 1048576.0, "0.00")} | {r.TrainableParameters:N0} | "
                + $"{ArmRunner.Format(r.LearningRate)} | {resamplings} | {F(series.BestValidationLoss, "0.000")} | {ClaimList.Loss(series)} | {F(series.Bleu, "0.00")} | {rouge} | "
                + $"{p?.Memory} | {p?.DeltaM} | {p?.Score} |");
        }
        return md.ToString();
    }

    /// <summary>"resamplings per FLORA arm: N" (the line every table carries), or each arm's count when they differ.</summary>
    public static string ResamplingLine(IEnumerable<ArmSeries> floraArms, int kappa, int paperKappa = 1000)
    {
        var arms = floraArms.ToList();
        var counts = arms.Select(a => a.Resamplings).Distinct().ToList();
        string n = counts.Count == 1 ? counts[0].ToString(CultureInfo.InvariantCulture)
            : string.Join(", ", arms.Select(a => $"{a.Label} {a.Resamplings}"));
        string kappas = kappa == paperKappa ? $"kappa = {kappa} (the paper's)" : $"kappa = {kappa} here, the paper's {paperKappa}";
        return $"resamplings per FLORA arm: {n} ({kappas}{(counts.Contains(0) ? "; an arm with 0 measured a fixed random projection, not FLORA, and its claims are not tested" : "")})";
    }

    /// <summary>
    /// The paper's claims for a compression table (Tables 1, 2 and 4), each judged on its own with test loss as the score
    /// (mean over the seeds): for every rank r, Flora(r) within <paramref name="tolerance"/> nats of Naive, Flora(r)
    /// better than LoRA(r), Flora(r) below Naive's peak memory; Flora at the top rank better than None; Flora's loss
    /// falling as r grows. A Flora arm that never drew a new projection leaves its quality claims untested. For the
    /// momentum tables a note says whether momentum itself helped at this length (None against Naive).
    /// </summary>
    public static ClaimList CompressionClaims(string setting, IReadOnlyList<ArmSeries> rows, IReadOnlyList<int> ranks, bool momentum, double tolerance = 0.05)
    {
        var claims = new ClaimList();
        ArmSeries? Find(string method, int rank) => rows.FirstOrDefault(r => r.Arm.Method == method && r.Arm.Rank == rank);
        var none = Find("None", 0);
        var naive = Find("Naive", 0);
        string tol = tolerance.ToString("0.00", CultureInfo.InvariantCulture);
        string prefix = setting.Length > 0 ? setting + ": " : "";
        if (none is not null && naive is not null && !none.Failed && !naive.Failed)
        {
            if (momentum)
                claims.Note(none.TestLoss <= naive.TestLoss
                    ? $"{prefix}momentum itself does not help at this length: None {ClaimList.Loss(none)} is no worse than Naive {ClaimList.Loss(naive)}, so no momentum method can be expected to beat None here."
                    : $"{prefix}momentum helps at this length: Naive {ClaimList.Loss(naive)} is better than None {ClaimList.Loss(none)}.");
            else
                claims.Note(none.TestLoss <= naive.TestLoss
                    ? $"{prefix}accumulation itself does not help here: None (batch 1, 16 times the updates) {ClaimList.Loss(none)} is no worse than Naive {ClaimList.Loss(naive)}."
                    : $"{prefix}accumulation helps here: Naive {ClaimList.Loss(naive)} is better than None {ClaimList.Loss(none)}.");
        }
        foreach (int rank in ranks)
        {
            var flora = Find("Flora", rank);
            var lora = Find("LoRA", rank);
            if (flora is null) continue;
            string untested = flora.Failed ? $"Flora({rank}) diverged" : flora.Resamplings == 0 ? $"Flora({rank}) never drew a new projection (0 resamplings): a fixed random projection was measured, not FLORA" : "";
            if (naive is not null)
                claims.Add($"{prefix}Flora({rank}) within {tol} nats of Naive (test loss)",
                    untested.Length > 0 ? untested : naive.Failed ? "Naive diverged" : ClaimList.Compare(flora, naive),
                    untested.Length > 0 || naive.Failed ? ClaimOutcome.NotTested : flora.TestLoss <= naive.TestLoss + tolerance ? ClaimOutcome.Holds : ClaimOutcome.Fails);
            if (lora is not null)
                claims.Add($"{prefix}Flora({rank}) better than LoRA({rank})",
                    untested.Length > 0 ? untested : ClaimList.Compare(flora, lora),
                    untested.Length > 0 ? ClaimOutcome.NotTested : lora.Failed || flora.TestLoss < lora.TestLoss ? ClaimOutcome.Holds : ClaimOutcome.Fails);
            if (naive is not null && !flora.First.Failed && !naive.First.Failed)
                claims.Add($"{prefix}Flora({rank}) uses less memory than Naive",
                    $"peak {ReproductionReport.GiB(flora.First.PeakBytes)} vs {ReproductionReport.GiB(naive.First.PeakBytes)} GiB",
                    flora.First.PeakBytes < naive.First.PeakBytes ? ClaimOutcome.Holds : ClaimOutcome.Fails);
        }
        var top = Find("Flora", ranks[^1]);
        if (top is not null && none is not null)
        {
            string untested = top.Failed ? "Flora diverged" : none.Failed ? "None diverged" : top.Resamplings == 0 ? $"Flora({ranks[^1]}) never drew a new projection" : "";
            claims.Add($"{prefix}Flora({ranks[^1]}) better than None", untested.Length > 0 ? untested : ClaimList.Compare(top, none),
                untested.Length > 0 ? ClaimOutcome.NotTested : top.TestLoss < none.TestLoss ? ClaimOutcome.Holds : ClaimOutcome.Fails);
        }
        var low = Find("Flora", ranks[0]);
        if (ranks.Count > 1 && top is not null && low is not null)
        {
            bool untested = top.Failed || low.Failed || top.Resamplings == 0 || low.Resamplings == 0;
            claims.Add($"{prefix}Flora's loss falls as r grows (r = {ranks[0]} to {ranks[^1]})", untested ? "an arm diverged or never resampled" : ClaimList.Compare(top, low),
                untested ? ClaimOutcome.NotTested : top.TestLoss < low.TestLoss ? ClaimOutcome.Holds : ClaimOutcome.Fails);
        }
        return claims;
    }

    /// <summary>Every run of an experiment (sweeps included), one CSV row each.</summary>
    public static CsvTable Csv(string experiment, IEnumerable<(string Setting, ArmResult Result)> runs)
    {
        var csv = new CsvTable("experiment", "setting", "method", "rank", "optimizer", "lr", "kappa", "variant", "accumulate", "tau", "lora", "lomo",
            "model", "steps", "batch", "seed", "best_val_loss", "best_step", "test_loss", "test_ppl", "bleu", "rouge1_f", "rouge2_f", "rougeL_f",
            "peak_bytes", "optimizer_state_bytes", "accumulator_peak_bytes", "gradient_peak_bytes", "resamplings", "trainable_parameters", "last_step",
            "sentence_bleu", "lora_mode", "seconds", "failure", "command");
        foreach (var (setting, r) in runs)
        {
            var o = r.Arm.Options;
            csv.AddRow(experiment, setting, r.Arm.Method, r.Arm.Rank, o.Optimizer.Name, r.LearningRate, o.Optimizer.Kappa, o.Optimizer.Variant,
                o.Accumulation, o.AccumulationSteps, o.LoraRank, o.Lomo, o.Model, o.Steps, o.BatchSize, o.Seed, r.BestValidationLoss, r.BestStep, r.TestLoss,
                r.TestPerplexity, r.Bleu?.Score, r.Rouge?.Rouge1.F, r.Rouge?.Rouge2.F, r.Rouge?.RougeL.F, r.PeakBytes, r.OptimizerStateBytes,
                r.AccumulatorPeakBytes, r.GradientPeakBytes, r.Resamplings, r.TrainableParameters, r.LastStep, r.SentenceBleu,
                o.LoraRank > 0 ? o.LoraMode.ToString() : null, r.Seconds, r.Failure, r.Command);
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
}
