using Flora.Backends;
using Flora.Nn;
using Flora.Nn.Models;
using Flora.Optim;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Tests.Nn;

/// <summary>Finite-difference checks of the transformer layers and whole models, on tiny sizes.</summary>
public class TransformerGradientTests
{
    [Fact]
    public void LayerNorm_passes_the_finite_difference_check()
    {
        using var cpu = TestUtil.Cpu();
        using var ln = new LayerNorm(cpu, "ln", 7);
        cpu.FillGaussian(ln.Weight.Value, 1, 1f);
        cpu.FillGaussian(ln.Bias.Value, 2, 1f);
        using var x = TestUtil.Random(cpu, 3, 1, 5, 7);
        GradientCheck.Run(cpu, ln, x);
    }

    [Fact]
    public void A_projection_that_adds_the_residual_writes_the_residual_plus_its_output_once()
    {
        using var cpu = TestUtil.Cpu();
        using var linear = new Linear(cpu, "proj", 6, 4, bias: true, seed: 5);
        cpu.FillGaussian(linear.Bias!.Value, 6, 1f);
        using var x = TestUtil.Random(cpu, 7, 1, 3, 6);
        using var residual = TestUtil.Random(cpu, 8, 1, 3, 4);
        using var sum = cpu.Allocate(new Shape(3, 4), MemoryTag.Scratch);
        float[] y = linear.Forward(x).ToArray(), r = residual.ToArray();
        linear.AddNextOutputTo(residual, sum);
        Assert.Same(sum, linear.Forward(x));
        Assert.Equal(r.Zip(y, (a, b) => a + b), sum.ToArray());                   // residual + (x W^T + b), the add's own order
        Assert.Equal(y, linear.Forward(x).ToArray());                              // once: the next forward is plain again
        linear.AddNextOutputTo(residual, sum);
        linear.CancelOutputAdd();                                                  // (a branch that failed before its projection)
        Assert.NotSame(sum, linear.Forward(x));
        Assert.Throws<ArgumentException>(() => cpu.MatMulBiasAdd(x, false, linear.Weight.Value, true, null, sum, sum));   // in place
    }

    [Fact]
    public void RmsNorm_passes_the_finite_difference_check()
    {
        using var cpu = TestUtil.Cpu();
        using var norm = new RmsNorm(cpu, "rms", 6);
        cpu.FillGaussian(norm.Weight.Value, 1, 1f);
        using var x = TestUtil.Random(cpu, 3, 1, 4, 6);
        GradientCheck.Run(cpu, norm, x);
    }

    [Fact]
    public void Norms_fold_a_residual_gradient_into_dx_as_the_same_sum_and_refuse_dx_itself()
    {
        using var cpu = TestUtil.Cpu();
        using var ln = new LayerNorm(cpu, "ln", 7);
        using var rms = new RmsNorm(cpu, "rms", 7);
        cpu.FillGaussian(ln.Weight.Value, 1, 1f);
        cpu.FillGaussian(rms.Weight.Value, 2, 1f);
        using var x = TestUtil.Random(cpu, 3, 1, 5, 7);
        using var dy = TestUtil.Random(cpu, 4, 1, 5, 7);
        using var skip = TestUtil.Random(cpu, 5, 1, 5, 7);
        using var folded = cpu.Allocate(x.Shape, MemoryTag.Scratch);
        using var expected = cpu.Allocate(x.Shape, MemoryTag.Scratch);
        var sink = new AccumulateSink(cpu, new Sgd(cpu, [.. ln.Parameters(), .. rms.Parameters()], 1f));
        foreach (Module norm in new Module[] { ln, rms })
        {
            norm.Forward(x);
            cpu.Add(skip, norm.Backward(dy, sink)!, expected);                    // the block's addition of before
            ((IResidualNorm)norm).BackwardWithResidual(dy, sink, skip, folded);
            Assert.Equal(TestUtil.ToArray(expected), TestUtil.ToArray(folded));   // the same float sums, bit for bit
            Assert.Throws<ArgumentException>(() => ((IResidualNorm)norm).BackwardWithResidual(dy, sink, folded, folded));
        }
    }

    [Theory]
    [InlineData(true, null)]
    [InlineData(false, null)]
    [InlineData(true, 10000f)]
    public void SelfAttention_passes_the_finite_difference_check(bool causal, float? rotary)
    {
        using var cpu = TestUtil.Cpu();
        const int c = 8;
        using var attention = new SelfAttention(cpu, "attn", c, 2, causal,
            new Linear(cpu, "attn.c_attn", c, 3 * c, true, 1, WeightLayout.InOut, 0.5f),
            new Linear(cpu, "attn.c_proj", c, c, true, 2, WeightLayout.InOut, 0.5f), rotary);
        using var x = TestUtil.Random(cpu, 3, 1, 2, 5, c);
        GradientCheck.Run(cpu, attention, x);
    }

