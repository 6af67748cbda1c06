using Flora.Backends;
using Flora.Nn;
using Flora.Tensors;

namespace Flora.Optim;

/// <summary>
/// Updates one parameter at a time from its gradient, so an update can run inside backward
/// (immediate update, LOMO) or after it, at the end of an accumulation cycle.
/// <para>
/// Contract of <see cref="Update"/>: the gradient tensor is consumed; the optimizer may overwrite it
/// and use it as working memory (it is a scratch buffer or a gradient buffer that the next cycle
/// overwrites). This is what lets an optimizer run without a full-size buffer of its own.
/// </para>
/// Weights stored in bf16 are updated in fp32 and rounded back (<see cref="Update"/>, <see cref="Rounding"/>).
/// Parameters are organised in <see cref="ParameterGroup"/>s with their own learning rate and weight
/// decay. State is created on first use (or all at once by <see cref="States"/>) and can be saved
/// and loaded with <see cref="SaveState"/> and <see cref="LoadState"/>.
/// <para>
/// In a training loop of your own, pass <see cref="Gradients"/> to the model's backward and call <see cref="Step"/>
/// after each backward pass (TorchSharp's <c>optimizer.step()</c>):
/// <code>
/// using var opt = new FloraAdafactor(model.Parameters(), learningRate: 1e-2f, rank: 8)
///     { GradientOptions = new PipelineOptions { Mode = AccumulationMode.Compressed, AccumulationSteps = 4, Rank = 8 } };
/// for each micro-batch: forward; loss; model.Backward(dLogits, opt.Gradients); opt.Step();
/// </code>
/// Every <see cref="PipelineOptions.AccumulationSteps"/>-th <see cref="Step"/> applies the update to the mean of the
/// micro-batches' gradients (with LOMO, inside the last backward pass).
/// </para>
/// </summary>
public abstract class Optimizer : IDisposable
{
    private readonly Dictionary<Parameter, (ParameterGroup Group, ParameterState? State)> _parameters = new();
    private PipelineOptions _gradientOptions = new();
    private GradientPipeline? _gradients;

    /// <summary>
    /// An optimizer over <paramref name="groups"/>, whose state <paramref name="backend"/> allocates;
    /// <paramref name="learningRate"/> and <paramref name="weightDecay"/> are the defaults of groups that set none.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// There is no group, a parameter is in two groups, or the weight decay is negative or not finite.
    /// </exception>
    protected Optimizer(IBackend backend, IEnumerable<ParameterGroup> groups, float learningRate, float weightDecay)
    {
        Backend = backend;
        Groups = groups.ToArray();
        if (Groups.Count == 0) throw new ArgumentException("an optimizer needs at least one parameter group");
        LearningRate = learningRate;
        WeightDecay = NonNegative(weightDecay, "weight decay");
        foreach (var group in Groups)
            foreach (var p in group.Parameters)
                if (!_parameters.TryAdd(p, (group, null)))
                    throw new ArgumentException($"parameter '{p.Name}' appears in more than one group");
    }

    /// <summary>The backend that holds the parameters and the state.</summary>
    public IBackend Backend { get; }

    /// <summary>The parameter groups, in the order given.</summary>
    public IReadOnlyList<ParameterGroup> Groups { get; }

    /// <summary>Default learning rate of groups that set none.</summary>
    public float LearningRate { get; }

    /// <summary>Default decoupled weight decay of groups that set none.</summary>
    public float WeightDecay { get; }

    /// <summary>Multiplies every group's learning rate; a schedule sets it before each step.</summary>
    public float LearningRateScale { get; set; } = 1f;

    /// <summary>The optimizer's name in checkpoints (its type name unless it was renamed), compared on load.</summary>
    public virtual string StateName => GetType().Name;

    /// <summary>The optimizer's settings that shape its state, written into checkpoints and compared on load.</summary>
    public abstract string Configuration { get; }

