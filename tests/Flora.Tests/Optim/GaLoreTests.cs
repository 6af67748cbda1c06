using Flora.Backends;
using Flora.Checkpoints;
using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Tests.Optim;

/// <summary>
/// The SVD op against decompositions built by hand (A = U diag(s) V^T with known orthonormal U and V), and GaLore
/// against a reference computed here in double precision from those known factors.
/// </summary>
public class GaLoreTests
{
    // ---- helpers: known decompositions in double precision -----------------------------------------------

    /// <summary>A (rows, cols) row-major matrix with orthonormal columns: Gram-Schmidt of a seeded random matrix.</summary>
    private static double[] Orthonormal(int rows, int cols, int seed)
    {
        var random = new Random(seed);
        var q = new double[rows * cols];
        for (int i = 0; i < q.Length; i++) q[i] = random.NextDouble() * 2 - 1;
        for (int j = 0; j < cols; j++)
        {
            for (int pass = 0; pass < 2; pass++)                                   // twice, for orthogonality to rounding
                for (int p = 0; p < j; p++)
                {
                    double dot = 0;
                    for (int i = 0; i < rows; i++) dot += q[i * cols + j] * q[i * cols + p];
                    for (int i = 0; i < rows; i++) q[i * cols + j] -= dot * q[i * cols + p];
                }
            double norm = 0;
            for (int i = 0; i < rows; i++) norm += q[i * cols + j] * q[i * cols + j];
            norm = Math.Sqrt(norm);
            for (int i = 0; i < rows; i++) q[i * cols + j] /= norm;
        }
        return q;
    }

    /// <summary>A known SVD: U (n, k), s (k) descending, V (m, k), and A = U diag(s) V^T (n, m).</summary>
    private sealed record Known(int N, int M, double[] U, double[] S, double[] V, double[] A)
    {
        public int K => S.Length;

        /// <summary>The sign of column j as the op fixes it: its entry of largest magnitude is positive.</summary>
        public double Sign(int j)
        {
            double largest = 0;
            for (int i = 0; i < N; i++) if (Math.Abs(U[i * K + j]) > Math.Abs(largest)) largest = U[i * K + j];
            return largest < 0 ? -1 : 1;
        }

        /// <summary>Column j of U with the op's sign.</summary>
        public double Left(int i, int j) => Sign(j) * U[i * K + j];

        /// <summary>Row j of V^T with the op's sign.</summary>
        public double RightT(int j, int c) => Sign(j) * V[c * K + j];
    }

    private static Known MakeKnown(int n, int m, int seed, double[]? singularValues = null)
    {
        int k = Math.Min(n, m);
        double[] s = singularValues ?? Enumerable.Range(0, k).Select(i => 4.0 / (1 + i)).ToArray();   // 4, 2, 1.33, 1, ...
        double[] u = Orthonormal(n, k, seed), v = Orthonormal(m, k, seed + 1000);
        var a = new double[n * m];
        for (int i = 0; i < n; i++)
            for (int c = 0; c < m; c++)
            {
                double sum = 0;
                for (int j = 0; j < k; j++) sum += u[i * k + j] * s[j] * v[c * k + j];
                a[i * m + c] = sum;
            }
        return new Known(n, m, u, s, v, a);
    }

    private static Tensor Upload(IBackend backend, double[] values, params int[] shape) =>
        TestUtil.FromArray(backend, values.Select(x => (float)x).ToArray(), shape);

    // ---- the SVD op -----------------------------------------------------------------------------------

