using Flora.Backends;
using Flora.Nn.Models;
using Flora.Tensors;

namespace Flora.Training;

/// <summary>Beam search settings: beams per input (1 = greedy), the length penalty, the longest output, inputs decoded together.</summary>
/// <param name="BeamSize">k: hypotheses kept per input; 1 (the default) is greedy.</param>
/// <param name="LengthPenalty">The exponent of the length in the final score log p / length^penalty; 1 by default.</param>
/// <param name="MaxTokens">The longest output, in tokens; 128 by default.</param>
/// <param name="Batch">Inputs decoded together; 16 by default.</param>
public sealed record BeamOptions(int BeamSize = 1, float LengthPenalty = 1f, int MaxTokens = 128, int Batch = 16)
{
    /// <summary>
    /// Throws an <see cref="ArgumentException"/> when the beam size, the longest output or the batch is below 1, or the
    /// length penalty is not finite.
    /// </summary>
    public void Validate()
    {
        if (BeamSize < 1) throw new ArgumentException($"beam size must be at least 1, got {BeamSize}");
        if (MaxTokens < 1) throw new ArgumentException($"the maximum output length must be at least 1, got {MaxTokens}");
        if (Batch < 1) throw new ArgumentException($"the generation batch must be at least 1, got {Batch}");
        if (!float.IsFinite(LengthPenalty)) throw new ArgumentException($"the length penalty must be finite, got {LengthPenalty}");
    }
}

/// <summary>
/// Batched beam search (greedy with one beam). Every step runs the model once over the live hypotheses of
/// several inputs, reads the last position's logits, and extends each hypothesis by its 2k most likely tokens;
/// of all extensions of an input, those ending with the end token are finished, and the k best others carry on.
/// An input is done when k hypotheses have finished, when none is left alive, or at the length limit (the
/// model's context, or <see cref="BeamOptions.MaxTokens"/>), where live hypotheses count as finished. The answer
/// is the finished hypothesis with the best log-probability / length^<see cref="BeamOptions.LengthPenalty"/>, the
/// length counting generated tokens including the end token (Hugging Face's convention, early stopping on).
/// Decoder-only models continue a prompt, and inputs are decoded together only when their prompts have the same
/// length (their rows then stay aligned); encoder-decoder models start the decoder from the end token, so any
/// inputs can share a batch: their sources are right-padded and masked.
/// </summary>
public static class BeamSearch
{
    private sealed record Hypothesis(int[] Tokens, double Score);

    /// <summary>Outputs for each input (prompts of a decoder-only model, or sources of an encoder-decoder), without the end token.</summary>
    public static int[][] Generate(LanguageModel model, IReadOnlyList<int[]> inputs, int endOfText, BeamOptions options, IProgress<int>? progress = null)
    {
        options.Validate();
        foreach (int[] input in inputs)
            if (input.Length == 0) throw new ArgumentException("an input encodes to no tokens");
        model.Context.Training = false;
        var results = new int[inputs.Count][];
        IEnumerable<int[]> groups = model.IsEncoderDecoder
            ? Enumerable.Range(0, inputs.Count).Chunk(options.Batch)
            : Enumerable.Range(0, inputs.Count).GroupBy(i => inputs[i].Length).SelectMany(g => g.Chunk(options.Batch));
        int done = 0;
        foreach (int[] group in groups)
        {
            int[][] outputs = DecodeGroup(model, group.Select(i => inputs[i]).ToArray(), endOfText, options);
            for (int j = 0; j < group.Length; j++) results[group[j]] = outputs[j];
            done += group.Length;
            progress?.Report(done);
        }
        return results;
    }

