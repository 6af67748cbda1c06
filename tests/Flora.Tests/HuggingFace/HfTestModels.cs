using System.Text.Json.Nodes;
using Flora.Checkpoints;
using Flora.Tensors;

namespace Flora.Tests.HuggingFace;

/// <summary>
/// Hugging Face model directories made by the tests themselves: a config.json as transformers writes it and random
/// weights under Hugging Face's names (listed here by hand, not taken from the code under test), written as F32, F16 or
/// BF16, in one file or in shards with an index. Weights are drawn as the fixtures' script draws them (matrices with
/// standard deviation 1/sqrt(fan_in), embeddings 0.5, norm weights 1 + 0.1 N, biases 0.1 N), so that every tensor
/// moves the logits well above the tolerance.
/// </summary>
internal sealed class HfTestModel
{
    public HfTestModel(JsonObject config, List<(string Name, long[] Shape)> layout) => (Config, Layout) = (config, layout);

    public JsonObject Config { get; }
    public List<(string Name, long[] Shape)> Layout { get; }
    public Dictionary<string, float[]> Weights { get; } = new(StringComparer.Ordinal);

    /// <summary>Vocabulary 61, hidden 16, 2 layers, 4 heads of 4 (GPT-2 with a 24-wide MLP), 20 positions.</summary>
    public static HfTestModel Gpt2(bool prefix = true)
    {
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray("GPT2LMHeadModel"), ["model_type"] = "gpt2", ["vocab_size"] = 61, ["n_positions"] = 20,
            ["n_embd"] = 16, ["n_layer"] = 2, ["n_head"] = 4, ["n_inner"] = 24, ["activation_function"] = "gelu_new",
            ["layer_norm_epsilon"] = 1e-5, ["resid_pdrop"] = 0.1, ["attn_pdrop"] = 0.1, ["embd_pdrop"] = 0.1, ["tie_word_embeddings"] = true,
        };
        string t = prefix ? "transformer." : "";
        var layout = new List<(string, long[])> { ($"{t}wte.weight", [61, 16]), ($"{t}wpe.weight", [20, 16]) };
        for (int i = 0; i < 2; i++)
        {
            string h = $"{t}h.{i}";
            layout.AddRange([($"{h}.ln_1.weight", [16]), ($"{h}.ln_1.bias", [16]), ($"{h}.attn.c_attn.weight", [16, 48]), ($"{h}.attn.c_attn.bias", [48]),
                ($"{h}.attn.c_proj.weight", [16, 16]), ($"{h}.attn.c_proj.bias", [16]), ($"{h}.ln_2.weight", [16]), ($"{h}.ln_2.bias", [16]),
                ($"{h}.mlp.c_fc.weight", [16, 24]), ($"{h}.mlp.c_fc.bias", [24]), ($"{h}.mlp.c_proj.weight", [24, 16]), ($"{h}.mlp.c_proj.bias", [16])]);
        }
        layout.AddRange([($"{t}ln_f.weight", [16]), ($"{t}ln_f.bias", [16])]);
        return new HfTestModel(config, layout);
    }

    /// <summary>
    /// A Llama-family model: vocabulary 61, hidden 16, 2 layers, 4 heads of <paramref name="headDim"/> (8: q is wider than
    /// the hidden size) over <paramref name="kvHeads"/> key/value heads, SwiGLU 24, 64 positions; <paramref name="rope"/>
    /// is "llama3" (theta 500000, factor 8, low 1, high 4, 256 original positions: with head size 8 the four frequencies
    /// are one kept, one smoothed and two divided, as in the fixtures), or a plain theta.
    /// </summary>
    public static HfTestModel Llama(string modelType = "llama", int kvHeads = 2, bool tied = true, string rope = "llama3", bool transformers5 = true, int headDim = 8,
        int vocabulary = 61)
    {
        string className = modelType switch { "qwen2" => "Qwen2ForCausalLM", "mistral" => "MistralForCausalLM", _ => "LlamaForCausalLM" };
        var config = new JsonObject
        {
            ["architectures"] = new JsonArray(className), ["model_type"] = modelType, ["vocab_size"] = vocabulary, ["hidden_size"] = 16,
            ["intermediate_size"] = 24, ["num_hidden_layers"] = 2, ["num_attention_heads"] = 4, ["num_key_value_heads"] = kvHeads,
            ["head_dim"] = headDim, ["max_position_embeddings"] = 64, ["rms_norm_eps"] = 1e-5, ["hidden_act"] = "silu",
            ["tie_word_embeddings"] = tied, ["attention_dropout"] = 0.0, ["bos_token_id"] = 1, ["eos_token_id"] = 2, ["dtype"] = "float32",
        };
        JsonObject parameters = rope == "llama3"
            ? new JsonObject { ["rope_type"] = "llama3", ["rope_theta"] = 500000.0, ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 256 }
            : new JsonObject { ["rope_type"] = "default", ["rope_theta"] = double.Parse(rope, System.Globalization.CultureInfo.InvariantCulture) };
        if (transformers5) config["rope_parameters"] = parameters;
        else
        {
            config["rope_theta"] = parameters["rope_theta"]!.GetValue<double>();
            parameters.Remove("rope_theta");
            config["rope_scaling"] = rope == "llama3" ? parameters : null;
        }
        if (modelType == "mistral") config["sliding_window"] = 4096;
        if (modelType == "qwen2") { config["use_sliding_window"] = false; config["sliding_window"] = null; }
        long q = 4 * headDim, kv = kvHeads * headDim;
        var layout = new List<(string, long[])> { ("model.embed_tokens.weight", [vocabulary, 16]) };
        for (int i = 0; i < 2; i++)
        {
            string p = $"model.layers.{i}";
            layout.AddRange([($"{p}.input_layernorm.weight", [16]), ($"{p}.self_attn.q_proj.weight", [q, 16]), ($"{p}.self_attn.k_proj.weight", [kv, 16]),
                ($"{p}.self_attn.v_proj.weight", [kv, 16]), ($"{p}.self_attn.o_proj.weight", [16, q]), ($"{p}.post_attention_layernorm.weight", [16]),
                ($"{p}.mlp.gate_proj.weight", [24, 16]), ($"{p}.mlp.up_proj.weight", [24, 16]), ($"{p}.mlp.down_proj.weight", [16, 24])]);
            if (modelType == "qwen2")
                layout.AddRange([($"{p}.self_attn.q_proj.bias", [q]), ($"{p}.self_attn.k_proj.bias", [kv]), ($"{p}.self_attn.v_proj.bias", [kv])]);
        }
        layout.Add(("model.norm.weight", [16]));
        if (!tied) layout.Add(("lm_head.weight", [vocabulary, 16]));
        return new HfTestModel(config, layout);
    }

    /// <summary>Draws every weight from <paramref name="seed"/> (see the class summary).</summary>
    public HfTestModel Randomize(int seed)
    {
        var rng = new Random(seed);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        foreach (var (name, shape) in Layout)
        {
            int n = (int)shape.Aggregate(1L, (a, b) => a * b);
            bool vector = shape.Length == 1;
            bool embedding = name.Contains("wte") || name.Contains("embed_tokens") || name.Contains("lm_head");
            bool conv1d = name.Contains(".attn.c_") || name.Contains(".mlp.c_");
            double fanIn = shape.Length == 2 ? (conv1d ? shape[0] : shape[1]) : 1;
            Weights[name] = Enumerable.Range(0, n).Select(_ => (float)(vector
                ? (name.EndsWith("bias", StringComparison.Ordinal) ? 0.1 * Normal() : 1 + 0.1 * Normal())
                : embedding ? 0.5 * Normal() : name.Contains("wpe") ? 0.3 * Normal() : Normal() / Math.Sqrt(fanIn))).ToArray();
        }
        return this;
    }

    /// <summary>
    /// Writes config.json and the weights (as <paramref name="dtype"/>, in <paramref name="shards"/> files with an index
    /// when more than one; <paramref name="extra"/> tensors added as F32) into <paramref name="directory"/>. The stored
    /// values replace <see cref="Weights"/> (rounded for F16 and BF16), so that references see what the file holds.
    /// </summary>
    public string Write(string directory, SafeTensorDType dtype = SafeTensorDType.F32, int shards = 1, IReadOnlyDictionary<string, (float[] Data, long[] Shape)>? extra = null)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "config.json"), Config.ToJsonString());
        var all = Layout.Select(l => (l.Name, l.Shape, Data: Weights[l.Name], Type: dtype)).ToList();
        if (extra is not null) all.AddRange(extra.Select(e => (e.Key, e.Value.Shape, e.Value.Data, SafeTensorDType.F32)));
        var groups = all.Select((t, i) => (t, i)).GroupBy(x => x.i * shards / all.Count, x => x.t).ToList();
        var map = new JsonObject();
        for (int s = 0; s < groups.Count; s++)
        {
            string file = shards == 1 ? "model.safetensors" : $"model-{s + 1:D5}-of-{shards:D5}.safetensors";
            var writer = new SafeTensorsWriter().AddMetadata("format", "pt");
            foreach (var (name, shape, data, type) in groups[s])
            {
                var flat = new Shape(shape.Select(d => (int)d).ToArray());
                if (type == SafeTensorDType.F32) writer.Add(name, data, flat);
                else
                {
                    byte[] bytes = new byte[data.Length * 2];
                    for (int i = 0; i < data.Length; i++)
                    {
                        ushort bits = type == SafeTensorDType.F16 ? BitConverter.HalfToUInt16Bits((Half)data[i]) : ToBFloat16(data[i]);
                        BitConverter.TryWriteBytes(bytes.AsSpan(2 * i), bits);
                        data[i] = type == SafeTensorDType.F16 ? (float)BitConverter.UInt16BitsToHalf(bits) : BitConverter.UInt32BitsToSingle((uint)bits << 16);
                    }
                    writer.Add(name, bytes, type, flat);
                }
                map[name] = file;
            }
            writer.Write(Path.Combine(directory, file));
        }
        if (shards > 1)
            File.WriteAllText(Path.Combine(directory, "model.safetensors.index.json"), new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = 0 }, ["weight_map"] = map }.ToJsonString());
        return directory;
    }

    /// <summary>A weight by Hugging Face's name, GPT-2's "transformer." optional.</summary>
    public float[] Weight(string name) => Weights.TryGetValue(name, out var w) ? w : Weights["transformer." + name];

    private static ushort ToBFloat16(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        return (ushort)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
    }
}
