using Flora.Backends;
using Flora.Backends.Cpu;
using Flora.Backends.Cuda;
using Flora.Optim;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Experiments;

/// <summary>One op compared between the CPU and the device: its error, the tolerance it must meet, and the verdict.</summary>
public sealed record ConformanceRow(string Op, double Error, double Tolerance, string Metric)
{
    public bool Passed => Error <= Tolerance;
}

/// <summary>
/// The conformance suite of a device backend: every op of the kernel surface on random inputs (odd
/// sizes, to reach the edges of tiles and grids), run on the CPU and on the device and compared.
/// Error = max |device - reference| / max |reference| over each output (normwise relative); matrix
/// products against a float64 reference on the host; the Philox fill bit for bit. Then a few training
/// steps of a tiny GPT on both, with fp32 products, compared step by step.
/// </summary>
public static partial class ConformanceCheck
{
    public static IReadOnlyList<ConformanceRow> Run(GemmPrecision precision, IProgress<string>? progress = null)
    {
        var rows = new List<ConformanceRow>();
        using var cpu = new CpuBackend(new MemoryLedger());
        using var gpu = CudaBackend.Create(new MemoryLedger(), precision);
        var random = new Random(20261122);
        float[] Rand(int n, float scale = 1f) => Enumerable.Range(0, n).Select(_ => (float)((random.NextDouble() * 2 - 1) * scale)).ToArray();
        int[] Ints(int n, int max, bool ignoreSome = false) => Enumerable.Range(0, n).Select(i => ignoreSome && i % 7 == 3 ? -1 : random.Next(max)).ToArray();

        void Add(string op, double error, double tolerance, string metric = "relative")
        {
            rows.Add(new ConformanceRow(op, error, tolerance, metric));
            progress?.Report(op);
        }

        // Runs body on both backends with the same host inputs; returns the outputs named by the body.
        (float[][] Cpu, float[][] Gpu) Both(Func<IBackend, float[][]> body) => (body(cpu), body(gpu));

        void Compare(string op, Func<IBackend, float[][]> body, double tolerance)
        {
            var (c, g) = Both(body);
            Add(op, c.Zip(g, (a, b) => RelativeError(a, b)).Max(), tolerance);
        }

        double gemmTolerance = precision switch { GemmPrecision.Fp32 => 1e-5, GemmPrecision.Tf32 => 4e-3, _ => 3e-2 };
        const double Exact = 0, Ew = 2e-6, Norm = 2e-5, Attn = 1e-4;

        // ---- random: bit for bit
        {
            var (c, g) = Both(b => { using var t = b.Allocate(new Shape(1_000_003), MemoryTag.Scratch); b.FillGaussian(t, 0xF10A_2024UL, 0.37f); return [Host(t)]; });
            int differing = c[0].Zip(g[0]).Count(p => BitConverter.SingleToInt32Bits(p.First) != BitConverter.SingleToInt32Bits(p.Second));
            Add("FillGaussian (Philox4x32-10, 1,000,003 values)", differing, Exact, "values differing in any bit");
        }

        {
            // bf16 projections: the fp32 values rounded to nearest even, bit for bit.
            using var t = cpu.Allocate(new Shape(100_003), MemoryTag.Scratch);
            cpu.FillGaussian(t, 0xF10A_2025UL, 0.0625f);
            ushort[] expected = Host(t).Select(RoundToBFloat16).ToArray();
            using var t16 = gpu.Allocate(new Shape(100_003), MemoryTag.Scratch, DType.BFloat16);
            gpu.FillGaussian(t16, 0xF10A_2025UL, 0.0625f);
            int differing = expected.Zip(gpu.DownloadBFloat16(t16)).Count(p => p.First != p.Second);
            Add("FillGaussian into bf16 (100,003 values, = fp32 rounded to nearest even)", differing, Exact, "values differing in any bit");
        }

        // ---- matrix products against float64: small ones and a big one
        foreach (var (ta, tb, m, k, n) in new[] { (false, false, 131, 257, 93), (true, false, 131, 257, 93), (false, true, 131, 257, 93), (true, true, 131, 257, 93),
                     (false, true, 1031, 2053, 1027) })
        {
            float[] a = Rand(m * k), bm = Rand(k * n), c0 = Rand(m * n);
            double[] reference = Gemm64(a, bm, c0, m, k, n, ta, tb, 0.75f, 0.5f);
            var g = Run(gpu, be =>
            {
                using var at = Up(be, a, ta ? [k, m] : [m, k]); using var bt = Up(be, bm, tb ? [n, k] : [k, n]); using var ct = Up(be, c0, [m, n]);
                be.MatMul(at, ta, bt, tb, ct, 0.75f, 0.5f);
                return [Host(ct)];
            });
            Add($"MatMul{(ta ? " A^T" : "")}{(tb ? " B^T" : "")} {m}x{n}x{k} ({precision}) vs float64", RelativeError(reference.Select(x => (float)x).ToArray(), g[0]), gemmTolerance);
        }

        // ---- element-wise
        const int N = 80_021;
        float[] x = Rand(N, 3), y0 = Rand(N, 3);
        Compare("Add", b => { using var p = Up(b, x, [N]); using var q = Up(b, y0, [N]); using var r = b.Allocate(new Shape(N), MemoryTag.Scratch); b.Add(p, q, r); return [Host(r)]; }, Ew);
        foreach (float beta in new[] { 0f, 1f, 0.5f })
            Compare($"Axpby (beta {beta})", b => { using var p = Up(b, x, [N]); using var q = Up(b, y0, [N]); b.Axpby(-0.3f, p, beta, q); return [Host(q)]; }, Ew);
        Compare("Scale", b => { using var p = Up(b, x, [N]); b.Scale(p, 1.7f); return [Host(p)]; }, Ew);
        Compare("Fill", b => { using var p = Up(b, x, [N]); b.Fill(p, 4.25f); return [Host(p)]; }, Exact);
        Compare("AddBias", b => { using var p = Up(b, x[..(301 * 233)], [301, 233]); using var q = Up(b, y0[..233], [233]); b.AddBias(p, q); return [Host(p)]; }, Ew);
        Compare("SumRows", b => { using var p = Up(b, x[..(601 * 117)], [601, 117]); using var q = Up(b, y0[..117], [117]); b.SumRows(p, q, 0.5f, 2f); return [Host(q)]; }, Norm);
        Compare("Relu, ReluBackward", b =>
        {
            using var p = Up(b, x, [N]); using var r = b.Allocate(new Shape(N), MemoryTag.Scratch); using var d = Up(b, y0, [N]); using var dx = b.Allocate(new Shape(N), MemoryTag.Scratch);
            b.Relu(p, r); b.ReluBackward(r, d, dx); return [Host(r), Host(dx)];
        }, Ew);
        Compare("Gelu, GeluBackward", b =>
        {
            using var p = Up(b, x, [N]); using var r = b.Allocate(new Shape(N), MemoryTag.Scratch); using var d = Up(b, y0, [N]); using var dx = b.Allocate(new Shape(N), MemoryTag.Scratch);
            b.Gelu(p, r); b.GeluBackward(p, d, dx); return [Host(r), Host(dx)];
        }, 2e-5);
        Compare("SwiGlu, SwiGluBackward (separate gate and up)", b =>
        {
            using var gate = Up(b, x[..(53 * 97)], [53, 97]); using var up = Up(b, x[(53 * 97)..(2 * 53 * 97)], [53, 97]);
            using var r = b.Allocate(new Shape(53, 97), MemoryTag.Scratch); using var d = Up(b, y0[..(53 * 97)], [53, 97]);
            using var dg = b.Allocate(new Shape(53, 97), MemoryTag.Scratch); using var du = b.Allocate(new Shape(53, 97), MemoryTag.Scratch);
            b.SwiGlu(gate, up, r); b.SwiGluBackward(gate, up, d, dg, du); return [Host(r), Host(dg), Host(du)];
        }, 2e-5);
        Compare("Dropout (p = 0.3, Philox mask)", b => { using var p = Up(b, x, [N]); using var r = b.Allocate(new Shape(N), MemoryTag.Scratch); b.Dropout(p, r, 0.3f, 77); return [Host(r)]; }, Ew);
        Compare("Rotary, inverse", b =>
        {
            using var p = Up(b, x[..(4 * 9 * 40)], [4 * 9, 40]);
            b.Rotary(p, 4, 2, 16, 9, 10000f, false); float[] rotated = Host(p);
            b.Rotary(p, 4, 2, 16, 9, 10000f, true); return [rotated, Host(p)];
        }, 1e-5);
        // Llama 3's rope scaling: with theta 500000, head dimension 16 and 64 original positions the 8 frequencies fall in
        // all three regimes (kept, smoothed, divided by the factor); 300 positions make the angles large.
        Compare("Rotary with llama3 rope scaling, inverse", b =>
        {
            var scaling = new RopeScaling(8, 1, 4, 64);
            using var p = Up(b, x[..(2 * 300 * 48)], [2 * 300, 48]);
            b.Rotary(p, 8, 2, 16, 300, 500000f, false, scaling); float[] rotated = Host(p);
            b.Rotary(p, 8, 2, 16, 300, 500000f, true, scaling); return [rotated, Host(p)];
        }, 1e-5);

        // ---- embeddings, norms
        int[] ids = Ints(513, 97);
        float[] table = Rand(97 * 65), dEmbedding = Rand(513 * 65);
        Compare("EmbeddingForward", b => { using var t = Up(b, table, [97, 65]); using var i = UpInts(b, ids); using var o = b.Allocate(new Shape(513, 65), MemoryTag.Scratch); b.EmbeddingForward(t, i, o); return [Host(o)]; }, Exact);
        Compare("EmbeddingBackward", b =>
        {
            using var d = Up(b, dEmbedding, [513, 65]); using var i = UpInts(b, ids); using var t = Up(b, table, [97, 65]);
            b.EmbeddingBackward(d, i, t, 0.5f); return [Host(t)];
        }, Norm);
        float[] nx = Rand(257 * 771, 2), gamma = Rand(771), betaV = Rand(771), ndy = Rand(257 * 771);
        Compare("LayerNormForward (y, mean, rstd)", b =>
        {
            using var xt = Up(b, nx, [257, 771]); using var g = Up(b, gamma, [771]); using var be = Up(b, betaV, [771]);
            using var yt = b.Allocate(new Shape(257, 771), MemoryTag.Scratch); using var mu = b.Allocate(new Shape(257), MemoryTag.Scratch); using var rs = b.Allocate(new Shape(257), MemoryTag.Scratch);
            b.LayerNormForward(xt, g, be, yt, mu, rs, 1e-5f); return [Host(yt), Host(mu), Host(rs)];
        }, Norm);
        Compare("LayerNormBackward (dx, dgamma, dbeta)", b =>
        {
            using var xt = Up(b, nx, [257, 771]); using var g = Up(b, gamma, [771]); using var be = Up(b, betaV, [771]); using var d = Up(b, ndy, [257, 771]);
            using var yt = b.Allocate(new Shape(257, 771), MemoryTag.Scratch); using var mu = b.Allocate(new Shape(257), MemoryTag.Scratch); using var rs = b.Allocate(new Shape(257), MemoryTag.Scratch);
            using var dx = b.Allocate(new Shape(257, 771), MemoryTag.Scratch); using var dg = b.Allocate(new Shape(771), MemoryTag.Scratch); using var db = b.Allocate(new Shape(771), MemoryTag.Scratch);
            b.LayerNormForward(xt, g, be, yt, mu, rs, 1e-5f); b.LayerNormBackward(d, xt, mu, rs, g, dx, dg, db); return [Host(dx), Host(dg), Host(db)];
        }, 5e-5);
        // 768 and 1,024 columns take the kernels that keep a row in registers (771 above: the general ones).
        foreach (int w in new[] { 768, 1024 })
        {
            float[] wx = Rand(129 * w, 2), wg = Rand(w), wb = Rand(w), wdy = Rand(129 * w), wres = Rand(129 * w);
            Compare($"LayerNorm, {w} columns (rows in registers): forward, backward with and without a residual gradient", b =>
            {
                using var xt = Up(b, wx, [129, w]); using var g = Up(b, wg, [w]); using var be = Up(b, wb, [w]); using var d = Up(b, wdy, [129, w]);
                using var res = Up(b, wres, [129, w]);
                using var yt = b.Allocate(new Shape(129, w), MemoryTag.Scratch); using var mu = b.Allocate(new Shape(129), MemoryTag.Scratch); using var rs = b.Allocate(new Shape(129), MemoryTag.Scratch);
                using var dx = b.Allocate(new Shape(129, w), MemoryTag.Scratch); using var dx2 = b.Allocate(new Shape(129, w), MemoryTag.Scratch);
                using var dg = b.Allocate(new Shape(w), MemoryTag.Scratch); using var db = b.Allocate(new Shape(w), MemoryTag.Scratch);
                b.LayerNormForward(xt, g, be, yt, mu, rs, 1e-5f); b.LayerNormBackward(d, xt, mu, rs, g, dx, dg, db); b.LayerNormBackward(d, xt, mu, rs, g, dx2, dg, db, res);
                return [Host(yt), Host(mu), Host(rs), Host(dx), Host(dx2), Host(dg), Host(db)];
            }, 5e-5);
        }
        // Over 1,024 columns, a multiple of 4 (the Llama family's widths): a block per row, and the backward's weight gradient
        // summed in the same pass (1,540: 385 float4s, a partial last round of threads).
        foreach (int w in new[] { 1540, 4096 })
        {
            float[] wx = Rand(97 * w, 2), wg = Rand(w), wdy = Rand(97 * w), wres = Rand(97 * w);
            Compare($"RmsNorm, {w} columns (a block per row): forward, backward with and without a residual gradient", b =>
            {
                using var xt = Up(b, wx, [97, w]); using var g = Up(b, wg, [w]); using var d = Up(b, wdy, [97, w]); using var res = Up(b, wres, [97, w]);
                using var yt = b.Allocate(new Shape(97, w), MemoryTag.Scratch); using var rs = b.Allocate(new Shape(97), MemoryTag.Scratch);
                using var dx = b.Allocate(new Shape(97, w), MemoryTag.Scratch); using var dx2 = b.Allocate(new Shape(97, w), MemoryTag.Scratch);
                using var dg = b.Allocate(new Shape(w), MemoryTag.Scratch); using var dg2 = b.Allocate(new Shape(w), MemoryTag.Scratch);
                b.RmsNormForward(xt, g, yt, rs, 1e-5f); b.RmsNormBackward(d, xt, rs, g, dx, dg); b.RmsNormBackward(d, xt, rs, g, dx2, dg2, res);
                return [Host(yt), Host(rs), Host(dx), Host(dx2), Host(dg), Host(dg2)];
            }, 5e-5);
        }
        Compare("RmsNormForward, RmsNormBackward", b =>
        {
            using var xt = Up(b, nx, [257, 771]); using var g = Up(b, gamma, [771]); using var d = Up(b, ndy, [257, 771]);
            using var yt = b.Allocate(new Shape(257, 771), MemoryTag.Scratch); using var rs = b.Allocate(new Shape(257), MemoryTag.Scratch);
            using var dx = b.Allocate(new Shape(257, 771), MemoryTag.Scratch); using var dg = b.Allocate(new Shape(771), MemoryTag.Scratch);
            b.RmsNormForward(xt, g, yt, rs, 1e-6f); b.RmsNormBackward(d, xt, rs, g, dx, dg); return [Host(yt), Host(rs), Host(dx), Host(dg)];
        }, 5e-5);
        Compare("LayerNormBackward, RmsNormBackward with a block's residual gradient folded into dx", b =>
        {
            using var xt = Up(b, nx, [257, 771]); using var g = Up(b, gamma, [771]); using var be = Up(b, betaV, [771]); using var d = Up(b, ndy, [257, 771]);
            using var res = Up(b, nx, [257, 771]);
            using var yt = b.Allocate(new Shape(257, 771), MemoryTag.Scratch); using var mu = b.Allocate(new Shape(257), MemoryTag.Scratch); using var rs = b.Allocate(new Shape(257), MemoryTag.Scratch);
            using var dx = b.Allocate(new Shape(257, 771), MemoryTag.Scratch); using var dx2 = b.Allocate(new Shape(257, 771), MemoryTag.Scratch);
            using var dg = b.Allocate(new Shape(771), MemoryTag.Scratch); using var db = b.Allocate(new Shape(771), MemoryTag.Scratch);
            b.LayerNormForward(xt, g, be, yt, mu, rs, 1e-5f); b.LayerNormBackward(d, xt, mu, rs, g, dx, dg, db, res);
            b.RmsNormForward(xt, g, yt, rs, 1e-6f); b.RmsNormBackward(d, xt, rs, g, dx2, dg, res);
            return [Host(dx), Host(dx2)];
        }, 5e-5);

        // ---- attention: self (causal and not) from a fused qkv, and cross (Tq != Tk)
        // Head dimensions 64 and 128 take the fused kernels in bf16 mode: 150 positions make three key tiles, the last one partial.
        foreach (var (causal, hd, T) in new[] { (true, 16, 37), (false, 16, 37), (true, 64, 150), (false, 64, 150), (true, 128, 150), (false, 128, 150) })
        {
            const int B = 2, H = 3;
            int C = H * hd;
            float[] qkv = Rand(B * T * 3 * C), dOut = Rand(B * T * C);
            var shape = new AttentionShape(B, H, T, T, hd, causal, 1f / MathF.Sqrt(hd));
            Compare($"Attention {(causal ? "causal" : "full")}, head dim {hd}, T {T}: forward and backward (out, lse, dq, dk, dv)", b =>
            {
                using var t = Up(b, qkv, [B * T, 3 * C]); using var o = b.Allocate(new Shape(B * T, C), MemoryTag.Scratch); using var lse = b.Allocate(new Shape(B, H, T), MemoryTag.Scratch);
                using var d = Up(b, dOut, [B * T, C]); using var dt = b.Allocate(new Shape(B * T, 3 * C), MemoryTag.Scratch);
                b.AttentionForward(shape, new(t, 0), new(t, C), new(t, 2 * C), o, lse);
                b.AttentionBackward(shape, d, new(t, 0), new(t, C), new(t, 2 * C), o, lse, new(dt, 0), new(dt, C), new(dt, 2 * C));
                return [Host(o), Host(lse), Host(dt)];
            }, precision == GemmPrecision.Fp32 ? Attn : gemmTolerance * 2);
        }
        // Grouped-query attention (Llama 3, Qwen2, Mistral): 6 query heads over 2 or 3 key/value heads, separate q, k and
        // v tensors (their own projections), dk and dv summed over each group; head dimensions 64 and 128 take the fused kernels.
        foreach (var (kvHeads, hd, T) in new[] { (2, 16, 37), (3, 16, 37), (2, 64, 150), (3, 64, 150), (2, 128, 150) })
        {
            const int B = 2, H = 6;
            int C = H * hd, Ckv = kvHeads * hd;
            float[] q = Rand(B * T * C), k = Rand(B * T * Ckv), v = Rand(B * T * Ckv), dOut = Rand(B * T * C);
            var shape = new AttentionShape(B, H, T, T, hd, true, 1f / MathF.Sqrt(hd), null, kvHeads);
            Compare($"Attention grouped ({H} query heads over {kvHeads} key/value heads), causal, head dim {hd}, T {T}: forward and backward", b =>
            {
                using var qt = Up(b, q, [B * T, C]); using var kt = Up(b, k, [B * T, Ckv]); using var vt = Up(b, v, [B * T, Ckv]);
                using var o = b.Allocate(new Shape(B * T, C), MemoryTag.Scratch); using var lse = b.Allocate(new Shape(B, H, T), MemoryTag.Scratch);
                using var d = Up(b, dOut, [B * T, C]); using var dq = b.Allocate(new Shape(B * T, C), MemoryTag.Scratch);
                using var dk = b.Allocate(new Shape(B * T, Ckv), MemoryTag.Scratch); using var dv = b.Allocate(new Shape(B * T, Ckv), MemoryTag.Scratch);
                b.AttentionForward(shape, new(qt, 0), new(kt, 0), new(vt, 0), o, lse);
                b.AttentionBackward(shape, d, new(qt, 0), new(kt, 0), new(vt, 0), o, lse, new(dq, 0), new(dk, 0), new(dv, 0));
                return [Host(o), Host(lse), Host(dq), Host(dk), Host(dv)];
            }, precision == GemmPrecision.Fp32 ? Attn : gemmTolerance * 2);
        }
        // Cross attention, and with padded keys (source lengths per batch element: the second one past a whole tile of padding).
        foreach (var (hd, Tq, Tk, lengths) in new (int, int, int, int[]?)[] { (8, 13, 29, null), (64, 70, 133, null), (128, 70, 133, null),
                     (8, 13, 29, [29, 11]), (64, 70, 133, [133, 50]), (128, 70, 133, [133, 50]) })
        {
            const int B = 2, H = 2;
            int C = H * hd;
            float[] q = Rand(B * Tq * C), kv = Rand(B * Tk * 2 * C), dOut = Rand(B * Tq * C);
            var shape = new AttentionShape(B, H, Tq, Tk, hd, false, 1f / MathF.Sqrt(hd), lengths);
            Compare($"Attention cross, head dim {hd}, Tq {Tq}, Tk {Tk}{(lengths is null ? "" : $", key lengths {string.Join("/", lengths)}")}: forward and backward", b =>
            {
                using var qt = Up(b, q, [B * Tq, C]); using var kt = Up(b, kv, [B * Tk, 2 * C]); using var o = b.Allocate(new Shape(B * Tq, C), MemoryTag.Scratch);
                using var lse = b.Allocate(new Shape(B, H, Tq), MemoryTag.Scratch); using var d = Up(b, dOut, [B * Tq, C]);
                using var dq = b.Allocate(new Shape(B * Tq, C), MemoryTag.Scratch); using var dkv = b.Allocate(new Shape(B * Tk, 2 * C), MemoryTag.Scratch);
                b.AttentionForward(shape, new(qt, 0), new(kt, 0), new(kt, C), o, lse);
                b.AttentionBackward(shape, d, new(qt, 0), new(kt, 0), new(kt, C), o, lse, new(dq, 0), new(dkv, 0), new(dkv, C));
                return [Host(o), Host(lse), Host(dq), Host(dkv)];
            }, precision == GemmPrecision.Fp32 ? Attn : gemmTolerance * 2);
        }

        // ---- bf16 mode keeps the activations that only products read in bf16: against a CPU backend that does too
        if (precision == GemmPrecision.Bf16)
        {
            using var cpu16 = new CpuBackend(new MemoryLedger(), GemmPrecision.Bf16);
            ActivationRows(cpu16, gpu, gemmTolerance, Add);
        }

        // ---- loss and metrics
        {
            const int R = 301, V = 1031;
            float[] logits = Rand(R * V, 4);
            int[] targets = Ints(R, V, ignoreSome: true);
            var (c, g) = Both(b =>
            {
                using var l = Up(b, logits, [R, V]); using var t = UpInts(b, targets); using var p = b.Allocate(new Shape(R, V), MemoryTag.Scratch);
                using var d = b.Allocate(new Shape(R, V), MemoryTag.Scratch);
                var (sum, count) = b.SoftmaxCrossEntropy(l, t, p);
                b.SoftmaxCrossEntropyBackward(p, t, d, 1f / count);
                return [[(float)sum, count, b.CountCorrect(l, t)], Host(p), Host(d)];
            });
            Add("SoftmaxCrossEntropy (loss sum, count) and CountCorrect", RelativeError(c[0], g[0]), 1e-6);
            Add("SoftmaxCrossEntropy probabilities and backward", Math.Max(RelativeError(c[1], g[1]), RelativeError(c[2], g[2])), Norm);
        }

        // ---- the fused output projection + loss: 3,001 rows of a GPT-2-sized vocabulary (several chunks, padded rows)
        {
            const int R = 3001, C = 64, V = 50_257;
            float[] hx = Rand(R * C), w = Rand(V * C, 0.5f), dw0 = Rand(V * C, 0.01f);
            int[] targets = Ints(R, V, ignoreSome: true);
            var (c, g) = Both(b =>
            {
                using var xt = Up(b, hx, [R, C]); using var wt = Up(b, w, [V, C]); using var t = UpInts(b, targets);
                using var dx = b.Allocate(new Shape(R, C), MemoryTag.Scratch); using var dw = Up(b, dw0, [V, C]);
                var (lossOnly, _) = b.LinearCrossEntropy(xt, wt, t, 0f, null, null, 0f, 0f);
                var (sum, count) = b.LinearCrossEntropy(xt, wt, t, 1f / R, dx, dw, 0.5f, 1f);
                return [[(float)lossOnly, (float)sum, count], Host(dx), Host(dw)];
            });
            Add("LinearCrossEntropy (loss sums, count)", RelativeError(c[0], g[0]), precision == GemmPrecision.Fp32 ? 1e-5 : 2e-3);
            Add("LinearCrossEntropy dx and dW (accumulating)", Math.Max(RelativeError(c[1], g[1]), RelativeError(c[2], g[2])), Math.Max(Norm, gemmTolerance));
        }

        // ---- a product operand declared reused: converted once, read by two products
        {
            const int m = 2048, k = 1024, n = 1024;
            float[] dy = Rand(m * n), xv = Rand(m * k), wv = Rand(n * k);
            var (c, g) = Both(b =>
            {
                using var d = Up(b, dy, [m, n]); using var xt = Up(b, xv, [m, k]); using var wt = Up(b, wv, [n, k]);
                using var dx = b.Allocate(new Shape(m, k), MemoryTag.Scratch); using var dw = b.Allocate(new Shape(n, k), MemoryTag.Scratch);
                using var db = Up(b, dy[..n], [n]);
                using var gram = b.Allocate(new Shape(k, k), MemoryTag.Scratch);
                using (b.ReuseOperand(d, sumRows: true))
                {
                    b.MatMul(d, false, wt, false, dx);
                    b.MatMul(d, true, xt, false, dw);
                    using (b.ReuseOperand(xt)) b.MatMul(xt, true, xt, false, gram);   // a nested scope (LOMO's update inside backward)
                    b.SumRows(d, db, 0.5f, 1f);                                        // from the sums taken while converting d
                }
                return [Host(dx), Host(dw), Host(db), Host(gram)];
            });
            Add("MatMul with reused operands (dx = dy W, dW = dy^T x, nested x^T x) and SumRows", c.Zip(g, (a, z) => RelativeError(a, z)).Max(), Math.Max(Norm, gemmTolerance));
            Compare("MatMulBias (bias in the product's epilogue)", b =>
            {
                using var xt = Up(b, xv, [m, k]); using var wt = Up(b, wv, [n, k]); using var bias = Up(b, dy[..n], [n]);
                using var y = b.Allocate(new Shape(m, n), MemoryTag.Scratch);
                b.MatMulBias(xt, false, wt, true, y, bias);
                return [Host(y)];
            }, Math.Max(Norm, gemmTolerance));
            float[] residual = Enumerable.Range(0, m * n).Select(i => MathF.Sin(0.37f * i)).ToArray();
            Compare("MatMulBiasAdd (a residual branch's output projection and its add, in the product's epilogue), with and without a bias", b =>
            {
                using var xt = Up(b, xv, [m, k]); using var wt = Up(b, wv, [n, k]); using var bias = Up(b, dy[..n], [n]);
                using var r = Up(b, residual, [m, n]);
                using var y = b.Allocate(new Shape(m, n), MemoryTag.Scratch); using var y0 = b.Allocate(new Shape(m, n), MemoryTag.Scratch);
                b.MatMulBiasAdd(xt, false, wt, true, bias, r, y);
                b.MatMulBiasAdd(xt, false, wt, true, null, r, y0);
                return [Host(y), Host(y0)];
            }, Math.Max(Norm, gemmTolerance));
        }

        // ---- optimizer kernels
        {
            const int R = 129, Cc = 263;
            float[] g = Rand(R * Cc, 0.1f), rows0 = Rand(R).Select(Math.Abs).ToArray(), cols0 = Rand(Cc).Select(Math.Abs).ToArray();
            Compare("AdafactorFactoredMoments and Precondition", b =>
            {
                using var gt = Up(b, g, [R, Cc]); using var rt = Up(b, rows0, [R]); using var ct = Up(b, cols0, [Cc]); using var u = b.Allocate(new Shape(R, Cc), MemoryTag.Scratch);
                b.AdafactorFactoredMoments(gt, rt, ct, 0.8f, 1e-30f); b.AdafactorFactoredPrecondition(gt, rt, ct, u); return [Host(rt), Host(ct), Host(u)];
            }, Norm);
            Compare("AdafactorFactoredPrecondition into a first moment (alpha 0.1, beta 0.9)", b =>
            {
                using var gt = Up(b, g, [R, Cc]); using var rt = Up(b, rows0, [R]); using var ct = Up(b, cols0, [Cc]); using var m = Up(b, x[..(R * Cc)], [R, Cc]);
                b.AdafactorFactoredPrecondition(gt, rt, ct, m, 0.1f, 0.9f); return [Host(m)];
            }, Norm);
            {
                // FLORA's low-rank path writes the update in bf16 for its product: the fp32 result rounded (relative 2^-8).
                float[] cpuU;
                using (var gt = Up(cpu, g, [R, Cc])) using (var rt = Up(cpu, rows0, [R])) using (var ct = Up(cpu, cols0, [Cc])) using (var u = cpu.Allocate(new Shape(R, Cc), MemoryTag.Scratch))
                {
                    cpu.AdafactorFactoredPrecondition(gt, rt, ct, u); cpuU = Host(u);
                }
                using var g2 = Up(gpu, g, [R, Cc]); using var r2 = Up(gpu, rows0, [R]); using var c2 = Up(gpu, cols0, [Cc]);
                using var u16 = gpu.Allocate(new Shape(R, Cc), MemoryTag.Scratch, DType.BFloat16);
                gpu.AdafactorFactoredPrecondition(g2, r2, c2, u16);
                float[] gpuU = gpu.DownloadBFloat16(u16).Select(h => BitConverter.UInt32BitsToSingle((uint)h << 16)).ToArray();
                Add("AdafactorFactoredPrecondition into bf16", RelativeError(cpuU, gpuU), 4e-3);
            }
            {
                // FLORA's official variant: u in fp32 and, from the same pass, the bf16 copy its compression reads.
                (float[] U, float[] Rounded) Run(IBackend b)
                {
                    using var gt = Up(b, g, [R, Cc]); using var rt = Up(b, rows0, [R]); using var ct = Up(b, cols0, [Cc]);
                    using var u = b.Allocate(new Shape(R, Cc), MemoryTag.Scratch); using var r16 = b.Allocate(new Shape(R, Cc), MemoryTag.Scratch, DType.BFloat16);
                    b.AdafactorFactoredPrecondition(gt, rt, ct, u, 1f, 0f, r16);
                    return (Host(u), Wide(r16));
                }
                var (cu, cr) = Run(cpu);
                var (gu, gr) = Run(gpu);
                Add("AdafactorFactoredPrecondition into fp32 and a bf16 copy: fp32", RelativeError(cu, gu), Norm);
                Add("AdafactorFactoredPrecondition into fp32 and a bf16 copy: bf16", RelativeError(cr, gr), 4e-3);
            }
            {
                // Rows of whole 16-byte quads take the warp-per-row kernels (263 columns above take the element-wise ones).
                foreach (var (Rq, Cq) in new[] { (R, 264), (65, 2056) })
                {
                    float[] gq = Rand(Rq * Cq, 0.1f), rowsq = Rand(Rq).Select(Math.Abs).ToArray(), colsq = Rand(Cq).Select(Math.Abs).ToArray(), mq = Rand(Rq * Cq);
                    float[][] Run(IBackend b)
                    {
                        using var gt = Up(b, gq, [Rq, Cq]); using var rt = Up(b, rowsq, [Rq]); using var ct = Up(b, colsq, [Cq]);
                        using var u = b.Allocate(new Shape(Rq, Cq), MemoryTag.Scratch); using var r16 = b.Allocate(new Shape(Rq, Cq), MemoryTag.Scratch, DType.BFloat16);
                        using var m = Up(b, mq, [Rq, Cq]);
                        b.AdafactorFactoredPrecondition(gt, rt, ct, u, 1f, 0f, r16);
                        b.AdafactorFactoredPrecondition(gt, rt, ct, m, 0.1f, 0.9f);
                        b.AdafactorFactoredMoments(gt, rt, ct, 0.8f, 1e-30f);
                        return [Host(u), Host(m), Wide(r16), Host(rt), Host(ct)];
                    }
                    float[][] c = Run(cpu), z = Run(gpu);
                    Add($"AdafactorFactoredPrecondition, {Rq} x {Cq} (whole quads: a warp per row): fp32 with a bf16 copy, and into a first moment",
                        Math.Max(RelativeError(c[0], z[0]), RelativeError(c[1], z[1])), Norm);
                    Add($"AdafactorFactoredPrecondition, {Rq} x {Cq} (whole quads): the bf16 copy", RelativeError(c[2], z[2]), 4e-3);
                    Add($"AdafactorFactoredMoments, {Rq} x {Cq} (whole quads: float4 loads): row and column moments",
                        Math.Max(RelativeError(c[3], z[3]), RelativeError(c[4], z[4])), Norm);
                }
            }
            Compare("SquaredMovingAverage, DivideBySqrt (plain and into a first moment)", b =>
            {
                using var gt = Up(b, g, [R * Cc]); using var v = Up(b, g.Select(Math.Abs).ToArray(), [R * Cc]); using var u = b.Allocate(new Shape(R * Cc), MemoryTag.Scratch);
                using var m = Up(b, x[..(R * Cc)], [R * Cc]);
                b.SquaredMovingAverage(gt, v, 0.9f, 1e-30f); b.DivideBySqrt(gt, v, u); b.DivideBySqrt(gt, v, m, 0.1f, 0.9f); return [Host(v), Host(u), Host(m)];
            }, Norm);
            Compare("AdafactorUpdate (scalars on the device)", b =>
            {
                using var p = Up(b, x[..(R * Cc)], [R, Cc]); using var u = Up(b, g, [R, Cc]);
                b.AdafactorUpdate(p, u, 0.03f, 1e-3f, 0.5f, 0.1f, true); return [Host(p)];
            }, Norm);
            foreach (int n in new[] { 769, R * Cc })
                Compare($"AdafactorUnfactoredStep ({n} elements: u in place of g, and into a first moment)", b =>
                {
                    using var p = Up(b, x[..n], [n]); using var gt = Up(b, g[..n], [n]); using var v = Up(b, g[..n].Select(Math.Abs).ToArray(), [n]);
                    using var p2 = Up(b, x[..n], [n]); using var g2 = Up(b, g[..n], [n]); using var v2 = Up(b, g[..n].Select(Math.Abs).ToArray(), [n]);
                    using var m = Up(b, x[n..(2 * n)], [n]);
                    b.AdafactorUnfactoredStep(p, gt, v, gt, 0.9f, 1e-30f, 1f, 0f, 0.03f, 1e-3f, 0.5f, 0.1f, true);
                    b.AdafactorUnfactoredStep(p2, g2, v2, m, 0.9f, 1e-30f, 0.1f, 0.9f, 0.03f, 1e-3f, 0.5f, 0f, false);
                    return [Host(p), Host(v), Host(gt), Host(p2), Host(v2), Host(m)];
                }, Norm);
            foreach (bool columns in new[] { true, false })
            {
                const int r = 8;
                float[] mm = Rand(columns ? R * r : r * Cc), aa = Rand(r * (columns ? Cc : R));
                Compare($"AdafactorLowRankUpdate ({(columns ? "columns" : "rows")} compressed)", b =>
                {
                    using var p = Up(b, x[..(R * Cc)], [R, Cc]); using var m = Up(b, mm, columns ? [R, r] : [r, Cc]); using var a = Up(b, aa, columns ? [r, Cc] : [r, R]);
                    b.AdafactorLowRankUpdate(p, m, a, columns, 0.03f, 1e-3f, 0.5f, 0.1f, true); return [Host(p)];
                }, Math.Max(Norm, gemmTolerance));
            }
            Compare("AdamApply", b =>
            {
                using var p = Up(b, x[..(R * Cc)], [R * Cc]); using var m = Up(b, g, [R * Cc]); using var v = Up(b, g.Select(z => z * z).ToArray(), [R * Cc]);
                b.AdamApply(p, m, v, 1e-3f, 0.1f, 1e-8f, 0.19f, 0.002f); return [Host(p)];
            }, Norm);
            Compare("AdamStep (moments and update in one pass): p, m, v", b =>
            {
                using var p = Up(b, x[..(R * Cc)], [R * Cc]); using var gt = Up(b, g, [R * Cc]);
                using var m = Up(b, g.Reverse().ToArray(), [R * Cc]); using var v = Up(b, g.Select(z => z * z).ToArray(), [R * Cc]);
                b.AdamStep(p, gt, m, v, 0.9f, 0.999f, 1e-3f, 0.1f, 1e-8f, 0.19f, 0.002f); return [Host(p), Host(m), Host(v)];
            }, Norm);
        }

        // ---- reductions
        {
            var (c, g) = Both(b =>
            {
                using var p = Up(b, x, [N]); using var q = Up(b, y0, [N]);
                return [[(float)b.Sum(p), (float)b.SumOfSquares(p), (float)b.SumOfMagnitudes(p), (float)b.Dot(p, q), b.MaxMagnitude(p)]];
            });
            // Against a float64 reference, relative to the sum of magnitudes of the terms (the condition of a sum:
            // a sum of random signs cancels, so its own size says nothing about the rounding of its terms).
            double sum = 0, squares = 0, magnitudes = 0, dot = 0, dotMagnitudes = 0, max = 0;
            for (int i = 0; i < N; i++)
            {
                sum += x[i]; squares += (double)x[i] * x[i]; magnitudes += Math.Abs(x[i]);
                dot += (double)x[i] * y0[i]; dotMagnitudes += Math.Abs((double)x[i] * y0[i]); max = Math.Max(max, Math.Abs(x[i]));
            }
            double[] exact = [sum, squares, magnitudes, dot, max], scale = [magnitudes, squares, magnitudes, dotMagnitudes, max];
            double Worst(float[] r) => r.Select((v, i) => Math.Abs(v - exact[i]) / scale[i]).Max();
            Add("Sum, SumOfSquares, SumOfMagnitudes, Dot, MaxMagnitude (vs float64, per sum of |terms|)", Math.Max(Worst(c[0]), Worst(g[0])), 2e-6);
        }

        // ---- bf16 weights: stochastic rounding bit for bit, products, lookups and updates that read bf16 weights
        WeightRows(cpu, gpu, "cuda", precision, gemmTolerance, Add);

        // ---- end to end: a few training steps of a tiny GPT with FLORA on both backends (fp32 products)
        progress?.Report("training steps on both backends");
        Add("gpt-tiny, Flora r=8, compressed accumulation, 4 steps: training losses (fp32 products)", EndToEnd("fp32", lomo: false), 2e-4);
        if (precision == GemmPrecision.Bf16)
            Add("gpt-tiny, Flora r=8, LOMO, 4 steps: training losses (bf16 products on the GPU)", EndToEnd("bf16", lomo: true), 2e-2);
        Add("llama-tiny, Flora r=8, compressed accumulation, 4 steps: training losses (fp32 products)", EndToEnd("fp32", lomo: false, "llama-tiny"), 2e-4);
        if (precision == GemmPrecision.Bf16)
            Add("llama-tiny, Flora r=8, LOMO, 4 steps: training losses (bf16 products on the GPU)", EndToEnd("bf16", lomo: true, "llama-tiny"), 2e-2);
        return rows;
    }

