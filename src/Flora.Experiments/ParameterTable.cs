using Flora.Backends;
using Flora.Optim;
using Flora.Tensors;

using Flora.Nn;

namespace Flora.Experiments;

/// <summary>One parameter of a <see cref="ParameterTable"/>: its name in the model, its shape and, for matrices, its layout.</summary>
public sealed record ParameterSpec(string Name, Shape Shape, WeightLayout Layout = WeightLayout.OutIn)
{
    /// <summary>Number of elements.</summary>
    public long Count => Shape.Count;

    public bool IsMatrix => Shape.Rank == 2;

    /// <summary>Input features of a matrix (the dimension x is multiplied along).</summary>
    public int InFeatures => RequireMatrix() && Layout == WeightLayout.InOut ? Shape[0] : Shape[1];

    /// <summary>Output features of a matrix.</summary>
    public int OutFeatures => RequireMatrix() && Layout == WeightLayout.InOut ? Shape[1] : Shape[0];

    private bool RequireMatrix() =>
        IsMatrix ? true : throw new InvalidOperationException($"'{Name}' {Shape} is not a matrix");

    public override string ToString() => $"{Name} {Shape}";
}

/// <summary>
/// The parameters of a model as a list of (name, shape): enough to size optimizer states and
/// gradient buffers without building the model's modules. Presets: the pilot network of
/// <see cref="PilotStudy"/> and GPT-2 with Hugging Face's parameter names and layout.
/// <see cref="Allocate"/> creates real, zero-filled <see cref="Parameter"/>s (tagged
/// <see cref="MemoryTag.Parameters"/>), so memory can be measured on the ledger.
/// </summary>
public sealed class ParameterTable
{
    /// <summary>The names <see cref="Parse"/> accepts.</summary>
    public static IReadOnlyList<string> Presets { get; } = ["pilot", "gpt2-124m", "gpt2-350m"];

    /// <summary>The GPT-2 vocabulary (byte-level BPE) and context length.</summary>
    public const int Gpt2Vocabulary = 50257, Gpt2Context = 1024;

