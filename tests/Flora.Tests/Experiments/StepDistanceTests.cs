using Flora.Experiments;
using Flora.Tensors;
using Xunit;

namespace Flora.Tests.Experiments;

/// <summary>The bf16 distance of flora check's bf16-weight rows: steps at the values' scale, not bit patterns through zero.</summary>
public class StepDistanceTests
{
    private static ushort[] Bf16(params float[] values) => values.Select(BFloat16.RoundToNearestEven).ToArray();

    [Fact]
    public void Equal_tensors_are_zero_steps_apart()
    {
        var a = Bf16(0.05f, -0.03f, 1e-6f, 0f);
        Assert.Equal(0, ConformanceCheck.StepDistance(a, a));
    }

    [Fact]
    public void Neighbouring_bf16_values_are_one_step_apart()
    {
        var a = Bf16(0.05f, -0.03f, 0.04f);
        var b = (ushort[])a.Clone();
        b[1]++;                                                                   // -0.03 one bit pattern further from zero
        Assert.Equal(1, ConformanceCheck.StepDistance(a, b), 6);
    }

    [Fact]
    public void A_sign_flip_next_to_zero_is_a_small_fraction_of_a_step_at_the_weights_scale()
    {
        // +1e-6 against -1e-6: about 27,000 bit patterns apart (the old metric), 2e-6 apart in value.
        var a = Bf16(0.05f, -0.04f, 0.03f, 1e-6f);
        var b = Bf16(0.05f, -0.04f, 0.03f, -1e-6f);
        double steps = ConformanceCheck.StepDistance(a, b);
        Assert.InRange(steps, 0, 0.5);
    }

    [Fact]
    public void A_wrong_update_is_many_steps()
    {
        // 0.05 against 0.052: the step of bf16 at 0.05 is 2^-12 (2.4e-4), so 0.002 is about 8 steps.
        var a = Bf16(0.05f, -0.04f, 0.03f);
        var b = Bf16(0.052f, -0.04f, 0.03f);
        Assert.InRange(ConformanceCheck.StepDistance(a, b), 7, 9);
        Assert.Equal(double.PositiveInfinity, ConformanceCheck.StepDistance(a, Bf16(0.05f, float.NaN, 0.03f)));
    }

    [Fact]
    public void An_error_of_a_bf16_product_is_measured_at_the_updates_scale()
    {
        // A weight 0.05 that an update of -0.0498 brought to 2e-4 on one device and 2e-4 + 0.0498 / 256 on the other (the
        // relative error of a bf16 product): many steps at the value's scale, under one at the update's.
        var start = Bf16(0.05f, -0.04f, 0.03f, 0.05f);
        var a = Bf16(0.05f, -0.04f, 0.03f, 2e-4f);
        var b = Bf16(0.05f, -0.04f, 0.03f, 2e-4f + 0.0498f / 256);
        Assert.True(ConformanceCheck.StepDistance(a, b) > 2);
        Assert.InRange(ConformanceCheck.StepDistance(a, b, start), 0, 1);
    }

    [Fact]
    public void A_wrong_update_is_many_steps_at_the_updates_scale_too()
    {
        // The same update on one device, none on the other (or twice it): about 2^7 steps at the update's scale.
        var start = Bf16(0.05f, -0.04f, 0.03f);
        var a = Bf16(0.05f, -0.04f, 0.02f);
        Assert.True(ConformanceCheck.StepDistance(a, start, start) > 50);
        Assert.True(ConformanceCheck.StepDistance(a, Bf16(0.05f, -0.04f, 0.01f), start) > 50);
        Assert.Equal(double.PositiveInfinity, ConformanceCheck.StepDistance(a, a, Bf16(0.05f)));
    }

    [Fact]
    public void Stochastic_rounding_with_shared_bits_drifts_at_most_one_step_per_update()
    {
        // The bound behind the check's tolerance (one bf16 step per update): two devices apply the same update to the
        // same bf16 weights 3 times (the check's gradient is the same each step), with a relative error of up to 2^-8 of
        // the update on one side (a bf16 product) and the same random bits for the rounding. No value ends more than 3
        // steps apart at the scale of the values it passed through, and some drift by more than one.
        var random = new Random(5);
        const int N = 20_000, Updates = 3;
        var start = new ushort[N];
        var updates = new float[N];
        for (int i = 0; i < N; i++)
        {
            start[i] = BFloat16.RoundToNearestEven((float)(random.NextDouble() * 0.1 - 0.05));
            updates[i] = (float)(random.NextDouble() * 0.04 - 0.02);
        }
        ushort[] a = (ushort[])start.Clone(), b = (ushort[])start.Clone();
        for (int step = 0; step < Updates; step++)
            for (int i = 0; i < N; i++)
            {
                float update = updates[i], skew = update * (float)(random.NextDouble() * 2 - 1) / 256;
                uint bits = (uint)random.Next(65536);
                a[i] = BFloat16.RoundStochastic(BFloat16.ToSingle(a[i]) + update, bits);
                b[i] = BFloat16.RoundStochastic(BFloat16.ToSingle(b[i]) + update + skew, bits);
            }
        double distance = ConformanceCheck.StepDistance(a, b, start);
        Assert.InRange(distance, 1.01, Updates);
    }
}
