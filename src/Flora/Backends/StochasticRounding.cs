using Flora.Tensors;

namespace Flora.Backends;

/// <summary>
/// The random stream of stochastic rounding to bf16 (<see cref="IBackend.StochasticRound"/>): element i of a stream
/// with seed s takes 16 bits of Philox4x32-10 (<see cref="Philox.Block"/>) with key (low, high 32 bits of s) and
/// counter (low, high 32 bits of i / 8, 0, 0): word (i / 2) % 4 of the block's four outputs, its low half for even i
/// and its high half for odd i. One block serves eight elements. The bits are a pure function of (s, i), so every
/// backend and thread count rounds alike; <see cref="BFloat16.RoundStochastic"/> then turns them into the rounding.
/// </summary>
public static class StochasticRounding
{
    /// <summary>The 16 random bits of element <paramref name="index"/> of stream <paramref name="seed"/>.</summary>
    public static uint Bits(ulong seed, long index)
    {
        ulong block = (ulong)index >> 3;
        var (x0, x1, x2, x3) = Philox.Block((uint)block, (uint)(block >> 32), 0, 0, (uint)seed, (uint)(seed >> 32));
        uint word = ((index >> 1) & 3) switch { 0 => x0, 1 => x1, 2 => x2, _ => x3 };
        return (index & 1) == 0 ? word & 0xffffu : word >> 16;
    }

    /// <summary>
    /// destination[i] = bf16 bits of source[i] rounded stochastically with the bits of element
    /// <paramref name="offset"/> + i of stream <paramref name="seed"/> (the reference the backends reproduce).
    /// </summary>
    public static void Round(ReadOnlySpan<float> source, Span<ushort> destination, ulong seed, long offset = 0)
    {
        if (source.Length != destination.Length)
            throw new ArgumentException($"StochasticRounding.Round: {source.Length} values for {destination.Length} destinations");
        int i = 0;
        // Whole blocks of eight: one Philox block each.
        while (i < source.Length)
        {
            long index = offset + i;
            if ((index & 7) != 0 || source.Length - i < 8)
            {
                destination[i] = BFloat16.RoundStochastic(source[i], Bits(seed, index));
                i++;
                continue;
            }
            ulong block = (ulong)index >> 3;
            var (x0, x1, x2, x3) = Philox.Block((uint)block, (uint)(block >> 32), 0, 0, (uint)seed, (uint)(seed >> 32));
            destination[i] = BFloat16.RoundStochastic(source[i], x0);
            destination[i + 1] = BFloat16.RoundStochastic(source[i + 1], x0 >> 16);
            destination[i + 2] = BFloat16.RoundStochastic(source[i + 2], x1);
            destination[i + 3] = BFloat16.RoundStochastic(source[i + 3], x1 >> 16);
            destination[i + 4] = BFloat16.RoundStochastic(source[i + 4], x2);
            destination[i + 5] = BFloat16.RoundStochastic(source[i + 5], x2 >> 16);
            destination[i + 6] = BFloat16.RoundStochastic(source[i + 6], x3);
            destination[i + 7] = BFloat16.RoundStochastic(source[i + 7], x3 >> 16);
            i += 8;
        }
    }
}
