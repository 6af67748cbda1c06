using Flora.Backends;
using Flora.Tensors;

namespace Flora.Tests.Backends;

public class PhiloxTests
{
    // Known-answer vectors of the Random123 distribution (kat_vectors, philox4x32 10): counter, key, expected.
    [Theory]
    [InlineData(0u, 0u, 0u, 0u, 0u, 0u, 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u)]
    [InlineData(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu)]
    [InlineData(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u, 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u)]
    public void Block_matches_the_reference_known_answers(uint c0, uint c1, uint c2, uint c3, uint k0, uint k1, uint e0, uint e1, uint e2, uint e3)
    {
        Assert.Equal((e0, e1, e2, e3), Philox.Block(c0, c1, c2, c3, k0, k1));
    }

    [Fact]
    public void Fill_is_a_pure_function_of_seed_and_index_whatever_the_thread_count()
    {
        using var cpu = TestUtil.Cpu();
        // 300001 elements: several parallel chunks and a partial last block of four.
        using var t = cpu.Allocate(new Shape(300_001), MemoryTag.Scratch);
        cpu.FillGaussian(t, seed: 1234567890123UL, std: 1f);
        float[] parallel = TestUtil.ToArray(t);

        // Every element equals the scalar, single-threaded definition, bit for bit.
        for (int i = 0; i < parallel.Length; i++)
            if (BitConverter.SingleToInt32Bits(Philox.Gaussian(1234567890123UL, i)) != BitConverter.SingleToInt32Bits(parallel[i]))
                Assert.Fail($"element {i}: parallel fill {parallel[i]} differs from the scalar definition {Philox.Gaussian(1234567890123UL, i)}");

        // A view that starts elsewhere restarts the stream at its own index 0.
        using var small = cpu.Allocate(new Shape(7), MemoryTag.Scratch);
        cpu.FillGaussian(small, 1234567890123UL, 1f);
        Assert.Equal(parallel.AsSpan(0, 7).ToArray(), TestUtil.ToArray(small));
    }

    [Fact]
    public void Different_seeds_give_different_streams_and_std_scales_exactly()
    {
        using var cpu = TestUtil.Cpu();
        using var a = TestUtil.Random(cpu, 1, 1f, 1000);
        using var b = TestUtil.Random(cpu, 2, 1f, 1000);
        using var c = TestUtil.Random(cpu, 1, 0.125f, 1000);
        float[] x = TestUtil.ToArray(a), y = TestUtil.ToArray(b), z = TestUtil.ToArray(c);
        Assert.True(x.Zip(y).Count(p => p.First == p.Second) < 5);
        for (int i = 0; i < x.Length; i++) Assert.Equal(x[i] * 0.125f, z[i]);
    }

    [Fact]
    public void Gaussian_has_the_moments_of_a_standard_normal()
    {
        // 2^20 samples, fixed seed. Standard errors: mean 1e-3, variance 1.4e-3; tolerances are 5 sigma.
        using var cpu = TestUtil.Cpu();
        const int n = 1 << 20;
        using var t = TestUtil.Random(cpu, 42, 1f, n);
        float[] v = TestUtil.ToArray(t);
        double mean = v.Average(x => (double)x);
        double variance = v.Average(x => (x - mean) * (x - mean));
        double skew = v.Average(x => Math.Pow(x - mean, 3)) / Math.Pow(variance, 1.5);
        double kurtosis = v.Average(x => Math.Pow(x - mean, 4)) / (variance * variance);
        Assert.InRange(mean, -5e-3, 5e-3);
        Assert.InRange(variance, 1 - 7e-3, 1 + 7e-3);
        Assert.InRange(skew, -0.012, 0.012);           // se sqrt(6/n) = 2.4e-3
        Assert.InRange(kurtosis, 3 - 0.024, 3 + 0.024); // se sqrt(24/n) = 4.8e-3
        // Tail mass beyond 2 sigma: 4.55 %, binomial se 2e-4.
        double tail = v.Count(x => Math.Abs(x) > 2) / (double)n;
        Assert.InRange(tail, 0.0455 - 1e-3, 0.0455 + 1e-3);
    }

    [Fact]
    public void Own_log_and_sincos_agree_with_the_math_library()
    {
        for (uint k = 0; k < (1u << 23); k += 997)
        {
            float u = (2 * k + 1) * (1f / 16777216f);
            Assert.InRange(Philox.Log(u) - Math.Log(u), -2e-6 * Math.Max(1, Math.Abs(Math.Log(u))), 2e-6 * Math.Max(1, Math.Abs(Math.Log(u))));
            Philox.SinCosTurns(u, out float s, out float c);
            Assert.InRange(s - Math.Sin(2 * Math.PI * u), -1e-6, 1e-6);
            Assert.InRange(c - Math.Cos(2 * Math.PI * u), -1e-6, 1e-6);
        }
    }

    [Fact]
    public void Projection_entries_make_A_transpose_A_close_to_identity()
    {
        // Theorem 2.4: with A (r, d) ~ N(0, 1/r), E[A^T A] = I; the diagonal concentrates at 1 with sd sqrt(2/r).
        using var cpu = TestUtil.Cpu();
        const int r = 512, d = 64;
        using var a = TestUtil.Random(cpu, 7, 1f / MathF.Sqrt(r), r, d);
        using var ata = cpu.Allocate(new Shape(d, d), MemoryTag.Scratch);
        cpu.MatMul(a, true, a, false, ata);
        float[] m = TestUtil.ToArray(ata);
        for (int i = 0; i < d; i++)
            for (int j = 0; j < d; j++)
                Assert.InRange(m[i * d + j] - (i == j ? 1 : 0), -0.3, 0.3); // about 4.8 sd of sqrt(2/512) or sqrt(1/512)
    }
}
