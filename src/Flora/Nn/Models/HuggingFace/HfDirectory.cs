using System.Text.Json;
using System.Text.Json.Nodes;
using Flora.Backends;
using Flora.Checkpoints;
using Flora.Tensors;

namespace Flora.Nn.Models.HuggingFace;

/// <summary>
/// A Hugging Face model directory opened for reading: config.json and the weights, model.safetensors or shards listed
/// by model.safetensors.index.json, in F32, F16 or BF16 (upcast to fp32 on load). <see cref="Open"/> reads the config
/// and every header and checks them against each other before any weight is read, so a bad directory fails at once
/// with one line naming the file and the tensor: an index that names a missing shard or a tensor its shard lacks, a
/// truncated shard, a missing or unexpected tensor, a shape that disagrees with config.json, an unsupported dtype.
/// </summary>
public sealed class HfDirectory
{
    /// <summary>Files of a model directory.</summary>
    public const string ConfigFile = "config.json", WeightsFile = "model.safetensors", IndexFile = "model.safetensors.index.json";

    /// <summary>Files a directory may hold beside the model that describe its tokenizer or generation (copied on export).</summary>
    public static readonly IReadOnlyList<string> TokenizerFileNames =
    [
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt", "tokenizer.model",
        "added_tokens.json", "chat_template.jinja", "chat_template.json", "generation_config.json",
    ];

    private readonly Dictionary<string, (string File, string Tensor)> _tensors;

    private HfDirectory(string path, HfModelConfig config, IReadOnlyList<string> files, Dictionary<string, (string File, string Tensor)> tensors,
        IReadOnlyDictionary<string, int> dtypes, long elements)
    {
        (Path, Config, WeightFiles, _tensors, StoredDTypes, StoredElements) = (path, config, files, tensors, dtypes, elements);
    }

    /// <summary>The directory.</summary>
    public string Path { get; }

    /// <summary>Its config.json.</summary>
    public HfModelConfig Config { get; }

    /// <summary>The safetensors files holding the weights, in order.</summary>
    public IReadOnlyList<string> WeightFiles { get; }

    /// <summary>How many of the model's tensors each stored dtype holds ("BF16" -&gt; 147, say).</summary>
    public IReadOnlyDictionary<string, int> StoredDTypes { get; }

    /// <summary>Elements of the model's tensors as stored (skipped buffers not counted): the parameter count.</summary>
    public long StoredElements { get; }

    /// <summary>The tokenizer and generation files present (names of <see cref="TokenizerFileNames"/>).</summary>
    public IReadOnlyList<string> TokenizerFiles => TokenizerFileNames.Where(f => File.Exists(System.IO.Path.Combine(Path, f))).ToArray();

    /// <summary>Whether <paramref name="path"/> looks like a Hugging Face model directory: config.json and safetensors weights.</summary>
    public static bool IsModelDirectory(string? path) =>
        path is not null && Directory.Exists(path) && File.Exists(System.IO.Path.Combine(path, ConfigFile))
        && (File.Exists(System.IO.Path.Combine(path, WeightsFile)) || File.Exists(System.IO.Path.Combine(path, IndexFile)));

