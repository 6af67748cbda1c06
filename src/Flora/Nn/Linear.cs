using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>How a <see cref="Linear"/> stores its weight.</summary>
public enum WeightLayout
{
    /// <summary>W (out, in), y = x W^T + b: torch.nn.Linear.</summary>
    OutIn,
    /// <summary>W (in, out), y = x W + b: the Conv1D of Hugging Face's GPT-2.</summary>
    InOut,
}

/// <summary>
/// y = x W^T + b (or x W + b for <see cref="WeightLayout.InOut"/>). Shapes: x (N, in), y (N, out),
/// b (out); leading dimensions of x beyond the last are flattened into N. Weights start
/// N(0, initStd^2) from a Philox seed (default initStd 1/sqrt(in)), biases at zero. W is stored in
/// <see cref="WeightStorage.Matrices"/> (bf16 weights are read by the products directly); b stays Float32.
/// </summary>
public sealed class Linear : Module
{
    private Tensor? _input;

    /// <summary>
    /// A projection from <paramref name="inFeatures"/> to <paramref name="outFeatures"/> named <paramref name="name"/>
    /// (parameters "name.weight" and, with <paramref name="bias"/>, "name.bias"), its weight stored in
    /// <paramref name="layout"/> and drawn N(0, initStd^2) from <paramref name="seed"/>, where
    /// <paramref name="initStd"/> defaults to 1/sqrt(in).
    /// </summary>
    /// <exception cref="ArgumentException">A number of features is not positive.</exception>
    public Linear(IBackend backend, string name, int inFeatures, int outFeatures, bool bias = true, ulong seed = 0,
        WeightLayout layout = WeightLayout.OutIn, float? initStd = null)
        : base(backend, name)
    {
        if (inFeatures <= 0 || outFeatures <= 0)
            throw new ArgumentException($"Linear '{name}': features must be positive, got in={inFeatures}, out={outFeatures}");
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Layout = layout;
        var shape = layout == WeightLayout.OutIn ? new Shape(outFeatures, inFeatures) : new Shape(inFeatures, outFeatures);
        Weight = new Parameter(backend, Join(name, "weight"), WeightStorage.AllocateMatrix(backend, shape));
        backend.FillGaussian(Weight.Value, seed, initStd ?? 1f / MathF.Sqrt(inFeatures));
        if (bias) Bias = new Parameter(backend, Join(name, "bias"), backend.Allocate(new Shape(outFeatures), MemoryTag.Parameters));
    }

    /// <summary>in: the width of the input's last dimension.</summary>
    public int InFeatures { get; }
    /// <summary>out: the width of the output's last dimension.</summary>
    public int OutFeatures { get; }
    /// <summary>How <see cref="Weight"/> is stored: (out, in) as torch.nn.Linear, or (in, out) as GPT-2's Conv1D.</summary>
    public WeightLayout Layout { get; }
    /// <summary>W: (out, in) or (in, out), as <see cref="Layout"/> says.</summary>
    public Parameter Weight { get; }
    /// <summary>b (out), Float32; null for a layer without bias.</summary>
    public Parameter? Bias { get; }

