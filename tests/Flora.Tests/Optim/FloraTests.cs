using Flora.Backends;
using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Tests.Optim;

public class FloraTests
{
    private static Parameter NewParameter(IBackend cpu, string name, int n, int m, ulong seed)
    {
        var p = new Parameter(cpu, name, cpu.Allocate(new Shape(n, m), MemoryTag.Parameters));
        cpu.FillGaussian(p.Value, seed, 1f);
        return p;
    }

    private static double[] ToDouble(Tensor t) => TestUtil.ToArray(t).Select(v => (double)v).ToArray();

    [Theory]
    [InlineData(6, 4)]   // columns compressed: u A^T A
    [InlineData(4, 6)]   // rows compressed: A^T A u
    public void Kappa_1_beta_0_is_adafactor_on_decompress_compress_of_the_update(int n, int m)
    {
        const int r = 3;
        const ulong root = 11;
        using var cpu = TestUtil.Cpu();
        using var p = NewParameter(cpu, "layer.weight", n, m, 1);
        var w = ToDouble(p.Value);
        using var opt = new FloraAdafactor(cpu, [p], 0.5f, rank: r, beta: 0f, kappa: 1, variant: FloraVariant.Paper, seed: root);
        var reference = new Reference.Adafactor(n, m) { Lr = 0.5 };
        ulong parameterSeed = Seeds.ForName(root, "layer.weight");
        bool columns = m <= n;
        reference.Project = (t, u) =>
        {
            // kappa = 1: the projection of step t is that of period t.
            var a = Reference.Projection(Seeds.Derive(parameterSeed, (ulong)t), r, columns ? m : n);
            return columns
                ? Reference.MatMul(Reference.MatMul(u, Reference.Transpose(a, r, m), n, m, r), a, n, r, m)   // u A^T A
                : Reference.MatMul(Reference.Transpose(a, r, n), Reference.MatMul(a, u, r, n, m), n, r, m);  // A^T A u
        };
        using var g = cpu.Allocate(new Shape(n, m), MemoryTag.Scratch);
        for (int step = 0; step < 3; step++)
        {
            cpu.FillGaussian(g, 100 + (ulong)step, 0.1f);
            double[] gd = ToDouble(g);
            opt.Update(p, g);
            reference.Step(w, gd);
            float[] got = TestUtil.ToArray(p.Value);
            for (int i = 0; i < w.Length; i++)
                Assert.True(Math.Abs(got[i] - w[i]) <= 1e-5 * (1 + Math.Abs(w[i])), $"step {step + 1}, element {i}: {got[i]} vs {w[i]}");
        }
    }

