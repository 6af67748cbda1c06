using System.Diagnostics;
using System.Text.Json.Serialization;
using Flora.Backends;
using Flora.Backends.Cpu;
using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Experiments;

/// <summary>The base optimizer whose state is measured.</summary>
public enum MemoryBase
{
    /// <summary>Adafactor (factored second moment by default), the paper's base optimizer.</summary>
    Adafactor,
    /// <summary>AdamW: a full second moment v and a first moment m, always.</summary>
    AdamW,
}

/// <summary>Which of the paper's two experiments a row belongs to.</summary>
public enum MemorySetting
{
    /// <summary>Paper Table 2: the optimizer keeps momentum; what differs is the optimizer state.</summary>
    Momentum,
    /// <summary>Paper Table 1: gradients are accumulated over tau micro-batches; what differs is the accumulation buffers.</summary>
    Accumulation,
}

/// <summary>The four methods of the paper's tables.</summary>
public enum MemoryMethod
{
    /// <summary>No momentum, or no accumulation.</summary>
    None,
    /// <summary>Full-size momentum, or full-size gradient buffers.</summary>
    Naive,
    /// <summary>LoRA(r): the model frozen, the base optimizer over adapters A (r, in) and B (out, r) only.</summary>
    Lora,
    /// <summary>FLORA(r): compressed momentum (Algorithm 2) or compressed accumulation (Algorithm 1).</summary>
    Flora,
}

/// <summary>Settings of a memory study.</summary>
public sealed record MemoryStudyOptions
{
    /// <summary>Rank r of FLORA's projections and of the LoRA adapters.</summary>
    public int Rank { get; init; } = 32;

    /// <summary>Micro-batches per update (tau) of the accumulation setting; memory does not depend on it.</summary>
    public int AccumulationSteps { get; init; } = 16;

    /// <summary>Adafactor's factored second moment (the paper's setting); false keeps a full-size one.</summary>
    public bool Factored { get; init; } = true;

    public IReadOnlyList<MemoryBase> Bases { get; init; } = Enum.GetValues<MemoryBase>();
    public IReadOnlyList<MemorySetting> Settings { get; init; } = Enum.GetValues<MemorySetting>();

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad setting.</summary>
    public void Validate()
    {
        if (Rank <= 0) throw new ArgumentException($"rank must be positive, got {Rank}");
        if (AccumulationSteps <= 0) throw new ArgumentException($"accumulation steps (tau) must be positive, got {AccumulationSteps}");
        if (Bases.Count == 0) throw new ArgumentException("no base optimizer selected");
        if (Settings.Count == 0) throw new ArgumentException("no setting selected");
    }
}

/// <summary>Bytes of one kind of memory: read from the <see cref="MemoryLedger"/> and computed by <see cref="MemoryFormula"/>.</summary>
public sealed record MemoryFigure(long Measured, long Formula)
{
    public bool Match => Measured == Formula;
}

/// <summary>
/// One method of one setting on one base optimizer. Not-available rows (AdamW without a first moment)
/// carry no figures. <see cref="State"/> is the optimizer state (tag OptimizerState), <see cref="Accumulator"/>
/// the buffers that hold gradients across micro-batches (tags Gradients and Accumulator; accumulation setting
/// only), <see cref="Adapters"/> the LoRA adapter parameters (zero for the other methods).
/// </summary>
public sealed record MemoryRow(
    MemorySetting Setting,
    MemoryBase Base,
    MemoryMethod Method,
    string Label,
    string Description,
    MemoryFigure? State,
    MemoryFigure? Accumulator,
    MemoryFigure? Adapters,
    long TrainableParameters,
    long ScratchPeakBytes,
    double? RatioToNaive)
{
    public bool Available => State is not null;

    /// <summary>The figure the setting is about: optimizer state (momentum) or accumulation buffers (accumulation).</summary>
    [JsonIgnore]
    public MemoryFigure? Primary => Setting == MemorySetting.Momentum ? State : Accumulator;

    /// <summary>Every figure of the row equals its formula (false for a not-available row).</summary>
    public bool Match => Available && (State?.Match ?? true) && (Accumulator?.Match ?? true) && (Adapters?.Match ?? true);
}

