using System.Diagnostics;
using System.Globalization;
using System.Text;
using Flora.Backends;
using Flora.Backends.Cuda;
using Flora.Data;
using Flora.Data.Corpora;
using Flora.Data.Tokenizers;
using Flora.Optim;
using Flora.Reporting;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Experiments.Reproduce;

/// <summary>One configuration of the profile: a method, with or without activation checkpointing + LOMO (panel b).</summary>
public sealed record ProfileConfig(string Method, bool Efficient, int Rank)
{
    public string Label => (Method switch { "Adam" => "Adam", var m => $"{m}({Rank})" }) + (Efficient ? " + AC + LOMO" : "");
    public string Panel => Efficient ? "b" : "a";
    /// <summary>A file-name friendly name: adam, lora, flora, adam-ac-lomo, ...</summary>
    public string Slug => Method.ToLowerInvariant() + (Efficient ? "-ac-lomo" : "");
}

/// <summary>What one configuration measured: its memory timeline, the ledger's peak, optimizer state, or why it could not run.</summary>
public sealed record ProfileResult(
    ProfileConfig Config, MemoryTimeline? Timeline, MemorySnapshot? Ledger, long OptimizerStateBytes, long TrainableParameters,
    double StepSeconds, long? ReservedBytes, string? Failure)
{
    public bool Failed => Failure is not null;
    /// <summary>Bytes of <paramref name="tag"/> at the moment of the total peak.</summary>
    public long AtPeak(MemoryTag tag) => Timeline?.AtPeak[tag] ?? 0;
    public long PeakTotal => Timeline?.PeakTotal ?? 0;
}

/// <summary>
/// Figure 2 of the paper (Appendix C.3): the memory of a few training steps of a T5 model (padded sequences, batch 4)
/// by category, for Adam, LoRA and FLORA (panel a) and the same with activation checkpointing and LOMO (panel b).
/// Each configuration is a real <see cref="Trainer"/> run; a <see cref="MemoryTimeline"/> attached to the backend's
/// ledger records the bytes per <see cref="MemoryTag"/> after every allocation and free. Outputs: one stacked-area
/// SVG per configuration, both panels in figure2.svg, the breakdown at each peak as a bar chart (peaks.svg), a table
/// and results.csv.
/// </summary>
public sealed class Figure2 : IReproduction
{
    public string Name => "figure2";

    /// <summary>The profiles of the last <see cref="Run"/> (for tests and callers that want more than the files).</summary>
    public IReadOnlyList<ProfileResult> Results { get; private set; } = [];
    public string Title => "Memory profile by category over a few T5 training steps (Adam, LoRA, FLORA; then with activation checkpointing and LOMO), from the memory ledger";

    /// <summary>Sizes of one scale. Sources are padded to <see cref="SourceTokens"/>, decoder inputs to <see cref="TargetTokens"/>.</summary>
    public sealed record ProfileScale(string Model, string FallbackModel, int SourceTokens, int TargetTokens, int Batch, int Steps, int Rank, string Tokenizer, int TokenizerPairs);

    public static ProfileScale ScaleOf(ReproduceSettings s) =>
        s.Quick ? new("t5-tiny", "gpt-tiny", 64, 16, 4, 2, 8, "bpe:512", 2000)
        : s.Scale == ReproductionScale.Paper ? new("t5-small-size", "gpt2-124m", 512, 128, 4, 4, 32, "gpt2", 0)
        : new("t5-small", "gpt-small", 512, 128, 4, 4, 16, "bpe:2048", 6000);

    /// <summary>The six configurations: (a) Adam, LoRA(r), FLORA(r); (b) the same with activation checkpointing and LOMO.</summary>
    public static IReadOnlyList<ProfileConfig> Configs(int rank) =>
        [.. new[] { false, true }.SelectMany(efficient => new[] { "Adam", "LoRA", "FLORA" }.Select(m => new ProfileConfig(m, efficient, rank)))];

