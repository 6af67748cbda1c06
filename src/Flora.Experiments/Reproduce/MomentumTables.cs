using System.Globalization;
using Flora.Optim;
using Flora.Training;

namespace Flora.Experiments.Reproduce;

/// <summary>
/// Table 2: compressed momentum (Algorithm 2) when training from scratch, batch 4, beta 0.9, on Spanish-to-English
/// translation with a GPT-2-style model and an encoder-decoder (T5-style) model: None (Adafactor without momentum),
/// Naive (full momentum), LoRA(r) as the paper ran it (adapters on the attention and feed-forward matrices, which are
/// frozen; embeddings and vector weights train with naive momentum), Flora(r). LOMO in every arm, so memory
/// differences are optimizer state. The learning rate is swept for Naive (the grid extended until the best rate is
/// inside it) and reused for None and Flora; LoRA is swept separately at its largest rank. Every arm then runs with
/// <see cref="TextScale.Seeds"/> seeds. FLORA resamples every kappa steps: the paper's 1000 when the run lasts five of
/// them, else a fifth of the run (<see cref="TextScale.ScaledKappa"/>), and every table says how many resamplings each
/// FLORA arm made. Each of the paper's claims is judged on its own (<see cref="TextTables.CompressionClaims"/>).
/// </summary>
public sealed class Table2Reproduction : IReproduction
{
    /// <inheritdoc/>
    public string Name => "table2";
    public bool RunsArms => true;
    /// <inheritdoc/>
    public string Title => "compressed momentum from scratch, batch 4 (paper Table 2)";

    /// <inheritdoc/>
    public ReproductionSummary Run(ReproduceSettings s, IProgress<string>? log = null, CancellationToken cancel = default)
    {
        var scale = TextScale.For(s);
        string data = ArmRunner.EnsureData(s, log);
        string tokenizer = scale.PrepareTokenizer(s, data, log);
        var runner = new ArmRunner(s, log, cancel, scale.TestPairs, scale.MaxNewTokens) { SeedCount = scale.Seeds };
        var report = new ReproductionReport(s, Name, Title);
        report.AddMarkdown($"Setting: trained from scratch on Spanish-to-English verse pairs, batch 4, up to {scale.Steps} steps (early stopping after "
            + $"{(scale.EarlyStopPatience > 0 ? $"{scale.EarlyStopPatience} evaluations without a better validation loss" : "none")}), Adafactor (factored) with "
            + $"momentum beta 0.9, constant learning rate, no weight decay, LOMO in every arm; FLORA ({VariantName}) resamples every kappa = {scale.Kappa} steps "
            + $"(the paper's kappa: {TextScale.PaperKappa}{(scale.Kappa == TextScale.PaperKappa ? "" : "; scaled to a fifth of the run so that FLORA resamples")}). "
            + $"LoRA as the paper ran it: adapters on every attention and feed-forward matrix (frozen), token embeddings and vector weights trained with naive momentum. "
            + $"{scale.Seeds} seed(s) per arm (test loss: mean ± sample standard deviation). Model selection on validation loss every {scale.EvalEvery} steps "
            + $"({scale.EvalBatches * 4} validation pairs drawn at random with a fixed seed); test = {(scale.TestPairs > 0 ? scale.TestPairs.ToString(CultureInfo.InvariantCulture) : "all")} "
            + "test pairs drawn at random with a fixed seed, translated greedily. Mem = peak of the memory ledger, Δ_M against None, \"state\" = optimizer state.");
        var claims = new List<(string Family, ClaimList Claims)>();
        var csvRows = new List<(string, ArmResult)>();
        foreach (var (family, model, paper, paperScore) in new[]
        {
            ("gpt", scale.GptModel, PaperNumbers.Table2Gpt2, "BLEU (GPT-2 110M, IWSLT17)"),
            ("t5", scale.T5Model, PaperNumbers.Table2T5, "R1/R2/RL (T5 60M, XSum)"),
        })
        {
            if (!scale.Runs(s, family)) continue;
            int before = runner.All.Count;
            var rows = MomentumArms(runner, scale, s, model, tokenizer, data, family);
            var list = TextTables.CompressionClaims(model, rows, scale.Ranks, momentum: true);
            report.AddMarkdown($"### {model} ({family})");
            report.AddMarkdown(TextTables.RenderSeries(rows, rows[0], paper, paperScore, "state", r => r.OptimizerStateBytes));
            report.AddMarkdown(TextTables.ResamplingLine(rows.Where(r => r.Arm.Method == "Flora"), scale.Kappa) + ". " + SweepLine(runner, family));
            report.AddMarkdown(list.Markdown());
            report.WriteChart($"validation-{family}.svg", TextTables.Curves($"{Name}, {model}: validation loss", rows.Select(r => r.First)));
            claims.Add((model, list));
            csvRows.AddRange(runner.All.Skip(before).Select(r => (family, r)));
        }
        report.WriteCsv(TextTables.Csv(Name, csvRows));
        foreach (var r in runner.All) report.AddCommand(r.Command);
        string verdict = string.Join(" ", claims.Select(c => c.Claims.Verdict()));
        return report.Finish(verdict, claims.Count > 0 && claims.All(c => c.Claims.AllHold));
    }

