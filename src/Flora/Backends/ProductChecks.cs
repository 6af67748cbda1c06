using Flora.Tensors;

namespace Flora.Backends;

/// <summary>Argument checks the backends' products with fused epilogues share.</summary>
internal static class ProductChecks
{
    /// <summary>The bf16 pre-activation and the bf16 tensor of its shape that a fused GELU product writes.</summary>
    public static void CheckGeluPair(Tensor preActivation, Tensor output, string op)
    {
        if (preActivation.DType != DType.BFloat16 || output.DType != DType.BFloat16 || preActivation.Shape != output.Shape)
            throw new ArgumentException($"{op}: expected a BFloat16 pre-activation and a BFloat16 output of its shape, got {preActivation} and {output}");
    }

    /// <summary>MatMulBiasAdd's residual and output: Float32, of one shape, distinct.</summary>
    public static void CheckResidualOutput(Tensor residual, Tensor output, string op)
    {
        if (residual.DType != DType.Float32 || output.DType != DType.Float32 || residual.Count != output.Count || residual.Pointer == output.Pointer)
            throw new ArgumentException($"{op}: the residual and the output must be distinct Float32 tensors of as many elements, got {residual} and {output}");
    }
}
