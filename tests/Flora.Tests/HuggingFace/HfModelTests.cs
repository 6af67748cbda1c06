using System.Text.Json.Nodes;
using Flora.Backends;
using Flora.Checkpoints;
using Flora.Nn;
using Flora.Nn.Models;
using Flora.Nn.Models.HuggingFace;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Tests.HuggingFace;

/// <summary>
/// Hugging Face model directories that the tests write themselves (random weights under Hugging Face's names) loaded
/// into Flora's models and compared with <see cref="NaiveDecoder"/>, a double-precision reference written from the
/// architectures' math; the layout Flora expects against the models it builds; preset sizes against the published
/// parameter counts; saving and reloading. The directories of transformers itself are compared in HfFixtureTests.
/// </summary>
public sealed class HfModelTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-hf-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    internal const int Batch = 2, Length = 9;

    internal static int[] Ids(int vocabulary, int seed = 7)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, Batch * Length).Select(_ => rng.Next(vocabulary)).ToArray();
    }

    /// <summary>Flora's logits (B*T, V) for ids (B, T).</summary>
    internal static float[] Logits(IBackend backend, LanguageModel model, int[] ids, int batch = Batch)
    {
        using var t = backend.Allocate(new Shape(batch, ids.Length / batch), MemoryTag.Activations, DType.Int32);
        backend.Upload(ids, t);
        model.Context.Training = false;
        return model.Forward(t).ToArray();
    }

    /// <summary>
    /// Hugging Face's loss through Flora's fused head: targets are the ids shifted left, the last position ignored; with
    /// <paramref name="gradients"/>, backward into that sink too.
    /// </summary>
    internal static float Loss(IBackend backend, LanguageModel model, int[] ids, int batch = Batch, IGradientSink? gradients = null)
    {
        int length = ids.Length / batch;
        int[] targets = ids.Select((_, i) => i % length == length - 1 ? -1 : ids[i + 1]).ToArray();
        using var t = backend.Allocate(new Shape(batch, length), MemoryTag.Activations, DType.Int32);
        using var y = backend.Allocate(new Shape(batch, length), MemoryTag.Activations, DType.Int32);
        backend.Upload(ids, t);
        backend.Upload(targets, y);
        model.Context.Training = false;
        float loss = model.ForwardLoss(t, y);
        if (gradients is not null) model.BackwardLoss(gradients);
        return loss;
    }

    /// <summary>max |actual - reference| &lt;= tolerance max |reference| (normwise relative).</summary>
    internal static void AssertClose(double[] reference, float[] actual, double tolerance, string what)
    {
        Assert.Equal(reference.Length, actual.Length);
        double diff = 0, scale = 0;
        for (int i = 0; i < reference.Length; i++)
        {
            diff = Math.Max(diff, Math.Abs(actual[i] - reference[i]));
            scale = Math.Max(scale, Math.Abs(reference[i]));
        }
        Assert.True(diff <= tolerance * scale, $"{what}: max |diff| {diff:G3} exceeds {tolerance:G2} x max |reference| {scale:G3}");
    }

    [Theory]
    [InlineData(true, false)]                           // transformer.-prefixed names, as save_pretrained writes them
    [InlineData(false, true)]                           // the original hub file: no prefix, causal-mask buffers
    public void Gpt2_directory_matches_the_reference(bool prefix, bool buffers)
    {
        var source = HfTestModel.Gpt2(prefix).Randomize(1);
        var extra = new Dictionary<string, (float[], long[])>();
        if (buffers)
            for (int i = 0; i < 2; i++)
            {
                extra[$"h.{i}.attn.bias"] = (Enumerable.Range(0, 400).Select(j => j % 20 <= j / 20 ? 1f : 0f).ToArray(), [1, 1, 20, 20]);
                extra[$"h.{i}.attn.masked_bias"] = ([-1e4f], []);
            }
        string dir = source.Write(Path.Combine(_temp, "gpt2"), extra: extra);
        using var cpu = TestUtil.Cpu();
        var hf = HfDirectory.Open(dir);
        Assert.Equal(HfArchitecture.Gpt2, hf.Config.Architecture);
        using var model = hf.CreateModel(cpu);
        int[] ids = Ids(61);
        double[] reference = NaiveDecoder.Gpt2(hf.Config.Gpt2!, source.Weight, ids, Batch, Length);
        AssertClose(reference, Logits(cpu, model, ids), 1e-5, "GPT-2 logits");
        Assert.Equal(NaiveDecoder.Loss(reference, ids, Batch, Length, 61), Loss(cpu, model, ids), 1e-5);
        Assert.Equal(hf.Config.ParameterCount, model.ParameterCount);
        Assert.Equal(hf.StoredElements, model.ParameterCount);
    }

    public static TheoryData<string, int, bool, string, bool, string, int> LlamaVariants => new()
    {
        // model_type, key/value heads, tied, rope, transformers 5 spelling, dtype, shards
        { "llama", 2, true, "llama3", true, "F32", 1 },             // Llama 3.2-like: GQA, llama3 scaling, tied
        { "llama", 2, true, "llama3", false, "F32", 3 },            // the hub's rope_theta + rope_scaling spelling, sharded
        { "llama", 2, true, "llama3", true, "BF16", 1 },            // bf16 and fp16 weights upcast on load
        { "llama", 1, true, "llama3", true, "F16", 2 },             // multi-query attention
        { "llama", 4, false, "10000", true, "F32", 1 },             // Llama 2-like: every head its own keys, untied
        { "qwen2", 2, false, "1000000", true, "F32", 1 },           // q/k/v biases
        { "mistral", 2, false, "10000", false, "F32", 1 },          // a sliding window longer than the sequence
    };

    [Theory]
    [MemberData(nameof(LlamaVariants))]
    public void Llama_family_directory_matches_the_reference(string modelType, int kvHeads, bool tied, string rope, bool transformers5, string dtype, int shards)
    {
        var source = HfTestModel.Llama(modelType, kvHeads, tied, rope, transformers5).Randomize(2);
        string dir = source.Write(Path.Combine(_temp, modelType), Enum.Parse<SafeTensorDType>(dtype), shards);
        using var cpu = TestUtil.Cpu();
        var hf = HfDirectory.Open(dir);
        Assert.Equal(shards, hf.WeightFiles.Count);
        Assert.Equal(dtype, Assert.Single(hf.StoredDTypes).Key);
        var config = hf.Config.Llama!;
        Assert.Equal((kvHeads, tied, modelType == "qwen2"), (config.KvHeads, config.TiedEmbeddings, config.AttentionBias));
        Assert.Equal(rope == "llama3", config.RopeScaling is not null);
        using var model = hf.CreateModel(cpu);
        int[] ids = Ids(61);
        double[] reference = NaiveDecoder.Llama(config, source.Weight, ids, Batch, Length);
        AssertClose(reference, Logits(cpu, model, ids), 1e-5, $"{modelType} logits");
        Assert.Equal(NaiveDecoder.Loss(reference, ids, Batch, Length, 61), Loss(cpu, model, ids), 1e-5);
        Assert.Equal(hf.Config.ParameterCount, model.ParameterCount);
    }

    [Fact]
    public void The_reference_notices_what_each_setting_changes()
    {
        // A check of the check: each setting moves the logits far beyond the tolerance above.
        var source = HfTestModel.Llama().Randomize(2);
        var config = HfModelConfig.Parse(source.Config.ToJsonString(), "config.json").Llama!;
        int[] ids = Ids(61);
        double[] baseline = NaiveDecoder.Llama(config, source.Weight, ids, Batch, Length);
        double Change(LlamaConfig other) => NaiveDecoder.Llama(other, source.Weight, ids, Batch, Length).Zip(baseline, (a, b) => Math.Abs(a - b)).Max();
        Assert.True(Change(config with { RopeScaling = null }) > 1e-2, "rope scaling");
        Assert.True(Change(config with { RopeTheta = 10000f }) > 1e-2, "rope theta");
        Assert.True(Change(config with { NormEps = 1e-1f }) > 1e-2, "norm epsilon");
        double max = baseline.Max(Math.Abs);
        Assert.True(max > 1 && max < 100, $"logits of a sensible size: {max}");
    }

    [Fact]
    public void Rope_scaling_keeps_smooths_and_divides_as_llama3_does()
    {
        // theta 500000, head size 8: f_i = 500000^(-i/4); wavelengths 2 pi / f = 6.28, 167.1, 4443, 118147. With 256
        // original positions, low 1 and high 4, wavelengths below 64 stay, above 256 are divided by 8, between are mixed
        // with s = (256 / 167.1 - 1) / 3.
        var scaling = new RopeScaling(8, 1, 4, 256);
        double[] plain = Enumerable.Range(0, 4).Select(i => Math.Pow(500000, -i / 4.0)).ToArray();
        double s = (256 / (2 * Math.PI / plain[1]) - 1) / 3;
        double[] expected = [plain[0], (1 - s) * plain[1] / 8 + s * plain[1], plain[2] / 8, plain[3] / 8];
        for (int i = 0; i < 4; i++) Assert.Equal(expected[i], RopeScaling.InverseFrequency(i, 8, 500000, scaling), 1e-15);
        Assert.InRange(s, 0.17, 0.18);
    }

    public static TheoryData<string> LayoutConfigs => new() { "gpt2", "llama", "llama-mha-untied", "qwen2", "mistral" };

    [Theory]
    [MemberData(nameof(LayoutConfigs))]
    public void The_expected_layout_is_the_models_parameter_list(string name)
    {
        var test = name switch
        {
            "gpt2" => HfTestModel.Gpt2(),
            "llama-mha-untied" => HfTestModel.Llama(kvHeads: 4, tied: false),
            _ => HfTestModel.Llama(name),
        };
        var config = HfModelConfig.Parse(test.Config.ToJsonString(), "config.json");
        using var cpu = TestUtil.Cpu();
        using var model = config.CreateModel(cpu);
        var expected = HfLayout.Parameters(config).Select(p => $"{p.Name} {HfLayout.Text(p.Shape)}");
        Assert.Equal(expected, model.Parameters().Select(p => $"{p.Name} {HfLayout.Text(p.Shape.ToArray().Select(d => (long)d))}"));
        Assert.Equal(test.Layout.Select(l => HfLayout.FloraName(config.Architecture, l.Name, config.TiedEmbeddings)).Order(), expected.Select(e => e.Split(' ')[0]).Order());
    }

    [Theory]
    [InlineData("llama-1b", 128256, 1_235_814_400L)]    // Llama 3.2 1B
    [InlineData("llama-3b", 128256, 3_212_749_824L)]    // Llama 3.2 3B
    [InlineData("llama-7b", 32000, 6_738_415_616L)]     // Llama 2 7B
    [InlineData("gpt2-124m", 50257, 124_439_808L)]      // GPT-2
    public void Presets_have_the_published_parameter_counts(string preset, int vocabulary, long published)
    {
        Assert.Equal(published, ModelFactory.ParameterCount(preset, vocabulary));
    }

    [Fact]
    public void The_parameter_count_from_shapes_is_what_a_model_allocates()
    {
        // The 1B preset's structure (tied, GQA 4:1, head size 64 != hidden / heads here) at a size that fits a test.
        var small = LlamaConfig.Llama32_1B(vocabulary: 97) with { Layers = 2, Heads = 4, KeyValueHeads = 1, Embed = 48, Intermediate = 40, HeadDim = 8, Context = 32 };
        using var cpu = TestUtil.Cpu();
        using var model = new Llama(cpu, small);
        Assert.Equal(small.ParameterCount, model.ParameterCount);
        using var qwen = new Llama(cpu, small with { AttentionBias = true, TiedEmbeddings = false });
        Assert.Equal((small with { AttentionBias = true, TiedEmbeddings = false }).ParameterCount, qwen.ParameterCount);
        using var gpt = new Gpt2(cpu, new Gpt2Config(2, 2, 8, 11, 6) { Inner = 12 });
        Assert.Equal(gpt.Config.ParameterCount, gpt.ParameterCount);
    }

    [Fact]
    public void Trained_weights_saved_in_hugging_face_layout_reload_exactly()
    {
        var source = HfTestModel.Llama("qwen2").Randomize(3);
        string dir = source.Write(Path.Combine(_temp, "qwen2"));
        using var cpu = TestUtil.Cpu();
        using var model = HfDirectory.Open(dir).CreateModel(cpu);
        int[] ids = Ids(61);
        float before = Loss(cpu, model, ids);
        using (var optimizer = new FloraAdafactor(model.Parameters(), learningRate: 0.01f, rank: 4))
            for (int step = 0; step < 3; step++)
            {
                Loss(cpu, model, ids, gradients: optimizer.Gradients);
                optimizer.Step();
            }
        float after = Loss(cpu, model, ids);
        Assert.True(after < before, $"three steps should lower the loss: {before} -> {after}");
        float[] trained = Logits(cpu, model, ids);

        // Sharded (every tensor of at most 2 KB goes with others up to 4 KB) and reloaded: the same logits, bit for bit.
        string saved = HfExport.Save(model, Path.Combine(_temp, "saved"), new HfExportOptions { MaxShardBytes = 4096 });
        Assert.True(File.Exists(Path.Combine(saved, HfDirectory.IndexFile)));
        var reopened = HfDirectory.Open(saved);
        Assert.True(reopened.WeightFiles.Count > 2);
        using var reloaded = reopened.CreateModel(cpu);
        Assert.Equal(trained, Logits(cpu, reloaded, ids));
        // config.json keeps the source's fields and says what the weights now are.
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(saved, "config.json")))!;
        Assert.Equal("Qwen2ForCausalLM", config["architectures"]![0]!.GetValue<string>());
        Assert.Equal(1, config["bos_token_id"]!.GetValue<int>());
        Assert.Equal("float32", config["dtype"]!.GetValue<string>());

        // One file below the threshold; GPT-2 gets the transformer. prefix and no lm_head.
        using var gpt = HfDirectory.Open(HfTestModel.Gpt2().Randomize(4).Write(Path.Combine(_temp, "gpt2"))).CreateModel(cpu);
        string gptSaved = HfExport.Save(gpt, Path.Combine(_temp, "gpt2-saved"));
        using (var file = SafeTensorsFile.Open(Path.Combine(gptSaved, HfDirectory.WeightsFile)))
        {
            Assert.Contains(file.Tensors, t => t.Name == "transformer.wte.weight");
            Assert.All(file.Tensors, t => Assert.StartsWith("transformer.", t.Name));
        }
        using var gptReloaded = HfDirectory.Open(gptSaved).CreateModel(cpu);
        Assert.Equal(Logits(cpu, gpt, ids), Logits(cpu, gptReloaded, ids));
    }

    [Fact]
    public void A_model_trained_from_a_preset_is_written_with_a_generated_config()
    {
        using var cpu = TestUtil.Cpu();
        var config = new LlamaConfig(2, 4, 16, 24, 61, 32, 500000f) { KeyValueHeads = 2, TiedEmbeddings = true, RopeScaling = new RopeScaling(8, 1, 4, 256), NormEps = 1e-5f };
        using var model = new Llama(cpu, config, seed: 5);
        string saved = HfExport.Save(model, Path.Combine(_temp, "preset"));
        var reread = HfDirectory.Open(saved);
        Assert.Equal(config with { HeadDim = 4 }, reread.Config.Llama);
        Assert.Equal("LlamaForCausalLM", reread.Config.ClassName);
        using var reloaded = reread.CreateModel(cpu);
        int[] ids = Ids(61);
        Assert.Equal(Logits(cpu, model, ids), Logits(cpu, reloaded, ids));
    }

    [Fact]
    public void Bf16_weights_load_from_and_save_to_hugging_face_directories()
    {
        // A BF16 directory loaded into bf16 weight matrices holds exactly the stored values: the same logits as fp32
        // weights upcast from the same file. Saved again, the matrices stay BF16 and the model reloads unchanged.
        string dir = HfTestModel.Llama().Randomize(6).Write(Path.Combine(_temp, "bf16"), SafeTensorDType.BF16);
        using var cpu = TestUtil.Cpu();
        var hf = HfDirectory.Open(dir);
        using var fp32 = hf.CreateModel(cpu);
        LanguageModel bf16;
        using (WeightStorage.Use(DType.BFloat16)) bf16 = hf.CreateModel(cpu);
        using (bf16)
        {
            Assert.Equal(DType.BFloat16, bf16.Parameters().First(p => p.Name.EndsWith("q_proj.weight", StringComparison.Ordinal)).Value.DType);
            Assert.Null(hf.FirstChangedParameter(bf16));
            int[] ids = Ids(61);
            float[] logits = Logits(cpu, bf16, ids);
            AssertClose(Logits(cpu, fp32, ids).Select(x => (double)x).ToArray(), logits, 1e-5, "bf16 weights against fp32 weights of the same values");
            string saved = HfExport.Save(bf16, Path.Combine(_temp, "bf16-saved"));
            using (var file = SafeTensorsFile.Open(Path.Combine(saved, HfDirectory.WeightsFile)))
            {
                Assert.Equal(SafeTensorDType.BF16, file.GetInfo("model.layers.0.mlp.up_proj.weight").DType);
                Assert.Equal(SafeTensorDType.F32, file.GetInfo("model.norm.weight").DType);
            }
            using var reloaded = HfDirectory.Open(saved).CreateModel(cpu);
            AssertClose(logits.Select(x => (double)x).ToArray(), Logits(cpu, reloaded, ids), 1e-5, "saved bf16 weights");
        }
    }

    [Fact]
    public void Lora_is_merged_or_written_as_a_peft_adapter()
    {
        string dir = HfTestModel.Llama().Randomize(5).Write(Path.Combine(_temp, "base"));
        using var cpu = TestUtil.Cpu();
        var hf = HfDirectory.Open(dir);
        using var model = hf.CreateModel(cpu, adapt: l => new LoraLinear(l, Math.Min(4, Math.Min(l.InFeatures, l.OutFeatures)), 8f, Seeds.ForName(1, l.Name)));
        foreach (var lora in model.Modules().OfType<LoraLinear>()) cpu.FillGaussian(lora.B.Value, 9, 0.1f);     // as if trained
        Assert.Null(hf.FirstChangedParameter(model));                                    // only adapters differ from the directory
        int[] ids = Ids(61);
        float[] adapted = Logits(cpu, model, ids);

        Assert.Throws<ArgumentException>(() => HfExport.Save(model, Path.Combine(_temp, "refused")));
        Assert.False(Directory.Exists(Path.Combine(_temp, "refused")));
        string peft = HfExport.Save(model, Path.Combine(_temp, "peft"), new HfExportOptions { Lora = LoraExport.Peft, BaseModel = dir });
        var adapter = JsonNode.Parse(File.ReadAllText(Path.Combine(peft, HfExport.AdapterConfigFile)))!;
        Assert.Equal(4, adapter["r"]!.GetValue<int>());
        Assert.Equal(8.0, adapter["lora_alpha"]!.GetValue<double>());
        Assert.Equal(["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"], adapter["target_modules"]!.AsArray().Select(t => t!.GetValue<string>()));

        // Applying the adapter by PEFT's rule (W += alpha / r B A) to the base gives the adapted model.
        using var applied = hf.CreateModel(cpu);
        using (var file = SafeTensorsFile.Open(Path.Combine(peft, HfExport.AdapterWeightsFile)))
        {
            Assert.Equal(2 * 7 * 2, file.Tensors.Count);
            foreach (var p in applied.Parameters().Where(p => p.Name.EndsWith("_proj.weight", StringComparison.Ordinal)))
            {
                string module = "base_model.model." + p.Name[..^".weight".Length];
                using var a = cpu.Allocate(new Shape(file.GetInfo(module + ".lora_A.weight").Shape.Select(d => (int)d).ToArray()), MemoryTag.Scratch);
                using var b = cpu.Allocate(new Shape(file.GetInfo(module + ".lora_B.weight").Shape.Select(d => (int)d).ToArray()), MemoryTag.Scratch);
                file.ReadInto(module + ".lora_A.weight", a);
                file.ReadInto(module + ".lora_B.weight", b);
                cpu.MatMul(b, false, a, false, p.Value, 8f / 4, 1f);
            }
        }
        AssertClose(adapted.Select(x => (double)x).ToArray(), Logits(cpu, applied, ids), 1e-5, "base + PEFT adapter");

        string merged = HfExport.Save(model, Path.Combine(_temp, "merged"), new HfExportOptions { Lora = LoraExport.Merge });
        Assert.Equal("model.layers.0.self_attn.q_proj.weight", hf.FirstChangedParameter(model));    // merging changed the weights
        using var reloaded = HfDirectory.Open(merged).CreateModel(cpu);
        AssertClose(adapted.Select(x => (double)x).ToArray(), Logits(cpu, reloaded, ids), 1e-5, "merged");
    }
}