/// <summary>The outcome of <see cref="MemoryStudy.Run"/>.</summary>
public sealed record MemoryStudyResult(
    string Model,
    long Parameters,
    long ParameterBytes,
    int Tensors,
    int Matrices,
    int EligibleMatrices,
    int Rank,
    int AccumulationSteps,
    bool Factored,
    IReadOnlyList<MemoryRow> Rows,
    double Seconds)
{
    /// <summary>Every available row's measured bytes equal the formula.</summary>
    public bool AllMatch => Rows.Where(r => r.Available).All(r => r.Match);
}

/// <summary>
/// Exact memory of the paper's methods for one model shape (<see cref="ParameterTable"/>), measured and computed.
/// For each base optimizer (Adafactor as in the paper, and AdamW) and each setting, the methods None, Naive,
/// LoRA(r) and FLORA(r) are set up for real on a <see cref="CpuBackend"/> with a fresh <see cref="MemoryLedger"/>:
/// the model's parameters are allocated, the optimizer created and all its state forced
/// (<see cref="Optimizer.States"/>); in the accumulation setting the gradient pipeline is built with
/// <see cref="PipelineOptions.Build"/> and one backward pass is faked (every trainable parameter receives a
/// zero gradient through its target, and the micro-batch is never ended) so that every buffer exists.
/// The ledger's bytes are then set against <see cref="MemoryFormula"/>, which computes them from the shapes alone.
/// <para>
/// Methods. Momentum setting (Table 2): None = the base without a first moment (not available for AdamW,
/// which always keeps m); Naive = full-size momentum, beta 0.9 (for AdamW: m and v); FLORA = compressed
/// momentum, <see cref="MomentumOptions.Flora"/> (for AdamW: compressed m, full v); LoRA = the base with
/// naive momentum over adapters A (r, in), B (out, r) of every FLORA-eligible matrix, the model frozen.
/// Accumulation setting (Table 1), base without momentum (AdamW: plain m and v): None = tau = 1 with each
/// update applied inside backward from the shared scratch (LOMO), so no gradient outlives backward;
/// Naive = full-size gradient buffers; FLORA = compressed accumulators for eligible matrices and full
/// buffers for the rest; LoRA = gradient buffers of the adapters only.
/// </para>
/// Everything of one method is disposed before the next starts, so the peak is one method's memory.
/// </summary>
public static class MemoryStudy
{
    private const float LearningRate = 1e-3f, Beta = 0.9f;

    /// <summary>Display name of a method at rank <paramref name="rank"/>: None, Naive, LoRA(r), Flora(r).</summary>
    public static string Label(MemoryMethod method, int rank) => method switch
    {
        MemoryMethod.None => "None",
        MemoryMethod.Naive => "Naive",
        MemoryMethod.Lora => $"LoRA({rank})",
        _ => $"Flora({rank})",
    };

    /// <summary>Whether <paramref name="method"/> exists for <paramref name="base"/> in <paramref name="setting"/>.</summary>
    public static bool IsAvailable(MemorySetting setting, MemoryBase @base, MemoryMethod method) =>
        !(setting == MemorySetting.Momentum && @base == MemoryBase.AdamW && method == MemoryMethod.None);

