using Flora.Backends;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Data;

/// <summary>Where a <see cref="TokenWindows"/> stands: the pass over the data and the next window of that pass.</summary>
/// <param name="Epoch">The pass, from 0; each pass has its own window order.</param>
/// <param name="Index">The next window of the pass's order to read (of the global batch, with data parallelism).</param>
public readonly record struct DataPosition(long Epoch, long Index);

/// <summary>
/// Language-modelling batches from a token stream: the stream is cut into windows of T + 1 tokens
/// (stride T, so every token is a target once per pass), each pass visits the windows in a fresh
/// permutation drawn from (seed, pass), and a batch is B windows: inputs (B, T) = window[0, T),
/// targets (B, T) = window[1, T + 1). The position (pass, index) is all a checkpoint needs to resume
/// the same sequence of batches. Device tensors are allocated once and refilled.
/// </summary>
public sealed class TokenWindows : IDisposable
{
    private readonly IBackend _backend;
    private readonly TokenStore _tokens;
    private readonly ulong _seed;
    private readonly int[] _hostInputs, _hostTargets;
    private int[] _order = [];
    private long _orderEpoch = -1;

    /// <summary>
    /// Windows over the token ids <paramref name="tokens"/> (held, not copied): batches of <paramref name="batchSize"/>
    /// windows of <paramref name="sequenceLength"/> + 1 tokens, the order of each pass drawn from <paramref name="seed"/>.
    /// <paramref name="name"/> names the text in errors.
    /// </summary>
    /// <exception cref="ArgumentException">The batch size or sequence length is not positive.</exception>
    /// <exception cref="FloraException">The text has fewer windows than one batch.</exception>
    public TokenWindows(IBackend backend, int[] tokens, int batchSize, int sequenceLength, ulong seed, string name = "training")
        : this(backend, TokenStore.FromArray(tokens), batchSize, sequenceLength, seed, name) { }

    /// <summary>Windows over a token store (in memory or a mapped token file); the store must outlive this object.</summary>
    public TokenWindows(IBackend backend, TokenStore tokens, int batchSize, int sequenceLength, ulong seed, string name = "training")
    {
        if (batchSize <= 0 || sequenceLength <= 0) throw new ArgumentException($"batch size ({batchSize}) and sequence length ({sequenceLength}) must be positive");
        _backend = backend;
        _tokens = tokens;
        _seed = seed;
        BatchSize = batchSize;
        SequenceLength = sequenceLength;
        WindowCount = tokens.Length > sequenceLength ? (tokens.Length - 1) / sequenceLength : 0;
        if (WindowCount > int.MaxValue) throw new FloraException($"the {name} text has {tokens.Length:N0} tokens: more windows than one pass can index");
        if (WindowCount < batchSize)
            throw new FloraException($"the {name} text has {tokens.Length:N0} tokens: {WindowCount} windows of {sequenceLength + 1}, fewer than one batch of {batchSize}; use a smaller --batch or --seq-len, or more text");
        _hostInputs = new int[batchSize * sequenceLength];
        _hostTargets = new int[batchSize * sequenceLength];
        Inputs = backend.Allocate(new Shape(batchSize, sequenceLength), MemoryTag.Activations, DType.Int32);
        Targets = backend.Allocate(new Shape(batchSize, sequenceLength), MemoryTag.Activations, DType.Int32);
    }

    /// <summary>B, the windows per batch of this reader.</summary>
    public int BatchSize { get; }

    /// <summary>T, the input (and target) tokens per window.</summary>
    public int SequenceLength { get; }

    /// <summary>Windows per pass: (tokens - 1) / T, rounded down.</summary>
    public long WindowCount { get; }

    /// <summary>The Int32 inputs (B, T) of the current batch, owned by this object and refilled by <see cref="Next"/>.</summary>
    public Tensor Inputs { get; }

