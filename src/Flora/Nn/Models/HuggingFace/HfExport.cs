using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flora.Checkpoints;
using Flora.Tensors;

namespace Flora.Nn.Models.HuggingFace;

/// <summary>What to do with a model's LoRA adapters when it is written in Hugging Face's layout.</summary>
public enum LoraExport
{
    /// <summary>The model must have no adapters (a model that has them is refused, so that no training is lost silently).</summary>
    None,
    /// <summary>Fold each adapter into its weight (W += s B A) and write a plain model.</summary>
    Merge,
    /// <summary>Write only the adapters, as a PEFT LoRA adapter (adapter_model.safetensors and adapter_config.json).</summary>
    Peft,
}

/// <summary>How <see cref="HfExport.Save"/> writes a directory.</summary>
public sealed record HfExportOptions
{
    /// <summary>LoRA adapters: refused (the default), merged, or written as a PEFT adapter.</summary>
    public LoraExport Lora { get; init; } = LoraExport.None;

    /// <summary>Weights above this many bytes are split into shards with an index (Hugging Face's default, 5 GB).</summary>
    public long MaxShardBytes { get; init; } = 5_000_000_000;

    /// <summary>
    /// Writes the tokenizer files into the directory being built (called before it is moved into place); null writes
    /// none.
    /// </summary>
    public Action<string>? WriteTokenizer { get; init; }

    /// <summary>
    /// For a PEFT adapter: the base model it applies to (adapter_config.json's base_model_name_or_path); null by
    /// default.
    /// </summary>
    public string? BaseModel { get; init; }

    /// <summary>Replace a directory that exists and is not empty (otherwise, the default, that is an error).</summary>
    public bool Overwrite { get; init; }
}

/// <summary>
/// Writes GPT-2 and Llama-family models as Hugging Face directories that <c>AutoModelForCausalLM.from_pretrained</c>
/// loads: config.json in the architecture's schema (the source's own fields kept when the model was read from a
/// directory), the fp32 weights under Hugging Face's names in model.safetensors, or in shards
/// model-0000k-of-0000n.safetensors with model.safetensors.index.json above <see cref="HfExportOptions.MaxShardBytes"/>,
/// and the tokenizer files. LoRA adapters are merged or written as a PEFT adapter. Everything is written into a
/// temporary sibling directory that is renamed into place at the end: a failure leaves nothing at the destination.
/// </summary>
public static class HfExport
{
    /// <summary>PEFT's files.</summary>
    public const string AdapterWeightsFile = "adapter_model.safetensors", AdapterConfigFile = "adapter_config.json";

    /// <summary>Writes <paramref name="model"/> to <paramref name="directory"/>; returns the directory's full path.</summary>
    /// <exception cref="ArgumentException">The model cannot be written so (adapters without a LoRA choice, a PEFT export without adapters, a model of another kind).</exception>
    /// <exception cref="IOException">The destination exists and is not empty, and <see cref="HfExportOptions.Overwrite"/> is off.</exception>
    public static string Save(LanguageModel model, string directory, HfExportOptions? options = null)
    {
        options ??= new HfExportOptions();
        if (options.MaxShardBytes <= 0) throw new ArgumentException($"the largest shard must be positive, got {options.MaxShardBytes} bytes");
        var config = HfModelConfig.For(model);
        var adapters = model.Modules().OfType<LoraLinear>().ToList();
        if (adapters.Count > 0 && options.Lora == LoraExport.None)
            throw new ArgumentException("the model has LoRA adapters: merge them into the weights or write them as a PEFT adapter (flora export --merge-lora or --peft)");
        if (adapters.Count == 0 && options.Lora == LoraExport.Peft)
            throw new ArgumentException("the model has no LoRA adapters to write as a PEFT adapter");
        string final = System.IO.Path.GetFullPath(directory);
        if (Directory.Exists(final) && Directory.EnumerateFileSystemEntries(final).Any() && !options.Overwrite)
            throw new IOException($"{final}: the directory exists and is not empty (choose another, or overwrite it)");
        string parent = System.IO.Path.GetDirectoryName(final) ?? ".";
        Directory.CreateDirectory(parent);
        string temporary = System.IO.Path.Combine(parent, $".{System.IO.Path.GetFileName(final)}.{Environment.ProcessId}.tmp");
        try
        {
            if (Directory.Exists(temporary)) Directory.Delete(temporary, recursive: true);
            Directory.CreateDirectory(temporary);
            if (options.Lora == LoraExport.Peft)
            {
                WritePeft(config, adapters, temporary, options.BaseModel);
            }
            else
            {
                foreach (var adapter in adapters) adapter.Merge();
                var weights = model.Parameters().Where(p => !LoraLinear.IsAdapter(p.Name)).ToList();
                // bf16 weight matrices are written as BF16 (exactly what the model holds), vectors as F32.
                string dtype = weights.All(p => p.Value.DType == DType.BFloat16) ? "bfloat16" : "float32";
                WriteText(System.IO.Path.Combine(temporary, HfDirectory.ConfigFile), config.ToJson(dtype));
                WriteWeights(config, weights, temporary, options.MaxShardBytes);
            }
            options.WriteTokenizer?.Invoke(temporary);
            if (Directory.Exists(final)) Directory.Delete(final, recursive: true);
            Directory.Move(temporary, final);
            return final;
        }
        finally
        {
            if (Directory.Exists(temporary)) Directory.Delete(temporary, recursive: true);
        }
    }

