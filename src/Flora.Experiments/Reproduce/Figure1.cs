using System.Globalization;
using System.Text;
using Flora.Data;
using Flora.Reporting;

namespace Flora.Experiments.Reproduce;

/// <summary>
/// Figure 1 (the pilot study, Section 2.3): a 768 x 768 layer of a Fashion-MNIST classifier trained by SGD, LoRA,
/// LoRA(B), RP and RRP with r = 8 and eta = 0.01. The main figure follows the caption: the LoRA patch on the first
/// layer of the network (768 x 768: the image cut to its last 768 pixels), SGD on the full model (the other layers
/// train by SGD in every variant), A ~ N(0, 1/r), with the scale's seeds. The paper's three claims are judged one by
/// one: LoRA(B) is close to LoRA; LoRA(B) is identical to RP; RRP largely recovers SGD and clearly beats LoRA and
/// LoRA(B). A second table looks for the reason LoRA(B) can sit far from LoRA: the layer patched (first or middle),
/// the other layers (trained or frozen) and A's initialisation (N(0, 1/r) or the LoRA code's Kaiming-uniform), each
/// with SGD, LoRA and LoRA(B) on one seed.
/// </summary>
public sealed class Figure1Reproduction : IReproduction
{
    /// <inheritdoc/>
    public string Name => "figure1";
    /// <inheritdoc/>
    public string Title => "the pilot study: SGD, LoRA, LoRA(B), RP, RRP on a 768 x 768 layer (paper Figure 1)";

    /// <summary>The configurations of the investigation (layer patched, other layers, A's initialisation).</summary>
    public static readonly (PilotLayer Layer, PilotRest Others, PilotLoraInit Init)[] Investigation =
    [
        (PilotLayer.First, PilotRest.Trained, PilotLoraInit.Gaussian),
        (PilotLayer.First, PilotRest.Frozen, PilotLoraInit.Gaussian),
        (PilotLayer.Middle, PilotRest.Trained, PilotLoraInit.Gaussian),
        (PilotLayer.Middle, PilotRest.Frozen, PilotLoraInit.Gaussian),
        (PilotLayer.First, PilotRest.Trained, PilotLoraInit.KaimingUniform),
        (PilotLayer.Middle, PilotRest.Frozen, PilotLoraInit.KaimingUniform),
    ];