    /// <summary>What the row measures, in words.</summary>
    public static string Describe(MemorySetting setting, MemoryBase @base, MemoryMethod method, int rank, int tau)
    {
        string b = @base == MemoryBase.Adafactor ? "Adafactor" : "AdamW";
        if (!IsAvailable(setting, @base, method)) return "n/a: AdamW always keeps a first moment m";
        if (setting == MemorySetting.Momentum)
            return (@base, method) switch
            {
                (MemoryBase.Adafactor, MemoryMethod.None) => "Adafactor without a first moment",
                (MemoryBase.Adafactor, MemoryMethod.Naive) => $"Adafactor with full-size momentum (beta {Beta})",
                (MemoryBase.Adafactor, MemoryMethod.Flora) => $"Adafactor with FLORA-compressed momentum, r = {rank} (Algorithm 2)",
                (MemoryBase.AdamW, MemoryMethod.Naive) => "AdamW, full-size m and v",
                (MemoryBase.AdamW, MemoryMethod.Flora) => $"AdamW with FLORA-compressed m, r = {rank}; full-size v",
                _ => $"{b} with naive momentum over LoRA adapters (r = {rank}) of the FLORA-eligible matrices; the model frozen",
            };
        string optimizer = @base == MemoryBase.Adafactor ? "Adafactor without momentum" : "plain AdamW";
        return method switch
        {
            MemoryMethod.None => $"{optimizer}; tau = 1, each update applied inside backward from the shared scratch (LOMO): no buffer",
            MemoryMethod.Naive => $"{optimizer}; tau = {tau}, a full-size gradient buffer per parameter",
            MemoryMethod.Flora => $"{optimizer}; tau = {tau}, compressed accumulators (r = {rank}, Algorithm 1) for eligible matrices, full buffers for the rest",
            _ => $"{optimizer} over LoRA adapters (r = {rank}); tau = {tau}, gradient buffers of the adapters only",
        };
    }

