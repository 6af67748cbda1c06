using System.Text.RegularExpressions;

namespace Flora.Nn.Models.HuggingFace;

/// <summary>
/// Where each parameter of a Flora model lives in a Hugging Face checkpoint, and the shape config.json implies for it.
/// Flora's parameter names are Hugging Face's module paths: Llama-family names are identical, GPT-2's lack the
/// "transformer." prefix that GPT2LMHeadModel adds (files with and without it are read; files are written with it).
/// Some files also hold buffers that are not parameters: GPT-2's causal masks h.N.attn.bias and h.N.attn.masked_bias,
/// older Llama checkpoints' rotary_emb.inv_freq, and lm_head.weight beside a tied embedding; they are skipped.
/// </summary>
internal static partial class HfLayout
{
    /// <summary>
    /// The parameters of the model <paramref name="config"/> describes, under Flora's names, with their shapes, in the
    /// order of <see cref="Module.Parameters"/> (a test holds the two to each other).
    /// </summary>
    public static IReadOnlyList<(string Name, long[] Shape)> Parameters(HfModelConfig config)
    {
        var list = new List<(string, long[])>();
        void Add(string name, params long[] shape) => list.Add((name, shape));
        if (config.Gpt2 is Gpt2Config g)
        {
            long c = g.Embed, f = g.InnerSize;
            Add("wte.weight", g.Vocabulary, c);
            Add("wpe.weight", g.Context, c);
            for (int i = 0; i < g.Layers; i++)
            {
                string h = $"h.{i}";
                Add($"{h}.ln_1.weight", c); Add($"{h}.ln_1.bias", c);
                Add($"{h}.attn.c_attn.weight", c, 3 * c); Add($"{h}.attn.c_attn.bias", 3 * c);
                Add($"{h}.attn.c_proj.weight", c, c); Add($"{h}.attn.c_proj.bias", c);
                Add($"{h}.ln_2.weight", c); Add($"{h}.ln_2.bias", c);
                Add($"{h}.mlp.c_fc.weight", c, f); Add($"{h}.mlp.c_fc.bias", f);
                Add($"{h}.mlp.c_proj.weight", f, c); Add($"{h}.mlp.c_proj.bias", c);
            }
            Add("ln_f.weight", c); Add("ln_f.bias", c);
            return list;
        }
        var l = config.Llama!;
        long e = l.Embed, q = (long)l.Heads * l.HeadSize, kv = (long)l.KvHeads * l.HeadSize, ff = l.Intermediate;
        Add("model.embed_tokens.weight", l.Vocabulary, e);
        for (int i = 0; i < l.Layers; i++)
        {
            string p = $"model.layers.{i}";
            Add($"{p}.input_layernorm.weight", e);
            foreach (var (name, width) in new[] { ("q_proj", q), ("k_proj", kv), ("v_proj", kv) })
            {
                Add($"{p}.self_attn.{name}.weight", width, e);
                if (l.AttentionBias) Add($"{p}.self_attn.{name}.bias", width);
            }
            Add($"{p}.self_attn.o_proj.weight", e, q);
            Add($"{p}.post_attention_layernorm.weight", e);
            Add($"{p}.mlp.gate_proj.weight", ff, e);
            Add($"{p}.mlp.up_proj.weight", ff, e);
            Add($"{p}.mlp.down_proj.weight", e, ff);
        }
        Add("model.norm.weight", e);
        if (!l.TiedEmbeddings) Add("lm_head.weight", l.Vocabulary, e);
        return list;
    }

    /// <summary>
    /// The name a file written by Flora gives parameter (or module path) <paramref name="name"/>: GPT-2's get
    /// "transformer.", as GPT2LMHeadModel's own files do.
    /// </summary>
    public static string FileName(HfArchitecture architecture, string name) => architecture == HfArchitecture.Gpt2 ? "transformer." + name : name;

    /// <summary>
    /// Flora's name for tensor <paramref name="fileName"/> of a checkpoint, or null for a buffer that is not a parameter
    /// (skipped), given whether the embedding is tied.
    /// </summary>
    public static string? FloraName(HfArchitecture architecture, string fileName, bool tied)
    {
        if (tied && fileName is "lm_head.weight") return null;
        if (architecture == HfArchitecture.Gpt2)
        {
            string name = fileName.StartsWith("transformer.", StringComparison.Ordinal) ? fileName["transformer.".Length..] : fileName;
            return Gpt2Mask().IsMatch(name) ? null : name;
        }
        return RotaryBuffer().IsMatch(fileName) ? null : fileName;
    }

    [GeneratedRegex(@"^h\.\d+\.attn\.(masked_)?bias$")]
    private static partial Regex Gpt2Mask();

    [GeneratedRegex(@"^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$")]
    private static partial Regex RotaryBuffer();

    /// <summary>A shape as Flora writes it: "(a, b)".</summary>
    public static string Text(IEnumerable<long> shape) => "(" + string.Join(", ", shape) + ")";
}
