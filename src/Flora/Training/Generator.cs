using Flora.Backends;
using Flora.Data.Tokenizers;
using Flora.Nn.Models;
using Flora.Tensors;

namespace Flora.Training;

/// <summary>How the next token is chosen.</summary>
/// <param name="Temperature">
/// Divides the logits before the softmax; 1 by default, and positive unless <paramref name="Greedy"/>.
/// </param>
/// <param name="TopK">Draw among the k most likely tokens only; 0 (the default) for all.</param>
/// <param name="Greedy">Always take the most likely token; off by default.</param>
/// <param name="Seed">Seed of the draws; 0 by default.</param>
public sealed record SamplingOptions(float Temperature = 1f, int TopK = 0, bool Greedy = false, ulong Seed = 0)
{
    /// <summary>
    /// Throws an <see cref="ArgumentException"/> for a temperature that is not positive (without greedy) or a negative
    /// top-k.
    /// </summary>
    public void Validate()
    {
        if (!(Temperature > 0) && !Greedy) throw new ArgumentException($"temperature must be positive, got {Temperature}");
        if (TopK < 0) throw new ArgumentException($"top-k must be non-negative, got {TopK}");
    }
}

/// <summary>
/// Autoregressive sampling from a decoder-only language model: the whole (context-truncated) sequence
/// goes through the model for each new token, the last row of logits is read back, and the next token
/// is the argmax (greedy) or a draw from softmax(logits / temperature), optionally restricted to the
/// top k. Stops at the end-of-text token if one is given.
/// </summary>
public static class Generator
{
    /// <summary>
    /// Up to <paramref name="maxTokens"/> tokens that continue <paramref name="prompt"/>, yielded as they are chosen; the
    /// sequence ends after <paramref name="endOfText"/>, which is yielded too. Turns the model's dropout off.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// The prompt is empty or the options are invalid (thrown when enumeration starts).
    /// </exception>
    public static IEnumerable<int> Sample(LanguageModel model, IReadOnlyList<int> prompt, int maxTokens, SamplingOptions options, int? endOfText = null)
    {
        options.Validate();
        if (prompt.Count == 0) throw new ArgumentException("the prompt encodes to no tokens");
        IBackend backend = model.Backend;
        model.Context.Training = false;
        var tokens = new List<int>(prompt);
        var random = new Random((int)(options.Seed & 0x7FFFFFFF));
        var logits = new float[model.Vocabulary];
        for (int n = 0; n < maxTokens; n++)
        {
            int start = Math.Max(0, tokens.Count - model.MaxSequenceLength), length = tokens.Count - start;
            using var ids = backend.Allocate(new Shape(1, length), MemoryTag.Activations, DType.Int32);
            backend.Upload(tokens.GetRange(start, length).ToArray(), ids);
            Tensor all = model.Forward(ids);                                        // (T, V)
            backend.Download(all.RowSlice(length - 1, 1), logits);
            int next = options.Greedy ? ArgMax(logits) : Draw(logits, options, random);
            tokens.Add(next);
            yield return next;
            if (next == endOfText) yield break;
        }
    }

    /// <summary>Prompt text in, completion text out.</summary>
    public static string Complete(LanguageModel model, ITokenizer tokenizer, string prompt, int maxTokens, SamplingOptions options) =>
        tokenizer.Decode(Sample(model, tokenizer.Encode(prompt), maxTokens, options, tokenizer.EndOfText).ToArray());

    private static int ArgMax(float[] x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }

    private static int Draw(float[] logits, SamplingOptions o, Random random)
    {
        int[] candidates = Enumerable.Range(0, logits.Length).ToArray();
        if (o.TopK > 0 && o.TopK < logits.Length) candidates = candidates.OrderByDescending(i => logits[i]).Take(o.TopK).ToArray();
        double max = candidates.Max(i => logits[i]);
        double[] weights = candidates.Select(i => Math.Exp((logits[i] - max) / o.Temperature)).ToArray();
        double u = random.NextDouble() * weights.Sum();
        for (int i = 0; i < candidates.Length; i++)
        {
            u -= weights[i];
            if (u <= 0) return candidates[i];
        }
        return candidates[^1];
    }
}