    [Theory]
    [InlineData(6, 10, 3)]
    [InlineData(10, 6, 3)]
    [InlineData(7, 7, 7)]
    [InlineData(1, 5, 1)]
    [InlineData(40, 24, 8)]
    public void Svd_recovers_a_known_decomposition(int n, int m, int r)
    {
        using var cpu = TestUtil.Cpu();
        var known = MakeKnown(n, m, seed: n * 100 + m);
        using var a = Upload(cpu, known.A, n, m);
        float[] before = TestUtil.ToArray(a);
        using var u = cpu.Allocate(new Shape(n, r), MemoryTag.Scratch);
        using var s = cpu.Allocate(new Shape(r), MemoryTag.Scratch);
        using var vt = cpu.Allocate(new Shape(r, m), MemoryTag.Scratch);
        cpu.Svd(a, u, s, vt);
        float[] us = TestUtil.ToArray(u), ss = TestUtil.ToArray(s), vts = TestUtil.ToArray(vt);

        Assert.Equal(before, TestUtil.ToArray(a));                                  // the input is kept
        for (int j = 0; j < r; j++)
        {
            Assert.True(Math.Abs(ss[j] - known.S[j]) < 1e-5 * known.S[0], $"s[{j}] = {ss[j]}, expected {known.S[j]}");
            for (int i = 0; i < n; i++)
                Assert.True(Math.Abs(us[i * r + j] - known.Left(i, j)) < 1e-5, $"u[{i}, {j}] = {us[i * r + j]}, expected {known.Left(i, j)}");
            for (int c = 0; c < m; c++)
                Assert.True(Math.Abs(vts[j * m + c] - known.RightT(j, c)) < 1e-5, $"vt[{j}, {c}] = {vts[j * m + c]}, expected {known.RightT(j, c)}");
        }
        // Truncated reconstruction: sum over the r leading triplets of u_j s_j vt_j equals the same sum of the known factors.
        for (int i = 0; i < n; i++)
            for (int c = 0; c < m; c++)
            {
                double got = 0, expected = 0;
                for (int j = 0; j < r; j++)
                {
                    got += (double)us[i * r + j] * ss[j] * vts[j * m + c];
                    expected += known.U[i * known.K + j] * known.S[j] * known.V[c * known.K + j];
                }
                Assert.True(Math.Abs(got - expected) < 2e-5, $"reconstruction ({i}, {c}): {got} vs {expected}");
                if (r == known.K) Assert.True(Math.Abs(got - known.A[i * m + c]) < 2e-5, $"full reconstruction ({i}, {c}): {got} vs {known.A[i * m + c]}");
            }
    }

    [Fact]
    public void Svd_writes_only_the_outputs_asked_for_with_the_same_vectors()
    {
        using var cpu = TestUtil.Cpu();
        var known = MakeKnown(9, 5, seed: 3);
        using var a = Upload(cpu, known.A, 9, 5);
        using var u = cpu.Allocate(new Shape(9, 2), MemoryTag.Scratch);
        using var vt = cpu.Allocate(new Shape(2, 5), MemoryTag.Scratch);
        using var s = cpu.Allocate(new Shape(2), MemoryTag.Scratch);
        using var uAll = cpu.Allocate(new Shape(9, 2), MemoryTag.Scratch);
        using var vtAll = cpu.Allocate(new Shape(2, 5), MemoryTag.Scratch);
        cpu.Svd(a, uAll, null, vtAll);
        cpu.Svd(a, u, null, null);
        cpu.Svd(a, null, null, vt);
        cpu.Svd(a, null, s, null);
        Assert.Equal(TestUtil.ToArray(uAll), TestUtil.ToArray(u));
        Assert.Equal(TestUtil.ToArray(vtAll), TestUtil.ToArray(vt));
        Assert.Equal(known.S[1], TestUtil.ToArray(s)[1], 1e-5);
        // Only this test's own scratch tensors remain: the SVD's workspace was freed.
        Assert.Equal(4L * (9 * 2 + 2 * 5 + 2 + 9 * 2 + 2 * 5), cpu.Ledger.Current(MemoryTag.Scratch));
    }

    [Fact]
    public void Svd_rejects_bad_shapes_with_a_message()
    {
        using var cpu = TestUtil.Cpu();
        using var a = cpu.Allocate(new Shape(4, 6), MemoryTag.Scratch);
        using var u5 = cpu.Allocate(new Shape(4, 5), MemoryTag.Scratch);
        using var uRows = cpu.Allocate(new Shape(3, 2), MemoryTag.Scratch);
        using var s3 = cpu.Allocate(new Shape(3), MemoryTag.Scratch);
        using var u2 = cpu.Allocate(new Shape(4, 2), MemoryTag.Scratch);
        using var vector = cpu.Allocate(new Shape(6), MemoryTag.Scratch);
        Assert.Contains("has 4", Assert.Throws<ArgumentException>(() => cpu.Svd(a, u5, null, null)).Message);
        Assert.Contains("(4, r)", Assert.Throws<ArgumentException>(() => cpu.Svd(a, uRows, null, null)).Message);
        Assert.Contains("another output", Assert.Throws<ArgumentException>(() => cpu.Svd(a, u2, s3, null)).Message);
        Assert.Contains("at least one", Assert.Throws<ArgumentException>(() => cpu.Svd(a, null, null, null)).Message);
        Assert.Contains("matrix", Assert.Throws<ArgumentException>(() => cpu.Svd(vector, null, s3, null)).Message);
    }

