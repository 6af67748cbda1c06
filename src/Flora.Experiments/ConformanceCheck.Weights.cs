using Flora.Backends;
using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Experiments;

/// <summary>The conformance rows of bf16 weights (issue 12, item 5).</summary>
public static partial class ConformanceCheck
{
    /// <summary>
    /// Stochastic rounding bit for bit (both kernels: eight elements per thread, and any length or alignment); the
    /// conversions; products, embeddings and the fused head reading bf16 weights against the CPU on the same bf16 values;
    /// optimizer steps on bf16 weights (the same rounding bits: values differ only where the fp32 results, which differ in
    /// their last bits, straddle a threshold); a few training steps with bf16 weights on both backends.
    /// </summary>
    /// <remarks>
    /// <paramref name="gpu"/> is the backend under test, <paramref name="device"/> its device name for the training runs;
    /// the tests pass a second CPU backend to check the check itself.
    /// </remarks>
    internal static void WeightRows(IBackend cpu, IBackend gpu, string device, GemmPrecision precision, double gemmTolerance, Action<string, double, double, string> add)
    {
        var random = new Random(20261207);
        float[] Rand(int n, float scale = 1f) => Enumerable.Range(0, n).Select(_ => (float)((random.NextDouble() * 2 - 1) * scale)).ToArray();

        // ---- stochastic rounding: values of every magnitude, infinities and NaNs
        const int N = 1_000_008;
        float[] values = Enumerable.Range(0, N).Select(i => i % 9973 == 5 ? float.NaN : i % 9973 == 6 ? float.NegativeInfinity
            : (float)((random.NextDouble() - 0.5) * Math.Pow(2, random.Next(-60, 60)))).ToArray();
        foreach (var (offset, count, what) in new[] { (0, N, "1,000,008 values, eight per thread"), (3, 100_003, "100,003 values at an odd offset") })
        {
            const ulong seed = 0x5EED_B16F_0001UL;
            ushort[] Round(IBackend b)
            {
                using var x = b.Allocate(new Shape(N), MemoryTag.Scratch);
                b.Upload(values, x);
                using var y = b.Allocate(new Shape(N), MemoryTag.Scratch, DType.BFloat16);
                b.StochasticRound(x.View(new Shape(count), offset), y.View(new Shape(count), offset), seed);
                return Bits(y).Skip(offset).Take(count).ToArray();
            }
            add($"StochasticRound ({what})", Round(cpu).Zip(Round(gpu)).Count(p => p.First != p.Second), 0, "values differing in any bit");
        }
        {
            // Adafactor's last pass on a bf16 weight (no fp32 copy) against copy, update and rounding on the same backend:
            // the same sums, coefficients and random bits, so the same bits.
            const int Count = 100_008;
            float[] w = Rand(Count, 0.05f), u = Rand(Count, 0.01f);
            foreach (var (offset, count, what) in new[] { (0, Count, "eight per thread"), (3, 10_001, "10,001 values at an odd offset") })
            {
                const ulong seed = 0x5EED_B16F_0002UL;
                foreach (var (b, name) in new[] { (gpu, device), (cpu, "cpu") })
                {
                    using var fused = Bf16(b, w, [Count]);
                    using var reference = Bf16(b, w, [Count]);
                    using var ut = b.Allocate(new Shape(Count), MemoryTag.Scratch);
                    b.Upload(u, ut);
                    using var wide = b.Allocate(new Shape(count), MemoryTag.Scratch);
                    Tensor f = fused.View(new Shape(count), offset), r = reference.View(new Shape(count), offset), uv = ut.View(new Shape(count), offset);
                    for (int step = 0; step < 2; step++)
                    {
                        b.AdafactorUpdateRounded(f, uv, 1e-2f, 1e-3f, 1f, 0.1f, scaleParameter: true, seed + (ulong)step);
                        b.Copy(r, wide);
                        b.AdafactorUpdate(wide, uv, 1e-2f, 1e-3f, 1f, 0.1f, scaleParameter: true);
                        b.StochasticRound(wide, r, seed + (ulong)step);
                    }
                    add($"AdafactorUpdateRounded on {name} ({what}, 2 steps) against copy, AdafactorUpdate, StochasticRound",
                        Bits(fused).Zip(Bits(reference)).Count(p => p.First != p.Second), 0, "values differing in any bit");
                }
            }
        }
        {
            // Conversions and fills: exact.
            ushort[] Convert(IBackend b)
            {
                using var x = b.Allocate(new Shape(100_003), MemoryTag.Scratch);
                b.Upload(values.AsSpan(0, 100_003), x);
                using var h = b.Allocate(new Shape(100_003), MemoryTag.Scratch, DType.BFloat16);
                b.Copy(x, h);                                                           // to nearest even
                using var wide = b.Allocate(new Shape(100_003), MemoryTag.Scratch);
                b.Copy(h, wide);                                                        // exact
                using var again = b.Allocate(new Shape(100_003), MemoryTag.Scratch, DType.BFloat16);
                b.Copy(wide, again);
                using var filled = b.Allocate(new Shape(1001), MemoryTag.Scratch, DType.BFloat16);
                b.Fill(filled, 0.1f);
                using var gaussian = b.Allocate(new Shape(100_003), MemoryTag.Scratch, DType.BFloat16);
                b.FillGaussian(gaussian, 0xF10A_2026UL, 0.02f);
                return [.. Bits(h), .. Bits(again), .. Bits(filled), .. Bits(gaussian)];
            }
            add("Copy fp32 <-> bf16, Fill and FillGaussian into bf16", Convert(cpu).Zip(Convert(gpu)).Count(p => p.First != p.Second), 0, "values differing in any bit");
        }

        // ---- products reading a bf16 weight: y = x W^T (+ b), dx = dy W, dW = dy^T x; the CPU multiplies the same bf16 values in fp32
        {
            const int T = 301, In = 257, Out = 193;
            float[] x = Rand(T * In), dy = Rand(T * Out), w = Rand(Out * In, 0.1f), bias = Rand(Out);
            float[][] Products(IBackend b)
            {
                using var xt = Up(b, x, [T, In]); using var dyt = Up(b, dy, [T, Out]); using var bt = Up(b, bias, [Out]);
                using var wt = Bf16(b, w, [Out, In]);
                using var y = b.Allocate(new Shape(T, Out), MemoryTag.Scratch); using var yb = b.Allocate(new Shape(T, Out), MemoryTag.Scratch);
                using var dx = b.Allocate(new Shape(T, In), MemoryTag.Scratch); using var gram = b.Allocate(new Shape(Out, Out), MemoryTag.Scratch);
                b.MatMul(xt, false, wt, true, y);
                b.MatMulBias(xt, false, wt, true, yb, bt);
                using (b.ReuseOperand(dyt, sumRows: true)) b.MatMul(dyt, false, wt, false, dx);
                b.MatMul(wt, false, wt, true, gram);                                    // both operands the same bf16 tensor
                return [Host(y), Host(yb), Host(dx), Host(gram)];
            }
            float[][] c = Products(cpu), g = Products(gpu);
            add($"MatMul, MatMulBias with a bf16 weight (x W^T, x W^T + b, dy W, W W^T; {precision})", c.Zip(g, (a, z) => RelativeError(a, z)).Max(), Math.Max(2e-5, gemmTolerance), "relative");
        }
        {
            int[] ids = Enumerable.Range(0, 513).Select(_ => random.Next(97)).ToArray();
            float[] table = Rand(97 * 65);
            float[] Lookup(IBackend b)
            {
                using var t = Bf16(b, table, [97, 65]);
                using var i = b.Allocate(new Shape(ids.Length), MemoryTag.Scratch, DType.Int32);
                b.Upload(ids, i);
                using var o = b.Allocate(new Shape(ids.Length, 65), MemoryTag.Scratch);
                b.EmbeddingForward(t, i, o);
                return Host(o);
            }
            add("EmbeddingForward from a bf16 table", RelativeError(Lookup(cpu), Lookup(gpu)), 0, "relative");
        }
        // The fused head with a bf16 weight: a vocabulary that needs padding (50,257) and an aligned one (32,000, read in place).
        foreach (int V in new[] { 50_257, 32_000 })
        {
            const int R = 1031, C = 64;
            float[] hx = Rand(R * C), w = Rand(V * C, 0.5f), dw0 = Rand(V * C, 0.01f);
            int[] targets = Enumerable.Range(0, R).Select(i => i % 7 == 3 ? -1 : random.Next(V)).ToArray();
            float[][] Head(IBackend b)
            {
                using var xt = Up(b, hx, [R, C]); using var wt = Bf16(b, w, [V, C]);
                using var t = b.Allocate(new Shape(R), MemoryTag.Scratch, DType.Int32);
                b.Upload(targets, t);
                using var dx = b.Allocate(new Shape(R, C), MemoryTag.Scratch); using var dw = Up(b, dw0, [V, C]);
                var (sum, count) = b.LinearCrossEntropy(xt, wt, t, 1f / R, dx, dw, 0.5f, 1f);
                return [[(float)sum, count], Host(dx), Host(dw)];
            }
            float[][] c = Head(cpu), g = Head(gpu);
            add($"LinearCrossEntropy with a bf16 weight, V = {V:N0} (loss, dx, dW)", c.Zip(g, (a, z) => RelativeError(a, z)).Max(),
                precision == GemmPrecision.Fp32 ? 2e-5 : Math.Max(2e-3, gemmTolerance), "relative");
        }

        // ---- optimizer steps on bf16 weights through Optimizer.Update: fp32 working copy, stochastic rounding
        // flora-paper: Algorithm 2 as printed, whose update is a low-rank product written into the fp32 copy.
        foreach (string optimizer in new[] { "adamw", "adafactor", "flora", "flora-paper", "sgd" })
        {
            const int Rows = 96, Cols = 160, Updates = 3;
            float[] w = Rand(Rows * Cols, 0.05f), grad = Rand(Rows * Cols, 0.01f);
            ushort[] Step(IBackend b)
            {
                using var value = Bf16(b, w, [Rows, Cols]);
                var parameter = new Parameter(b, "layer.weight", value);
                string name = optimizer.Replace("-paper", "");
                var spec = new OptimizerSpec
                {
                    Name = name, LearningRate = OptimizerSpec.DefaultLearningRate(name), Rank = 16, Kappa = 2,
                    Variant = optimizer.EndsWith("-paper", StringComparison.Ordinal) ? FloraVariant.Paper : FloraVariant.Official,
                };
                using var opt = spec.Create(b, [parameter]);
                opt.RoundingSeed = 99;
                using var g = b.Allocate(new Shape(Rows, Cols), MemoryTag.Scratch);
                for (int step = 0; step < Updates; step++)
                {
                    b.Upload(grad, g);
                    opt.Update(parameter, g);
                }
                return Bits(value);
            }
            // The same random bits on both: a value differs only where the fp32 results straddle a rounding threshold
            // (rare, more so with exact products); other seeds would make about a third of the values differ.
            ushort[] c = Step(cpu), g = Step(gpu);
            add($"{optimizer}, {Updates} steps on a bf16 weight (fp32 copy, stochastic rounding): share of values differing", (double)c.Zip(g).Count(p => p.First != p.Second) / c.Length,
                precision switch { GemmPrecision.Fp32 => 0.005, GemmPrecision.Tf32 => 0.05, _ => 0.15 }, "share of values");
            // At most one step per update: with the same random bits, fp32 results a hair apart round at most one step
            // apart, and a weight already d steps apart enters the next update d steps apart, so after 3 updates the bound
            // is 3 (reached on an H100 by flora-paper, whose update is a bf16 product, 2026-12-07); a wrong update is
            // about 2^7 steps at its own scale.
            add($"{optimizer}, {Updates} steps on a bf16 weight: largest distance in bf16 steps (at the value's or the update's scale; one per update)",
                StepDistance(c, g, w.Select(BFloat16.RoundToNearestEven).ToArray()), Updates, "bf16 steps");
        }

        // ---- FLORA's official step closed by Adafactor's update as one op (AdafactorFloraOfficialStep): on a GPU in bf16
        // fused kernels with ||y|| from r-space (columns and rows compressed), and the op by op path where columns are not a
        // multiple of 8 or the matrix is under 2^23 elements. The update is compared as the change of p; the clip is active
        // (RMS(y) above the threshold of 1).
        foreach (var (n, m, columns) in new[] { (4096, 2048, true), (2048, 4096, false), (66, 130, true) })
        {
            const int r = 8;
            const ulong Seed = 0x5EED_F10AUL;
            float[] g0 = Rand(n * m, 0.1f), rowMoments = Rand(n).Select(v => Math.Abs(v) * 0.01f + 1e-4f).ToArray(), columnMoments = Rand(m).Select(v => Math.Abs(v) * 0.01f + 1e-4f).ToArray();
            float[] w = Rand(n * m, 0.05f).Select(v => BFloat16.ToSingle(BFloat16.RoundToNearestEven(v))).ToArray(), m0 = Rand(columns ? n * r : r * m, 0.5f);
            float[] a0 = Rand(r * (columns ? m : n), 0.35f).Select(v => BFloat16.ToSingle(BFloat16.RoundToNearestEven(v))).ToArray();   // the same A on both
            // One step from p = w (Float32, or BFloat16: w is bf16-exact): p after (widened), M after, and p's bits.
            (float[] P, float[] M, ushort[] Bits) Step(IBackend b, bool bf16)
            {
                using var gt = Up(b, g0, [n, m]); using var rt = Up(b, rowMoments, [n]); using var ct = Up(b, columnMoments, [m]);
                using var mt = Up(b, m0, columns ? [n, r] : [r, m]); using var at = Up(b, a0, [r, columns ? m : n]);
                using var pt = bf16 ? Bf16(b, w, [n, m]) : Up(b, w, [n, m]);
                using var compressed = b.Allocate(mt.Shape, MemoryTag.Scratch);
                using var rounded = b.ProductOperandType == DType.Float32 ? null : b.Allocate(new Shape(n, m), MemoryTag.Scratch, b.ProductOperandType);
                b.AdafactorFloraOfficialStep(pt, gt, rt, ct, mt, at, columns, rounded, compressed, 0.9f, 0.03f, 1e-3f, 1f, 0.1f, true, Seed);
                return (Wide(pt), Host(mt), bf16 ? Bits(pt) : []);
            }
            var (c, z) = (Step(cpu, false), Step(gpu, false));
            string what = $"{n} x {m}, {(columns ? "columns" : "rows")} compressed{(n * m >= 1 << 23 ? "" : ", op by op")}";
            float[] Change(float[] after) => after.Zip(w, (x, y) => x - y).ToArray();
            add($"AdafactorFloraOfficialStep ({what}): change of p, and M", Math.Max(RelativeError(Change(c.P), Change(z.P)), RelativeError(c.M, z.M)),
                Math.Max(2e-5, gemmTolerance), "relative");
            // A bf16 p: the fp32 step above on the same values, rounded stochastically with the same seed, bit for bit.
            foreach (var (b, name, fp32) in new[] { (gpu, device, z), (cpu, "cpu", c) })
            {
                ushort[] fused = Step(b, true).Bits;
                using var wide = Up(b, fp32.P, [n * m]);
                using var rounded = b.Allocate(new Shape(n * m), MemoryTag.Scratch, DType.BFloat16);
                b.StochasticRound(wide, rounded, Seed);
                add($"AdafactorFloraOfficialStep on {name} ({what}): a bf16 p against the fp32 step rounded with the same bits",
                    fused.Zip(Bits(rounded)).Count(p => p.First != p.Second), 0, "values differing in any bit");
            }
        }

        // ---- a few training steps with bf16 weights on both backends
        add("gpt-tiny, bf16 weights, Flora r=8, compressed accumulation, 4 steps: training losses (fp32 products)",
            EndToEndWeights(device, "fp32", lomo: false), 2e-3, "relative");
        if (precision == GemmPrecision.Bf16)
            add("gpt-tiny, bf16 weights, Flora r=8, LOMO, 4 steps: training losses (bf16 products on the GPU)", EndToEndWeights(device, "bf16", lomo: true), 2e-2, "relative");
    }

