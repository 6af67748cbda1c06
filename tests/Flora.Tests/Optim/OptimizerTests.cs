using Flora.Backends;
using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Tests.Optim;

/// <summary>Each optimizer against the scalar reference for three steps on a tiny matrix, and hand-worked first steps.</summary>
public class OptimizerTests
{
    private const int N = 2, M = 3;
    private static readonly double[] W0 = { 0.5, -0.25, 1.0, 0.75, -1.5, 0.125 };
    private static readonly double[][] Grads =
    {
        new[] { 0.1, -0.2, 0.3, 0.05, 0.4, -0.6 },
        new[] { -0.3, 0.1, 0.2, -0.5, 0.25, 0.15 },
        new[] { 0.2, 0.2, -0.1, 0.3, -0.35, 0.45 },
    };

    private static Parameter NewParameter(IBackend cpu, double[] values, string name = "w", int n = N, int m = M)
    {
        var p = new Parameter(cpu, name, cpu.Allocate(new Shape(n, m), MemoryTag.Parameters));
        cpu.Upload(values.Select(v => (float)v).ToArray(), p.Value);
        return p;
    }

    /// <summary>Runs three steps of the optimizer and of the reference; compares after every step.</summary>
    private static void Compare(Func<IBackend, Parameter, Optimizer> make, Action<double[], double[]> reference, double tol = 2e-6)
    {
        using var cpu = TestUtil.Cpu();
        using var p = NewParameter(cpu, W0);
        using var opt = make(cpu, p);
        using var g = cpu.Allocate(new Shape(N, M), MemoryTag.Scratch);
        var w = (double[])W0.Clone();
        for (int step = 0; step < Grads.Length; step++)
        {
            cpu.Upload(Grads[step].Select(v => (float)v).ToArray(), g);
            opt.Update(p, g);
            reference(w, Grads[step]);
            float[] got = TestUtil.ToArray(p.Value);
            for (int i = 0; i < w.Length; i++)
                Assert.True(Math.Abs(got[i] - w[i]) <= tol * (1 + Math.Abs(w[i])), $"step {step + 1}, element {i}: got {got[i]}, expected {w[i]}");
        }
    }

    [Theory]
    [InlineData(0.0, false, 0.0)]
    [InlineData(0.9, false, 0.0)]
    [InlineData(0.9, true, 0.0)]
    [InlineData(0.9, true, 0.01)]
    public void Sgd_matches_the_reference(double momentum, bool nesterov, double wd)
    {
        var reference = new Reference.Sgd(0.1, momentum, nesterov, wd);
        Compare((cpu, p) => new Sgd(cpu, [p], 0.1f, (float)momentum, nesterov, (float)wd), reference.Step);
    }

