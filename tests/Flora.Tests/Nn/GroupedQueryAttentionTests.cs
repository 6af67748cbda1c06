using Flora.Backends;
using Flora.Nn;
using Flora.Nn.Models;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Tests.Nn;

/// <summary>
/// Grouped-query attention: the kernel against ordinary multi-head attention with each key/value head repeated for its
/// group (outputs equal, dk and dv the sums of the repeated heads' gradients), and the layer and a whole Llama with
/// grouped heads, q/k/v biases, Llama 3 rope scaling and tied embeddings against finite differences.
/// </summary>
public class GroupedQueryAttentionTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Grouped_heads_equal_repeated_heads_and_their_gradients_add_up(bool causal)
    {
        using var cpu = TestUtil.Cpu();
        const int B = 2, T = 5, H = 6, K = 2, hd = 3, g = H / K;
        using var q = TestUtil.Random(cpu, 1, 1f, B * T, H * hd);
        using var k = TestUtil.Random(cpu, 2, 1f, B * T, K * hd);
        using var v = TestUtil.Random(cpu, 3, 1f, B * T, K * hd);
        using var dOut = TestUtil.Random(cpu, 4, 1f, B * T, H * hd);
        float[] ka = k.ToArray(), va = v.ToArray();
        float[] Repeat(float[] kv) => Enumerable.Range(0, B * T * H * hd).Select(i =>
        {
            int row = i / (H * hd), h = i % (H * hd) / hd, e = i % hd;
            return kv[row * K * hd + h / g * hd + e];
        }).ToArray();
        using var kr = TestUtil.FromArray(cpu, Repeat(ka), B * T, H * hd);
        using var vr = TestUtil.FromArray(cpu, Repeat(va), B * T, H * hd);

        var grouped = new AttentionShape(B, H, T, T, hd, causal, 0.4f, null, K);
        var plain = new AttentionShape(B, H, T, T, hd, causal, 0.4f);
        var (o1, dq1, dk1, dv1) = Run(cpu, grouped, q, k, v, dOut);
        var (o2, dq2, dk2, dv2) = Run(cpu, plain, q, kr, vr, dOut);
        AssertClose(o2, o1);
        AssertClose(dq2, dq1);
        float[] Sum(float[] repeated) => Enumerable.Range(0, B * T * K * hd).Select(i =>
        {
            int row = i / (K * hd), j = i % (K * hd) / hd, e = i % hd;
            return Enumerable.Range(0, g).Sum(m => repeated[row * H * hd + (j * g + m) * hd + e]);
        }).ToArray();
        AssertClose(Sum(dk2), dk1);
        AssertClose(Sum(dv2), dv1);
    }

    [Fact]
    public void Bad_groupings_are_refused()
    {
        using var cpu = TestUtil.Cpu();
        using var q = cpu.Allocate(new Shape(4, 12), MemoryTag.Scratch);
        using var kv = cpu.Allocate(new Shape(4, 8), MemoryTag.Scratch);
        using var o = cpu.Allocate(new Shape(4, 12), MemoryTag.Scratch);
        using var lse = cpu.Allocate(new Shape(1, 3, 4), MemoryTag.Scratch);
        var e = Assert.Throws<ArgumentException>(() => cpu.AttentionForward(new AttentionShape(1, 3, 4, 4, 4, true, 1f, null, 2), new(q, 0), new(kv, 0), new(kv, 0), o, lse));
        Assert.Contains("3 query heads", e.Message);
        e = Assert.Throws<ArgumentException>(() => cpu.AttentionForward(new AttentionShape(1, 3, 4, 4, 4, true, 1f, null, 3), new(q, 0), new(kv, 0), new(kv, 0), o, lse));
        Assert.Contains("width 12", e.Message);                                         // k of width 8 cannot hold 3 heads of 4
    }

    [Fact]
    public void The_layer_passes_the_finite_difference_check()
    {
        using var cpu = TestUtil.Cpu();
        const int c = 8, hd = 4;
        using var attention = new GroupedQueryAttention(cpu, "attn", 4, 2, hd,
            new Linear(cpu, "q", c, 4 * hd, true, 1, WeightLayout.OutIn, 0.5f), new Linear(cpu, "k", c, 2 * hd, true, 2, WeightLayout.OutIn, 0.5f),
            new Linear(cpu, "v", c, 2 * hd, true, 3, WeightLayout.OutIn, 0.5f), new Linear(cpu, "o", 4 * hd, c, false, 4, WeightLayout.OutIn, 0.5f),
            500000f, new RopeScaling(8, 1, 4, 16));
        using var x = TestUtil.Random(cpu, 5, 1, 2, 5, c);
        GradientCheck.Run(cpu, attention, x);
    }

    [Fact]
    public void A_llama_with_grouped_heads_biases_rope_scaling_and_tied_embeddings_passes_the_check()
    {
        using var cpu = TestUtil.Cpu();
        var config = new LlamaConfig(2, 4, 8, 12, 11, 6, 500000f)
        {
            KeyValueHeads = 2, HeadDim = 4, TiedEmbeddings = true, AttentionBias = true, RopeScaling = new RopeScaling(8, 1, 4, 16),
        };
        using var model = new Llama(cpu, config, seed: 3);
        foreach (var p in model.Parameters().Where(p => p.Name.EndsWith(".bias", StringComparison.Ordinal))) cpu.FillGaussian(p.Value, 8, 0.3f);
        Assert.Equal(2, model.Parameters().Single(p => p.Name == "model.embed_tokens.weight").UsesPerStep);
        var rng = new Random(1);
        using var ids = cpu.Allocate(new Shape(2, 5), MemoryTag.Activations, DType.Int32);
        cpu.Upload(Enumerable.Range(0, 10).Select(_ => rng.Next(11)).ToArray(), ids);
        GradientCheck.Run(cpu, model, ids, eps: 2e-3f, maxChecksPerTensor: 12);
    }

    [Theory]
    [InlineData(null)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(0)]
    public void Activation_checkpointing_of_all_some_or_no_blocks_recomputes_a_grouped_llama_exactly(int? blocks)
    {
        using var cpu = TestUtil.Cpu();
        var config = new LlamaConfig(3, 4, 16, 24, 13, 8, 500000f) { KeyValueHeads = 2, HeadDim = 8, TiedEmbeddings = true, RopeScaling = new RopeScaling(8, 1, 4, 16) };
        using var plain = new Llama(cpu, config, seed: 4);
        using var checkpointed = new Llama(cpu, config, seed: 4);
        checkpointed.EnableCheckpointing(blocks);
        Assert.Equal(blocks ?? 3, checkpointed.CheckpointedBlocks);
        Assert.Equal(blocks ?? 3, checkpointed.Blocks.Count(b => b.Checkpointed));
        Assert.All(checkpointed.Blocks.Take(blocks ?? 3), b => Assert.True(b.Checkpointed));      // the first blocks
        var rng = new Random(2);
        using var ids = cpu.Allocate(new Shape(2, 6), MemoryTag.Activations, DType.Int32);
        using var targets = cpu.Allocate(new Shape(2, 6), MemoryTag.Activations, DType.Int32);
        for (int step = 0; step < 2; step++)                                       // the second step reuses every shared buffer
        {
            cpu.Upload(Enumerable.Range(0, 12).Select(_ => rng.Next(13)).ToArray(), ids);
            cpu.Upload(Enumerable.Range(0, 12).Select(_ => rng.Next(13)).ToArray(), targets);
            var sinkA = new AccumulateSink(cpu, new Sgd(cpu, plain.Parameters(), 1f));
            var sinkB = new AccumulateSink(cpu, new Sgd(cpu, checkpointed.Parameters(), 1f));
            Assert.Equal(plain.ForwardLoss(ids, targets), checkpointed.ForwardLoss(ids, targets));
            plain.BackwardLoss(sinkA);
            checkpointed.BackwardLoss(sinkB);
            foreach (var (a, b) in plain.Parameters().Zip(checkpointed.Parameters()))
            {
                Assert.Equal(a.Grad!.ToArray(), b.Grad!.ToArray());
                cpu.Fill(a.Grad!, 0f);
                cpu.Fill(b.Grad!, 0f);
            }
        }
    }

    [Fact]
    public void Checkpointing_more_blocks_than_the_model_has_or_twice_is_refused()
    {
        using var cpu = TestUtil.Cpu();
        using var model = new Llama(cpu, new LlamaConfig(3, 4, 16, 24, 13, 8), seed: 4);
        Assert.Contains("0 to 3", Assert.Throws<ArgumentException>(() => model.EnableCheckpointing(4)).Message);
        Assert.Throws<ArgumentException>(() => model.EnableCheckpointing(-1));
        model.EnableCheckpointing(2);
        Assert.Contains("on already", Assert.Throws<InvalidOperationException>(() => model.EnableCheckpointing()).Message);
    }

    private static (float[] O, float[] Dq, float[] Dk, float[] Dv) Run(IBackend b, AttentionShape s, Tensor q, Tensor k, Tensor v, Tensor dOut)
    {
        using var o = b.Allocate(new Shape(s.Batch * s.QueryLength, s.Width), MemoryTag.Scratch);
        using var lse = b.Allocate(new Shape(s.Batch, s.Heads, s.QueryLength), MemoryTag.Scratch);
        using var dq = b.Allocate(q.Shape, MemoryTag.Scratch);
        using var dk = b.Allocate(k.Shape, MemoryTag.Scratch);
        using var dv = b.Allocate(v.Shape, MemoryTag.Scratch);
        b.Fill(dk, 7f);                                                                  // overwritten, not added to
        b.AttentionForward(s, new(q, 0), new(k, 0), new(v, 0), o, lse);
        b.AttentionBackward(s, dOut, new(q, 0), new(k, 0), new(v, 0), o, lse, new(dq, 0), new(dk, 0), new(dv, 0));
        return (o.ToArray(), dq.ToArray(), dk.ToArray(), dv.ToArray());
    }

    private static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5f * (1 + Math.Abs(expected[i])), $"element {i}: {expected[i]} vs {actual[i]}");
    }
}