    // ---- GaLore's step against a double-precision reference ------------------------------------------------

    /// <summary>GaLore in double precision, given each step's gradient and its known SVD.</summary>
    private sealed class ReferenceGaLore(int n, int m, int rank, int gap, double lr, double scale, double wd, double b1 = 0.9, double b2 = 0.999, double eps = 1e-8)
    {
        private readonly bool _left = n <= m;
        private double[] _projection = [];                                          // P (n, r) or Q^T (r, m)
        private double[] _m = new double[rank * Math.Max(n, m)], _v = new double[rank * Math.Max(n, m)];
        private long _t;

        public void Step(double[] w, Known g)
        {
            long t = _t++;
            if (t % gap == 0)
                _projection = _left
                    ? Enumerable.Range(0, n * rank).Select(x => g.Left(x / rank, x % rank)).ToArray()
                    : Enumerable.Range(0, rank * m).Select(x => g.RightT(x / m, x % m)).ToArray();
            // R = P^T G (r, m) or G Q (n, r)
            int rows = _left ? rank : n, cols = _left ? m : rank;
            var r = new double[rows * cols];
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++)
                {
                    double sum = 0;
                    if (_left) for (int p = 0; p < n; p++) sum += _projection[p * rank + i] * g.A[p * m + j];
                    else for (int p = 0; p < m; p++) sum += g.A[i * m + p] * _projection[j * m + p];
                    r[i * cols + j] = sum;
                }
            double bc1 = 1 - Math.Pow(b1, t + 1), bc2 = 1 - Math.Pow(b2, t + 1);
            var update = new double[r.Length];
            for (int i = 0; i < r.Length; i++)
            {
                _m[i] = b1 * _m[i] + (1 - b1) * r[i];
                _v[i] = b2 * _v[i] + (1 - b2) * r[i] * r[i];
                update[i] = (_m[i] / bc1) / (Math.Sqrt(_v[i] / bc2) + eps);
            }
            // W = W (1 - lr wd) - lr scale (P N or N Q^T)
            for (int i = 0; i < n; i++)
                for (int c = 0; c < m; c++)
                {
                    double back = 0;
                    if (_left) for (int j = 0; j < rank; j++) back += _projection[i * rank + j] * update[j * m + c];
                    else for (int j = 0; j < rank; j++) back += update[i * rank + j] * _projection[j * m + c];
                    w[i * m + c] = w[i * m + c] * (1 - lr * wd) - lr * scale * back;
                }
        }
    }

    [Theory]
    [InlineData(4, 6)]
    [InlineData(6, 4)]
    [InlineData(5, 5)]
    public void Step_matches_the_reference_over_a_projection_refresh(int n, int m)
    {
        const int rank = 2, gap = 2, steps = 5;
        const float lr = 0.01f, scale = 0.25f, wd = 0.1f;
        using var cpu = TestUtil.Cpu();
        var w0 = Enumerable.Range(0, n * m).Select(i => Math.Sin(i + 1.0)).ToArray();
        using var p = new Parameter(cpu, "w", Upload(cpu, w0, n, m));
        using var opt = new GaLore(cpu, [p], lr, rank, gap, scale, weightDecay: wd);
        var reference = new ReferenceGaLore(n, m, rank, gap, lr, scale, wd);
        var w = (double[])w0.Clone();
        for (int step = 0; step < steps; step++)
        {
            // Gradients with well separated singular values, a new subspace every step.
            var g = MakeKnown(n, m, seed: 50 + step, singularValues: Enumerable.Range(0, Math.Min(n, m)).Select(i => (3.0 - 0.5 * i) * (1 + 0.1 * step)).ToArray());
            using var grad = Upload(cpu, g.A, n, m);
            opt.Update(p, grad);
            reference.Step(w, g);
            float[] got = TestUtil.ToArray(p.Value);
            for (int i = 0; i < w.Length; i++)
                Assert.True(Math.Abs(got[i] - w[i]) <= 1e-5 * (1 + Math.Abs(w[i])), $"step {step + 1}, element {i}: got {got[i]}, expected {w[i]}");
        }
        Assert.Equal(4, opt.StateOfParameter(p).ProjectionStep);                    // refreshed at steps 0, 2 and 4
    }

    [Fact]
    public void First_step_by_hand()
    {
        // G = 3 e1 f1^T + 1 e2 f2^T on a 2 x 3 weight, r = 1: P = e1, R = P^T G = [3, 0, 0]. First Adam step: N = R / (|R| + eps) = [1, 0, 0]
        // (0 where R = 0). W = W - lr alpha P N: only W[0, 0] moves, by -0.1 * 0.25 = -0.025.
        using var cpu = TestUtil.Cpu();
        using var p = new Parameter(cpu, "w", TestUtil.FromArray(cpu, [1f, 1f, 1f, 1f, 1f, 1f], 2, 3));
        using var opt = new GaLore(cpu, [p], 0.1f, rank: 1, updateGap: 10, scale: 0.25f);
        using var g = TestUtil.FromArray(cpu, [3f, 0f, 0f, 0f, 1f, 0f], 2, 3);
        opt.Update(p, g);
        float[] w = TestUtil.ToArray(p.Value);
        Assert.Equal(0.975f, w[0], 1e-6f);
        for (int i = 1; i < 6; i++) Assert.Equal(1f, w[i], 1e-6f);
        Assert.Equal([1f, 0f], TestUtil.ToArray(opt.StateOfParameter(p).Projection!));
    }

    [Fact]
    public void Projection_is_refreshed_every_gap_steps_from_that_steps_gradient()
    {
        const int n = 6, m = 9, rank = 3, gap = 3;
        using var cpu = TestUtil.Cpu();
        using var p = new Parameter(cpu, "w", TestUtil.Random(cpu, 1, 0.5f, n, m));
        using var opt = new GaLore(cpu, [p], 1e-3f, rank, gap);
        var state = opt.StateOfParameter(p);
        Assert.True(state.Left);
        Assert.Equal(-1, state.ProjectionStep);
        using var expected = cpu.Allocate(new Shape(n, rank), MemoryTag.Scratch);
        float[] previous = [];
        for (int t = 0; t < 8; t++)
        {
            using var g = TestUtil.Random(cpu, (ulong)(100 + t), 0.1f, n, m);
            cpu.Svd(g, expected, null, null);
            float[] svd = TestUtil.ToArray(expected);
            opt.Update(p, g);
            float[] projection = TestUtil.ToArray(state.Projection!);
            Assert.Equal(t / gap * gap, state.ProjectionStep);
            if (t % gap == 0) Assert.Equal(svd, projection);                        // this step's gradient
            else
            {
                Assert.Equal(previous, projection);                                 // kept
                Assert.NotEqual(svd, projection);
            }
            previous = projection;
        }
    }

    [Fact]
    public void Parameters_that_are_not_projected_get_AdamW_exactly()
    {
        using var cpu = TestUtil.Cpu();
        // A vector, an embedding-like matrix (40 x 4: more than 4:1), a matrix smaller than the rank.
        Parameter[] Make() =>
        [
            new Parameter(cpu, "norm", TestUtil.Random(cpu, 1, 1f, 16)),
            new Parameter(cpu, "embed", TestUtil.Random(cpu, 2, 1f, 40, 4)),
            new Parameter(cpu, "small", TestUtil.Random(cpu, 3, 1f, 3, 5)),
        ];
        var galoreParams = Make();
        var adamParams = Make();
        using var galore = new GaLore(cpu, galoreParams, 0.01f, rank: 4, updateGap: 2, weightDecay: 0.05f);
        using var adamw = new AdamW(cpu, adamParams, 0.01f, weightDecay: 0.05f);
        foreach (var q in galoreParams) Assert.False(galore.IsProjected(q.Shape), q.Name);
        for (int step = 0; step < 4; step++)
        {
            galore.LearningRateScale = adamw.LearningRateScale = 1f - 0.1f * step;   // a schedule, as the trainer sets it
            for (int i = 0; i < galoreParams.Length; i++)
            {
                using var g1 = cpu.Allocate(galoreParams[i].Shape, MemoryTag.Scratch);
                using var g2 = cpu.Allocate(galoreParams[i].Shape, MemoryTag.Scratch);
                cpu.FillGaussian(g1, (ulong)(10 * step + i), 0.3f);
                cpu.FillGaussian(g2, (ulong)(10 * step + i), 0.3f);
                galore.Update(galoreParams[i], g1);
                adamw.Update(adamParams[i], g2);
            }
        }
        for (int i = 0; i < galoreParams.Length; i++)
            Assert.Equal(TestUtil.ToArray(adamParams[i].Value), TestUtil.ToArray(galoreParams[i].Value));   // bit for bit
        foreach (var q in galoreParams.Concat(adamParams)) q.Dispose();
    }

    [Fact]
    public void State_bytes_include_the_projection_and_are_in_the_ledger()
    {
        const int rank = 4;
        using var cpu = TestUtil.Cpu();
        using var wide = new Parameter(cpu, "wide", cpu.Allocate(new Shape(8, 12), MemoryTag.Parameters));
        using var tall = new Parameter(cpu, "tall", cpu.Allocate(new Shape(12, 8), MemoryTag.Parameters));
        using var bias = new Parameter(cpu, "bias", cpu.Allocate(new Shape(5), MemoryTag.Parameters));
        using var opt = new GaLore(cpu, [wide, tall, bias], 1e-3f, rank);
        var w = opt.StateOfParameter(wide);
        var t = opt.StateOfParameter(tall);
        Assert.True(w.Left);
        Assert.False(t.Left);
        Assert.Equal(new Shape(8, rank), w.Projection!.Shape);                       // P (n, r)
        Assert.Equal(new Shape(rank, 8), t.Projection!.Shape);                       // Q^T (r, m)
        Assert.Equal(new Shape(rank, 12), w.M.Shape);
        Assert.Equal(new Shape(12, rank), t.V.Shape);
        Assert.Null(opt.StateOfParameter(bias).Projection);
        // Adam in the projected space alone: 2 r max(n, m) per matrix; the projection adds r min(n, m).
        long projectedAdam = 2 * (2L * rank * 12) * 4, projections = 2 * (long)rank * 8 * 4, biasAdam = 2 * 5 * 4;
        Assert.Equal(projectedAdam + projections + biasAdam, opt.StateBytes);
        Assert.Equal(opt.StateBytes, cpu.Ledger.Current(MemoryTag.OptimizerState));
        Assert.Contains(w.Tensors, s => s.Name == "projection" && s.Description.Contains("left singular vectors"));
        Assert.Contains("projection", w.ToString());
    }

    [Fact]
    public void Save_load_continue_is_bit_for_bit_the_uninterrupted_run()
    {
        using var cpu = TestUtil.Cpu();
        string dir = Directory.CreateTempSubdirectory("flora-galore-").FullName;
        Parameter[] Make() =>
        [
            new Parameter(cpu, "attn.weight", cpu.Allocate(new Shape(12, 16), MemoryTag.Parameters)),
            new Parameter(cpu, "mlp.weight", cpu.Allocate(new Shape(20, 8), MemoryTag.Parameters)),
            new Parameter(cpu, "bias", cpu.Allocate(new Shape(16), MemoryTag.Parameters)),
        ];
        void Steps(GaLore opt, Parameter[] ps, int from, int to)
        {
            for (int k = from; k < to; k++)
                foreach (var (q, i) in ps.Select((q, i) => (q, i)))
                {
                    using var g = cpu.Allocate(q.Shape, MemoryTag.Scratch);
                    cpu.FillGaussian(g, (ulong)(1000 * k + i), 0.1f);
                    opt.Update(q, g);
                }
        }
        try
        {
            var ps = Make();
            for (int i = 0; i < ps.Length; i++) cpu.FillGaussian(ps[i].Value, (ulong)(i + 1), 0.5f);
            // Gap 3: the checkpoint at step 5 is mid-period (projection of step 3); refreshes follow at 6, 9 and 12.
            using (var opt = new GaLore(cpu, ps, 0.01f, rank: 4, updateGap: 3, weightDecay: 0.01f))
            {
                Steps(opt, ps, 0, 5);
                OptimizerCheckpoint.Save(opt, Path.Combine(dir, "opt.safetensors"));
                var w = new SafeTensorsWriter();
                foreach (var q in ps) w.Add(q.Name, q.Value);
                w.Write(Path.Combine(dir, "params.safetensors"));
                Steps(opt, ps, 5, 15);
            }
            float[][] uninterrupted = ps.Select(q => TestUtil.ToArray(q.Value)).ToArray();

            var resumed = Make();
            using (var r = SafeTensorsFile.Open(Path.Combine(dir, "params.safetensors")))
                foreach (var q in resumed) r.ReadInto(q.Name, q.Value);
            using (var opt = new GaLore(cpu, resumed, 0.01f, rank: 4, updateGap: 3, weightDecay: 0.01f))
            {
                OptimizerCheckpoint.Load(opt, Path.Combine(dir, "opt.safetensors"));
                Assert.Equal(3, opt.StateOfParameter(resumed[0]).ProjectionStep);
                Assert.Equal(-1, opt.StateOfParameter(resumed[2]).ProjectionStep);
                Steps(opt, resumed, 5, 15);
            }
            for (int i = 0; i < ps.Length; i++)
                Assert.Equal(uninterrupted[i], TestUtil.ToArray(resumed[i].Value)); // exact

            // Another gap is another configuration: refused.
            using var otherGap = new GaLore(cpu, resumed, 0.01f, rank: 4, updateGap: 4);
            var e = Assert.Throws<InvalidDataException>(() => OptimizerCheckpoint.Load(otherGap, Path.Combine(dir, "opt.safetensors")));
            Assert.Contains("gap=3", e.Message);
            foreach (var q in ps.Concat(resumed)) q.Dispose();
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [InlineData(0, 200, 0.25f, "rank", "0")]
    [InlineData(-3, 200, 0.25f, "rank", "-3")]
    [InlineData(8, 0, 0.25f, "gap", "0")]
    [InlineData(8, -1, 0.25f, "gap", "-1")]
    [InlineData(8, 200, 0f, "scale", "0")]
    [InlineData(8, 200, -0.5f, "scale", "-0.5")]
    [InlineData(8, 200, float.NaN, "scale", "NaN")]
    public void Bad_hyper_parameters_are_refused_naming_the_value(int rank, int gap, float scale, string what, string value)
    {
        using var cpu = TestUtil.Cpu();
        using var p = new Parameter(cpu, "w", cpu.Allocate(new Shape(8, 8), MemoryTag.Parameters));
        var e = Assert.Throws<ArgumentException>(() => new GaLore(cpu, [p], 1e-3f, rank, gap, scale));
        Assert.Contains(what, e.Message);
        Assert.Contains($"got {value}", e.Message);
    }

    [Fact]
    public void The_optimizer_spec_creates_GaLore_with_its_defaults()
    {
        using var cpu = TestUtil.Cpu();
        using var p = new Parameter(cpu, "w", cpu.Allocate(new Shape(8, 8), MemoryTag.Parameters));
        Assert.Contains("galore", OptimizerSpec.Names);
        var spec = new OptimizerSpec { Name = "galore", Rank = 4, LearningRate = 0.01f };
        using var opt = Assert.IsType<GaLore>(spec.Create(cpu, [p]));
        Assert.Equal((4, 200, 0.25f), (opt.Rank, opt.UpdateGap, opt.Scale));
        Assert.Contains("rank-4", spec.ToString());
        Assert.Contains("every 200 steps", spec.ToString());
        using var custom = Assert.IsType<GaLore>((spec with { GaLoreGap = 50, GaLoreScale = 0.5f }).Create(cpu, [p]));
        Assert.Equal((50, 0.5f), (custom.UpdateGap, custom.Scale));
    }
}