    /// <summary>The weights in one file, or in shards of at most <paramref name="maxShardBytes"/> (a larger tensor alone) with an index.</summary>
    private static void WriteWeights(HfModelConfig config, IReadOnlyList<Parameter> parameters, string directory, long maxShardBytes)
    {
        long total = parameters.Sum(p => p.Value.Bytes);
        if (total <= maxShardBytes)
        {
            var writer = new SafeTensorsWriter().AddMetadata("format", "pt");
            foreach (var p in parameters) writer.Add(HfLayout.FileName(config.Architecture, p.Name), p.Value);
            writer.Write(System.IO.Path.Combine(directory, HfDirectory.WeightsFile));
            return;
        }
        var shards = new List<List<Parameter>>();
        long size = 0;
        foreach (var p in parameters)
        {
            long bytes = p.Value.Bytes;
            if (shards.Count == 0 || (size + bytes > maxShardBytes && size > 0)) { shards.Add([]); size = 0; }
            shards[^1].Add(p);
            size += bytes;
        }
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < shards.Count; i++)
        {
            string name = string.Create(CultureInfo.InvariantCulture, $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors");
            var writer = new SafeTensorsWriter().AddMetadata("format", "pt");
            foreach (var p in shards[i])
            {
                string tensor = HfLayout.FileName(config.Architecture, p.Name);
                writer.Add(tensor, p.Value);
                map[tensor] = name;
            }
            writer.Write(System.IO.Path.Combine(directory, name));
        }
        var index = new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = total },
            ["weight_map"] = new JsonObject(map.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
        };
        WriteText(System.IO.Path.Combine(directory, HfDirectory.IndexFile), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>
    /// A PEFT LoRA adapter: for every adapted projection, base_model.model.MODULE.lora_A.weight (r, in) and lora_B.weight
    /// (out, r) (GPT-2's Conv1D projections too, with fan_in_fan_out), and adapter_config.json with r, lora_alpha (scale
    /// = alpha / r, as Flora's) and target_modules; ranks that differ from r (a projection narrower than r) go to rank_pattern.
    /// </summary>
    private static void WritePeft(HfModelConfig config, IReadOnlyList<LoraLinear> adapters, string directory, string? baseModel)
    {
        var writer = new SafeTensorsWriter().AddMetadata("format", "pt");
        foreach (var a in adapters)
        {
            string module = "base_model.model." + HfLayout.FileName(config.Architecture, a.Name);
            writer.Add(module + ".lora_A.weight", a.A.Value);
            writer.Add(module + ".lora_B.weight", a.B.Value);
        }
        writer.Write(System.IO.Path.Combine(directory, AdapterWeightsFile));
        int r = adapters.GroupBy(a => a.Rank).OrderByDescending(g => g.Count()).ThenByDescending(g => g.Key).First().Key;
        float alpha = adapters[0].Scale * adapters[0].Rank;
        var patterns = new JsonObject();
        foreach (var a in adapters.Where(a => a.Rank != r)) patterns[HfLayout.FileName(config.Architecture, a.Name)] = a.Rank;
        var targets = adapters.Select(a => a.Name[(a.Name.LastIndexOf('.') + 1)..]).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal);
        var json = new JsonObject
        {
            ["peft_type"] = "LORA",
            ["task_type"] = "CAUSAL_LM",
            ["base_model_name_or_path"] = baseModel,
            ["r"] = r,
            ["lora_alpha"] = alpha,
            ["lora_dropout"] = 0.0,
            ["target_modules"] = new JsonArray(targets.Select(t => (JsonNode?)t).ToArray()),
            ["fan_in_fan_out"] = config.Architecture == HfArchitecture.Gpt2,
            ["bias"] = "none",
            ["rank_pattern"] = patterns,
            ["alpha_pattern"] = new JsonObject(),
            ["modules_to_save"] = null,
            ["use_rslora"] = false,
            ["use_dora"] = false,
            ["init_lora_weights"] = true,
            ["inference_mode"] = true,
        };
        WriteText(System.IO.Path.Combine(directory, AdapterConfigFile), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    private static void WriteText(string path, string text)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        using (var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(false), leaveOpen: true)) writer.Write(text);
        stream.Flush(flushToDisk: true);
    }
}
