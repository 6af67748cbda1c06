using Flora.Backends;
using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Distributed;

/// <summary>Wire compression of full gradients: the rank of the projection and the root of its seeds.</summary>
/// <param name="Rank">r: an eligible (n, m) matrix travels as (n, r) or (r, m) (<see cref="FloraRules"/>, smaller side compressed).</param>
/// <param name="Seed">Root seed; the projection of parameter p at step t is regenerated from Derive(ForName(Seed, p), t) on every rank.</param>
public sealed record WireCompression(int Rank, ulong Seed);

/// <summary>
/// The data-parallel gradient reducer: gradients made ready are gathered into buckets of about
/// <see cref="BucketBytes"/> in the order backward produces them, and each full bucket is all-reduced (mean)
/// at once, so communication overlaps the rest of backward (PyTorch DDP's scheme). With
/// <see cref="WireCompression"/> (<c>--allreduce compressed</c>), each FLORA-eligible matrix G is sent compressed,
/// using the projection A that every rank regenerates from the shared seed and the step:
/// <code>
/// C_k = G_k A^T            (each rank k; (n, r) instead of (n, m))
/// C   = mean_k C_k          (the all-reduce: r/m of the bytes)
/// G~  = C A = (mean_k G_k) A^T A      (compression is linear: average-then-compress equals compress-then-average)
/// </code>
/// E[A^T A] = I, so G~ is an unbiased estimate of the mean gradient; vectors and embeddings go uncompressed.
/// Bytes are counted: <see cref="PayloadBytes"/> what was all-reduced, <see cref="FullBytes"/> what plain
/// all-reduce of full gradients would have been.
/// </summary>
public sealed class GradientReducer : IGradientReducer, IDisposable
{
    /// <summary>PyTorch DDP's default bucket size, 25 MiB.</summary>
    public const long DefaultBucketBytes = 25L << 20;

    private readonly IBackend _backend;
    private readonly ICommunicator _communicator;
    private readonly RandomProjection? _projection;
    private readonly Dictionary<Parameter, Tensor> _wire = new();
    private readonly List<Tensor> _bucket = new();
    private readonly List<(Parameter Parameter, Tensor Gradient, Tensor Compressed)> _decompress = new();
    private long _bucketBytes;

    /// <summary>A reducer over <paramref name="communicator"/> for gradients on <paramref name="backend"/>.</summary>
    public GradientReducer(IBackend backend, ICommunicator communicator, WireCompression? compression = null, long bucketBytes = DefaultBucketBytes)
    {
        if (bucketBytes <= 0) throw new ArgumentException($"bucket size must be positive, got {bucketBytes}");
        _backend = backend;
        _communicator = communicator;
        Compression = compression;
        BucketBytes = bucketBytes;
        if (compression is not null) _projection = new RandomProjection(backend, compression.Rank);
    }

    /// <summary>The ranks this reducer averages over.</summary>
    public ICommunicator Communicator => _communicator;

    /// <summary>Wire compression of full gradients, or null (plain all-reduce).</summary>
    public WireCompression? Compression { get; }

    /// <summary>A bucket is all-reduced once it holds at least this many bytes.</summary>
    public long BucketBytes { get; }

    /// <summary>The training step: with wire compression it selects the projection (a new one every step).</summary>
    public long Step { get; set; }

    /// <summary>Bytes all-reduced so far (per rank: what each rank contributed).</summary>
    public long PayloadBytes { get; private set; }

    /// <summary>Bytes a plain all-reduce of the same full gradients would have contributed.</summary>
    public long FullBytes { get; private set; }

    /// <summary>All-reduce launches (buckets) so far.</summary>
    public long Launches { get; private set; }

    /// <summary>Matrices sent compressed on the wire (with <see cref="Compression"/>).</summary>
    public int CompressedMatrices => _wire.Count;

    /// <summary>Parameters whose sinks handed over compressed accumulators (<see cref="GradientForm.Compressed"/>).</summary>
    public int CompressedFormMatrices => _compressedForm.Count;

    private readonly HashSet<Parameter> _compressedForm = new();

    /// <summary>The projection seed of <paramref name="parameter"/> at <paramref name="step"/> (the same on every rank).</summary>
    public ulong SeedFor(Parameter parameter, long step) =>
        Seeds.Derive(Seeds.ForName(Compression?.Seed ?? throw new InvalidOperationException("no wire compression"), parameter.Name), (ulong)step);

    /// <summary>Whether <paramref name="parameter"/>'s full gradient is compressed on the wire.</summary>
    public bool Compresses(Parameter parameter) => Compression is { } c && FloraRules.IsEligible(parameter.Shape, c.Rank);

    /// <inheritdoc/>
    public void Ready(Parameter parameter, Tensor gradient, GradientForm form)
    {
        FullBytes += (long)parameter.Value.Count * DType.Float32.Size();                  // the fp32 gradient, whatever the weight type
        if (form == GradientForm.Compressed) _compressedForm.Add(parameter);
        Tensor payload = gradient;
        if (form == GradientForm.Full && Compresses(parameter))
        {
            CompressedAxis axis = RandomProjection.AxisFor(parameter.Shape);
            if (!_wire.TryGetValue(parameter, out var c))
                _wire[parameter] = c = _backend.Allocate(_projection!.CompressedShape(parameter.Shape, axis), MemoryTag.Gradients);
            Tensor a = _projection!.Generate(SeedFor(parameter, Step), parameter.Shape, axis);
            _projection.Compress(gradient, a, c, axis);                                    // C_k = G_k A^T
            _decompress.Add((parameter, gradient, c));
            payload = c;
        }
        _bucket.Add(payload);
        _bucketBytes += payload.Bytes;
        PayloadBytes += payload.Bytes;
        if (_bucketBytes >= BucketBytes) Launch();
    }

    /// <inheritdoc/>
    public void Complete()
    {
        Launch();
        _communicator.Wait();
        foreach (var (parameter, gradient, c) in _decompress)
        {
            CompressedAxis axis = RandomProjection.AxisFor(parameter.Shape);
            Tensor a = _projection!.Generate(SeedFor(parameter, Step), parameter.Shape, axis);
            _projection.Decompress(c, a, gradient, axis);                                  // G~ = (mean_k C_k) A
        }
        _decompress.Clear();
    }

    /// <inheritdoc/>
    public void Reduce(Parameter parameter, Tensor gradient, GradientForm form)
    {
        Ready(parameter, gradient, form);
        Complete();
    }

    private void Launch()
    {
        if (_bucket.Count == 0) return;
        _communicator.StartAllReduce(_bucket.ToArray(), ReduceOp.Average);
        Launches++;
        _bucket.Clear();
        _bucketBytes = 0;
    }

    /// <summary>Frees the compressed wire buffers and the projection scratch.</summary>
    public void Dispose()
    {
        foreach (var c in _wire.Values) c.Dispose();
        _wire.Clear();
        _projection?.Dispose();
    }
}
