using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Flora.Backends;
using Flora.Data;
using Flora.Data.Corpora;
using Flora.Metrics;
using Flora.Optim;

namespace Flora.Training;

/// <summary>What <c>flora eval</c> evaluates and how it generates.</summary>
public sealed record EvaluationOptions
{
    /// <summary>
    /// <c>--checkpoint</c>: a run directory (its latest checkpoint), a checkpoint directory or a Hugging Face model
    /// directory.
    /// </summary>
    public required string Checkpoint { get; init; }
    /// <summary><c>--split</c>: the split to evaluate; validation by default.</summary>
    public CorpusSplit Split { get; init; } = CorpusSplit.Validation;
    /// <summary>
    /// <c>--max-pairs</c>: N pairs of the split drawn at random with a fixed seed (<see cref="HeldOut"/>: the same N every
    /// time, in split order); 0, the default, for all.
    /// </summary>
    public int MaxPairs { get; init; }
    /// <summary>
    /// Generation (translation only): <c>--beam</c>, <c>--length-penalty</c>, <c>--max-tokens</c>; greedy by default.
    /// Its batch is replaced by <see cref="BatchSize"/>.
    /// </summary>
    public BeamOptions Beam { get; init; } = new(BeamSize: 1);
    /// <summary><c>--data</c>: the prepared data directory; null (the default) for the one the run trained on.</summary>
    public string? Data { get; init; }
    /// <summary><c>--out</c>: where the outputs go; null (the default) for RUN/eval/SPLIT-step-N.</summary>
    public string? OutputDirectory { get; init; }
    /// <summary><c>--device</c>: "cpu" (the default) or "cuda".</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>GPU matrix-product precision: "bf16" (the default), "tf32" or "fp32".</summary>
    public string Precision { get; init; } = "bf16";
    /// <summary>Porter stemming in ROUGE (rouge-score's use_stemmer); on by default, off with <c>--no-stem</c>.</summary>
    public bool Stem { get; init; } = true;
    /// <summary><c>--batch</c>: pairs or windows per batch, for the loss and for generation; 16 by default.</summary>
    public int BatchSize { get; init; } = 16;
}

/// <summary>Progress of an evaluation: the phase ("loss", "generation") and how far it is.</summary>
/// <param name="Phase">"loss" or "generation".</param>
/// <param name="Done">Pairs (or windows) done so far.</param>
/// <param name="Total">Pairs (or windows) in the phase.</param>
public readonly record struct EvaluationProgress(string Phase, int Done, int Total);

/// <summary>The scores of an evaluation and where its files are (<c>MeanSentenceBleu</c>: the mean of the pairs' sentence BLEU, translation only).</summary>
/// <param name="Checkpoint">The checkpoint directory evaluated.</param>
/// <param name="Step">The checkpoint's step.</param>
/// <param name="Task">"lm" or "translate".</param>
/// <param name="Split">The split's name.</param>
/// <param name="Pairs">Pairs evaluated (0 for language modelling).</param>
/// <param name="Loss">Mean loss per target token (NaN without tokens).</param>
/// <param name="Perplexity">exp(<paramref name="Loss"/>).</param>
/// <param name="LossTokens">Target tokens the loss is averaged over.</param>
/// <param name="Bleu">Corpus BLEU with SacreBLEU's defaults; translation only.</param>
/// <param name="Rouge">ROUGE-1, -2 and -L, per-pair F averaged; translation only.</param>
/// <param name="OutputDirectory">Where scores.json and the text files are.</param>
/// <param name="Seconds">Wall time of the evaluation.</param>
/// <param name="MeanSentenceBleu">The mean of the pairs' sentence BLEU; translation only.</param>
public sealed record EvaluationResult(
    string Checkpoint, long Step, string Task, string Split, int Pairs, double Loss, double Perplexity, long LossTokens,
    BleuScore? Bleu, RougeCorpusScores? Rouge, string OutputDirectory, double Seconds, double? MeanSentenceBleu = null)
{
    /// <summary>One-line notes about the checkpoint (an older one loaded without checksums).</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];
}