    public ParameterTable(string name, IEnumerable<ParameterSpec> entries)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Name = name;
        Entries = entries.ToArray();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in Entries)
        {
            if (string.IsNullOrWhiteSpace(e.Name)) throw new ArgumentException($"parameter table '{name}': a parameter has no name");
            if (!names.Add(e.Name)) throw new ArgumentException($"parameter table '{name}': '{e.Name}' appears twice");
            if (e.Shape.Rank == 0 || e.Shape.ToArray().Any(d => d <= 0))
                throw new ArgumentException($"parameter table '{name}': '{e.Name}' has shape {e.Shape}; every dimension must be positive");
        }
    }

    /// <summary>The model's name, e.g. "gpt2-124m".</summary>
    public string Name { get; }

    public IReadOnlyList<ParameterSpec> Entries { get; }

    /// <summary>Total number of parameters.</summary>
    public long ParameterCount => Entries.Sum(e => e.Count);

    /// <summary>Bytes of all parameters in float32.</summary>
    public long Bytes => ParameterCount * DType.Float32.Size();

    /// <summary>The entry named <paramref name="name"/>.</summary>
    public ParameterSpec this[string name] =>
        Entries.FirstOrDefault(e => e.Name == name) ?? throw new KeyNotFoundException($"no parameter '{name}' in '{Name}'");

    /// <summary>
    /// The pilot network of <see cref="PilotStudy"/>: 784 -> 768 -> 768 (no bias) -> 10, Linear layout (out, in).
    /// </summary>
    public static ParameterTable Pilot(int hidden = 768, int features = 28 * 28, int classes = PilotStudy.Classes) =>
        new("pilot",
        [
            new("fc1.weight", new Shape(hidden, features)),
            new("fc1.bias", new Shape(hidden)),
            new("fc2.weight", new Shape(hidden, hidden)),
            new("fc3.weight", new Shape(classes, hidden)),
            new("fc3.bias", new Shape(classes)),
        ]);

    /// <summary>
    /// GPT-2 with Hugging Face's names and layout (transformers' GPT2Model): token and position
    /// embeddings wte (vocab, embed) and wpe (context, embed); per block h.{i}: ln_1, attn.c_attn
    /// (embed, 3 embed), attn.c_proj (embed, embed), ln_2, mlp.c_fc (embed, 4 embed), mlp.c_proj
    /// (4 embed, embed), Conv1D weights stored (in, out) with biases; ln_f. The LM head is tied to wte.
    /// The number of attention heads does not change any shape.
    /// </summary>
    public static ParameterTable Gpt2(int layers, int embed, int vocab = Gpt2Vocabulary, int context = Gpt2Context, string? name = null)
    {
        if (layers <= 0) throw new ArgumentException($"GPT-2 needs a positive number of layers, got {layers}");
        if (embed <= 0) throw new ArgumentException($"GPT-2 needs a positive width, got {embed}");
        if (vocab <= 0) throw new ArgumentException($"GPT-2 needs a positive vocabulary, got {vocab}");
        if (context <= 0) throw new ArgumentException($"GPT-2 needs a positive context length, got {context}");
        var entries = new List<ParameterSpec>
        {
            new("wte.weight", new Shape(vocab, embed), WeightLayout.InOut),
            new("wpe.weight", new Shape(context, embed), WeightLayout.InOut),
        };
        for (int i = 0; i < layers; i++)
        {
            string h = $"h.{i}";
            entries.Add(new($"{h}.ln_1.weight", new Shape(embed)));
            entries.Add(new($"{h}.ln_1.bias", new Shape(embed)));
            entries.Add(new($"{h}.attn.c_attn.weight", new Shape(embed, 3 * embed), WeightLayout.InOut));
            entries.Add(new($"{h}.attn.c_attn.bias", new Shape(3 * embed)));
            entries.Add(new($"{h}.attn.c_proj.weight", new Shape(embed, embed), WeightLayout.InOut));
            entries.Add(new($"{h}.attn.c_proj.bias", new Shape(embed)));
            entries.Add(new($"{h}.ln_2.weight", new Shape(embed)));
            entries.Add(new($"{h}.ln_2.bias", new Shape(embed)));
            entries.Add(new($"{h}.mlp.c_fc.weight", new Shape(embed, 4 * embed), WeightLayout.InOut));
            entries.Add(new($"{h}.mlp.c_fc.bias", new Shape(4 * embed)));
            entries.Add(new($"{h}.mlp.c_proj.weight", new Shape(4 * embed, embed), WeightLayout.InOut));
            entries.Add(new($"{h}.mlp.c_proj.bias", new Shape(embed)));
        }
        entries.Add(new("ln_f.weight", new Shape(embed)));
        entries.Add(new("ln_f.bias", new Shape(embed)));
        return new ParameterTable(name ?? $"gpt2-{layers}x{embed}", entries);
    }

    /// <summary>GPT-2 small: 12 layers, 768 wide, 12 heads; 124,439,808 parameters.</summary>
    public static ParameterTable Gpt2_124M() => Gpt2(12, 768, name: "gpt2-124m");

    /// <summary>GPT-2 medium: 24 layers, 1024 wide, 16 heads; 354,823,168 parameters.</summary>
    public static ParameterTable Gpt2_350M() => Gpt2(24, 1024, name: "gpt2-350m");

    /// <summary>A preset by name (<see cref="Presets"/>, case-insensitive).</summary>
    /// <exception cref="ArgumentException">The name is not a preset.</exception>
    public static ParameterTable Parse(string model) => model?.Trim().ToLowerInvariant() switch
    {
        "pilot" => Pilot(),
        "gpt2-124m" => Gpt2_124M(),
        "gpt2-350m" => Gpt2_350M(),
        _ => throw new ArgumentException($"unknown model '{model}': expected {string.Join(", ", Presets)}"),
    };

    /// <summary>Number of matrices FLORA compresses at <paramref name="rank"/> (<see cref="FloraRules.IsEligible"/>).</summary>
    public int EligibleMatrices(int rank) => Entries.Count(e => FloraRules.IsEligible(e.Shape, rank));

    /// <summary>
    /// The LoRA adapters of this model at <paramref name="rank"/>: for every FLORA-eligible matrix
    /// (<see cref="FloraRules.IsEligible"/>) A (r, in) and B (out, r), named as <see cref="LoraLinear"/>
    /// names them ("h.0.attn.c_attn.lora_A"). Other parameters get no adapter.
    /// </summary>
    public ParameterTable LoraAdapters(int rank)
    {
        if (rank <= 0) throw new ArgumentException($"LoRA rank must be positive, got {rank}");
        var adapters = new List<ParameterSpec>();
        foreach (var e in Entries.Where(e => FloraRules.IsEligible(e.Shape, rank)))
        {
            string module = e.Name.EndsWith(".weight", StringComparison.Ordinal) ? e.Name[..^".weight".Length] : e.Name;
            adapters.Add(new($"{module}.lora_A", new Shape(rank, e.InFeatures)));
            adapters.Add(new($"{module}.lora_B", new Shape(e.OutFeatures, rank)));
        }
        return new ParameterTable($"{Name} LoRA(r={rank}) adapters", adapters);
    }

    /// <summary>
    /// Allocates one zero-filled, trainable <see cref="Parameter"/> per entry on <paramref name="backend"/>,
    /// tagged <see cref="MemoryTag.Parameters"/>. The caller owns (and disposes) them.
    /// </summary>
    public Parameter[] Allocate(IBackend backend)
    {
        var parameters = new List<Parameter>(Entries.Count);
        try
        {
            foreach (var e in Entries)
                parameters.Add(new Parameter(backend, e.Name, backend.Allocate(e.Shape, MemoryTag.Parameters)));
            return parameters.ToArray();
        }
        catch
        {
            foreach (var p in parameters) p.Dispose();
            throw;
        }
    }

    public override string ToString() => $"{Name}: {Entries.Count} tensors, {ParameterCount:N0} parameters";
}
