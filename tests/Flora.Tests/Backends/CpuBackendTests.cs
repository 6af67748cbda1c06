using Flora.Tensors;

namespace Flora.Tests.Backends;

public class CpuBackendTests
{
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void MatMul_matches_a_double_precision_reference_for_every_transpose(bool ta, bool tb)
    {
        using var cpu = TestUtil.Cpu();
        const int m = 37, k = 53, n = 29;
        using var a = ta ? TestUtil.Random(cpu, 1, 1, k, m) : TestUtil.Random(cpu, 1, 1, m, k);
        using var b = tb ? TestUtil.Random(cpu, 2, 1, n, k) : TestUtil.Random(cpu, 2, 1, k, n);
        using var c = TestUtil.Random(cpu, 3, 1, m, n);
        float[] c0 = TestUtil.ToArray(c);
        cpu.MatMul(a, ta, b, tb, c, alpha: 0.5f, beta: 2f);
        double[] reference = TestUtil.MatMulReference(TestUtil.ToArray(a), TestUtil.ToArray(b), m, k, n, ta, tb);
        float[] got = TestUtil.ToArray(c);
        for (int i = 0; i < got.Length; i++)
            Assert.InRange(got[i] - (0.5 * reference[i] + 2 * c0[i]), -1e-4, 1e-4);
    }

    [Fact]
    public void MatMul_rejects_mismatched_shapes_with_both_shapes_in_the_message()
    {
        using var cpu = TestUtil.Cpu();
        using var a = cpu.Allocate(new Shape(3, 4), MemoryTag.Scratch);
        using var b = cpu.Allocate(new Shape(5, 6), MemoryTag.Scratch);
        using var c = cpu.Allocate(new Shape(3, 6), MemoryTag.Scratch);
        var e = Assert.Throws<ArgumentException>(() => cpu.MatMul(a, false, b, false, c));
        Assert.Contains("(3, 4)", e.Message);
        Assert.Contains("(5, 6)", e.Message);
    }

    [Fact]
    public void Elementwise_ops_match_scalar_definitions_on_large_and_small_sizes()
    {
        using var cpu = TestUtil.Cpu();
        foreach (int n in new[] { 1, 17, 100_003 })
        {
            using var x = TestUtil.Random(cpu, 11, 2, n);
            using var y = TestUtil.Random(cpu, 12, 2, n);
            using var r = cpu.Allocate(new Shape(n), MemoryTag.Scratch);
            float[] xs = TestUtil.ToArray(x), ys = TestUtil.ToArray(y);

            cpu.Add(x, y, r);
            Assert.Equal(xs.Zip(ys, (p, q) => p + q).ToArray(), TestUtil.ToArray(r));

            cpu.Copy(y, r);
            cpu.Axpy(-0.25f, x, r);
            float[] axpy = TestUtil.ToArray(r);
            for (int i = 0; i < n; i++) Assert.Equal(ys[i] + -0.25f * xs[i], axpy[i], 1e-6f);

            cpu.Scale(r, 3f);
            float[] scaled = TestUtil.ToArray(r);
            for (int i = 0; i < n; i++) Assert.Equal(axpy[i] * 3f, scaled[i]);

            cpu.Relu(x, r);
            Assert.Equal(xs.Select(v => Math.Max(v, 0f)).ToArray(), TestUtil.ToArray(r));

            using var dx = cpu.Allocate(new Shape(n), MemoryTag.Scratch);
            cpu.ReluBackward(r, y, dx);
            Assert.Equal(xs.Zip(ys, (p, q) => p > 0 ? q : 0f).ToArray(), TestUtil.ToArray(dx));

            cpu.Gelu(x, r);
            float[] gelu = TestUtil.ToArray(r);
            for (int i = 0; i < n; i++)
            {
                double v = xs[i];
                double expected = 0.5 * v * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
                Assert.InRange(gelu[i] - expected, -1e-5 * (1 + Math.Abs(expected)), 1e-5 * (1 + Math.Abs(expected)));
            }

            Assert.Equal(xs.Sum(v => (double)v), cpu.Sum(x), 1e-3 * Math.Sqrt(n));
            Assert.Equal(xs.Sum(v => (double)v * v), cpu.SumOfSquares(x), 1e-5 * n);

            cpu.Fill(r, 2.5f);
            Assert.All(TestUtil.ToArray(r), v => Assert.Equal(2.5f, v));
        }
    }