/// <summary>
/// Evaluates a checkpoint on a split. Translation: the loss and perplexity of the reference translations
/// (teacher forcing, per target token), then each source translated (greedy or beam search), scored with
/// corpus BLEU (SacreBLEU's defaults) and ROUGE-1/2/L (rouge-score, per-pair F averaged), and written out:
/// sources.txt, hypotheses.txt, references.txt (one line each, in split order) and scores.json. Language
/// modelling: the loss and perplexity of the split's text. The files are written to a temporary directory and
/// renamed into place at the end, so an interrupted evaluation never leaves outputs that look complete.
/// </summary>
public static class Evaluation
{
    /// <summary>
    /// The scores' file in the output directory; its presence marks a directory as an evaluation's, which a new one may
    /// replace.
    /// </summary>
    public const string ScoresFile = "scores.json";

    /// <summary>
    /// Evaluates the checkpoint <paramref name="o"/> names, writes its output directory (replaced as a whole at the end) and
    /// returns the scores; <paramref name="progress"/> hears of every batch.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// A negative number of pairs, a batch size that is not positive, or invalid beam settings.
    /// </exception>
    /// <exception cref="FloraException">
    /// The output directory holds other files, or the split has no pairs (or too little text for one window).
    /// </exception>
    public static EvaluationResult Run(EvaluationOptions o, IProgress<EvaluationProgress>? progress = null)
    {
        if (o.MaxPairs < 0) throw new ArgumentException($"the number of pairs must be non-negative, got {o.MaxPairs}");
        if (o.BatchSize <= 0) throw new ArgumentException($"the batch size must be positive, got {o.BatchSize}");
        o.Beam.Validate();
        var clock = Stopwatch.StartNew();
        using var loaded = CheckpointModel.Open(o.Checkpoint, o.Device, o.Precision);
        var info = loaded.Info;
        string split = PreparedData.SplitName(o.Split);
        string output = Path.GetFullPath(o.OutputDirectory ?? Path.Combine(loaded.RunDirectory, "eval", $"{split}-step-{info.Step}"));
        CheckOutput(output);
        var files = new Dictionary<string, string>();
        double lossSum;
        long lossTokens;
        BleuScore? bleu = null;
        RougeCorpusScores? rouge = null;
        double? sentenceBleu = null;
        int pairs = 0;
        if (info.Options.Task == "translate")
        {
            string dataDirectory = o.Data ?? info.Options.Data ?? PreparedData.DefaultDirectory;
            var data = PreparedData.Open(dataDirectory);
            IReadOnlyList<VersePair> all = data.ReadPairs(o.Split);
            var selected = HeldOut.Sample(all, o.MaxPairs);
            pairs = selected.Length;
            if (pairs == 0) throw new FloraException($"{dataDirectory}: the {split} split has no pairs");
            var template = loaded.TranslationTemplate;
            (lossSum, lossTokens) = TranslationLoss(loaded, template, selected, o.BatchSize, progress);
            var inputs = selected.Select(p =>
            {
                var e = template.Encode(p.Source, null);
                return template.Layout == TranslationLayout.DecoderOnly ? e.Prompt : e.Source;
            }).ToArray();
            progress?.Report(new EvaluationProgress("generation", 0, pairs));
            int[][] outputs = BeamSearch.Generate(loaded.Model, inputs, template.EndOfText, o.Beam with { Batch = o.BatchSize },
                new Progress<int>(done => progress?.Report(new EvaluationProgress("generation", done, pairs))));
            string[] hypotheses = outputs.Select(t => OneLine(loaded.Tokenizer.Decode(t))).ToArray();
            string[] references = selected.Select(p => p.Target).ToArray();
            bleu = SacreBleu.Corpus(hypotheses, references);
            rouge = Rouge.Corpus(references, hypotheses, o.Stem);
            double[] sentences = hypotheses.Zip(references, (h, r) => SacreBleu.Sentence(h, r).Score).ToArray();
            sentenceBleu = sentences.Average();
            files["sentence-bleu.txt"] = Lines(sentences.Select(b => b.ToString("0.####", System.Globalization.CultureInfo.InvariantCulture)));
            files["sources.txt"] = Lines(selected.Select(p => p.Source));
            files["hypotheses.txt"] = Lines(hypotheses);
            files["references.txt"] = Lines(references);
        }
        else
        {
            (lossSum, lossTokens) = LanguageModelLoss(loaded, o, progress);
        }
        double loss = lossTokens == 0 ? double.NaN : lossSum / lossTokens;
        var result = new EvaluationResult(loaded.Directory, info.Step, info.Options.Task, split, pairs, loss, Math.Exp(loss), lossTokens,
            bleu, rouge, output, clock.Elapsed.TotalSeconds, sentenceBleu) { Notes = loaded.Notes };
        files[ScoresFile] = Scores(result, o);
        WriteAtomically(output, files);
        return result;
    }

