using System.Diagnostics;
using Flora.Backends;
using Flora.Backends.Cpu;
using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Experiments;

/// <summary>One optimizer of the optimizer benchmark and its measured step time.</summary>
public sealed record OptimizerBenchmarkRow(string Method, double MillisecondsPerStep, double RatioToAdafactor, long StateBytes);

public sealed record OptimizerBenchmarkResult(string Model, long Parameters, int Steps, int Warmup, string Blas, IReadOnlyList<OptimizerBenchmarkRow> Rows);

/// <summary>
/// Times one optimizer step (every parameter's Update) over a model's parameter table on the CPU:
/// Adafactor without momentum (the reference, measured in the same run), with naive momentum,
/// FLORA at the given ranks (Algorithm 2 and the official variant) and AdamW. Gradients are fixed
/// Gaussians, copied in before each update outside the timed region (Update consumes its gradient).
/// The kappa transfer runs once every kappa steps (1000 by default) and is not part of a step here.
/// </summary>
public static class OptimizerBenchmark
{
    public const string Reference = "Adafactor";

    public static OptimizerBenchmarkResult Run(ParameterTable table, IReadOnlyList<int> ranks, int steps, int warmup,
        IProgress<string>? progress = null)
    {
        if (steps <= 0 || warmup < 0) throw new ArgumentException($"steps ({steps}) must be positive and warm-up ({warmup}) non-negative");
        if (ranks.Any(r => r <= 0)) throw new ArgumentException($"ranks must be positive, got {string.Join(", ", ranks)}");
        using var backend = new CpuBackend(new MemoryLedger());
        Parameter[] parameters = table.Allocate(backend);
        var sources = parameters.Select((p, i) =>
        {
            var g = backend.Allocate(p.Shape, MemoryTag.Scratch);
            backend.FillGaussian(g, (ulong)(1000 + i), 1e-2f);
            return g;
        }).ToArray();
        using var gradient = new TensorSlot(backend, MemoryTag.Scratch);
        try
        {
            var methods = new List<(string Name, Func<Optimizer> Make)>
            {
                (Reference, () => new Adafactor(backend, parameters, new AdafactorOptions { LearningRate = 1e-3f })),
                ("Adafactor + naive momentum", () => new Adafactor(backend, parameters, new AdafactorOptions { LearningRate = 1e-3f, Momentum = MomentumOptions.Naive() })),
            };
            foreach (int r in ranks)
            {
                methods.Add(($"Flora r={r}", () => new FloraAdafactor(backend, parameters, 1e-3f, rank: r)));
                methods.Add(($"Flora r={r} (official variant)", () => new FloraAdafactor(backend, parameters, 1e-3f, rank: r, variant: FloraVariant.Official)));
            }
            methods.Add(("AdamW", () => new AdamW(backend, parameters, 1e-4f)));

            var rows = new List<OptimizerBenchmarkRow>();
            double reference = 0;
            foreach (var (name, make) in methods)
            {
                progress?.Report(name);
                using var optimizer = make();
                long stateBytes = optimizer.StateBytes;
                var times = new List<double>();
                for (int step = 0; step < warmup + steps; step++)
                {
                    double seconds = 0;
                    for (int i = 0; i < parameters.Length; i++)
                    {
                        Tensor g = gradient.Get(parameters[i].Shape);
                        backend.Copy(sources[i], g);
                        long start = Stopwatch.GetTimestamp();
                        optimizer.Update(parameters[i], g);
                        seconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
                    }
                    if (step >= warmup) times.Add(seconds);
                }
                double ms = Median(times) * 1000;
                if (name == Reference) reference = ms;
                rows.Add(new OptimizerBenchmarkRow(name, ms, ms / reference, stateBytes));
            }
            return new OptimizerBenchmarkResult(table.Name, table.Entries.Sum(e => e.Count), steps, warmup, CpuBackend.BlasDescription, rows);
        }
        finally
        {
            foreach (var s in sources) s.Dispose();
            foreach (var p in parameters) p.Dispose();
        }
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
