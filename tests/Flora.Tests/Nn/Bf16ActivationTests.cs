using Flora.Backends;
using Flora.Backends.Cpu;
using Flora.Nn;
using Flora.Nn.Models;
using Flora.Optim;
using Flora.Tensors;
using Xunit;

namespace Flora.Tests.Nn;

/// <summary>
/// In bf16 precision mode (<see cref="IBackend.ActivationType"/>) a GPT-2 block keeps q, k, v, the attention's output and
/// the MLP's pre-activation in bf16: the ledger shows the bytes saved, each op sees exactly the rounded values (as the
/// GPU's products would), and training follows fp32 mode closely.
/// </summary>
public class Bf16ActivationTests
{
    private static CpuBackend Backend(bool bf16) => new(new MemoryLedger(), bf16 ? GemmPrecision.Bf16 : GemmPrecision.Fp32);

    /// <summary>The fp32 values of <paramref name="values"/> rounded to nearest even bf16.</summary>
    private static float[] Rounded(float[] values) => values.Select(v => BFloat16.ToSingle(BFloat16.RoundToNearestEven(v))).ToArray();

    [Fact]
    public void Only_the_bf16_mode_keeps_activations_in_bf16()
    {
        using var fp32 = Backend(false);
        using var tf32 = new CpuBackend(new MemoryLedger(), GemmPrecision.Tf32);
        using var bf16 = Backend(true);
        Assert.Equal(DType.Float32, fp32.ActivationType);
        Assert.Equal(DType.Float32, tf32.ActivationType);
        Assert.Equal(DType.BFloat16, bf16.ActivationType);
        Assert.Equal(DType.Float32, bf16.ProductOperandType);                   // the CPU's products still read fp32
        Assert.Equal(DType.Float32, TestUtil.Cpu().ActivationType);             // the default
    }

    [Fact]
    public void A_linear_layer_with_a_bf16_output_keeps_its_fp32_output_rounded_to_nearest_even()
    {
        using var cpu = Backend(true);
        using var linear = new Linear(cpu, "fc", 8, 12, bias: true, seed: 4);
        cpu.FillGaussian(linear.Bias!.Value, 5, 1f);
        linear.Bias.Value.CopyFrom<float>(Rounded(TestUtil.ToArray(linear.Bias.Value)));   // bf16 values: the bf16 output reads the bias rounded
        using var x = TestUtil.Random(cpu, 6, 1, 3, 8);
        float[] wide = TestUtil.ToArray(linear.Forward(x));
        linear.OutputType = DType.BFloat16;
        Tensor y = linear.Forward(x);
        Assert.Equal(DType.BFloat16, y.DType);
        Assert.Equal(new Shape(3, 12), y.Shape);
        using var back = cpu.Allocate(y.Shape, MemoryTag.Scratch);
        cpu.Copy(y, back);
        Assert.Equal(Rounded(wide), TestUtil.ToArray(back));
        Assert.Throws<ArgumentException>(() => linear.OutputType = DType.Int32);
    }

    /// <summary>The values of a BFloat16 tensor, widened.</summary>
    private static float[] Widened(IBackend backend, Tensor t)
    {
        using var wide = backend.Allocate(t.Shape, MemoryTag.Scratch);
        backend.Copy(t, wide);
        return TestUtil.ToArray(wide);
    }

    [Fact]
    public void A_bf16_product_output_is_the_fp32_product_rounded_and_cannot_accumulate()
    {
        using var cpu = Backend(true);
        using var a = TestUtil.Random(cpu, 31, 1, 5, 7);
        using var w = TestUtil.Random(cpu, 32, 1, 6, 7);
        using var bias = TestUtil.Random(cpu, 33, 1, 6);
        using var wide = cpu.Allocate(new Shape(5, 6), MemoryTag.Scratch);
        using var half = cpu.Allocate(new Shape(5, 6), MemoryTag.Scratch, DType.BFloat16);
        cpu.MatMul(a, false, w, true, wide, alpha: 0.5f);
        cpu.MatMul(a, false, w, true, half, alpha: 0.5f);
        Assert.Equal(Rounded(TestUtil.ToArray(wide)), Widened(cpu, half));
        using var roundedBias = cpu.Allocate(bias.Shape, MemoryTag.Scratch);
        roundedBias.CopyFrom<float>(Rounded(TestUtil.ToArray(bias)));
        cpu.MatMulBias(a, false, w, true, wide, roundedBias);                     // a bf16 output reads the bias rounded to bf16
        cpu.MatMulBias(a, false, w, true, half, bias);
        Assert.Equal(Rounded(TestUtil.ToArray(wide)), Widened(cpu, half));
        var error = Assert.Throws<ArgumentException>(() => cpu.MatMul(a, false, w, true, half, 1f, 1f));
        Assert.Contains("beta", error.Message);
    }