    /// <summary>Teacher-forced loss of the references: the sum over target tokens and their count.</summary>
    private static (double Sum, long Tokens) TranslationLoss(CheckpointModel loaded, TranslationTemplate template, VersePair[] pairs, int batchSize,
        IProgress<EvaluationProgress>? progress)
    {
        using var task = TranslationTask.ForEvaluation(loaded.Backend, template, pairs.Select(p => (p.Source, p.Target)).ToArray(), batchSize, "evaluation pairs");
        var model = loaded.Model;
        model.Context.Training = false;
        double sum = 0;
        long tokens = 0;
        int done = 0;
        foreach (var batch in task.Validation(int.MaxValue))
        {
            if (batch.Source is { } source) model.SetSource(source, batch.SourceLengths);
            double mean = model.ForwardLoss(batch.Inputs, batch.Targets);
            sum += mean * model.CountedRows;
            tokens += model.CountedRows;
            done = Math.Min(pairs.Length, done + batch.Inputs.Shape[0]);
            progress?.Report(new EvaluationProgress("loss", done, pairs.Length));
        }
        return (sum, tokens);
    }

    /// <summary>Loss of a language model on the split of the text it trained on (the prepared data's, a corpus file's, or the embedded one's).</summary>
    private static (double Sum, long Tokens) LanguageModelLoss(CheckpointModel loaded, EvaluationOptions o, IProgress<EvaluationProgress>? progress)
    {
        var options = loaded.Options;
        string text;
        if (o.Data is not null) text = PreparedData.Open(o.Data).ReadLanguageModel(o.Split);
        else
        {
            TextCorpus corpus = options.Corpus is null ? EmbeddedCorpus.Load() : TextCorpus.FromFile(options.Corpus);
            text = o.Split switch { CorpusSplit.Train => corpus.Train, CorpusSplit.Validation => corpus.Validation, _ => corpus.Test };
        }
        int[] tokens = loaded.Tokenizer.Encode(text);
        int length = options.SequenceLength;
        long windows = tokens.Length > length ? (tokens.Length - 1) / length : 0;
        if (windows == 0) throw new FloraException($"the {PreparedData.SplitName(o.Split)} text has {tokens.Length} tokens, not one window of {length + 1}");
        int batch = (int)Math.Min(o.BatchSize, windows);
        using var windowsOf = new TokenWindows(loaded.Backend, tokens, batch, length, 0, PreparedData.SplitName(o.Split));
        loaded.Model.Context.Training = false;
        double sum = 0;
        long counted = 0, total = windows / batch, done = 0;
        foreach (var (inputs, targets) in windowsOf.Sequential(int.MaxValue))
        {
            sum += loaded.Model.ForwardLoss(inputs, targets) * (double)loaded.Model.CountedRows;
            counted += loaded.Model.CountedRows;
            progress?.Report(new EvaluationProgress("loss", (int)++done, (int)total));
        }
        return (sum, counted);
    }