    /// <summary>The FLORA variant every reproduction runs: the library's default.</summary>
    internal static FloraVariant Variant => new OptimizerSpec().Variant;

    internal static string VariantName => Variant == FloraVariant.Official
        ? "the official code's variant, the library's default: only the momentum's history compressed"
        : "Algorithm 2 as printed, the library's default";

    internal static string SweepLine(ArmRunner runner, string prefix) =>
        "Learning rates tried: " + string.Join("; ", runner.SweepNotes.Where(n => n.Key.StartsWith(prefix, StringComparison.Ordinal)).Select(n => $"{n.Key} {n.Value}")) + ".";

    /// <summary>The base options of a momentum arm: translation from scratch with batch 4 and LOMO, kappa scaled to the run.</summary>
    internal static TrainOptions Base(TextScale scale, ReproduceSettings s, string model, string tokenizer, string data, string name, float lr) =>
        scale.Translation(model, tokenizer, data, s.Seed, batch: 4, steps: scale.Steps) with
        {
            Lomo = true,
            Optimizer = new OptimizerSpec { Name = name, LearningRate = lr, Beta1 = 0.9f, Kappa = scale.Kappa, Variant = Variant, Seed = s.Seed },
        };

    /// <summary>None, Naive (swept), LoRA(r) (swept at the top rank), Flora(r), each with the scale's seeds: the rows of one Table 2 setting.</summary>
    internal static List<ArmSeries> MomentumArms(ArmRunner runner, TextScale scale, ReproduceSettings s, string model, string tokenizer, string data, string family)
    {
        Arm Naive(float lr) => new("Naive", 0, Base(scale, s, model, tokenizer, data, "adafactor-momentum", lr));
        Arm Lora(int r, float lr) => new("LoRA", r, Base(scale, s, model, tokenizer, data, "adafactor-momentum", lr) with { LoraRank = r, LoraMode = LoraMode.Paper });
        Arm Flora(int r, float lr)
        {
            var o = Base(scale, s, model, tokenizer, data, "flora", lr);
            return new("Flora", r, o with { Optimizer = o.Optimizer with { Rank = r } });
        }
        var naive = runner.Sweep(Naive, scale.NaiveGrid, $"{family}-naive", scale.GridExtensions);
        float best = naive.LearningRate;
        var none = runner.Run(new Arm("None", 0, Base(scale, s, model, tokenizer, data, "adafactor", best)), $"{family}-none");
        int top = scale.Ranks[^1];
        var loraTop = runner.Sweep(lr => Lora(top, lr), scale.LoraGrid, $"{family}-lora{top}", scale.GridExtensions);
        var firsts = new List<ArmResult> { none, naive };
        foreach (int r in scale.Ranks) firsts.Add(r == top ? loraTop : runner.Run(Lora(r, loraTop.LearningRate), $"{family}-lora{r}"));
        foreach (int r in scale.Ranks) firsts.Add(runner.Run(Flora(r, best), $"{family}-flora{r}"));
        return firsts.Select(f => runner.Seeds(f, $"{family}-{f.Arm.Label.ToLowerInvariant().Replace("(", "").Replace(")", "")}")).ToList();
    }
}