    private static int[][] DecodeGroup(LanguageModel model, int[][] inputs, int eos, BeamOptions o)
    {
        IBackend backend = model.Backend;
        int n = inputs.Length, vocabulary = model.Vocabulary, k = o.BeamSize;
        var live = Enumerable.Range(0, n).Select(_ => new List<Hypothesis> { new([], 0) }).ToArray();
        var finished = Enumerable.Range(0, n).Select(_ => new List<Hypothesis>()).ToArray();
        int prefix = model.IsEncoderDecoder ? 1 : inputs[0].Length;                  // decoder tokens before the output
        int maxTokens = Math.Min(o.MaxTokens, model.MaxSequenceLength - prefix + 1);      // the last input still fits the context
        var logits = new float[vocabulary];
        for (int step = 0; step < maxTokens; step++)
        {
            var rows = new List<(int Input, Hypothesis Hypothesis)>();
            for (int i = 0; i < n; i++)
                if (finished[i].Count < k) rows.AddRange(live[i].Select(h => (i, h)));
            if (rows.Count == 0) break;
            int t = prefix + step;
            var ids = new int[rows.Count * t];
            for (int r = 0; r < rows.Count; r++)
            {
                var (input, h) = rows[r];
                if (model.IsEncoderDecoder) ids[r * t] = eos; else inputs[input].CopyTo(ids, r * t);
                h.Tokens.CopyTo(ids, r * t + prefix);
            }
            using var idTensor = backend.Allocate(new Shape(rows.Count, t), MemoryTag.Activations, DType.Int32);
            backend.Upload(ids, idTensor);
            Tensor? sources = model.IsEncoderDecoder ? SetSources(model, rows.Select(r => inputs[r.Input]).ToArray(), eos) : null;
            Tensor all = model.Forward(idTensor);                                      // (rows * t, V)
            var candidates = Enumerable.Range(0, n).Select(_ => new List<Hypothesis>()).ToArray();
            for (int r = 0; r < rows.Count; r++)
            {
                backend.Download(all.RowSlice(r * t + t - 1, 1), logits);
                var (input, h) = rows[r];
                foreach (var (token, logProbability) in Best(logits, 2 * k))
                    candidates[input].Add(new Hypothesis([.. h.Tokens, token], h.Score + logProbability));
            }
            sources?.Dispose();
            for (int i = 0; i < n; i++)
            {
                if (finished[i].Count >= k) continue;
                live[i].Clear();
                foreach (var c in candidates[i].OrderByDescending(c => c.Score))
                {
                    if (c.Tokens[^1] == eos) { if (finished[i].Count < k) finished[i].Add(c); }
                    else if (live[i].Count < k) live[i].Add(c);
                    if (live[i].Count == k) break;
                }
            }
        }
        var outputs = new int[n][];
        for (int i = 0; i < n; i++)
        {
            var pool = finished[i].Count > 0 && finished[i].Count >= k ? finished[i] : finished[i].Concat(live[i]).ToList();
            Hypothesis best = pool.OrderByDescending(h => h.Score / Math.Pow(Math.Max(1, h.Tokens.Length), o.LengthPenalty)).First();
            outputs[i] = best.Tokens.Length > 0 && best.Tokens[^1] == eos ? best.Tokens[..^1] : best.Tokens;
        }
        return outputs;
    }

    /// <summary>The sources of the rows, right-padded with the end token, handed to the model with their lengths.</summary>
    private static Tensor SetSources(LanguageModel model, int[][] sources, int pad)
    {
        int ts = sources.Max(s => s.Length), b = sources.Length;
        var ids = new int[b * ts];
        Array.Fill(ids, pad);
        for (int r = 0; r < b; r++) sources[r].CopyTo(ids, r * ts);
        var tensor = model.Backend.Allocate(new Shape(b, ts), MemoryTag.Activations, DType.Int32);
        model.Backend.Upload(ids, tensor);
        model.SetSource(tensor, sources.Select(s => s.Length).ToArray());
        return tensor;
    }

    /// <summary>The <paramref name="count"/> most likely tokens of a row of logits with their log-probabilities (ties: lower id first).</summary>
    private static (int Token, double LogProbability)[] Best(float[] logits, int count)
    {
        double max = logits.Max(), sum = 0;
        foreach (float l in logits) sum += Math.Exp(l - max);
        double logZ = max + Math.Log(sum);
        count = Math.Min(count, logits.Length);
        var best = new List<int>(count + 1);                                         // ids, best first
        for (int i = 0; i < logits.Length; i++)
        {
            if (best.Count == count && logits[i] <= logits[best[^1]]) continue;
            int at = best.Count;
            while (at > 0 && logits[best[at - 1]] < logits[i]) at--;
            best.Insert(at, i);
            if (best.Count > count) best.RemoveAt(count);
        }
        return best.Select(i => (i, logits[i] - logZ)).ToArray();
    }
}