    /// <summary>Measures every selected setting, base and method of <paramref name="table"/>.</summary>
    public static MemoryStudyResult Run(ParameterTable table, MemoryStudyOptions options, Action<MemoryRow>? rowDone = null)
    {
        ArgumentNullException.ThrowIfNull(table);
        options.Validate();
        var clock = Stopwatch.StartNew();
        var rows = new List<MemoryRow>();
        foreach (var setting in options.Settings.Distinct())
            foreach (var @base in options.Bases.Distinct())
            {
                var group = new List<MemoryRow>();
                foreach (var method in Enum.GetValues<MemoryMethod>())
                {
                    var row = Measure(table, setting, @base, method, options);
                    group.Add(row);
                    rowDone?.Invoke(row);
                }
                long? naive = group.Single(r => r.Method == MemoryMethod.Naive).Primary?.Measured;
                rows.AddRange(group.Select(r => r with
                {
                    RatioToNaive = r.Primary is { } p && naive is > 0 ? (double)p.Measured / naive.Value : null,
                }));
            }
        return new MemoryStudyResult(table.Name, table.ParameterCount, table.Bytes, table.Entries.Count,
            table.Entries.Count(e => e.IsMatrix), table.EligibleMatrices(options.Rank), options.Rank,
            options.AccumulationSteps, options.Factored, rows, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Sets one method up for real and reads the ledger; the formula is computed alongside.</summary>
    public static MemoryRow Measure(ParameterTable table, MemorySetting setting, MemoryBase @base, MemoryMethod method, MemoryStudyOptions options)
    {
        ArgumentNullException.ThrowIfNull(table);
        options.Validate();
        string label = Label(method, options.Rank);
        string description = Describe(setting, @base, method, options.Rank, options.AccumulationSteps);
        if (!IsAvailable(setting, @base, method))
            return new MemoryRow(setting, @base, method, label, description, null, null, null, 0, 0, null);

        var ledger = new MemoryLedger();
        using var backend = new CpuBackend(ledger);
        var parameters = new List<Parameter>();
        try
        {
            parameters.AddRange(table.Allocate(backend));
            IReadOnlyList<Parameter> trainable = parameters.ToArray();
            long adapterBytes = 0;
            if (method == MemoryMethod.Lora)
            {
                foreach (var p in parameters) p.RequiresGrad = false;                // standard LoRA: the model is frozen
                long before = ledger.Current(MemoryTag.Parameters);
                var adapters = table.LoraAdapters(options.Rank).Allocate(backend);
                parameters.AddRange(adapters);
                adapterBytes = ledger.Current(MemoryTag.Parameters) - before;
                trainable = adapters;
            }

            using var optimizer = trainable.Count == 0 ? null : CreateOptimizer(backend, trainable, setting, @base, method, options);
            _ = optimizer?.States;                                                  // every state tensor, now
            long state = ledger.Current(MemoryTag.OptimizerState);

            long? accumulated = setting == MemorySetting.Accumulation ? MeasureAccumulation(backend, trainable, optimizer, method, options) : null;

            var formula = MemoryFormula.For(table, setting, @base, method, options);
            if (ledger.Current(MemoryTag.Parameters) != table.Bytes + adapterBytes)
                throw new InvalidOperationException($"{table.Name}: the ledger holds {ledger.Current(MemoryTag.Parameters):N0} parameter bytes, expected {table.Bytes + adapterBytes:N0}");
            return new MemoryRow(setting, @base, method, label, description,
                new MemoryFigure(state, formula.State),
                accumulated is long a ? new MemoryFigure(a, formula.Accumulator) : null,
                new MemoryFigure(adapterBytes, formula.Adapters),
                trainable.Sum(p => (long)p.Shape.Count), ledger.Peak(MemoryTag.Scratch), null);
        }
        finally
        {
            foreach (var p in parameters) p.Dispose();
        }
    }

    /// <summary>
    /// Builds the method's pipeline, fakes one backward pass and returns the bytes that hold gradients
    /// across micro-batches: full-size buffers (Gradients) and compressed accumulators (Accumulator),
    /// read while the pipeline still exists.
    /// </summary>
    private static long MeasureAccumulation(IBackend backend, IReadOnlyList<Parameter> trainable, Optimizer? optimizer,
        MemoryMethod method, MemoryStudyOptions options)
    {
        if (optimizer is null) return 0;                                           // nothing trainable (LoRA without an eligible matrix)
        using var pipeline = PipelineFor(method, options).Build(backend, trainable, optimizer);
        FakeBackward(backend, pipeline, trainable);
        return backend.Ledger.Current(MemoryTag.Gradients) + backend.Ledger.Current(MemoryTag.Accumulator);
    }

    private static Optimizer CreateOptimizer(IBackend backend, IReadOnlyList<Parameter> parameters,
        MemorySetting setting, MemoryBase @base, MemoryMethod method, MemoryStudyOptions o)
    {
        var momentum = MomentumFor(setting, @base, method, o.Rank);
        return @base == MemoryBase.Adafactor
            ? new Adafactor(backend, parameters, new AdafactorOptions { LearningRate = LearningRate, Factored = o.Factored, Momentum = momentum })
            : new AdamW(backend, parameters, LearningRate, momentum: momentum);
    }

    /// <summary>The first moment of a method: compressed only for FLORA in the momentum setting; AdamW always has one.</summary>
    public static MomentumOptions MomentumFor(MemorySetting setting, MemoryBase @base, MemoryMethod method, int rank)
    {
        if (setting == MemorySetting.Momentum)
            return method switch
            {
                MemoryMethod.None => MomentumOptions.None,
                MemoryMethod.Flora => MomentumOptions.Flora(rank, Beta),
                _ => MomentumOptions.Naive(Beta),
            };
        return @base == MemoryBase.AdamW ? MomentumOptions.Naive(Beta) : MomentumOptions.None;
    }

    /// <summary>The gradient path of a method in the accumulation setting.</summary>
    public static PipelineOptions PipelineFor(MemoryMethod method, MemoryStudyOptions o) => method switch
    {
        MemoryMethod.None => new PipelineOptions { Mode = AccumulationMode.None, Lomo = true },
        MemoryMethod.Flora => new PipelineOptions { Mode = AccumulationMode.Compressed, AccumulationSteps = o.AccumulationSteps, Rank = o.Rank },
        _ => new PipelineOptions { Mode = AccumulationMode.Naive, AccumulationSteps = o.AccumulationSteps },
    };

    /// <summary>
    /// One micro-batch of backward without a model: each trainable parameter gets a zero gradient in the
    /// target its sink chooses, then the sink is told it is complete. The micro-batch is not ended, so an
    /// accumulating sink stays inside its cycle (no update), and every buffer it needs now exists.
    /// </summary>
    private static void FakeBackward(IBackend backend, GradientPipeline pipeline, IReadOnlyList<Parameter> trainable)
    {
        foreach (var p in trainable)
        {
            var target = pipeline.Target(p);
            backend.Fill(target.Tensor, 0f);
            pipeline.OnGradient(p, target.Tensor);
        }
    }
}

/// <summary>
/// The analytic memory of each method, from parameter shapes alone (float32, 4 bytes per element), for an
/// n x m matrix or a vector of n:
/// <code>
/// Adafactor second moment   factored: n + m (matrix), n (vector);  unfactored: n m
/// AdamW second moment v     n m
/// naive momentum            n m
/// FLORA momentum            r max(n, m) for an eligible matrix, else n m
/// naive accumulation        n m
/// FLORA accumulation        r max(n, m) for an eligible matrix, else n m
/// LoRA adapters             r (n + m) per eligible matrix: A (r, in) + B (out, r); their states as above for
///                           two matrices (r, in) and (out, r), e.g. factored Adafactor (r + in) + (out + r)
/// </code>
/// Eligible is <see cref="FloraRules.IsEligible"/> (min(n, m) &gt;= r and max(n, m) &lt;= 4 min(n, m)).
/// </summary>
public static class MemoryFormula
{
    private const long FloatBytes = 4;

    /// <summary>Formula bytes of one row: optimizer state, accumulation buffers and LoRA adapters.</summary>
    public readonly record struct Bytes(long State, long Accumulator, long Adapters);

    public static Bytes For(ParameterTable table, MemorySetting setting, MemoryBase @base, MemoryMethod method, MemoryStudyOptions o)
    {
        int r = o.Rank;
        bool momentum = setting == MemorySetting.Momentum ? method != MemoryMethod.None : @base == MemoryBase.AdamW;
        if (method == MemoryMethod.Lora)
        {
            long adapters = 0, state = 0;
            foreach (var (n, m) in EligibleMatrices(table, r))
            {
                adapters += (long)r * (n + m);
                state += @base == MemoryBase.AdamW ? 2L * r * (n + m)                          // m and v of A and B
                    : (o.Factored ? (r + n) + (m + r) : (long)r * (n + m)) + (momentum ? (long)r * (n + m) : 0);
            }
            long accumulator = setting == MemorySetting.Accumulation ? adapters : 0;
            return new Bytes(state * FloatBytes, accumulator * FloatBytes, adapters * FloatBytes);
        }

        bool compressedMomentum = setting == MemorySetting.Momentum && method == MemoryMethod.Flora;
        long floats = 0, accumulated = 0;
        foreach (var e in table.Entries)
        {
            floats += SecondMoment(e.Shape, @base, o.Factored);
            if (momentum) floats += compressedMomentum ? Compressed(e.Shape, r) : e.Count;
            if (setting == MemorySetting.Accumulation)
                accumulated += method switch
                {
                    MemoryMethod.None => 0,
                    MemoryMethod.Flora => Compressed(e.Shape, r),
                    _ => e.Count,
                };
        }
        return new Bytes(floats * FloatBytes, accumulated * FloatBytes, 0);
    }

    /// <summary>Floats of the second moment of one parameter.</summary>
    public static long SecondMoment(Shape shape, MemoryBase @base, bool factored) =>
        @base == MemoryBase.Adafactor && factored && shape.Rank == 2 ? (long)shape[0] + shape[1] : shape.Count;

    /// <summary>Floats of FLORA's compressed state of one parameter: r max(n, m) when eligible, else the full size.</summary>
    public static long Compressed(Shape shape, int rank) =>
        FloraRules.IsEligible(shape, rank) ? (long)rank * Math.Max(shape[0], shape[1]) : shape.Count;

    private static IEnumerable<(int N, int M)> EligibleMatrices(ParameterTable table, int rank) =>
        table.Entries.Where(e => FloraRules.IsEligible(e.Shape, rank)).Select(e => (e.Shape[0], e.Shape[1]));
}