    [Fact]
    public void Bias_add_and_row_sums_follow_their_definitions()
    {
        using var cpu = TestUtil.Cpu();
        foreach (var (rows, cols) in new[] { (3, 5), (300, 700) })
        {
            using var y = TestUtil.Random(cpu, 1, 1, rows, cols);
            using var bias = TestUtil.Random(cpu, 2, 1, cols);
            float[] y0 = TestUtil.ToArray(y), b = TestUtil.ToArray(bias);
            cpu.AddBias(y, bias);
            float[] y1 = TestUtil.ToArray(y);
            for (int i = 0; i < y1.Length; i++) Assert.Equal(y0[i] + b[i % cols], y1[i]);

            using var sums = TestUtil.Random(cpu, 3, 1, cols);
            float[] s0 = TestUtil.ToArray(sums);
            cpu.SumRows(y, sums, alpha: -2f, beta: 0.5f);
            float[] s1 = TestUtil.ToArray(sums);
            for (int c = 0; c < cols; c++)
            {
                double expected = 0.5 * s0[c];
                for (int r = 0; r < rows; r++) expected += -2.0 * y1[r * cols + c];
                Assert.InRange(s1[c] - expected, -1e-3, 1e-3);
            }
        }
    }

    [Fact]
    public void Softmax_cross_entropy_matches_log_sum_exp_and_counts_correct_rows()
    {
        using var cpu = TestUtil.Cpu();
        float[] logits = { 1, 2, 3, /**/ 1000, 0, -1000, /**/ -5, -5, -5 };
        using var x = TestUtil.FromArray(cpu, logits, 3, 3);
        using var t = TestUtil.Labels(cpu, 2, 1, 0);
        using var p = cpu.Allocate(new Shape(3, 3), MemoryTag.Scratch);
        var (sum, count) = cpu.SoftmaxCrossEntropy(x, t, p);
        double row0 = Math.Log(Math.Exp(1) + Math.Exp(2) + Math.Exp(3)) - 3;
        double row1 = 1000;                // log-sum-exp is 1000, target logit 0: no overflow, no log(0)
        double row2 = Math.Log(3);
        Assert.Equal(3, count);
        Assert.Equal(row0 + row1 + row2, sum, 1e-3);
        float[] probs = TestUtil.ToArray(p);
        Assert.Equal(Math.Exp(3) / (Math.Exp(1) + Math.Exp(2) + Math.Exp(3)), probs[2], 1e-6);
        Assert.Equal(1f / 3, probs[7], 1e-6);

        using var d = cpu.Allocate(new Shape(3, 3), MemoryTag.Scratch);
        cpu.SoftmaxCrossEntropyBackward(p, t, d, 0.5f);
        float[] grad = TestUtil.ToArray(d);
        Assert.Equal(0.5f * (probs[2] - 1), grad[2], 1e-6);
        Assert.Equal(0.5f * probs[0], grad[0], 1e-6);

        // Row 0: argmax 2 = target. Row 1: argmax 0, target 1. Row 2: a tie, the first index (0) wins = target.
        Assert.Equal(2, cpu.CountCorrect(x, t));
    }

    [Fact]
    public void Negative_targets_are_ignored_by_loss_gradient_and_accuracy()
    {
        using var cpu = TestUtil.Cpu();
        using var x = TestUtil.FromArray(cpu, [1f, 2f, 3f, 4f, 0f, 0f], 2, 3);
        using var t = TestUtil.Labels(cpu, -1, 0);
        using var p = cpu.Allocate(new Shape(2, 3), MemoryTag.Scratch);
        var (sum, count) = cpu.SoftmaxCrossEntropy(x, t, p);
        Assert.Equal(1, count);
        Assert.Equal(Math.Log(Math.Exp(4) + 2) - 4, sum, 1e-5);
        using var d = cpu.Allocate(new Shape(2, 3), MemoryTag.Scratch);
        cpu.Fill(d, 7f);
        cpu.SoftmaxCrossEntropyBackward(p, t, d, 1f);
        float[] grad = TestUtil.ToArray(d);
        Assert.Equal(new[] { 0f, 0f, 0f }, grad[..3]);
        Assert.True(grad[3] < 0 && grad[4] > 0);
        Assert.Equal(1, cpu.CountCorrect(x, t));
    }

