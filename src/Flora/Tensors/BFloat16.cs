namespace Flora.Tensors;

/// <summary>
/// bfloat16 on the host: the top 16 bits of an IEEE single (sign, 8 exponent bits, 7 mantissa bits). These are the
/// reference definitions the backends' kernels reproduce bit for bit: widening is exact, narrowing rounds to nearest
/// even (<see cref="RoundToNearestEven"/>) or stochastically (<see cref="RoundStochastic"/>). A NaN stays a (quiet) NaN.
/// </summary>
public static class BFloat16
{
    /// <summary>The float a bf16 bit pattern stands for (exact).</summary>
    public static float ToSingle(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>
    /// <paramref name="x"/> rounded to the nearest bf16, ties to the one with an even last mantissa bit (as PyTorch's
    /// and CUDA's __float2bfloat16_rn). Values beyond the largest bf16 become infinities; NaN stays NaN.
    /// </summary>
    public static ushort RoundToNearestEven(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        if ((bits & 0x7fffffffu) > 0x7f800000u) return (ushort)((bits >> 16) | 0x40u);
        return (ushort)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
    }

    /// <summary>
    /// <paramref name="x"/> rounded stochastically with the 16 random bits <paramref name="random"/> (uniform in
    /// [0, 65536)): the 16 bits the narrowing drops are the fraction f of the gap between the two bf16 neighbours of x
    /// (in units of 2^-16 of it), and adding the random bits carries into the kept part exactly when random &gt;= 65536 - f,
    /// so x goes to the neighbour farther from zero with probability f / 65536 and E[bf16(x)] = x. Only the two
    /// neighbours occur (an exactly representable x is kept); a carry out of the mantissa steps into the next binade,
    /// which is that neighbour; above the largest bf16 the upper neighbour is infinity. NaN stays NaN, infinities stay.
    /// </summary>
    public static ushort RoundStochastic(float x, uint random)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        if ((bits & 0x7fffffffu) > 0x7f800000u) return (ushort)((bits >> 16) | 0x40u);
        return (ushort)((bits + (random & 0xffffu)) >> 16);
    }
}
