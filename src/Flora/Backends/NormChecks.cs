using Flora.Tensors;

namespace Flora.Backends;

/// <summary>Argument checks the backends' norm backward passes share.</summary>
internal static class NormChecks
{
    /// <summary>A residual folded into a norm's input gradient: Float32, as many elements as dx, and not dx itself.</summary>
    public static void CheckResidual(Tensor? residual, Tensor dx, string op)
    {
        if (residual is not null && (residual.Count != dx.Count || residual.DType != DType.Float32 || residual.Pointer == dx.Pointer))
            throw new ArgumentException($"{op}: the residual {residual} must be a Float32 tensor of dx's {dx.Count} elements, other than dx");
    }
}
