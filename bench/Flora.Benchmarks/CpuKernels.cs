using BenchmarkDotNet.Attributes;
using Flora.Backends.Cpu;
using Flora.Tensors;

namespace Flora.Benchmarks;

/// <summary>
/// The CPU kernels the pilot step and FLORA's projections spend their time in, at the pilot's sizes.
/// Axpy is the baseline: every other kernel is read as a ratio to one memory-bound pass.
/// </summary>
[MemoryDiagnoser]
public class CpuKernels
{
    private CpuBackend _cpu = null!;
    private Tensor _x = null!, _w = null!, _y = null!, _big = null!, _big2 = null!, _projection = null!;

    [GlobalSetup]
    public void Setup()
    {
        _cpu = new CpuBackend();
        _x = _cpu.Allocate(new Shape(128, 768), MemoryTag.Activations);
        _w = _cpu.Allocate(new Shape(768, 768), MemoryTag.Parameters);
        _y = _cpu.Allocate(new Shape(128, 768), MemoryTag.Activations);
        _big = _cpu.Allocate(new Shape(1 << 20), MemoryTag.Scratch);
        _big2 = _cpu.Allocate(new Shape(1 << 20), MemoryTag.Scratch);
        _projection = _cpu.Allocate(new Shape(256, 768), MemoryTag.Scratch);
        _cpu.FillGaussian(_x, 1, 1f);
        _cpu.FillGaussian(_w, 2, 1f);
        _cpu.FillGaussian(_big, 3, 1f);
    }

    [Benchmark(Baseline = true, Description = "Axpy 1M")]
    public void Axpy() => _cpu.Axpy(0.5f, _big, _big2);

    [Benchmark(Description = "Sgemm (128x768) x (768x768)^T")]
    public void Sgemm() => _cpu.MatMul(_x, false, _w, true, _y);

    [Benchmark(Description = "Philox Gaussian fill 256x768")]
    public void Philox() => _cpu.FillGaussian(_projection, 42, 1f);

    [Benchmark(Description = "GELU 1M")]
    public void Gelu() => _cpu.Gelu(_big, _big2);

    [Benchmark(Description = "ReLU backward 128x768")]
    public void ReluBackward() => _cpu.ReluBackward(_x, _y, _y);

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var t in new[] { _x, _w, _y, _big, _big2, _projection }) t.Dispose();
        _cpu.Dispose();
    }
}