/// <summary>
/// Table 3: the resampling interval kappa of compressed momentum, the paper's kappa in {1, 10, 100, 1000, 10000}, on
/// the encoder-decoder setting of Table 2 at its largest rank, with the learning rate Table 2's protocol picks (swept
/// for Naive, which is also shown). Where the run is shorter than five of the paper's kappa = 1000, that interval is
/// scaled to a fifth of the run (the table prints both); an interval as long as the run never resamples, and its claim
/// is then "not tested".
/// </summary>
public sealed class Table3Reproduction : IReproduction
{
    /// <summary>The paper's intervals.</summary>
    public static readonly int[] Kappas = [1, 10, 100, 1000, 10000];
    /// <inheritdoc/>
    public string Name => "table3";
    public bool RunsArms => true;
    /// <inheritdoc/>
    public string Title => "the resampling interval kappa of compressed momentum (paper Table 3)";

    /// <inheritdoc/>
    public ReproductionSummary Run(ReproduceSettings s, IProgress<string>? log = null, CancellationToken cancel = default)
    {
        var scale = TextScale.For(s);
        string data = ArmRunner.EnsureData(s, log);
        string tokenizer = scale.PrepareTokenizer(s, data, log);
        var runner = new ArmRunner(s, log, cancel, scale.TestPairs, scale.MaxNewTokens) { SeedCount = scale.Seeds };
        string family = s.Models is { Count: > 0 } m ? m[0] : "t5";
        string model = family == "gpt" ? scale.GptModel : scale.T5Model;
        int rank = scale.Ranks[^1];
        var naiveFirst = runner.Sweep(lr => new Arm("Naive", 0, Table2Reproduction.Base(scale, s, model, tokenizer, data, "adafactor-momentum", lr)), scale.NaiveGrid, "naive", scale.GridExtensions);
        var naive = runner.Seeds(naiveFirst, "naive");
        var rows = new List<(int Paper, int Ours, ArmSeries Series)>();
        foreach (int paperKappa in s.Quick ? [1, 10, 1000] : Kappas)
        {
            int kappa = TextScale.ScaledKappa(paperKappa, scale.Steps);
            var o = Table2Reproduction.Base(scale, s, model, tokenizer, data, "flora", naive.First.LearningRate);
            var first = runner.Run(new Arm("Flora", rank, o with { Optimizer = o.Optimizer with { Rank = rank, Kappa = kappa } }), $"kappa{paperKappa}");
            rows.Add((paperKappa, kappa, runner.Seeds(first, $"kappa{paperKappa}")));
        }
        string Label(ArmSeries r) => r.Arm.Method == "Naive" ? "Naive" : $"kappa={rows.First(x => x.Series == r).Paper}";
        var report = new ReproductionReport(s, Name, Title);
        report.AddMarkdown($"Setting: {model} trained from scratch on the translation pairs as in Table 2 (up to {scale.Steps} steps, batch 4), Flora({rank}) momentum "
            + $"({Table2Reproduction.VariantName}) with kappa varied, learning rate {ArmRunner.Format(naive.First.LearningRate)} (Naive's best), {scale.Seeds} seed(s) per arm. "
            + $"The paper's kappa and ours: {string.Join(", ", rows.Select(r => r.Paper == r.Ours ? $"{r.Paper}" : $"{r.Paper} -> {r.Ours} (a fifth of the run)"))}. "
            + $"A run of {scale.Steps} steps resamples only when kappa < {scale.Steps}.");
        report.AddMarkdown(TextTables.RenderSeries([naive, .. rows.Select(r => r.Series)], null, PaperNumbers.Table3T5, "R1/R2/RL (T5 60M, XSum)", "state",
            r => r.OptimizerStateBytes, Label));
        report.AddMarkdown("resamplings per FLORA arm: " + string.Join(", ", rows.Select(r => $"kappa {r.Ours}: {(r.Series.Failed ? "diverged" : r.Series.Resamplings)}"))
            + " (an arm with 0 measured a fixed random projection; its claim is not tested). " + Table2Reproduction.SweepLine(runner, "naive"));
        report.WriteChart("validation.svg", TextTables.Curves($"{Name}: validation loss by kappa", [naive.First, .. rows.Select(r => r.Series.First)],
            r => r.Arm.Method == "Naive" ? "Naive" : $"kappa={r.Arm.Options.Optimizer.Kappa}"));
        report.WriteCsv(TextTables.Csv(Name, runner.All.Select(r => (family, r))));
        foreach (var r in runner.All) report.AddCommand(r.Command);

        // The paper: kappa of 1 or 10 fails (ROUGE 0), 100 to 10000 work (within a few tenths of Naive's ROUGE).
        var claims = new ClaimList();
        const double tolerance = 0.05, failure = 0.5;
        foreach (var (paperKappa, kappa, series) in rows)
        {
            string evidence = series.Failed ? $"diverged ({series.First.Failure})" : $"{ClaimList.Compare(series, naive)}; {series.Resamplings} resamplings";
            if (paperKappa <= 10)
                claims.Add($"kappa = {paperKappa} fails (diverges, or worse than Naive by more than {failure:0.0} nats)", evidence,
                    naive.Failed ? ClaimOutcome.NotTested : series.Failed || series.TestLoss > naive.TestLoss + failure ? ClaimOutcome.Holds : ClaimOutcome.Fails);
            else
                claims.Add($"kappa = {paperKappa}{(kappa != paperKappa ? $" (ours {kappa})" : "")} works (within {tolerance:0.00} nats of Naive)",
                    series.Resamplings == 0 && !series.Failed ? $"never resampled in {scale.Steps} steps: a fixed projection was measured; {ClaimList.Compare(series, naive)}" : evidence,
                    naive.Failed || series.Resamplings == 0 && !series.Failed ? ClaimOutcome.NotTested
                    : !series.Failed && series.TestLoss <= naive.TestLoss + tolerance ? ClaimOutcome.Holds : ClaimOutcome.Fails);
        }
        return report.Finish(claims.Verdict(), claims.AllHold);
    }
}