    /// <summary>Opens <paramref name="path"/>, reading config.json and the headers of the weights and checking them (no weights are read).</summary>
    /// <exception cref="InvalidDataException">The directory is not a model Flora can load; the message names the file and the tensor.</exception>
    public static HfDirectory Open(string path)
    {
        if (!Directory.Exists(path)) throw new FloraException($"{path}: no such directory");
        var config = HfModelConfig.Read(System.IO.Path.Combine(path, ConfigFile));
        var (files, stored) = ReadHeaders(path);
        bool tied = config.TiedEmbeddings;
        var tensors = new Dictionary<string, (string File, string Tensor)>(StringComparer.Ordinal);
        var infos = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
        foreach (var (file, info) in stored)
        {
            string? name = HfLayout.FloraName(config.Architecture, info.Name, tied);
            if (name is null) continue;
            if (tensors.TryGetValue(name, out var other))
                throw new InvalidDataException($"{file}: tensor '{info.Name}' is the same parameter as '{other.Tensor}' in {other.File}");
            tensors[name] = (file, info.Name);
            infos[name] = info;
        }
        var expected = HfLayout.Parameters(config);
        var dtypes = new Dictionary<string, int>(StringComparer.Ordinal);
        long elements = 0;
        foreach (var (name, shape) in expected)
        {
            if (!tensors.TryGetValue(name, out var where))
                throw new InvalidDataException($"{path}: tensor '{HfLayout.FileName(config.Architecture, name)}' is missing from {string.Join(", ", files.Select(System.IO.Path.GetFileName))} ({ConfigFile} describes a {config.ClassName} that has it)");
            var info = infos[name];
            if (!info.Shape.SequenceEqual(shape))
                throw new InvalidDataException($"{where.File}: tensor '{where.Tensor}' has shape {info.ShapeText} but {ConfigFile} implies {HfLayout.Text(shape)}");
            if (info.DType is not (SafeTensorDType.F32 or SafeTensorDType.F16 or SafeTensorDType.BF16))
                throw new InvalidDataException($"{where.File}: tensor '{where.Tensor}' is {info.DType.Code()}: only F32, F16 and BF16 weights are read");
            string code = info.DType.Code();
            dtypes[code] = dtypes.GetValueOrDefault(code) + 1;
            elements += info.ElementCount;
        }
        var known = expected.Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var (name, where) in tensors)
            if (!known.Contains(name))
                throw new InvalidDataException($"{where.File}: tensor '{where.Tensor}' is not part of a {config.ClassName} as {ConfigFile} describes it");
        return new HfDirectory(System.IO.Path.GetFullPath(path), config, files, tensors, dtypes, elements);
    }

    /// <summary>The weight files and every tensor header in them, through the index when there is one.</summary>
    private static (List<string> Files, List<(string File, SafeTensorInfo Info)> Tensors) ReadHeaders(string directory)
    {
        string index = System.IO.Path.Combine(directory, IndexFile), single = System.IO.Path.Combine(directory, WeightsFile);
        var tensors = new List<(string, SafeTensorInfo)>();
        if (!File.Exists(index))
        {
            if (!File.Exists(single))
                throw new InvalidDataException($"{directory}: neither {WeightsFile} nor {IndexFile}" +
                    (File.Exists(System.IO.Path.Combine(directory, "pytorch_model.bin")) ? " (only safetensors weights are read, not pytorch_model.bin)" : ""));
            using var file = SafeTensorsFile.Open(single);
            tensors.AddRange(file.Tensors.Select(t => (single, t)));
            return ([single], tensors);
        }
        var map = ReadIndex(index);
        var files = new List<string>();
        foreach (var group in map.GroupBy(kv => kv.Value, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            string shard = System.IO.Path.Combine(directory, group.Key);
            if (!File.Exists(shard))
                throw new InvalidDataException($"{index}: tensor '{group.First().Key}' is stored in '{group.Key}', which does not exist");
            using var file = SafeTensorsFile.Open(shard);
            foreach (var (name, _) in group)
                if (!file.Contains(name)) throw new InvalidDataException($"{index}: tensor '{name}' is listed in '{group.Key}', which does not hold it");
            foreach (var t in file.Tensors)
            {
                if (!map.TryGetValue(t.Name, out string? listed) || listed != group.Key)
                    throw new InvalidDataException($"{shard}: tensor '{t.Name}' is not listed for this shard in {IndexFile}");
                tensors.Add((shard, t));
            }
            files.Add(shard);
        }
        return (files, tensors);
    }

    /// <summary>The weight_map of an index file: tensor name -&gt; shard file name.</summary>
    private static Dictionary<string, string> ReadIndex(string index)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(index)); }
        catch (JsonException e) { throw new InvalidDataException($"{index}: not valid JSON: {e.Message}"); }
        if (root?["weight_map"] is not JsonObject weightMap) throw new InvalidDataException($"{index}: weight_map is missing or not an object");
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in weightMap)
        {
            if (value is not JsonValue v || v.GetValueKind() != JsonValueKind.String)
                throw new InvalidDataException($"{index}: tensor '{name}' has a shard that is not a file name");
            string file = v.GetValue<string>();
            if (file.Length == 0 || file.Contains('/') || file.Contains('\\') || file is "." or "..")
                throw new InvalidDataException($"{index}: tensor '{name}' is in '{file}', which is not a file of this directory");
            map[name] = file;
        }
        return map;
    }

    /// <summary>
    /// Builds the model and loads its weights (upcast to fp32). <paramref name="adapt"/> wraps the attention and MLP
    /// projections (LoRA: the adapters keep their initialisation); <paramref name="dropout"/> is GPT-2's residual and
    /// embedding dropout for training (config.json's own rates are not applied).
    /// </summary>
    public LanguageModel CreateModel(IBackend backend, ulong seed = 0, Func<Linear, Module>? adapt = null, float dropout = 0f, bool loadWeights = true)
    {
        var model = Config.CreateModel(backend, seed, adapt, dropout);
        try
        {
            if (loadWeights) LoadInto(model);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The first parameter of <paramref name="model"/> (a model of this configuration; LoRA adapters aside) whose values
    /// differ from the stored weights (upcast as on load), or null when every one is as stored. Reads one tensor at a time.
    /// </summary>
    public string? FirstChangedParameter(LanguageModel model)
    {
        var open = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var p in model.Parameters())
            {
                if (LoraLinear.IsAdapter(p.Name)) continue;
                if (!_tensors.TryGetValue(p.Name, out var where)) return p.Name;
                if (!open.TryGetValue(where.File, out var file)) open[where.File] = file = SafeTensorsFile.Open(where.File);
                if (!file.GetInfo(where.Tensor).HasShape(p.Shape) || !AsLoaded(file.ReadFloats(where.Tensor), p.Value)) return p.Name;
            }
            return null;
        }
        finally
        {
            foreach (var file in open.Values) file.Dispose();
        }
    }

    /// <summary>Whether <paramref name="value"/> holds <paramref name="stored"/> as loading put it there (bf16 weights: rounded to nearest even).</summary>
    private static bool AsLoaded(float[] stored, Tensor value)
    {
        if (value.DType == DType.Float32) return stored.AsSpan().SequenceEqual(value.ToArray());
        var bits = new ushort[value.Count];
        value.CopyTo<ushort>(bits);
        for (int i = 0; i < bits.Length; i++)
            if (BFloat16.RoundToNearestEven(stored[i]) != bits[i]) return false;
        return true;
    }

    /// <summary>
    /// Reads every parameter of <paramref name="model"/> (a model of this configuration) from the weights; LoRA adapters
    /// keep their values.
    /// </summary>
    public void LoadInto(LanguageModel model)
    {
        var open = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var p in model.Parameters())
            {
                if (LoraLinear.IsAdapter(p.Name)) continue;
                if (!_tensors.TryGetValue(p.Name, out var where))
                    throw new InvalidDataException($"{Path}: the model has a parameter '{p.Name}' that the weights lack: it is not a model of {ConfigFile}");
                if (!open.TryGetValue(where.File, out var file)) open[where.File] = file = SafeTensorsFile.Open(where.File);
                file.ReadInto(where.Tensor, p.Value);
            }
        }
        finally
        {
            foreach (var file in open.Values) file.Dispose();
        }
    }
}