    /// <summary>
    /// Applies one step to <paramref name="parameter"/> given its (possibly averaged or decompressed) gradient. The
    /// arithmetic is fp32. A BFloat16 weight (<see cref="WeightStorage"/>) is widened into a Float32 working copy, the
    /// step runs on the copy, and the result is written back as <see cref="Rounding"/> says: stochastically (the
    /// default), with the stream <see cref="RoundingSeedOf"/> of this parameter and update, so that updates smaller
    /// than half a bf16 step are kept on average, bit-identically on every backend and across a resumed run.
    /// </summary>
    public void Update(Parameter parameter, Tensor gradient)
    {
        Tensor value = parameter.Value;
        if (value.DType == DType.Float32)
        {
            Apply(parameter, value, gradient);
            return;
        }
        ulong seed = RoundingSeedOf(parameter, StateOf(parameter).Step);              // the update's number before it counts
        UpdateBf16(parameter, value, gradient, seed);
    }

    /// <summary>
    /// The step on a BFloat16 weight <paramref name="value"/>: widened into a Float32 working copy, <see cref="Apply"/>
    /// on the copy, and the copy rounded back as <see cref="Rounding"/> says (<paramref name="seed"/>: the stochastic
    /// rounding's stream). An optimizer whose last pass can read and round the bf16 weight itself overrides this to
    /// skip the copy, with the same result bit for bit.
    /// </summary>
    protected virtual void UpdateBf16(Parameter parameter, Tensor value, Tensor gradient, ulong seed)
    {
        _working ??= new TensorSlot(Backend, MemoryTag.Scratch);
        Tensor weight = _working.Get(value.Shape);
        Backend.Copy(value, weight);                                                  // exact
        Apply(parameter, weight, gradient);
        if (Rounding == WeightRounding.Stochastic) Backend.StochasticRound(weight, value, seed);
        else Backend.Copy(weight, value);                                             // to nearest even
    }

    /// <summary>
    /// One step on <paramref name="weight"/>: the parameter's value itself (Float32 weights) or its Float32 working
    /// copy (BFloat16 weights), which <see cref="Update"/> rounds back afterwards. Implementations read and write the
    /// weight only through <paramref name="weight"/>, never through <see cref="Parameter.Value"/>.
    /// </summary>
    protected abstract void Apply(Parameter parameter, Tensor weight, Tensor gradient);

    /// <summary>How a BFloat16 weight takes its new fp32 value (<see cref="Update"/>); ignored for Float32 weights.</summary>
    public WeightRounding Rounding { get; set; } = WeightRounding.Stochastic;

    /// <summary>The root of the stochastic-rounding streams (a trainer derives it from the run's seed).</summary>
    public ulong RoundingSeed { get; set; }

    /// <summary>
    /// The seed of the stochastic rounding of <paramref name="parameter"/>'s update number <paramref name="step"/>
    /// (0 for the first): Derive(ForName(<see cref="RoundingSeed"/>, name), step), as <see cref="Seeds"/> derives
    /// every seed, so it depends on neither the device nor the order parameters are updated in.
    /// </summary>
    public ulong RoundingSeedOf(Parameter parameter, long step) => Seeds.Derive(Seeds.ForName(RoundingSeed, parameter.Name), (ulong)step);

    private TensorSlot? _working;

    /// <summary>
    /// When the whole update is W = W + c G for a constant c, the target that makes the gradient's own
    /// product apply it (<see cref="GradientTarget.AddTo"/>(W, c)); null otherwise (the default), and always
    /// null for a BFloat16 weight, which must be rounded after its update.
    /// </summary>
    public virtual GradientTarget? FusedTarget(Parameter parameter) => null;

    /// <summary>Every parameter's state, in group order, created now where missing.</summary>
    public IReadOnlyList<ParameterState> States =>
        Groups.SelectMany(g => g.Parameters).Select(StateOf).ToArray();

    /// <summary>Bytes of all optimizer state.</summary>
    public long StateBytes => States.Sum(s => s.Bytes);

