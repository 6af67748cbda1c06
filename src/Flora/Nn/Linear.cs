using Flora.Backends;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Nn;

/// <summary>
/// y = x W^T + b. Shapes: x (N, in), W (out, in), b (out), y (N, out); leading dimensions of x beyond
/// the last are flattened into N. Weights start N(0, 1/in) from a Philox seed, biases at zero.
/// </summary>
public sealed class Linear : Module
{
    private Tensor? _input;

    public Linear(IBackend backend, string name, int inFeatures, int outFeatures, bool bias = true, ulong seed = 0)
        : base(backend, name)
    {
        if (inFeatures <= 0 || outFeatures <= 0)
            throw new ArgumentException($"Linear '{name}': features must be positive, got in={inFeatures}, out={outFeatures}");
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Weight = new Parameter(Join(name, "weight"), backend.Allocate(new Shape(outFeatures, inFeatures), MemoryTag.Parameters));
        backend.FillGaussian(Weight.Value, seed, 1f / MathF.Sqrt(inFeatures));
        if (bias) Bias = new Parameter(Join(name, "bias"), backend.Allocate(new Shape(outFeatures), MemoryTag.Parameters));
    }

    public int InFeatures { get; }
    public int OutFeatures { get; }
    public Parameter Weight { get; }
    public Parameter? Bias { get; }

    public override Tensor Forward(Tensor input)
    {
        if (input.Columns != InFeatures)
            throw new ArgumentException($"Linear '{Name}': input {input.Shape} has {input.Columns} features, expected {InFeatures}");
        _input = input;
        Tensor y = Slot("out").Get(WithLastDimension(input.Shape, OutFeatures));   // (N, out)
        Backend.MatMul(input, false, Weight.Value, true, y);                    // y = x W^T
        if (Bias is not null) Backend.AddBias(y, Bias.Value);                   // y += b
        return y;
    }

    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor x = Saved(_input);
        Tensor? gradInput = null;
        if (ComputesInputGradient)
        {
            gradInput = Slot("dx").Get(x.Shape);                                 // (N, in)
            Backend.MatMul(gradOutput, false, Weight.Value, false, gradInput);  // dx = dy W
        }
        if (Weight.RequiresGrad)
        {
            var g = gradients.Target(Weight);                                   // (out, in)
            Backend.MatMul(gradOutput, true, x, false, g.Tensor, g.Scale, g.Beta); // dW (+)= dy^T x
            gradients.OnGradient(Weight, g.Tensor);
        }
        if (Bias is { RequiresGrad: true })
        {
            var g = gradients.Target(Bias);                                     // (out)
            Backend.SumRows(gradOutput, g.Tensor, g.Scale, g.Beta);             // db (+)= sum_n dy[n, :]
            gradients.OnGradient(Bias, g.Tensor);
        }
        return gradInput;
    }

    protected override IEnumerable<Parameter> OwnParameters => Bias is null ? [Weight] : [Weight, Bias];
}
