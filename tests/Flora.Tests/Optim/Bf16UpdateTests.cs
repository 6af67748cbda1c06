using Flora.Backends;
using Flora.Checkpoints;
using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;
using Flora.Tests.Backends;

namespace Flora.Tests.Optim;

/// <summary>
/// The update of a bf16 weight: fp32 arithmetic on its widened value, then stochastic rounding with the seed of the
/// parameter and the update's number (or rounding to nearest when asked); and the other places bf16 weights reach:
/// layers built in a <see cref="WeightStorage"/> scope, LoRA merging, safetensors files.
/// </summary>
public class Bf16UpdateTests
{
    // "flora-paper": Algorithm 2 as printed, whose update is the low-rank product applied to the weight (AdafactorLowRankUpdate).
    // "-clipfirst": Adafactor's momentum after clipping (Hugging Face's order), a path of its own.
    private static readonly string[] Names = ["adamw", "adafactor", "flora", "flora-paper", "flora-clipfirst", "adafactor-momentum-clipfirst", "adamw-flora", "sgd", "sgd-momentum", "galore"];

    public static TheoryData<string> Optimizers => new(Names);

    [Theory]
    [MemberData(nameof(Optimizers))]
    public void A_bf16_update_is_the_fp32_step_of_the_widened_weight_rounded_with_the_stream_of_its_name_and_step(string name)
    {
        using var cpu = TestUtil.Cpu();
        const int rows = 24, cols = 40;                                  // FLORA-eligible at rank 8 (low-rank update path)
        using var init = TestUtil.Random(cpu, 1, 0.05f, rows, cols);
        var half = new Parameter(cpu, "h.0.mlp.c_fc.weight", cpu.Allocate(new Shape(rows, cols), MemoryTag.Parameters, DType.BFloat16));
        var full = new Parameter(cpu, "h.0.mlp.c_fc.weight", cpu.Allocate(new Shape(rows, cols), MemoryTag.Parameters));
        cpu.Copy(init, half.Value);                                      // bf16 values
        cpu.Copy(half.Value, full.Value);                                // the same values in fp32
        string optimizer = name.Replace("-paper", "").Replace("-clipfirst", "");
        var spec = new OptimizerSpec
        {
            Name = optimizer, LearningRate = OptimizerSpec.DefaultLearningRate(optimizer), Rank = 8, Kappa = 2, GaLoreGap = 2,
            Variant = name.EndsWith("-paper", StringComparison.Ordinal) ? FloraVariant.Paper : FloraVariant.Official,
            MomentumOrder = name.EndsWith("-clipfirst", StringComparison.Ordinal) ? AdafactorMomentumOrder.ClipThenAverage : AdafactorMomentumOrder.AverageThenClip,
        };
        using var bf16 = spec.Create(cpu, [half]);
        using var fp32 = spec.Create(cpu, [full]);
        bf16.RoundingSeed = 1234;
        using var g = cpu.Allocate(new Shape(rows, cols), MemoryTag.Scratch);
        for (int step = 0; step < 3; step++)
        {
            // The fp32 optimizer steps the same values; its result, rounded with the seed of (name, step), is the bf16 weight.
            cpu.FillGaussian(g, (ulong)(10 + step), 0.01f);
            fp32.Update(full, g);
            cpu.FillGaussian(g, (ulong)(10 + step), 0.01f);
            bf16.Update(half, g);
            float[] exact = full.Value.ToArray();
            var expected = new ushort[exact.Length];
            StochasticRounding.Round(exact, expected, bf16.RoundingSeedOf(half, step));
            Assert.Equal(expected, BFloat16Tests.Bits(half.Value));
            Assert.Equal(Seeds.Derive(Seeds.ForName(1234, half.Name), (ulong)step), bf16.RoundingSeedOf(half, step));
            cpu.Copy(half.Value, full.Value);                            // continue both from the rounded weight
        }
        Assert.Equal(3, bf16.StateOf(half).Step);
        half.Dispose();
        full.Dispose();
    }