    /// <summary>
    /// The optimizer of each method. FLORA is the paper's optimizer: Adafactor (factored second moment) with FLORA's
    /// compressed momentum, trained on full gradients; see <see cref="FloraChoice"/>.
    /// </summary>
    public static OptimizerSpec OptimizerOf(ProfileConfig c, ulong seed) => c.Method switch
    {
        "FLORA" => new OptimizerSpec { Name = "flora", LearningRate = OptimizerSpec.DefaultLearningRate("flora"), Rank = c.Rank, Seed = Seeds.Derive(seed, 11) },
        _ => new OptimizerSpec { Name = "adamw", LearningRate = 1e-3f, WeightDecay = 0f },   // Adam: AdamW without weight decay
    };

    public const string FloraChoice =
        "FLORA here is the paper's optimizer: Adafactor with a factored second moment and FLORA's compressed momentum (Algorithm 2, " +
        "optimizer `flora`), on full-size gradients with no accumulation. That is the configuration the paper's description of Figure 2 " +
        "fits: its optimizer state is small (like LoRA's) while it keeps a gradient for every weight (\"FLORA uses a larger gradient storage\" " +
        "than LoRA, whose gradients exist only for the adapters). Compressed accumulation (Algorithm 1) would instead replace the gradient " +
        "buffers by small accumulators, and `adamw-flora` would keep Adam's full-size second moment, so neither matches the figure. " +
        "Adam and LoRA use Adam (AdamW with weight decay 0); LoRA wraps every attention and feed-forward projection and trains only the adapters "
        + "(`--lora-adapters-only`): the paper's Figure 2 shows LoRA with a negligible optimizer state, which a LoRA that also trained the 32k x 512 "
        + "embedding with Adam (the paper's LoRA baseline of Tables 1 to 4) would not have.";

    public ReproductionSummary Run(ReproduceSettings settings, IProgress<string>? log = null, CancellationToken cancel = default)
    {
        var clock = Stopwatch.StartNew();
        var scale = ScaleOf(settings);
        var report = new ReproductionReport(settings, Name, Title);

        // Data: the prepared Bible pairs (prepared here when missing), else the embedded English corpus (decoder-only LM).
        var (prepared, dataNote) = OpenOrPrepare(settings, log);
        bool translate = prepared is not null;
        var trainPairs = prepared?.ReadPairs(CorpusSplit.Train) ?? [];

        // Tokenizer: a BPE trained once on the first pairs (or on the corpus), shared by every configuration.
        string tokenizerSpec = PrepareTokenizer(scale, report.PathOf("tokenizer"), trainPairs, log);
        var tokenizer = tokenizerSpec == "gpt2" ? ByteLevelBpe.Gpt2() : ByteLevelBpe.LoadDirectory(tokenizerSpec);
        TranslationExample[] examples = [];
        int eos = tokenizer.EndOfText ?? throw new FloraException("the tokenizer has no <|endoftext|> token");
        if (translate)
        {
            var template = new TranslationTemplate(tokenizer, new TranslationFormat(MaxSourceTokens: scale.SourceTokens, MaxTargetTokens: scale.TargetTokens - 1),
                TranslationLayout.EncoderDecoder, scale.SourceTokens);
            examples = trainPairs.Take(scale.Batch * scale.Steps).Select(p => template.Encode(p.Source, p.Target)).ToArray();
        }

        var results = new List<ProfileResult>();
        foreach (var config in Configs(scale.Rank))
        {
            cancel.ThrowIfCancellationRequested();
            log?.Report($"figure2: {config.Label}");
            var options = OptionsOf(config, scale, settings, translate, prepared?.Directory ?? "", tokenizerSpec, report.PathOf(Path.Combine("runs", config.Slug)));
            results.Add(Profile(config, options, backend => translate
                ? new PaddedPairsTask(backend, examples, scale.Batch, scale.SourceTokens, scale.TargetTokens, eos)
                : new LanguageModelingTask(backend, EmbeddedCorpus.Load(), tokenizer, scale.Batch, scale.SourceTokens, Seeds.Derive(settings.Seed, 3))));
            report.AddCommand(CommandOf(options, config));
            var r = results[^1];
            log?.Report(r.Failed ? $"  not run: {r.Failure}" : $"  peak {MiB(r.PeakTotal):F1} MiB");
        }

        Results = results;
        WriteOutputs(report, results, scale, settings, translate, dataNote, examples.Length);
        var (verdict, holds) = Verdict(results);
        report.AddMarkdown($"Wall time of the whole reproduction: {clock.Elapsed.TotalSeconds:F1} s.");
        return report.Finish(verdict, holds);
    }

