using Flora.Backends;
using Flora.Data;
using Flora.Data.Corpora;
using Flora.Data.Tokenizers;
using Flora.Tensors;

namespace Flora.Training;

/// <summary>
/// One training or evaluation batch: token ids in (B, T), next-token targets out (negative where no loss is
/// taken: prompts, padding), and for encoder-decoders the source ids (B, Ts) with each source's real length.
/// </summary>
/// <param name="Inputs">Token ids (B, T), Int32, in a buffer the task reuses: valid until its next batch.</param>
/// <param name="Targets">Next-token targets (B, T), Int32; negative (-1) where no loss is taken.</param>
/// <param name="Source">Source ids (B, Ts) of an encoder-decoder, right-padded; null for a decoder-only model.</param>
/// <param name="SourceLengths">
/// Each source's real length, so that attention masks the padding; null when there is no padding.
/// </param>
public readonly record struct Batch(Tensor Inputs, Tensor Targets, Tensor? Source, int[]? SourceLengths = null)
{
    /// <summary>B T: the target positions of the batch, ignored ones included.</summary>
    public int Tokens => Targets.Count;
}

/// <summary>What the trainer trains on: batches, the data position (for checkpoints) and validation batches.</summary>
public interface ITrainingTask : IDisposable
{
    /// <summary>One line for the run header: the data and its size.</summary>
    string Describe();
    /// <summary>The next training batch; its tensors stay valid until the next call.</summary>
    Batch Next();
    /// <summary>
    /// Where the training data stands (pass and batch): checkpoints save it, and setting it resumes the same sequence
    /// of batches.
    /// </summary>
    DataPosition Position { get; set; }
    /// <summary>Up to <paramref name="maxBatches"/> validation batches, the same ones at every call.</summary>
    IEnumerable<Batch> Validation(int maxBatches);
}

/// <summary>
/// A task whose training batches can be split among data-parallel ranks: after <see cref="SetShard"/>(k, n), rank k
/// reads its own part of every step's data, the n ranks together no example twice in a pass, and
/// <see cref="ITrainingTask.Position"/> stays the same on every rank (so rank 0's checkpoint holds it).
/// </summary>
public interface IShardedTask
{
    /// <summary>Makes this reader rank <paramref name="index"/> of <paramref name="count"/>.</summary>
    void SetShard(int index, int count);
}

/// <summary>
/// Next-token prediction on a text corpus (the embedded English corpus by default): the training and
/// validation splits tokenised once into token files of a cache (<see cref="TokenStore.Cached"/>, keyed by
/// tokenizer and text, mapped from disk on later runs), cut into windows by <see cref="TokenWindows"/>.
/// </summary>
public sealed class LanguageModelingTask : ITrainingTask, IShardedTask
{
    private readonly TokenStore _trainTokens, _validationTokens;
    private readonly TokenWindows _train, _validation;
    private readonly string _description;

    /// <summary>
    /// Batches of <paramref name="batchSize"/> x <paramref name="sequenceLength"/> tokens of the corpus, in an order
    /// drawn from <paramref name="seed"/>. <paramref name="tokenizerIdentity"/> names the tokenizer in the cache key
    /// (see <see cref="TokenizerSetup.Identity"/>); <paramref name="cacheDirectory"/> is where token files are kept
    /// (null tokenises in memory every time).
    /// </summary>
    public LanguageModelingTask(IBackend backend, TextCorpus corpus, ITokenizer tokenizer, int batchSize, int sequenceLength, ulong seed,
        string tokenizerIdentity = "", string? cacheDirectory = null)
    {
        _trainTokens = TokenStore.Cached(cacheDirectory, tokenizerIdentity, corpus.Train, tokenizer.Encode, out bool trainHit);
        _validationTokens = TokenStore.Cached(cacheDirectory, tokenizerIdentity, corpus.Validation, tokenizer.Encode, out bool validationHit);
        long train = _trainTokens.Length, validation = _validationTokens.Length;
        _train = new TokenWindows(backend, _trainTokens, batchSize, sequenceLength, seed, "training");
        int validationBatch = (int)Math.Max(1, Math.Min(batchSize, (validation - 1L) / sequenceLength));
        _validation = new TokenWindows(backend, _validationTokens, validationBatch, sequenceLength, seed, "validation");
        string cache = cacheDirectory is null ? "" : trainHit && validationHit ? ", token files mapped from the cache" : ", tokenised into the cache";
        _description = $"{corpus.Source}: {train:N0} training and {validation:N0} validation tokens ({tokenizer.VocabularySize} token vocabulary{cache})";
        TrainTokens = train;
    }

    /// <summary>Tokens of the training split.</summary>
    public long TrainTokens { get; }

    /// <inheritdoc/>
    public string Describe() => _description;

    /// <inheritdoc/>
    public Batch Next()
    {
        _train.Next();
        return new Batch(_train.Inputs, _train.Targets, null);
    }

    /// <inheritdoc/>
    public DataPosition Position
    {
        get => _train.Position;
        set => _train.Position = value;
    }

    /// <summary>Rank <paramref name="index"/> of <paramref name="count"/> reads windows [index B, (index + 1) B) of every global batch of count x B.</summary>
    public void SetShard(int index, int count) => _train.SetShard(index, count);

    /// <inheritdoc/>
    public IEnumerable<Batch> Validation(int maxBatches) => _validation.Sequential(maxBatches).Select(b => new Batch(b.Inputs, b.Targets, null));

    /// <summary>Frees the batch buffers and the token stores.</summary>
    public void Dispose()
    {
        _train.Dispose();
        _validation.Dispose();
        _trainTokens.Dispose();
        _validationTokens.Dispose();
    }
}
