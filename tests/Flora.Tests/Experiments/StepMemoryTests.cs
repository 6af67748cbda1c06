using Flora.Experiments;
using Flora.Nn.Models;
using Flora.Tensors;

namespace Flora.Tests.Experiments;

/// <summary>The large-model memory estimate, checked on a model small enough to measure whole.</summary>
public class StepMemoryTests
{
    [Theory]
    [InlineData("flora", true, true)]
    [InlineData("adamw", false, false)]
    [InlineData("adamw", false, false, "gpt2")]
    [InlineData("adamw", false, false, "gpt2", "fp32")]
    [InlineData("flora", true, true, "llama", "bf16", 4)]
    [InlineData("adamw", false, true, "gpt2", "bf16", 1)]
    public void The_estimate_from_one_and_two_layers_matches_the_ledger_of_the_whole_model(string optimizer, bool lomo, bool checkpointing,
        string kind = "llama", string precision = "bf16", int? checkpointBlocks = null)
    {
        // Llama-style (or GPT-2) layers of 64 channels; the whole model: 6 layers, a 1,000-token vocabulary, 2 x 48 tokens.
        ModelBuilder build = kind == "llama"
            ? (backend, layers, vocabulary) => new Llama(backend, new LlamaConfig(layers, 2, 64, 172, vocabulary, 48), seed: 1)
            : (backend, layers, vocabulary) => new Gpt2(backend, new Gpt2Config(layers, 2, 64, vocabulary, 48), seed: 1);
        var settings = new StepMemorySettings
        {
            Optimizer = optimizer, Rank = 8, Lomo = lomo, Checkpointing = checkpointing, CheckpointBlocks = checkpointBlocks, Batch = 2, SequenceLength = 48,
            Precision = Flora.Devices.BackendFactory.ParsePrecision(precision),
        };
        var estimate = StepMemory.Estimate($"{kind} 6 x 64", build, 6, 1000, settings);
        var measured = StepMemory.MeasureStep(build, 6, 1000, settings);
        foreach (var tag in new[] { MemoryTag.Parameters, MemoryTag.Gradients, MemoryTag.OptimizerState, MemoryTag.Accumulator })
            Assert.True(estimate[tag].Bytes == measured[tag], $"{tag}: estimated {estimate[tag].Bytes:N0}, measured {measured[tag]:N0}");
        double activations = (double)estimate[MemoryTag.Activations].Bytes / measured[MemoryTag.Activations];
        Assert.InRange(activations, 0.9999, 1.0001);
        using var backend = TestUtil.Cpu();
        using var model = build(backend, 6, 1000);
        Assert.Equal(model.ParameterCount, estimate.Parameters);
        Assert.Contains("cuBLASLt", estimate[MemoryTag.Scratch].Source);
        if (checkpointBlocks is int blocks) Assert.Contains($"the last {6 - blocks} blocks not checkpointed", estimate[MemoryTag.Activations].Source);
    }

    [Fact]
    public void Each_block_left_out_of_checkpointing_after_the_first_costs_the_same_activations()
    {
        ModelBuilder build = (backend, layers, vocabulary) => new Llama(backend, new LlamaConfig(layers, 2, 64, 172, vocabulary, 48), seed: 1);
        long Measured(int? blocks) => StepMemory.MeasureStep(build, 5, 500, new StepMemorySettings
        {
            Optimizer = "adafactor", Checkpointing = true, CheckpointBlocks = blocks, Batch = 1, SequenceLength = 32,
        })[MemoryTag.Activations];
        long all = Measured(null), four = Measured(4), three = Measured(3), two = Measured(2), one = Measured(1);
        // The first block left out also brings the buffers such blocks share (recomputed norms and activation).
        Assert.True(four - all > three - four, $"first block out: {four - all:N0} bytes, second: {three - four:N0}");
        Assert.True(three - four > 0);
        Assert.Equal(three - four, two - three);
        Assert.Equal(two - three, one - two);
    }

    [Fact]
    public void One_estimate_with_a_block_left_out_gives_the_peak_for_every_number_of_checkpointed_blocks()
    {
        ModelBuilder build = (backend, layers, vocabulary) => new Llama(backend, new LlamaConfig(layers, 2, 64, 172, vocabulary, 48), seed: 1);
        StepMemoryEstimate At(int? blocks) => StepMemory.Estimate("llama 6 x 64", build, 6, 1000, new StepMemorySettings
        {
            Optimizer = "flora", Rank = 8, CheckpointBlocks = blocks, Batch = 2, SequenceLength = 48,
        });
        var probe = At(5);
        Assert.NotNull(probe.LeftOut);
        Assert.Null(At(null).LeftOut);                                            // every block checkpointed: nothing probed
        long[] totals = Enumerable.Range(1, 6).Select(probe.TotalWithCheckpointed).ToArray();
        foreach (int n in new[] { 1, 3, 6 })
            Assert.Equal(n == 6 ? At(null).TotalBytes : At(n).TotalBytes, totals[n - 1]);
        for (int n = 1; n < 6; n++) Assert.True(totals[n - 1] > totals[n], $"{n} checkpointed: {totals[n - 1]:N0} bytes, {n + 1}: {totals[n]:N0}");
        // The fastest step that fits: the fewest checkpointed blocks at or under the budget.
        Assert.Equal(1, probe.FewestCheckpointedWithin(totals[0]));
        Assert.Equal(3, probe.FewestCheckpointedWithin(totals[2]));
        Assert.Equal(3, probe.FewestCheckpointedWithin(totals[1] - 1));
        Assert.Null(probe.FewestCheckpointedWithin(totals[5] - 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => probe.TotalWithCheckpointed(0));
    }

    [Fact]
    public void More_checkpointed_blocks_than_layers_or_blocks_without_checkpointing_are_refused()
    {
        ModelBuilder build = (backend, layers, vocabulary) => new Llama(backend, new LlamaConfig(layers, 2, 64, 172, vocabulary, 48), seed: 1);
        Assert.Throws<ArgumentException>(() => StepMemory.Estimate("llama", build, 4, 500, new StepMemorySettings { CheckpointBlocks = 5 }));
        Assert.Throws<ArgumentException>(() => StepMemory.Estimate("llama", build, 4, 500, new StepMemorySettings { Checkpointing = false, CheckpointBlocks = 2 }));
    }
}
