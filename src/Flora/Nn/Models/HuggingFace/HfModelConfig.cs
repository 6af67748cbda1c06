using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flora.Backends;

namespace Flora.Nn.Models.HuggingFace;

/// <summary>The Hugging Face architectures Flora reads and writes.</summary>
public enum HfArchitecture
{
    /// <summary>GPT2LMHeadModel (model_type gpt2): Flora's <see cref="Gpt2"/>.</summary>
    Gpt2,
    /// <summary>LlamaForCausalLM (model_type llama): Flora's <see cref="Llama"/>.</summary>
    Llama,
    /// <summary>Qwen2ForCausalLM (model_type qwen2): a <see cref="Llama"/> with q, k and v biases.</summary>
    Qwen2,
    /// <summary>MistralForCausalLM (model_type mistral): a <see cref="Llama"/> whose sequences must fit its sliding window.</summary>
    Mistral,
}

/// <summary>
/// A Hugging Face <c>config.json</c> as Flora understands it: the architecture and Flora's sizes for it
/// (<see cref="Gpt2"/> or <see cref="Llama"/>). Reading is strict about the math: an unknown model_type, a rope scaling
/// other than llama3, biases on the output or MLP projections, an activation other than the architecture's own,
/// quantized weights and the like are refused with an <see cref="InvalidDataException"/> that names the file and the
/// field; fields that only describe training or generation (dropout rates, token ids, dtype) are kept but do not
/// change the model. Both spellings of the rotary settings are read: transformers 4's top-level rope_theta with
/// rope_scaling, and transformers 5's rope_parameters.
/// </summary>
public sealed class HfModelConfig
{
    private static readonly ConditionalWeakTable<LanguageModel, HfModelConfig> Sources = new();

    private HfModelConfig(HfArchitecture architecture, Gpt2Config? gpt2, LlamaConfig? llama, JsonObject json, string path)
    {
        (Architecture, Gpt2, Llama, Json, Path) = (architecture, gpt2, llama, json, path);
    }

    /// <summary>The architecture.</summary>
    public HfArchitecture Architecture { get; }

    /// <summary>GPT-2's sizes, for <see cref="HfArchitecture.Gpt2"/>.</summary>
    public Gpt2Config? Gpt2 { get; }

    /// <summary>The Llama-family sizes, for Llama, Qwen2 and Mistral.</summary>
    public LlamaConfig? Llama { get; }

    /// <summary>The file this configuration was read from ("" when made from a model).</summary>
    public string Path { get; }

    /// <summary>The JSON document, every field kept (written back on export with the dtype updated).</summary>
    internal JsonObject Json { get; }

    /// <summary>Hugging Face's class for the architecture, e.g. "LlamaForCausalLM".</summary>
    public string ClassName => ClassOf(Architecture);

    /// <summary>The model_type of the architecture, e.g. "llama".</summary>
    public string ModelType => TypeOf(Architecture);

    /// <summary>Parameters of the model, counted from the sizes (nothing allocated).</summary>
    public long ParameterCount => Gpt2?.ParameterCount ?? Llama!.ParameterCount;

    /// <summary>Whether the output projection is the token embedding.</summary>
    public bool TiedEmbeddings => Gpt2 is not null || Llama!.TiedEmbeddings;

    /// <summary>The token ids config.json gives for bos, eos and pad, when it does (a list of eos ids keeps its first).</summary>
    public int? TokenId(string field) => Json[field] switch
    {
        JsonValue v when v.TryGetValue(out int id) => id,
        JsonArray { Count: > 0 } a when a[0] is JsonValue v && v.TryGetValue(out int first) => first,
        _ => null,
    };

    /// <summary>
    /// Builds the model these sizes describe (weights freshly initialised; <see cref="HfDirectory"/> loads them). The model
    /// remembers this configuration: <see cref="For"/> gives it back, so that an export keeps every field of the source.
    /// </summary>
    public LanguageModel CreateModel(IBackend backend, ulong seed = 0, Func<Linear, Module>? adapt = null, float dropout = 0f)
    {
        LanguageModel model = Gpt2 is not null ? new Gpt2(backend, Gpt2 with { Dropout = dropout }, seed, adapt) : new Llama(backend, Llama!, seed, adapt);
        Sources.AddOrUpdate(model, this);
        return model;
    }

