using Flora.Backends;
using Flora.Tensors;

namespace Flora.Tests.Backends;

/// <summary>Attention with padded keys (AttentionShape.KeyLengths): padding must be invisible.</summary>
public class AttentionMaskTests
{
    /// <summary>
    /// Batch element 1 has only 5 real keys of 9: its output must equal attention over those 5 keys alone, its
    /// queries' gradients likewise, and the padding keys' gradients must be exactly 0. Element 0 (all 9 real)
    /// must equal unmasked attention.
    /// </summary>
    [Fact]
    public void Padding_keys_get_no_attention_and_no_gradient()
    {
        using var cpu = TestUtil.Cpu();
        const int B = 2, H = 2, Tq = 4, Tk = 9, hd = 3, C = H * hd;
        int[] lengths = [9, 5];
        using var q = TestUtil.Random(cpu, 1, 1f, B * Tq, C);
        using var kv = TestUtil.Random(cpu, 2, 1f, B * Tk, 2 * C);
        using var dOut = TestUtil.Random(cpu, 3, 1f, B * Tq, C);
        var masked = Run(cpu, new AttentionShape(B, H, Tq, Tk, hd, false, 0.5f, lengths), q, kv, dOut);

        float[] qa = TestUtil.ToArray(q), kva = TestUtil.ToArray(kv), da = TestUtil.ToArray(dOut);
        for (int b = 0; b < B; b++)
        {
            int keys = lengths[b];
            using var qb = TestUtil.FromArray(cpu, qa[(b * Tq * C)..((b + 1) * Tq * C)], Tq, C);
            using var kvb = TestUtil.FromArray(cpu, kva[(b * Tk * 2 * C)..((b * Tk + keys) * 2 * C)], keys, 2 * C);
            using var db = TestUtil.FromArray(cpu, da[(b * Tq * C)..((b + 1) * Tq * C)], Tq, C);
            var alone = Run(cpu, new AttentionShape(1, H, Tq, keys, hd, false, 0.5f), qb, kvb, db);
            AssertClose(alone.Output, masked.Output[(b * Tq * C)..((b + 1) * Tq * C)]);
            AssertClose(alone.DQ, masked.DQ[(b * Tq * C)..((b + 1) * Tq * C)]);
            AssertClose(alone.DKV, masked.DKV[(b * Tk * 2 * C)..((b * Tk + keys) * 2 * C)]);
            Assert.All(masked.DKV[((b * Tk + keys) * 2 * C)..((b + 1) * Tk * 2 * C)], g => Assert.Equal(0f, g));
        }
    }

    [Fact]
    public void Key_lengths_out_of_range_are_a_clear_error()
    {
        using var cpu = TestUtil.Cpu();
        using var q = cpu.Allocate(new Shape(4, 4), MemoryTag.Scratch);
        using var kv = cpu.Allocate(new Shape(6, 8), MemoryTag.Scratch);
        using var o = cpu.Allocate(new Shape(4, 4), MemoryTag.Scratch);
        using var lse = cpu.Allocate(new Shape(2, 1, 2), MemoryTag.Scratch);
        var shape = new AttentionShape(2, 1, 2, 3, 4, false, 1f, [3, 4]);
        var e = Assert.Throws<ArgumentException>(() => cpu.AttentionForward(shape, new(q, 0), new(kv, 0), new(kv, 4), o, lse));
        Assert.Contains("in [1, 3]", e.Message);
    }

    private static (float[] Output, float[] DQ, float[] DKV) Run(IBackend b, AttentionShape s, Tensor q, Tensor kv, Tensor dOut)
    {
        int c = s.Width;
        using var o = b.Allocate(new Shape(s.Batch * s.QueryLength, c), MemoryTag.Scratch);
        using var lse = b.Allocate(new Shape(s.Batch, s.Heads, s.QueryLength), MemoryTag.Scratch);
        using var dq = b.Allocate(new Shape(s.Batch * s.QueryLength, c), MemoryTag.Scratch);
        using var dkv = b.Allocate(new Shape(s.Batch * s.KeyLength, 2 * c), MemoryTag.Scratch);
        b.AttentionForward(s, new(q, 0), new(kv, 0), new(kv, c), o, lse);
        b.AttentionBackward(s, dOut, new(q, 0), new(kv, 0), new(kv, c), o, lse, new(dq, 0), new(dkv, 0), new(dkv, c));
        return (TestUtil.ToArray(o), TestUtil.ToArray(dq), TestUtil.ToArray(dkv));
    }

    private static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5f * (1 + Math.Abs(expected[i])), $"element {i}: {expected[i]} vs {actual[i]}");
    }
}
