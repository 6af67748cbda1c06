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
    public void Fused_attention_has_a_forward_and_a_backward_kernel_for_head_dimensions_64_and_128_within_hoppers_shared_memory()
    {
        string source = CudaDevice.KernelSource();
        foreach (string kernel in new[] { "flash_attention_forward_64", "flash_attention_forward_128", "flash_attention_backward_64", "flash_attention_backward_128" })
            Assert.Contains($" {kernel}(", source);
        // Q (128 rows) and K, V (64 rows) twice, rows of d + 8 bf16; the backward's six 64-row tiles, P and dS (64 x 72) and four rows of 64 floats.
        Assert.Equal(55_296, CudaBackend.FusedForwardSharedBytes(64));
        Assert.Equal(104_448, CudaBackend.FusedForwardSharedBytes(128));
        Assert.Equal(74_752, CudaBackend.FusedBackwardSharedBytes(64));
        Assert.Equal(123_904, CudaBackend.FusedBackwardSharedBytes(128));
        Assert.True(CudaBackend.FusedBackwardSharedBytes(128) <= 227 * 1024, "the most dynamic shared memory a block may have on an H100");
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
