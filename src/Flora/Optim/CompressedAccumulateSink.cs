using System.Text.Json;
using Flora.Backends;
using Flora.Checkpoints;
using Flora.Nn;
using Flora.Tensors;

namespace Flora.Optim;

/// <summary>
/// FLORA's compressed gradient accumulation (Algorithm 1). Per matrix W (n, m) it keeps only
/// C (n, r) or (r, m) and a seed; each micro-batch gradient lives in the shared scratch just long
/// enough to be compressed:
/// <code>
/// for i in 1..tau:  C += compress_s(G_i)            # G A^T, A ~ N_s(0, 1/r)       (line 9)
/// G~ = decompress_s(C) / tau                          # C A / tau                    (line 14)
/// optimizer.Update(W, G~); s = new seed               # next cycle, new projection
/// </code>
/// The seed of cycle k is Derive(ForName(root, name), k). With <c>immediate</c> (LOMO) the update of
/// each matrix happens inside the last backward pass of the cycle, the moment its last gradient is
/// compressed; otherwise after that pass, in <see cref="EndMicroBatch"/>. Either way no full-size
/// buffer exists per parameter: decompression reuses the shared scratch.
/// With tau = 1 this is the pilot study's RRP; with <c>resample: false</c> the seed never changes (RP).
/// Only matrices are accepted; route vectors and ineligible matrices to an <see cref="AccumulateSink"/>.
/// </summary>
public sealed class CompressedAccumulateSink : IGradientSink, IStatefulSink, IDataParallelSink, IDisposable
{
    private readonly IBackend _backend;
    private readonly TensorSlot _scratch;
    private readonly Optimizer _optimizer;
    private readonly RandomProjection _projection;
    private readonly ulong _rootSeed;
    private readonly bool _resample;
    private readonly bool _immediate;
    private readonly Dictionary<Parameter, State> _states = new();
    private readonly List<State> _pending = new();
    private int _microBatches;

    /// <summary>Per-parameter state: the compressed accumulator and where its projection comes from.</summary>
    private sealed class State(Parameter parameter, Tensor accumulator, CompressedAxis axis, ulong parameterSeed)
    {
        public Parameter Parameter { get; } = parameter;
        public Tensor Accumulator { get; } = accumulator;
        public CompressedAxis Axis { get; } = axis;
        public ulong ParameterSeed { get; } = parameterSeed;
        public ulong Cycle { get; set; }
        public bool Started { get; set; }
        public ulong Seed => Seeds.Derive(ParameterSeed, Cycle);
    }

    /// <summary>
    /// Compressed accumulation at rank <paramref name="rank"/> r over <paramref name="accumulationSteps"/> tau
    /// micro-batches: gradients are computed into <paramref name="scratch"/>, accumulators live on
    /// <paramref name="backend"/>, and <paramref name="optimizer"/> applies each decompressed mean.
    /// </summary>
    /// <param name="backend">Allocates the accumulators (tagged <see cref="MemoryTag.Accumulator"/>) and the projections.</param>
    /// <param name="scratch">The pipeline's shared full-size buffer: gradients and decompressed means, one at a time.</param>
    /// <param name="optimizer">Applies the update to the decompressed mean.</param>
    /// <param name="rank">r: an (n, m) matrix accumulates in (n, r) or (r, m).</param>
    /// <param name="accumulationSteps">tau: micro-batches per update.</param>
    /// <param name="seed">Root of the projection seeds: cycle k of parameter p uses Derive(ForName(seed, p), k).</param>
    /// <param name="resample">
    /// A new projection every cycle (true, FLORA); false keeps the first one (the pilot study's RP).
    /// </param>
    /// <param name="immediate">Update each matrix inside the last backward pass of a cycle (LOMO).</param>
    /// <exception cref="ArgumentException">The number of accumulation steps or the rank is not positive.</exception>
    public CompressedAccumulateSink(IBackend backend, TensorSlot scratch, Optimizer optimizer, int rank,
        int accumulationSteps = 1, ulong seed = 0, bool resample = true, bool immediate = false)
    {
        if (accumulationSteps <= 0) throw new ArgumentException($"accumulation steps must be positive, got {accumulationSteps}", nameof(accumulationSteps));
        _backend = backend;
        _scratch = scratch;
        _optimizer = optimizer;
        _projection = new RandomProjection(backend, rank);
        _rootSeed = seed;
        _resample = resample;
        _immediate = immediate;
        AccumulationSteps = accumulationSteps;
    }