    /// <summary>
    /// Max relative difference of the per-step losses of the same 4 steps on the CPU and on the GPU (products in
    /// <paramref name="precision"/>): with FLORA's compressed accumulation over 2 micro-batches, or with LOMO.
    /// </summary>
    private static double EndToEnd(string precision, bool lomo, string model = "gpt-tiny")
    {
        string root = Path.Combine(Path.GetTempPath(), $"flora-check-{Environment.ProcessId}-{model}");
        try
        {
            double[] Losses(string device)
            {
                var options = new TrainOptions
                {
                    Model = model, Tokenizer = "bpe:300", SequenceLength = 32, BatchSize = 4, Steps = 4, WarmupSteps = 1,
                    EvalEvery = 100, CheckpointEvery = 100, Device = device, Precision = precision, Dropout = 0.1f,
                    Optimizer = new OptimizerSpec { Name = "flora", LearningRate = 0.03f, Rank = 8, Kappa = 2 },
                    Accumulation = lomo ? AccumulationMode.None : AccumulationMode.Compressed, AccumulationSteps = lomo ? 1 : 2, Lomo = lomo,
                    OutputDirectory = Path.Combine(root, device),
                };
                using var trainer = new Trainer(options);
                trainer.Run();
                return MetricsLog.ReadCsv(Path.Combine(options.OutputDirectory, MetricsLog.CsvFile)).Select(r => r.TrainLoss).ToArray();
            }
            double[] cpu = Losses("cpu"), gpu = Losses("cuda");
            return cpu.Zip(gpu, (a, b) => Math.Abs(a - b) / Math.Abs(a)).Max();
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
    }

    private static float[][] Run(IBackend backend, Func<IBackend, float[][]> body) => body(backend);

    private static Tensor Up(IBackend b, float[] data, int[] shape)
    {
        var t = b.Allocate(new Shape(shape), MemoryTag.Scratch);
        b.Upload(data, t);
        return t;
    }

    private static Tensor UpInts(IBackend b, int[] data)
    {
        var t = b.Allocate(new Shape(data.Length), MemoryTag.Scratch, DType.Int32);
        b.Upload(data, t);
        return t;
    }

    private static ushort RoundToBFloat16(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        if ((bits & 0x7fffffffu) > 0x7f800000u) return (ushort)((bits >> 16) | 0x40u);
        return (ushort)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
    }

    private static float[] Host(Tensor t) => t.ToArray();

    /// <summary>max |b - a| / max |a| (NaN anywhere counts as an infinite error).</summary>
    public static double RelativeError(float[] reference, float[] value)
    {
        if (reference.Length != value.Length) return double.PositiveInfinity;
        double maxDiff = 0, maxRef = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            if (float.IsNaN(value[i]) != float.IsNaN(reference[i])) return double.PositiveInfinity;
            maxDiff = Math.Max(maxDiff, Math.Abs((double)value[i] - reference[i]));
            maxRef = Math.Max(maxRef, Math.Abs((double)reference[i]));
        }
        return maxRef == 0 ? maxDiff : maxDiff / maxRef;
    }

    private static double[] Gemm64(float[] a, float[] b, float[] c, int m, int k, int n, bool ta, bool tb, float alpha, float beta)
    {
        var result = new double[m * n];
        Parallel.For(0, m, i =>
        {
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int p = 0; p < k; p++) s += (double)(ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
                result[i * n + j] = alpha * s + beta * c[i * n + j];
            }
        });
        return result;
    }
}