    /// <summary>True when W is stored (out, in), so that x W^T needs the transpose flag.</summary>
    private bool Transposed => Layout == WeightLayout.OutIn;

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        if (input.Columns != InFeatures)
            throw new ArgumentException($"Linear '{Name}': input {input.Shape} has {input.Columns} features, expected {InFeatures}");
        _input = input;
        if (_addTo is var (residual, output))
        {
            _addTo = null;                                                          // once
            Backend.MatMulBiasAdd(input, false, Weight.Value, Transposed, Bias?.Value, residual, output); // residual + x W^T (+ b)
            return output;
        }
        Shape shape = WithLastDimension(input.Shape, OutFeatures);                  // (N, out)
        Tensor y = OutputType == DType.BFloat16 ? Slot("out.bf16", DType.BFloat16).Get(shape) : OutputSlot("out", OutputIsTransient).Get(shape);
        if (Bias is null) Backend.MatMul(input, false, Weight.Value, Transposed, y);  // y = x W^T  (or x W)
        else Backend.MatMulBias(input, false, Weight.Value, Transposed, y, Bias.Value); // y = x W^T + b
        return y;
    }

    /// <summary>
    /// The type of the output: Float32, or BFloat16 for an output that the next layers keep for backward and read
    /// only in products (<see cref="IBackend.ActivationType"/>): the product's fp32 result (bias included) rounded to
    /// nearest even as it is written, into the layer's own bf16 buffer.
    /// </summary>
    /// <exception cref="ArgumentException">Another type.</exception>
    public DType OutputType
    {
        get => _outputType;
        set => _outputType = value is DType.Float32 or DType.BFloat16 ? value
            : throw new ArgumentException($"Linear '{Name}': the output is Float32 or BFloat16, not {value}");
    }
    private DType _outputType = DType.Float32;

    /// <summary>
    /// Whether the output is read only by the next operation of the forward pass (a block's residual add), never in
    /// backward, so that it can live in the buffers the blocks of a stack share (<see cref="Module.ShareGradients"/>)
    /// instead of one of its own per layer. Backward never reads the output either way.
    /// </summary>
    public bool OutputIsTransient { get; set; }

    /// <summary>
    /// Makes the next <see cref="Forward"/> write residual + x W^T (+ b) into <paramref name="output"/> and return it: a
    /// residual branch's output projection that also does the branch's residual add (a transformer block with dropout
    /// off; <see cref="IBackend.MatMulBiasAdd"/>). Both Float32 of the output's shape; used once.
    /// </summary>
    internal void AddNextOutputTo(Tensor residual, Tensor output)
    {
        if (OutputType != DType.Float32) throw new InvalidOperationException($"Linear '{Name}': a residual add needs a Float32 output");
        _addTo = (residual, output);
    }

    /// <summary>Cancels a pending <see cref="AddNextOutputTo"/> (nothing to do when the forward used it).</summary>
    internal void CancelOutputAdd() => _addTo = null;
    private (Tensor Residual, Tensor Output)? _addTo;

    /// <summary>
    /// The bf16 pre-activation h of a GELU that feeds this layer (x = GELU(h)), set by a GPT-2 MLP around its down
    /// projection's backward: the input gradient then leaves the product already through GELU's derivative, as the bf16
    /// dh = (dy W) GELU'(h) (<see cref="IBackend.MatMulGeluBackward"/>), and GELU's own backward is skipped. Null otherwise.
    /// </summary>
    internal Tensor? GeluPreActivation { get; set; }

    /// <summary>
    /// Forward into GELU in one product (a GPT-2 MLP's up projection in bf16): h = x W^T + b (BFloat16, saved by
    /// <paramref name="activation"/> as its input) and GELU(h), in the buffer <paramref name="activation"/>'s forward
    /// would use (<see cref="IBackend.MatMulBiasGelu"/>). Returns (h, GELU(h)).
    /// </summary>
    internal (Tensor PreActivation, Tensor Activation) ForwardGelu(Tensor input, Gelu activation)
    {
        if (Bias is null || OutputType != DType.BFloat16) throw new InvalidOperationException($"Linear '{Name}': ForwardGelu needs a bias and a BFloat16 output");
        if (input.Columns != InFeatures)
            throw new ArgumentException($"Linear '{Name}': input {input.Shape} has {input.Columns} features, expected {InFeatures}");
        _input = input;
        Shape shape = WithLastDimension(input.Shape, OutFeatures);                  // (N, out)
        Tensor h = Slot("out.bf16", DType.BFloat16).Get(shape), y = activation.OutputFor(h);
        Backend.MatMulBiasGelu(input, false, Weight.Value, Transposed, h, y, Bias.Value);
        return (h, y);
    }

    /// <summary>
    /// Makes the next <see cref="Backward"/> write its input gradient into <paramref name="target"/>, added to what it
    /// holds when <paramref name="accumulate"/> (the product's beta = 1), and return it: an input that feeds several
    /// projections (q, k and v; gate and up) gets the sum of their gradients without a separate add. Float32 of the
    /// input's shape; used once.
    /// </summary>
    private void WriteNextInputGradientTo(Tensor target, bool accumulate) => _inputGradientTo = (target, accumulate);
    private (Tensor Target, bool Accumulate)? _inputGradientTo;

    /// <summary>
    /// dx = sum over <paramref name="projections"/> of each one's input gradient, in one buffer: the first product
    /// writes it and the others add to it (<see cref="WriteNextInputGradientTo"/>). Null, with nothing set, unless every
    /// projection is a plain Linear computing its input gradient (a LoRA layer, for one, returns its own).
    /// </summary>
    internal static Tensor? ShareInputGradient(Tensor dx, params Module[] projections)
    {
        if (!projections.All(p => p is Linear { ComputesInputGradient: true, GeluPreActivation: null })) return null;
        for (int i = 0; i < projections.Length; i++) ((Linear)projections[i]).WriteNextInputGradientTo(dx, accumulate: i > 0);
        return dx;
    }

    /// <inheritdoc/>
    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor x = Saved(_input);
        Tensor? gradInput = null;
        var into = _inputGradientTo;
        _inputGradientTo = null;
        using var reuse = Backend.ReuseOperand(gradOutput, sumRows: Bias is { RequiresGrad: true }); // dy feeds both products and the bias
        if (ComputesInputGradient && GeluPreActivation is Tensor h)
        {
            gradInput = GradientSlot("dx.gelu.bf16", DType.BFloat16).Get(x.Shape);            // (N, in)
            Backend.MatMulGeluBackward(gradOutput, false, Weight.Value, !Transposed, h, gradInput); // dx = (dy W) GELU'(h)
        }
        else if (ComputesInputGradient)
        {
            gradInput = into?.Target ?? GradientSlot("dx").Get(x.Shape);                       // (N, in)
            Backend.MatMul(gradOutput, false, Weight.Value, !Transposed, gradInput, 1f, into is { Accumulate: true } ? 1f : 0f); // dx (+)= dy W  (or dy W^T)
        }
        if (Weight.RequiresGrad)
        {
            var g = gradients.Target(Weight);
            if (Transposed) Backend.MatMul(gradOutput, true, x, false, g.Tensor, g.Scale, g.Beta); // dW (+)= dy^T x   (out, in)
            else Backend.MatMul(x, true, gradOutput, false, g.Tensor, g.Scale, g.Beta);          // dW (+)= x^T dy   (in, out)
            gradients.OnGradient(Weight, g.Tensor);
        }
        if (Bias is { RequiresGrad: true })
        {
            var g = gradients.Target(Bias);                                           // (out)
            Backend.SumRows(gradOutput, g.Tensor, g.Scale, g.Beta);                   // db (+)= sum_n dy[n, :]
            gradients.OnGradient(Bias, g.Tensor);
        }
        return gradInput;
    }

    /// <inheritdoc/>
    protected override IEnumerable<Parameter> OwnParameters => Bias is null ? [Weight] : [Weight, Bias];
}