    [Fact]
    public void Rounding_to_nearest_writes_the_nearest_bf16_and_loses_steps_below_half_of_one()
    {
        using var cpu = TestUtil.Cpu();
        var p = new Parameter(cpu, "w", cpu.Allocate(new Shape(4, 8), MemoryTag.Parameters, DType.BFloat16));
        cpu.Fill(p.Value, 1f);
        using var sgd = new Sgd([p], learningRate: 1f) { Rounding = WeightRounding.Nearest };
        using var g = cpu.Allocate(new Shape(4, 8), MemoryTag.Scratch);
        cpu.Fill(g, 0.001f);                                             // a step of 0.001 < half of bf16's 2^-8 below 1
        for (int i = 0; i < 10; i++) sgd.Update(p, g);
        Assert.All(BFloat16Tests.Bits(p.Value), b => Assert.Equal(0x3F80, b));  // still exactly 1
        sgd.Rounding = WeightRounding.Stochastic;
        for (int i = 0; i < 10; i++) { cpu.Fill(g, 0.001f); sgd.Update(p, g); }
        double mean = BFloat16Tests.Bits(p.Value).Average(b => (double)BFloat16.ToSingle(b));
        Assert.InRange(mean, 0.985, 0.995);                              // 10 steps of 0.001 kept on average: about 0.99
        p.Dispose();
    }

    [Fact]
    public void Sgd_does_not_fold_its_step_into_the_product_of_a_bf16_weight()
    {
        using var cpu = TestUtil.Cpu();
        var half = new Parameter(cpu, "a", cpu.Allocate(new Shape(3, 3), MemoryTag.Parameters, DType.BFloat16));
        var full = new Parameter(cpu, "b", cpu.Allocate(new Shape(3, 3), MemoryTag.Parameters));
        using var sgd = new Sgd([half, full], learningRate: 0.1f);
        Assert.Null(sgd.FusedTarget(half));
        Assert.NotNull(sgd.FusedTarget(full));
        half.Dispose();
        full.Dispose();
    }

    [Fact]
    public void Layers_built_in_a_bf16_scope_store_their_matrices_in_bf16_and_vectors_in_fp32()
    {
        using var cpu = TestUtil.Cpu();
        Linear linear;
        Embedding embedding;
        LayerNorm norm;
        using (WeightStorage.Use(DType.BFloat16))
        {
            Assert.Equal(DType.BFloat16, WeightStorage.Matrices);
            linear = new Linear(cpu, "proj", 8, 6, bias: true, seed: 3);
            embedding = new Embedding(cpu, "wte", 11, 8, seed: 4, initStd: 0.02f);
            norm = new LayerNorm(cpu, "ln", 8);
        }
        Assert.Equal(DType.Float32, WeightStorage.Matrices);                             // the scope ended
        Assert.Equal(DType.BFloat16, linear.Weight.Value.DType);
        Assert.Equal(DType.Float32, linear.Bias!.Value.DType);
        Assert.Equal(DType.BFloat16, embedding.Weight.Value.DType);
        Assert.Equal(DType.Float32, norm.Weight.Value.DType);
        // The bf16 weight is the fp32 initialisation rounded to nearest.
        using var reference = new Linear(cpu, "proj", 8, 6, bias: true, seed: 3);
        Assert.Equal(reference.Weight.Value.ToArray().Select(BFloat16.RoundToNearestEven), BFloat16Tests.Bits(linear.Weight.Value));
        // And computes as the fp32 layer holding the same values.
        cpu.Copy(linear.Weight.Value, reference.Weight.Value);
        using var x = TestUtil.Random(cpu, 9, 1f, 5, 8);
        Assert.Equal(reference.Forward(x).ToArray(), linear.Forward(x).ToArray());
        Assert.Throws<ArgumentException>(() => WeightStorage.Use(DType.Int32));
        linear.Dispose(); embedding.Dispose(); norm.Dispose();
    }