    /// <summary>The training options of one configuration (the same model, data, seed and sizes for all).</summary>
    public static TrainOptions OptionsOf(ProfileConfig c, ProfileScale scale, ReproduceSettings settings, bool translate, string data, string tokenizer, string output) => new()
    {
        Model = translate ? scale.Model : scale.FallbackModel,
        Task = translate ? "translate" : "lm",
        Data = translate ? data : null,
        Tokenizer = tokenizer,
        MaxSourceTokens = scale.SourceTokens,
        MaxTargetTokens = scale.TargetTokens - 1,
        SequenceLength = scale.SourceTokens,                 // the model's context (both position tables)
        BatchSize = scale.Batch,
        Steps = scale.Steps,
        Optimizer = OptimizerOf(c, settings.Seed),
        LoraRank = c.Method == "LoRA" ? c.Rank : 0,
        LoraMode = LoraMode.AdaptersOnly,
        Lomo = c.Efficient,
        ActivationCheckpointing = c.Efficient,
        Schedule = ScheduleKind.Constant,
        WarmupSteps = 0,
        Seed = settings.Seed,
        Device = settings.Device,
        Precision = settings.Precision,
        OutputDirectory = output,
    };

    /// <summary>
    /// Runs the steps of one configuration with the timeline attached: the ledger's peaks are reset after the
    /// Trainer is built, so the peak is that of the training steps (parameters included, set-up transients not).
    /// A configuration the pipeline refuses is recorded with the reason.
    /// </summary>
    public static ProfileResult Profile(ProfileConfig config, TrainOptions options, Func<IBackend, ITrainingTask> makeTask)
    {
        var task = new StepMarkingTask(makeTask);
        Trainer trainer;
        try
        {
            trainer = new Trainer(options, task: task);
        }
        catch (Exception e) when (e is ArgumentException or FloraException or InvalidOperationException)
        {
            task.Dispose();
            return new ProfileResult(config, null, null, 0, 0, double.NaN, null, e.Message);
        }
        using (trainer)
        {
            task.Backend = trainer.Backend;
            var ledger = trainer.Backend.Ledger;
            ledger.ResetPeaks();
            var timeline = new MemoryTimeline();
            task.Timeline = timeline;
            ledger.Timeline = timeline;
            StepTimings timings;
            try
            {
                timings = trainer.MeasureSteps(0, options.Steps - 1);     // options.Steps steps, no evaluation, no checkpoint
            }
            catch (Exception e) when (e is ArgumentException or FloraException or InvalidOperationException)
            {
                return new ProfileResult(config, null, null, 0, 0, double.NaN, null, e.Message);
            }
            finally
            {
                ledger.Timeline = null;
            }
            long? reserved = trainer.Backend is CudaBackend cuda ? cuda.MemoryReadings().Reserved : null;
            long trainable = trainer.Model.Parameters().Where(p => p.RequiresGrad).Sum(p => (long)p.Value.Count);
            return new ProfileResult(config, timeline, ledger.Snapshot(), trainer.OptimizerStateBytes, trainable, timings.Step, reserved, null);
        }
    }