    [Fact]
    public void Sgd_with_momentum_by_hand()
    {
        // w = 0.5, g1 = 0.1, g2 = -0.3, lr 0.1, momentum 0.9:
        // b1 = 0.1, w1 = 0.5 - 0.01 = 0.49; b2 = 0.9 * 0.1 - 0.3 = -0.21, w2 = 0.49 + 0.021 = 0.511.
        using var cpu = TestUtil.Cpu();
        using var p = NewParameter(cpu, [0.5], n: 1, m: 1);
        using var opt = new Sgd(cpu, [p], 0.1f, 0.9f);
        using var g = cpu.Allocate(new Shape(1, 1), MemoryTag.Scratch);
        cpu.Upload([0.1f], g); opt.Update(p, g);
        Assert.Equal(0.49f, TestUtil.ToArray(p.Value)[0], 1e-6f);
        cpu.Upload([-0.3f], g); opt.Update(p, g);
        Assert.Equal(0.511f, TestUtil.ToArray(p.Value)[0], 1e-6f);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.1)]
    public void AdamW_matches_the_reference(double wd)
    {
        var reference = new Reference.AdamW(0.01, 0.9, 0.999, 1e-8, wd);
        Compare((cpu, p) => new AdamW(cpu, [p], 0.01f, 0.9f, 0.999f, 1e-8f, (float)wd), reference.Step);
    }

    [Fact]
    public void AdamW_first_step_by_hand()
    {
        // Step 1: m^ = g, v^ = g^2, so W = W (1 - lr wd) - lr g / (|g| + eps) = 0.5 (1 - 0.001) - 0.01 sign(g).
        using var cpu = TestUtil.Cpu();
        using var p = NewParameter(cpu, [0.5, 0.5], n: 1, m: 2);
        using var opt = new AdamW(cpu, [p], 0.01f, weightDecay: 0.1f);
        using var g = cpu.Allocate(new Shape(1, 2), MemoryTag.Scratch);
        cpu.Upload([0.3f, -2f], g);
        opt.Update(p, g);
        float[] w = TestUtil.ToArray(p.Value);
        Assert.Equal(0.4995f - 0.01f, w[0], 1e-6f);
        Assert.Equal(0.4995f + 0.01f, w[1], 1e-6f);
    }

    public static TheoryData<string> AdafactorCases => new()
    {
        "default", "no-scale", "relative", "warmup", "weight-decay", "clip", "unfactored", "momentum", "momentum-unfactored",
    };

    [Theory]
    [MemberData(nameof(AdafactorCases))]
    public void Adafactor_matches_the_reference_for_each_option(string option)
    {
        var reference = new Reference.Adafactor(N, M);
        var options = new AdafactorOptions { LearningRate = 0.5f };
        switch (option)
        {
            case "no-scale": options = options with { ScaleParameter = false, LearningRate = 0.01f }; reference.ScaleParameter = false; reference.Lr = 0.01; break;
            case "relative": options = options with { LearningRate = null, RelativeStep = true }; reference.Lr = null; reference.RelativeStep = true; break;
            case "warmup": options = options with { LearningRate = null, RelativeStep = true, WarmupInit = true }; reference.Lr = null; reference.RelativeStep = true; reference.WarmupInit = true; break;
            case "weight-decay": options = options with { WeightDecay = 0.2f }; reference.Wd = 0.2; break;
            case "clip": options = options with { ClipThreshold = 0.3f }; reference.Clip = 0.3; break;
            case "unfactored": options = options with { Factored = false }; reference.Factored = false; break;
            case "momentum": options = options with { Momentum = MomentumOptions.Naive(0.9f) }; reference.Beta1 = 0.9; break;
            case "momentum-unfactored": options = options with { Factored = false, Momentum = MomentumOptions.Naive(0.8f) }; reference.Factored = false; reference.Beta1 = 0.8; break;
        }
        reference.Lr = option is "relative" or "warmup" ? null : options.LearningRate;
        Compare((cpu, p) => new Adafactor(cpu, [p], options), reference.Step, tol: 1e-5);
    }

    [Fact]
    public void Adafactor_first_step_by_hand()
    {
        // G = [[1, 2], [3, 4]]: rows = [2.5, 12.5] (mean 7.5), columns = [5, 10] (beta2_1 = 0).
        // u = G / sqrt(rows_i / 7.5 * columns_j) = [[0.774597, 1.095445], [1.039230, 0.979796]], RMS(u) = 0.9798 < 1.
        // W0 = 0, so the parameter scale is eps2 = 1e-3 and W1 = -1e-3 u.
        using var cpu = TestUtil.Cpu();
        using var p = NewParameter(cpu, [0, 0, 0, 0], n: 2, m: 2);
        using var opt = new Adafactor(cpu, [p], new AdafactorOptions { LearningRate = 1f });
        using var g = cpu.Allocate(new Shape(2, 2), MemoryTag.Scratch);
        cpu.Upload([1f, 2f, 3f, 4f], g);
        opt.Update(p, g);
        float[] w = TestUtil.ToArray(p.Value);
        Assert.Equal(-0.000774597f, w[0], 1e-9f);
        Assert.Equal(-0.001095445f, w[1], 1e-9f);
        Assert.Equal(-0.001039230f, w[2], 1e-9f);
        Assert.Equal(-0.000979796f, w[3], 1e-9f);
    }

    [Fact]
    public void Parameter_groups_have_their_own_learning_rate_and_weight_decay()
    {
        using var cpu = TestUtil.Cpu();
        using var a = NewParameter(cpu, [1.0], "a", 1, 1);
        using var b = NewParameter(cpu, [1.0], "b", 1, 1);
        using var opt = new Sgd(cpu, [new ParameterGroup([a]), new ParameterGroup([b], learningRate: 0.5f, weightDecay: 0.1f)], 0.1f);
        using var g = cpu.Allocate(new Shape(1, 1), MemoryTag.Scratch);
        cpu.Upload([1f], g); opt.Update(a, g);
        cpu.Upload([1f], g); opt.Update(b, g);
        Assert.Equal(0.9f, TestUtil.ToArray(a.Value)[0], 1e-6f);                 // 1 - 0.1 * 1
        Assert.Equal(1f - 0.5f * (1f + 0.1f), TestUtil.ToArray(b.Value)[0], 1e-6f); // 1 - 0.5 (1 + 0.1 * 1)
        opt.LearningRateScale = 0.5f;
        cpu.Upload([1f], g); opt.Update(a, g);
        Assert.Equal(0.85f, TestUtil.ToArray(a.Value)[0], 1e-6f);
    }

    public static TheoryData<string, string> InvalidSettings => new()
    {
        { "flora rank 0", "rank must be positive, got 0" },
        { "flora rank -3", "rank must be positive, got -3" },
        { "flora kappa 0", "kappa must be positive, got 0" },
        { "flora beta 1", "beta must be in [0, 1), got 1" },
        { "flora beta -0.1", "beta must be in [0, 1), got -0.1" },
        { "flora forced rank above dimension", "rank 5 is larger than the compressed dimension 2" },
        { "adafactor negative weight decay", "weight decay must be non-negative and finite, got -0.1" },
        { "adafactor no learning rate", "needs a learning rate" },
        { "adafactor lr with relative step", "cannot combine a manual learning rate" },
        { "adafactor warmup without relative", "warmup_init requires relative_step" },
        { "adafactor decay rate 0.5", "decay rate must be in [-1, 0), got 0.5" },
        { "adafactor clip 0", "clip threshold must be positive, got 0" },
        { "adamw lr 0", "learning rate must be positive and finite, got 0" },
        { "adamw beta2 1", "beta2 must be in [0, 1), got 1" },
        { "adamw negative weight decay", "weight decay must be non-negative and finite, got -1" },
        { "sgd lr -1", "learning rate must be positive and finite, got -1" },
        { "sgd momentum 1", "momentum must be in [0, 1), got 1" },
        { "sgd nesterov without momentum", "Nesterov momentum needs momentum > 0" },
    };

    [Theory]
    [MemberData(nameof(InvalidSettings))]
    public void Invalid_hyper_parameters_throw_naming_the_value(string setting, string message)
    {
        using var cpu = TestUtil.Cpu();
        using var p = NewParameter(cpu, W0);
        Parameter[] ps = [p];
        Action make = setting switch
        {
            "flora rank 0" => () => new FloraAdafactor(cpu, ps, 0.1f, rank: 0),
            "flora rank -3" => () => new FloraAdafactor(cpu, ps, 0.1f, rank: -3),
            "flora kappa 0" => () => new FloraAdafactor(cpu, ps, 0.1f, rank: 1, kappa: 0),
            "flora beta 1" => () => new FloraAdafactor(cpu, ps, 0.1f, rank: 1, beta: 1f),
            "flora beta -0.1" => () => new FloraAdafactor(cpu, ps, 0.1f, rank: 1, beta: -0.1f),
            "flora forced rank above dimension" => () => new FloraAdafactor(cpu, ps, new AdafactorOptions
                { LearningRate = 0.1f, Momentum = MomentumOptions.Flora(5) with { ForceCompression = true } }),
            "adafactor negative weight decay" => () => new Adafactor(cpu, ps, new AdafactorOptions { LearningRate = 0.1f, WeightDecay = -0.1f }),
            "adafactor no learning rate" => () => new Adafactor(cpu, ps, new AdafactorOptions()),
            "adafactor lr with relative step" => () => new Adafactor(cpu, ps, new AdafactorOptions { LearningRate = 0.1f, RelativeStep = true }),
            "adafactor warmup without relative" => () => new Adafactor(cpu, ps, new AdafactorOptions { LearningRate = 0.1f, WarmupInit = true }),
            "adafactor decay rate 0.5" => () => new Adafactor(cpu, ps, new AdafactorOptions { LearningRate = 0.1f, DecayRate = 0.5f }),
            "adafactor clip 0" => () => new Adafactor(cpu, ps, new AdafactorOptions { LearningRate = 0.1f, ClipThreshold = 0 }),
            "adamw lr 0" => () => new AdamW(cpu, ps, 0f),
            "adamw beta2 1" => () => new AdamW(cpu, ps, beta2: 1f),
            "adamw negative weight decay" => () => new AdamW(cpu, ps, weightDecay: -1f),
            "sgd lr -1" => () => new Sgd(cpu, ps, -1f),
            "sgd momentum 1" => () => new Sgd(cpu, ps, 0.1f, momentum: 1f),
            "sgd nesterov without momentum" => () => new Sgd(cpu, ps, 0.1f, nesterov: true),
            _ => throw new ArgumentOutOfRangeException(nameof(setting)),
        };
        var e = Assert.Throws<ArgumentException>(make);
        Assert.Contains(message, e.Message);
    }
}
