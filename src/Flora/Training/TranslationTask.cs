using Flora.Backends;
using Flora.Data;
using Flora.Data.Tokenizers;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Training;

/// <summary>How a translation pair becomes model input: one sequence (decoder-only) or a source and a target (encoder-decoder).</summary>
public enum TranslationLayout
{
    /// <summary>One sequence per pair: the prompt with the source, then the target (GPT-2, Llama).</summary>
    DecoderOnly,
    /// <summary>The source goes to the encoder and the target to the decoder (T5).</summary>
    EncoderDecoder,
}

/// <summary>Languages and truncation lengths of the translation task (the paper truncates to 512 source and 128 target tokens).</summary>
/// <param name="SourceLanguage">The source language's name in the prompt; "Spanish" by default.</param>
/// <param name="TargetLanguage">The target language's name in the prompt; "English" by default.</param>
/// <param name="MaxSourceTokens">Source tokens kept; 512 by default.</param>
/// <param name="MaxTargetTokens">Target tokens kept; 128 by default.</param>
public sealed record TranslationFormat(string SourceLanguage = "Spanish", string TargetLanguage = "English", int MaxSourceTokens = 512, int MaxTargetTokens = 128)
{
    /// <summary>Throws an <see cref="ArgumentException"/> unless both truncation lengths are positive.</summary>
    public void Validate()
    {
        if (MaxSourceTokens <= 0 || MaxTargetTokens <= 0)
            throw new ArgumentException($"source and target truncation lengths must be positive, got {MaxSourceTokens} and {MaxTargetTokens}");
    }
}

/// <summary>One tokenised pair. Decoder-only: <see cref="Prompt"/> then <see cref="Target"/>; encoder-decoder: <see cref="Source"/> and <see cref="Target"/>.</summary>
/// <param name="Prompt">
/// Decoder-only: the template's head, the source and the template's middle; empty for an encoder-decoder.
/// </param>
/// <param name="Source">The source tokens, truncated.</param>
/// <param name="Target">The target tokens, truncated, without the end token; empty when no target was given.</param>
public readonly record struct TranslationExample(int[] Prompt, int[] Source, int[] Target);

/// <summary>
/// The paper's conditional-generation format. Decoder-only models read
/// <c>translate Spanish to English: [source]. English: [target]&lt;|endoftext|&gt;</c> and take the loss on the
/// target tokens and the end token only; encoder-decoder models read the source in the encoder and
/// <c>&lt;|endoftext|&gt; [target]</c> in the decoder (the end token doubles as the start token), predicting
/// <c>[target] &lt;|endoftext|&gt;</c>. The template's pieces are tokenised separately (source and target with a
/// leading space), so that truncating the source never changes the tokens around it. The source is cut to
/// <see cref="TranslationFormat.MaxSourceTokens"/>, the target to <see cref="TranslationFormat.MaxTargetTokens"/>,
/// and both further when the model's context is shorter.
/// </summary>
public sealed class TranslationTemplate
{
    private readonly ITokenizer _tokenizer;
    private readonly int[] _head, _middle;

    /// <summary>
    /// The template of <paramref name="format"/> in <paramref name="layout"/> for a model of <paramref name="context"/>
    /// positions, its pieces tokenised with <paramref name="tokenizer"/>.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// The format is invalid, the tokenizer has no &lt;|endoftext|&gt; token, or a decoder-only context cannot hold the
    /// template and a pair.
    /// </exception>
    public TranslationTemplate(ITokenizer tokenizer, TranslationFormat format, TranslationLayout layout, int context)
    {
        format.Validate();
        _tokenizer = tokenizer;
        Format = format;
        Layout = layout;
        Context = context;
        EndOfText = tokenizer.EndOfText ?? throw new ArgumentException("translation needs a tokenizer with the <|endoftext|> token");
        _head = tokenizer.Encode($"translate {format.SourceLanguage} to {format.TargetLanguage}:");
        _middle = tokenizer.Encode($". {format.TargetLanguage}:");
        if (layout == TranslationLayout.DecoderOnly && _head.Length + _middle.Length + 3 > context)
            throw new ArgumentException($"a context of {context} tokens cannot hold the translation template ({_head.Length + _middle.Length} tokens) and a pair: use a longer --seq-len");
    }

