using Flora.Optim;
using Flora.Training;

namespace Flora.Experiments.Reproduce;

/// <summary>
/// Tables 1 and 4: compressed gradient accumulation (Algorithm 1) when fine-tuning. No pretrained weights can be
/// downloaded here, so the GPT of the scale is first pretrained with FLORA itself on a bilingual text, then
/// fine-tuned on Spanish-to-English translation with physical batch 1 and 16 accumulation steps: None (no
/// accumulation: 16 times the steps on the same examples), Naive (full-size buffers), LoRA(r) as the paper ran it
/// (adapters on the attention and feed-forward matrices, embeddings and vector weights trained too), Flora(r)
/// (compressed accumulators, a new projection after every update). Every arm runs with the scale's seeds and each of
/// the paper's claims is judged on its own. Every arm updates inside backward (LOMO) so that the memory differences
/// are exactly the accumulation storage. Learning rate swept for Naive and reused for None and Flora; LoRA swept
/// separately at its largest rank. Table 1 uses Adafactor (factored, the paper's base), Table 4 its unfactored,
/// linear-memory variant; the paper's Table 4 is T5 on XSum, ours is the same GPT as Table 1.
/// </summary>
public sealed class AccumulationReproduction(string name, bool unfactored) : IReproduction
{
    public const int Tau = 16;

    public string Name => name;
    public bool RunsArms => true;
    public string Title => unfactored
        ? "linear-memory (unfactored) Adafactor with gradient accumulation (paper Table 4)"
        : "compressed gradient accumulation when fine-tuning, 16 steps of batch 1 (paper Table 1)";

    public ReproductionSummary Run(ReproduceSettings s, IProgress<string>? log = null, CancellationToken cancel = default)
    {
        var scale = TextScale.For(s);
        string data = ArmRunner.EnsureData(s, log);
        string tokenizer = scale.PrepareTokenizer(s, data, log);
        string pretrained = scale.Pretrained(s, data, tokenizer, log, cancel);
        var runner = new ArmRunner(s, log, cancel, scale.TestPairs, scale.MaxNewTokens) { SeedCount = scale.Seeds };
        int steps = Math.Max(1, scale.FineTuneExamples / Tau);

        TrainOptions Base(float lr, int tau) =>
            scale.Translation(scale.GptModel, tokenizer, data, s.Seed, batch: 1, steps: tau == 1 ? steps * Tau : steps) with
            {
                InitFrom = pretrained, Lomo = true, EvalEvery = Math.Min(scale.EvalEvery, steps) * (tau == 1 ? Tau : 1),
                Optimizer = new OptimizerSpec { Name = "adafactor", LearningRate = lr, Factored = !unfactored, Seed = s.Seed },
            };
        Arm Naive(float lr) => new("Naive", 0, Base(lr, Tau) with { Accumulation = AccumulationMode.Naive, AccumulationSteps = Tau });
        Arm Lora(int r, float lr) => new("LoRA", r, Base(lr, Tau) with { Accumulation = AccumulationMode.Naive, AccumulationSteps = Tau, LoraRank = r, LoraMode = LoraMode.Paper });
        Arm Flora(int r, float lr) => new("Flora", r, Base(lr, Tau) with
        {
            Accumulation = AccumulationMode.Compressed, AccumulationSteps = Tau, AccumulationRank = r,
            Optimizer = Base(lr, Tau).Optimizer with { Rank = r },
        });

        var naive = runner.Sweep(Naive, scale.NaiveGrid, "naive", scale.GridExtensions);
        float lr = naive.LearningRate;
        var none = runner.Run(new Arm("None", 0, Base(lr, 1)), "none");
        int top = scale.Ranks[^1];
        var loraTop = runner.Sweep(lr2 => Lora(top, lr2), scale.LoraGrid, $"lora{top}", scale.GridExtensions);
        var firsts = new List<ArmResult> { none, naive };
        foreach (int r in scale.Ranks) firsts.Add(r == top ? loraTop : runner.Run(Lora(r, loraTop.LearningRate), $"lora{r}"));
        foreach (int r in scale.Ranks) firsts.Add(runner.Run(Flora(r, lr), $"flora{r}"));
        var rows = firsts.Select(f => runner.Seeds(f, f.Arm.Label.ToLowerInvariant().Replace("(", "").Replace(")", ""))).ToList();

        var report = new ReproductionReport(s, Name, Title);
        report.AddMarkdown($"Setting: {scale.GptModel} pretrained here with FLORA for {scale.PretrainSteps} steps, then fine-tuned on Spanish-to-English verse pairs "
            + $"with batch 1 and tau = {Tau} ({steps} updates; None takes {steps * Tau} updates of one pair), Adafactor{(unfactored ? " unfactored (linear memory)" : "")}, "
            + $"constant learning rate, no weight decay, LOMO in every arm. Model selection on validation loss every {scale.EvalEvery} updates; "
            + $"test = {(scale.TestPairs > 0 ? scale.TestPairs.ToString(System.Globalization.CultureInfo.InvariantCulture) : "all")} test pairs drawn at random with a fixed seed, "
            + $"translated greedily; {scale.Seeds} seed(s) per arm (test loss: mean ± sample standard deviation). LoRA as the paper ran it: adapters on every attention "
            + "and feed-forward matrix, embeddings and vector weights trained too. Mem = peak of the memory ledger; "
            + "Δ_M against None; \"accumulation\" = peak bytes of accumulation buffers (naive) or compressed accumulators (Flora) and gradient buffers.");
        report.AddMarkdown(TextTables.RenderSeries(rows, rows[0], unfactored ? PaperNumbers.Table4T5 : PaperNumbers.Table1Gpt2,
            unfactored ? "R1/R2/RL (T5, XSum)" : "BLEU (GPT-2, IWSLT17)", "accumulation", r => r.AccumulatorPeakBytes + r.GradientPeakBytes));
        var floraRows = rows.Where(r => r.Arm.Method == "Flora").ToList();
        report.AddMarkdown($"resamplings per FLORA arm: {string.Join(", ", floraRows.Select(r => r.Resamplings).Distinct())} (compressed accumulation draws a new "
            + $"projection after every update of {Tau} micro-batches). " + Table2Reproduction.SweepLine(runner, ""));
        var claims = TextTables.CompressionClaims("", rows, scale.Ranks, momentum: false);
        report.AddMarkdown(claims.Markdown());
        report.WriteCsv(TextTables.Csv(Name, runner.All.Select(r => ("translate", r))));
        report.WriteChart("validation.svg", TextTables.Curves($"{Name}: validation loss while fine-tuning", rows.Select(r => r.First)));
        foreach (var r in runner.All) report.AddCommand(r.Command);
        return report.Finish(claims.Verdict(), claims.AllHold);
    }
}