    /// <summary>Reads and checks <paramref name="path"/> (a config.json).</summary>
    /// <exception cref="InvalidDataException">The file is missing, not JSON, or describes a model Flora cannot compute exactly.</exception>
    public static HfModelConfig Read(string path)
    {
        if (!File.Exists(path)) throw new InvalidDataException($"{path}: no such file: a Hugging Face model directory holds config.json");
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses and checks the text of a config.json; <paramref name="path"/> names it in errors.</summary>
    public static HfModelConfig Parse(string text, string path)
    {
        JsonObject json;
        try
        {
            json = JsonNode.Parse(text) as JsonObject ?? throw new InvalidDataException($"{path}: not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON: {e.Message}");
        }
        var r = new Reader(json, path);
        string modelType = r.String("model_type") ?? throw new InvalidDataException($"{path}: model_type is missing");
        HfArchitecture architecture = modelType switch
        {
            "gpt2" => HfArchitecture.Gpt2,
            "llama" => HfArchitecture.Llama,
            "qwen2" => HfArchitecture.Qwen2,
            "mistral" => HfArchitecture.Mistral,
            _ => throw new InvalidDataException($"{path}: model_type '{modelType}' is not supported (Flora reads gpt2, llama, qwen2 and mistral)"),
        };
        if (json["architectures"] is JsonArray classes && classes.Count > 0)
        {
            var names = classes.Select(c => c?.GetValueKind() == JsonValueKind.String ? c.GetValue<string>() : "").ToArray();
            string[] accepted = architecture == HfArchitecture.Gpt2 ? ["GPT2LMHeadModel", "GPT2Model"] : [ClassOf(architecture)];   // GPT-2's head is its embedding
            if (!names.Any(accepted.Contains))
                throw new InvalidDataException($"{path}: architectures [{string.Join(", ", names)}] is not supported for model_type {modelType} (expected {accepted[0]})");
        }
        if (json["quantization_config"] is not null) r.Refuse("quantization_config", "{ ... }", "quantized weights");
        return architecture == HfArchitecture.Gpt2
            ? new HfModelConfig(architecture, ParseGpt2(r), null, json, path)
            : new HfModelConfig(architecture, null, ParseLlama(r, architecture), json, path);
    }

    private static Gpt2Config ParseGpt2(Reader r)
    {
        string act = r.String("activation_function") ?? "gelu_new";
        if (act is not ("gelu_new" or "gelu_pytorch_tanh"))
            r.Refuse("activation_function", $"'{act}'", "Flora's GPT-2 computes gelu_new, the tanh approximation");
        if (r.Bool("tie_word_embeddings") == false) r.Refuse("tie_word_embeddings", "false", "GPT-2's output projection is its token embedding");
        if (r.Bool("scale_attn_weights") == false) r.Refuse("scale_attn_weights", "false", "scores are scaled by 1/sqrt(head size)");
        if (r.Bool("scale_attn_by_inverse_layer_idx") == true) r.Refuse("scale_attn_by_inverse_layer_idx", "true");
        if (r.Bool("add_cross_attention") == true) r.Refuse("add_cross_attention", "true", "GPT-2 as a decoder of an encoder");
        int embed = r.Int("n_embd") ?? r.Required<int>("hidden_size");
        int positions = r.Int("n_positions") ?? r.Required<int>("n_ctx");
        var config = new Gpt2Config(r.Int("n_layer") ?? r.Required<int>("num_hidden_layers"), r.Int("n_head") ?? r.Required<int>("num_attention_heads"),
            embed, r.Required<int>("vocab_size"), positions)
        {
            Inner = r.Int("n_inner"),
            LayerNormEps = (float)(r.Double("layer_norm_epsilon") ?? 1e-5),
        };
        r.Check(config.Validate);
        return config;
    }

    private static LlamaConfig ParseLlama(Reader r, HfArchitecture architecture)
    {
        string act = r.String("hidden_act") ?? "silu";
        if (act != "silu") r.Refuse("hidden_act", $"'{act}'", "the Llama family's MLP is SwiGLU: silu");
        if (r.Bool("mlp_bias") == true) r.Refuse("mlp_bias", "true", "biases on gate, up and down");
        bool qkvBias = architecture == HfArchitecture.Qwen2;
        if (architecture != HfArchitecture.Qwen2 && r.Bool("attention_bias") == true)
            r.Refuse("attention_bias", "true", "biases on q, k, v and o; only Qwen2's biases on q, k and v are");
        if (r.Double("partial_rotary_factor") is double partial && partial != 1)
            r.Refuse("partial_rotary_factor", partial.ToString(CultureInfo.InvariantCulture), "rotary positions on part of each head");

        int embed = r.Required<int>("hidden_size"), heads = r.Required<int>("num_attention_heads");
        var (theta, scaling) = Rope(r);
        var config = new LlamaConfig(r.Required<int>("num_hidden_layers"), heads, embed, r.Required<int>("intermediate_size"),
            r.Required<int>("vocab_size"), r.Int("max_position_embeddings") ?? 2048, (float)theta)
        {
            KeyValueHeads = r.Int("num_key_value_heads") ?? heads,
            HeadDim = r.Int("head_dim"),
            NormEps = (float)(r.Double("rms_norm_eps") ?? 1e-6),
            TiedEmbeddings = r.Bool("tie_word_embeddings") ?? false,
            AttentionBias = qkvBias,
            RopeScaling = scaling,
            SlidingWindow = SlidingWindow(r, architecture),
        };
        r.Check(config.Validate);
        return config;
    }

    /// <summary>rope theta and scaling from rope_parameters (transformers 5) or rope_theta and rope_scaling (earlier).</summary>
    private static (double Theta, RopeScaling? Scaling) Rope(Reader r)
    {
        string field = "rope_parameters";
        JsonNode? node = r.Json["rope_parameters"];
        if (node is null) { field = "rope_scaling"; node = r.Json["rope_scaling"]; }
        double theta = r.Double("rope_theta") ?? 10000;
        if (node is null) return (theta, null);
        if (node is not JsonObject o) throw new InvalidDataException($"{r.Path}: {field} is not an object");
        var inner = new Reader(o, r.Path, field + ".");
        if (o.Any(p => p.Value is JsonObject))
            r.Refuse(field, "{ settings per attention type }", "one rotary setting for every layer is");
        if (inner.Double("rope_theta") is double t) theta = t;
        string type = inner.String("rope_type") ?? inner.String("type") ?? "default";
        if (type == "default") return (theta, null);
        if (type != "llama3") r.Refuse(field + (o.ContainsKey("rope_type") ? ".rope_type" : ".type"), $"'{type}'", "only llama3 rope scaling, or none");
        var scaling = new RopeScaling(inner.Required<double>("factor"), inner.Required<double>("low_freq_factor"),
            inner.Required<double>("high_freq_factor"), inner.Required<double>("original_max_position_embeddings"));
        r.Check(scaling.Validate);
        return (theta, scaling);
    }

    /// <summary>The attention window that applies (null: none): Mistral's sliding_window; Qwen2's when its layers use it.</summary>
    private static int? SlidingWindow(Reader r, HfArchitecture architecture)
    {
        int? window = r.Int("sliding_window");
        if (window is null) return null;
        if (architecture == HfArchitecture.Mistral) return window;
        bool used = r.Json["layer_types"] is JsonArray types
            ? types.Any(t => t?.GetValueKind() == JsonValueKind.String && t.GetValue<string>() == "sliding_attention")
            : r.Bool("use_sliding_window") == true;
        return used ? window : null;
    }

    /// <summary>The configuration of <paramref name="model"/>: the one it was built from, or one made from its sizes.</summary>
    /// <exception cref="ArgumentException">The model is neither a GPT-2 nor a Llama-style model.</exception>
    public static HfModelConfig For(LanguageModel model)
    {
        if (Sources.TryGetValue(model, out var source))
        {
            bool same = model switch { Gpt2 g => g.Config with { Dropout = 0 } == source.Gpt2! with { Dropout = 0 }, Llama l => l.Config == source.Llama, _ => false };
            if (same) return source;
        }
        return model switch
        {
            Gpt2 g => Generated(HfArchitecture.Gpt2, g.Config, null),
            Llama l => Generated(l.Config.AttentionBias ? HfArchitecture.Qwen2 : l.Config.SlidingWindow is not null ? HfArchitecture.Mistral : HfArchitecture.Llama, null, l.Config),
            _ => throw new ArgumentException($"{model.GetType().Name} has no Hugging Face layout: only GPT-2 and Llama-style models are written as Hugging Face directories"),
        };
    }

    private static HfModelConfig Generated(HfArchitecture architecture, Gpt2Config? g, LlamaConfig? l)
    {
        var json = new JsonObject { ["architectures"] = new JsonArray(ClassOf(architecture)), ["model_type"] = TypeOf(architecture) };
        if (g is not null)
        {
            json["vocab_size"] = g.Vocabulary;
            json["n_positions"] = g.Context;
            json["n_ctx"] = g.Context;
            json["n_embd"] = g.Embed;
            json["n_layer"] = g.Layers;
            json["n_head"] = g.Heads;
            json["n_inner"] = g.Inner;
            json["activation_function"] = "gelu_new";
            json["layer_norm_epsilon"] = g.LayerNormEps;
            json["resid_pdrop"] = g.Dropout;
            json["embd_pdrop"] = g.Dropout;
            json["attn_pdrop"] = 0.0;
            json["initializer_range"] = 0.02;
            json["tie_word_embeddings"] = true;
            json["bos_token_id"] = g.Vocabulary - 1;
            json["eos_token_id"] = g.Vocabulary - 1;
        }
        else
        {
            json["vocab_size"] = l!.Vocabulary;
            json["hidden_size"] = l.Embed;
            json["intermediate_size"] = l.Intermediate;
            json["num_hidden_layers"] = l.Layers;
            json["num_attention_heads"] = l.Heads;
            json["num_key_value_heads"] = l.KvHeads;
            json["head_dim"] = l.HeadSize;
            json["max_position_embeddings"] = l.Context;
            json["rms_norm_eps"] = l.NormEps;
            json["hidden_act"] = "silu";
            json["rope_theta"] = l.RopeTheta;
            json["rope_scaling"] = l.RopeScaling is RopeScaling s
                ? new JsonObject
                {
                    ["rope_type"] = "llama3", ["factor"] = s.Factor, ["low_freq_factor"] = s.LowFrequencyFactor,
                    ["high_freq_factor"] = s.HighFrequencyFactor, ["original_max_position_embeddings"] = (int)s.OriginalContext,
                }
                : null;
            if (architecture == HfArchitecture.Llama) { json["attention_bias"] = false; json["mlp_bias"] = false; }
            if (architecture == HfArchitecture.Qwen2) json["use_sliding_window"] = false;
            json["sliding_window"] = l.SlidingWindow;
            json["tie_word_embeddings"] = l.TiedEmbeddings;
            json["attention_dropout"] = 0.0;
            json["initializer_range"] = 0.02;
        }
        json["torch_dtype"] = "float32";
        return new HfModelConfig(architecture, g, l, json, "");
    }

    /// <summary>
    /// The config.json text to write beside weights stored as <paramref name="dtype"/> ("float32"): every field of the
    /// source, with its dtype field (dtype or torch_dtype) set to what the weights now are.
    /// </summary>
    public string ToJson(string dtype = "float32")
    {
        var copy = (JsonObject)Json.DeepClone();
        bool set = false;
        foreach (string field in new[] { "dtype", "torch_dtype" })
            if (copy.ContainsKey(field)) { copy[field] = dtype; set = true; }
        if (!set) copy["torch_dtype"] = dtype;
        return copy.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    private static string ClassOf(HfArchitecture a) => a == HfArchitecture.Gpt2 ? "GPT2LMHeadModel" : TypeBase(a) + "ForCausalLM";

    private static string TypeBase(HfArchitecture a) => a switch
    {
        HfArchitecture.Gpt2 => "GPT2", HfArchitecture.Llama => "Llama", HfArchitecture.Qwen2 => "Qwen2", _ => "Mistral",
    };

    private static string TypeOf(HfArchitecture a) => TypeBase(a).ToLowerInvariant();

    /// <summary>Typed reads of a JSON object's fields with errors that name the file and the field.</summary>
    private sealed class Reader(JsonObject json, string path, string prefix = "")
    {
        public JsonObject Json => json;
        public string Path => path;

        public string? String(string field) => json[field] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
            var other => throw Bad(field, $"is {other.ToJsonString()}, not a string"),
        };

        public bool? Bool(string field) => json[field] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
            var other => throw Bad(field, $"is {other.ToJsonString()}, not true or false"),
        };

        public double? Double(string field) => json[field] switch
        {
            null => null,
            JsonValue v when v.GetValueKind() == JsonValueKind.Number => v.GetValue<double>(),
            var other => throw Bad(field, $"is {other.ToJsonString()}, not a number"),
        };

        public int? Int(string field) => Double(field) switch
        {
            null => null,
            double d when d == Math.Floor(d) && d >= int.MinValue && d <= int.MaxValue => (int)d,
            double d => throw Bad(field, $"is {d.ToString(CultureInfo.InvariantCulture)}, not an integer"),
        };

        public T Required<T>(string field) where T : struct
        {
            object? value = typeof(T) == typeof(int) ? (object?)Int(field) : Double(field);
            return value is T t ? t : throw Bad(field, "is missing");
        }

        /// <summary>Throws: <paramref name="field"/> has a value that changes the math in a way Flora does not compute.</summary>
        public void Refuse(string field, string value, string? note = null) =>
            throw new InvalidDataException($"{path}: {prefix}{field} = {value} is not supported{(note is null ? "" : $" ({note})")}");

        /// <summary>Runs a validation and turns its ArgumentException into an error naming the file.</summary>
        public void Check(Action validate)
        {
            try { validate(); }
            catch (ArgumentException e) { throw new InvalidDataException($"{path}: {e.Message}"); }
        }

        private InvalidDataException Bad(string field, string problem) => new($"{path}: {prefix}{field} {problem}");
    }
}