    /// <summary>Languages and truncation lengths.</summary>
    public TranslationFormat Format { get; }
    /// <summary>One sequence per pair, or a source and a target.</summary>
    public TranslationLayout Layout { get; }
    /// <summary>The model's context: sources and targets are cut further to fit it.</summary>
    public int Context { get; }
    /// <summary>
    /// The id of &lt;|endoftext|&gt;: the end of every target, the decoder's start token, and the padding of inputs.
    /// </summary>
    public int EndOfText { get; }

    /// <summary>Tokenises a pair (the target may be null when only the prompt or source is needed, for generation).</summary>
    public TranslationExample Encode(string source, string? target)
    {
        int[] src = _tokenizer.Encode(" " + source.Trim());
        int[] tgt = target is null ? [] : _tokenizer.Encode(" " + target.Trim());
        src = src[..Math.Min(src.Length, Format.MaxSourceTokens)];
        tgt = tgt[..Math.Min(tgt.Length, Format.MaxTargetTokens)];
        if (Layout == TranslationLayout.EncoderDecoder)
        {
            src = src[..Math.Min(src.Length, Context)];
            tgt = tgt[..Math.Min(tgt.Length, Context - 1)];                  // decoder input: <eos> + target
            return new TranslationExample([], src, tgt);
        }
        // Sequence = head + source + middle + target + <eos>, of which all but the last token are inputs.
        int room = Context + 1 - _head.Length - _middle.Length - 1;            // for source + target
        if (target is not null && tgt.Length > room - 1) tgt = tgt[..Math.Max(1, room - 1)];
        int sourceRoom = room - (target is null ? Math.Min(Format.MaxTargetTokens, room / 2) : tgt.Length);
        src = src[..Math.Max(1, Math.Min(src.Length, sourceRoom))];
        return new TranslationExample([.. _head, .. src, .. _middle], src, tgt);
    }
}

/// <summary>
/// Translation as a training task over tokenised pairs. Batches come from length buckets: each pass shuffles
/// the pairs by (seed, pass), sorts every run of 64 batches' worth by length, cuts them into batches and
/// shuffles the batches, so a batch holds pairs of similar length and little padding. Padding: inputs
/// repeat the end token, targets are -1 (no loss); encoder sources are right-padded and their real lengths
/// go with the batch, so attention masks the padding. The position (pass, batch) resumes the same sequence.
/// </summary>
public sealed class TranslationTask : ITrainingTask, IShardedTask
{
    private const int BucketBatches = 64;
    private readonly IBackend _backend;
    private readonly TranslationTemplate _template;
    private readonly TranslationExample[] _train, _validation;
    private readonly Dictionary<int, TranslationExample[]> _heldOut = new();
    private readonly int _batchSize;
    private readonly ulong _seed;
    private readonly TensorSlot _inputs, _targets, _source;
    private readonly string _description;
    private int[][] _batches = [];
    private long _batchesEpoch = -1;

    /// <summary>
    /// Training batches of <paramref name="batchSize"/> pairs of <paramref name="train"/> and validation batches of
    /// <paramref name="validation"/>, tokenised with <paramref name="template"/> and uploaded to <paramref name="backend"/>;
    /// <paramref name="seed"/> fixes the order of every pass, and <paramref name="source"/> names the data in messages.
    /// </summary>
    /// <exception cref="ArgumentException">The batch size is not positive.</exception>
    /// <exception cref="FloraException">There are fewer training pairs than one batch, or no validation pair.</exception>
    public TranslationTask(IBackend backend, TranslationTemplate template, IReadOnlyList<(string Source, string Target)> train,
        IReadOnlyList<(string Source, string Target)> validation, int batchSize, ulong seed, string source)
        : this(backend, template, train, validation, batchSize, seed, source, evaluationOnly: false) { }