    [Fact]
    public void A_layernorm_with_a_bf16_output_writes_its_fp32_output_rounded()
    {
        using var cpu = Backend(true);
        using var norm = new LayerNorm(cpu, "ln", 12);
        cpu.FillGaussian(norm.Weight.Value, 3, 1f);
        cpu.FillGaussian(norm.Bias.Value, 4, 1f);
        using var x = TestUtil.Random(cpu, 5, 3, 4, 12);
        float[] wide = TestUtil.ToArray(norm.Forward(x));
        norm.OutputType = DType.BFloat16;
        Tensor y = norm.Forward(x);
        Assert.Equal(DType.BFloat16, y.DType);
        Assert.Equal(Rounded(wide), Widened(cpu, y));
        Assert.Throws<ArgumentException>(() => norm.OutputType = DType.Int32);
    }

    [Fact]
    public void Gelu_of_a_bf16_input_gives_its_output_and_input_gradient_rounded_from_fp32()
    {
        using var cpu = TestUtil.Cpu();
        using var x = TestUtil.Random(cpu, 7, 2, 4, 9);
        using var x16 = cpu.Allocate(x.Shape, MemoryTag.Activations, DType.BFloat16);
        cpu.Copy(x, x16);
        using var wide = cpu.Allocate(x.Shape, MemoryTag.Activations);
        cpu.Copy(x16, wide);
        using var dy = TestUtil.Random(cpu, 8, 1, 4, 9);
        using var reference = new Gelu(cpu, "ref");
        using var gelu = new Gelu(cpu, "g");
        var sink = new AccumulateSink(cpu, new Sgd(cpu, Array.Empty<Parameter>(), 1f));
        Tensor y16 = gelu.Forward(x16);
        Assert.Equal(DType.BFloat16, y16.DType);                                  // read only by the down projection's products
        Assert.Equal(Rounded(TestUtil.ToArray(reference.Forward(wide))), Widened(cpu, y16));
        Tensor dx16 = gelu.Backward(dy, sink)!;
        Assert.Equal(DType.BFloat16, dx16.DType);                                 // read only by the up projection's products and bias sum
        Assert.Equal(Rounded(TestUtil.ToArray(reference.Backward(dy, sink)!)), Widened(cpu, dx16));
        using var sums = cpu.Allocate(new Shape(9), MemoryTag.Scratch);
        using var expected = cpu.Allocate(new Shape(9), MemoryTag.Scratch);
        using var dxWide = cpu.Allocate(dx16.Shape, MemoryTag.Scratch);
        cpu.Copy(dx16, dxWide);
        cpu.SumRows(dx16, sums, 0.5f, 0f);                                        // a bias gradient from the bf16 values
        cpu.SumRows(dxWide, expected, 0.5f, 0f);
        Assert.Equal(TestUtil.ToArray(expected), TestUtil.ToArray(sums));
    }

    [Fact]
    public void The_fused_gelu_products_equal_the_product_then_gelu_and_refuse_fp32_buffers()
    {
        using var cpu = Backend(true);
        using var x = TestUtil.Random(cpu, 21, 1f, 5, 8);
        using var w = TestUtil.Random(cpu, 22, 0.5f, 12, 8);
        using var bias = TestUtil.Random(cpu, 23, 0.5f, 12);
        using var dy = TestUtil.Random(cpu, 24, 1f, 5, 8);
        using var down = TestUtil.Random(cpu, 25, 0.5f, 8, 12);
        Tensor Bf16(Shape shape) => cpu.Allocate(shape, MemoryTag.Scratch, DType.BFloat16);
        using Tensor h = Bf16(new Shape(5, 12)), a = Bf16(new Shape(5, 12)), dh = Bf16(new Shape(5, 12));
        using Tensor hRef = Bf16(new Shape(5, 12)), aRef = Bf16(new Shape(5, 12)), dhRef = Bf16(new Shape(5, 12));
        cpu.MatMulBiasGelu(x, false, w, true, h, a, bias);
        cpu.MatMulBias(x, false, w, true, hRef, bias);
        cpu.Gelu(hRef, aRef);
        Assert.Equal(Flora.Tests.Backends.BFloat16Tests.Bits(hRef), Flora.Tests.Backends.BFloat16Tests.Bits(h));
        Assert.Equal(Flora.Tests.Backends.BFloat16Tests.Bits(aRef), Flora.Tests.Backends.BFloat16Tests.Bits(a));
        cpu.MatMulGeluBackward(dy, false, down, false, h, dh);                    // (dy W) GELU'(h), W (C, F)
        using var da = cpu.Allocate(new Shape(5, 12), MemoryTag.Scratch);
        cpu.MatMul(dy, false, down, false, da);
        cpu.GeluBackward(hRef, da, dhRef);
        Assert.Equal(Flora.Tests.Backends.BFloat16Tests.Bits(dhRef), Flora.Tests.Backends.BFloat16Tests.Bits(dh));
        Assert.NotEqual(Flora.Tests.Backends.BFloat16Tests.Bits(dh), Flora.Tests.Backends.BFloat16Tests.Bits(a));
        using var wide = cpu.Allocate(new Shape(5, 12), MemoryTag.Scratch);
        Assert.Throws<ArgumentException>(() => cpu.MatMulBiasGelu(x, false, w, true, wide, a, bias));
        Assert.Throws<ArgumentException>(() => cpu.MatMulGeluBackward(dy, false, down, false, h, wide));
    }

