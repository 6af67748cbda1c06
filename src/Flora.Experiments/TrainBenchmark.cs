using System.Text.Json;
using Flora.Backends.Cuda;
using Flora.Optim;
using Flora.Training;

namespace Flora.Experiments;

/// <summary>One configuration of the training benchmark and what it measured.</summary>
public sealed record TrainBenchRow(
    string Model, string Optimizer, bool Lomo, long Parameters, int BatchSize, int SequenceLength,
    double MillisecondsPerStep, double TokensPerSecond, double ModelFlopsUtilization,
    double ForwardMilliseconds, double BackwardMilliseconds, double OptimizerMilliseconds, double GemmShare,
    long PeakLedgerBytes, long DriverUsedBytes, long OptimizerStateBytes, IReadOnlyDictionary<string, double>? OpShares = null,
    string Weights = "fp32", bool Checkpointing = false, int Vocabulary = 0, IReadOnlyDictionary<string, long>? PeakByTag = null)
{
    /// <summary>The OpenBLAS kernel family the row was measured with (CPU runs), e.g. "Cooperlake"; null on a GPU.</summary>
    public string? BlasKernels { get; init; }
    /// <summary>With checkpointing, how many of <see cref="Blocks"/> blocks recomputed in backward (0 when off; absent in older files).</summary>
    public int CheckpointedBlocks { get; init; }
    /// <summary>The model's transformer blocks (absent in older files).</summary>
    public int Blocks { get; init; }

    /// <summary>"bf16", "bf16, ckpt" (every block) or "bf16, ckpt 16/32".</summary>
    public string WeightsAndCheckpointing => Weights + (!Checkpointing ? "" : CheckpointedBlocks > 0 && CheckpointedBlocks < Blocks ? $", ckpt {CheckpointedBlocks}/{Blocks}" : ", ckpt");
}

public sealed record TrainBenchReport(string Device, string Precision, string Date, double PeakTflops, int Warmup, int Steps, IReadOnlyList<TrainBenchRow> Rows);

/// <summary>
/// Training steps of a model on a device, per optimizer configuration: median step time, tokens/s,
/// model FLOP utilisation (PaLM's 6N + 12 L C T flops per token over the device's dense peak for the
/// precision), the phases, the GEMM share, peak memory from the ledger and from the driver, and the
/// optimizer-state bytes. Data: the embedded corpus (timing does not depend on it).
/// </summary>
public static class TrainBenchmark
{
    /// <summary>"flora:256" -> Flora with rank 256; "adafactor-momentum", "adamw", ...</summary>
    public static OptimizerSpec ParseOptimizer(string spec)
    {
        string[] parts = spec.Split(':');
        int rank = parts.Length > 1 && int.TryParse(parts[1], out int r) && r > 0 ? r
            : parts.Length > 1 ? throw new ArgumentException($"optimizer '{spec}': the rank after ':' must be a positive integer") : 32;
        if (!OptimizerSpec.Names.Contains(parts[0])) throw new ArgumentException($"unknown optimizer '{parts[0]}': choose one of {string.Join(", ", OptimizerSpec.Names)}");
        return new OptimizerSpec { Name = parts[0], Rank = rank, LearningRate = OptimizerSpec.DefaultLearningRate(parts[0]) };
    }

    /// <summary>
    /// The model vocabulary of <c>--vocabulary</c> for <paramref name="model"/>: "tokenizer" (0: the tokenizer's size),
    /// "published" (the preset's published vocabulary, or the tokenizer's for presets without one), or a number.
    /// </summary>
    public static int ParseVocabulary(string spec, string model) => spec switch
    {
        "tokenizer" => 0,
        "published" => PublishedVocabulary(model) ?? 0,
        _ when int.TryParse(spec, out int v) && v > 0 => v,
        _ => throw new ArgumentException($"--vocabulary must be tokenizer, published or a positive number, got '{spec}'"),
    };

    /// <summary>The vocabulary of the published model a preset has the shape of (Llama 3.2 1B and 3B, Llama 2 7B, GPT-2), else null.</summary>
    public static int? PublishedVocabulary(string model) => model switch
    {
        "llama-1b" or "llama-3b" => 128_256,
        "llama-7b" => 32_000,
        "gpt2-124m" or "gpt2-350m" => 50_257,
        _ => null,
    };

    /// <summary>Dense peak TFLOP/s of the device for the precision (H100/H200 SXM figures), for MFU.</summary>
    public static double PeakTflops(string device, string precision, string deviceName) =>
        device != "cuda" ? double.NaN
        : deviceName.Contains("H100") || deviceName.Contains("H200") ? precision switch { "bf16" => 989, "tf32" => 495, _ => 67 }
        : double.NaN;

