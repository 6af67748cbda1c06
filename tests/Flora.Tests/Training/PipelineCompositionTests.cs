using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Tests.Training;

/// <summary>The pipeline built from <see cref="PipelineOptions"/>: every mode, with and without LOMO.</summary>
public class PipelineCompositionTests
{
    private static (float[] Weights, Flora.Tensors.MemorySnapshot Memory, bool AnyGradBuffer) Train(PipelineOptions options, int microBatches)
    {
        var ledger = new MemoryLedger();
        using var cpu = new Flora.Backends.Cpu.CpuBackend(ledger);
        using var net = new Sequential(cpu, "net",
            new Linear(cpu, "fc1", 24, 32, seed: 1), new Gelu(cpu), new Linear(cpu, "fc2", 32, 24, seed: 2));
        net.ComputesInputGradient = false;
        var trainable = net.Parameters().ToArray();
        using var optimizer = new FloraAdafactor(cpu, trainable, 0.05f, rank: 6, kappa: 4, variant: FloraVariant.Paper, seed: 3);
        using var pipeline = options.Build(cpu, trainable, optimizer);
        using var x = cpu.Allocate(new Shape(5, 24), MemoryTag.Activations);
        using var dy = cpu.Allocate(new Shape(5, 24), MemoryTag.Activations);
        for (int i = 0; i < microBatches; i++)
        {
            cpu.FillGaussian(x, (ulong)(10 + i), 1f);
            cpu.FillGaussian(dy, (ulong)(50 + i), 0.1f);
            net.Forward(x);
            net.Backward(dy, pipeline);
            pipeline.EndMicroBatch();
        }
        bool anyGrad = trainable.Where(p => p.Shape.Rank == 2).Any(p => p.Grad is not null);
        return (trainable.SelectMany(p => TestUtil.ToArray(p.Value)).ToArray(), ledger.Snapshot(), anyGrad);
    }

    [Fact]
    public void Compressed_accumulation_with_lomo_keeps_no_full_size_gradient_buffer_and_matches_without_lomo()
    {
        var compressed = new PipelineOptions { Mode = AccumulationMode.Compressed, AccumulationSteps = 4, Rank = 6, Seed = 9 };
        var (plain, plainMemory, plainGrads) = Train(compressed, 8);
        var (lomo, lomoMemory, lomoGrads) = Train(compressed with { Lomo = true }, 8);
        Assert.Equal(plain, lomo);                         // the same updates, only applied earlier
        Assert.False(lomoGrads);                           // no gradient buffer for any matrix
        Assert.False(plainGrads);
        // Matrices: compressed accumulators (rows of fc1 (32, 24) -> (32, 6); fc2 (24, 32) -> (6, 32)) only.
        // Vectors (biases) keep full-size gradient buffers: 32 + 24 floats.
        Assert.Equal((32 * 6 + 6 * 32) * 4, lomoMemory[MemoryTag.Accumulator].PeakBytes);
        Assert.Equal((32 + 24) * 4, lomoMemory[MemoryTag.Gradients].PeakBytes);
        // Scratch: one shared full-size buffer (the largest matrix, 32 x 24) plus projections A (6, 24):
        // one in the sink, one in the optimizer's momentum (its second slot serves transfers only, and none
        // happened: 2 updates at kappa 4), and two r x r products for the norm of FLORA's low-rank yield.
        Assert.Equal((32 * 24 + 2 * 6 * 24 + 2 * 6 * 6) * 4, lomoMemory[MemoryTag.Scratch].PeakBytes);
    }

    [Fact]
    public void Naive_accumulation_matches_no_accumulation_when_tau_is_1_and_lomo_changes_nothing()
    {
        var (none, _, noneGrads) = Train(new PipelineOptions(), 3);
        var (noneLomo, noneLomoMemory, noneLomoGrads) = Train(new PipelineOptions { Lomo = true }, 3);
        var (naive, naiveMemory, _) = Train(new PipelineOptions { Mode = AccumulationMode.Naive, AccumulationSteps = 1 }, 3);
        Assert.Equal(none, noneLomo);
        Assert.Equal(none, naive);
        Assert.True(noneGrads);
        Assert.False(noneLomoGrads);
        Assert.Equal(0, noneLomoMemory[MemoryTag.Gradients].PeakBytes);
        Assert.Equal((24 * 32 + 32 + 32 * 24 + 24) * 4, naiveMemory[MemoryTag.Gradients].PeakBytes);
    }