    [Fact]
    public void Attention_reads_bf16_q_k_v_as_their_widened_values()
    {
        using var cpu = TestUtil.Cpu();
        const int b = 2, h = 2, t = 5, hd = 4, c = h * hd;
        var shape = new AttentionShape(b, h, t, t, hd, true, 0.5f);
        using var qkv = TestUtil.Random(cpu, 9, 1, b * t, 3 * c);
        using var qkv16 = cpu.Allocate(qkv.Shape, MemoryTag.Activations, DType.BFloat16);
        cpu.Copy(qkv, qkv16);
        cpu.Copy(qkv16, qkv);                                                   // the same values in fp32
        using var dOut = TestUtil.Random(cpu, 10, 1, b * t, c);
        float[][] Run(Tensor source)
        {
            using var o = cpu.Allocate(new Shape(b * t, c), MemoryTag.Scratch);
            using var lse = cpu.Allocate(new Shape(b, h, t), MemoryTag.Scratch);
            using var d = cpu.Allocate(new Shape(b * t, 3 * c), MemoryTag.Scratch);
            cpu.AttentionForward(shape, new(source, 0), new(source, c), new(source, 2 * c), o, lse);
            cpu.AttentionBackward(shape, dOut, new(source, 0), new(source, c), new(source, 2 * c), o, lse, new(d, 0), new(d, c), new(d, 2 * c));
            return [TestUtil.ToArray(o), TestUtil.ToArray(lse), TestUtil.ToArray(d)];
        }
        var wide = Run(qkv);
        var half = Run(qkv16);
        for (int i = 0; i < wide.Length; i++) Assert.Equal(wide[i], half[i]);
    }

    [Fact]
    public void A_bf16_attention_output_is_the_fp32_output_rounded_and_backward_reads_it_widened()
    {
        using var cpu = Backend(true);
        const int b = 2, h = 2, t = 5, hd = 4, c = h * hd;
        var shape = new AttentionShape(b, h, t, t, hd, true, 0.5f);
        using var qkv = TestUtil.Random(cpu, 11, 1, b * t, 3 * c);
        using var dOut = TestUtil.Random(cpu, 12, 1, b * t, c);
        using var o = cpu.Allocate(new Shape(b * t, c), MemoryTag.Scratch);
        using var o16 = cpu.Allocate(new Shape(b * t, c), MemoryTag.Scratch, DType.BFloat16);
        using var lse = cpu.Allocate(new Shape(b, h, t), MemoryTag.Scratch);
        using var d = cpu.Allocate(new Shape(b * t, 3 * c), MemoryTag.Scratch);
        cpu.AttentionForward(shape, new(qkv, 0), new(qkv, c), new(qkv, 2 * c), o16, lse);
        cpu.AttentionForward(shape, new(qkv, 0), new(qkv, c), new(qkv, 2 * c), o, lse);
        Assert.Equal(Rounded(TestUtil.ToArray(o)), Widened(cpu, o16));
        cpu.Copy(o16, o);                                                         // the kept output's values, in fp32
        cpu.AttentionBackward(shape, dOut, new(qkv, 0), new(qkv, c), new(qkv, 2 * c), o, lse, new(d, 0), new(d, c), new(d, 2 * c));
        float[] expected = TestUtil.ToArray(d);
        cpu.AttentionBackward(shape, dOut, new(qkv, 0), new(qkv, c), new(qkv, 2 * c), o16, lse, new(d, 0), new(d, c), new(d, 2 * c));
        Assert.Equal(expected, TestUtil.ToArray(d));
    }

    /// <summary>Forward and backward of a tiny GPT-2; returns logits, gradients and the activation bytes held after.</summary>
    private static (float[] Logits, float[][] Grads, long Activations) Step(bool bf16, int layers, int c, int b, int t)
    {
        using var cpu = Backend(bf16);
        using var model = new Gpt2(cpu, new Gpt2Config(layers, 2, c, 13, 8), seed: 3);
        return TestUtil.ForwardBackward(cpu, model, b, t);
    }