    /// <summary>tau: micro-batches per update.</summary>
    public int AccumulationSteps { get; }
    /// <summary>r: an (n, m) matrix accumulates in (n, r) or (r, m).</summary>
    public int Rank => _projection.Rank;

    /// <summary>Seed of the projection <paramref name="parameter"/> uses in the current cycle.</summary>
    public ulong CurrentSeed(Parameter parameter) => StateOf(parameter).Seed;

    /// <summary>New projections drawn so far per matrix (completed cycles; the largest over the matrices): 0 without resampling.</summary>
    public long Resamplings => _states.Count == 0 ? 0 : (long)_states.Values.Max(s => s.Cycle);

    /// <summary>Bytes of all compressed accumulators.</summary>
    public long AccumulatorBytes => _states.Values.Sum(s => s.Accumulator.Bytes);

    private bool LastMicroBatch => _microBatches == AccumulationSteps - 1;

    /// <inheritdoc/>
    public GradientTarget Target(Parameter parameter) => GradientTarget.Overwrite(_scratch.Get(parameter.Shape));

    /// <inheritdoc/>
    public void OnGradient(Parameter parameter, Tensor gradient)
    {
        State s = StateOf(parameter);
        Tensor a = _projection.Generate(s.Seed, parameter.Shape, s.Axis);
        _projection.Compress(gradient, a, s.Accumulator, s.Axis, beta: s.Started ? 1f : 0f);   // C += G A^T
        if (!s.Started) { s.Started = true; _pending.Add(s); }
        if (_immediate && LastMicroBatch)
        {
            Reducer?.Reduce(parameter, s.Accumulator, GradientForm.Compressed);    // data parallel: mean_k C_k, before decompression
            Flush(s, a, gradient);
        }
        else if (Reducer is not null && LastMicroBatch)
        {
            int arrived = _arrivals.GetValueOrDefault(parameter) + 1;
            if (arrived < parameter.UsesPerStep) { _arrivals[parameter] = arrived; return; }
            _arrivals[parameter] = 0;
            if (_reduced.Add(s)) Reducer.Ready(parameter, s.Accumulator, GradientForm.Compressed);   // final for this cycle
        }
    }

    /// <summary>
    /// Data parallel: averages each compressed accumulator across ranks before decompression (null in a single
    /// process). Every rank projects with the same seed, so the mean of the accumulators is the accumulator of the
    /// mean gradient: the all-reduce moves r x max(n, m) numbers per matrix instead of n x m.
    /// </summary>
    public IGradientReducer? Reducer { get; set; }

    private readonly Dictionary<Parameter, int> _arrivals = new();
    private readonly HashSet<State> _reduced = new();

    /// <inheritdoc/>
    public void EndMicroBatch()
    {
        if (++_microBatches < AccumulationSteps) return;
        if (Reducer is not null)
        {
            foreach (State s in _pending)
                if (s.Started && _reduced.Add(s)) Reducer.Ready(s.Parameter, s.Accumulator, GradientForm.Compressed);
            Reducer.Complete();
            _reduced.Clear();
        }
        foreach (State s in _pending)
            if (s.Started) Flush(s, _projection.Generate(s.Seed, s.Parameter.Shape, s.Axis), _scratch.Get(s.Parameter.Shape));
        _pending.Clear();
        _microBatches = 0;
    }

