using Flora.Backends;
using Flora.Reporting;

namespace Flora.Experiments;

/// <summary>
/// Writes a Theorem 2.4 study's outputs: theorem24.csv (one row per (d, r)), theorem24.svg (max error
/// against r on log-log axes, one line per d, with the fitted theory c sqrt(ln d / r) dashed beside it)
/// and theorem24.json (settings, slopes, fitted constant, verdict and the grid).
/// </summary>
public static class TheoremReport
{
    public const string CsvFile = "theorem24.csv";
    public const string ChartFile = "theorem24.svg";
    public const string SummaryFile = "theorem24.json";

    public static void Write(RunOutput output, TheoremResult result, string command)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(result);
        double c = result.FittedConstant;

        var csv = new CsvTable("d", "r", "seeds", "max_error", "mean_error", "sqrt_ln_d_over_r", "ratio", "fitted_max_error",
            "theory_mean_error", "reconstruction_error", "theory_reconstruction_error");
        foreach (var p in result.Points)
            csv.AddRow(p.Dimension, p.Rank, p.Seeds, p.MaxError, p.MeanError, p.Scale, p.Ratio, c * p.Scale,
                p.TheoryMeanError, p.ReconstructionError, p.TheoryReconstructionError);
        output.WriteCsv(CsvFile, csv);

        output.WriteChart(ChartFile, Chart(result));

        string? verdict = TheoremStudy.SlopeVerdict(result, out bool holds);
        var o = result.Options;
        output.WriteJson(SummaryFile, new
        {
            experiment = "Theorem 2.4: element-wise error of A^T A for A (r, d) with N(0, 1/r) entries",
            command,
            options = new { dimensions = o.Dimensions, ranks = o.Ranks, o.Seeds, o.Seed, o.GradientRows },
            definitions = new
            {
                maxError = "max over all d^2 entries of |A^T A - I|, mean over seeds",
                meanError = "mean over all d^2 entries of |A^T A - I|, mean over seeds; theory sqrt(2/pi)/sqrt(r) (off-diagonal entries approach N(0, 1/r))",
                ratio = "maxError / sqrt(ln d / r); Theorem 2.4 says it stays bounded",
                slope = "least-squares slope of ln(maxError) against ln r for one d; theory -0.5",
                fittedConstant = "c = mean of the ratios over the grid, so that maxError is about c sqrt(ln d / r)",
                reconstructionError = $"||G A^T A - G||_F / ||G||_F for a fixed N(0, 1) matrix G ({o.GradientRows}, d), mean over seeds; theory sqrt((d + 1) / r)",
            },
            slopes = result.Slopes.Select(s => new { d = s.Dimension, slope = s.Slope }),
            slopeTolerance = TheoremStudy.SlopeTolerance,
            slopesHold = verdict is null ? (bool?)null : holds,
            fittedConstant = c,
            ratioRange = new { min = result.Points.Min(p => p.Ratio), max = result.Points.Max(p => p.Ratio) },
            verdict,
            seconds = result.Seconds,
            points = result.Points.Select(p => new
            {
                d = p.Dimension, r = p.Rank, p.Seeds, p.MaxError, p.MeanError, sqrtLnDOverR = p.Scale, p.Ratio,
                fittedMaxError = c * p.Scale, p.TheoryMeanError, p.ReconstructionError, p.TheoryReconstructionError,
            }),
        });
    }

    /// <summary>
    /// Max error against r, both axes log10, so that the theory's r^(-1/2) is a straight line: one solid
    /// line per d (measured) and a dashed one in the same colour (c sqrt(ln d / r)).
    /// </summary>
    public static SvgLineChart Chart(TheoremResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        double c = result.FittedConstant;
        string slopes = string.Join(", ", result.Slopes.Select(s => FormattableString.Invariant($"{s.Slope:F2} (d={s.Dimension})")));
        var chart = new SvgLineChart("Theorem 2.4: max |A^T A - I| falls like sqrt(ln d / r)", "rank r (log scale)", "max |A^T A - I| (log scale)")
        {
            Subtitle = FormattableString.Invariant(
                $"A (r, d) with N(0, 1/r) entries, mean of {result.Options.Seeds} seeds; dashed: c sqrt(ln d / r), c = {c:F2} fitted") +
                (slopes.Length > 0 ? $"; slopes {slopes}" : ""),
            LogX = true,
            LogY = true,
        };
        // Some room either side of the ranks, so that the end points do not sit on the frame.
        var ranks = result.Points.Select(p => p.Rank).ToList();
        chart.XMin = ranks.Min() / 2.0;
        chart.XMax = ranks.Max() * 2.0;
        // The y axis hugs the lines instead of running to whole decades: the log axis then labels 1-2-5 values.
        var values = result.Points.SelectMany(p => new[] { p.MaxError, c * p.Scale }).Where(v => v > 0 && double.IsFinite(v)).ToList();
        if (values.Count > 0)
        {
            chart.YMin = values.Min() / 1.25;
            chart.YMax = values.Max() * 1.25;
        }
        var dimensions = result.Points.Select(p => p.Dimension).Distinct().ToList();
        for (int i = 0; i < dimensions.Count; i++)
        {
            var cells = result.Points.Where(p => p.Dimension == dimensions[i]).OrderBy(p => p.Rank).ToList();
            chart.AddSeries($"d = {dimensions[i]}, measured", cells.Select(p => ((double)p.Rank, p.MaxError)).ToList(), colour: i);
        }
        for (int i = 0; i < dimensions.Count; i++)
        {
            var cells = result.Points.Where(p => p.Dimension == dimensions[i]).OrderBy(p => p.Rank).ToList();
            chart.AddSeries($"d = {dimensions[i]}, c sqrt(ln d / r)", cells.Select(p => ((double)p.Rank, c * p.Scale)).ToList(), dashed: true, colour: i);
        }
        return chart;
    }
}
