using Flora.Devices;
using Flora.Backends;
using Flora.Backends.Cuda;

namespace Flora.Tests.Backends;

/// <summary>What the CUDA backend can show on a machine without a GPU (CI): clear errors, and kernels that compile.</summary>
public class CudaTests
{
    [Fact]
    public void Kernel_sources_compile_with_nvrtc_for_hopper_or_nvrtc_is_reported_missing()
    {
        string source = CudaDevice.KernelSource();
        Assert.Contains("fill_gaussian", source);
        Assert.StartsWith("// ---- common.cuh", source);
        Assert.True(source.IndexOf("// ---- philox.cu", StringComparison.Ordinal) < source.IndexOf("// ---- transformer.cu", StringComparison.Ordinal),
            "philox.cu must come before the kernels that use it");
        try
        {
            byte[] cubin = Nvrtc.Compile(source, "flora_kernels.cu", "sm_90", ["-lineinfo"]);
            Assert.True(cubin.Length > 10_000, $"cubin of {cubin.Length} bytes");
            Assert.Equal(0x7f, cubin[0]);                                  // an ELF file
        }
        catch (FloraException e) when (e.Message.StartsWith("NVRTC not found", StringComparison.Ordinal))
        {
            Assert.Contains("libnvrtc.so", e.Message);                     // no CUDA toolkit here: the error says what was tried
        }
    }

    [Fact]
    public void Without_a_device_the_cuda_backend_fails_with_one_clear_line_or_works()
    {
        IBackend? backend = null;
        try
        {
            backend = BackendFactory.Create("cuda");
        }
        catch (FloraException e)
        {
            Assert.Matches("no CUDA driver found: tried libcuda.so.1|cuInit\\(0\\) failed|CUDA_ERROR", e.Message);
            Assert.DoesNotContain("\n", e.Message);
            return;
        }
        using (backend)
        {
            // A GPU is here: a round trip through device memory must give the values back.
            using var t = backend.Allocate(new Flora.Tensors.Shape(1000), Flora.Tensors.MemoryTag.Scratch);
            float[] values = Enumerable.Range(0, 1000).Select(i => i * 0.5f).ToArray();
            backend.Upload(values, t);
            Assert.Equal(values, TestUtil.ToArray(t));
        }
    }
}