    /// <summary>Opens the prepared data (prepared as <c>flora data prepare</c> does when the default directory is missing); null (and why) when that fails.</summary>
    private static (PreparedData? Data, string Note) OpenOrPrepare(ReproduceSettings settings, IProgress<string>? log)
    {
        try
        {
            string directory = ArmRunner.EnsureData(settings, log);
            return (PreparedData.Open(directory), $"Spanish-to-English verse pairs of {directory}");
        }
        catch (Exception e) when (e is FloraException or IOException or UnauthorizedAccessException)
        {
            return (null, $"the prepared translation data could not be opened or prepared ({e.Message}); this run falls back to the decoder-only " +
                "language-modelling task on the embedded English corpus, so the model is a GPT-style decoder, not T5");
        }
    }

    /// <summary>"gpt2", or the directory of a BPE trained on the first pairs (or the embedded corpus).</summary>
    private static string PrepareTokenizer(ProfileScale scale, string directory, IReadOnlyList<VersePair> pairs, IProgress<string>? log)
    {
        if (scale.Tokenizer == "gpt2") return "gpt2";
        int size = int.Parse(scale.Tokenizer.AsSpan(4), CultureInfo.InvariantCulture);
        log?.Report($"figure2: training a byte-level BPE of {size} tokens");
        var trainer = new BpeTrainer(size);
        trainer.AddText(pairs.Count > 0
            ? string.Join("\n", pairs.Take(scale.TokenizerPairs).Select(p => p.Source + "\n" + p.Target))
            : EmbeddedCorpus.Load().Train[..Math.Min(EmbeddedCorpus.Load().Train.Length, 2_000_000)]);
        trainer.Train();
        if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
        trainer.Save(directory);
        return directory;
    }

    private static string CommandOf(TrainOptions o, ProfileConfig c) =>
        $"# {c.Label}: flora train --task {o.Task} --model {o.Model} --tokenizer {o.Tokenizer} --optimizer {o.Optimizer.Name} " +
        $"--lr {o.Optimizer.LearningRate.ToString(CultureInfo.InvariantCulture)}{(o.Optimizer.Name == "flora" ? $" --rank {o.Optimizer.Rank}" : "")}" +
        $"{(o.LoraRank > 0 ? $" --lora {o.LoraRank} --lora-adapters-only" : "")}{(o.Lomo ? " --lomo" : "")}{(o.ActivationCheckpointing ? " --activation-checkpointing" : "")} " +
        $"--batch {o.BatchSize} --seq-len {o.SequenceLength}{(o.Task == "translate" ? $" --max-source {o.MaxSourceTokens} --max-target {o.MaxTargetTokens}" : "")} " +
        $"--steps {o.Steps} --schedule constant --seed {o.Seed} --device {o.Device}" +
        (o.Task == "translate" ? "  (the profile pads every batch to these lengths, which flora train does not)" : "");

    private static double MiB(double bytes) => bytes / (1024.0 * 1024);

    private static readonly MemoryTag[] Tags = Enum.GetValues<MemoryTag>();

    private static string TagName(MemoryTag t) => t switch
    {
        MemoryTag.OptimizerState => "optimizer state",
        _ => t.ToString().ToLowerInvariant(),
    };

