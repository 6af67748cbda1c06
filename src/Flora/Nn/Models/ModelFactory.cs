using Flora.Backends;

namespace Flora.Nn.Models;

/// <summary>The named model presets of the command line.</summary>
public static class ModelFactory
{
    /// <summary>
    /// The preset names <see cref="Config"/> and <see cref="Create"/> accept, as <c>flora train --model</c> lists them.
    /// </summary>
    public static readonly IReadOnlyList<string> Presets =
        ["gpt-small", "gpt-tiny", "gpt2-124m", "gpt2-350m", "llama-small", "llama-tiny", "llama-60m", "llama-1b", "llama-3b", "llama-7b",
         "t5-small", "t5-tiny", "t5-small-size"];

    /// <summary>
    /// The sizes of preset <paramref name="name"/> for a vocabulary of <paramref name="vocabulary"/> tokens: a
    /// <see cref="Gpt2Config"/>, <see cref="LlamaConfig"/> or <see cref="T5Config"/>. <paramref name="context"/>, when
    /// given, replaces the preset's longest sequence. llama-1b, llama-3b and llama-7b have the shapes of Llama 3.2 1B,
    /// Llama 3.2 3B and Llama 2 7B (for training from scratch; fine-tuning a published model reads its directory).
    /// </summary>
    public static object Config(string name, int vocabulary, float dropout = 0f, int? context = null)
    {
        int Ctx(int preset) => context is int c ? Math.Max(c, 1) : preset;
        return name switch
        {
            "gpt-small" => Gpt2Config.Small(vocabulary) with { Dropout = dropout, Context = Ctx(256) },
            "gpt-tiny" => Gpt2Config.Tiny(vocabulary) with { Dropout = dropout, Context = Ctx(64) },
            "gpt2-124m" => Gpt2Config.Gpt2_124M(vocabulary) with { Dropout = dropout, Context = Ctx(1024) },
            "gpt2-350m" => Gpt2Config.Gpt2_350M(vocabulary) with { Dropout = dropout, Context = Ctx(1024) },
            "llama-small" => LlamaConfig.Small(vocabulary) with { Context = Ctx(256) },
            "llama-tiny" => LlamaConfig.Tiny(vocabulary) with { Context = Ctx(64) },
            "llama-60m" => LlamaConfig.Llama60M(vocabulary) with { Context = Ctx(256) },
            "llama-1b" => LlamaConfig.Llama32_1B(vocabulary) with { Context = Ctx(131072) },
            "llama-3b" => LlamaConfig.Llama32_3B(vocabulary) with { Context = Ctx(131072) },
            "llama-7b" => LlamaConfig.Llama2_7B(vocabulary) with { Context = Ctx(4096) },
            "t5-small" => T5Config.Small(vocabulary) with { Dropout = dropout, Context = Ctx(256) },
            "t5-tiny" => T5Config.Tiny(vocabulary) with { Dropout = dropout, Context = Ctx(64) },
            "t5-small-size" => T5Config.T5SmallSize(vocabulary) with { Dropout = dropout, Context = Ctx(512) },
            _ => throw new ArgumentException($"unknown model '{name}': choose one of {string.Join(", ", Presets)}"),
        };
    }

    /// <summary>
    /// Builds preset <paramref name="name"/> for a vocabulary of <paramref name="vocabulary"/> tokens.
    /// <paramref name="adapt"/>, when given, wraps every attention and MLP projection (LoRA).
    /// </summary>
    public static LanguageModel Create(string name, IBackend backend, int vocabulary, ulong seed, float dropout = 0f,
        Func<Linear, Module>? adapt = null, int? context = null) => Config(name, vocabulary, dropout, context) switch
        {
            Gpt2Config g => new Gpt2(backend, g, seed, adapt),
            LlamaConfig l => new Llama(backend, l, seed, adapt),
            T5Config t => new T5(backend, t, seed, adapt),
            var other => throw new InvalidOperationException($"preset '{name}' has sizes of an unknown kind: {other}"),
        };

    /// <summary>Parameters of preset <paramref name="name"/>, counted from its shapes without building it (GPT-2 and Llama presets; null for T5).</summary>
    public static long? ParameterCount(string name, int vocabulary) => Config(name, vocabulary) switch
    {
        Gpt2Config g => g.ParameterCount,
        LlamaConfig l => l.ParameterCount,
        _ => null,
    };
}
