using Flora.Reporting;

namespace Flora.Experiments;

/// <summary>
/// Writes a pilot study's outputs: metrics.csv, figure1.svg, accuracy.svg and summary.json, for the
/// variants finished so far (it is called after each one, so an interrupted run keeps what it did).
/// </summary>
public static class PilotReport
{
    public const string MetricsFile = "metrics.csv";
    public const string FigureFile = "figure1.svg";
    public const string AccuracyFile = "accuracy.svg";
    public const string SummaryFile = "summary.json";

    public static void Write(RunOutput output, PilotOptions options, IReadOnlyList<PilotVariantResult> results,
        IReadOnlyList<PilotStep> log, string dataDirectory, string command)
    {
        var csv = new CsvTable("variant", "step", "train_loss", "test_accuracy", "test_loss");
        foreach (var s in log)
            csv.AddRow(PilotStudy.DisplayName(s.Variant), s.Step, s.TrainLoss, s.TestAccuracy, s.TestLoss);
        output.WriteCsv(MetricsFile, csv);

        int window = Math.Max(1, Math.Min(25, options.Steps / 20));
        var loss = new SvgLineChart("Pilot study (paper Figure 1): training loss", "step", "training loss")
        {
            Subtitle = $"Fashion-MNIST, {options.Hidden}x{options.Hidden} layer, r = {options.Rank}, eta = {options.LearningRate}, " +
                       $"batch {options.BatchSize}, rest {options.Rest.ToString().ToLowerInvariant()}; mean of the last {window} steps",
        };
        var accuracy = new SvgLineChart("Pilot study: test accuracy", "step", "test accuracy")
        {
            Subtitle = $"Fashion-MNIST test set, evaluated every {options.EvalEvery} steps",
        };
        foreach (var variant in results.Select(r => r.Variant))
        {
            var steps = log.Where(s => s.Variant == variant).ToList();
            // RP and RRP are dashed: they lie on LoRA(B) and SGD respectively, which would hide them.
            bool dashed = variant is PilotVariant.Rp or PilotVariant.Rrp;
            loss.AddSeries(PilotStudy.DisplayName(variant), MovingAverage(steps.Where(s => s.TrainLoss is not null)
                .Select(s => (X: (double)s.Step, Y: s.TrainLoss!.Value)).ToList(), window), dashed);
            accuracy.AddSeries(PilotStudy.DisplayName(variant), steps.Where(s => s.TestAccuracy is not null)
                .Select(s => ((double)s.Step, s.TestAccuracy!.Value)).ToList(), dashed);
        }
        output.WriteChart(FigureFile, loss);
        output.WriteChart(AccuracyFile, accuracy);

        string? verdict = PilotStudy.OrderingVerdict(results, out bool holds);
        output.WriteJson(SummaryFile, new
        {
            experiment = "pilot (paper Figure 1)",
            command,
            dataDirectory,
            network = PilotStudy.DescribeNetwork(options),
            options = new
            {
                options.Steps, options.BatchSize, options.LearningRate, options.Rank, options.Hidden,
                options.EvalEvery, options.Seed, rest = options.Rest.ToString().ToLowerInvariant(),
            },
            finalTrainLoss = $"mean training loss of the last {PilotStudy.FinalWindow(options.Steps)} steps",
            variants = results.Select(r => new
            {
                variant = PilotStudy.DisplayName(r.Variant),
                finalTrainLoss = r.FinalTrainLoss,
                testAccuracy = r.TestAccuracy,
                testLoss = r.TestLoss,
                trainSeconds = r.TrainSeconds,
                trainableParameters = r.TrainableParameters,
                allocationsAfterFirstStep = r.AllocationsAfterFirstStep,
                peakBytes = r.Memory.PeakTotalBytes,
                peakBytesByTag = r.Memory.Tags.ToDictionary(t => t.Tag.ToString(), t => t.PeakBytes),
            }),
            ordering = verdict,
            orderingHolds = verdict is null ? (bool?)null : holds,
        });
    }

    /// <summary>Trailing mean over <paramref name="window"/> points, one output point per input point.</summary>
    public static List<(double X, double Y)> MovingAverage(IReadOnlyList<(double X, double Y)> points, int window)
    {
        var result = new List<(double, double)>(points.Count);
        double sum = 0;
        for (int i = 0; i < points.Count; i++)
        {
            sum += points[i].Y;
            if (i >= window) sum -= points[i - window].Y;
            result.Add((points[i].X, sum / Math.Min(i + 1, window)));
        }
        return result;
    }
}
