using Flora.Backends;
using Flora.Checkpoints;
using Flora.Nn;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Tests.Optim;

public class CheckpointTests
{
    private static Parameter[] NewParameters(IBackend cpu) =>
    [
        new Parameter(cpu, "attn.weight", cpu.Allocate(new Shape(24, 16), MemoryTag.Parameters)),
        new Parameter(cpu, "mlp.weight", cpu.Allocate(new Shape(16, 40), MemoryTag.Parameters)),
        new Parameter(cpu, "bias", cpu.Allocate(new Shape(16), MemoryTag.Parameters)),
    ];

    private static void Initialise(IBackend cpu, Parameter[] ps)
    {
        for (int i = 0; i < ps.Length; i++) cpu.FillGaussian(ps[i].Value, (ulong)(i + 1), 0.5f);
    }

    /// <summary>Gradient of step k for parameter i: a fixed Gaussian.</summary>
    private static void Step(IBackend cpu, Optimizer opt, Parameter[] ps, int k)
    {
        for (int i = 0; i < ps.Length; i++)
        {
            using var g = cpu.Allocate(ps[i].Shape, MemoryTag.Scratch);
            cpu.FillGaussian(g, (ulong)(1000 * k + i), 0.1f);
            opt.Update(ps[i], g);
        }
    }

    public static TheoryData<string> Optimizers => new() { "flora-paper", "flora-official", "adafactor-naive", "adamw", "adamw-flora", "sgd-nesterov" };

    private static Optimizer Make(string kind, IBackend cpu, Parameter[] ps) => kind switch
    {
        // kappa = 3: the ten continued steps cross several resamplings.
        "flora-paper" => new FloraAdafactor(cpu, ps, 0.05f, rank: 4, kappa: 3, variant: FloraVariant.Paper, seed: 7),
        "flora-official" => new FloraAdafactor(cpu, ps, 0.05f, rank: 4, kappa: 3, variant: FloraVariant.Official, seed: 7),
        "adafactor-naive" => new Adafactor(cpu, ps, new AdafactorOptions { LearningRate = 0.05f, Momentum = MomentumOptions.Naive() }),
        "adamw" => new AdamW(cpu, ps, 0.01f),
        "adamw-flora" => new AdamW(cpu, ps, 0.01f, momentum: MomentumOptions.Flora(4, kappa: 3)),
        "sgd-nesterov" => new Sgd(cpu, ps, 0.1f, 0.9f, nesterov: true),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    [Theory]
    [MemberData(nameof(Optimizers))]
    public void Save_load_continue_is_bit_for_bit_the_uninterrupted_run(string kind)
    {
        using var cpu = TestUtil.Cpu();
        string dir = Directory.CreateTempSubdirectory("flora-ckpt-").FullName;
        try
        {
            // Uninterrupted: 5 steps, save (parameters and optimizer), 10 more steps.
            var ps = NewParameters(cpu);
            Initialise(cpu, ps);
            using (var opt = Make(kind, cpu, ps))
            {
                for (int k = 0; k < 5; k++) Step(cpu, opt, ps, k);
                OptimizerCheckpoint.Save(opt, Path.Combine(dir, "opt.safetensors"));
                var w = new SafeTensorsWriter();
                foreach (var p in ps) w.Add(p.Name, p.Value);
                w.Write(Path.Combine(dir, "params.safetensors"));
                for (int k = 5; k < 15; k++) Step(cpu, opt, ps, k);
            }
            float[][] uninterrupted = ps.Select(p => TestUtil.ToArray(p.Value)).ToArray();

            // Resumed: fresh parameters and optimizer, load both, the same 10 steps.
            var resumed = NewParameters(cpu);
            using (var r = SafeTensorsFile.Open(Path.Combine(dir, "params.safetensors")))
                foreach (var p in resumed) r.ReadInto(p.Name, p.Value);
            using (var opt = Make(kind, cpu, resumed))
            {
                OptimizerCheckpoint.Load(opt, Path.Combine(dir, "opt.safetensors"));
                Assert.All(opt.States, s => Assert.Equal(5, s.Step));
                for (int k = 5; k < 15; k++) Step(cpu, opt, resumed, k);
            }
            for (int i = 0; i < ps.Length; i++)
                Assert.Equal(uninterrupted[i], TestUtil.ToArray(resumed[i].Value)); // exact
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Loading_refuses_another_optimizer_type_or_configuration_or_a_truncated_file()
    {
        using var cpu = TestUtil.Cpu();
        string dir = Directory.CreateTempSubdirectory("flora-ckpt-").FullName;
        try
        {
            var ps = NewParameters(cpu);
            string path = Path.Combine(dir, "opt.safetensors");
            using (var flora = new FloraAdafactor(cpu, ps, 0.05f, rank: 4)) OptimizerCheckpoint.Save(flora, path);

            using var adamw = new AdamW(cpu, ps);
            var e = Assert.Throws<InvalidDataException>(() => OptimizerCheckpoint.Load(adamw, path));
            Assert.Contains("holds Flora state; this optimizer is AdamW", e.Message);

            using var otherRank = new FloraAdafactor(cpu, ps, 0.05f, rank: 8);
            e = Assert.Throws<InvalidDataException>(() => OptimizerCheckpoint.Load(otherRank, path));
            Assert.Contains("r=4", e.Message);
            Assert.Contains("r=8", e.Message);

            byte[] bytes = File.ReadAllBytes(path);
            File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
            using var same = new FloraAdafactor(cpu, ps, 0.05f, rank: 4);
            e = Assert.Throws<InvalidDataException>(() => OptimizerCheckpoint.Load(same, path));
            Assert.Contains(path, e.Message);

            File.WriteAllText(path, "hello");
            e = Assert.Throws<InvalidDataException>(() => OptimizerCheckpoint.Load(same, path));
            Assert.Contains(path, e.Message);

            new SafeTensorsWriter().Add("x", new float[2]).Write(path);
            e = Assert.Throws<InvalidDataException>(() => OptimizerCheckpoint.Load(same, path));
            Assert.Contains("not a flora.optimizer file", e.Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
