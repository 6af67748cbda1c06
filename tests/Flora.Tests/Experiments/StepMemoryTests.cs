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
    public void The_estimate_from_one_and_two_layers_matches_the_ledger_of_the_whole_model(string optimizer, bool lomo, bool checkpointing,
        string kind = "llama", string precision = "bf16")
    {
        // Llama-style (or GPT-2) layers of 64 channels; the whole model: 6 layers, a 1,000-token vocabulary, 2 x 48 tokens.
        ModelBuilder build = kind == "llama"
            ? (backend, layers, vocabulary) => new Llama(backend, new LlamaConfig(layers, 2, 64, 172, vocabulary, 48), seed: 1)
            : (backend, layers, vocabulary) => new Gpt2(backend, new Gpt2Config(layers, 2, 64, vocabulary, 48), seed: 1);
        var settings = new StepMemorySettings
        {
            Optimizer = optimizer, Rank = 8, Lomo = lomo, Checkpointing = checkpointing, Batch = 2, SequenceLength = 48,
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
    }
}