    [Fact]
    public void Compressed_and_naive_accumulation_agree_in_expectation_but_not_exactly()
    {
        var (naive, _, _) = Train(new PipelineOptions { Mode = AccumulationMode.Naive, AccumulationSteps = 4 }, 4);
        var (compressed, _, _) = Train(new PipelineOptions { Mode = AccumulationMode.Compressed, AccumulationSteps = 4, Rank = 6 }, 4);
        Assert.NotEqual(naive, compressed);
        Assert.All(compressed, v => Assert.True(float.IsFinite(v)));
    }

    [Theory]
    [InlineData(AccumulationMode.Compressed, false)]
    [InlineData(AccumulationMode.Compressed, true)]
    [InlineData(AccumulationMode.Naive, false)]
    public void A_state_saved_mid_cycle_resumes_bit_for_bit(AccumulationMode mode, bool lomo)
    {
        // Micro-batches 0..3 run, then the state is saved (one micro-batch into the second cycle of 3),
        // then micro-batches 4..8; a fresh copy loads the state and runs 4..8 too.
        var options = new PipelineOptions { Mode = mode, AccumulationSteps = 3, Rank = 6, Lomo = lomo, Seed = 4 };
        string path = Path.Combine(Path.GetTempPath(), $"flora-midcycle-{Guid.NewGuid():N}.safetensors");
        try
        {
            float[] Run(bool resume)
            {
                using var cpu = new Flora.Backends.Cpu.CpuBackend(new MemoryLedger());
                using var net = new Sequential(cpu, "net", new Linear(cpu, "fc1", 24, 32, seed: 1), new Gelu(cpu), new Linear(cpu, "fc2", 32, 24, seed: 2));
                net.ComputesInputGradient = false;
                var trainable = net.Parameters().ToArray();
                using var optimizer = new FloraAdafactor(cpu, trainable, 0.05f, rank: 6, kappa: 2, seed: 3);
                using var pipeline = options.Build(cpu, trainable, optimizer);
                using var x = cpu.Allocate(new Shape(5, 24), MemoryTag.Activations);
                using var dy = cpu.Allocate(new Shape(5, 24), MemoryTag.Activations);
                void Micro(int i)
                {
                    cpu.FillGaussian(x, (ulong)(10 + i), 1f);
                    cpu.FillGaussian(dy, (ulong)(50 + i), 0.1f);
                    net.Forward(x);
                    net.Backward(dy, pipeline);
                    pipeline.EndMicroBatch();
                }
                if (resume)
                {
                    using var file = Flora.Checkpoints.SafeTensorsFile.Open(path);
                    foreach (var p in trainable) file.ReadInto("w/" + p.Name, p.Value);
                    OptimizerCheckpoint.LoadFrom(optimizer, file);
                    pipeline.LoadState(file, "pipeline/");
                }
                else
                {
                    for (int i = 0; i < 4; i++) Micro(i);
                    var writer = new Flora.Checkpoints.SafeTensorsWriter();
                    foreach (var p in trainable) writer.Add("w/" + p.Name, p.Value);
                    OptimizerCheckpoint.AddTo(optimizer, writer);
                    pipeline.SaveState(writer, "pipeline/");
                    writer.Write(path);
                }
                for (int i = 4; i < 9; i++) Micro(i);
                return trainable.SelectMany(p => TestUtil.ToArray(p.Value)).ToArray();
            }
            Assert.Equal(Run(resume: false), Run(resume: true));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData(AccumulationMode.None, 2, 0, "need an accumulation mode")]
    [InlineData(AccumulationMode.Naive, 0, 0, "accumulation steps must be positive")]
    [InlineData(AccumulationMode.Compressed, 4, 0, "needs a positive rank")]
    public void Invalid_pipeline_options_are_rejected(AccumulationMode mode, int steps, int rank, string message)
    {
        var e = Assert.Throws<ArgumentException>(new PipelineOptions { Mode = mode, AccumulationSteps = steps, Rank = rank }.Validate);
        Assert.Contains(message, e.Message);
    }
}