    [Fact]
    public void Preconditioned_updates_fold_into_a_first_moment_with_alpha_and_beta()
    {
        using var cpu = TestUtil.Cpu();
        using var g = TestUtil.FromArray(cpu, [2f, -4f, 6f, 1f], 2, 2);
        using var v = TestUtil.FromArray(cpu, [4f, 16f, 9f, 0.25f], 4);
        using var m = TestUtil.FromArray(cpu, [1f, 1f, -1f, 10f], 4);
        cpu.DivideBySqrt(g.View(new Shape(4)), v, m, alpha: 0.1f, beta: 0.9f);      // m = 0.9 m + 0.1 g / sqrt(v)
        Assert.Equal(new[] { 0.9f + 0.1f, 0.9f - 0.1f, -0.9f + 0.2f, 9f + 0.2f }, TestUtil.ToArray(m), new FloatTolerance(1e-6f));

        // rows (2), columns (2): u_ij = g_ij / sqrt(rows_i / mean(rows) * columns_j)
        using var rows = TestUtil.FromArray(cpu, [1f, 3f], 2);
        using var columns = TestUtil.FromArray(cpu, [4f, 1f], 2);
        using var u = TestUtil.FromArray(cpu, [1f, 2f, 3f, 4f], 2, 2);
        cpu.AdafactorFactoredPrecondition(g, rows, columns, u, alpha: 0.5f, beta: 2f);
        double R0 = 1 / 2.0, R1 = 3 / 2.0;                                              // rows / mean(rows)
        double[] expected = [2 * 1 + 0.5 * 2 / Math.Sqrt(R0 * 4), 2 * 2 + 0.5 * -4 / Math.Sqrt(R0 * 1),
                             2 * 3 + 0.5 * 6 / Math.Sqrt(R1 * 4), 2 * 4 + 0.5 * 1 / Math.Sqrt(R1 * 1)];
        float[] actual = TestUtil.ToArray(u);
        for (int i = 0; i < 4; i++) Assert.Equal(expected[i], actual[i], 1e-5);
    }

    private sealed class FloatTolerance(float tolerance) : IEqualityComparer<float>
    {
        public bool Equals(float a, float b) => Math.Abs(a - b) <= tolerance;
        public int GetHashCode(float value) => 0;
    }

    [Fact]
    public void Targets_outside_the_class_range_are_a_clear_error()
    {
        using var cpu = TestUtil.Cpu();
        using var x = cpu.Allocate(new Shape(2, 3), MemoryTag.Scratch);
        using var p = cpu.Allocate(new Shape(2, 3), MemoryTag.Scratch);
        using var t = TestUtil.Labels(cpu, 0, 3);
        var e = Assert.Throws<ArgumentException>(() => cpu.SoftmaxCrossEntropy(x, t, p));
        Assert.Contains("target 3 at row 1", e.Message);
    }

    [Fact]
    public void Profiler_records_time_per_op_only_when_attached()
    {
        using var cpu = TestUtil.Cpu();
        using var a = TestUtil.Random(cpu, 1, 1, 64, 64);
        using var c = cpu.Allocate(new Shape(64, 64), MemoryTag.Scratch);
        cpu.MatMul(a, false, a, false, c);
        var profiler = new Flora.Backends.OpProfiler();
        cpu.Profiler = profiler;
        cpu.MatMul(a, false, a, false, c);
        cpu.MatMul(a, false, a, false, c);
        cpu.Relu(a, c);
        Assert.Equal(2, profiler.Ops["MatMul"].Calls);
        Assert.Equal(1, profiler.Ops["Relu"].Calls);
        Assert.True(profiler.Seconds("MatMul") > 0);
    }
}

public class OpenBlasLoaderTests
{
    [Fact]
    public void Missing_library_names_what_was_tried_and_the_debian_package()
    {
        var e = Assert.Throws<FloraException>(() => Flora.Backends.Cpu.OpenBlas.Probe(["libdoes-not-exist.so.7", "/nowhere/libopenblas.so.0"]));
        Assert.Contains("libdoes-not-exist.so.7", e.Message);
        Assert.Contains("/nowhere/libopenblas.so.0", e.Message);
        Assert.Contains("apt-get install libopenblas0-pthread", e.Message);
    }
}
