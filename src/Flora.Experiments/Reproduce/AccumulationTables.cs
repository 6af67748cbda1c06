using Flora.Optim;
using Flora.Training;

namespace Flora.Experiments.Reproduce;

/// <summary>
/// Tables 1 and 4: compressed gradient accumulation (Algorithm 1) when fine-tuning. No pretrained weights can be
/// downloaded here, so the GPT of the scale is first pretrained with FLORA itself on a bilingual text, then
/// fine-tuned on Spanish-to-English translation with physical batch 1 and 16 accumulation steps: None (no
/// accumulation: 16 times the steps on the same examples), Naive (full-size buffers), LoRA(r) (adapters only),
/// Flora(r) (compressed accumulators). Every arm updates inside backward (LOMO) so that the memory differences
/// are exactly the accumulation storage. Learning rate swept for Naive and reused for None and Flora; LoRA swept
/// separately at its largest rank. Table 1 uses Adafactor (factored, the paper's base), Table 4 its unfactored,
/// linear-memory variant; the paper's Table 4 is T5 on XSum, ours is the same GPT as Table 1.
/// </summary>
public sealed class AccumulationReproduction(string name, bool unfactored) : IReproduction
{
    public const int Tau = 16;

    public string Name => name;
    public string Title => unfactored
        ? "linear-memory (unfactored) Adafactor with gradient accumulation (paper Table 4)"
        : "compressed gradient accumulation when fine-tuning, 16 steps of batch 1 (paper Table 1)";

    public ReproductionSummary Run(ReproduceSettings s, IProgress<string>? log = null, CancellationToken cancel = default)
    {
        var scale = TextScale.For(s);
        string data = ArmRunner.EnsureData(s, log);
        string tokenizer = scale.PrepareTokenizer(s, data, log);
        string pretrained = scale.Pretrained(s, data, tokenizer, log, cancel);
        var runner = new ArmRunner(s, log, cancel, scale.TestPairs, scale.MaxNewTokens);
        int steps = Math.Max(1, scale.FineTuneExamples / Tau);

        TrainOptions Base(float lr, int tau) =>
            scale.Translation(scale.GptModel, tokenizer, data, s.Seed, batch: 1, steps: tau == 1 ? steps * Tau : steps) with
            {
                InitFrom = pretrained, Lomo = true, EvalEvery = Math.Min(scale.EvalEvery, steps) * (tau == 1 ? Tau : 1),
                Optimizer = new OptimizerSpec { Name = "adafactor", LearningRate = lr, Factored = !unfactored, Seed = s.Seed },
            };
        Arm Naive(float lr) => new("Naive", 0, Base(lr, Tau) with { Accumulation = AccumulationMode.Naive, AccumulationSteps = Tau });
        Arm Lora(int r, float lr) => new("LoRA", r, Base(lr, Tau) with { Accumulation = AccumulationMode.Naive, AccumulationSteps = Tau, LoraRank = r });
        Arm Flora(int r, float lr) => new("Flora", r, Base(lr, Tau) with
        {
            Accumulation = AccumulationMode.Compressed, AccumulationSteps = Tau, AccumulationRank = r,
            Optimizer = Base(lr, Tau).Optimizer with { Rank = r },
        });

        var naive = runner.Sweep(Naive, scale.NaiveGrid, "naive");
        float lr = naive.LearningRate;
        var none = runner.Run(new Arm("None", 0, Base(lr, 1)), "none");
        int top = scale.Ranks[^1];
        var loraTop = runner.Sweep(lr2 => Lora(top, lr2), scale.LoraGrid, $"lora{top}");
        var rows = new List<ArmResult> { none, naive };
        foreach (int r in scale.Ranks) rows.Add(r == top ? loraTop : runner.Run(Lora(r, loraTop.LearningRate), $"lora{r}"));
        foreach (int r in scale.Ranks) rows.Add(runner.Run(Flora(r, lr), $"flora{r}"));

        var report = new ReproductionReport(s, Name, Title);
        report.AddMarkdown($"Setting: {scale.GptModel} pretrained here with FLORA for {scale.PretrainSteps} steps, then fine-tuned on Spanish-to-English verse pairs "
            + $"with batch 1 and tau = {Tau} ({steps} updates; None takes {steps * Tau} updates of one pair), Adafactor{(unfactored ? " unfactored (linear memory)" : "")}, "
            + $"constant learning rate, no weight decay, LOMO in every arm. Model selection on validation loss every {scale.EvalEvery} updates; "
            + $"test = the first {(scale.TestPairs > 0 ? scale.TestPairs.ToString() : "all")} test pairs translated greedily. Mem = peak of the memory ledger; "
            + "Δ_M against None; \"accumulation\" = peak bytes of accumulation buffers (naive) or compressed accumulators (Flora) and adapters' buffers (LoRA).");
        report.AddMarkdown(TextTables.Render(rows, none, unfactored ? PaperNumbers.Table4T5 : PaperNumbers.Table1Gpt2,
            unfactored ? "R1/R2/RL (T5, XSum)" : "BLEU (GPT-2, IWSLT17)", "accumulation", r => r.AccumulatorPeakBytes + r.GradientPeakBytes));
        report.WriteCsv(TextTables.Csv(Name, runner.All.Select(r => ("translate", r))));
        report.WriteChart("validation.svg", TextTables.Curves($"{Name}: validation loss while fine-tuning", rows));
        foreach (var r in runner.All) report.AddCommand(r.Command);
        var (text, holds) = TextTables.Ordering(Name, rows, top);
        return report.Finish(text, holds);
    }
}
