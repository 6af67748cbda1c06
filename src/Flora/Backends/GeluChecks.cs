using Flora.Tensors;

namespace Flora.Backends;

/// <summary>Argument checks the backends' fused GELU products share.</summary>
internal static class GeluChecks
{
    /// <summary>The bf16 pre-activation and the bf16 tensor of its shape that a fused GELU product writes.</summary>
    public static void CheckPair(Tensor preActivation, Tensor output, string op)
    {
        if (preActivation.DType != DType.BFloat16 || output.DType != DType.BFloat16 || preActivation.Shape != output.Shape)
            throw new ArgumentException($"{op}: expected a BFloat16 pre-activation and a BFloat16 output of its shape, got {preActivation} and {output}");
    }
}
