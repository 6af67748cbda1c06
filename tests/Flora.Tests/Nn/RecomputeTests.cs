using Flora.Backends;
using Flora.Nn;
using Flora.Nn.Models;
using Flora.Optim;
using Flora.Tensors;
using Xunit;

namespace Flora.Tests.Nn;

/// <summary>
/// Recomputing the norms' outputs and the MLP's activation in backward (TransformerBlock.RecomputesCheapActivations)
/// (and sharing the output projections' buffers) changes no bit of the logits or the gradients, and keeps one block's worth
/// of those buffers instead of L.
/// </summary>
public class RecomputeTests
{
    /// <summary>Forward and backward of one model; returns logits, input-free gradients and the activation bytes held after.</summary>
    private static (float[] Logits, float[][] Grads, long Activations) Step(Func<IBackend, LanguageModel> make, bool recompute, int b, int t)
    {
        using var cpu = TestUtil.Cpu();
        using var model = make(cpu);
        var blocks = model switch { Gpt2 g => g.Blocks, Llama l => l.Blocks, _ => throw new ArgumentException("model") };
        Assert.All(blocks, block => Assert.True(block.RecomputesCheapActivations));      // the default
        foreach (var block in blocks) block.RecomputesCheapActivations = recompute;
        return TestUtil.ForwardBackward(cpu, model, b, t);
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    public void Recomputing_changes_no_bit_and_keeps_one_block_of_norm_and_activation_buffers(string kind)
    {
        const int layers = 3, heads = 2, c = 8, f = 24, vocabulary = 13, b = 2, t = 5;
        Func<IBackend, LanguageModel> make = kind == "gpt2"
            ? cpu => new Gpt2(cpu, new Gpt2Config(layers, heads, c, vocabulary, 6), seed: 3)
            : cpu => new Llama(cpu, new LlamaConfig(layers, heads, c, f, vocabulary, 6) { KeyValueHeads = 1 }, seed: 3);
        var kept = Step(make, recompute: false, b, t);
        var recomputed = Step(make, recompute: true, b, t);
        Assert.Equal(kept.Logits, recomputed.Logits);
        Assert.Equal(kept.Grads.Length, recomputed.Grads.Length);
        for (int i = 0; i < kept.Grads.Length; i++) Assert.Equal(kept.Grads[i], recomputed.Grads[i]);
        // Per block and token: two norm outputs (C each) and the activation (GPT-2: F = 4 C; Llama: F), kept once instead
        // of L times. The output projections write into the residual sums themselves (no buffer in either mode).
        int hidden = kind == "gpt2" ? 4 * c : f;
        long perBlock = (2L * c + hidden) * b * t * sizeof(float);
        Assert.Equal((layers - 1) * perBlock, kept.Activations - recomputed.Activations);
    }
}