    [Fact]
    public void A_lora_merge_into_a_bf16_weight_rounds_the_fp32_sum_to_nearest_once()
    {
        using var cpu = TestUtil.Cpu();
        Linear linear;
        LoraLinear lora;
        using (WeightStorage.Use(DType.BFloat16))
        {
            linear = new Linear(cpu, "proj", 6, 5, bias: false, seed: 7, initStd: 0.5f);
            lora = new LoraLinear(linear, rank: 2, alpha: 4f, seed: 11);
        }
        Assert.Equal(DType.BFloat16, lora.A.Value.DType);
        using (var b = TestUtil.Random(cpu, 13, 0.5f, 5, 2)) cpu.Copy(b, lora.B.Value);
        // Expected: W + s B A in fp32 from the bf16 values, rounded to nearest.
        float[] w = BFloat16Tests.Bits(linear.Weight.Value).Select(BFloat16.ToSingle).ToArray();
        float[] bv = BFloat16Tests.Bits(lora.B.Value).Select(BFloat16.ToSingle).ToArray(), av = BFloat16Tests.Bits(lora.A.Value).Select(BFloat16.ToSingle).ToArray();
        using var wt = TestUtil.FromArray(cpu, w, 5, 6); using var bt = TestUtil.FromArray(cpu, bv, 5, 2); using var at = TestUtil.FromArray(cpu, av, 2, 6);
        cpu.MatMul(bt, false, at, false, wt, lora.Scale, 1f);
        lora.Merge();
        Assert.Equal(wt.ToArray().Select(BFloat16.RoundToNearestEven), BFloat16Tests.Bits(linear.Weight.Value));
        Assert.All(BFloat16Tests.Bits(lora.B.Value), v => Assert.Equal(0, v));
        lora.Dispose();
    }

    [Fact]
    public void Bf16_tensors_are_saved_as_BF16_and_read_back_bit_for_bit_and_fp32_files_load_rounded()
    {
        string path = Path.Combine(Directory.CreateTempSubdirectory("flora-bf16-st-").FullName, "w.safetensors");
        using var cpu = TestUtil.Cpu();
        using var h = cpu.Allocate(new Shape(3, 400_001), MemoryTag.Scratch, DType.BFloat16);   // more than one chunk
        cpu.FillGaussian(h, 5, 1f);
        using var f = TestUtil.Random(cpu, 6, 1f, 2, 9);
        new SafeTensorsWriter().Add("h", h).Add("f", f).Write(path);
        using (var file = SafeTensorsFile.Open(path))
        {
            Assert.Equal(SafeTensorDType.BF16, file.GetInfo("h").DType);
            Assert.Equal(h.Count * 2L, file.GetInfo("h").ByteCount);
            using var back = cpu.Allocate(new Shape(3, 400_001), MemoryTag.Scratch, DType.BFloat16);
            file.ReadInto("h", back);
            Assert.Equal(BFloat16Tests.Bits(h), BFloat16Tests.Bits(back));
            using var wide = cpu.Allocate(new Shape(3, 400_001), MemoryTag.Scratch);
            file.ReadInto("h", wide);                                     // a Float32 destination widens exactly
            Assert.Equal(BFloat16Tests.Bits(h).Select(BFloat16.ToSingle), wide.ToArray());
            using var narrowed = cpu.Allocate(new Shape(2, 9), MemoryTag.Scratch, DType.BFloat16);
            file.ReadInto("f", narrowed);                                 // F32 into bf16: to nearest even
            Assert.Equal(f.ToArray().Select(BFloat16.RoundToNearestEven), BFloat16Tests.Bits(narrowed));
        }
        Directory.Delete(Path.GetDirectoryName(path)!, recursive: true);
    }
}
