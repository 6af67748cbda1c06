using Flora.Backends;
using Flora.Checkpoints;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// A layer with an explicit forward and backward (the Torch7 nn split, llm.c's function pairs).
/// <list type="bullet">
/// <item>Forward caches exactly what backward needs and returns an output the module owns and
/// reuses every step (valid until the next Forward).</item>
/// <item>Backward writes the input gradient (owned by the module) and hands each parameter gradient
/// to the sink as soon as it is computed. Parameter gradients accumulate (+=) or overwrite as the
/// sink's <see cref="GradientTarget"/> says.</item>
/// <item>Backward computes the input gradient before handing any parameter gradient to the sink,
/// because an immediate-update sink (LOMO) changes the weights inside <see cref="IGradientSink.OnGradient"/>.</item>
/// <item>Buffers come from <see cref="Slot"/>: a private <see cref="ActivationScope"/>, or one shared by
/// checkpointed blocks (<see cref="ShareActivations"/>).</item>
/// </list>
/// </summary>
public abstract class Module : IDisposable
{
    private ActivationScope? _scope;
    private bool _ownsScope;
    private string _scopePrefix = "";
    private ActivationScope? _gradientScope;
    private string _gradientPrefix = "";

    /// <summary>
    /// A module at path <paramref name="name"/> in its model ("" for the model itself) whose parameters and buffers
    /// <paramref name="backend"/> allocates and whose kernels it runs.
    /// </summary>
    protected Module(IBackend backend, string name)
    {
        Backend = backend;
        Name = name;
    }

    /// <summary>The backend that holds this module's parameters and activation buffers and runs its kernels.</summary>
    public IBackend Backend { get; }

    /// <summary>Path of the module in its model; parameter names are prefixed with it.</summary>
    public string Name { get; }

    /// <summary>When false, <see cref="Backward"/> skips the input gradient and returns null (a first layer fed with data).</summary>
    public virtual bool ComputesInputGradient { get; set; } = true;

    /// <summary>Runs the layer on <paramref name="input"/> and caches what backward needs.</summary>
    public abstract Tensor Forward(Tensor input);

    /// <summary>Given dLoss/dOutput, hands parameter gradients to <paramref name="gradients"/> and returns dLoss/dInput.</summary>
    public abstract Tensor? Backward(Tensor gradOutput, IGradientSink gradients);

    /// <summary>Direct sub-modules, in order.</summary>
    public virtual IEnumerable<Module> Children => [];

    /// <summary>Parameters this module holds itself (not its children's).</summary>
    protected virtual IEnumerable<Parameter> OwnParameters => [];

    /// <summary>This module's parameters, children's included, in a fixed order.</summary>
    public IEnumerable<Parameter> Parameters() => OwnParameters.Concat(Children.SelectMany(c => c.Parameters()));

    /// <summary>This module and all its descendants, depth first.</summary>
    public IEnumerable<Module> Modules() => Children.SelectMany(c => c.Modules()).Prepend(this);

    /// <summary>
    /// Writes the parameters (all of them, or those <paramref name="include"/> accepts) under their names to a
    /// safetensors file, atomically.
    /// </summary>
    public void SaveWeights(string path, Func<Parameter, bool>? include = null)
    {
        var writer = new SafeTensorsWriter().AddMetadata("format", "pt");
        foreach (var p in Parameters().Where(include ?? (_ => true))) writer.Add(p.Name, p.Value);
        writer.Write(path);
    }

    /// <summary>
    /// Reads every parameter by name from a safetensors file such as <see cref="SaveWeights"/> writes. Parameters
    /// that <paramref name="mayBeMissing"/> accepts (new LoRA adapters, say) keep their values when the file lacks them.
    /// </summary>
    /// <returns>How many parameters were read.</returns>
    /// <exception cref="InvalidDataException">A parameter is missing or has another shape, or the file holds tensors this module lacks.</exception>
    public int LoadWeights(string path, Func<Parameter, bool>? mayBeMissing = null)
    {
        using var file = SafeTensorsFile.Open(path);
        var parameters = Parameters().ToList();
        int read = 0;
        foreach (var p in parameters)
        {
            if (file.Contains(p.Name)) { file.ReadInto(p.Name, p.Value); read++; }
            else if (mayBeMissing?.Invoke(p) != true)
                throw new InvalidDataException($"{path}: no tensor '{p.Name}': the file holds another model ({file.Tensors.Count} tensors, this one has {parameters.Count} parameters)");
        }
        if (file.Tensors.Count != read)
            throw new InvalidDataException($"{path}: {file.Tensors.Count} tensors, {read} of them match this model's {parameters.Count} parameters: the file holds another model");
        return read;
    }