    /// <summary>
    /// How many times FLORA's compressed momentum moved to a new projection so far (per matrix, the largest over the
    /// matrices); 0 for optimizers without compressed momentum, and for a run shorter than its resampling interval.
    /// </summary>
    public virtual long Resamplings => 0;

    /// <summary>The state of <paramref name="parameter"/>, created on first use.</summary>
    public ParameterState StateOf(Parameter parameter)
    {
        if (!_parameters.TryGetValue(parameter, out var entry))
            throw new ArgumentException($"parameter '{parameter.Name}' is not managed by this optimizer");
        if (entry.State is null)
        {
            entry.State = CreateState(parameter, entry.Group);
            _parameters[parameter] = entry;
        }
        return entry.State;
    }

    /// <summary>Whether <paramref name="parameter"/> is managed by this optimizer.</summary>
    public bool Manages(Parameter parameter) => _parameters.ContainsKey(parameter);

    /// <summary>The group <paramref name="parameter"/> was given in.</summary>
    /// <exception cref="ArgumentException">This optimizer does not manage the parameter.</exception>
    protected ParameterGroup GroupOf(Parameter parameter) =>
        _parameters.TryGetValue(parameter, out var entry) ? entry.Group
        : throw new ArgumentException($"parameter '{parameter.Name}' is not managed by this optimizer");

    /// <summary>The group's learning rate (or the default) times <see cref="LearningRateScale"/>.</summary>
    protected float LearningRateOf(ParameterGroup group) => (group.LearningRate ?? LearningRate) * LearningRateScale;

    /// <summary>
    /// The group's weight decay, or the optimizer's default when the group sets none (schedules do not scale it).
    /// </summary>
    protected float WeightDecayOf(ParameterGroup group) => group.WeightDecay ?? WeightDecay;

    /// <summary>
    /// How gradients reach this optimizer through <see cref="Gradients"/>: accumulation over micro-batches (none,
    /// full-size, or FLORA's compressed accumulators, Algorithm 1) and LOMO (each parameter updated inside backward).
    /// Set it before the first backward pass. The default: one micro-batch per update, full-size gradients.
    /// </summary>
    /// <exception cref="InvalidOperationException">Set after <see cref="Gradients"/> was first used.</exception>
    public PipelineOptions GradientOptions
    {
        get => _gradientOptions;
        set
        {
            if (_gradients is not null) throw new InvalidOperationException("set GradientOptions before the first backward pass (Gradients is already in use)");
            value.Validate();
            _gradientOptions = value;
        }
    }

    /// <summary>
    /// The gradient sink to pass to a model's <see cref="Module.Backward"/>: it routes every parameter's gradient as
    /// <see cref="GradientOptions"/> say, and applies this optimizer when an accumulation cycle completes.
    /// </summary>
    public GradientPipeline Gradients => _gradients ??= _gradientOptions.Build(Backend, Groups.SelectMany(g => g.Parameters), this);

    /// <summary>
    /// Ends a micro-batch (call it after each backward pass). When the accumulation cycle is complete (every call
    /// without accumulation) the parameters are updated with the mean gradient of the cycle; with LOMO the updates
    /// already happened inside backward and this only closes the cycle.
    /// </summary>
    public void Step() => Gradients.EndMicroBatch();

    /// <summary>
    /// Discards what has been accumulated since the last update (a skipped batch); updates already applied stay.
    /// Not needed between steps: the first gradient of a cycle overwrites the previous one.
    /// </summary>
    public void ZeroGrad() => _gradients?.Discard();

    /// <summary>
    /// Writes the optimizer's state (moments, FLORA's compressed momentum, step counts) and that of
    /// <see cref="Gradients"/> (accumulators of a cycle in progress, projection cycles) to a safetensors file,
    /// atomically. Projections are regenerated from seeds, so a loop resumed with <see cref="LoadState"/> continues
    /// bit for bit.
    /// </summary>
    public void SaveState(string path)
    {
        var writer = new Checkpoints.SafeTensorsWriter().AddMetadata("kind", OptimizerCheckpoint.Kind);
        OptimizerCheckpoint.AddTo(this, writer);
        Gradients.SaveState(writer, "gradients/");
        writer.Write(path);
    }

