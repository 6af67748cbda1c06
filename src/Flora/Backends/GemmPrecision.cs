namespace Flora.Backends;

/// <summary>How matrix products compute on a GPU (the CPU always computes in fp32); storage stays fp32 in every mode.</summary>
public enum GemmPrecision
{
    /// <summary>Plain fp32 arithmetic (no tensor cores).</summary>
    Fp32,
    /// <summary>TF32 tensor cores: inputs rounded to 10-bit mantissas, fp32 accumulation.</summary>
    Tf32,
    /// <summary>bf16 tensor cores: inputs rounded to bf16, fp32 accumulation and output.</summary>
    Bf16,
}
