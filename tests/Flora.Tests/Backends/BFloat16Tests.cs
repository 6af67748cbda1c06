using Flora.Backends;
using Flora.Tensors;

namespace Flora.Tests.Backends;

/// <summary>
/// bf16 on the host and in the CPU backend: round to nearest even, stochastic rounding (hand-computed cases, its
/// random stream, unbiasedness, only the two neighbours), and the ops that read bf16 weights.
/// </summary>
public class BFloat16Tests
{
    private static float F(uint bits) => BitConverter.UInt32BitsToSingle(bits);

    [Theory]
    [InlineData(0x3F800000u, 0x3F80)]          // 1: exact
    [InlineData(0x3F808000u, 0x3F80)]          // halfway between 0x3F80 and 0x3F81: to the even one below
    [InlineData(0x3F818000u, 0x3F82)]          // halfway between 0x3F81 and 0x3F82: to the even one above
    [InlineData(0x3F808001u, 0x3F81)]          // just above halfway
    [InlineData(0xBF808001u, 0xBF81)]          // negative: the magnitude rounds the same way
    [InlineData(0x7F7FFFFFu, 0x7F80)]          // the largest float is past the largest bf16 by more than half a step: infinity
    [InlineData(0x7F800000u, 0x7F80)]          // infinity stays
    [InlineData(0x7F800001u, 0x7FC0)]          // a signalling NaN becomes a quiet NaN
    public void Round_to_nearest_even_hand_computed(uint input, int expected)
    {
        Assert.Equal((ushort)expected, BFloat16.RoundToNearestEven(F(input)));
    }

    [Theory]
    // 0x3F801800 drops 0x1800 = 6144 of 65536: it rounds up exactly when the random bits reach 65536 - 6144 = 59392.
    [InlineData(0x3F801800u, 59392u, 0x3F81)]
    [InlineData(0x3F801800u, 59391u, 0x3F80)]
    [InlineData(0xBF801800u, 59392u, 0xBF81)]  // negative: away from zero with the same probability
    [InlineData(0x3F800000u, 0xFFFFu, 0x3F80)] // representable values never move
    [InlineData(0x3FFFFFFFu, 1u, 0x4000)]      // a carry out of the mantissa is the next binade's first value (2)
    [InlineData(0x3FFFFFFFu, 0u, 0x3FFF)]
    [InlineData(0x3F801800u, 0x1234E800u, 0x3F81)] // only the low 16 bits of the random word count
    [InlineData(0x7F800000u, 0xFFFFu, 0x7F80)] // infinity stays
    [InlineData(0xFFC00000u, 0xFFFFu, 0xFFC0)] // NaN stays NaN
    public void Stochastic_rounding_hand_computed(uint input, uint random, int expected)
    {
        Assert.Equal((ushort)expected, BFloat16.RoundStochastic(F(input), random));
    }

    [Fact]
    public void The_random_stream_takes_16_bit_halves_of_the_philox_words_eight_elements_per_block()
    {
        // Philox4x32-10 of counter 0 under key 0 (Random123's known answer): 6627e8d5 e169c58d bc57ac4c 9b00dbd8.
        uint[] expected = [0xe8d5, 0x6627, 0xc58d, 0xe169, 0xac4c, 0xbc57, 0xdbd8, 0x9b00];
        for (int i = 0; i < 8; i++) Assert.Equal(expected[i], StochasticRounding.Bits(0, i));
        // Element 8 starts block 1; a seed is the key (low word, high word).
        var (x0, _, _, _) = Philox.Block(1, 0, 0, 0, 0, 0);
        Assert.Equal(x0 & 0xffff, StochasticRounding.Bits(0, 8));
        var (y0, y1, _, _) = Philox.Block(0, 0, 0, 0, 0x89abcdef, 0x01234567);
        Assert.Equal(y1 >> 16, StochasticRounding.Bits(0x0123456789abcdefUL, 3));
        Assert.Equal(y0 & 0xffff, StochasticRounding.Bits(0x0123456789abcdefUL, 0));
    }

    [Fact]
    public void The_backend_rounds_a_hand_computed_case_with_the_stream_of_its_seed()
    {
        using var cpu = TestUtil.Cpu();
        using var x = TestUtil.FromArray(cpu, Enumerable.Repeat(F(0x3F801800u), 8).ToArray(), 8);
        using var y = cpu.Allocate(new Shape(8), MemoryTag.Scratch, DType.BFloat16);
        cpu.StochasticRound(x, y, seed: 0);
        // Only the first random half-word (0xe8d5 = 59605) reaches 59392.
        Assert.Equal(new ushort[] { 0x3F81, 0x3F80, 0x3F80, 0x3F80, 0x3F80, 0x3F80, 0x3F80, 0x3F80 }, Bits(y));
    }

