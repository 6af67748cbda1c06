using Flora.Backends;
using Flora.Distributed;
using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Tests.Distributed;

/// <summary>The gradient reducer: plain and FLORA-compressed all-reduce, with several ranks in one process.</summary>
public class GradientReducerTests
{
    private const int World = 3, Rank = 8;
    private static readonly WireCompression Compression = new(Rank, Seed: 1234);

    /// <summary>Rank k's gradient of a (rows, cols) parameter: a fixed random matrix per rank.</summary>
    private static float[] GradientOf(int rank, int rows, int cols, ulong salt = 0)
    {
        using var cpu = TestUtil.Cpu();
        using var g = TestUtil.Random(cpu, 100 + (ulong)rank * 7 + salt, 1f, rows, cols);
        return g.ToArray();
    }

    private static float[] Mean(Func<int, float[]> perRank) =>
        Enumerable.Range(0, World).Select(perRank).Aggregate(new double[perRank(0).Length], (sum, g) => { for (int i = 0; i < g.Length; i++) sum[i] += g[i]; return sum; })
            .Select(v => (float)(v / World)).ToArray();

    [Fact]
    public void Compressing_then_averaging_equals_averaging_then_compressing_and_every_rank_gets_the_same_gradient()
    {
        const int n = 24, m = 16;                                            // compressed along m (the smaller side): C is (24, 8)
        const long step = 5;
        var results = InProcessGroup.Run(World, (group, rank) =>
        {
            using var cpu = TestUtil.Cpu();
            using var reducer = new GradientReducer(cpu, group.Join(rank, cpu), Compression);
            reducer.Step = step;
            using var p = new Parameter(cpu, "h.0.mlp.weight", cpu.Allocate(new Shape(n, m), MemoryTag.Parameters));
            using var g = TestUtil.FromArray(cpu, GradientOf(rank, n, m), n, m);
            reducer.Ready(p, g, GradientForm.Full);
            reducer.Complete();
            return (Gradient: g.ToArray(), Seed: reducer.SeedFor(p, step), reducer.PayloadBytes, reducer.FullBytes, reducer.CompressedMatrices);
        });

        // Average, then compress and decompress with the projection of (seed, step): G~ = mean(G) A^T A.
        using var cpu = TestUtil.Cpu();
        using var projection = new RandomProjection(cpu, Rank);
        using var mean = TestUtil.FromArray(cpu, Mean(k => GradientOf(k, n, m)), n, m);
        using var c = cpu.Allocate(new Shape(n, Rank), MemoryTag.Scratch);
        using var expected = cpu.Allocate(new Shape(n, m), MemoryTag.Scratch);
        Tensor a = projection.Generate(results[0].Seed, new Shape(n, m), CompressedAxis.Columns);
        projection.Compress(mean, a, c, CompressedAxis.Columns);
        projection.Decompress(c, a, expected, CompressedAxis.Columns);
        float[] want = expected.ToArray();
        float scale = want.Max(MathF.Abs);
        for (int i = 0; i < want.Length; i++) Assert.Equal(want[i], results[0].Gradient[i], 2e-5f * scale);

        Assert.All(results, r => Assert.Equal(results[0].Seed, r.Seed));                 // the seeds agree across ranks
        Assert.All(results, r => Assert.Equal(results[0].Gradient, r.Gradient));         // bit for bit: every rank decompresses the same mean
        Assert.All(results, r => Assert.Equal(n * Rank * 4L, r.PayloadBytes));           // (24, 8) on the wire instead of (24, 16)
        Assert.All(results, r => Assert.Equal(n * m * 4L, r.FullBytes));
        Assert.All(results, r => Assert.Equal(1, r.CompressedMatrices));
        Assert.NotEqual(want, Mean(k => GradientOf(k, n, m)));                           // a projection, not the identity
    }

    [Fact]
    public void The_mean_of_the_ranks_compressed_gradients_is_the_compression_of_their_mean()
    {
        // The identity the compressed all-reduce rests on, at the level of the compressed tensors: mean_k(G_k A^T) = mean(G) A^T.
        const int n = 20, m = 12;
        using var cpu = TestUtil.Cpu();
        using var projection = new RandomProjection(cpu, Rank);
        var reducer = new GradientReducer(cpu, new InProcessGroup(1).Join(0, cpu), Compression);
        using var p = new Parameter(cpu, "w", cpu.Allocate(new Shape(n, m), MemoryTag.Parameters));
        Tensor a = projection.Generate(reducer.SeedFor(p, 3), new Shape(n, m), CompressedAxis.Columns);
        var compressed = new double[n * Rank];
        for (int k = 0; k < World; k++)
        {
            using var g = TestUtil.FromArray(cpu, GradientOf(k, n, m), n, m);
            using var ck = cpu.Allocate(new Shape(n, Rank), MemoryTag.Scratch);
            projection.Compress(g, a, ck, CompressedAxis.Columns);
            float[] v = ck.ToArray();
            for (int i = 0; i < v.Length; i++) compressed[i] += v[i] / World;
        }
        using var mean = TestUtil.FromArray(cpu, Mean(k => GradientOf(k, n, m)), n, m);
        using var c = cpu.Allocate(new Shape(n, Rank), MemoryTag.Scratch);
        projection.Compress(mean, a, c, CompressedAxis.Columns);
        float[] direct = c.ToArray();
        for (int i = 0; i < direct.Length; i++) Assert.Equal(direct[i], compressed[i], 1e-4);
        reducer.Dispose();
    }