    /// <summary>
    /// Makes this module and its descendants take their buffers from <paramref name="scope"/>, keyed by
    /// <paramref name="prefix"/> plus their path below this module.
    /// </summary>
    public void ShareActivations(ActivationScope scope, string prefix)
    {
        if (_ownsScope) _scope?.Dispose();
        _scope = scope;
        _ownsScope = false;
        _scopePrefix = prefix;
        int i = 0;
        foreach (var child in Children) child.ShareActivations(scope, $"{prefix}{i++}.");
    }

    /// <summary>
    /// Makes the backward buffers (<see cref="GradientSlot"/>) of this module and its descendants come from
    /// <paramref name="scope"/>: modules whose backward passes never overlap (the blocks of a stack) can share them.
    /// </summary>
    public void ShareGradients(ActivationScope scope, string prefix)
    {
        _gradientScope = scope;
        _gradientPrefix = prefix;
        int i = 0;
        foreach (var child in Children) child.ShareGradients(scope, $"{prefix}{i++}.");
    }

    /// <summary>A buffer written in backward only (an input gradient): from the shared gradient scope when there is one.</summary>
    protected TensorSlot GradientSlot(string role, DType dtype = DType.Float32) => _gradientScope?.Slot(_gradientPrefix + role, dtype) ?? Slot(role, dtype);

    /// <summary>
    /// The buffer of an output that is either kept (this module's own <see cref="Slot"/>) or, when
    /// <paramref name="shared"/>, left in the backward buffers the blocks of a stack share (<see cref="GradientSlot"/>):
    /// an output that only the next operation reads, or that is recomputed before backward reads it.
    /// </summary>
    protected TensorSlot OutputSlot(string role, bool shared, DType dtype = DType.Float32) => shared ? GradientSlot(role, dtype) : Slot(role, dtype);

    /// <summary>The reusable buffer for <paramref name="role"/> (e.g. "out") of this module.</summary>
    protected TensorSlot Slot(string role, DType dtype = DType.Float32)
    {
        if (_scope is null) { _scope = new ActivationScope(Backend); _ownsScope = true; }
        return _scope.Slot(_scopePrefix + role, dtype);
    }

    /// <summary>
    /// Hands a parameter gradient that this module computed into its own buffer to the sink, as the
    /// sink's target asks (copy, or scaled add). For small parameters (norm weights) whose kernel
    /// computes several gradients at once; skipped for frozen parameters.
    /// </summary>
    protected void Deliver(IGradientSink sink, Parameter parameter, Tensor gradient)
    {
        if (!parameter.RequiresGrad) return;
        var target = sink.Target(parameter);
        if (target is { Accumulate: false, Scale: 1f }) Backend.Copy(gradient, target.Tensor);
        else Backend.Axpby(target.Scale, gradient, target.Beta, target.Tensor);
        sink.OnGradient(parameter, target.Tensor);
    }

    /// <summary>
    /// Frees the parameters this module holds, then its children, then its private activation scope (a scope shared
    /// through <see cref="ShareActivations"/> belongs to whoever made it).
    /// </summary>
    public virtual void Dispose()
    {
        foreach (var p in OwnParameters) p.Dispose();
        foreach (var c in Children) c.Dispose();
        if (_ownsScope) _scope?.Dispose();
        _scope = null;
        GC.SuppressFinalize(this);
    }

    /// <summary>Joins a module path and a child name with a dot, skipping an empty prefix.</summary>
    protected static string Join(string prefix, string name) => prefix.Length == 0 ? name : $"{prefix}.{name}";

    /// <summary>The shape of <paramref name="input"/> with its last dimension replaced by <paramref name="last"/>.</summary>
    protected static Shape WithLastDimension(Shape input, int last)
    {
        int[] dims = input.ToArray();
        dims[^1] = last;
        return new Shape(dims);
    }

    /// <summary>Throws a clear error when Backward runs before Forward.</summary>
    protected T Saved<T>(T? value) where T : class =>
        value ?? throw new InvalidOperationException($"{GetType().Name} '{Name}': Backward called before Forward");
}