    private static void WriteOutputs(ReproductionReport report, List<ProfileResult> results, ProfileScale scale, ReproduceSettings settings,
        bool translate, string dataNote, int examples)
    {
        var ran = results.Where(r => !r.Failed).ToList();
        double yMax = ran.Count == 0 ? 1 : ran.Max(r => MiB(r.PeakTotal)) * 1.05;

        // One stacked-area chart per configuration, and both panels together.
        var charts = new List<SvgStackedAreaChart>();
        foreach (var r in ran)
        {
            var chart = ChartOf(r, yMax);
            report.WriteSvg($"profile-{r.Config.Slug}.svg", chart.ToSvg());
            charts.Add(chart);
        }
        if (charts.Count > 0)
            report.WriteSvg("figure2.svg", SvgStackedAreaChart.Combine("Figure 2: memory by category, (a) top row, (b) with activation checkpointing + LOMO", charts, 3));

        // The breakdown at each configuration's total peak.
        if (ran.Count > 0)
        {
            var bars = new SvgStackedBarChart("Memory at the peak, by category", "MiB", ran.Select(r => r.Config.Label).ToArray())
            {
                Subtitle = $"{scale.Model}, batch {scale.Batch}, sources padded to {scale.SourceTokens} tokens, {settings.Device}",
            };
            foreach (var t in Tags) bars.AddLayer(TagName(t), ran.Select(r => MiB(r.AtPeak(t))).ToArray(), (int)t);
            report.WriteSvg("peaks.svg", bars.ToSvg());
        }

        var csv = new CsvTable("config", "panel", "tag", "bytes_at_total_peak", "peak_bytes_of_tag", "total_peak_bytes", "ledger_peak_bytes",
            "optimizer_state_bytes", "trainable_parameters", "step_seconds", "status");
        foreach (var r in results)
        {
            if (r.Failed)
            {
                csv.AddRow(r.Config.Label, r.Config.Panel, "", "", "", "", "", "", "", "", "not run: " + r.Failure);
                continue;
            }
            foreach (var t in Tags)
                csv.AddRow(r.Config.Label, r.Config.Panel, t.ToString(), r.AtPeak(t), r.Ledger![t].PeakBytes, r.PeakTotal, r.Ledger.PeakTotalBytes,
                    r.OptimizerStateBytes, r.TrainableParameters, r.StepSeconds.ToString("F4", CultureInfo.InvariantCulture), "ok");
        }
        report.WriteCsv(csv);

        var md = new StringBuilder();
        md.AppendLine("## Setting").AppendLine();
        md.AppendLine(translate
            ? $"- Model `{scale.Model}` (T5-style encoder-decoder), translation task on {dataNote}: {examples} pairs, each source padded to {scale.SourceTokens} tokens and each decoder input to {scale.TargetTokens} (the paper pads to 512), batch {scale.Batch}, {scale.Steps} training steps per configuration."
            : $"- {dataNote}. Model `{scale.FallbackModel}`, windows of {scale.SourceTokens} tokens, batch {scale.Batch}, {scale.Steps} training steps per configuration.");
        md.AppendLine($"- Tokenizer: {(scale.Tokenizer == "gpt2" ? "GPT-2's (50,257 tokens)" : $"a byte-level BPE of {scale.Tokenizer[4..]} tokens trained on the first {scale.TokenizerPairs} training pairs")}; rank r = {scale.Rank} for LoRA and FLORA; device {settings.Device}{(settings.Device == "cuda" ? $", matrix products in {settings.Precision}" : "")}; root seed {settings.Seed}.");
        md.AppendLine("- Memory: a `MemoryTimeline` attached to the backend's `MemoryLedger` records the bytes of every tag after each allocation and free during the steps; " +
            "the peak is the largest total it saw (equal to the ledger's own peak, which was reset after set-up) and the breakdown is the one at that moment. " +
            "On a GPU the ledger counts the bytes of every tensor taken from the caching allocator (the allocator's rounding and its cache of freed blocks are not in it; the reserved bytes are shown separately).");
        md.AppendLine("- Our engine keeps its activation, gradient and scratch buffers from one step to the next (a tensor slot grows to the largest shape it was asked for and is reused), " +
            "so the profile rises during the first step and then stays flat: steps 2 and later allocate nothing. PyTorch's profile in the paper instead frees activations after each backward pass. " +
            "The peak and its breakdown are what the two profiles share, and what the table compares.");
        md.AppendLine($"- {FloraChoice} FLORA compresses the momentum of the attention and feed-forward matrices only; matrices it does not compress " +
            "(the token embedding, whose aspect ratio is above 4, and small ones) keep a full-size momentum, which is most of FLORA's optimizer state here.").AppendLine();
        md.AppendLine("## Memory at the peak (MiB), by category").AppendLine();
        md.AppendLine("| panel | configuration | " + string.Join(" | ", Tags.Select(TagName)) + " | total peak | optimizer state (all) | trainable parameters | s / step (median) |");
        md.AppendLine("| --- | --- | " + string.Join(" | ", Tags.Select(_ => "---:")) + " | ---: | ---: | ---: | ---: |");
        foreach (var r in results)
        {
            if (r.Failed)
            {
                md.AppendLine($"| ({r.Config.Panel}) | {r.Config.Label} | not allowed / failed: {r.Failure?.Replace("|", "/")} |");
                continue;
            }
            md.AppendLine($"| ({r.Config.Panel}) | {r.Config.Label} | " + string.Join(" | ", Tags.Select(t => MiB(r.AtPeak(t)).ToString("F2", CultureInfo.InvariantCulture))) +
                $" | **{MiB(r.PeakTotal):F2}** | {MiB(r.OptimizerStateBytes):F2} | {r.TrainableParameters:N0} | {r.StepSeconds:F3} |");
        }
        md.AppendLine();
        if (ran.Any(r => r.ReservedBytes is not null))
            md.AppendLine("Reserved by the CUDA caching allocator after the steps: " + string.Join(", ", ran.Select(r => $"{r.Config.Label} {MiB(r.ReservedBytes ?? 0):F1} MiB")) + ".").AppendLine();
        md.AppendLine("Charts: `figure2.svg` (all panels on one scale), `profile-*.svg` (one per configuration; dashed lines mark the start of each step and the peak), `peaks.svg` (the breakdown at each peak).").AppendLine();
        md.AppendLine("## The paper's findings next to ours").AppendLine();
        md.AppendLine("| the paper (Appendix C.3, Figure 2) | here | holds |");
        md.AppendLine("| --- | --- | --- |");
        foreach (var (claim, ours, holds) in Claims(results)) md.AppendLine($"| {claim} | {ours} | {(holds ? "yes" : "no")} |");
        report.AddMarkdown(md.ToString());
    }

    /// <summary>The stacked-area profile of one configuration: x = seconds since the steps began, one band per tag.</summary>
    public static SvgStackedAreaChart ChartOf(ProfileResult r, double yMaxMiB)
    {
        var timeline = r.Timeline!;
        var samples = timeline.Samples;
        var chart = new SvgStackedAreaChart($"({r.Config.Panel}) {r.Config.Label}", "time within the steps (s)", "MiB")
        {
            YMax = yMaxMiB,
            IdPrefix = "p-" + r.Config.Slug,
            Subtitle = $"peak {MiB(r.PeakTotal):F1} MiB, {samples.Count:N0} allocation events",
        };
        chart.SetX(samples.Select(s => s.Seconds).ToArray());
        foreach (var t in Tags) chart.AddLayer(TagName(t), samples.Select(s => MiB(s[t])).ToArray(), (int)t);
        foreach (var mark in timeline.Marks) chart.AddMarker(mark.Seconds, mark.Label);
        chart.AddMarker(timeline.AtPeak.Seconds, "peak");
        return chart;
    }

    /// <summary>The paper's qualitative findings, each checked on our numbers.</summary>
    public static IReadOnlyList<(string Claim, string Ours, bool Holds)> Claims(IReadOnlyList<ProfileResult> results)
    {
        ProfileResult? Get(string method, bool efficient) => results.FirstOrDefault(r => r.Config.Method == method && r.Config.Efficient == efficient && !r.Failed);
        var claims = new List<(string, string, bool)>();
        var (adam, lora, flora) = (Get("Adam", false), Get("LoRA", false), Get("FLORA", false));
        var (loraB, floraB) = (Get("LoRA", true), Get("FLORA", true));
        string M(long bytes) => MiB(bytes).ToString("F2", CultureInfo.InvariantCulture) + " MiB";
        if (adam is not null && lora is not null && flora is not null)
        {
            long os = adam.AtPeak(MemoryTag.OptimizerState), osL = lora.AtPeak(MemoryTag.OptimizerState), osF = flora.AtPeak(MemoryTag.OptimizerState);
            claims.Add(("(a) LoRA and FLORA have a negligible optimizer-state memory (next to Adam's)",
                $"optimizer state at the peak: Adam {M(os)}, LoRA {M(osL)} ({Share(osL, os)} of Adam's), FLORA {M(osF)} ({Share(osF, os)}); taken as negligible below a quarter of Adam's",
                osL < 0.25 * os && osF < 0.25 * os));
            long gL = lora.AtPeak(MemoryTag.Gradients), gF = flora.AtPeak(MemoryTag.Gradients);
            claims.Add(("(a) FLORA uses a larger gradient storage than LoRA", $"gradients at the peak: FLORA {M(gF)}, LoRA {M(gL)}", gF > gL));
            long aF = flora.AtPeak(MemoryTag.Activations);
            double ratio = (double)flora.PeakTotal / Math.Max(1, lora.PeakTotal);
            claims.Add(("(a) but the peak is dominated by activations rather than gradients, so LoRA's and FLORA's peaks are similar",
                $"FLORA's peak: activations {M(aF)} ({Share(aF, flora.PeakTotal)}) against gradients {M(gF)} ({Share(gF, flora.PeakTotal)}); peak FLORA / LoRA = {ratio:F2} (similar: within 25 %)",
                aF > gF && ratio < 1.25));
        }
        if (lora is not null && flora is not null && loraB is not null && floraB is not null)
        {
            long dA = Math.Abs(flora.AtPeak(MemoryTag.Gradients) - lora.AtPeak(MemoryTag.Gradients));
            long dB = Math.Abs(floraB.AtPeak(MemoryTag.Gradients) - loraB.AtPeak(MemoryTag.Gradients));
            claims.Add(("(b) with AC and LOMO the difference in gradient storage becomes less significant",
                $"|gradients FLORA - LoRA| at the peak: {M(dA)} in (a), {M(dB)} in (b) (with LOMO only a parameter used several times per step, the tied embedding, keeps a gradient buffer)",
                dB < dA));
            double ratioB = (double)floraB.PeakTotal / Math.Max(1, loraB.PeakTotal);
            claims.Add(("(b) LoRA and FLORA then show a similar memory usage pattern, at a lower peak than in (a)",
                $"peak FLORA / LoRA = {ratioB:F2} in (b) (similar: within 25 %); peak LoRA {M(lora.PeakTotal)} -> {M(loraB.PeakTotal)} ({Share(loraB.PeakTotal, lora.PeakTotal)} of (a)), " +
                $"FLORA {M(flora.PeakTotal)} -> {M(floraB.PeakTotal)} ({Share(floraB.PeakTotal, flora.PeakTotal)})",
                ratioB < 1.25 && 1 / ratioB < 1.25 && loraB.PeakTotal < lora.PeakTotal && floraB.PeakTotal < flora.PeakTotal));
        }
        foreach (var r in results.Where(r => r.Failed))
            claims.Add(($"({r.Config.Panel}) {r.Config.Label} runs", $"not run here: {r.Failure}", false));
        return claims;
    }

    private static string Share(long part, long whole) => whole == 0 ? "-" : (100.0 * part / whole).ToString("F0", CultureInfo.InvariantCulture) + " %";

    private static (string Verdict, bool Holds) Verdict(IReadOnlyList<ProfileResult> results)
    {
        var claims = Claims(results);
        int held = claims.Count(c => c.Holds);
        bool holds = claims.Count > 0 && held == claims.Count;
        string failed = results.Any(r => r.Failed) ? $" Not run: {string.Join(", ", results.Where(r => r.Failed).Select(r => r.Config.Label))}." : "";
        return (holds
            ? $"all {claims.Count} findings of the paper's Figure 2 hold in our profile: LoRA and FLORA keep little optimizer state, FLORA keeps full gradients but activations dominate its peak, and activation checkpointing with LOMO removes most of the gradient storage and lowers both peaks to a similar level."
            : $"{held} of {claims.Count} findings of the paper's Figure 2 hold here; the others: {string.Join("; ", claims.Where(c => !c.Holds).Select(c => c.Claim + " (" + c.Ours + ")"))}.{failed}", holds);
    }
}

/// <summary>
/// Wraps the task of a profiled run: it is made once the Trainer has made its backend (the Trainer takes the task
/// before its backend exists), and each training batch it hands out adds a "step N" mark to the timeline.
/// </summary>
internal sealed class StepMarkingTask(Func<IBackend, ITrainingTask> make) : ITrainingTask
{
    private ITrainingTask? _inner;
    private int _steps;

