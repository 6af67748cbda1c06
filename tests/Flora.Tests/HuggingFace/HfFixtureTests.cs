using Flora.Backends;
using Flora.Checkpoints;
using Flora.Nn.Models;
using Flora.Nn.Models.HuggingFace;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Tests.HuggingFace;

/// <summary>
/// The models transformers itself saved (tests/fixtures/hf/models, made by make_fixtures.py; see its README): each
/// directory loads, and Flora's logits, loss, gradients and rotary frequencies equal those transformers computed
/// (in float64, stored as float32) within 1e-4 relative. The fixtures are committed once they have been generated on
/// a machine with transformers; until then these tests are reported as skipped, with the reason and how to make them.
/// (The loaders are checked meanwhile against an independent float64 decoder in <see cref="HfModelTests"/>.)
/// </summary>
public sealed class HfFixtureTests
{
    internal static readonly string Models = Path.Combine(TestUtil.RepositoryRoot, "tests", "fixtures", "hf", "models");

    /// <summary>The tokenizer fixtures (tokenizers/NAME/tokenizer.json).</summary>
    internal static readonly string Tokenizers = Path.Combine(TestUtil.RepositoryRoot, "tests", "fixtures", "hf", "tokenizers");


    internal static string Fixture(string name)
    {
        string dir = Path.Combine(Models, name);
        Assert.True(Directory.Exists(dir),
            $"{dir} is missing: the Hugging Face fixtures are made on the GPU machine by tests/fixtures/hf/make_fixtures.py and committed (see tests/fixtures/hf/README.md)");
        return dir;
    }

    public static TheoryData<string> Names => new() { "gpt2", "gpt2-legacy", "llama", "llama-sharded", "llama-bf16", "llama-fp16", "llama-untied", "qwen2", "mistral" };

    [HfFixtureTheory]
    [MemberData(nameof(Names))]
    public void Logits_and_loss_equal_transformers(string name)
    {
        string dir = Fixture(name);
        Check(dir, Path.Combine(dir, "expected.safetensors"));
    }

    [HfFixtureFact]
    public void The_hub_style_llama_config_reads_the_same()
    {
        string dir = Fixture("llama");
        string copy = Directory.CreateTempSubdirectory("flora-hub-style-").FullName;
        try
        {
            foreach (string file in Directory.GetFiles(dir)) File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
            File.Copy(Path.Combine(dir, "config.hub-style.json"), Path.Combine(copy, "config.json"), overwrite: true);
            Assert.Equal(HfDirectory.Open(dir).Config.Llama, HfDirectory.Open(copy).Config.Llama);
            Check(copy, Path.Combine(dir, "expected.safetensors"));
        }
        finally
        {
            Directory.Delete(copy, recursive: true);
        }
    }

    private static void Check(string dir, string expectedPath)
    {
        using var expected = SafeTensorsFile.Open(expectedPath);
        int[] shape = expected.GetInfo("input_ids").Shape.Select(d => (int)d).ToArray();
        int[] ids = expected.ReadLongs("input_ids").Select(v => checked((int)v)).ToArray();
        float[] logits = expected.ReadFloats("logits");
        using var cpu = TestUtil.Cpu();
        var hf = HfDirectory.Open(dir);
        using var model = hf.CreateModel(cpu);
        HfModelTests.AssertClose(logits.Select(x => (double)x).ToArray(), HfModelTests.Logits(cpu, model, ids, shape[0]), 1e-4, $"{Path.GetFileName(dir)} logits");
        float loss = expected.ReadFloats("loss")[0];
        Assert.True(Math.Abs(HfModelTests.Loss(cpu, model, ids, shape[0]) - loss) <= 1e-4 * Math.Abs(loss), $"loss {HfModelTests.Loss(cpu, model, ids, shape[0])} vs {loss}");
        if (expected.Contains("rope_inv_freq"))
        {
            var l = hf.Config.Llama!;
            float[] frequencies = expected.ReadFloats("rope_inv_freq");
            Assert.Equal(l.HeadSize / 2, frequencies.Length);
            for (int i = 0; i < frequencies.Length; i++)
            {
                double ours = RopeScaling.InverseFrequency(i, l.HeadSize, l.RopeTheta, l.RopeScaling);
                Assert.True(Math.Abs(ours - frequencies[i]) <= 1e-6 * frequencies[i], $"inverse frequency {i}: {ours} vs {frequencies[i]}");
            }
        }
    }