    [Fact]
    public void Projection_seeds_are_shared_by_the_ranks_but_new_for_every_parameter_and_step()
    {
        var seeds = InProcessGroup.Run(World, (group, rank) =>
        {
            using var cpu = TestUtil.Cpu();
            using var reducer = new GradientReducer(cpu, group.Join(rank, cpu), Compression);
            using var p = new Parameter(cpu, "h.0.attn.c_attn.weight", cpu.Allocate(new Shape(8, 8), MemoryTag.Parameters));
            using var q = new Parameter(cpu, "h.1.attn.c_attn.weight", cpu.Allocate(new Shape(8, 8), MemoryTag.Parameters));
            return new[] { reducer.SeedFor(p, 1), reducer.SeedFor(p, 2), reducer.SeedFor(q, 1) };
        });
        Assert.All(seeds, s => Assert.Equal(seeds[0], s));
        Assert.Equal(3, seeds[0].Distinct().Count());
    }

    [Fact]
    public void Vectors_embeddings_and_compressed_accumulators_are_averaged_exactly_and_not_compressed_again()
    {
        var results = InProcessGroup.Run(World, (group, rank) =>
        {
            using var cpu = TestUtil.Cpu();
            using var reducer = new GradientReducer(cpu, group.Join(rank, cpu), Compression);
            using var bias = new Parameter(cpu, "b", cpu.Allocate(new Shape(16), MemoryTag.Parameters));
            using var embedding = new Parameter(cpu, "wte", cpu.Allocate(new Shape(64, 8), MemoryTag.Parameters));   // aspect ratio 8 > 4: ineligible
            using var matrix = new Parameter(cpu, "w", cpu.Allocate(new Shape(16, 16), MemoryTag.Parameters));
            using var gb = TestUtil.FromArray(cpu, GradientOf(rank, 1, 16), 16);
            using var ge = TestUtil.FromArray(cpu, GradientOf(rank, 64, 8, 1), 64, 8);
            using var gc = TestUtil.FromArray(cpu, GradientOf(rank, 16, Rank, 2), 16, Rank);       // an accumulator C, already compressed
            reducer.Ready(bias, gb, GradientForm.Full);
            reducer.Ready(embedding, ge, GradientForm.Full);
            reducer.Ready(matrix, gc, GradientForm.Compressed);
            reducer.Complete();
            return (B: gb.ToArray(), E: ge.ToArray(), C: gc.ToArray(), reducer.CompressedMatrices, reducer.CompressedFormMatrices, reducer.PayloadBytes);
        });
        float[] b = Mean(k => GradientOf(k, 1, 16)), e = Mean(k => GradientOf(k, 64, 8, 1)), c = Mean(k => GradientOf(k, 16, Rank, 2));
        foreach (var r in results)
        {
            for (int i = 0; i < b.Length; i++) Assert.Equal(b[i], r.B[i], 1e-6f);
            for (int i = 0; i < e.Length; i++) Assert.Equal(e[i], r.E[i], 1e-6f);
            for (int i = 0; i < c.Length; i++) Assert.Equal(c[i], r.C[i], 1e-6f);
            Assert.Equal(0, r.CompressedMatrices);
            Assert.Equal(1, r.CompressedFormMatrices);
            Assert.Equal((16 + 64 * 8 + 16 * Rank) * 4L, r.PayloadBytes);
        }
    }

    /// <summary>Counts the launches a communicator receives, to see when buckets go out.</summary>
    private sealed class CountingCommunicator(ICommunicator inner) : ICommunicator
    {
        public int Launches { get; private set; }
        public int Rank => inner.Rank;
        public int WorldSize => inner.WorldSize;
        public string Description => "counting";
        public void StartAllReduce(IReadOnlyList<Tensor> tensors, ReduceOp op) { Launches++; inner.StartAllReduce(tensors, op); }
        public void Wait() => inner.Wait();
        public void Broadcast(IReadOnlyList<Tensor> tensors, int root) => inner.Broadcast(tensors, root);
        public void AllReduce(Span<double> values, ReduceOp op) => inner.AllReduce(values, op);
        public void Broadcast(Span<double> values, int root) => inner.Broadcast(values, root);
        public void Barrier() => inner.Barrier();
        public void Dispose() => inner.Dispose();
    }

    [Fact]
    public void Buckets_are_all_reduced_during_backward_as_soon_as_their_gradients_are_complete()
    {
        using var cpu = TestUtil.Cpu();
        var first = new Linear(cpu, "fc1", 12, 10, seed: 1);
        var second = new Linear(cpu, "fc2", 10, 6, seed: 2);
        var parameters = first.Parameters().Concat(second.Parameters()).ToArray();
        var optimizer = new Sgd(cpu, parameters, 0.1f);
        var comm = new CountingCommunicator(new InProcessGroup(1).Join(0, cpu));
        using var reducer = new GradientReducer(cpu, comm, bucketBytes: 1);  // every gradient fills a bucket
        using var pipeline = new PipelineOptions { Mode = AccumulationMode.Naive, AccumulationSteps = 2 }.Build(cpu, parameters, optimizer);
        pipeline.UseReducer(reducer);
        using var x = TestUtil.Random(cpu, 3, 1f, 4, 12);
        using var dy = TestUtil.Random(cpu, 4, 1f, 4, 6);
        void Backward()
        {
            var h = first.Forward(x);
            second.Forward(h);
            var dh = second.Backward(dy, pipeline);
            first.Backward(dh!, pipeline);
        }
        Backward();
        Assert.Equal(0, comm.Launches);                                       // first micro-batch of two: nothing is final yet
        pipeline.EndMicroBatch();
        Backward();
        Assert.Equal(4, comm.Launches);                                       // the last: each gradient went out inside backward
        pipeline.EndMicroBatch();
        Assert.Equal(4, comm.Launches);
        Assert.Equal(4, reducer.Launches);
    }
}