    /// <summary>G~ = C A / tau into <paramref name="buffer"/>, update, next cycle.</summary>
    private void Flush(State s, Tensor a, Tensor buffer)
    {
        _projection.Decompress(s.Accumulator, a, buffer, s.Axis, 1f / AccumulationSteps);         // G~ = C A / tau
        _optimizer.Update(s.Parameter, buffer);
        s.Started = false;
        if (_resample) s.Cycle++;
    }

    private sealed record SavedState(ulong Cycle, bool Started);

    /// <summary>Cycle numbers (which fix the seeds) of every matrix, and the accumulators of a cycle in progress.</summary>
    public void SaveState(SafeTensorsWriter writer, string prefix)
    {
        writer.AddMetadata(prefix + "micro_batches", _microBatches.ToString(System.Globalization.CultureInfo.InvariantCulture));
        writer.AddMetadata(prefix + "cycles", JsonSerializer.Serialize(_states.Values.ToDictionary(s => s.Parameter.Name, s => new SavedState(s.Cycle, s.Started))));
        foreach (var s in _states.Values.Where(s => s.Started)) writer.Add(prefix + s.Parameter.Name, s.Accumulator);
    }

    /// <inheritdoc/>
    public void LoadState(SafeTensorsFile file, string prefix)
    {
        _microBatches = int.Parse(AccumulateSink.Meta(file, prefix + "micro_batches"), System.Globalization.CultureInfo.InvariantCulture);
        if (_microBatches < 0 || _microBatches >= AccumulationSteps)
            throw new InvalidDataException($"{file.Path}: {_microBatches} micro-batches accumulated, but a cycle has {AccumulationSteps}");
        var saved = JsonSerializer.Deserialize<Dictionary<string, SavedState>>(AccumulateSink.Meta(file, prefix + "cycles")) ?? [];
        var byName = _parametersByName ?? throw new InvalidOperationException("CompressedAccumulateSink: call Register before loading a state");
        _pending.Clear();
        foreach (var (name, state) in saved)
        {
            if (!byName.TryGetValue(name, out var p)) throw new InvalidDataException($"{file.Path}: compressed accumulator of unknown parameter '{name}'");
            State s = StateOf(p);
            s.Cycle = state.Cycle;
            s.Started = state.Started;
            if (!s.Started) continue;
            file.ReadInto(prefix + name, s.Accumulator);
            _pending.Add(s);
        }
    }

    /// <inheritdoc/>
    public void Discard()
    {
        foreach (State s in _pending) s.Started = false;                   // the next gradient overwrites C (same seed)
        _pending.Clear();
        _microBatches = 0;
    }

    private Dictionary<string, Parameter>? _parametersByName;

    /// <summary>The parameters this sink may see, so that a saved state can be matched by name on load.</summary>
    public void Register(IEnumerable<Parameter> parameters) => _parametersByName = parameters.ToDictionary(p => p.Name);

    private State StateOf(Parameter parameter)
    {
        if (_states.TryGetValue(parameter, out State? s)) return s;
        if (parameter.Shape.Rank != 2)
            throw new ArgumentException($"'{parameter.Name}' {parameter.Shape} is not a matrix: route it to an uncompressed sink");
        if (_immediate && parameter.UsesPerStep > 1)
            throw new ArgumentException($"'{parameter.Name}' receives {parameter.UsesPerStep} gradients per step: route it to an uncompressed sink under LOMO");
        CompressedAxis axis = RandomProjection.AxisFor(parameter.Shape);
        _projection.CheckRank(parameter.Shape, axis, parameter.Name);
        Tensor c = _backend.Allocate(_projection.CompressedShape(parameter.Shape, axis), MemoryTag.Accumulator);
        s = new State(parameter, c, axis, Seeds.ForName(_rootSeed, parameter.Name));
        _states.Add(parameter, s);
        return s;
    }

    /// <summary>Frees every accumulator and the projection scratch.</summary>
    public void Dispose()
    {
        foreach (State s in _states.Values) s.Accumulator.Dispose();
        _states.Clear();
        _projection.Dispose();
    }
}