    [HfFixtureTheory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    public void Gradients_equal_transformers(string name)
    {
        string dir = Fixture(name);
        using var expected = SafeTensorsFile.Open(Path.Combine(dir, "expected.safetensors"));
        using var grads = SafeTensorsFile.Open(Path.Combine(dir, "expected_grads.safetensors"));
        int[] shape = expected.GetInfo("input_ids").Shape.Select(d => (int)d).ToArray();
        int[] ids = expected.ReadLongs("input_ids").Select(v => checked((int)v)).ToArray();
        using var cpu = TestUtil.Cpu();
        var hf = HfDirectory.Open(dir);
        using var model = hf.CreateModel(cpu);
        var sink = new AccumulateSink(cpu, new Sgd(cpu, model.Parameters(), 1f));
        HfModelTests.Loss(cpu, model, ids, shape[0], sink);
        Assert.Equal(grads.Tensors.Count, model.Parameters().Count());
        foreach (var p in model.Parameters())
        {
            string file = HfLayout.FileName(hf.Config.Architecture, p.Name);
            double[] reference = grads.ReadFloats(file).Select(x => (double)x).ToArray();
            HfModelTests.AssertClose(reference, p.Grad!.ToArray(), 1e-4, $"gradient of {file}");
        }
    }

    [HfFixtureFact]
    public void A_fixture_trained_saved_and_reloaded_keeps_its_logits()
    {
        string dir = Fixture("llama");
        using var expected = SafeTensorsFile.Open(Path.Combine(dir, "expected.safetensors"));
        int[] ids = expected.ReadLongs("input_ids").Select(v => checked((int)v)).ToArray();
        string saved = Path.Combine(Directory.CreateTempSubdirectory("flora-fixture-saved-").FullName, "llama");
        try
        {
            using var cpu = TestUtil.Cpu();
            using var model = HfDirectory.Open(dir).CreateModel(cpu);
            using (var optimizer = new FloraAdamW(model.Parameters(), learningRate: 1e-3f, rank: 4))
                for (int step = 0; step < 3; step++)
                {
                    HfModelTests.Loss(cpu, model, ids, 2, optimizer.Gradients);
                    optimizer.Step();
                }
            float[] trained = HfModelTests.Logits(cpu, model, ids, 2);
            HfExport.Save(model, saved);
            using var reloaded = HfDirectory.Open(saved).CreateModel(cpu);
            Assert.Equal(trained, HfModelTests.Logits(cpu, reloaded, ids, 2));
            Assert.NotEqual(expected.ReadFloats("logits"), trained);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(saved)!, recursive: true);
        }
    }
}

/// <summary>A fact that needs the Hugging Face model fixtures: skipped, saying why and how to make them, while they are absent.</summary>
public sealed class HfFixtureFactAttribute : FactAttribute
{
    /// <summary>Skips the test when tests/fixtures/hf/models does not exist.</summary>
    public HfFixtureFactAttribute() => Skip = HfFixtureTheoryAttribute.SkipReason();
}

/// <summary>A theory that needs the Hugging Face model fixtures (see <see cref="HfFixtureFactAttribute"/>).</summary>
public sealed class HfFixtureTheoryAttribute : TheoryAttribute
{
    /// <summary>Skips the test when tests/fixtures/hf/models does not exist.</summary>
    public HfFixtureTheoryAttribute() => Skip = SkipReason();

    internal static string? SkipReason() => Directory.Exists(HfFixtureTests.Models) ? null
        : "the Hugging Face model fixtures are not generated yet: run tests/fixtures/hf/make_fixtures.py where transformers is installed and commit tests/fixtures/hf/models (see tests/fixtures/hf/README.md)";
}
