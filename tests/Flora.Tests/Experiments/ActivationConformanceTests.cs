using Flora.Backends;
using Flora.Backends.Cpu;
using Flora.Experiments;
using Flora.Tensors;

namespace Flora.Tests.Experiments;

/// <summary>
/// The bf16-activation rows of <c>flora check --device cuda --precision bf16</c> run here with a second CPU backend in
/// bf16 mode in the device's place: every row must then agree exactly, which checks the check itself without a GPU.
/// </summary>
public class ActivationConformanceTests
{
    [Fact]
    public void The_bf16_activation_rows_agree_exactly_when_both_sides_are_the_cpu()
    {
        using var reference = new CpuBackend(new MemoryLedger(), GemmPrecision.Bf16);
        using var device = new CpuBackend(new MemoryLedger(), GemmPrecision.Bf16);
        var rows = new List<ConformanceRow>();
        ConformanceCheck.ActivationRows(reference, device, 3e-2, (op, error, tolerance, metric) => rows.Add(new ConformanceRow(op, error, tolerance, metric)));
        Assert.Equal(28, rows.Count);
        Assert.Contains(rows, r => r.Op.StartsWith("MatMulBiasGelu", StringComparison.Ordinal));
        Assert.Contains(rows, r => r.Op.StartsWith("Attention from bf16 q, k, v", StringComparison.Ordinal));
        Assert.Contains(rows, r => r.Op.StartsWith("gpt2 2 x 128", StringComparison.Ordinal));
        Assert.Equal(6, rows.Count(r => r.Op.StartsWith("llama 2 x 256", StringComparison.Ordinal)));      // head sizes 64 and 128, and 128 checkpointed
        Assert.Equal(4, rows.Count(r => r.Op.Contains("first block checkpointed", StringComparison.Ordinal)));
        Assert.Contains(rows, r => r.Op.StartsWith("Rotary on bf16 q", StringComparison.Ordinal));
        Assert.Contains(rows, r => r.Op.StartsWith("SwiGlu and SwiGluBackward on bf16", StringComparison.Ordinal));
        Assert.Equal(2, rows.Count(r => r.Op.StartsWith("RmsNorm into a bf16 output", StringComparison.Ordinal)));   // a warp and a block per row
        Assert.All(rows, r => Assert.True(r.Error == 0, $"{r.Op}: {r.Error} ({r.Metric})"));
        using var fp32 = TestUtil.Cpu();
        Assert.Throws<ArgumentException>(() => ConformanceCheck.ActivationRows(fp32, device, 3e-2, (_, _, _, _) => { }));
    }
}