    [Fact]
    public void Rotary_turns_each_pair_by_position_times_frequency_and_inverse_undoes_it()
    {
        // Rotate-half convention: pair (x_i, x_{i+hd/2}) of position t turns by t theta^(-2i/hd).
        using var cpu = TestUtil.Cpu();
        const int t = 5, heads = 2, hd = 4;
        using var x = TestUtil.Random(cpu, 1, 1, t, heads * hd + 3);               // 3 extra columns stay untouched
        float[] before = TestUtil.ToArray(x);
        cpu.Rotary(x, 3, heads, hd, t, 100f, inverse: false);
        float[] after = TestUtil.ToArray(x);
        int stride = heads * hd + 3;
        for (int pos = 0; pos < t; pos++)
        {
            for (int j = 0; j < 3; j++) Assert.Equal(before[pos * stride + j], after[pos * stride + j]);
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < hd / 2; i++)
                {
                    int a = pos * stride + 3 + h * hd + i, b = a + hd / 2;
                    double angle = pos * Math.Pow(100, -2.0 * i / hd);
                    Assert.Equal(before[a] * Math.Cos(angle) - before[b] * Math.Sin(angle), after[a], 1e-5);
                    Assert.Equal(before[a] * Math.Sin(angle) + before[b] * Math.Cos(angle), after[b], 1e-5);
                }
        }
        cpu.Rotary(x, 3, heads, hd, t, 100f, inverse: true);
        float[] back = TestUtil.ToArray(x);
        for (int i = 0; i < back.Length; i++) Assert.Equal(before[i], back[i], 1e-5f);
    }

    [Fact]
    public void Causal_attention_does_not_look_ahead()
    {
        using var cpu = TestUtil.Cpu();
        const int c = 8, t = 6;
        using var attention = new SelfAttention(cpu, "attn", c, 2, true,
            new Linear(cpu, "q", c, 3 * c, true, 1), new Linear(cpu, "o", c, c, true, 2));
        using var x = TestUtil.Random(cpu, 3, 1, 1, t, c);
        float[] before = TestUtil.ToArray(attention.Forward(x));
        float[] xs = TestUtil.ToArray(x);
        for (int i = 4 * c; i < t * c; i++) xs[i] += 1f;                   // change positions 4 and 5
        cpu.Upload(xs, x);
        float[] after = TestUtil.ToArray(attention.Forward(x));
        for (int i = 0; i < 4 * c; i++) Assert.Equal(before[i], after[i]);   // positions 0..3 unchanged
        Assert.NotEqual(before[4 * c], after[4 * c]);
    }

    [Fact]
    public void CrossAttention_passes_the_finite_difference_check_for_queries_and_memory()
    {
        using var cpu = TestUtil.Cpu();
        const int c = 8;
        using var cross = new CrossAttention(cpu, "cross", c, 2,
            new Linear(cpu, "q", c, c, false, 1, initStd: 0.5f), new Linear(cpu, "kv", c, 2 * c, false, 2, initStd: 0.5f),
            new Linear(cpu, "o", c, c, false, 3, initStd: 0.5f));
        using var memory = TestUtil.Random(cpu, 4, 1, 2, 3, c);
        cross.SetMemory(memory);
        using var x = TestUtil.Random(cpu, 5, 1, 2, 4, c);
        GradientCheck.Run(cpu, cross, x);

        // The memory's gradient: perturb the memory, compare with MemoryGradient.
        using var dMemory = cpu.Allocate(memory.Shape, MemoryTag.Activations);
        using var r = TestUtil.Random(cpu, 99, 1, 2, 4, c);
        cross.MemoryGradient = dMemory;
        cross.Forward(x);
        cross.Backward(r, new AccumulateSink(cpu, new Sgd(cpu, cross.Parameters(), 1f)));
        float[] analytic = TestUtil.ToArray(dMemory), m = TestUtil.ToArray(memory), rs = TestUtil.ToArray(r);
        const float eps = 1e-2f;
        for (int i = 0; i < m.Length; i += 3)
        {
            float v = m[i];
            m[i] = v + eps; cpu.Upload(m, memory); double plus = TestUtil.Dot(TestUtil.ToArray(cross.Forward(x)), rs);
            m[i] = v - eps; cpu.Upload(m, memory); double minus = TestUtil.Dot(TestUtil.ToArray(cross.Forward(x)), rs);
            m[i] = v; cpu.Upload(m, memory);
            Assert.Equal((plus - minus) / (2 * eps), analytic[i], 1e-2 * (1 + Math.Abs(analytic[i])));
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Mlp_passes_the_finite_difference_check(bool swiGlu)
    {
        using var cpu = TestUtil.Cpu();
        using var mlp = swiGlu
            ? new Mlp(cpu, "mlp", new Linear(cpu, "g", 6, 5, false, 1), new Linear(cpu, "u", 6, 5, false, 4), new Linear(cpu, "d", 5, 6, false, 2))
            : new Mlp(cpu, "mlp", new Linear(cpu, "fc", 6, 10, true, 1), new Linear(cpu, "proj", 10, 6, true, 2));
        using var x = TestUtil.Random(cpu, 3, 1, 4, 6);
        GradientCheck.Run(cpu, mlp, x);
    }

    [Fact]
    public void Dropout_is_a_fixed_function_per_step_and_passes_the_check()
    {
        using var cpu = TestUtil.Cpu();
        var context = new ModelContext { Seed = 5, Step = 3 };
        using var dropout = new Dropout(cpu, "drop", 0.3f, context);
        using var x = TestUtil.Random(cpu, 3, 1, 10, 20);
        float[] y = TestUtil.ToArray(dropout.Forward(x)), xs = TestUtil.ToArray(x);
        int zeros = y.Count(v => v == 0);
        Assert.InRange(zeros, 40, 80);                                       // 200 x 0.3 = 60 expected, sd 6.5
        for (int i = 0; i < y.Length; i++) if (y[i] != 0) Assert.Equal(xs[i] / 0.7f, y[i], 1e-5f);
        GradientCheck.Run(cpu, dropout, x);
        context.Step = 4;
        Assert.NotEqual(y, TestUtil.ToArray(dropout.Forward(x)));          // a new step, a new mask
        context.Training = false;
        Assert.Equal(xs, TestUtil.ToArray(dropout.Forward(x)));           // identity when evaluating
    }

    [Fact]
    public void Position_embedding_passes_the_check_for_a_sequence_shorter_than_the_context()
    {
        using var cpu = TestUtil.Cpu();
        using var positions = new PositionEmbedding(cpu, "wpe", 8, 4, 1, 0.5f);
        using var x = TestUtil.Random(cpu, 2, 1, 2, 5, 4);
        GradientCheck.Run(cpu, positions, x);
    }

    [Fact]
    public void Transformer_block_passes_the_check_and_checkpointing_changes_nothing_but_memory()
    {
        using var cpu = TestUtil.Cpu();
        TransformerBlock Block(int seed)
        {
            const int c = 8;
            var context = new ModelContext { Seed = 1, Step = 2 };
            return new TransformerBlock(cpu, "h.0", new LayerNorm(cpu, "ln_1", c),
                new SelfAttention(cpu, "attn", c, 2, true, new Linear(cpu, "qkv", c, 3 * c, true, (ulong)seed), new Linear(cpu, "o", c, c, true, (ulong)seed + 1)),
                new LayerNorm(cpu, "ln_2", c), new Mlp(cpu, "mlp", new Linear(cpu, "fc", c, 16, true, (ulong)seed + 2), new Linear(cpu, "p", 16, c, true, (ulong)seed + 3)),
                dropout: 0.1f, context);
        }
        using var x = TestUtil.Random(cpu, 3, 1, 2, 4, 8);
        using var plain = Block(10);
        GradientCheck.Run(cpu, plain, x);

        using var checkpointed = Block(10);
        using var shared = new ActivationScope(cpu);
        checkpointed.EnableCheckpointing(shared);
        using var dy = TestUtil.Random(cpu, 4, 1, 2, 4, 8);
        var sinkA = new AccumulateSink(cpu, new Sgd(cpu, plain.Parameters(), 1f));
        var sinkB = new AccumulateSink(cpu, new Sgd(cpu, checkpointed.Parameters(), 1f));
        float[] yA = TestUtil.ToArray(plain.Forward(x)), yB = TestUtil.ToArray(checkpointed.Forward(x));
        Assert.Equal(yA, yB);
        float[] dxA = TestUtil.ToArray(plain.Backward(dy, sinkA)!), dxB = TestUtil.ToArray(checkpointed.Backward(dy, sinkB)!);
        Assert.Equal(dxA, dxB);
        foreach (var (a, b) in plain.Parameters().Zip(checkpointed.Parameters()))
            Assert.Equal(TestUtil.ToArray(a.Grad!), TestUtil.ToArray(b.Grad!));
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("t5")]
    public void Checkpointing_some_blocks_of_a_gpt2_with_dropout_or_a_t5_changes_nothing_but_memory(string family)
    {
        // The first 2 of 4 blocks (of GPT-2's stack, or of T5's encoder then decoder) recompute, the others keep theirs;
        // dropout's masks are drawn again from the same seeds. Two steps: the second reuses every shared buffer.
        using var cpu = TestUtil.Cpu();
        LanguageModel Build() => family == "gpt2"
            ? new Gpt2(cpu, new Gpt2Config(4, 2, 16, 13, 8, Dropout: 0.1f), seed: 5)
            : new T5(cpu, new T5Config(2, 2, 2, 16, 32, 13, 8, Dropout: 0.1f), seed: 5);
        using var plain = Build();
        using var partial = Build();
        partial.EnableCheckpointing(2);
        Assert.Equal((2, 4), (partial.CheckpointedBlocks, partial.BlockCount));
        using var source = TestUtil.Ids(cpu, 2, 6, 13, 7);
        for (int step = 0; step < 2; step++)
        {
            using var ids = TestUtil.Ids(cpu, 2, 5, 13, step + 1);
            using var targets = TestUtil.Ids(cpu, 2, 5, 13, step + 11);
            var sinks = new[] { plain, partial }.Select(m =>
            {
                m.Context.Training = true;
                m.Context.Step = step;
                if (m.IsEncoderDecoder) m.SetSource(source);
                return new AccumulateSink(cpu, new Sgd(cpu, m.Parameters(), 1f));
            }).ToArray();
            Assert.Equal(plain.ForwardLoss(ids, targets), partial.ForwardLoss(ids, targets));
            plain.BackwardLoss(sinks[0]);
            partial.BackwardLoss(sinks[1]);
            foreach (var (a, b) in plain.Parameters().Zip(partial.Parameters()))
            {
                Assert.Equal(TestUtil.ToArray(a.Grad!), TestUtil.ToArray(b.Grad!));
                cpu.Fill(a.Grad!, 0f);
                cpu.Fill(b.Grad!, 0f);
            }
        }
    }

    [Fact]
    public void Gpt2_passes_the_finite_difference_check_with_tied_embeddings()
    {
        using var cpu = TestUtil.Cpu();
        using var model = new Gpt2(cpu, new Gpt2Config(2, 2, 8, 11, 6), seed: 3);
        using var ids = TestUtil.Ids(cpu, 2, 5, 11, 1);
        ModelCheck(cpu, model, ids);
        Assert.Equal(2, model.Parameters().Single(p => p.Name == "wte.weight").UsesPerStep);
    }

    [Fact]
    public void Llama_passes_the_finite_difference_check()
    {
        using var cpu = TestUtil.Cpu();
        using var model = new Llama(cpu, new LlamaConfig(2, 2, 8, 12, 11, 6), seed: 3);
        using var ids = TestUtil.Ids(cpu, 2, 5, 11, 1);
        ModelCheck(cpu, model, ids);
    }

    [Fact]
    public void T5_passes_the_finite_difference_check_through_encoder_and_decoder()
    {
        using var cpu = TestUtil.Cpu();
        using var model = new T5(cpu, new T5Config(1, 1, 2, 8, 16, 11, 6), seed: 3);
        using var source = TestUtil.Ids(cpu, 2, 4, 11, 7);
        using var ids = TestUtil.Ids(cpu, 2, 3, 11, 1);
        model.SetSource(source);
        ModelCheck(cpu, model, ids);
    }

    [Fact]
    public void Vit_passes_the_finite_difference_check()
    {
        using var cpu = TestUtil.Cpu();
        using var model = new Vit(cpu, new VitConfig(4, 2, 1, 2, 8, 3), seed: 3);
        using var patches = TestUtil.Random(cpu, 5, 1, 2, 4, 4);
        GradientCheck.Run(cpu, model, patches, maxChecksPerTensor: 12);
    }

    /// <summary>
    /// A model's parameters against finite differences of L = sum(logits * R). Embeddings start at
    /// N(0, 0.02), so the first norm divides by about 0.02: eps = 2e-3 keeps the central difference
    /// in the linear range (1e-2 would move an embedding by half its size).
    /// </summary>
    private static void ModelCheck(IBackend cpu, Module model, Tensor ids) => GradientCheck.Run(cpu, model, ids, eps: 2e-3f, maxChecksPerTensor: 12);
}