    [Fact]
    public void Stochastic_rounding_is_unbiased_where_rounding_to_nearest_is_not()
    {
        using var cpu = TestUtil.Cpu();
        const int n = 1 << 18;
        float value = F(0x3F804CCDu);                          // 1 + 0.30000 of a bf16 step (2^-7)
        using var x = TestUtil.FromArray(cpu, Enumerable.Repeat(value, n).ToArray(), n);
        using var y = cpu.Allocate(new Shape(n), MemoryTag.Scratch, DType.BFloat16);
        cpu.StochasticRound(x, y, seed: 42);
        ushort[] bits = Bits(y);
        Assert.All(bits, b => Assert.True(b is 0x3F80 or 0x3F81, $"0x{b:X4} is not a neighbour of {value}"));
        double mean = bits.Average(b => (double)BFloat16.ToSingle(b));
        double step = Math.Pow(2, -7), p = 0x4CCD / 65536.0, sd = step * Math.Sqrt(p * (1 - p) / n);
        Assert.InRange(mean - value, -5 * sd, 5 * sd);         // within 5 standard errors (about 6e-6)
        // Rounding to nearest loses the 0.3 step entirely: a bias of 2.3e-3, hundreds of standard errors.
        Assert.True(Math.Abs(BFloat16.ToSingle(BFloat16.RoundToNearestEven(value)) - value) > 100 * sd);
    }

    [Fact]
    public void Every_value_goes_to_one_of_its_two_neighbours_as_the_scalar_reference_says_whatever_the_split()
    {
        using var cpu = TestUtil.Cpu();
        const int n = 300_001;                                 // several parallel ranges and a partial last block
        var random = new Random(5);
        float[] values = Enumerable.Range(0, n).Select(_ => (float)((random.NextDouble() - 0.5) * Math.Pow(2, random.Next(-30, 30)))).ToArray();
        using var x = TestUtil.FromArray(cpu, values, n);
        using var y = cpu.Allocate(new Shape(n), MemoryTag.Scratch, DType.BFloat16);
        cpu.StochasticRound(x, y, seed: 0xB16B00B5UL);
        ushort[] got = Bits(y);
        var expected = new ushort[n];
        for (int i = 0; i < n; i++) expected[i] = BFloat16.RoundStochastic(values[i], StochasticRounding.Bits(0xB16B00B5UL, i));
        Assert.Equal(expected, got);
        int up = 0;
        for (int i = 0; i < n; i++)
        {
            uint truncated = BitConverter.SingleToUInt32Bits(values[i]) >> 16;
            Assert.True(got[i] == truncated || got[i] == truncated + 1, $"element {i}: {values[i]} became 0x{got[i]:X4}");
            if (got[i] != truncated) up++;
        }
        Assert.InRange(up, n / 3, 2 * n / 3);                  // fractions are spread over [0, 1): about half go up

        // The same seed gives the same bits; another seed other bits.
        using var again = cpu.Allocate(new Shape(n), MemoryTag.Scratch, DType.BFloat16);
        cpu.StochasticRound(x, again, seed: 0xB16B00B5UL);
        Assert.Equal(got, Bits(again));
        cpu.StochasticRound(x, again, seed: 0xB16B00B6UL);
        Assert.True(got.Zip(Bits(again)).Count(p => p.First != p.Second) > n / 4);
    }

    [Fact]
    public void Copy_converts_between_float32_and_bfloat16_and_fill_rounds()
    {
        using var cpu = TestUtil.Cpu();
        float[] values = [1f, F(0x3F808000u), F(0x3F818000u), -3.14159f, 1e-40f, float.PositiveInfinity, 65504.7f];
        using var x = TestUtil.FromArray(cpu, values, values.Length);
        using var h = cpu.Allocate(new Shape(values.Length), MemoryTag.Scratch, DType.BFloat16);
        cpu.Copy(x, h);
        Assert.Equal(values.Select(BFloat16.RoundToNearestEven).ToArray(), Bits(h));
        using var back = cpu.Allocate(new Shape(values.Length), MemoryTag.Scratch);
        cpu.Copy(h, back);
        Assert.Equal(Bits(h).Select(BFloat16.ToSingle).ToArray(), TestUtil.ToArray(back));   // widening is exact
        cpu.Fill(h, 0.1f);
        Assert.All(Bits(h), b => Assert.Equal(BFloat16.RoundToNearestEven(0.1f), b));
        using var ints = cpu.Allocate(new Shape(values.Length), MemoryTag.Scratch, DType.Int32);
        Assert.Throws<ArgumentException>(() => cpu.Copy(h, ints));
    }

