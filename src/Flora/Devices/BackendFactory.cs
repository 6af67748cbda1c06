using Flora.Backends;
using Flora.Backends.Cpu;
using Flora.Backends.Cuda;
using Flora.Tensors;

namespace Flora.Devices;

/// <summary>Creates the backend for a device name of the command line.</summary>
public static class BackendFactory
{
    /// <summary>The names <see cref="Create"/> and <see cref="ParsePrecision"/> accept, one per <see cref="GemmPrecision"/>, in its order.</summary>
    public static readonly IReadOnlyList<string> Precisions = ["fp32", "tf32", "bf16"];

    /// <summary>
    /// "cpu", or "cuda" with the matrix-product precision <paramref name="precision"/> (fp32, tf32 or bf16;
    /// the CPU always computes in fp32). A machine without a CUDA driver gets one clear line.
    /// </summary>
    public static IBackend Create(string device, MemoryLedger? ledger = null, string precision = "tf32") => device switch
    {
        "cpu" => new CpuBackend(ledger ?? new MemoryLedger()),
        "cuda" => CudaBackend.Create(ledger ?? new MemoryLedger(), ParsePrecision(precision)),
        _ => throw new ArgumentException($"unknown device '{device}': use cpu or cuda"),
    };

    /// <summary>The <see cref="GemmPrecision"/> named "fp32", "tf32" or "bf16" (lower case, as on the command line).</summary>
    /// <exception cref="ArgumentException">Any other name.</exception>
    public static GemmPrecision ParsePrecision(string precision) => precision switch
    {
        "fp32" => GemmPrecision.Fp32,
        "tf32" => GemmPrecision.Tf32,
        "bf16" => GemmPrecision.Bf16,
        _ => throw new ArgumentException($"unknown precision '{precision}': use fp32, tf32 or bf16"),
    };
}
