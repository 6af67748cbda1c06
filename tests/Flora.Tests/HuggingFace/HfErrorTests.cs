using System.Text.Json.Nodes;
using Flora.Nn.Models.HuggingFace;
using static Flora.Tests.TestCli;

namespace Flora.Tests.HuggingFace;

/// <summary>
/// Bad Hugging Face directories: every problem is one line that names the file and the tensor (or the config field),
/// found before any weight is read, and a command that meets one writes nothing to its output directory.
/// </summary>
public sealed class HfErrorTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-hf-bad-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    private string Llama(string name, Action<JsonObject>? edit = null, int shards = 1)
    {
        var model = HfTestModel.Llama().Randomize(1);
        edit?.Invoke(model.Config);
        return model.Write(Path.Combine(_temp, name), shards: shards);
    }

    private static string OpenError(string directory)
    {
        var e = Assert.ThrowsAny<Exception>(() => HfDirectory.Open(directory));
        Assert.True(e is InvalidDataException or FloraException, $"{e.GetType().Name}: {e.Message}");
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }

    public static TheoryData<string, string, string> ConfigProblems => new()
    {
        // what is edited, the field the message must name, and a word of the reason
        { "model_type=bert", "model_type 'bert'", "not supported" },
        { "rope_parameters.rope_type=yarn", "rope_parameters", "'yarn'" },
        { "rope_parameters.rope_type=linear", "rope_parameters", "'linear'" },
        { "attention_bias=true", "attention_bias", "not supported" },
        { "mlp_bias=true", "mlp_bias", "not supported" },
        { "hidden_act=gelu", "hidden_act", "'gelu'" },
        { "partial_rotary_factor=0.5", "partial_rotary_factor", "not supported" },
        { "num_key_value_heads=3", "key/value heads", "4 query heads" },
        { "vocab_size=-", "vocab_size", "missing" },
    };

    [Theory]
    [MemberData(nameof(ConfigProblems))]
    public void Config_fields_that_change_the_math_are_refused_by_name(string edit, string field, string reason)
    {
        string dir = Llama("config", c =>
        {
            var (path, value) = (edit.Split('=')[0], edit.Split('=')[1]);
            JsonObject target = c;
            if (path.Contains('.')) { target = c[path.Split('.')[0]]!.AsObject(); path = path.Split('.')[1]; }
            if (value == "-") target.Remove(path);
            else target[path] = value switch { "true" => true, _ when double.TryParse(value, out double d) => d, _ => value };
        });
        string message = OpenError(dir);
        Assert.StartsWith(Path.Combine(dir, "config.json"), message);
        Assert.Contains(field, message);
        Assert.Contains(reason, message);
    }

    [Fact]
    public void The_hub_spelling_of_an_unsupported_rope_scaling_is_refused_too()
    {
        var model = HfTestModel.Llama(transformers5: false).Randomize(1);
        model.Config["rope_scaling"]!["rope_type"] = "dynamic";
        string message = OpenError(model.Write(Path.Combine(_temp, "hub")));
        Assert.Contains("rope_scaling", message);
        Assert.Contains("'dynamic'", message);
    }

    [Fact]
    public void A_sliding_window_shorter_than_the_sequence_is_refused_when_it_matters()
    {
        var model = HfTestModel.Llama("mistral").Randomize(1);
        model.Config["sliding_window"] = 5;
        using var cpu = TestUtil.Cpu();
        using var mistral = HfDirectory.Open(model.Write(Path.Combine(_temp, "window"))).CreateModel(cpu);
        Assert.Equal(5, mistral.MaxSequenceLength);
        HfModelTests.Logits(cpu, mistral, HfModelTests.Ids(61)[..10], batch: 2);          // sequences of 5 fit
        var e = Assert.Throws<ArgumentException>(() => HfModelTests.Logits(cpu, mistral, HfModelTests.Ids(61)));
        Assert.Contains("sliding_window", e.Message);
    }

    [Fact]
    public void An_index_naming_a_missing_shard_is_refused_naming_the_tensor()
    {
        string dir = Llama("missing-shard", shards: 3);
        File.Delete(Path.Combine(dir, "model-00002-of-00003.safetensors"));
        string message = OpenError(dir);
        Assert.StartsWith(Path.Combine(dir, "model.safetensors.index.json"), message);
        Assert.Contains("model-00002-of-00003.safetensors", message);
        Assert.Contains("does not exist", message);
        Assert.Matches("tensor '[a-z_.0-9]+'", message);
    }

    [Fact]
    public void A_tensor_whose_shape_disagrees_with_the_config_is_refused()
    {
        var model = HfTestModel.Llama().Randomize(1);
        model.Config["num_key_value_heads"] = 4;                                             // the file has 2
        string dir = model.Write(Path.Combine(_temp, "shape"));
        string message = OpenError(dir);
        Assert.Equal($"{Path.Combine(dir, "model.safetensors")}: tensor 'model.layers.0.self_attn.k_proj.weight' has shape (16, 16) but config.json implies (32, 16)", message);
    }

    [Fact]
    public void A_truncated_shard_is_refused_naming_the_file_and_the_tensor()
    {
        string dir = Llama("truncated", shards: 2);
        string shard = Path.Combine(dir, "model-00002-of-00002.safetensors");
        using (var stream = new FileStream(shard, FileMode.Open)) stream.SetLength(stream.Length - 100);
        string message = OpenError(dir);
        Assert.StartsWith(shard, message);
        Assert.Matches("tensor '[a-z_.0-9]+'", message);
        Assert.Contains("beyond the end of the file", message);
    }

    [Fact]
    public void Missing_and_unexpected_tensors_are_refused_by_name()
    {
        var model = HfTestModel.Llama().Randomize(1);
        model.Layout.RemoveAll(l => l.Name == "model.layers.1.mlp.up_proj.weight");
        string message = OpenError(model.Write(Path.Combine(_temp, "missing")));
        Assert.Contains("'model.layers.1.mlp.up_proj.weight' is missing", message);

        var extra = HfTestModel.Llama().Randomize(1);
        string dir = extra.Write(Path.Combine(_temp, "extra"), extra: new Dictionary<string, (float[], long[])> { ["model.layers.0.self_attn.o_proj.bias"] = (new float[16], [16]) });
        Assert.Contains("tensor 'model.layers.0.self_attn.o_proj.bias' is not part of a LlamaForCausalLM", OpenError(dir));
    }

    [Fact]
    public void Commands_meeting_a_bad_directory_write_nothing()
    {
        var model = HfTestModel.Llama().Randomize(1);
        model.Config["rope_parameters"]!["rope_type"] = "yarn";
        string bad = model.Write(Path.Combine(_temp, "bad"));
        string run = Path.Combine(_temp, "run"), export = Path.Combine(_temp, "export");

        var (code, _, error) = RunCli("train", "--init-from", bad, "--steps", "1", "--out", run);
        Assert.Equal(1, code);
        Assert.Single(error.TrimEnd().Split('\n'));
        Assert.Contains("rope_parameters", error);
        Assert.False(Directory.Exists(run) && Directory.EnumerateFileSystemEntries(run).Any(), "train wrote into its run directory");

        (code, _, error) = RunCli("export", "--checkpoint", bad, "--out", export);
        Assert.Equal(1, code);
        Assert.Contains("rope_parameters", error);
        Assert.False(Directory.Exists(export));
        Assert.Empty(Directory.GetDirectories(_temp, ".export*"));

        (code, _, error) = RunCli("inspect", bad);
        Assert.Equal(1, code);
        Assert.Contains("'yarn'", error);
    }
}
