using Flora.Backends;
using Flora.Experiments;

namespace Flora.Tests.Experiments;

/// <summary>
/// The bf16-weight rows of <c>flora check --device cuda</c> run here with a second CPU backend in the device's place:
/// every row must then agree exactly, which checks the check itself (what it compares, and that it runs) without a GPU.
/// </summary>
public class WeightConformanceTests
{
    [Fact]
    public void The_bf16_weight_rows_agree_exactly_when_both_sides_are_the_cpu()
    {
        using var reference = TestUtil.Cpu();
        using var device = TestUtil.Cpu();
        var rows = new List<ConformanceRow>();
        ConformanceCheck.WeightRows(reference, device, "cpu", GemmPrecision.Fp32, 1e-5, (op, error, tolerance, metric) => rows.Add(new ConformanceRow(op, error, tolerance, metric)));
        Assert.True(rows.Count >= 14, $"{rows.Count} rows");
        Assert.Contains(rows, r => r.Op.StartsWith("StochasticRound", StringComparison.Ordinal));
        Assert.Contains(rows, r => r.Op.Contains("LinearCrossEntropy with a bf16 weight, V = 32,000"));
        Assert.Contains(rows, r => r.Op.StartsWith("flora, 3 steps", StringComparison.Ordinal));
        Assert.Equal(4, rows.Count(r => r.Op.StartsWith("AdafactorUpdateRounded", StringComparison.Ordinal)));
        Assert.Equal(9, rows.Count(r => r.Op.StartsWith("AdafactorFloraOfficialStep", StringComparison.Ordinal)));
        Assert.All(rows, r => Assert.True(r.Error == 0, $"{r.Op}: {r.Error} ({r.Metric})"));
    }
}
