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
        AssertChangedButLittle(fp32, bf16);
    }

    /// <summary>bf16 activations move the logits (at all, and by at most 2 %) and every gradient (by under 5 %), relative to the largest value.</summary>
    private static void AssertChangedButLittle((float[] Logits, float[][] Grads, long Activations) fp32, (float[] Logits, float[][] Grads, long Activations) bf16)
    {
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
    private static float[] Losses(bool bf16) => Losses(bf16, b => new Gpt2(b, new Gpt2Config(2, 2, 32, 29, 16), seed: 11), 0.1f);

    /// <summary>
    /// The training losses of 20 FLORA steps, at <paramref name="learningRate"/>, of the model <paramref name="build"/> makes
    /// (a vocabulary of 29) on a fixed batch of 4 x 16 tokens.
    /// </summary>
    private static float[] Losses(bool bf16, Func<IBackend, LanguageModel> build, float learningRate)
    {
        using var cpu = Backend(bf16);
        using var model = build(cpu);
        var spec = new OptimizerSpec { Name = "flora", Rank = 4, LearningRate = learningRate };
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
        // With one of the two blocks checkpointed (its internals kept in bf16 while backward recomputes it) as well.
        float[] checkpointed = Losses(true, b =>
        {
            var model = new Gpt2(b, new Gpt2Config(2, 2, 32, 29, 16), seed: 11);
            model.EnableCheckpointing(1);
            Assert.True(model.Blocks[0].Checkpointed && model.Blocks[0].Mlp.KeepsBf16);
            return model;
        }, 0.1f);
        for (int s = 0; s < fp32.Length; s++)
            Assert.True(Math.Abs(checkpointed[s] - fp32[s]) <= 1e-3 * fp32[s], $"step {s}: bf16 mode, one block checkpointed {checkpointed[s]}, fp32 mode {fp32[s]}");
    }

    [Fact]
    public void Rmsnorm_rotary_and_swiglu_on_bf16_values_give_their_fp32_results_rounded()
    {
        using var cpu = Backend(true);
        Tensor Bf16(Tensor wide)
        {
            var half = cpu.Allocate(wide.Shape, MemoryTag.Scratch, DType.BFloat16);
            cpu.Copy(wide, half);
            cpu.Copy(half, wide);                                                  // wide now holds the bf16 values exactly
            return half;
        }
        // RMSNorm: the fp32 output rounded.
        using var x = TestUtil.Random(cpu, 41, 2f, 6, 16);
        using var weight = TestUtil.Random(cpu, 42, 1f, 16);
        using var rstd = cpu.Allocate(new Shape(6), MemoryTag.Scratch);
        using var y = cpu.Allocate(x.Shape, MemoryTag.Scratch);
        using var y16 = cpu.Allocate(x.Shape, MemoryTag.Scratch, DType.BFloat16);
        cpu.RmsNormForward(x, weight, y, rstd, 1e-6f);
        cpu.RmsNormForward(x, weight, y16, rstd, 1e-6f);
        Assert.Equal(Rounded(TestUtil.ToArray(y)), Widened(cpu, y16));
        // Rotary on bf16 q (with Llama 3 scaling), both ways: the rotation of the widened values, rounded.
        using var q = TestUtil.Random(cpu, 43, 1f, 2 * 5, 12);
        using var q16 = Bf16(q);
        var scaling = new RopeScaling(8, 1, 4, 16);
        foreach (bool inverse in new[] { false, true })
        {
            cpu.Rotary(q, 0, 3, 4, 5, 10000f, inverse, scaling);
            cpu.Rotary(q16, 0, 3, 4, 5, 10000f, inverse, scaling);
            Assert.Equal(Rounded(TestUtil.ToArray(q)), Widened(cpu, q16));
            cpu.Copy(q16, q);
        }
        // SwiGLU forward and backward on bf16 gate and up; the gradients rounded from fp32 too.
        using var gate = TestUtil.Random(cpu, 44, 2f, 4, 10);
        using var up = TestUtil.Random(cpu, 45, 1f, 4, 10);
        using var dy = TestUtil.Random(cpu, 46, 1f, 4, 10);
        using Tensor gate16 = Bf16(gate), up16 = Bf16(up);
        using var a = cpu.Allocate(gate.Shape, MemoryTag.Scratch);
        using var a16 = cpu.Allocate(gate.Shape, MemoryTag.Scratch, DType.BFloat16);
        cpu.SwiGlu(gate, up, a);
        cpu.SwiGlu(gate16, up16, a16);
        Assert.Equal(Rounded(TestUtil.ToArray(a)), Widened(cpu, a16));
        using var dGate = cpu.Allocate(gate.Shape, MemoryTag.Scratch);
        using var dUp = cpu.Allocate(gate.Shape, MemoryTag.Scratch);
        using var dGate16 = cpu.Allocate(gate.Shape, MemoryTag.Scratch, DType.BFloat16);
        using var dUp16 = cpu.Allocate(gate.Shape, MemoryTag.Scratch, DType.BFloat16);
        cpu.SwiGluBackward(gate, up, dy, dGate, dUp);
        cpu.SwiGluBackward(gate16, up16, dy, dGate16, dUp16);
        Assert.Equal(Rounded(TestUtil.ToArray(dGate)), Widened(cpu, dGate16));
        Assert.Equal(Rounded(TestUtil.ToArray(dUp)), Widened(cpu, dUp16));
        Assert.Throws<ArgumentException>(() => cpu.SwiGlu(gate16, up, a16));                 // mixed types are refused
        Assert.Throws<ArgumentException>(() => cpu.SwiGluBackward(gate16, up16, dy, dGate, dUp16));
    }

    private static LlamaConfig GroupedLlama(int layers) =>
        new(layers, 4, 16, 24, 13, 8, 500000f) { KeyValueHeads = 2, HeadDim = 4, RopeScaling = new RopeScaling(8, 1, 4, 16) };

    [Fact]
    public void A_llama_in_bf16_mode_keeps_q_k_v_the_attention_output_gate_and_up_in_half_the_bytes()
    {
        const int layers = 3, b = 2, t = 8;
        var config = GroupedLlama(layers);
        (float[] Logits, float[][] Grads, long Activations) Run(bool bf16)
        {
            using var cpu = Backend(bf16);
            using var model = new Llama(cpu, config, seed: 3);
            return TestUtil.ForwardBackward(cpu, model, b, t);
        }
        var fp32 = Run(false);
        var bf16 = Run(true);
        // Per block and token: q and the attention's output (H hd each), k and v (Hkv hd each), gate and up (F each) drop
        // from 4 to 2 bytes; so do the buffers every block shares: the two RMSNorm outputs (C each), silu(gate) up (F) and
        // the gradients of gate and up (F each).
        long tokens = b * t, c = config.Embed, f = config.Intermediate, wq = config.Heads * config.HeadSize, wkv = config.KvHeads * config.HeadSize;
        Assert.Equal((layers * (2 * wq + 2 * wkv + 2 * f) + 2 * c + 3 * f) * 2 * tokens, fp32.Activations - bf16.Activations);
        AssertChangedButLittle(fp32, bf16);
    }

    [Fact]
    public void Checkpointed_llama_blocks_keep_their_activations_in_bf16_too()
    {
        const int b = 2, t = 8;
        (float[] Logits, float[][] Grads, long Activations) Run(bool bf16)
        {
            using var cpu = Backend(bf16);
            using var model = new Llama(cpu, GroupedLlama(3), seed: 3);
            model.EnableCheckpointing(2);
            Assert.Equal([true, true, false], model.Blocks.Select(block => block.Checkpointed));
            Assert.All(model.Blocks, block => Assert.Equal(bf16, ((GroupedQueryAttention)block.Attention).KeepsBf16 && block.Mlp.KeepsBf16));
            return TestUtil.ForwardBackward(cpu, model, b, t);
        }
        var fp32 = Run(false);
        var bf16 = Run(true);
        Assert.True(bf16.Activations < fp32.Activations, $"bf16 {bf16.Activations} bytes, fp32 {fp32.Activations}");
        AssertChangedButLittle(fp32, bf16);
    }

    [Fact]
    public void A_llama_trains_in_bf16_mode_as_in_fp32_mode_with_or_without_some_blocks_checkpointed()
    {
        float[] Losses(bool bf16, int? checkpointed) => Bf16ActivationTests.Losses(bf16, b =>
        {
            var model = new Llama(b, GroupedLlama(3) with { Embed = 32, Intermediate = 48, HeadDim = 8, Vocabulary = 29, Context = 16 }, seed: 11);
            if (checkpointed is int n) model.EnableCheckpointing(n);
            return model;
        }, 0.05f);
        float[] fp32 = Losses(false, null);
        Assert.True(fp32[^1] < 0.7f * fp32[0], $"fp32 mode learns: {string.Join(", ", fp32)}");
        foreach (int? checkpointed in new int?[] { null, 1 })
        {
            float[] bf16 = Losses(true, checkpointed);
            for (int s = 0; s < fp32.Length; s++)
                Assert.True(Math.Abs(bf16[s] - fp32[s]) <= 2e-3 * fp32[s], $"checkpointed {checkpointed}, step {s}: bf16 mode {bf16[s]}, fp32 mode {fp32[s]}");
            Assert.NotEqual(fp32, bf16);
        }
    }
}
