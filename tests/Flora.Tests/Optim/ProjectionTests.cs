using Flora.Backends;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Tests.Optim;

public class ProjectionTests
{
    /// <summary>
    /// decompress(compress(G)) = G A^T A with E[A^T A] = I. For G (8, 32) compressed along its 32 columns,
    /// one estimate has relative error about sqrt((d + 1) / r) (d = 32); the mean of N = 1500 estimates
    /// about sqrt((d + 1) / (r N)) = 0.07 at r = 4. Tolerances: 0.25 for the mean (3.5 se at r = 4), and the
    /// spread must fall by about 2 for each 4x in r (ratio in [1.6, 2.5]).
    /// </summary>
    [Fact]
    public void Compress_decompress_is_unbiased_and_its_spread_shrinks_with_rank()
    {
        using var cpu = TestUtil.Cpu();
        const int n = 8, d = 32, seeds = 1500;
        using var g = TestUtil.Random(cpu, 1, 1, n, d);
        double gNorm = Math.Sqrt(cpu.SumOfSquares(g));
        float[] gHost = TestUtil.ToArray(g);
        var spread = new Dictionary<int, double>();
        foreach (int r in new[] { 4, 16, 64 })
        {
            using var projection = new RandomProjection(cpu, r);
            using var c = cpu.Allocate(new Shape(n, r), MemoryTag.Scratch);
            using var back = cpu.Allocate(new Shape(n, d), MemoryTag.Scratch);
            using var sum = cpu.Allocate(new Shape(n, d), MemoryTag.Scratch);
            double errorSum = 0;
            for (int s = 0; s < seeds; s++)
            {
                Tensor a = projection.Generate(Seeds.Derive(99, (ulong)s), d);
                projection.Compress(g, a, c, CompressedAxis.Columns);
                projection.Decompress(c, a, back, CompressedAxis.Columns);
                cpu.Axpy(1f, back, sum);
                cpu.Axpy(-1f, g, back);
                errorSum += Math.Sqrt(cpu.SumOfSquares(back)) / gNorm;
            }
            cpu.Scale(sum, 1f / seeds);
            float[] mean = TestUtil.ToArray(sum);
            double meanError = Math.Sqrt(mean.Zip(gHost, (x, y) => (double)(x - y) * (x - y)).Sum()) / gNorm;
            Assert.True(meanError < 0.25, $"r = {r}: the mean of {seeds} estimates is {meanError:F3} away from G (relative)");
            spread[r] = errorSum / seeds;
            Assert.InRange(spread[r], 0.6 * Math.Sqrt((d + 1.0) / r), 1.3 * Math.Sqrt((d + 1.0) / r));
        }
        Assert.InRange(spread[4] / spread[16], 1.6, 2.5);
        Assert.InRange(spread[16] / spread[64], 1.6, 2.5);
    }
}