    [Fact]
    public void A_bf16_gaussian_fill_is_the_float32_one_rounded_to_nearest_even()
    {
        using var cpu = TestUtil.Cpu();
        const int n = (1 << 20) + 13;                          // past one conversion chunk, with a partial Philox block
        using var f = cpu.Allocate(new Shape(n), MemoryTag.Scratch);
        using var h = cpu.Allocate(new Shape(n), MemoryTag.Scratch, DType.BFloat16);
        cpu.FillGaussian(f, 77, 0.02f);
        cpu.FillGaussian(h, 77, 0.02f);
        Assert.Equal(TestUtil.ToArray(f).Select(BFloat16.RoundToNearestEven).ToArray(), Bits(h));
    }

    [Theory]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void Products_read_bf16_operands_as_their_exact_float32_values(bool halfA, bool halfB)
    {
        using var cpu = TestUtil.Cpu();
        const int m = 19, k = 33, n = 27;
        using var a = Operand(cpu, 1, halfA, m, k);
        using var b = Operand(cpu, 2, halfB, n, k);
        using var wa = Widened(cpu, a); using var wb = Widened(cpu, b);
        using var c = TestUtil.Random(cpu, 3, 1, m, n);
        using var expected = TestUtil.Random(cpu, 3, 1, m, n);
        cpu.MatMul(a, false, b, true, c, 0.5f, 1f);
        cpu.MatMul(wa, false, wb, true, expected, 0.5f, 1f);
        Assert.Equal(TestUtil.ToArray(expected), TestUtil.ToArray(c));
        // The same bf16 tensor on both sides (a Gram matrix).
        using var gram = cpu.Allocate(new Shape(n, n), MemoryTag.Scratch);
        using var gramExpected = cpu.Allocate(new Shape(n, n), MemoryTag.Scratch);
        cpu.MatMul(b, false, b, true, gram);
        cpu.MatMul(wb, false, wb, true, gramExpected);
        Assert.Equal(TestUtil.ToArray(gramExpected), TestUtil.ToArray(gram));
        using var bf16C = cpu.Allocate(new Shape(m, n), MemoryTag.Scratch, DType.BFloat16);
        Assert.Throws<ArgumentException>(() => cpu.MatMul(a, false, b, true, bf16C, 1f, 1f));  // a bf16 C cannot accumulate
    }

    [Fact]
    public void Embeddings_and_the_fused_head_read_a_bf16_table_as_its_float32_values()
    {
        using var cpu = TestUtil.Cpu();
        const int v = 41, c = 24, rows = 30;
        using var table = Operand(cpu, 4, true, v, c);
        using var wide = Widened(cpu, table);
        int[] idList = Enumerable.Range(0, rows).Select(i => (i * 7) % v).ToArray();
        using var ids = TestUtil.Labels(cpu, idList);
        using var out16 = cpu.Allocate(new Shape(rows, c), MemoryTag.Scratch);
        using var out32 = cpu.Allocate(new Shape(rows, c), MemoryTag.Scratch);
        cpu.EmbeddingForward(table, ids, out16);
        cpu.EmbeddingForward(wide, ids, out32);
        Assert.Equal(TestUtil.ToArray(out32), TestUtil.ToArray(out16));

        using var x = TestUtil.Random(cpu, 5, 1, rows, c);
        using var dx16 = cpu.Allocate(new Shape(rows, c), MemoryTag.Scratch); using var dx32 = cpu.Allocate(new Shape(rows, c), MemoryTag.Scratch);
        using var dw16 = cpu.Allocate(new Shape(v, c), MemoryTag.Scratch); using var dw32 = cpu.Allocate(new Shape(v, c), MemoryTag.Scratch);
        var loss16 = cpu.LinearCrossEntropy(x, table, ids, 0.1f, dx16, dw16, 1f, 0f);
        var loss32 = cpu.LinearCrossEntropy(x, wide, ids, 0.1f, dx32, dw32, 1f, 0f);
        Assert.Equal(loss32, loss16);
        Assert.Equal(TestUtil.ToArray(dx32), TestUtil.ToArray(dx16));
        Assert.Equal(TestUtil.ToArray(dw32), TestUtil.ToArray(dw16));
    }

    internal static ushort[] Bits(Tensor t)
    {
        var bits = new ushort[t.Count];
        t.CopyTo<ushort>(bits);
        return bits;
    }

    /// <summary>A random (rows, cols) operand, in bf16 when <paramref name="half"/>.</summary>
    private static Tensor Operand(IBackend backend, ulong seed, bool half, int rows, int cols)
    {
        var t = backend.Allocate(new Shape(rows, cols), MemoryTag.Scratch, half ? DType.BFloat16 : DType.Float32);
        backend.FillGaussian(t, seed, 1f);
        return t;
    }

    private static Tensor Widened(IBackend backend, Tensor t)
    {
        var wide = backend.Allocate(t.Shape, MemoryTag.Scratch);
        backend.Copy(t, wide);
        return wide;
    }
}
