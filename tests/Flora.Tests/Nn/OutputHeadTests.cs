using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;
using Flora.Training;

namespace Flora.Tests.Nn;

/// <summary>The fused output projection + cross-entropy (IBackend.LinearCrossEntropy) and the OutputHead that uses it.</summary>
public class OutputHeadTests
{
    /// <summary>
    /// A vocabulary of 100,000 makes the CPU backend take chunks of 83 rows, so 200 rows run in 3 chunks
    /// (the last one short); loss, dx and dW must equal the unfused path (full logits, loss, backward,
    /// two products) to float rounding, with ignored rows, a gradient scale and an accumulating dW.
    /// </summary>
    [Fact]
    public void Fused_chunks_match_the_unfused_projection_and_loss()
    {
        using var cpu = TestUtil.Cpu();
        const int N = 200, C = 8, V = 100_000;
        using var x = TestUtil.Random(cpu, 1, 1f, N, C);
        using var w = TestUtil.Random(cpu, 2, 0.5f, V, C);
        var random = new Random(3);
        int[] targetValues = Enumerable.Range(0, N).Select(i => i % 9 == 4 ? -1 : random.Next(V)).ToArray();
        using var targets = TestUtil.Labels(cpu, targetValues);
        const float scale = 0.01f, weightScale = 0.5f, weightBeta = 1f;

        // Unfused reference.
        using var logits = cpu.Allocate(new Shape(N, V), MemoryTag.Scratch);
        cpu.MatMul(x, false, w, true, logits);
        var (refSum, refCount) = cpu.SoftmaxCrossEntropy(logits, targets, logits);
        cpu.SoftmaxCrossEntropyBackward(logits, targets, logits, scale);
        using var refDx = cpu.Allocate(new Shape(N, C), MemoryTag.Scratch);
        cpu.MatMul(logits, false, w, false, refDx);
        using var refDw = TestUtil.Random(cpu, 4, 1f, V, C);
        float[] dwStart = TestUtil.ToArray(refDw);
        cpu.MatMul(logits, true, x, false, refDw, weightScale, weightBeta);

        using var dx = cpu.Allocate(new Shape(N, C), MemoryTag.Scratch);
        using var dw = TestUtil.FromArray(cpu, dwStart, V, C);
        var (sum, count) = cpu.LinearCrossEntropy(x, w, targets, scale, dx, dw, weightScale, weightBeta);

        Assert.Equal(refCount, count);
        Assert.Equal(N - targetValues.Count(t => t < 0), count);
        Assert.Equal(refSum, sum, refSum * 1e-6);
        AssertClose(TestUtil.ToArray(refDx), TestUtil.ToArray(dx), 1e-5);
        AssertClose(TestUtil.ToArray(refDw), TestUtil.ToArray(dw), 1e-5);

        // Loss only: the same sum, gradients untouched.
        var (sumOnly, countOnly) = cpu.LinearCrossEntropy(x, w, targets, 0f, null, null, 0f, 0f);
        Assert.Equal(sum, sumOnly, 1e-9);
        Assert.Equal(count, countOnly);
    }

    [Fact]
    public void Fused_head_gradients_pass_a_finite_difference_check()
    {
        using var cpu = TestUtil.Cpu();
        const int N = 6, C = 5, V = 7;
        using var head = new OutputHead(cpu, "lm_head", C, V, seed: 11, initStd: 0.7f);
        using var x = TestUtil.Random(cpu, 12, 1f, N, C);
        using var targets = TestUtil.Labels(cpu, 3, -1, 0, 6, 2, 2);
        double Loss() => head.ForwardLoss(x, targets);

        Loss();
        Assert.Equal(5, head.CountedRows);
        var sink = new AccumulateSink(cpu, new Sgd(cpu, head.Parameters(), 1f));
        float[] dx = TestUtil.ToArray(head.BackwardLoss(sink));
        float[] dw = TestUtil.ToArray(head.Weight.Grad!);

        const float eps = 1e-2f;
        foreach (var (tensor, analytic) in new[] { (x, dx), (head.Weight.Value, dw) })
        {
            float[] values = TestUtil.ToArray(tensor);
            for (int i = 0; i < values.Length; i++)
            {
                float original = values[i];
                values[i] = original + eps; cpu.Upload(values, tensor); double plus = Loss();
                values[i] = original - eps; cpu.Upload(values, tensor); double minus = Loss();
                values[i] = original; cpu.Upload(values, tensor);
                double numeric = (plus - minus) / (2 * eps);
                Assert.True(Math.Abs(numeric - analytic[i]) <= 1e-2 * (1 + Math.Abs(analytic[i])), $"element {i}: analytic {analytic[i]}, numeric {numeric}");
            }
        }
    }