    public IBackend? Backend { get; set; }
    public MemoryTimeline? Timeline { get; set; }

    private ITrainingTask Inner => _inner ??= make(Backend ?? throw new InvalidOperationException("the profiled task needs the trainer's backend first"));

    public string Describe() => _inner?.Describe() ?? "profiled task";

    public Batch Next()
    {
        Timeline?.AddMark($"step {++_steps}");
        return Inner.Next();
    }

    public DataPosition Position { get => _inner?.Position ?? default; set => Inner.Position = value; }

    public IEnumerable<Batch> Validation(int maxBatches) => Inner.Validation(maxBatches);

    public void Dispose() => _inner?.Dispose();
}

/// <summary>
/// Translation batches of one fixed shape, as in the paper's profile (every sequence padded to 512): sources (B, S)
/// padded with the end token and their real lengths (attention masks the padding), decoder inputs (B, T) = end token +
/// target, targets = target + end token, padding -1 (no loss). The examples are served in order, round and round.
/// </summary>
internal sealed class PaddedPairsTask : ITrainingTask
{
    private readonly IBackend _backend;
    private readonly TranslationExample[] _examples;
    private readonly int _batch, _sourceTokens, _decoderTokens, _eos;
    private readonly TensorSlot _inputs, _targets, _source;

