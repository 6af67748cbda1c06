using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// LoRA (Hu et al. 2022) around a frozen <see cref="Linear"/>: y = x W^T + b + s (x A^T) B^T with
/// A (r, in) ~ N(0, 1/r), B (out, r) = 0 and scale s = alpha / r. W and b are frozen; A and B are
/// ordinary parameters with their own optimizer state. In LoRA(B) mode A is frozen too, which is
/// the random projection of the paper's Section 2.2: the update of W + s B A is then -eta s^2 G A^T A.
/// A and B are stored in <see cref="WeightStorage.Matrices"/>, like the weight they adapt.
/// </summary>
public sealed class LoraLinear : Module
{
    private Tensor? _input, _h;

    /// <summary>
    /// Wraps <paramref name="baseLayer"/>, whose parameters are frozen from now on, under its own name: adapters
    /// "name.lora_A" (r, in), drawn N(0, 1/r) from <paramref name="seed"/>, and "name.lora_B" (out, r), zero, so the
    /// layer starts as the base layer computes. <paramref name="trainA"/> false freezes A too (LoRA(B)).
    /// </summary>
    /// <param name="baseLayer">The projection to adapt.</param>
    /// <param name="rank">r, between 1 and min(in, out).</param>
    /// <param name="alpha">The scale numerator: the adapter's path is multiplied by alpha / r.</param>
    /// <param name="seed">The Philox seed of A.</param>
    /// <param name="trainA">Whether A trains (true) or stays at its random start (LoRA(B)).</param>
    /// <exception cref="ArgumentException">
    /// The rank is outside [1, min(in, out)], or alpha is not positive and finite.
    /// </exception>
    public LoraLinear(Linear baseLayer, int rank, float alpha, ulong seed, bool trainA = true)
        : base(baseLayer.Backend, baseLayer.Name)
    {
        int maxRank = Math.Min(baseLayer.InFeatures, baseLayer.OutFeatures);
        if (rank <= 0 || rank > maxRank)
            throw new ArgumentException($"LoRA rank {rank} is invalid for '{baseLayer.Name}' ({baseLayer.OutFeatures}x{baseLayer.InFeatures}): it must be in [1, {maxRank}]");
        if (!(alpha > 0) || !float.IsFinite(alpha)) throw new ArgumentException($"LoRA alpha must be positive and finite, got {alpha}");
        Base = baseLayer;
        Rank = rank;
        Scale = alpha / rank;
        foreach (var p in baseLayer.Parameters()) p.RequiresGrad = false;
        A = new Parameter(Backend, Join(Name, "lora_A"), WeightStorage.AllocateMatrix(Backend, new Shape(rank, baseLayer.InFeatures)), trainA);
        Backend.FillGaussian(A.Value, seed, 1f / MathF.Sqrt(rank));
        B = new Parameter(Backend, Join(Name, "lora_B"), WeightStorage.AllocateMatrix(Backend, new Shape(baseLayer.OutFeatures, rank)));
    }

    /// <summary>The wrapped layer; its weight and bias are frozen (RequiresGrad false) when the adapter is made.</summary>
    public Linear Base { get; }
    /// <summary>r: the inner width of the adapter.</summary>
    public int Rank { get; }
    /// <summary>s = alpha / r: the factor of the adapter's path.</summary>
    public float Scale { get; }
    /// <summary>A (r, in): N(0, 1/r) at start; frozen in LoRA(B).</summary>
    public Parameter A { get; }
    /// <summary>B (out, r): zero at start and again after <see cref="Merge"/>.</summary>
    public Parameter B { get; }

    /// <summary>The wrapped layer's setting, read and written through: when false, Backward returns null.</summary>
    public override bool ComputesInputGradient
    {
        get => Base.ComputesInputGradient;
        set => Base.ComputesInputGradient = value;
    }

    /// <inheritdoc/>
    public override Tensor Forward(Tensor input)
    {
        _input = input;
        Tensor y = Base.Forward(input);                                  // (N, out) = x W^T + b
        _h = Slot("h").Get(WithLastDimension(input.Shape, Rank));           // (N, r)
        Backend.MatMul(input, false, A.Value, true, _h);                  // h = x A^T
        Backend.MatMul(_h, false, B.Value, true, y, Scale, 1f);           // y += s h B^T
        return y;
    }

    /// <inheritdoc/>
    public override Tensor? Backward(Tensor gradOutput, IGradientSink gradients)
    {
        Tensor x = Saved(_input), h = Saved(_h);
        Tensor dh = GradientSlot("dh").Get(h.Shape);
        Backend.MatMul(gradOutput, false, B.Value, false, dh, Scale);      // dh = s dy B       (N, r)
        Tensor? dx = Base.Backward(gradOutput, gradients);                // dx = dy W (W frozen: no dW)
        if (dx is not null) Backend.MatMul(dh, false, A.Value, false, dx, 1f, 1f); // dx += dh A
        if (B.RequiresGrad)
        {
            var g = gradients.Target(B);                                  // (out, r)
            Backend.MatMul(gradOutput, true, h, false, g.Tensor, Scale * g.Scale, g.Beta); // dB (+)= s dy^T h
            gradients.OnGradient(B, g.Tensor);
        }
        if (A.RequiresGrad)
        {
            var g = gradients.Target(A);                                  // (r, in)
            Backend.MatMul(dh, true, x, false, g.Tensor, g.Scale, g.Beta); // dA (+)= dh^T x
            gradients.OnGradient(A, g.Tensor);
        }
        return dx;
    }

    /// <summary>
    /// Folds the adapter into the base weight, W += s B A in the (out, in) layout or W += s A^T B^T in GPT-2's (in, out)
    /// layout, then resets B to zero: the layer's output is unchanged, and merging twice adds nothing.
    /// </summary>
    public void Merge()
    {
        Tensor w = Base.Weight.Value;
        // A bf16 weight is merged in fp32 and rounded to nearest once: merging is deterministic, not a training step.
        using Tensor? wide = w.DType == DType.Float32 ? null : Backend.Allocate(w.Shape, MemoryTag.Scratch);
        if (wide is not null) Backend.Copy(w, wide);
        Tensor target = wide ?? w;
        if (Base.Layout == WeightLayout.OutIn)
            Backend.MatMul(B.Value, false, A.Value, false, target, Scale, 1f);   // W (out, in) += s B A
        else
            Backend.MatMul(A.Value, true, B.Value, true, target, Scale, 1f);     // W (in, out) += s A^T B^T
        if (wide is not null) Backend.Copy(wide, w);
        Backend.Fill(B.Value, 0f);
    }

    /// <inheritdoc/>
    public override IEnumerable<Module> Children => [Base];

    /// <inheritdoc/>
    protected override IEnumerable<Parameter> OwnParameters => [A, B];

    /// <summary>Whether a parameter name is a LoRA adapter's (lora_A or lora_B of a wrapped projection).</summary>
    public static bool IsAdapter(string parameterName) =>
        parameterName.EndsWith(".lora_A", StringComparison.Ordinal) || parameterName.EndsWith(".lora_B", StringComparison.Ordinal);
}
