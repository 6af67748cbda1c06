using System.Globalization;
using Flora.Reporting;

namespace Flora.Tests.Reporting;

public class ChartAxisTests
{
    [Theory]
    [InlineData(0.0, 1.0)]
    [InlineData(0.0, 7.3)]
    [InlineData(2.3e-4, 9.1e-4)]
    [InlineData(-5.0, 5.0)]
    [InlineData(3.0, 3.0)]
    [InlineData(0.0, 0.0)]
    [InlineData(-1e-7, -1e-7)]
    [InlineData(0.97, 1.03)]
    [InlineData(-2.5e6, 1.2e7)]
    [InlineData(1e9, 1e9 + 0.5)]
    public void LinearTicksAreNiceAndCoverTheRange(double min, double max)
    {
        foreach (int target in new[] { 2, 5, 8 })
        {
            ChartAxis axis = ChartAxis.Linear(min, max, null, null, target);

            Assert.True(axis.Max > axis.Min);
            Assert.InRange(axis.Ticks.Length, 2, 25);
            // Free ends snap to ticks, so the ticks cover the whole data range.
            Assert.Equal(axis.Min, axis.Ticks[0]);
            Assert.Equal(axis.Max, axis.Ticks[^1]);
            Assert.True(axis.Ticks[0] <= min && axis.Ticks[^1] >= max, $"ticks {string.Join(" ", axis.Ticks)} do not cover {min}..{max}");
            if (min == max)
                Assert.True(axis.Min < min && axis.Max > max, "a degenerate range must be widened around the value");

            double step = axis.Ticks[1] - axis.Ticks[0];
            // Far from zero, neighbouring doubles are further apart than a millionth of the step.
            double ulp = Math.BitIncrement(axis.Ticks.Max(Math.Abs)) - axis.Ticks.Max(Math.Abs);
            double tolerance = step * 1e-6 + 4 * ulp;
            AssertNiceStep(step, tolerance);
            for (int i = 1; i < axis.Ticks.Length; i++)
                Assert.Equal(step, axis.Ticks[i] - axis.Ticks[i - 1], tolerance);

            Assert.Equal(axis.Ticks.Length, axis.Labels.Length);
            for (int i = 0; i < axis.Ticks.Length; i++)
            {
                string label = axis.Labels[i];
                Assert.DoesNotContain("E", label);
                Assert.DoesNotContain(",", label);
                Assert.True(label.Length <= 14, $"label '{label}' is too long");
                double parsed = double.Parse(label, NumberStyles.Float, CultureInfo.InvariantCulture);
                Assert.Equal(axis.Ticks[i], parsed, tolerance);
            }
            Assert.Equal(axis.Labels.Length, axis.Labels.Distinct().Count());
        }
    }

    [Fact]
    public void FixedEndsAreKeptAndOnlyTicksInsideAreLabelled()
    {
        ChartAxis axis = ChartAxis.Linear(1, 5, fixedMin: 0, fixedMax: 7.3, targetTicks: 7);
        Assert.Equal(0, axis.Min);
        Assert.Equal(7.3, axis.Max);
        Assert.Equal(new[] { 0.0, 1, 2, 3, 4, 5, 6, 7 }, axis.Ticks);
    }

    [Fact]
    public void FixedMinimumAboveFixedMaximumThrows() =>
        Assert.Throws<InvalidOperationException>(() => ChartAxis.Linear(0, 1, 2, 1, 5));

    [Theory]
    [InlineData(0.0, 1.0, 5, "0.0 0.2 0.4 0.6 0.8 1.0")]
    [InlineData(0.0, 7.3, 4, "0 2 4 6 8")]
    [InlineData(-5.0, 5.0, 5, "-6 -4 -2 0 2 4 6")]
    [InlineData(2.3e-4, 9.1e-4, 6, "2e-4 3e-4 4e-4 5e-4 6e-4 7e-4 8e-4 9e-4 1e-3")]
    [InlineData(0.0, 3e-4, 6, "0 5e-5 1e-4 1.5e-4 2e-4 2.5e-4 3e-4")]
    [InlineData(0.0, 50000.0, 5, "0 10000 20000 30000 40000 50000")]
    [InlineData(0.0, 3e6, 6, "0 5e5 1e6 1.5e6 2e6 2.5e6 3e6")]
    [InlineData(0.1, 0.3, 2, "0.1 0.2 0.3")]
    [InlineData(-1.0, 0.5, 3, "-1.0 -0.5 0.0 0.5")]
    [InlineData(0.0, 0.003, 3, "0.000 0.001 0.002 0.003")]
    [InlineData(0.0, 2.5e5, 5, "0 50000 100000 150000 200000 250000")]
    [InlineData(0.9999, 1.0001, 4, "0.99990 0.99995 1.00000 1.00005 1.00010")]
    public void LinearLabelsAreShortAndInvariant(double min, double max, int target, string expected)
    {
        string labels = TestCultures.With(TestCultures.German(),
            () => string.Join(" ", ChartAxis.Linear(min, max, null, null, target).Labels));
        Assert.Equal(expected, labels);
    }