    public static TrainBenchRow RunOne(TrainOptions options, int warmup, int steps, double peakTflops, string? profilePath = null)
    {
        string run = Path.Combine(Path.GetTempPath(), $"flora-bench-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using var trainer = new Trainer(options with { OutputDirectory = run, CheckFinite = false });
            var t = trainer.MeasureSteps(warmup, steps);
            long driverUsed = trainer.Backend is CudaBackend cuda ? cuda.MemoryReadings().DriverUsed : 0;
            double flops = trainer.Model.TrainingFlopsPerToken(options.SequenceLength) * t.TokensPerSecond;
            string optimizer = options.Optimizer.Name + (options.Optimizer.Name.Contains("flora") ? $" r={options.Optimizer.Rank}" : "");
            var ledger = trainer.Backend.Ledger.Snapshot();
            if (profilePath is not null && t.Profile is not null)
                File.AppendAllText(profilePath, ProfileMarkdown($"{options.Model}, {optimizer}{(options.Lomo ? ", LOMO" : "")}", t.Profile, t.ProfiledSeconds));
            return new TrainBenchRow(options.Model, optimizer, options.Lomo, trainer.Model.ParameterCount, options.BatchSize, options.SequenceLength,
                t.Step * 1000, t.TokensPerSecond, flops / (peakTflops * 1e12), t.Forward * 1000, t.Backward * 1000, t.Optimizer * 1000, t.GemmShare,
                ledger.PeakTotalBytes, driverUsed, trainer.OptimizerStateBytes,
                t.Ops.Take(16).ToDictionary(o => o.Op, o => Math.Round(o.Share, 4)),
                trainer.Options.Weights, trainer.Model.CheckpointedBlocks > 0, trainer.Model.Vocabulary,
                ledger.Tags.ToDictionary(u => u.Tag.ToString(), u => u.BytesAtTotalPeak))
                { CheckpointedBlocks = trainer.Model.CheckpointedBlocks, Blocks = trainer.Model.BlockCount };
        }
        finally
        {
            if (Directory.Exists(run)) Directory.Delete(run, recursive: true);
        }
    }

    /// <summary>
    /// For rows of the same configuration measured with different OpenBLAS kernel families, one line per family after
    /// the first: "gpt-small, flora r=32: Cooperlake 5,300 tokens/s against Prescott 1,400 tokens/s: 3.79x", the first
    /// family measured being the numerator. A family measured more than once (--blas-family auto,generic,auto,generic)
    /// counts with its best run, the least disturbed by anything else on the machine, and the line says so. Nothing
    /// when every row used the same family.
    /// </summary>
    public static IEnumerable<string> KernelComparison(IReadOnlyList<TrainBenchRow> rows)
    {
        foreach (var group in rows.Where(r => r.BlasKernels is not null).GroupBy(r => (r.Model, r.Optimizer, r.Lomo)))
        {
            var families = group.GroupBy(r => r.BlasKernels!).Select(f => (Family: f.Key, Best: f.Max(r => r.TokensPerSecond), Runs: f.Count())).ToList();
            var (first, best, runs) = families[0];
            foreach (var other in families.Skip(1))
            {
                string repeated = runs > 1 || other.Runs > 1 ? $" (best of {runs} and {other.Runs} runs)" : "";
                yield return string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"{group.Key.Model}, {group.Key.Optimizer}{(group.Key.Lomo ? ", LOMO" : "")}: {first} {best:N0} tokens/s against {other.Family} {other.Best:N0} tokens/s: {best / other.Best:F2}x{repeated}");
            }
        }
    }

    /// <summary>One profiled step as markdown: time per op, then the matrix products by shape with their TFLOP/s.</summary>
    public static string ProfileMarkdown(string title, Flora.Backends.OpProfiler profile, double stepSeconds)
    {
        var w = new System.Text.StringBuilder();
        w.AppendLine($"### {title}: one profiled step, {stepSeconds * 1e3:F1} ms wall").AppendLine();
        w.AppendLine("| op | calls | ms | share of step |").AppendLine("| --- | ---: | ---: | ---: |");
        foreach (var (op, t) in profile.Ops.OrderByDescending(kv => kv.Value.Ticks))
            w.AppendLine($"| {op} | {t.Calls} | {t.Seconds * 1e3:F2} | {t.Seconds / stepSeconds:P1} |");
        w.AppendLine($"| (all ops) | | {profile.TotalSeconds * 1e3:F2} | {profile.TotalSeconds / stepSeconds:P1} |").AppendLine();
        if (profile.Products.Count > 0)
        {
            w.AppendLine("| product (m x n x k) | calls | ms | TFLOP/s |").AppendLine("| --- | ---: | ---: | ---: |");
            foreach (var (shape, (t, flops)) in profile.Products.OrderByDescending(kv => kv.Value.Timing.Ticks))
                w.AppendLine($"| {shape} | {t.Calls} | {t.Seconds * 1e3:F2} | {flops / Math.Max(t.Seconds, 1e-12) / 1e12:F1} |");
            w.AppendLine();
        }
        return w.ToString();
    }

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static void WriteJson(TrainBenchReport report, string path) => File.WriteAllText(path, JsonSerializer.Serialize(report, Json));

    public static TrainBenchReport ReadJson(string path) =>
        JsonSerializer.Deserialize<TrainBenchReport>(File.ReadAllText(path), Json) ?? throw new InvalidDataException($"{path}: empty benchmark report");
}
