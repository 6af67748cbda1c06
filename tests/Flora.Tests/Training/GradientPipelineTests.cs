using Flora.Backends;
using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Tests.Training;

public class GradientPipelineTests
{
    /// <summary>Records the gradients it is given (host copies) and applies nothing.</summary>
    private sealed class RecordingOptimizer(IBackend backend, IEnumerable<Parameter> parameters)
        : Optimizer(backend, [new ParameterGroup(parameters)], 1f, 0f)
    {
        public List<(string Name, float[] Gradient)> Updates { get; } = new();
        public override string Configuration => "recording";
        protected override ParameterState CreateState(Parameter parameter, ParameterGroup group) => new(Backend, parameter);
        protected override void Apply(Parameter parameter, Tensor weight, Tensor gradient) => Updates.Add((parameter.Name, TestUtil.ToArray(gradient)));
    }

    private static (Linear Layer, Tensor[] X, Tensor[] Dy) Setup(IBackend cpu, int microBatches)
    {
        var layer = new Linear(cpu, "fc", 12, 10, seed: 1);
        var xs = Enumerable.Range(0, microBatches).Select(i => TestUtil.Random(cpu, (ulong)(10 + i), 1, 4, 12)).ToArray();
        var dys = Enumerable.Range(0, microBatches).Select(i => TestUtil.Random(cpu, (ulong)(20 + i), 1, 4, 10)).ToArray();
        return (layer, xs, dys);
    }

    private static float[] WeightGradient(Tensor x, Tensor dy)
    {
        // dW = dy^T x, in double.
        double[] g = TestUtil.MatMulReference(TestUtil.ToArray(dy), TestUtil.ToArray(x), 10, 4, 12, ta: true, tb: false);
        return g.Select(v => (float)v).ToArray();
    }

    [Fact]
    public void Plain_accumulation_hands_the_mean_of_tau_micro_batches_to_the_optimizer_once()
    {
        using var cpu = TestUtil.Cpu();
        var (layer, xs, dys) = Setup(cpu, 3);
        var opt = new RecordingOptimizer(cpu, layer.Parameters());
        using var pipeline = new GradientPipeline(cpu).UseByDefault(new AccumulateSink(cpu, opt, accumulationSteps: 3));
        for (int i = 0; i < 3; i++)
        {
            layer.Forward(xs[i]);
            layer.Backward(dys[i], pipeline);
            pipeline.EndMicroBatch();
            Assert.Equal(i == 2 ? 2 : 0, opt.Updates.Count); // weight and bias, only at the end of the cycle
        }
        float[] expected = new float[120];
        for (int i = 0; i < 3; i++) { var g = WeightGradient(xs[i], dys[i]); for (int j = 0; j < 120; j++) expected[j] += g[j] / 3; }
        var got = opt.Updates.Single(u => u.Name == "fc.weight").Gradient;
        for (int j = 0; j < 120; j++) Assert.Equal(expected[j], got[j], 1e-4f);

        // The next cycle starts from zero, not from the previous sum (first gradient of a cycle overwrites).
        layer.Forward(xs[0]); layer.Backward(dys[0], pipeline); pipeline.EndMicroBatch();
        layer.Forward(xs[0]); layer.Backward(dys[0], pipeline); pipeline.EndMicroBatch();
        layer.Forward(xs[0]); layer.Backward(dys[0], pipeline); pipeline.EndMicroBatch();
        var g0 = WeightGradient(xs[0], dys[0]);
        var second = opt.Updates.Last(u => u.Name == "fc.weight").Gradient;
        for (int j = 0; j < 120; j++) Assert.Equal(g0[j], second[j], 1e-4f);
    }

