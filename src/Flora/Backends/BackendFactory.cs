using Flora.Backends.Cpu;
using Flora.Tensors;

namespace Flora.Backends;

/// <summary>Creates the backend for a device name of the command line.</summary>
public static class BackendFactory
{
    public static IBackend Create(string device, MemoryLedger? ledger = null) => device switch
    {
        "cpu" => new CpuBackend(ledger ?? new MemoryLedger()),
        "cuda" => CudaFactory?.Invoke(ledger ?? new MemoryLedger())
            ?? throw new FloraException("the CUDA backend is not available in this build; use --device cpu"),
        _ => throw new ArgumentException($"unknown device '{device}': use cpu or cuda"),
    };

    /// <summary>Set by the CUDA backend's assembly initialiser when it is present.</summary>
    public static Func<MemoryLedger, IBackend>? CudaFactory { get; set; }
}