    public PaddedPairsTask(IBackend backend, TranslationExample[] examples, int batch, int sourceTokens, int decoderTokens, int eos)
    {
        if (examples.Length < batch) throw new FloraException($"{examples.Length} translation pairs, fewer than one batch of {batch}");
        (_backend, _examples, _batch, _sourceTokens, _decoderTokens, _eos) = (backend, examples, batch, sourceTokens, decoderTokens, eos);
        _inputs = new TensorSlot(backend, MemoryTag.Activations, DType.Int32);
        _targets = new TensorSlot(backend, MemoryTag.Activations, DType.Int32);
        _source = new TensorSlot(backend, MemoryTag.Activations, DType.Int32);
    }

    public string Describe() => $"translation pairs padded to {_sourceTokens} source and {_decoderTokens} decoder tokens";

    public DataPosition Position { get; set; }

    public Batch Next()
    {
        int b = _batch, ts = _sourceTokens, td = _decoderTokens;
        var source = new int[b * ts]; var inputs = new int[b * td]; var targets = new int[b * td]; var lengths = new int[b];
        Array.Fill(source, _eos); Array.Fill(inputs, _eos); Array.Fill(targets, -1);
        for (int r = 0; r < b; r++)
        {
            var e = _examples[(int)((Position.Index * b + r) % _examples.Length)];
            int[] src = e.Source.Length > 0 ? e.Source[..Math.Min(e.Source.Length, ts)] : [_eos];
            int[] tgt = e.Target[..Math.Min(e.Target.Length, td - 1)];
            src.CopyTo(source, r * ts);
            lengths[r] = src.Length;
            tgt.CopyTo(inputs, r * td + 1);                   // <eos> (start) + target
            tgt.CopyTo(targets, r * td);                      // target + <eos>
            targets[r * td + tgt.Length] = _eos;
        }
        Position = Position with { Index = Position.Index + 1 };
        return new Batch(_inputs.Upload(inputs, b, td), _targets.Upload(targets, b, td), _source.Upload(source, b, ts), lengths);
    }

    public IEnumerable<Batch> Validation(int maxBatches) => [];


    public void Dispose()
    {
        _inputs.Dispose();
        _targets.Dispose();
        _source.Dispose();
    }
}