    private static string OneLine(string text) => string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));

    private static string Lines(IEnumerable<string> lines)
    {
        var sb = new StringBuilder();
        foreach (string line in lines) sb.Append(OneLine(line)).Append('\n');
        return sb.ToString();
    }

    private static string Scores(EvaluationResult r, EvaluationOptions o)
    {
        object? Score(RougeScore s) => new { precision = s.Precision, recall = s.Recall, f = s.F };
        var scores = new Dictionary<string, object?>
        {
            ["checkpoint"] = r.Checkpoint, ["step"] = r.Step, ["task"] = r.Task, ["split"] = r.Split, ["pairs"] = r.Pairs,
            ["loss"] = double.IsFinite(r.Loss) ? r.Loss : null, ["perplexity"] = double.IsFinite(r.Perplexity) ? r.Perplexity : null, ["loss_tokens"] = r.LossTokens,
        };
        if (r.Bleu is BleuScore b)
            scores["bleu"] = new
            {
                score = b.Score, signature = b.Signature, line = b.ToString(), precisions = b.Precisions, brevity_penalty = b.BrevityPenalty,
                ratio = b.Ratio, hyp_len = b.SystemLength, ref_len = b.ReferenceLength,
            };
        if (r.MeanSentenceBleu is double sb)
            scores["sentence_bleu"] = new { mean = sb, signature = SacreBleu.SentenceSignature, file = "sentence-bleu.txt" };
        if (r.Rouge is RougeCorpusScores g)
            scores["rouge"] = new { stemmer = o.Stem, rouge1 = Score(g.Rouge1), rouge2 = Score(g.Rouge2), rougeL = Score(g.RougeL), aggregation = "mean of per-pair scores" };
        if (r.Task == "translate")
            scores["generation"] = new { beam = o.Beam.BeamSize, length_penalty = o.Beam.LengthPenalty, max_tokens = o.Beam.MaxTokens };
        scores["seconds"] = r.Seconds;
        return JsonSerializer.Serialize(scores, new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    /// <summary>
    /// The output directory is replaced as a whole at the end, so it must be new, empty or an earlier evaluation's
    /// (it holds scores.json): anything else (a run directory, a home directory, the root) is refused before the
    /// evaluation runs, as is a place that cannot be written.
    /// </summary>
    private static void CheckOutput(string output)
    {
        if (System.IO.Directory.Exists(output) && System.IO.Directory.EnumerateFileSystemEntries(output).Any() && !File.Exists(Path.Combine(output, ScoresFile)))
            throw new FloraException($"--out {output} holds files that are not an evaluation's (no {ScoresFile}), and the evaluation replaces the directory: choose a new directory");
        Reporting.RunOutput.Create(output);
    }

    /// <summary>Writes the files into a temporary sibling directory, then replaces <paramref name="directory"/> with it.</summary>
    private static void WriteAtomically(string directory, IReadOnlyDictionary<string, string> files)
    {
        string parent = Path.GetDirectoryName(directory)!;
        System.IO.Directory.CreateDirectory(parent);
        string temporary = Path.Combine(parent, $".{Path.GetFileName(directory)}.{Environment.ProcessId}.{Seeds.Derive((ulong)Environment.TickCount64, 1):x}.tmp");
        try
        {
            System.IO.Directory.CreateDirectory(temporary);
            var utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);
            foreach (var (name, content) in files) File.WriteAllText(Path.Combine(temporary, name), content, utf8);
            if (System.IO.Directory.Exists(directory)) System.IO.Directory.Delete(directory, recursive: true);
            System.IO.Directory.Move(temporary, directory);
        }
        finally
        {
            if (System.IO.Directory.Exists(temporary)) System.IO.Directory.Delete(temporary, recursive: true);
        }
    }
}