    /// <inheritdoc/>
    public ReproductionSummary Run(ReproduceSettings s, IProgress<string>? log = null, CancellationToken cancel = default)
    {
        int seeds = s.Seeds ?? (s.Quick ? 1 : 3);
        var options = new PilotOptions
        {
            Steps = s.Steps ?? (s.Quick ? 60 : 2000),
            EvalEvery = s.Quick ? 30 : 100,
            Seed = s.Seed,
            Layer = PilotLayer.First,
            Rest = PilotRest.Trained,
        };
        var train = FashionMnist.LoadTrain(FashionMnist.DefaultDirectory);
        var test = FashionMnist.LoadTest(FashionMnist.DefaultDirectory);
        if (s.Quick) test = test.Take(1000);
        log?.Report($"pilot study: {options.Steps} steps per variant on {train.Count} training images, {seeds} seed(s); test on {test.Count}");
        var output = RunOutput.Create(s.OutputDirectory);
        var bySeed = new List<IReadOnlyList<PilotVariantResult>>();
        for (int k = 0; k < seeds; k++)
        {
            var o = options with { Seed = s.Seed + (ulong)k };
            var (results, _) = PilotStudy.Run(train, test, o, null,
                (done, soFar) =>
                {
                    if (k == 0) PilotReport.Write(output, o, done, soFar, FashionMnist.DefaultDirectory, s.CommandLine);
                    log?.Report($"  seed {o.Seed}, {PilotStudy.DisplayName(done[^1].Variant)}: final train loss {done[^1].FinalTrainLoss:F4}, test accuracy {done[^1].TestAccuracy:P2}");
                    cancel.ThrowIfCancellationRequested();
                });
            bySeed.Add(results);
        }
        double Mean(PilotVariant v, Func<PilotVariantResult, double> f) => bySeed.Average(r => f(r.First(x => x.Variant == v)));
        double Sd(PilotVariant v) => ArmSeries.Spread(bySeed.Select(r => r.First(x => x.Variant == v).FinalTrainLoss).ToArray());

        var investigation = new List<((PilotLayer Layer, PilotRest Others, PilotLoraInit Init) Config, IReadOnlyList<PilotVariantResult> Results)>();
        foreach (var config in s.Quick ? Investigation[..2] : Investigation)
        {
            var o = options with { Layer = config.Layer, Rest = config.Others, LoraInit = config.Init, Variants = [PilotVariant.Sgd, PilotVariant.Lora, PilotVariant.LoraB] };
            var (results, _) = PilotStudy.Run(train, test, o);
            log?.Report($"  investigation {Describe(config)}: SGD {Loss(results, PilotVariant.Sgd):F4}, LoRA {Loss(results, PilotVariant.Lora):F4}, LoRA(B) {Loss(results, PilotVariant.LoraB):F4}");
            investigation.Add((config, results));
            cancel.ThrowIfCancellationRequested();
        }

        var report = new ReproductionReport(s, Name, Title);
        report.AddMarkdown($"Setting: {PilotStudy.DescribeNetwork(options)}; r = {options.Rank}, eta = {options.LearningRate}, batch {options.BatchSize}, "
            + $"{options.Steps} steps per variant, seeds {s.Seed} to {s.Seed + (ulong)seeds - 1} (mean ± sample standard deviation). Final train loss = mean of the last "
            + $"{PilotStudy.FinalWindow(options.Steps)} steps. Charts (first seed): figure1.svg (training loss, the paper's Figure 1), accuracy.svg.");
        var md = new StringBuilder("| variant | final train loss | test accuracy | test loss | paper (Figure 1) |\n| --- | ---: | ---: | ---: | --- |\n");
        foreach (var v in bySeed[0].Select(r => r.Variant))
        {
            string paper = v switch
            {
                PilotVariant.Sgd => "lowest loss", PilotVariant.Rrp => "close to SGD", PilotVariant.Rp => "identical to LoRA(B)",
                PilotVariant.LoraB => "close to LoRA", _ => "well above SGD and RRP",
            };
            md.AppendLine($"| {PilotStudy.DisplayName(v)} | {Mean(v, r => r.FinalTrainLoss):F4} ± {Sd(v):F4} | {Mean(v, r => r.TestAccuracy):P2} | {Mean(v, r => r.TestLoss):F4} | {paper} |");
        }
        report.AddMarkdown(md.ToString());
        report.AddMarkdown($"resamplings per FLORA arm: RRP (FLORA's resampled projection) draws a new projection at every step, {options.Steps - 1} in "
            + $"{options.Steps} steps; RP and LoRA(B) keep one projection throughout.");

        var inv = new StringBuilder("Where LoRA(B) sits relative to LoRA (one seed each, SGD, LoRA and LoRA(B) only; gap ratio = (LoRA(B) - LoRA) / (LoRA(B) - SGD): "
            + "0 means LoRA(B) is as good as LoRA, 1 means LoRA is as good as SGD while LoRA(B) is not):\n\n"
            + "| layer patched | other layers | A's initialisation | SGD | LoRA | LoRA(B) | LoRA(B) - LoRA | gap ratio |\n| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
        foreach (var (config, results) in investigation)
        {
            double sgd = Loss(results, PilotVariant.Sgd), lora = Loss(results, PilotVariant.Lora), loraB = Loss(results, PilotVariant.LoraB);
            inv.AppendLine($"| {config.Layer.ToString().ToLowerInvariant()} | {config.Others.ToString().ToLowerInvariant()} | {(config.Init == PilotLoraInit.Gaussian ? "N(0, 1/r)" : "Kaiming-uniform")} "
                + $"| {sgd:F4} | {lora:F4} | {loraB:F4} | {loraB - lora:F4} | {Ratio(lora, loraB, sgd)} |");
        }
        report.AddMarkdown(inv.ToString());

        var csv = new CsvTable("table", "layer", "rest", "lora_init", "seed", "variant", "final_train_loss", "test_accuracy", "test_loss", "train_seconds", "trainable_parameters");
        for (int k = 0; k < bySeed.Count; k++)
            foreach (var r in bySeed[k])
                csv.AddRow("figure", options.Layer, options.Rest, options.LoraInit, s.Seed + (ulong)k, PilotStudy.DisplayName(r.Variant), r.FinalTrainLoss, r.TestAccuracy, r.TestLoss, r.TrainSeconds, r.TrainableParameters);
        foreach (var (config, results) in investigation)
            foreach (var r in results)
                csv.AddRow("investigation", config.Layer, config.Others, config.Init, s.Seed, PilotStudy.DisplayName(r.Variant), r.FinalTrainLoss, r.TestAccuracy, r.TestLoss, r.TrainSeconds, r.TrainableParameters);
        report.WriteCsv(csv);

        var claims = Claims(v => Mean(v, r => r.FinalTrainLoss), Sd);
        report.AddMarkdown(claims.Markdown());
        return report.Finish(claims.Verdict(), claims.AllHold);
    }

    /// <summary>
    /// The paper's three claims on mean final training losses: (1) LoRA(B) close to LoRA (their gap under a quarter of
    /// LoRA(B)'s gap to SGD); (2) LoRA(B) identical to RP (within 0.005: the same update, Eq. 20, up to float rounding);
    /// (3) RRP largely recovers SGD and clearly beats LoRA, LoRA(B) and RP (below all three, and its gap to SGD under
    /// half of the best of them's).
    /// </summary>
    public static ClaimList Claims(Func<PilotVariant, double> loss, Func<PilotVariant, double> spread)
    {
        double sgd = loss(PilotVariant.Sgd), lora = loss(PilotVariant.Lora), loraB = loss(PilotVariant.LoraB), rp = loss(PilotVariant.Rp), rrp = loss(PilotVariant.Rrp);
        string L(PilotVariant v) => $"{loss(v):F4} ± {spread(v):F4}";
        var claims = new ClaimList();
        claims.Add("LoRA(B) is close to LoRA (gap under a quarter of LoRA(B)'s gap to SGD)",
            $"LoRA {L(PilotVariant.Lora)}, LoRA(B) {L(PilotVariant.LoraB)}, SGD {L(PilotVariant.Sgd)}; gap ratio {Ratio(lora, loraB, sgd)}",
            Math.Abs(loraB - lora) < 0.25 * Math.Abs(loraB - sgd) ? ClaimOutcome.Holds : ClaimOutcome.Fails);
        claims.Add("LoRA(B) is identical to RP (within 0.005)", $"LoRA(B) {L(PilotVariant.LoraB)}, RP {L(PilotVariant.Rp)}",
            Math.Abs(loraB - rp) < 0.005 ? ClaimOutcome.Holds : ClaimOutcome.Fails);
        double bestLowRank = Math.Min(lora, Math.Min(loraB, rp));
        claims.Add("RRP largely recovers SGD and clearly beats LoRA, LoRA(B) and RP (below all three; gap to SGD under half theirs)",
            $"RRP {L(PilotVariant.Rrp)}, SGD {L(PilotVariant.Sgd)}, best of LoRA/LoRA(B)/RP {bestLowRank:F4}",
            rrp < bestLowRank && rrp - sgd < 0.5 * (bestLowRank - sgd) ? ClaimOutcome.Holds : ClaimOutcome.Fails);
        return claims;
    }

    private static double Loss(IReadOnlyList<PilotVariantResult> results, PilotVariant v) => results.First(r => r.Variant == v).FinalTrainLoss;

    private static string Ratio(double lora, double loraB, double sgd) =>
        Math.Abs(loraB - sgd) < 1e-9 ? "-" : ((loraB - lora) / (loraB - sgd)).ToString("0.00", CultureInfo.InvariantCulture);

    private static string Describe((PilotLayer Layer, PilotRest Others, PilotLoraInit Init) c) =>
        $"{c.Layer.ToString().ToLowerInvariant()} layer, rest {c.Others.ToString().ToLowerInvariant()}, A {(c.Init == PilotLoraInit.Gaussian ? "N(0, 1/r)" : "Kaiming-uniform")}";
}
