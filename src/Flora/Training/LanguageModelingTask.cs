using Flora.Backends;
using Flora.Data;
using Flora.Data.Corpora;
using Flora.Data.Tokenizers;
using Flora.Tensors;

namespace Flora.Training;

/// <summary>One training or evaluation batch: token ids in, next-token targets out, and a source for encoder-decoders.</summary>
public readonly record struct Batch(Tensor Inputs, Tensor Targets, Tensor? Source)
{
    public int Tokens => Targets.Count;
}

/// <summary>What the trainer trains on: batches, the data position (for checkpoints) and validation batches.</summary>
public interface ITrainingTask : IDisposable
{
    string Describe();
    Batch Next();
    DataPosition Position { get; set; }
    IEnumerable<Batch> Validation(int maxBatches);
}

/// <summary>
/// Next-token prediction on a text corpus (the embedded English corpus by default): the training and
/// validation splits tokenised once, cut into windows by <see cref="TokenWindows"/>.
/// </summary>
public sealed class LanguageModelingTask : ITrainingTask
{
    private readonly TokenWindows _train, _validation;
    private readonly string _description;

    public LanguageModelingTask(IBackend backend, TextCorpus corpus, ByteLevelBpe tokenizer, int batchSize, int sequenceLength, ulong seed)
    {
        int[] train = tokenizer.Encode(corpus.Train), validation = tokenizer.Encode(corpus.Validation);
        _train = new TokenWindows(backend, train, batchSize, sequenceLength, seed, "training");
        int validationBatch = Math.Max(1, Math.Min(batchSize, (int)((validation.Length - 1L) / sequenceLength)));
        _validation = new TokenWindows(backend, validation, validationBatch, sequenceLength, seed, "validation");
        _description = $"{corpus.Source}: {train.Length:N0} training and {validation.Length:N0} validation tokens ({tokenizer.VocabularySize} token vocabulary)";
        TrainTokens = train.Length;
    }

    public long TrainTokens { get; }

    public string Describe() => _description;

    public Batch Next()
    {
        _train.Next();
        return new Batch(_train.Inputs, _train.Targets, null);
    }

    public DataPosition Position
    {
        get => _train.Position;
        set => _train.Position = value;
    }

    public IEnumerable<Batch> Validation(int maxBatches) => _validation.Sequential(maxBatches).Select(b => new Batch(b.Inputs, b.Targets, null));

    public void Dispose()
    {
        _train.Dispose();
        _validation.Dispose();
    }
}
