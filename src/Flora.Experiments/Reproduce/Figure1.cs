using Flora.Data;
using Flora.Reporting;

namespace Flora.Experiments.Reproduce;

/// <summary>
/// Figure 1 (the pilot study, Section 2.3): a 768 x 768 layer of a Fashion-MNIST classifier trained by SGD, LoRA,
/// LoRA(B), RP and RRP with r = 8 and eta = 0.01, the rest of the network frozen. The paper's Figure 1 is a plot;
/// its finding is an ordering: RRP tracks SGD, RP coincides with LoRA(B) and stalls, LoRA lies between.
/// </summary>
public sealed class Figure1Reproduction : IReproduction
{
    public string Name => "figure1";
    public string Title => "the pilot study: SGD, LoRA, LoRA(B), RP, RRP on a 768 x 768 layer (paper Figure 1)";

    public ReproductionSummary Run(ReproduceSettings s, IProgress<string>? log = null, CancellationToken cancel = default)
    {
        var options = new PilotOptions
        {
            Steps = s.Steps ?? (s.Quick ? 60 : 2000),
            EvalEvery = s.Quick ? 30 : 100,
            Seed = s.Seed,
        };
        var train = FashionMnist.LoadTrain(FashionMnist.DefaultDirectory);
        var test = FashionMnist.LoadTest(FashionMnist.DefaultDirectory);
        if (s.Quick) test = test.Take(1000);
        log?.Report($"pilot study: {options.Steps} steps per variant on {train.Count} training images; test on {test.Count}");
        var output = RunOutput.Create(s.OutputDirectory);
        var (results, steps) = PilotStudy.Run(train, test, options, null,
            (done, soFar) =>
            {
                PilotReport.Write(output, options, done, soFar, FashionMnist.DefaultDirectory, s.CommandLine);
                log?.Report($"  {PilotStudy.DisplayName(done[^1].Variant)}: final train loss {done[^1].FinalTrainLoss:F4}, test accuracy {done[^1].TestAccuracy:P2}");
                cancel.ThrowIfCancellationRequested();
            });
        var report = new ReproductionReport(s, Name, Title);
        report.AddMarkdown($"Setting: {PilotStudy.DescribeNetwork(options)}; r = {options.Rank}, eta = {options.LearningRate}, batch {options.BatchSize}, "
            + $"{options.Steps} steps per variant, seed {options.Seed}. Final train loss = mean of the last {PilotStudy.FinalWindow(options.Steps)} steps. "
            + "Charts: figure1.svg (training loss, the paper's Figure 1), accuracy.svg.");
        var md = new System.Text.StringBuilder("| variant | final train loss | test accuracy | test loss | paper (Figure 1) |\n| --- | ---: | ---: | ---: | --- |\n");
        foreach (var r in results)
        {
            string paper = r.Variant switch
            {
                PilotVariant.Sgd => "lowest loss", PilotVariant.Rrp => "on top of SGD", PilotVariant.Rp => "on top of LoRA(B), stalls",
                PilotVariant.LoraB => "stalls (the same update as RP)", _ => "between SGD and LoRA(B)",
            };
            md.AppendLine($"| {PilotStudy.DisplayName(r.Variant)} | {r.FinalTrainLoss:F4} | {r.TestAccuracy:P2} | {r.TestLoss:F4} | {paper} |");
        }
        report.AddMarkdown(md.ToString());
        var csv = new CsvTable("variant", "final_train_loss", "test_accuracy", "test_loss", "train_seconds");
        foreach (var r in results) csv.AddRow(PilotStudy.DisplayName(r.Variant), r.FinalTrainLoss, r.TestAccuracy, r.TestLoss, r.TrainSeconds);
        report.WriteCsv(csv);
        string verdict = PilotStudy.OrderingVerdict(results, out bool holds) ?? "not judged";
        return report.Finish(verdict, holds);
    }
}
