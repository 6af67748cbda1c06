using Flora.Backends;

namespace Flora.Nn.Models;

/// <summary>The named model presets of the command line.</summary>
public static class ModelFactory
{
    public static readonly IReadOnlyList<string> Presets =
        ["gpt-small", "gpt-tiny", "gpt2-124m", "gpt2-350m", "llama-small", "llama-tiny", "llama-60m", "t5-small", "t5-tiny", "t5-small-size"];

    /// <summary>
    /// Builds preset <paramref name="name"/> for a vocabulary of <paramref name="vocabulary"/> tokens.
    /// <paramref name="adapt"/>, when given, wraps every attention and MLP projection (LoRA).
    /// </summary>
    public static LanguageModel Create(string name, IBackend backend, int vocabulary, ulong seed, float dropout = 0f,
        Func<Linear, Module>? adapt = null, int? context = null)
    {
        int Ctx(int preset) => context is int c ? Math.Max(c, 1) : preset;
        return name switch
        {
            "gpt-small" => new Gpt2(backend, Gpt2Config.Small(vocabulary) with { Dropout = dropout, Context = Ctx(256) }, seed, adapt),
            "gpt-tiny" => new Gpt2(backend, Gpt2Config.Tiny(vocabulary) with { Dropout = dropout, Context = Ctx(64) }, seed, adapt),
            "gpt2-124m" => new Gpt2(backend, Gpt2Config.Gpt2_124M(vocabulary) with { Dropout = dropout, Context = Ctx(1024) }, seed, adapt),
            "gpt2-350m" => new Gpt2(backend, Gpt2Config.Gpt2_350M(vocabulary) with { Dropout = dropout, Context = Ctx(1024) }, seed, adapt),
            "llama-small" => new Llama(backend, LlamaConfig.Small(vocabulary) with { Context = Ctx(256) }, seed, adapt),
            "llama-tiny" => new Llama(backend, LlamaConfig.Tiny(vocabulary) with { Context = Ctx(64) }, seed, adapt),
            "llama-60m" => new Llama(backend, LlamaConfig.Llama60M(vocabulary) with { Context = Ctx(256) }, seed, adapt),
            "t5-small" => new T5(backend, T5Config.Small(vocabulary) with { Dropout = dropout, Context = Ctx(256) }, seed, adapt),
            "t5-tiny" => new T5(backend, T5Config.Tiny(vocabulary) with { Dropout = dropout, Context = Ctx(64) }, seed, adapt),
            "t5-small-size" => new T5(backend, T5Config.T5SmallSize(vocabulary) with { Dropout = dropout, Context = Ctx(512) }, seed, adapt),
            _ => throw new ArgumentException($"unknown model '{name}': choose one of {string.Join(", ", Presets)}"),
        };
    }
}