    /// <summary>Batches of <paramref name="pairs"/> for evaluation only (<see cref="Validation"/>; no training batches).</summary>
    public static TranslationTask ForEvaluation(IBackend backend, TranslationTemplate template, IReadOnlyList<(string Source, string Target)> pairs, int batchSize, string source) =>
        new(backend, template, [], pairs, batchSize, 0, source, evaluationOnly: true);

    private TranslationTask(IBackend backend, TranslationTemplate template, IReadOnlyList<(string Source, string Target)> train,
        IReadOnlyList<(string Source, string Target)> validation, int batchSize, ulong seed, string source, bool evaluationOnly)
    {
        if (batchSize <= 0) throw new ArgumentException($"batch size must be positive, got {batchSize}");
        if (!evaluationOnly && train.Count < batchSize) throw new FloraException($"{source}: {train.Count} training pairs, fewer than one batch of {batchSize}");
        if (validation.Count == 0) throw new FloraException($"{source}: no validation pairs");
        (_backend, _template, _batchSize, _seed) = (backend, template, batchSize, seed);
        _train = train.Select(p => template.Encode(p.Source, p.Target)).ToArray();
        _validation = validation.Select(p => template.Encode(p.Source, p.Target)).ToArray();
        _inputs = new TensorSlot(backend, MemoryTag.Activations, DType.Int32);
        _targets = new TensorSlot(backend, MemoryTag.Activations, DType.Int32);
        _source = new TensorSlot(backend, MemoryTag.Activations, DType.Int32);
        long targetTokens = _train.Sum(e => (long)e.Target.Length);
        _description = $"{source}: translation {template.Format.SourceLanguage} to {template.Format.TargetLanguage}, {template.Layout switch
        { TranslationLayout.DecoderOnly => "decoder-only template", _ => "encoder-decoder" }}, {_train.Length:N0} training and {_validation.Length:N0} validation pairs, {targetTokens:N0} training target tokens";
    }

    /// <inheritdoc/>
    public string Describe() => _description;

    /// <inheritdoc/>
    public DataPosition Position { get; set; }

    /// <summary>Training pairs, tokenised.</summary>
    public int TrainPairs => _train.Length;

    /// <summary>Tokens a batch of this example occupies in its longest row (the sequence for decoder-only, the target side otherwise).</summary>
    private int Length(TranslationExample e) =>
        _template.Layout == TranslationLayout.DecoderOnly ? e.Prompt.Length + e.Target.Length : Math.Max(e.Source.Length, e.Target.Length + 1);

    /// <inheritdoc/>
    public Batch Next()
    {
        if (_train.Length == 0) throw new InvalidOperationException("this translation task was made for evaluation: it has no training batches");
        int[][] batches = BatchesOf(Position.Epoch);
        if (Position.Index + _shardCount > batches.Length) { Position = new DataPosition(Position.Epoch + 1, 0); batches = BatchesOf(Position.Epoch); }
        int[] members = batches[Position.Index + _shardIndex];
        Position = Position with { Index = Position.Index + _shardCount };
        return Fill(members.Select(i => _train[i]).ToArray());
    }

    private int _shardIndex, _shardCount = 1;

    /// <summary>Data parallel: of every <paramref name="count"/> consecutive batches of a pass, rank <paramref name="index"/> trains on the index-th.</summary>
    public void SetShard(int index, int count)
    {
        if (count <= 0 || index < 0 || index >= count) throw new ArgumentException($"shard {index} of {count} does not exist");
        if (BatchesOf(0).Length < count) throw new FloraException($"{count} ranks need {count} batches per step, but a pass has only {BatchesOf(0).Length} batches of {_batchSize} pairs");
        (_shardIndex, _shardCount) = (index, count);
    }

    /// <summary>
    /// Batches of validation pairs: all of them, or, when <paramref name="maxBatches"/> batches hold fewer, that many
    /// pairs drawn at random from the whole split with a fixed seed (<see cref="HeldOut"/>); sorted by length so
    /// that a batch holds pairs of similar length.
    /// </summary>
    public IEnumerable<Batch> Validation(int maxBatches)
    {
        int wanted = (int)Math.Min(_validation.Length, (long)Math.Max(0, maxBatches) * _batchSize);
        if (wanted == 0) yield break;
        if (!_heldOut.TryGetValue(wanted, out var pairs))
            _heldOut[wanted] = pairs = HeldOut.Sample(_validation, wanted).OrderBy(Length).ToArray();
        for (int start = 0; start < pairs.Length; start += _batchSize)
            yield return Fill(pairs[start..Math.Min(pairs.Length, start + _batchSize)]);
    }

    /// <summary>The batches of a pass: shuffled, bucketed by length, the batches shuffled again (all from seed and pass).</summary>
    private int[][] BatchesOf(long epoch)
    {
        if (_batchesEpoch == epoch) return _batches;
        var random = new Random((int)(Seeds.Derive(_seed, (ulong)epoch) & 0x7FFFFFFF));
        int[] order = Enumerable.Range(0, _train.Length).ToArray();
        random.Shuffle(order);
        var batches = new List<int[]>();
        int bucket = BucketBatches * _batchSize, usable = order.Length / _batchSize * _batchSize;  // the last partial batch is dropped
        for (int start = 0; start < usable; start += bucket)
        {
            int[] sorted = order[start..Math.Min(usable, start + bucket)].OrderBy(i => Length(_train[i])).ToArray();
            for (int b = 0; b + _batchSize <= sorted.Length; b += _batchSize) batches.Add(sorted[b..(b + _batchSize)]);
        }
        int[][] result = batches.ToArray();
        random.Shuffle(result);
        (_batches, _batchesEpoch) = (result, epoch);
        return result;
    }

    /// <summary>Pads the examples into device tensors: inputs and targets (B, T), and for encoder-decoders the sources (B, Ts).</summary>
    private Batch Fill(TranslationExample[] examples)
    {
        int b = examples.Length, eos = _template.EndOfText;
        if (_template.Layout == TranslationLayout.DecoderOnly)
        {
            int t = examples.Max(e => e.Prompt.Length + e.Target.Length);     // inputs: prompt + target (the last token, <eos>, is only a target)
            var inputs = new int[b * t]; var targets = new int[b * t];
            Array.Fill(inputs, eos); Array.Fill(targets, -1);
            for (int r = 0; r < b; r++)
            {
                int[] sequence = [.. examples[r].Prompt, .. examples[r].Target, eos];
                for (int i = 0; i + 1 < sequence.Length; i++)
                {
                    inputs[r * t + i] = sequence[i];
                    if (i + 1 >= examples[r].Prompt.Length) targets[r * t + i] = sequence[i + 1];   // loss on the target and <eos> only
                }
            }
            return new Batch(_inputs.Upload(inputs, b, t), _targets.Upload(targets, b, t), null);
        }
        int ts = Math.Max(1, examples.Max(e => e.Source.Length)), td = examples.Max(e => e.Target.Length) + 1;
        var source = new int[b * ts]; var decoderInputs = new int[b * td]; var decoderTargets = new int[b * td];
        Array.Fill(source, eos); Array.Fill(decoderInputs, eos); Array.Fill(decoderTargets, -1);
        var lengths = new int[b];
        for (int r = 0; r < b; r++)
        {
            var e = examples[r];
            e.Source.CopyTo(source, r * ts);
            lengths[r] = Math.Max(1, e.Source.Length);
            e.Target.CopyTo(decoderInputs, r * td + 1);                          // <eos> (start) + target
            e.Target.CopyTo(decoderTargets, r * td);                             // target + <eos>
            decoderTargets[r * td + e.Target.Length] = eos;
        }
        return new Batch(_inputs.Upload(decoderInputs, b, td), _targets.Upload(decoderTargets, b, td), _source.Upload(source, b, ts), lengths);
    }


    /// <summary>Frees the batch buffers.</summary>
    public void Dispose()
    {
        _inputs.Dispose();
        _targets.Dispose();
        _source.Dispose();
    }
}