    /// <summary>Restores what <see cref="SaveState"/> wrote into an optimizer built with the same settings and parameters.</summary>
    /// <exception cref="InvalidDataException">The file holds another optimizer, settings or parameters.</exception>
    public void LoadState(string path)
    {
        using var file = Checkpoints.SafeTensorsFile.Open(path);
        if (!file.Metadata.TryGetValue("kind", out var kind) || kind != OptimizerCheckpoint.Kind)
            throw new InvalidDataException($"{path}: not an optimizer state file");
        OptimizerCheckpoint.LoadFrom(this, file);
        Gradients.LoadState(file, "gradients/");
    }

    /// <summary>The one backend that holds all of <paramref name="parameters"/>.</summary>
    /// <exception cref="ArgumentException">There are no parameters, or they live on different backends.</exception>
    protected static IBackend BackendOf(IEnumerable<Parameter> parameters)
    {
        IBackend? backend = null;
        foreach (var p in parameters)
        {
            backend ??= p.Backend;
            if (!ReferenceEquals(backend, p.Backend))
                throw new ArgumentException($"parameter '{p.Name}' is on {p.Backend.Name}, the others on {backend.Name}: an optimizer needs one backend");
        }
        return backend ?? throw new ArgumentException("an optimizer needs at least one parameter");
    }

    /// <summary>Allocates the state of one parameter (zeros; step 0).</summary>
    protected abstract ParameterState CreateState(Parameter parameter, ParameterGroup group);

    /// <summary>
    /// Frees the pipeline behind <see cref="Gradients"/> with its sinks, the bf16 working copy and every parameter's
    /// state.
    /// </summary>
    public virtual void Dispose()
    {
        _gradients?.Dispose();
        _gradients = null;
        _working?.Dispose();
        _working = null;
        foreach (var (_, state) in _parameters.Values) state?.Dispose();
        _parameters.Clear();
        GC.SuppressFinalize(this);
    }

    /// <summary>Throws an <see cref="ArgumentException"/> naming the hyper-parameter unless it is positive and finite.</summary>
    protected static float Positive(float value, string name) =>
        value > 0 && float.IsFinite(value) ? value : throw new ArgumentException($"{name} must be positive and finite, got {value}", name);

    /// <summary>
    /// Returns <paramref name="value"/>; throws an <see cref="ArgumentException"/> naming the hyper-parameter unless it
    /// is non-negative and finite.
    /// </summary>
    protected static float NonNegative(float value, string name) =>
        value >= 0 && float.IsFinite(value) ? value : throw new ArgumentException($"{name} must be non-negative and finite, got {value}", name);

    /// <summary>A decay rate in [0, 1).</summary>
    protected static float Beta(float value, string name) =>
        value >= 0 && value < 1 ? value : throw new ArgumentException($"{name} must be in [0, 1), got {value}", name);

    /// <summary>One group of <paramref name="parameters"/> with the optimizer's default learning rate and weight decay.</summary>
    protected static IEnumerable<ParameterGroup> OneGroup(IEnumerable<Parameter> parameters) => [new ParameterGroup(parameters)];

    /// <summary>Root mean square of a tensor's elements.</summary>
    protected float Rms(Tensor t) => (float)Math.Sqrt(Backend.SumOfSquares(t) / Math.Max(1, t.Count));
}

/// <summary>How an optimizer writes an fp32 result into a BFloat16 weight.</summary>
public enum WeightRounding
{
    /// <summary>
    /// Stochastic rounding (<see cref="IBackend.StochasticRound"/>): unbiased, so an update smaller than half a bf16
    /// step still moves the weight on average. The default.
    /// </summary>
    Stochastic,
    /// <summary>Round to nearest even: an update smaller than half a bf16 step is lost (for comparisons).</summary>
    Nearest,
}