    [Theory]
    [InlineData(8, 5)]   // columns: M (n, r), transfer M A_old A_new^T
    [InlineData(5, 8)]   // rows: M (r, m), transfer A_new A_old^T M
    public void Transfer_is_exactly_the_product_with_old_and_new_projections(int n, int m)
    {
        const int r = 4;
        using var cpu = TestUtil.Cpu();
        using var p = NewParameter(cpu, "w", n, m, 1);
        var options = MomentumOptions.Flora(r, beta: 0.5f, kappa: 10, variant: FloraVariant.Paper, seed: 3);
        using var state = new ParameterState(cpu, p);
        using var scratch = new MomentumScratch(cpu, r);
        var momentum = (CompressedMomentum)Momentum.Create(cpu, options, p, state, scratch)!;
        using var u = TestUtil.Random(cpu, 9, 1, n, m);
        momentum.Apply(u, 0);
        Tensor mTensor = state.Tensors.Single().Tensor;
        double[] before = ToDouble(mTensor);
        momentum.TransferTo(0, 1);
        double[] after = ToDouble(mTensor);

        bool columns = momentum.Axis == CompressedAxis.Columns;
        Assert.Equal(m <= n, columns);
        int d = columns ? m : n;
        var aOld = Reference.Projection(momentum.SeedOfPeriod(0), r, d);
        var aNew = Reference.Projection(momentum.SeedOfPeriod(1), r, d);
        double[] expected = columns
            ? Reference.MatMul(before, Reference.MatMul(aOld, Reference.Transpose(aNew, r, d), r, d, r), n, r, r)   // M A_old A_new^T
            : Reference.MatMul(Reference.MatMul(aNew, Reference.Transpose(aOld, r, d), r, d, r), before, r, r, m);  // A_new A_old^T M
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(after[i] - expected[i]) <= 1e-5 * (1 + Math.Abs(expected[i])), $"element {i}: {after[i]} vs {expected[i]}");
        Assert.NotEqual(before, after);
    }

    /// <summary>
    /// The official variant given a kept copy of u (what the GPU's precondition pass writes in bf16) takes the yield first
    /// and compresses the copy straight into M: the same yields and the same M as the plain order, across a resampling.
    /// </summary>
    [Theory]
    [InlineData(8, 5)]
    [InlineData(5, 8)]
    public void Official_variant_with_a_kept_copy_of_u_matches_the_plain_order(int n, int m)
    {
        const int r = 3;
        using var cpu = TestUtil.Cpu();
        using var p = NewParameter(cpu, "w", n, m, 1);
        var options = MomentumOptions.Flora(r, beta: 0.8f, kappa: 2, variant: FloraVariant.Official, seed: 7);
        using var plainState = new ParameterState(cpu, p);
        using var keptState = new ParameterState(cpu, p);
        using var plainScratch = new MomentumScratch(cpu, r);
        using var keptScratch = new MomentumScratch(cpu, r);
        var plain = (CompressedMomentum)Momentum.Create(cpu, options, p, plainState, plainScratch)!;
        var kept = (CompressedMomentum)Momentum.Create(cpu, options, p, keptState, keptScratch)!;
        for (int t = 0; t < 5; t++)                                                // periods 0, 0, 1, 1, 2: two resamplings
        {
            using var u1 = TestUtil.Random(cpu, (ulong)(40 + t), 1, n, m);
            using var u2 = TestUtil.Random(cpu, (ulong)(40 + t), 1, n, m);
            using var copy = TestUtil.Random(cpu, (ulong)(40 + t), 1, n, m);
            float[] a = TestUtil.ToArray(plain.Apply(u1, t)), b = TestUtil.ToArray(kept.Apply(u2, t, copy));
            float[] ma = TestUtil.ToArray(plainState.Tensors.Single().Tensor), mb = TestUtil.ToArray(keptState.Tensors.Single().Tensor);
            for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 1e-5 * (1 + Math.Abs(a[i])), $"step {t}, yield {i}: {a[i]} vs {b[i]}");
            for (int i = 0; i < ma.Length; i++) Assert.True(Math.Abs(ma[i] - mb[i]) <= 1e-5 * (1 + Math.Abs(ma[i])), $"step {t}, M {i}: {ma[i]} vs {mb[i]}");
        }
        Assert.Equal(2, kept.Resamplings);
    }

    [Fact]
    public void Paper_variant_follows_algorithm_2_across_a_resampling()
    {
        // kappa = 2, columns compressed. Reference, in double:
        // t=0: M = (1-b) u0 A0^T          t=1: M = b M + (1-b) u1 A0^T
        // t=2: M = M A0 A1^T (transfer);  M = b M + (1-b) u2 A1^T; yield M A1
        const int n = 8, m = 6, r = 3;
        const double b = 0.9;
        using var cpu = TestUtil.Cpu();
        using var p = NewParameter(cpu, "w", n, m, 1);
        using var state = new ParameterState(cpu, p);
        using var scratch = new MomentumScratch(cpu, r);
        var flora = (CompressedMomentum)Momentum.Create(cpu, MomentumOptions.Flora(r, (float)b, kappa: 2, variant: FloraVariant.Paper, seed: 5), p, state, scratch)!;
        var a0 = Reference.Projection(flora.SeedOfPeriod(0), r, m);
        var a1 = Reference.Projection(flora.SeedOfPeriod(1), r, m);
        var mRef = new double[n * r];
        using var u = cpu.Allocate(new Shape(n, m), MemoryTag.Scratch);
        double[] yield = [];
        for (int t = 0; t < 3; t++)
        {
            cpu.FillGaussian(u, 300 + (ulong)t, 1f);
            double[] ut = ToDouble(u);
            yield = ToDouble(flora.Apply(u, t));
            if (t == 2) mRef = Reference.MatMul(mRef, Reference.MatMul(a0, Reference.Transpose(a1, r, m), r, m, r), n, r, r);
            var a = t < 2 ? a0 : a1;
            var c = Reference.MatMul(ut, Reference.Transpose(a, r, m), n, m, r);
            for (int i = 0; i < mRef.Length; i++) mRef[i] = b * mRef[i] + (1 - b) * c[i];
        }
        double[] expected = Reference.MatMul(mRef, a1, n, r, m);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(yield[i] - expected[i]) <= 1e-5 * (1 + Math.Abs(expected[i])), $"element {i}: {yield[i]} vs {expected[i]}");
    }

    [Fact]
    public void State_bytes_are_exact_for_a_768_by_3072_weight_at_rank_32()
    {
        using var cpu = TestUtil.Cpu();
        using var p = new Parameter(cpu, "mlp.c_fc.weight", cpu.Allocate(new Shape(768, 3072), MemoryTag.Parameters));
        using var flora = new FloraAdafactor(cpu, [p], 0.01f, rank: 32);
        using var naive = new Adafactor(cpu, [p], new AdafactorOptions { LearningRate = 0.01f, Momentum = MomentumOptions.Naive() });
        var floraMoment = flora.StateOf(p).Tensors.Single(t => t.Name == "exp_avg");
        var naiveMoment = naive.StateOf(p).Tensors.Single(t => t.Name == "exp_avg");
        Assert.Equal(new Shape(32, 3072), floraMoment.Shape);
        Assert.Equal(32L * 3072 * 4, floraMoment.Bytes);
        Assert.Equal(768L * 3072 * 4, naiveMoment.Bytes);
        // Factored second moment: 768 + 3072 floats, in both.
        Assert.Equal((32L * 3072 + 768 + 3072) * 4, flora.StateBytes);
        Assert.Equal((768L * 3072 + 768 + 3072) * 4, naive.StateBytes);
        Assert.Contains("compressed r x m", flora.StateOf(p).ToString());
    }

    [Fact]
    public void Ineligible_parameters_keep_naive_momentum()
    {
        using var cpu = TestUtil.Cpu();
        using var embedding = new Parameter(cpu, "wte", cpu.Allocate(new Shape(500, 16), MemoryTag.Parameters)); // aspect ratio > 4
        using var bias = new Parameter(cpu, "b", cpu.Allocate(new Shape(16), MemoryTag.Parameters));
        using var small = new Parameter(cpu, "tiny", cpu.Allocate(new Shape(16, 8), MemoryTag.Parameters));       // min dim 8 < r
        using var ok = new Parameter(cpu, "attn", cpu.Allocate(new Shape(16, 32), MemoryTag.Parameters));
        using var flora = new FloraAdafactor(cpu, [embedding, bias, small, ok], 0.01f, rank: 12);
        Assert.Equal(new Shape(500, 16), flora.StateOf(embedding).Tensors.Single(t => t.Name == "exp_avg").Shape);
        Assert.Equal(new Shape(16), flora.StateOf(bias).Tensors.Single(t => t.Name == "exp_avg").Shape);
        Assert.Equal(new Shape(16, 8), flora.StateOf(small).Tensors.Single(t => t.Name == "exp_avg").Shape);
        Assert.Equal(new Shape(12, 32), flora.StateOf(ok).Tensors.Single(t => t.Name == "exp_avg").Shape);
    }

    [Fact]
    public void Flora_with_adam_second_moment_compresses_the_first_moment()
    {
        using var cpu = TestUtil.Cpu();
        using var p = NewParameter(cpu, "w", 64, 96, 1);
        using var adam = new AdamW(cpu, [p], 1e-3f, momentum: MomentumOptions.Flora(8));
        Assert.Equal(new Shape(8, 96), adam.StateOf(p).Tensors.Single(t => t.Name == "exp_avg").Shape); // 64 < 96: rows compressed
        using var g = TestUtil.Random(cpu, 3, 0.1f, 64, 96);
        float[] before = TestUtil.ToArray(p.Value);
        adam.Update(p, g);
        float[] after = TestUtil.ToArray(p.Value);
        Assert.NotEqual(before, after);
        Assert.All(after, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void Official_variant_yields_the_raw_update_mixed_with_decompressed_history()
    {
        // First step (M = 0): official yields (1 - beta) u exactly; the paper's variant yields (1 - beta) u A^T A.
        using var cpu = TestUtil.Cpu();
        using var p = NewParameter(cpu, "w", 8, 8, 1);
        using var state = new ParameterState(cpu, p);
        using var scratch = new MomentumScratch(cpu, 4);
        var official = Momentum.Create(cpu, MomentumOptions.Flora(4, 0.9f, 100, FloraVariant.Official), p, state, scratch)!;
        using var u = TestUtil.Random(cpu, 4, 1, 8, 8);
        float[] raw = TestUtil.ToArray(u);
        float[] y = TestUtil.ToArray(official.Apply(u, 0));
        for (int i = 0; i < raw.Length; i++) Assert.Equal(0.1f * raw[i], y[i], 1e-6f);
    }
}