    [Fact]
    public void Compressed_accumulation_is_algorithm_1_and_needs_no_gradient_buffer()
    {
        using var cpu = TestUtil.Cpu();
        const int tau = 3, rank = 4;
        var (layer, xs, dys) = Setup(cpu, tau);
        var opt = new RecordingOptimizer(cpu, layer.Parameters());
        using var pipeline = new GradientPipeline(cpu);
        var sink = new CompressedAccumulateSink(cpu, pipeline.Scratch, opt, rank, tau, seed: 77);
        pipeline.UseByDefault(new AccumulateSink(cpu, opt, tau)).Use(layer.Weight, sink);
        ulong seed = 0;
        for (int i = 0; i < tau; i++)
        {
            layer.Forward(xs[i]);
            layer.Backward(dys[i], pipeline);
            if (i == 0) seed = sink.CurrentSeed(layer.Weight);
            Assert.Equal(seed, sink.CurrentSeed(layer.Weight)); // one seed for the whole cycle
            pipeline.EndMicroBatch();
        }
        Assert.Null(layer.Weight.Grad);
        Assert.NotEqual(seed, sink.CurrentSeed(layer.Weight)); // resampled after the cycle

        // W is (10, 12): the smaller dimension, rows, is compressed. Reference: A (r, 10) ~ N(0, 1/r) from
        // the same seed; C = sum_i A G_i (r, 12); G~ = A^T C / tau.
        var a = new float[rank * 10];
        for (int i = 0; i < a.Length; i++) a[i] = Philox.Gaussian(seed, i) * (1f / MathF.Sqrt(rank));
        var c = new double[rank * 12];
        for (int i = 0; i < tau; i++)
        {
            var ci = TestUtil.MatMulReference(a, WeightGradient(xs[i], dys[i]), rank, 10, 12, false, false);
            for (int j = 0; j < c.Length; j++) c[j] += ci[j];
        }
        var expected = TestUtil.MatMulReference(a, c.Select(v => (float)v).ToArray(), 10, rank, 12, true, false);
        var got = opt.Updates.Single(u => u.Name == "fc.weight").Gradient;
        for (int j = 0; j < 120; j++) Assert.Equal(expected[j] / tau, got[j], 1e-4);
        Assert.Equal(rank * 12 * 4, cpu.Ledger.Current(MemoryTag.Accumulator));
    }

    [Fact]
    public void Compressed_accumulation_without_resampling_keeps_its_seed_and_rejects_a_rank_above_the_dimension()
    {
        using var cpu = TestUtil.Cpu();
        var (layer, xs, dys) = Setup(cpu, 1);
        using var pipeline = new GradientPipeline(cpu);
        var sink = new CompressedAccumulateSink(cpu, pipeline.Scratch, new Sgd(cpu, layer.Parameters(), 0.1f), rank: 4, seed: 1, resample: false);
        pipeline.UseByDefault(new AccumulateSink(cpu, new Sgd(cpu, layer.Parameters(), 0.1f))).Use(layer.Weight, sink);
        layer.Forward(xs[0]); layer.Backward(dys[0], pipeline);
        ulong seed = sink.CurrentSeed(layer.Weight);
        pipeline.EndMicroBatch();
        Assert.Equal(seed, sink.CurrentSeed(layer.Weight));

        var tooBig = new CompressedAccumulateSink(cpu, pipeline.Scratch, new Sgd(cpu, layer.Parameters(), 0.1f), rank: 11);
        var e = Assert.Throws<ArgumentException>(() => tooBig.OnGradient(layer.Weight, pipeline.Scratch.Get(layer.Weight.Shape)));
        Assert.Contains("rank 11", e.Message);
        var vector = Assert.Throws<ArgumentException>(() => tooBig.OnGradient(layer.Bias!, pipeline.Scratch.Get(layer.Bias!.Shape)));
        Assert.Contains("not a matrix", vector.Message);
    }

    [Fact]
    public void Immediate_update_applies_sgd_inside_backward_and_equals_accumulate_then_step()
    {
        using var cpu = TestUtil.Cpu();
        float[] Run(bool immediate)
        {
            using var net = new Sequential(cpu, "net", new Linear(cpu, "a", 5, 6, seed: 1), new Relu(cpu), new Linear(cpu, "b", 6, 3, seed: 2));
            net.ComputesInputGradient = false;
            using var pipeline = new GradientPipeline(cpu);
            var sgd = new Sgd(cpu, net.Parameters(), 0.1f);
            pipeline.UseByDefault(immediate ? new ImmediateUpdateSink(cpu, pipeline.Scratch, sgd) : new AccumulateSink(cpu, sgd));
            using var x = TestUtil.Random(cpu, 3, 1, 4, 5);
            using var dy = TestUtil.Random(cpu, 4, 1, 4, 3);
            for (int step = 0; step < 3; step++)
            {
                net.Forward(x);
                net.Backward(dy, pipeline);
                pipeline.EndMicroBatch();
            }
            if (immediate) Assert.All(net.Parameters(), p => Assert.Null(p.Grad));
            return net.Parameters().SelectMany(p => TestUtil.ToArray(p.Value)).ToArray();
        }
        float[] accumulate = Run(false), immediate = Run(true);
        for (int i = 0; i < accumulate.Length; i++) Assert.Equal(accumulate[i], immediate[i], 1e-6f);
    }

    [Fact]
    public void Missing_route_is_a_clear_error()
    {
        using var cpu = TestUtil.Cpu();
        using var layer = new Linear(cpu, "fc", 3, 2);
        using var pipeline = new GradientPipeline(cpu);
        var e = Assert.Throws<InvalidOperationException>(() => pipeline.Target(layer.Weight));
        Assert.Contains("fc.weight", e.Message);
    }
}