    [Fact]
    public void A_gpt2_in_bf16_mode_keeps_8_C_floats_per_token_and_block_in_half_the_bytes()
    {
        const int layers = 3, c = 16, b = 2, t = 8;
        var fp32 = Step(bf16: false, layers, c, b, t);
        var bf16 = Step(bf16: true, layers, c, b, t);
        // Per block and token q, k, v (3 C), the attention's output (C) and the MLP's pre-activation (4 C) drop from 4 to
        // 2 bytes; so do the buffers every block shares for the values that only products (and a bias sum) read: GELU's
        // output (4 C) and the two norms' outputs (C each). The MLP's hidden gradient takes one bf16 buffer instead of two
        // fp32 ones (the down projection's input gradient and GELU's, 4 C each): GELU's derivative is applied in the down
        // projection's product (MatMulGeluBackward). Each op writes its bf16 output itself: no fp32 staging buffer.
        long tokens = b * t;
        Assert.Equal(layers * 8L * c * 2 * tokens + (6L * c * 2 + 8L * c * 4 - 4L * c * 2) * tokens, fp32.Activations - bf16.Activations);
        // The rounding of those activations moves the logits and gradients by bf16's relative step at most, about.
        double Scale(float[] v) => v.Max(Math.Abs);
        double logitError = fp32.Logits.Zip(bf16.Logits, (x, y) => Math.Abs(x - y)).Max() / Scale(fp32.Logits);
        Assert.InRange(logitError, 1e-6, 2e-2);                                 // changed, but little
        for (int i = 0; i < fp32.Grads.Length; i++)
        {
            double error = fp32.Grads[i].Zip(bf16.Grads[i], (x, y) => Math.Abs(x - y)).Max() / Math.Max(Scale(fp32.Grads[i]), 1e-12);
            Assert.True(error < 5e-2, $"gradient {i}: relative difference {error:E2}");
        }
    }

    [Fact]
    public void Fp32_mode_changes_no_bit()
    {
        // The precision argument's default and Fp32 give the backend of before: same logits and gradients, bit for bit.
        using var a = TestUtil.Cpu();
        var fp32 = Step(bf16: false, 2, 8, 2, 5);
        using var model = new Gpt2(a, new Gpt2Config(2, 2, 8, 13, 8), seed: 3);
        using var ids = TestUtil.Ids(a, 2, 5, model.Vocabulary, 5);
        Assert.Equal(fp32.Logits, TestUtil.ToArray(model.Forward(ids)));
    }

    /// <summary>The training losses of 20 FLORA steps of a tiny GPT-2 on a fixed batch.</summary>
    private static float[] Losses(bool bf16)
    {
        using var cpu = Backend(bf16);
        using var model = new Gpt2(cpu, new Gpt2Config(2, 2, 32, 29, 16), seed: 11);
        var spec = new OptimizerSpec { Name = "flora", Rank = 4, LearningRate = 0.1f };
        using var optimizer = spec.Create(cpu, model.Parameters().Where(p => p.RequiresGrad));
        var random = new Random(21);
        int[] tokens = Enumerable.Range(0, 4 * 16).Select(_ => random.Next(29)).ToArray();
        using var ids = cpu.Allocate(new Shape(4, 16), MemoryTag.Activations, DType.Int32);
        using var targets = cpu.Allocate(new Shape(4, 16), MemoryTag.Activations, DType.Int32);
        cpu.Upload(tokens, ids);
        cpu.Upload(tokens.Select(i => (i * 3 + 1) % 29).ToArray(), targets);   // a rule the model can learn
        var losses = new float[20];
        for (int s = 0; s < losses.Length; s++)
        {
            losses[s] = model.ForwardLoss(ids, targets);
            model.BackwardLoss(optimizer.Gradients);
            optimizer.Step();
        }
        return losses;
    }

    [Fact]
    public void Training_in_bf16_mode_follows_fp32_mode_within_a_tenth_of_a_percent()
    {
        float[] fp32 = Losses(false), bf16 = Losses(true);
        Assert.True(fp32[^1] < 0.7f * fp32[0], $"fp32 mode learns: {string.Join(", ", fp32)}; bf16: {string.Join(", ", bf16)}");
        for (int s = 0; s < fp32.Length; s++)
            Assert.True(Math.Abs(bf16[s] - fp32[s]) <= 1e-3 * fp32[s], $"step {s}: bf16 mode {bf16[s]}, fp32 mode {fp32[s]}");
        Assert.NotEqual(fp32, bf16);                                            // the modes differ at all
    }
}
