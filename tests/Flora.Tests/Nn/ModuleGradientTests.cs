using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Tests.Nn;

public class ModuleGradientTests
{
    [Theory]
    [InlineData(1, 3, 2, true)]
    [InlineData(5, 7, 4, true)]
    [InlineData(8, 16, 9, false)]
    public void Linear_passes_the_finite_difference_check(int n, int inFeatures, int outFeatures, bool bias)
    {
        using var cpu = TestUtil.Cpu();
        using var layer = new Linear(cpu, "fc", inFeatures, outFeatures, bias, seed: 5);
        using var x = TestUtil.Random(cpu, 6, 1, n, inFeatures);
        GradientCheck.Run(cpu, layer, x);
    }

    [Fact]
    public void Linear_accepts_three_dimensional_input_by_flattening_leading_dimensions()
    {
        using var cpu = TestUtil.Cpu();
        using var layer = new Linear(cpu, "fc", 6, 5, seed: 1);
        using var x = TestUtil.Random(cpu, 2, 1, 2, 3, 6);
        Assert.Equal(new Shape(2, 3, 5), layer.Forward(x).Shape);
        GradientCheck.Run(cpu, layer, x);
    }

    [Fact]
    public void Relu_passes_the_finite_difference_check_away_from_the_kink()
    {
        using var cpu = TestUtil.Cpu();
        using var relu = new Relu(cpu);
        // Inputs at least 0.1 away from 0 so that +-eps never crosses the kink.
        float[] values = Enumerable.Range(0, 40).Select(i => (i % 2 == 0 ? 1 : -1) * (0.1f + 0.05f * i)).ToArray();
        using var x = TestUtil.FromArray(cpu, values, 5, 8);
        GradientCheck.Run(cpu, relu, x);
    }

    [Fact]
    public void Gelu_passes_the_finite_difference_check()
    {
        using var cpu = TestUtil.Cpu();
        using var gelu = new Gelu(cpu);
        using var x = TestUtil.Random(cpu, 3, 2, 6, 11);
        GradientCheck.Run(cpu, gelu, x, tol: 5e-3);
    }

    [Fact]
    public void Sequential_mlp_passes_the_finite_difference_check()
    {
        using var cpu = TestUtil.Cpu();
        using var net = new Sequential(cpu, "mlp",
            new Linear(cpu, "fc1", 6, 10, seed: 1), new Gelu(cpu),
            new Linear(cpu, "fc2", 10, 8, seed: 2), new Gelu(cpu),
            new Linear(cpu, "fc3", 8, 3, seed: 3));
        using var x = TestUtil.Random(cpu, 4, 1, 4, 6);
        GradientCheck.Run(cpu, net, x);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void LoraLinear_passes_the_finite_difference_check_with_the_base_frozen(bool trainA)
    {
        using var cpu = TestUtil.Cpu();
        using var lora = new LoraLinear(new Linear(cpu, "fc", 9, 7, seed: 1), rank: 3, alpha: 6, seed: 2, trainA);
        cpu.FillGaussian(lora.B.Value, 3, 0.5f); // B = 0 at init would hide errors in dA
        using var x = TestUtil.Random(cpu, 4, 1, 5, 9);
        GradientCheck.Run(cpu, lora, x);
        Assert.Null(lora.Base.Weight.Grad);
    }

    [Fact]
    public void LoraLinear_merge_keeps_the_output_and_rejects_a_rank_above_the_dimensions()
    {
        using var cpu = TestUtil.Cpu();
        using var lora = new LoraLinear(new Linear(cpu, "fc", 9, 7, seed: 1), rank: 3, alpha: 6, seed: 2);
        cpu.FillGaussian(lora.B.Value, 3, 0.5f);
        using var x = TestUtil.Random(cpu, 4, 1, 5, 9);
        float[] before = TestUtil.ToArray(lora.Forward(x));
        lora.Merge();
        float[] after = TestUtil.ToArray(lora.Forward(x));
        for (int i = 0; i < before.Length; i++) Assert.Equal(before[i], after[i], 1e-4f);
        Assert.Equal(0, cpu.SumOfSquares(lora.B.Value));

        var e = Assert.Throws<ArgumentException>(() => new LoraLinear(new Linear(cpu, "small", 9, 7), rank: 8, alpha: 8, seed: 0));
        Assert.Contains("rank 8", e.Message);
    }

    [Fact]
    public void Parameter_gradients_accumulate_across_backward_passes()
    {
        using var cpu = TestUtil.Cpu();
        using var layer = new Linear(cpu, "fc", 4, 3, seed: 1);
        using var x = TestUtil.Random(cpu, 2, 1, 5, 4);
        using var dy = TestUtil.Random(cpu, 3, 1, 5, 3);
        var sink = new AccumulateSink(cpu, new Sgd(cpu, layer.Parameters(), 1f));
        layer.Forward(x);
        layer.Backward(dy, sink);
        float[] once = TestUtil.ToArray(layer.Weight.Grad!);
        layer.Forward(x);
        layer.Backward(dy, sink);
        float[] twice = TestUtil.ToArray(layer.Weight.Grad!);
        for (int i = 0; i < once.Length; i++) Assert.Equal(2 * once[i], twice[i], 1e-5f);
    }

    [Fact]
    public void Softmax_cross_entropy_loss_passes_the_finite_difference_check()
    {
        using var cpu = TestUtil.Cpu();
        using var loss = new SoftmaxCrossEntropyLoss(cpu);
        using var logits = TestUtil.Random(cpu, 1, 2, 6, 5);
        using var targets = TestUtil.Labels(cpu, 0, 4, 2, 2, 1, 3);
        float[] values = TestUtil.ToArray(logits);                 // the loss works in place: keep the logits
        loss.Forward(logits, targets);
        float[] analytic = TestUtil.ToArray(loss.Backward());
        const float eps = 1e-2f;
        for (int i = 0; i < values.Length; i++)
        {
            float v = values[i];
            values[i] = v + eps; cpu.Upload(values, logits); double plus = loss.Forward(logits, targets);
            values[i] = v - eps; cpu.Upload(values, logits); double minus = loss.Forward(logits, targets);
            values[i] = v; cpu.Upload(values, logits);
            Assert.Equal((plus - minus) / (2 * eps), analytic[i], 2e-3);
        }
    }

    [Fact]
    public void Sequential_names_the_failing_child_in_a_shape_error()
    {
        using var cpu = TestUtil.Cpu();
        using var net = new Sequential(cpu, "mlp", new Linear(cpu, "fc1", 4, 5), new Relu(cpu), new Linear(cpu, "fc2", 6, 2));
        using var x = TestUtil.Random(cpu, 1, 1, 3, 4);
        var e = Assert.Throws<ArgumentException>(() => net.Forward(x));
        Assert.Contains("mlp[2]", e.Message);
        Assert.Contains("fc2", e.Message);
        Assert.Contains("expected 6", e.Message);
    }
}
