using Flora.Backends;
using Flora.Nn;
using Flora.Nn.Models;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Tests.Optim;

/// <summary>The optimizer API for a loop of one's own: Gradients, Step, ZeroGrad, SaveState/LoadState.</summary>
public sealed class OptimizerLoopTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-loop-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    private static readonly PipelineOptions CompressedTau2 = new() { Mode = AccumulationMode.Compressed, AccumulationSteps = 2, Rank = 4, Seed = 5 };

    private sealed class Loop : IDisposable
    {
        public readonly CpuBackendHolder Cpu = new();
        public readonly Gpt2 Model;
        public readonly FloraAdafactor Optimizer;

        public Loop(PipelineOptions gradients)
        {
            Model = new Gpt2(Cpu.Backend, Gpt2Config.Tiny(50) with { Context = 16 }, seed: 3);
            Optimizer = new FloraAdafactor(Model.Parameters(), learningRate: 0.03f, rank: 4, kappa: 3, seed: 9) { GradientOptions = gradients };
        }

        /// <summary>Forward, loss and backward of batch <paramref name="batch"/> into the optimizer's gradient sink.</summary>
        public float Backward(int batch, bool lossGradientsInForward = false)
        {
            using var ids = Ids(Cpu.Backend, batch, 0);
            using var targets = Ids(Cpu.Backend, batch, 1);
            float loss = Model.ForwardLoss(ids, targets, lossGradientsInForward ? Optimizer.Gradients : null);
            Model.BackwardLoss(Optimizer.Gradients);
            return loss;
        }

        public float[][] Weights() => Model.Parameters().Select(p => p.Value.ToArray()).ToArray();

        public void Dispose()
        {
            Optimizer.Dispose();
            Model.Dispose();
            Cpu.Dispose();
        }
    }

    private sealed class CpuBackendHolder : IDisposable
    {
        public readonly IBackend Backend = TestUtil.Cpu();
        public void Dispose() => Backend.Dispose();
    }

    /// <summary>Token ids (2, 8) of batch <paramref name="batch"/>, shifted by <paramref name="shift"/> (targets are ids shifted by one).</summary>
    private static Tensor Ids(IBackend backend, int batch, int shift)
    {
        var t = backend.Allocate(new Shape(2, 8), MemoryTag.Activations, DType.Int32);
        t.CopyFrom<int>(Enumerable.Range(0, 16).Select(i => (i * 7 + batch * 13 + shift * 3) % 50).ToArray());
        return t;
    }

    [Fact]
    public void With_compressed_accumulation_every_second_step_updates_the_weights()
    {
        using var loop = new Loop(CompressedTau2);
        var start = loop.Weights();
        loop.Backward(0);
        loop.Optimizer.Step();
        Assert.Equal(start, loop.Weights());                 // mid-cycle: nothing applied yet
        loop.Backward(1);
        loop.Optimizer.Step();
        Assert.NotEqual(start, loop.Weights());
    }

    /// <summary>
    /// Training computes the loss's gradients (dx, and the tied embedding's head gradient) in the forward pass over the
    /// logits instead of recomputing them in backward: the same arithmetic, so the weights and losses after several
    /// steps are bit-identical, with full-size gradients, LOMO and compressed accumulation.
    /// </summary>
    [Theory]
    [InlineData("full")]
    [InlineData("lomo")]
    [InlineData("compressed")]
    public void Loss_gradients_from_the_forward_pass_train_exactly_as_from_backward(string mode)
    {
        var options = mode switch
        {
            "lomo" => new PipelineOptions { Lomo = true },
            "compressed" => CompressedTau2,
            _ => new PipelineOptions(),
        };
        using var separate = new Loop(options);
        using var fused = new Loop(options);
        for (int step = 0; step < 4; step++)
        {
            float a = separate.Backward(step), b = fused.Backward(step, lossGradientsInForward: true);
            separate.Optimizer.Step();
            fused.Optimizer.Step();
            Assert.Equal(a, b);
        }
        using var untrained = new Loop(options);
        Assert.NotEqual(untrained.Weights(), fused.Weights());              // it trained
        Assert.Equal(separate.Weights(), fused.Weights());
    }

    [Fact]
    public void ZeroGrad_discards_a_cycle_in_progress()
    {
        using var discarded = new Loop(CompressedTau2);
        discarded.Backward(5);
        discarded.Optimizer.Step();
        discarded.Optimizer.ZeroGrad();                      // forget batch 5
        foreach (int b in new[] { 1, 2 }) { discarded.Backward(b); discarded.Optimizer.Step(); }

        using var clean = new Loop(CompressedTau2);
        foreach (int b in new[] { 1, 2 }) { clean.Backward(b); clean.Optimizer.Step(); }

        Assert.Equal(clean.Weights(), discarded.Weights());  // bit for bit
    }

    [Fact]
    public void SaveState_and_LoadState_continue_bit_for_bit_across_resamplings()
    {
        string weights = Path.Combine(_temp, "model.safetensors"), state = Path.Combine(_temp, "optimizer.safetensors");
        using var whole = new Loop(CompressedTau2);
        for (int b = 0; b < 7; b++) { whole.Backward(b); whole.Optimizer.Step(); }     // stops mid-cycle, kappa = 3
        whole.Model.SaveWeights(weights);
        whole.Optimizer.SaveState(state);
        for (int b = 7; b < 12; b++) { whole.Backward(b); whole.Optimizer.Step(); }

        using var resumed = new Loop(CompressedTau2);
        resumed.Model.LoadWeights(weights);
        resumed.Optimizer.LoadState(state);
        for (int b = 7; b < 12; b++) { resumed.Backward(b); resumed.Optimizer.Step(); }

        Assert.Equal(whole.Weights(), resumed.Weights());
    }

    [Fact]
    public void GradientOptions_cannot_change_once_gradients_flow()
    {
        using var loop = new Loop(new PipelineOptions());
        loop.Backward(0);
        Assert.Throws<InvalidOperationException>(() => loop.Optimizer.GradientOptions = CompressedTau2);
    }

    [Fact]
    public void Parameters_on_two_backends_are_refused_with_their_names()
    {
        using var a = TestUtil.Cpu();
        using var b = TestUtil.Cpu();
        using var p = new Parameter(a, "first", a.Allocate(new Shape(4, 4), MemoryTag.Parameters));
        using var q = new Parameter(b, "second", b.Allocate(new Shape(4, 4), MemoryTag.Parameters));
        var e = Assert.Throws<ArgumentException>(() => new FloraAdafactor([p, q], learningRate: 0.01f, rank: 2));
        Assert.Contains("second", e.Message);
    }
}