    [Theory]
    [InlineData(0.003, 250.0, 8, "0.001 0.01 0.1 1 10 100 1000")]
    [InlineData(2.0, 8.0, 8, "1 10")]
    [InlineData(1e-6, 1.0, 8, "1e-6 1e-5 1e-4 1e-3 1e-2 1e-1 1")]
    public void LogLabels(double min, double max, int target, string expected) =>
        Assert.Equal(expected, string.Join(" ", ChartAxis.Log(min, max, null, null, target).Labels));

    [Theory]
    [InlineData(0.003, 250.0)]
    [InlineData(2.0, 8.0)]
    [InlineData(5.0, 5.0)]
    [InlineData(1.0, 1.0)]
    [InlineData(1e-12, 1e12)]
    public void LogTicksArePowersOfTenCoveringTheRange(double min, double max)
    {
        ChartAxis axis = ChartAxis.Log(min, max, null, null, 6);

        Assert.True(axis.IsLog);
        Assert.InRange(axis.Ticks.Length, 2, 8);
        Assert.True(axis.Min <= min && axis.Max >= max);
        if (min == max)
            Assert.True(axis.Min < min && axis.Max > max);
        foreach (double tick in axis.Ticks)
        {
            double exponent = Math.Log10(tick);
            Assert.Equal(Math.Round(exponent), exponent, 1e-9);
        }
        Assert.Equal(axis.Min, axis.Ticks[0]);
        Assert.Equal(axis.Max, axis.Ticks[^1]);
    }

    [Fact]
    public void LogAxisSurvivesTheWholeRangeOfDouble()
    {
        ChartAxis axis = ChartAxis.Log(3e-300, 2e300, null, null, 6);
        Assert.True(axis.Min > 0 && axis.Min <= 3e-300);
        Assert.True(double.IsFinite(axis.Max) && axis.Max >= 2e300);
        Assert.InRange(axis.Ticks.Length, 2, 8);
        Assert.All(axis.Ticks, t => Assert.InRange(t, axis.Min, axis.Max));
    }

    [Fact]
    public void LogAxisIgnoresNonPositiveFixedMinimum()
    {
        ChartAxis axis = ChartAxis.Log(0.5, 20, fixedMin: 0, fixedMax: null, targetTicks: 6);
        Assert.Equal(0.1, axis.Min, 1e-12);
        Assert.Equal(100, axis.Max, 1e-9);
    }

    [Fact]
    public void LogAxisWithinOneDecadeLabelsOneTwoFive()
    {
        ChartAxis axis = ChartAxis.Log(3, 40, fixedMin: 1.5, fixedMax: 60, targetTicks: 6);
        Assert.Equal(1.5, axis.Min);
        Assert.Equal(60, axis.Max);
        Assert.Equal(new[] { "2", "5", "10", "20", "50" }, axis.Labels);
    }

    [Fact]
    public void NoDataGivesAUsableDefaultRange()
    {
        ChartAxis linear = ChartAxis.Linear(double.NaN, double.NaN, null, null, 5);
        Assert.Equal(0, linear.Min);
        Assert.Equal(1, linear.Max);
        ChartAxis log = ChartAxis.Log(double.NaN, double.NaN, null, null, 5);
        Assert.Equal(1, log.Min);
        Assert.Equal(10, log.Max);
    }

    [Fact]
    public void FormatTicksAvoidsNegativeZeroAndNoise()
    {
        Assert.Equal(new[] { "-0.2", "0.0", "0.2" }, ChartAxis.FormatTicks(new[] { -0.2, -1e-17, 0.2 }, 0.2));
        Assert.Equal(new[] { "-5", "0", "5" }, ChartAxis.FormatTicks(new[] { -5, -1e-15, 5 }, 5));
        Assert.Equal(new[] { "0.3", "0.6" }, ChartAxis.FormatTicks(new[] { 0.1 + 0.2, 0.6 }, 0.3));
        Assert.Equal(new[] { "1.2e-4", "1.4e-4" }, ChartAxis.FormatTicks(new[] { 1.2e-4, 1.4e-4 }, 2e-5));
    }

    private static void AssertNiceStep(double step, double tolerance)
    {
        double exponent = Math.Floor(Math.Log10(step));
        double unit = Math.Pow(10, exponent);
        Assert.True(new[] { 1.0, 2, 5, 10 }.Any(m => Math.Abs(m * unit - step) <= tolerance), $"step {step} is not 1, 2 or 5 x 10^k");
    }
}