    /// <summary>
    /// SGD with LOMO folds the update into the head's dW product (W += -lr dW, no gradient buffer). The loss kernel runs
    /// over chunks of rows (a vocabulary of 100,000 makes 83-row chunks on the CPU): every chunk's logits must read the
    /// weight as it was before the step, so the result equals plain SGD on the full gradient.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_fused_SGD_step_on_the_head_reads_the_weight_from_before_the_step(bool lossGradientsInForward)
    {
        const int N = 300, C = 8, V = 100_000;
        float[] After(bool lomo)
        {
            using var cpu = TestUtil.Cpu();
            using var head = new OutputHead(cpu, "lm_head", C, V, seed: 21, initStd: 0.5f);
            using var x = TestUtil.Random(cpu, 22, 1f, N, C);
            var random = new Random(23);
            using var targets = TestUtil.Labels(cpu, Enumerable.Range(0, N).Select(_ => random.Next(V)).ToArray());
            using var sgd = new Sgd(cpu, head.Parameters(), 50f) { GradientOptions = new PipelineOptions { Lomo = lomo } };
            head.ForwardLoss(x, targets, lossGradientsInForward ? sgd.Gradients : null);
            head.BackwardLoss(sgd.Gradients);
            sgd.Step();
            return TestUtil.ToArray(head.Weight.Value);
        }
        float[] plain = After(lomo: false), fused = After(lomo: true);
        Assert.True(plain.Zip(fused, (a, b) => Math.Abs(a - b)).Max() <= 1e-6f * plain.Max(Math.Abs), "the fused step read a weight updated by earlier chunks");
    }

    [Fact]
    public void Fused_loss_equals_the_loss_of_the_materialised_logits()
    {
        using var cpu = TestUtil.Cpu();
        using var head = new OutputHead(cpu, "lm_head", 16, 50, seed: 5, initStd: 0.3f);
        using var x = TestUtil.Random(cpu, 6, 1f, 10, 16);
        using var targets = TestUtil.Labels(cpu, 1, 2, 3, 4, 5, 6, 7, 8, 9, 49);
        float fused = head.ForwardLoss(x, targets);
        using var loss = new SoftmaxCrossEntropyLoss(cpu);
        float unfused = loss.Forward(head.Forward(x), targets);
        Assert.Equal(unfused, fused, 1e-5);
    }

    [Fact]
    public void Mismatched_shapes_are_clear_errors()
    {
        using var cpu = TestUtil.Cpu();
        using var x = cpu.Allocate(new Shape(4, 3), MemoryTag.Scratch);
        using var w = cpu.Allocate(new Shape(10, 5), MemoryTag.Scratch);
        using var t = TestUtil.Labels(cpu, 0, 1, 2, 3);
        Assert.Contains("disagree on C", Assert.Throws<ArgumentException>(() => cpu.LinearCrossEntropy(x, w, t, 1f, null, null, 0f, 0f)).Message);
        using var w3 = cpu.Allocate(new Shape(10, 3), MemoryTag.Scratch);
        using var t3 = TestUtil.Labels(cpu, 0, 1, 2);
        Assert.Contains("3 targets", Assert.Throws<ArgumentException>(() => cpu.LinearCrossEntropy(x, w3, t3, 1f, null, null, 0f, 0f)).Message);
        using var bad = TestUtil.Labels(cpu, 0, 1, 10, 3);
        Assert.Contains("target 10", Assert.Throws<ArgumentException>(() => cpu.LinearCrossEntropy(x, w3, bad, 1f, null, null, 0f, 0f)).Message);
    }

    private static void AssertClose(float[] expected, float[] actual, double relative)
    {
        double scale = expected.Max(v => Math.Abs((double)v)), worst = 0;
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        Assert.True(worst <= relative * scale, $"max difference {worst:G3} exceeds {relative} x {scale:G3}");
    }
}
