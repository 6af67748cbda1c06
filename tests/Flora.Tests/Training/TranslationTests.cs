using System.Text.Json;
using Flora.Experiments.Bible;
using Flora.Backends;
using Flora.Data.Corpora;
using Flora.Data.Tokenizers;
using Flora.Nn.Models;
using Flora.Optim;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Tests.Training;

/// <summary>
/// The translation task (template, batches, masks), beam search and <c>flora eval</c>, on a small prepared
/// directory built here from synthetic verses (a word-for-word "Spanish" of 12 words), no diatheke needed.
/// </summary>
public sealed class TranslationTests : IDisposable
{
    private static readonly string[] Spanish = ["uno", "dos", "tres", "cuatro", "cinco", "seis", "casa", "perro", "gato", "sol", "luna", "mar"];
    private static readonly string[] English = ["one", "two", "three", "four", "five", "six", "house", "dog", "cat", "sun", "moon", "sea"];

    private readonly string _temp = Directory.CreateTempSubdirectory("flora-translate-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    /// <summary>A prepared directory of 600 synthetic verse pairs (30 chapters of 20), each 3 to 7 words.</summary>
    private string Prepared()
    {
        var random = new Random(5);
        var es = new List<Verse>();
        var en = new List<Verse>();
        for (int c = 1; c <= 30; c++)
            for (int v = 1; v <= 20; v++)
            {
                int[] words = Enumerable.Range(0, random.Next(3, 8)).Select(_ => random.Next(Spanish.Length)).ToArray();
                es.Add(new Verse("Genesis", c, v, string.Join(' ', words.Select(w => Spanish[w])) + "."));
                en.Add(new Verse("Genesis", c, v, string.Join(' ', words.Select(w => English[w])) + "."));
            }
        string dir = Path.Combine(_temp, "bible-v1");
        BiblePreparation.Write(BiblePreparation.Build(en, es), dir, force: false);
        return dir;
    }

    private static ByteLevelBpe Tokenizer()
    {
        var trainer = new BpeTrainer(300);
        trainer.AddText(string.Join(' ', Spanish.Concat(English)) + " translate Spanish to English: . English:");
        return trainer.Train();
    }

    [Fact]
    public void Decoder_only_batches_take_the_loss_on_the_target_and_end_token_only()
    {
        using var cpu = TestUtil.Cpu();
        var tokenizer = Tokenizer();
        var template = new TranslationTemplate(tokenizer, new TranslationFormat(), TranslationLayout.DecoderOnly, 64);
        var pairs = new[] { ("uno dos", "one two"), ("casa perro gato sol", "house dog cat sun") };
        using var task = TranslationTask.ForEvaluation(cpu, template, pairs, 2, "test");
        var batch = task.Validation(1).Single();
        int[] inputs = Ints(batch.Inputs), targets = Ints(batch.Targets);
        int eos = tokenizer.EndOfText!.Value, t = batch.Inputs.Shape[1];
        var shortest = template.Encode("uno dos", "one two");                // validation batches are sorted by length: row 0
        int[] sequence = [.. shortest.Prompt, .. shortest.Target, eos];
        Assert.Equal(tokenizer.Encode("translate Spanish to English:"), shortest.Prompt[..tokenizer.Encode("translate Spanish to English:").Length]);
        for (int i = 0; i < t; i++)
        {
            bool real = i + 1 < sequence.Length;
            Assert.Equal(real ? sequence[i] : eos, inputs[i]);                 // padding repeats the end token
            int expected = real && i + 1 >= shortest.Prompt.Length ? sequence[i + 1] : -1;
            Assert.Equal(expected, targets[i]);
        }
        Assert.Equal(eos, targets[sequence.Length - 2]);                       // the last target is the end token
        Assert.Equal(shortest.Target.Length + 1, targets[..t].Count(x => x >= 0));
        Assert.Equal("one two", tokenizer.Decode(shortest.Target).Trim());
    }

    [Fact]
    public void Encoder_decoder_batches_pad_sources_and_give_their_lengths()
    {
        using var cpu = TestUtil.Cpu();
        var tokenizer = Tokenizer();
        var template = new TranslationTemplate(tokenizer, new TranslationFormat(MaxSourceTokens: 8, MaxTargetTokens: 2), TranslationLayout.EncoderDecoder, 64);
        var example = template.Encode("casa perro gato sol luna mar casa perro gato sol luna mar", "house dog cat");
        Assert.Equal(8, example.Source.Length);                                // truncated to the options
        Assert.Equal(2, example.Target.Length);
        using var task = TranslationTask.ForEvaluation(cpu, template, [("uno", "one"), ("casa perro gato sol luna mar casa perro gato sol luna mar", "house dog cat")], 2, "test");
        var batch = task.Validation(1).Single();
        int[] expectedLengths = new[] { template.Encode("uno", "one"), example }.Select(e => e.Source.Length).Order().ToArray();
        Assert.Equal(expectedLengths, batch.SourceLengths!.Order());
        Assert.True(expectedLengths[0] < expectedLengths[1], "the two sources should differ in length");
        int eos = tokenizer.EndOfText!.Value;
        int[] decoderInputs = Ints(batch.Inputs), targets = Ints(batch.Targets), sources = Ints(batch.Source!);
        int td = batch.Inputs.Shape[1];
        Assert.Equal(eos, decoderInputs[0]);                                   // the end token starts the decoder
        Assert.Equal(eos, targets[template.Encode("uno", "one").Target.Length]); // ... and ends the target
        Assert.Equal(eos, sources[expectedLengths[0]]);                        // source padding after the shorter one (row 0)
        Assert.Equal(td * 2, targets.Length);
    }

    /// <summary>
    /// Source padding must be invisible: a T5 sums the same loss for a pair whether it is alone in its batch or
    /// padded next to a pair with a longer source (attention masks in the encoder and in cross-attention).
    /// </summary>
    [Fact]
    public void Padded_sources_do_not_change_an_encoder_decoder_loss()
    {
        using var cpu = TestUtil.Cpu();
        var tokenizer = Tokenizer();
        using var model = ModelFactory.Create("t5-tiny", cpu, tokenizer.VocabularySize, seed: 3, context: 32);
        model.Context.Training = false;
        var template = new TranslationTemplate(tokenizer, new TranslationFormat(), TranslationLayout.EncoderDecoder, 32);
        double Sum(params (string, string)[] pairs)
        {
            using var task = TranslationTask.ForEvaluation(cpu, template, pairs, pairs.Length, "test");
            var batch = task.Validation(1).Single();
            model.SetSource(batch.Source!, batch.SourceLengths);
            return model.ForwardLoss(batch.Inputs, batch.Targets) * (double)model.CountedRows;
        }
        double alone = Sum(("uno dos", "one two")), other = Sum(("casa perro gato sol luna mar", "house dog"));
        double together = Sum(("uno dos", "one two"), ("casa perro gato sol luna mar", "house dog"));
        Assert.Equal(alone + other, together, 1e-3);
    }

    [Fact]
    public void Training_batches_are_bucketed_deterministically_and_resume_from_their_position()
    {
        using var cpu = TestUtil.Cpu();
        var tokenizer = Tokenizer();
        var template = new TranslationTemplate(tokenizer, new TranslationFormat(), TranslationLayout.DecoderOnly, 64);
        var random = new Random(1);
        var pairs = Enumerable.Range(0, 300).Select(_ =>
        {
            int[] w = Enumerable.Range(0, random.Next(1, 9)).Select(_ => random.Next(Spanish.Length)).ToArray();
            return (string.Join(' ', w.Select(i => Spanish[i])), string.Join(' ', w.Select(i => English[i])));
        }).ToArray();
        int[][] Take(TranslationTask task, int n) => Enumerable.Range(0, n).Select(_ => Ints(task.Next().Inputs)).ToArray();
        using var a = new TranslationTask(cpu, template, pairs, pairs[..10], 4, 7, "test");
        using var b = new TranslationTask(cpu, template, pairs, pairs[..10], 4, 7, "test");
        int[][] first = Take(a, 120);                                            // 75 batches a pass: into the second pass
        Assert.Equal(first, Take(b, 120));
        using var resumed = new TranslationTask(cpu, template, pairs, pairs[..10], 4, 7, "test") { Position = new(1, 20) };
        Assert.Equal(first[95], Ints(resumed.Next().Inputs));
        // Buckets: padding is far below what random batches of these lengths would have.
        double padding = first.Average(x => x.Length == 0 ? 0 : 1.0 * x.Count(id => id == tokenizer.EndOfText) / x.Length);
        Assert.True(padding < 0.15, $"padding share {padding:P1}");
    }

    /// <summary>
    /// With as many beams as tokens and 2 steps, beam search keeps every output of at most 2 tokens that could
    /// win, so its answer must be the best of them by log-probability / length: [eos], [x, eos] (finished; the
    /// length counts the end token) and [x, y] (cut at the length limit).
    /// </summary>
    [Fact]
    public void Beam_search_with_full_width_finds_the_best_short_output()
    {
        using var cpu = TestUtil.Cpu();
        const int V = 6, Eos = 5;
        using var model = new Gpt2(cpu, new Gpt2Config(1, 1, 8, V, 8), seed: 11);
        int[] prompt = [1, 2];
        double LogProbability(int[] context, int token)
        {
            using var ids = cpu.Allocate(new Shape(1, context.Length), MemoryTag.Activations, DType.Int32);
            cpu.Upload(context, ids);
            var logits = new float[V];
            cpu.Download(model.Forward(ids).RowSlice(context.Length - 1, 1), logits);
            double max = logits.Max(), z = max + Math.Log(logits.Sum(l => Math.Exp(l - max)));
            return logits[token] - z;
        }
        var outputs = new List<(int[] Output, double Score, int Length)> { ([], LogProbability(prompt, Eos), 1) };
        for (int x = 0; x < V; x++)
            if (x != Eos)
                for (int y = 0; y < V; y++)
                    outputs.Add((y == Eos ? [x] : [x, y], LogProbability(prompt, x) + LogProbability([.. prompt, x], y), 2));
        var best = outputs.OrderByDescending(f => f.Score / f.Length).First();
        int[] found = BeamSearch.Generate(model, [prompt], Eos, new BeamOptions(BeamSize: V, LengthPenalty: 1f, MaxTokens: 2))[0];
        Assert.Equal(best.Output, found);
    }

    [Fact]
    public void One_beam_is_greedy_decoding()
    {
        using var cpu = TestUtil.Cpu();
        using var model = new Gpt2(cpu, new Gpt2Config(2, 2, 16, 40, 24), seed: 4);
        int[] prompt = [3, 9, 27];
        int[] greedy = Generator.Sample(model, prompt, 10, new SamplingOptions(Greedy: true)).ToArray();
        int[] beam = BeamSearch.Generate(model, [prompt, [5]], endOfText: 39, new BeamOptions(MaxTokens: 10))[0];
        Assert.Equal(greedy.TakeWhile(t => t != 39), beam);
    }

    [Fact]
    public void Train_then_eval_writes_translations_and_scores_and_leaves_no_partial_output()
    {
        string data = Prepared();
        string run = Path.Combine(_temp, "run");
        foreach (string model in new[] { "gpt-tiny", "t5-tiny" })
        {
            string runDirectory = run + "-" + model;
            var options = new TrainOptions
            {
                Task = "translate", Data = data, Model = model, Tokenizer = "bpe:300", SequenceLength = 48, BatchSize = 8, Steps = 12,
                WarmupSteps = 2, EvalEvery = 6, CheckpointEvery = 12, OutputDirectory = runDirectory,
                Optimizer = new OptimizerSpec { Name = "flora", LearningRate = 0.03f, Rank = 8 },
            };
            using (var trainer = new Trainer(options))
            {
                var result = trainer.Run();
                Assert.True(double.IsFinite(result.FinalValidationLoss!.Value));
                Assert.Contains("translation Spanish to English", result.TaskDescription);
            }
            var eval = Evaluation.Run(new EvaluationOptions { Checkpoint = runDirectory, MaxPairs = 5, Beam = new BeamOptions(BeamSize: 2, MaxTokens: 12) });
            Assert.Equal(5, eval.Pairs);
            Assert.True(double.IsFinite(eval.Loss) && eval.Perplexity > 1);
            Assert.InRange(eval.Bleu!.Score, 0, 100);
            string[] hypotheses = File.ReadAllLines(Path.Combine(eval.OutputDirectory, "hypotheses.txt"));
            string[] references = File.ReadAllLines(Path.Combine(eval.OutputDirectory, "references.txt"));
            Assert.Equal(5, hypotheses.Length);
            // Five pairs drawn at random with the fixed seed from the whole split, in split order (not the first five).
            var split = PreparedData.Open(data).ReadPairs(CorpusSplit.Validation);
            Assert.Equal(HeldOut.Sample(split, 5).Select(p => p.Target), references);
            Assert.Equal(5, File.ReadAllLines(Path.Combine(eval.OutputDirectory, "sentence-bleu.txt")).Length);
            using var scores = JsonDocument.Parse(File.ReadAllText(Path.Combine(eval.OutputDirectory, Evaluation.ScoresFile)));
            Assert.Equal(Flora.Metrics.SacreBleu.SentenceSignature, scores.RootElement.GetProperty("sentence_bleu").GetProperty("signature").GetString());
            Assert.Equal(eval.Bleu.Score, scores.RootElement.GetProperty("bleu").GetProperty("score").GetDouble(), 9);
            Assert.Equal("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0", scores.RootElement.GetProperty("bleu").GetProperty("signature").GetString());
            Assert.True(scores.RootElement.GetProperty("rouge").GetProperty("rougeL").GetProperty("f").GetDouble() >= 0);
            Assert.Empty(Directory.GetDirectories(Path.GetDirectoryName(eval.OutputDirectory)!, ".*"));   // no temporary directory left
        }
    }

    [Fact]
    public void Eval_refuses_a_run_whose_tokenizer_changed()
    {
        string data = Prepared();
        string run = Path.Combine(_temp, "run");
        var options = new TrainOptions
        {
            Task = "translate", Data = data, Model = "gpt-tiny", Tokenizer = "bpe:300", SequenceLength = 48, BatchSize = 8, Steps = 2,
            WarmupSteps = 1, EvalEvery = 2, CheckpointEvery = 2, OutputDirectory = run,
        };
        using (var trainer = new Trainer(options)) trainer.Run();
        var other = new BpeTrainer(300);                                         // a valid tokenizer, but not the run's
        other.AddText("a different text for a different tokenizer");
        other.Train();
        other.Save(Path.Combine(run, TokenizerSetup.Directory));
        var e = Assert.Throws<InvalidDataException>(() => Evaluation.Run(new EvaluationOptions { Checkpoint = run, MaxPairs = 2 }));
        Assert.Contains("not the one this checkpoint was trained with", e.Message);
        Assert.False(Directory.Exists(Path.Combine(run, "eval")));
    }

    private static int[] Ints(Tensor t)
    {
        var a = new int[t.Count];
        t.CopyTo<int>(a);
        return a;
    }
}