    /// <summary>A bf16 tensor of <paramref name="data"/> rounded to nearest even (the same bits on every backend).</summary>
    private static Tensor Bf16(IBackend b, float[] data, int[] shape)
    {
        var t = b.Allocate(new Shape(shape), MemoryTag.Scratch, DType.BFloat16);
        t.CopyFrom<ushort>(data.Select(BFloat16.RoundToNearestEven).ToArray());
        return t;
    }

    private static ushort[] Bits(Tensor t)
    {
        var bits = new ushort[t.Count];
        t.CopyTo<ushort>(bits);
        return bits;
    }

    /// <summary>
    /// The largest difference between two bf16 tensors in bf16 steps: |a - b| over the step of bf16 (2^(e - 7) for a
    /// magnitude in [2^e, 2^(e+1))) at the largest of |a|, |b|, 1/16 of a's RMS and, given the values the updates
    /// started from, the start (each rounding happened on the way from it) and the update itself (|a - start|, |b - start|).
    /// The RMS floor keeps values near zero from counting every step through zero: +1e-6 against -1e-6 are 27,000 bit
    /// patterns apart but a tiny fraction of one step at the weights' scale (seen on an H100:
    /// docs/results/evidence/gpu-2026-12-07-h100). The update term is there because bf16 products err relative to the
    /// product, not to the weight it lands on: Algorithm 2's update is one product (lr M A) that can be as large as the
    /// weight, so a weight it brings near zero carries an error of about 2^-8 of the update, several steps at the
    /// weight's own scale (3.75 on an H100, 2026-12-07) yet half a step at the update's. A wrong update still differs
    /// by about the update itself, 2^7 steps at that scale.
    /// </summary>
    internal static double StepDistance(ushort[] a, ushort[] b, ushort[]? start = null)
    {
        if (a.Length != b.Length || (start is not null && start.Length != a.Length)) return double.PositiveInfinity;
        if (a.Length == 0) return 0;
        double rms = Math.Sqrt(a.Average(h => { double v = BFloat16.ToSingle(h); return v * v; }));
        double floor = Math.Max(rms / 16, double.Epsilon);
        double worst = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double x = BFloat16.ToSingle(a[i]), y = BFloat16.ToSingle(b[i]);
            if (x == y) continue;
            if (!double.IsFinite(x) || !double.IsFinite(y)) return double.PositiveInfinity;
            double magnitude = Math.Max(Math.Max(Math.Abs(x), Math.Abs(y)), floor);
            if (start is not null)
            {
                double s = BFloat16.ToSingle(start[i]);
                magnitude = Math.Max(magnitude, Math.Max(Math.Abs(s), Math.Max(Math.Abs(x - s), Math.Abs(y - s))));
            }
            double step = Math.Pow(2, Math.Floor(Math.Log2(magnitude)) - 7);
            worst = Math.Max(worst, Math.Abs(x - y) / step);
        }
        return worst;
    }

    /// <summary>As <see cref="EndToEnd"/> with bf16 weights (stochastic rounding) on both backends.</summary>
    private static double EndToEndWeights(string device, string precision, bool lomo)
    {
        string root = Path.Combine(Path.GetTempPath(), $"flora-check-weights-{Environment.ProcessId}");
        try
        {
            double[] Losses(string name, string backend)
            {
                var options = new TrainOptions
                {
                    Model = "gpt-tiny", Tokenizer = "bpe:300", SequenceLength = 32, BatchSize = 4, Steps = 4, WarmupSteps = 1,
                    EvalEvery = 100, CheckpointEvery = 100, Device = backend, Precision = precision, Weights = "bf16",
                    Optimizer = new OptimizerSpec { Name = "flora", LearningRate = 0.03f, Rank = 8, Kappa = 2 },
                    Accumulation = lomo ? AccumulationMode.None : AccumulationMode.Compressed, AccumulationSteps = lomo ? 1 : 2, Lomo = lomo,
                    OutputDirectory = Path.Combine(root, name),
                };
                using var trainer = new Trainer(options);
                trainer.Run();
                return MetricsLog.ReadCsv(Path.Combine(options.OutputDirectory, MetricsLog.CsvFile)).Select(r => r.TrainLoss).ToArray();
            }
            double[] cpu = Losses("reference", "cpu"), gpu = Losses("device", device);
            return cpu.Zip(gpu, (a, b) => Math.Abs(a - b) / Math.Abs(a)).Max();
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }
}
