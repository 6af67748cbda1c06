using Flora.Backends;
using Flora.Nn;
using Flora.Nn.Models;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Experiments;

/// <summary>The conformance rows of activations kept in bf16 in bf16 mode (issue 13, item 1).</summary>
public static partial class ConformanceCheck
{
    /// <summary>
    /// The paths that bf16 activations (<see cref="IBackend.ActivationType"/>) open, against a CPU backend in bf16 mode:
    /// attention reading bf16 q, k, v tensors (the GPU's kernels read them in place, the CPU widens them) and writing an
    /// fp32 or a bf16 output (read back by its backward); products, a LayerNorm and GELU writing bf16 outputs (rounded in
    /// the GPU's epilogues and kernels, after an fp32 computation on the CPU), GELU's derivative reading a bf16 input; and
    /// forward and backward of a tiny GPT-2 whose blocks keep q, k, v, the attention output and the MLP pre-activation in
    /// bf16 (head size 64: the fused attention kernels), with the activation bytes of both ledgers.
    /// </summary>
    /// <remarks>
    /// Both backends must be in bf16 mode; the tests pass a second CPU backend for <paramref name="gpu"/> to check the check.
    /// </remarks>
    internal static void ActivationRows(IBackend cpu, IBackend gpu, double gemmTolerance, Action<string, double, double, string> add)
    {
        if (cpu.ActivationType != DType.BFloat16 || gpu.ActivationType != DType.BFloat16)
            throw new ArgumentException("the bf16-activation rows need both backends in bf16 mode");
        var random = new Random(20261208);
        float[] Rand(int n, float scale = 1f) => Enumerable.Range(0, n).Select(_ => (float)((random.NextDouble() * 2 - 1) * scale)).ToArray();
        void Compare(string op, Func<IBackend, float[][]> body, double tolerance)
        {
            float[][] c = body(cpu), g = body(gpu);
            add(op, c.Zip(g, (a, b) => RelativeError(a, b)).Max(), tolerance, "relative");
        }
        // A value rounded to bf16 on both sides may land one bf16 step apart (2^-8 of its size) when the fp32 values
        // before rounding differ in the last bits: the tolerance of a bf16 output computed the same way on both sides.
        const double OneBf16Step = 1.0 / 128;
        foreach (var (causal, hd, T) in new[] { (true, 16, 37), (true, 64, 150), (false, 128, 150) })
            foreach (var output in new[] { DType.Float32, DType.BFloat16 })
            {
                const int B = 2, H = 3;
                int C = H * hd;
                float[] qkv = Rand(B * T * 3 * C), dOut = Rand(B * T * C);
                var shape = new AttentionShape(B, H, T, T, hd, causal, 1f / MathF.Sqrt(hd));
                Compare($"Attention from bf16 q, k, v (kept activations), {(causal ? "causal" : "full")}, head dim {hd}, T {T}, {(output == DType.BFloat16 ? "bf16" : "fp32")} output: forward and backward", b =>
                {
                    using var t = Bf16(b, qkv, [B * T, 3 * C]); using var o = b.Allocate(new Shape(B * T, C), MemoryTag.Scratch, output);
                    using var lse = b.Allocate(new Shape(B, H, T), MemoryTag.Scratch); using var d = Up(b, dOut, [B * T, C]);
                    using var dt = b.Allocate(new Shape(B * T, 3 * C), MemoryTag.Scratch);
                    b.AttentionForward(shape, new(t, 0), new(t, C), new(t, 2 * C), o, lse);
                    b.AttentionBackward(shape, d, new(t, 0), new(t, C), new(t, 2 * C), o, lse, new(dt, 0), new(dt, C), new(dt, 2 * C));
                    return [Wide(o), Host(lse), Host(dt)];
                }, gemmTolerance * 2);
            }

        {
            const int N = 100_003;
            float[] x = Rand(N, 4f), dy = Rand(N);
            Compare("Gelu from a bf16 input into a bf16 output (a kept MLP pre-activation; the down projection's operand)", b =>
            {
                using var x16 = Bf16(b, x, [N]); using var y = b.Allocate(new Shape(N), MemoryTag.Scratch, DType.BFloat16);
                b.Gelu(x16, y);
                return [Wide(y)];
            }, OneBf16Step);
            Compare("GeluBackward from a bf16 input into an fp32 output", b =>
            {
                using var x16 = Bf16(b, x, [N]); using var d = Up(b, dy, [N]); using var dx = b.Allocate(new Shape(N), MemoryTag.Scratch);
                b.GeluBackward(x16, d, dx);
                return [Host(dx)];
            }, 2e-5);
            Compare("GeluBackward from a bf16 input into a bf16 output (the up projection's output gradient)", b =>
            {
                using var x16 = Bf16(b, x, [N]); using var d = Up(b, dy, [N]);
                using var dx = b.Allocate(new Shape(N), MemoryTag.Scratch, DType.BFloat16);
                b.GeluBackward(x16, d, dx);
                return [Wide(dx)];
            }, OneBf16Step);
            Compare("Gelu, GeluBackward on bf16 views one element in (unaligned: one element per thread)", b =>
            {
                using var x16 = Bf16(b, x, [N]); using var d = Up(b, dy, [N]);
                using var y = b.Allocate(new Shape(N), MemoryTag.Scratch, DType.BFloat16);
                using var dx = b.Allocate(new Shape(N), MemoryTag.Scratch, DType.BFloat16); using var dx32 = b.Allocate(new Shape(N), MemoryTag.Scratch);
                Shape inner = new(N - 1);
                b.Gelu(x16.View(inner, 1), y.View(inner, 1));
                b.GeluBackward(x16.View(inner, 1), d.View(inner, 1), dx.View(inner, 1));
                b.GeluBackward(x16.View(inner, 1), d.View(inner, 0), dx32.View(inner, 1));
                return [Wide(y.View(inner, 1)), Wide(dx.View(inner, 1)), Host(dx32.View(inner, 1))];
            }, OneBf16Step);
        }

        {
            const int N = 301, C = 768, F = 1000;
            float[] x = Rand(N * C), gamma = Rand(C), beta = Rand(C), w = Rand(F * C, 0.05f), bias = Rand(F);
            Compare("LayerNorm into a bf16 output (the input of a block's projection)", b =>
            {
                using var xt = Up(b, x, [N, C]); using var g = Up(b, gamma, [C]); using var bt = Up(b, beta, [C]);
                using var y = b.Allocate(new Shape(N, C), MemoryTag.Scratch, DType.BFloat16);
                using var mean = b.Allocate(new Shape(N), MemoryTag.Scratch); using var rstd = b.Allocate(new Shape(N), MemoryTag.Scratch);
                b.LayerNormForward(xt, g, bt, y, mean, rstd, 1e-5f);
                return [Wide(y), Host(mean), Host(rstd)];
            }, OneBf16Step);
            Compare("SumRows of a bf16 gradient (a bias gradient)", b =>
            {
                using var g = Bf16(b, w, [F, C]); using var sums = b.Allocate(new Shape(C), MemoryTag.Scratch);
                b.SumRows(g, sums, 0.5f, 0f);
                return [Host(sums)];
            }, 2e-5);
            Compare("MatMul and MatMulBias into bf16 outputs (x W^T (+ b), rounded in the product's epilogue)", b =>
            {
                using var xt = Up(b, x, [N, C]); using var wt = Up(b, w, [F, C]); using var bt = Up(b, bias, [F]);
                using var y = b.Allocate(new Shape(N, F), MemoryTag.Scratch, DType.BFloat16);
                using var yb = b.Allocate(new Shape(N, F), MemoryTag.Scratch, DType.BFloat16);
                b.MatMul(xt, false, wt, true, y);
                b.MatMulBias(xt, false, wt, true, yb, bt);
                return [Wide(y), Wide(yb)];
            }, gemmTolerance * 2);
            // GPT-2's MLP with GELU in the products' epilogues: h = x W^T + b and GELU(h) from one product (GELU of the
            // sum before rounding on the GPU, of the rounded h on the CPU: a bf16 step apart at most), then the down
            // projection's input gradient times GELU'(h).
            float[] dy = Rand(N * C);
            Compare("MatMulBiasGelu (h and GELU(h) in bf16) and MatMulGeluBackward ((dy W) GELU'(h) in bf16)", b =>
            {
                using var xt = Up(b, x, [N, C]); using var wt = Up(b, w, [F, C]); using var bt = Up(b, bias, [F]);
                using var h = b.Allocate(new Shape(N, F), MemoryTag.Scratch, DType.BFloat16);
                using var a = b.Allocate(new Shape(N, F), MemoryTag.Scratch, DType.BFloat16);
                b.MatMulBiasGelu(xt, false, wt, true, h, a, bt);
                using var dyt = Up(b, dy, [N, C]); using var down = Up(b, w, [C, F]);
                using var dh = b.Allocate(new Shape(N, F), MemoryTag.Scratch, DType.BFloat16);
                b.MatMulGeluBackward(dyt, false, down, false, h, dh);
                return [Wide(h), Wide(a), Wide(dh)];
            }, Math.Max(gemmTolerance * 2, OneBf16Step));
        }

        {
            // The Llama family's kept activations: RMSNorm's output, rotary positions on bf16 q and k (Llama 3 scaling,
            // both ways), SwiGLU from bf16 gate and up and its gradients in bf16.
            const int N = 301, C = 1000, F = 2731, Rows = 2 * 150, Heads = 3, HeadDim = 128;
            float[] x = Rand(N * C), weight = Rand(C), q = Rand(Rows * Heads * HeadDim), gate = Rand(N * F, 4f), up = Rand(N * F), dy = Rand(N * F);
            Compare("RmsNorm into a bf16 output (the input of a block's projections)", b =>
            {
                using var xt = Up(b, x, [N, C]); using var w = Up(b, weight, [C]);
                using var y = b.Allocate(new Shape(N, C), MemoryTag.Scratch, DType.BFloat16); using var rstd = b.Allocate(new Shape(N), MemoryTag.Scratch);
                b.RmsNormForward(xt, w, y, rstd, 1e-5f);
                return [Wide(y), Host(rstd)];
            }, OneBf16Step);
            float[] wide = Rand(N * 4096);
            Compare("RmsNorm into a bf16 output, 4096 columns (a block per row)", b =>
            {
                using var xt = Up(b, wide, [N, 4096]); using var w = Up(b, wide.AsSpan(0, 4096).ToArray(), [4096]);
                using var y = b.Allocate(new Shape(N, 4096), MemoryTag.Scratch, DType.BFloat16); using var rstd = b.Allocate(new Shape(N), MemoryTag.Scratch);
                b.RmsNormForward(xt, w, y, rstd, 1e-5f);
                return [Wide(y), Host(rstd)];
            }, OneBf16Step);
            Compare("Rotary on bf16 q (kept activations), head dim 128, llama3 scaling: forward, then inverse", b =>
            {
                using var t = Bf16(b, q, [Rows, Heads * HeadDim]);
                var scaling = new RopeScaling(8, 1, 4, 64);
                b.Rotary(t, 0, Heads, HeadDim, 150, 500000f, inverse: false, scaling);
                float[] turned = Wide(t);
                b.Rotary(t, 0, Heads, HeadDim, 150, 500000f, inverse: true, scaling);
                return [turned, Wide(t)];
            }, OneBf16Step);
            Compare("SwiGlu and SwiGluBackward on bf16 gate and up (bf16 output and gradients)", b =>
            {
                using var g = Bf16(b, gate, [N, F]); using var u = Bf16(b, up, [N, F]); using var d = Up(b, dy, [N, F]);
                using var a = b.Allocate(new Shape(N, F), MemoryTag.Scratch, DType.BFloat16);
                using var dg = b.Allocate(new Shape(N, F), MemoryTag.Scratch, DType.BFloat16); using var du = b.Allocate(new Shape(N, F), MemoryTag.Scratch, DType.BFloat16);
                b.SwiGlu(g, u, a);
                b.SwiGluBackward(g, u, d, dg, du);
                return [Wide(a), Wide(dg), Wide(du)];
            }, OneBf16Step);
        }

        foreach (var (family, headDim, checkpointed) in new[] { ("gpt2", 64, false), ("llama", 64, false), ("llama", 128, false), ("gpt2", 64, true), ("llama", 128, true) })
        {
            // A tiny GPT-2 of head size 64 (two heads of 128 channels), or a tiny Llama with grouped heads (4 query heads
            // over 2) of head size 64 or 128, 2 x 64 tokens: logits and every parameter gradient; then the same with the
            // first of the two blocks checkpointed (its internals in bf16 while backward recomputes it).
            const int B = 2, T = 64, V = 97;
            int[] ids = Enumerable.Range(0, B * T).Select(_ => random.Next(V)).ToArray();
            string name = (family == "gpt2" ? "gpt2 2 x 128 (head size 64)" : $"llama 2 x 256 (4 heads over 2 of size {headDim}, llama3 rope)")
                + (checkpointed ? ", first block checkpointed" : "");
            long cpuBytes = 0, gpuBytes = 0;
            float[][] Step(IBackend b)
            {
                long before = b.Ledger.Current(MemoryTag.Activations);
                using LanguageModel model = family == "gpt2" ? new Gpt2(b, new Gpt2Config(2, 2, 128, V, T), seed: 17)
                    : new Llama(b, new LlamaConfig(2, 4, 256, 688, V, T, 500000f) { KeyValueHeads = 2, HeadDim = headDim, RopeScaling = new RopeScaling(8, 1, 4, 32) }, seed: 17);
                if (checkpointed) model.EnableCheckpointing(1);
                using var input = b.Allocate(new Shape(B, T), MemoryTag.Scratch, DType.Int32);
                b.Upload(ids, input);
                Tensor logits = model.Forward(input);
                float[] y = Host(logits);
                using var dy = b.Allocate(logits.Shape, MemoryTag.Scratch);
                b.FillGaussian(dy, 23, 1f);
                model.Backward(dy, new AccumulateSink(b, new Sgd(b, model.Parameters(), 1f)));
                long bytes = b.Ledger.Current(MemoryTag.Activations) - before;
                if (b == cpu) cpuBytes = bytes; else gpuBytes = bytes;
                return [y, .. model.Parameters().Select(p => Host(p.Grad!))];
            }
            Compare($"{name}, bf16 activations: logits and parameter gradients", Step, gemmTolerance * 2);
            add($"{name}, bf16 activations: activation bytes held after backward (device vs CPU ledger)",
                Math.Abs(gpuBytes - cpuBytes) / (double)cpuBytes, 0.01, "relative");
        }
    }

    /// <summary>The values of a Float32 tensor, or of a BFloat16 one widened.</summary>
    private static float[] Wide(Tensor t) => t.DType == DType.BFloat16 ? Bits(t).Select(BFloat16.ToSingle).ToArray() : Host(t);
}