    /// <summary>The Int32 targets (B, T) of the current batch (the inputs shifted by one token), owned and refilled like <see cref="Inputs"/>.</summary>
    public Tensor Targets { get; }

    /// <summary>The next batch to read; set it to resume from a checkpoint.</summary>
    public DataPosition Position { get; set; }

    /// <summary>This reader's shard (data-parallel rank) and the number of shards; 0 of 1 reads everything.</summary>
    public (int Index, int Count) Shard { get; private set; } = (0, 1);

    /// <summary>
    /// Data parallel: each of <paramref name="count"/> readers (ranks) takes its own rows of every global batch of
    /// <paramref name="count"/> x <see cref="BatchSize"/> windows: reader k reads windows [k B, (k + 1) B) of it. So the
    /// readers together read exactly what one reader with batch count x B would, no window twice in a pass, and the
    /// position (a window index of the global batch) is the same on every rank.
    /// </summary>
    public void SetShard(int index, int count)
    {
        if (count <= 0 || index < 0 || index >= count) throw new ArgumentException($"shard {index} of {count} does not exist");
        if (WindowCount < (long)BatchSize * count)
            throw new FloraException($"{count} ranks x batch {BatchSize} = {BatchSize * (long)count} windows per step, but the text has only {WindowCount} windows of {SequenceLength + 1} tokens; use a smaller --batch or --seq-len, or more text");
        Shard = (index, count);
    }

    /// <summary>Fills <see cref="Inputs"/> and <see cref="Targets"/> with the next batch (drops an epoch's last partial batch).</summary>
    public void Next()
    {
        long global = (long)BatchSize * Shard.Count;                       // windows every rank together reads per batch
        if (Position.Index + global > WindowCount) Position = new DataPosition(Position.Epoch + 1, 0);
        int[] order = OrderOf(Position.Epoch);
        long first = Position.Index + (long)Shard.Index * BatchSize;
        for (int b = 0; b < BatchSize; b++)
        {
            long start = (long)order[first + b] * SequenceLength;
            _tokens.Slice(start, SequenceLength).CopyTo(_hostInputs.AsSpan(b * SequenceLength));
            _tokens.Slice(start + 1, SequenceLength).CopyTo(_hostTargets.AsSpan(b * SequenceLength));
        }
        Position = Position with { Index = Position.Index + global };
        _backend.Upload(_hostInputs, Inputs);
        _backend.Upload(_hostTargets, Targets);
    }

    /// <summary>The window order of a pass: a permutation from (seed, pass).</summary>
    private int[] OrderOf(long epoch)
    {
        if (_orderEpoch == epoch) return _order;
        var order = new int[WindowCount];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        new Random((int)(Seeds.Derive(_seed, (ulong)epoch) & 0x7FFFFFFF)).Shuffle(order);
        (_order, _orderEpoch) = (order, epoch);
        return order;
    }

    /// <summary>The windows in order, for evaluation: batch after batch until <paramref name="maxBatches"/> or the end.</summary>
    public IEnumerable<(Tensor Inputs, Tensor Targets)> Sequential(int maxBatches)
    {
        for (int batch = 0; batch < maxBatches && (batch + 1) * BatchSize <= WindowCount; batch++)
        {
            for (int b = 0; b < BatchSize; b++)
            {
                long start = ((long)batch * BatchSize + b) * SequenceLength;
                _tokens.Slice(start, SequenceLength).CopyTo(_hostInputs.AsSpan(b * SequenceLength));
                _tokens.Slice(start + 1, SequenceLength).CopyTo(_hostTargets.AsSpan(b * SequenceLength));
            }
            _backend.Upload(_hostInputs, Inputs);
            _backend.Upload(_hostTargets, Targets);
            yield return (Inputs, Targets);
        }
    }

    /// <summary>Frees <see cref="Inputs"/> and <see cref="Targets"/>; the token store is borrowed and stays open.</summary>
    public void Dispose()
    {
        Inputs.Dispose();
        Targets.Dispose();
    }
}
