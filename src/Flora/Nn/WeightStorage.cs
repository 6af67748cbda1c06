using Flora.Backends;
using Flora.Tensors;

namespace Flora.Nn;

/// <summary>
/// The element type layers store their weight matrices in: Float32, or BFloat16 to halve the memory of the weights
/// of a large model (the optimizer then computes in fp32 and writes each new weight back with stochastic rounding,
/// <c>Flora.Optim.Optimizer.Update</c>). Models are built inside a scope:
/// <code>
/// using (WeightStorage.Use(DType.BFloat16)) model = new Llama(backend, config, seed);
/// </code>
/// Which weights: the matrices that products and lookups read (<see cref="Linear"/>, <see cref="Embedding"/>,
/// <see cref="OutputHead"/>, the LoRA adapters of <see cref="LoraLinear"/>). Vectors (biases, norm gains) and learned
/// position tables stay Float32: they are a fraction of a percent of a model, the kernels that read them (norms, bias
/// epilogues, additions) stay as they are, and a norm gain near 1 keeps its small updates exactly.
/// The setting is per thread and only read while layers are built.
/// </summary>
public static class WeightStorage
{
    [ThreadStatic] private static DType? _matrices;

    /// <summary>The type of the weight matrices of layers built now on this thread (Float32 outside any scope).</summary>
    public static DType Matrices => _matrices ?? DType.Float32;

    /// <summary>Layers built on this thread until the returned scope is disposed store their weight matrices in <paramref name="matrices"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="matrices"/> is neither Float32 nor BFloat16.</exception>
    public static IDisposable Use(DType matrices)
    {
        if (matrices is not (DType.Float32 or DType.BFloat16))
            throw new ArgumentException($"weights are stored as Float32 or BFloat16, not {matrices}", nameof(matrices));
        var scope = new Scope(_matrices);
        _matrices = matrices;
        return scope;
    }

    /// <summary>The type named on the command line: "fp32" or "bf16".</summary>
    /// <exception cref="ArgumentException">Any other name.</exception>
    public static DType Parse(string weights) => weights switch
    {
        "fp32" => DType.Float32,
        "bf16" => DType.BFloat16,
        _ => throw new ArgumentException($"unknown weight type '{weights}': use fp32 or bf16"),
    };

    /// <summary>A zero weight matrix of <paramref name="shape"/> in <see cref="Matrices"/>, tagged <see cref="MemoryTag.Parameters"/>.</summary>
    internal static Tensor AllocateMatrix(IBackend backend, Shape shape) => backend.Allocate(shape, MemoryTag.Parameters, Matrices);

    private sealed class Scope(DType? previous) : IDisposable
    {
        private bool _disposed;

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            _matrices = previous;
        }
    }
}