/// <summary>
/// Our own ablation, which decides the default FLORA variant: Algorithm 2 as printed (compress the update, decompress
/// the moving average) against the official PyTorch variant (only the history compressed: (1 - beta) u + beta
/// decompress(M)), each with its own learning-rate sweep (extended until the best rate is inside the grid) and the
/// scale's seeds, on Table 2's GPT setting with kappa a fifth of the run so that M is transferred to new projections
/// several times. Naive momentum at the better variant's rate is shown for reference.
/// </summary>
public sealed class AblationReproduction : IReproduction
{
    /// <inheritdoc/>
    public string Name => "ablation";
    public bool RunsArms => true;
    /// <inheritdoc/>
    public string Title => "Algorithm 2 as printed vs the official momentum variant (which becomes the default)";

    /// <inheritdoc/>
    public ReproductionSummary Run(ReproduceSettings s, IProgress<string>? log = null, CancellationToken cancel = default)
    {
        var scale = TextScale.For(s);
        string data = ArmRunner.EnsureData(s, log);
        string tokenizer = scale.PrepareTokenizer(s, data, log);
        var runner = new ArmRunner(s, log, cancel, scale.TestPairs, scale.MaxNewTokens) { SeedCount = scale.Seeds };
        string model = s.Models is { Count: > 0 } m && m[0] == "t5" ? scale.T5Model : scale.GptModel;
        int kappa = Math.Max(1, scale.Steps / 5);
        int rank = scale.Ranks[^1];
        var series = new Dictionary<FloraVariant, ArmSeries>();
        foreach (var variant in new[] { FloraVariant.Paper, FloraVariant.Official })
        {
            string method = variant == FloraVariant.Paper ? "Flora-paper" : "Flora-official";
            Arm Make(float lr)
            {
                var o = Table2Reproduction.Base(scale, s, model, tokenizer, data, "flora", lr);
                return new Arm(method, rank, o with { Optimizer = o.Optimizer with { Rank = rank, Kappa = kappa, Variant = variant } });
            }
            var first = runner.Sweep(Make, scale.NaiveGrid, variant.ToString().ToLowerInvariant(), scale.GridExtensions);
            series[variant] = runner.Seeds(first, variant.ToString().ToLowerInvariant());
        }
        var paper = series[FloraVariant.Paper];
        var official = series[FloraVariant.Official];
        var better = !official.Failed && (paper.Failed || official.TestLoss <= paper.TestLoss) ? official : paper;
        var naive = runner.Run(new Arm("Naive", 0, Table2Reproduction.Base(scale, s, model, tokenizer, data, "adafactor-momentum", better.First.LearningRate)), "naive");
        var rows = new List<ArmSeries> { new([naive]), paper, official };
        var report = new ReproductionReport(s, Name, Title);
        report.AddMarkdown($"Setting: {model} from scratch on the translation pairs, batch 4, up to {scale.Steps} steps, Adafactor with momentum beta 0.9, rank {rank}, "
            + $"kappa = {kappa} (a fifth of the run, so M is transferred to a new projection during the run), each variant with its own learning-rate sweep and "
            + $"{scale.Seeds} seed(s) at its best rate; same seeds for both variants (initialisation, data order, projections). Naive momentum (one seed) at the "
            + "better variant's rate for reference.");
        report.AddMarkdown(TextTables.RenderSeries(rows, null, [], "-", "state", r => r.OptimizerStateBytes));
        report.AddMarkdown(TextTables.ResamplingLine([paper, official], kappa) + ". " + Table2Reproduction.SweepLine(runner, ""));
        report.WriteChart("validation.svg", TextTables.Curves($"{Name}: validation loss", rows.Select(r => r.First)));
        report.WriteCsv(TextTables.Csv(Name, runner.All.Select(r => (model, r))));
        foreach (var r in runner.All) report.AddCommand(r.Command);

        string verdict;
        if (paper.Failed || official.Failed)
            verdict = $"Algorithm 2 as printed {ClaimList.Loss(paper)}, official {ClaimList.Loss(official)}: {(better == official ? "the official variant" : "Algorithm 2")} is the one that trained.";
        else
        {
            double gap = Math.Abs(paper.TestLoss - official.TestLoss);
            double spread = Math.Max(paper.TestLossSpread, official.TestLossSpread);
            verdict = $"r = {rank}: Algorithm 2 as printed {ClaimList.Loss(paper)} at lr {ArmRunner.Format(paper.First.LearningRate)}, official {ClaimList.Loss(official)} at lr "
                + $"{ArmRunner.Format(official.First.LearningRate)}: {(better == official ? "the official variant" : "Algorithm 2 as printed")} is better by {gap:F3} nats "
                + $"({(gap > 2 * spread ? "more than twice" : "not more than twice")} the larger seed spread, {spread:F3}); naive momentum {naive.TestLoss:F3}. "
                + $"The library's default is {(Table2Reproduction.Variant == FloraVariant.Official ? "the official variant" : "Algorithm 2 as printed")}.";
        }
        return report.Finish(verdict, !paper.Failed && !official.Failed);
    }
}
