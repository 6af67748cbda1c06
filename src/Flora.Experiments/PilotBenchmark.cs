using System.Diagnostics;
using Flora.Backends;
using Flora.Backends.Cpu;
using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Experiments;

public sealed record PilotBenchmarkVariant(PilotVariant Variant, double MillisecondsPerStep, double ExamplesPerSecond, double GemmShare, double GemmGflops);

public sealed record PilotBenchmarkResult(
    int BatchSize, int Steps, int Warmup, string Blas, int ReferenceSize, double ReferenceGflops,
    IReadOnlyList<PilotBenchmarkVariant> Variants, IReadOnlyList<(string Op, double CallsPerStep, double MillisecondsPerStep, double Share)> SgdOps);

/// <summary>
/// Times training steps of the pilot network on synthetic data (the step's cost does not depend on
/// pixel values) and splits each step into GEMM and everything else with the backend's op profiler.
/// The reference is a square sgemm measured in the same run.
/// </summary>
public static class PilotBenchmark
{
    public const int ReferenceSize = 1024;

    public static PilotBenchmarkResult Run(int batchSize, int steps, int warmup)
    {
        if (batchSize <= 0 || steps <= 0 || warmup < 0) throw new ArgumentException($"batch {batchSize}, steps {steps} and warm-up {warmup} must be positive");
        double reference = SgemmGflops(ReferenceSize);
        var variants = new List<PilotBenchmarkVariant>();
        List<(string, double, double, double)> sgdOps = new();
        foreach (var variant in Enum.GetValues<PilotVariant>())
        {
            var (v, ops) = RunVariant(variant, batchSize, steps, warmup);
            variants.Add(v);
            if (variant == PilotVariant.Sgd) sgdOps = ops;
        }
        return new PilotBenchmarkResult(batchSize, steps, warmup, CpuBackend.BlasDescription, ReferenceSize, reference, variants, sgdOps);
    }

    private static (PilotBenchmarkVariant, List<(string, double, double, double)>) RunVariant(PilotVariant variant, int batchSize, int steps, int warmup)
    {
        var o = new PilotOptions { BatchSize = batchSize };
        using var backend = new CpuBackend(new MemoryLedger());
        using var model = PilotStudy.BuildModel(backend, variant, 28 * 28, o, out _);
        using var pipeline = PilotStudy.BuildPipeline(backend, variant, model, o);
        using var images = backend.Allocate(new Shape(batchSize, 28 * 28), MemoryTag.Activations);
        using var labels = backend.Allocate(new Shape(batchSize), MemoryTag.Activations, DType.Int32);
        backend.FillGaussian(images, 1, 1f);
        backend.Upload(Enumerable.Range(0, batchSize).Select(i => i % PilotStudy.Classes).ToArray(), labels);
        using var loss = new SoftmaxCrossEntropyLoss(backend);

        void Step()
        {
            loss.Forward(model.Forward(images), labels);
            model.Backward(loss.Backward(), pipeline);
            pipeline.EndMicroBatch();
        }

        for (int i = 0; i < warmup; i++) Step();
        // Each step is timed on its own; medians make the figures robust to a noisy machine.
        var profiler = new OpProfiler();
        backend.Profiler = profiler;
        var stepSeconds = new double[steps];
        var gemmSeconds = new double[steps];
        var opTotals = new Dictionary<string, (long Calls, double Seconds)>();
        for (int i = 0; i < steps; i++)
        {
            profiler.Reset();
            long start = Stopwatch.GetTimestamp();
            Step();
            stepSeconds[i] = Stopwatch.GetElapsedTime(start).TotalSeconds;
            gemmSeconds[i] = profiler.Seconds("MatMul");
            foreach (var (op, t) in profiler.Ops)
                opTotals[op] = opTotals.TryGetValue(op, out var sum) ? (sum.Calls + t.Calls, sum.Seconds + t.Seconds) : (t.Calls, t.Seconds);
        }
        backend.Profiler = null;

        double step = Median(stepSeconds), gemm = Median(gemmSeconds);
        double total = stepSeconds.Sum();
        var ops = opTotals.OrderByDescending(kv => kv.Value.Seconds)
            .Select(kv => (kv.Key, (double)kv.Value.Calls / steps, kv.Value.Seconds * 1000 / steps, kv.Value.Seconds / total))
            .Append(("(outside ops)", 0, (total - opTotals.Values.Sum(v => v.Seconds)) * 1000 / steps, 1 - opTotals.Values.Sum(v => v.Seconds) / total))
            .ToList();
        return (new PilotBenchmarkVariant(variant, step * 1000, batchSize / step, gemm / step, GemmFlopsPerStep(variant, batchSize, o) / gemm / 1e9), ops);
    }

    private static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>Floating-point operations of the step's matrix products (2 m n k each), with SGD fused into the dW products.</summary>
    private static long GemmFlopsPerStep(PilotVariant variant, int b, PilotOptions o)
    {
        long inF = 28 * 28, h = o.Hidden, c = PilotStudy.Classes, r = o.Rank;
        long fc1 = 2 * b * inF * h * 2;             // forward, dW (no dX for the data input)
        long fc3 = 2 * b * h * c * 3;               // forward, dX, dW
        long fc2 = variant switch
        {
            PilotVariant.Sgd => 2 * b * h * h * 3,
            PilotVariant.Rp or PilotVariant.Rrp => 2 * b * h * h * 3 + 2 * h * h * r * 2,                  // + compress, decompress
            PilotVariant.Lora => 2 * b * h * h * 2 + 2 * b * h * r * 2 + 2 * b * r * h * 2 + 2 * b * h * r * 2, // W fwd+dX; x A^T, h B^T; dh, dx+=; dB, dA
            PilotVariant.LoraB => 2 * b * h * h * 2 + 2 * b * h * r * 2 + 2 * b * r * h * 2 + 2 * b * h * r,
            _ => 0,
        };
        return fc1 + fc2 + fc3;
    }

    /// <summary>GFLOP/s of one n x n x n sgemm, best of a few repetitions.</summary>
    public static double SgemmGflops(int n)
    {
        using var backend = new CpuBackend(new MemoryLedger());
        using var a = backend.Allocate(new Shape(n, n), MemoryTag.Scratch);
        using var b = backend.Allocate(new Shape(n, n), MemoryTag.Scratch);
        using var c = backend.Allocate(new Shape(n, n), MemoryTag.Scratch);
        backend.FillGaussian(a, 1, 1f);
        backend.FillGaussian(b, 2, 1f);
        backend.MatMul(a, false, b, false, c);
        double best = double.MaxValue;
        for (int i = 0; i < 5; i++)
        {
            var clock = Stopwatch.StartNew();
            backend.MatMul(a, false, b, false, c);
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n / best / 1e9;
    }
}
