using Flora.Nn.Models;

namespace Flora.Tests.HuggingFace;

/// <summary>
/// A reference for the Hugging Face decoders, written from their math with plain loops in double precision and no
/// Flora code: GPT2LMHeadModel and LlamaForCausalLM (with grouped key/value heads, Llama 3 rope scaling, and Qwen2's
/// q/k/v biases). Weights are looked up by Hugging Face's names (GPT-2's without "transformer."), row-major, with
/// nn.Linear's (out, in) layout and GPT-2 Conv1D's (in, out). Returns logits (B, T, V) flattened.
/// </summary>
internal static class NaiveDecoder
{
    public static double[] Gpt2(Gpt2Config c, Func<string, float[]> w, int[] ids, int batch, int length)
    {
        int C = c.Embed, H = c.Heads, d = C / H, V = c.Vocabulary, F = c.Inner ?? 4 * C;
        var logits = new double[batch * length * V];
        for (int b = 0; b < batch; b++)
        {
            var x = new double[length][];
            for (int t = 0; t < length; t++)
            {
                int id = ids[b * length + t];
                x[t] = Enumerable.Range(0, C).Select(i => (double)w("wte.weight")[id * C + i] + w("wpe.weight")[t * C + i]).ToArray();
            }
            for (int l = 0; l < c.Layers; l++)
            {
                string p = $"h.{l}";
                var qkv = x.Select(row => Conv1D(LayerNorm(row, w($"{p}.ln_1.weight"), w($"{p}.ln_1.bias"), c.LayerNormEps), w($"{p}.attn.c_attn.weight"), w($"{p}.attn.c_attn.bias"), 3 * C)).ToArray();
                var q = qkv.Select(r => r[..C]).ToArray();
                var k = qkv.Select(r => r[C..(2 * C)]).ToArray();
                var v = qkv.Select(r => r[(2 * C)..]).ToArray();
                var o = Attention(q, k, v, H, H, d);
                for (int t = 0; t < length; t++) Add(x[t], Conv1D(o[t], w($"{p}.attn.c_proj.weight"), w($"{p}.attn.c_proj.bias"), C));
                for (int t = 0; t < length; t++)
                {
                    var h = Conv1D(LayerNorm(x[t], w($"{p}.ln_2.weight"), w($"{p}.ln_2.bias"), c.LayerNormEps), w($"{p}.mlp.c_fc.weight"), w($"{p}.mlp.c_fc.bias"), F);
                    for (int i = 0; i < F; i++) h[i] = 0.5 * h[i] * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (h[i] + 0.044715 * h[i] * h[i] * h[i])));
                    Add(x[t], Conv1D(h, w($"{p}.mlp.c_proj.weight"), w($"{p}.mlp.c_proj.bias"), C));
                }
            }
            for (int t = 0; t < length; t++)
            {
                var xn = LayerNorm(x[t], w("ln_f.weight"), w("ln_f.bias"), c.LayerNormEps);
                var row = Linear(xn, w("wte.weight"), null, V);
                Array.Copy(row, 0, logits, (b * length + t) * V, V);
            }
        }
        return logits;
    }

    public static double[] Llama(LlamaConfig c, Func<string, float[]> w, int[] ids, int batch, int length)
    {
        int C = c.Embed, H = c.Heads, K = c.KeyValueHeads ?? H, d = c.HeadDim ?? C / H, V = c.Vocabulary, F = c.Intermediate;
        double[] frequencies = Enumerable.Range(0, d / 2).Select(i => Frequency(i, d, c)).ToArray();
        var logits = new double[batch * length * V];
        float[]? Bias(string name) => c.AttentionBias ? w(name) : null;
        for (int b = 0; b < batch; b++)
        {
            var x = new double[length][];
            for (int t = 0; t < length; t++)
            {
                int id = ids[b * length + t];
                x[t] = Enumerable.Range(0, C).Select(i => (double)w("model.embed_tokens.weight")[id * C + i]).ToArray();
            }
            for (int l = 0; l < c.Layers; l++)
            {
                string p = $"model.layers.{l}";
                var h = x.Select(row => RmsNorm(row, w($"{p}.input_layernorm.weight"), c.NormEps)).ToArray();
                var q = h.Select(r => Linear(r, w($"{p}.self_attn.q_proj.weight"), Bias($"{p}.self_attn.q_proj.bias"), H * d)).ToArray();
                var k = h.Select(r => Linear(r, w($"{p}.self_attn.k_proj.weight"), Bias($"{p}.self_attn.k_proj.bias"), K * d)).ToArray();
                var v = h.Select(r => Linear(r, w($"{p}.self_attn.v_proj.weight"), Bias($"{p}.self_attn.v_proj.bias"), K * d)).ToArray();
                for (int t = 0; t < length; t++)
                {
                    Rotate(q[t], H, d, t, frequencies);
                    Rotate(k[t], K, d, t, frequencies);
                }
                var o = Attention(q, k, v, H, K, d);
                for (int t = 0; t < length; t++) Add(x[t], Linear(o[t], w($"{p}.self_attn.o_proj.weight"), null, C));
                for (int t = 0; t < length; t++)
                {
                    var h2 = RmsNorm(x[t], w($"{p}.post_attention_layernorm.weight"), c.NormEps);
                    var gate = Linear(h2, w($"{p}.mlp.gate_proj.weight"), null, F);
                    var up = Linear(h2, w($"{p}.mlp.up_proj.weight"), null, F);
                    var a = gate.Select((g, i) => g / (1 + Math.Exp(-g)) * up[i]).ToArray();
                    Add(x[t], Linear(a, w($"{p}.mlp.down_proj.weight"), null, C));
                }
            }
            float[] head = c.TiedEmbeddings ? w("model.embed_tokens.weight") : w("lm_head.weight");
            for (int t = 0; t < length; t++)
                Array.Copy(Linear(RmsNorm(x[t], w("model.norm.weight"), c.NormEps), head, null, V), 0, logits, (b * length + t) * V, V);
        }
        return logits;
    }

    /// <summary>Hugging Face's loss: the mean cross-entropy of logits at positions 0..T-2 against the ids at 1..T-1.</summary>
    public static double Loss(double[] logits, int[] ids, int batch, int length, int vocabulary)
    {
        double sum = 0;
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < length - 1; t++)
            {
                var row = logits.AsSpan((b * length + t) * vocabulary, vocabulary);
                double max = double.NegativeInfinity;
                foreach (double z in row) max = Math.Max(max, z);
                double s = 0;
                foreach (double z in row) s += Math.Exp(z - max);
                sum += max + Math.Log(s) - row[ids[b * length + t + 1]];
            }
        return sum / (batch * (length - 1));
    }

    /// <summary>theta^(-2i/d), then Llama 3's scaling: long wavelengths divided by the factor, middle ones interpolated.</summary>
    public static double Frequency(int i, int d, LlamaConfig c)
    {
        double f = 1.0 / Math.Pow(c.RopeTheta, 2.0 * i / d);
        if (c.RopeScaling is not { } s) return f;
        double wavelength = 2 * Math.PI / f, low = s.OriginalContext / s.LowFrequencyFactor, high = s.OriginalContext / s.HighFrequencyFactor;
        if (wavelength > low) return f / s.Factor;
        if (wavelength < high) return f;
        double smooth = (s.OriginalContext / wavelength - s.LowFrequencyFactor) / (s.HighFrequencyFactor - s.LowFrequencyFactor);
        return (1 - smooth) * f / s.Factor + smooth * f;
    }

    private static void Rotate(double[] x, int heads, int d, int t, double[] frequencies)
    {
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < d / 2; i++)
            {
                double angle = t * frequencies[i], cos = Math.Cos(angle), sin = Math.Sin(angle);
                double a = x[h * d + i], b = x[h * d + i + d / 2];
                x[h * d + i] = a * cos - b * sin;
                x[h * d + i + d / 2] = b * cos + a * sin;
            }
    }

    /// <summary>Causal attention: query head h reads key/value head h / (H / K); scale 1/sqrt(d).</summary>
    private static double[][] Attention(double[][] q, double[][] k, double[][] v, int heads, int kvHeads, int d)
    {
        int length = q.Length;
        var o = new double[length][];
        for (int t = 0; t < length; t++)
        {
            o[t] = new double[heads * d];
            for (int h = 0; h < heads; h++)
            {
                int j = h / (heads / kvHeads);
                var scores = new double[t + 1];
                for (int s = 0; s <= t; s++)
                {
                    double dot = 0;
                    for (int e = 0; e < d; e++) dot += q[t][h * d + e] * k[s][j * d + e];
                    scores[s] = dot / Math.Sqrt(d);
                }
                double max = scores.Max(), sum = scores.Sum(z => Math.Exp(z - max));
                for (int s = 0; s <= t; s++)
                {
                    double p = Math.Exp(scores[s] - max) / sum;
                    for (int e = 0; e < d; e++) o[t][h * d + e] += p * v[s][j * d + e];
                }
            }
        }
        return o;
    }

    /// <summary>y = W x + b for nn.Linear's W (out, in).</summary>
    private static double[] Linear(double[] x, float[] weight, float[]? bias, int outFeatures)
    {
        int n = x.Length;
        var y = new double[outFeatures];
        for (int o = 0; o < outFeatures; o++)
        {
            double s = bias is null ? 0 : bias[o];
            for (int i = 0; i < n; i++) s += weight[o * n + i] * x[i];
            y[o] = s;
        }
        return y;
    }

    /// <summary>y = x W + b for Conv1D's W (in, out).</summary>
    private static double[] Conv1D(double[] x, float[] weight, float[] bias, int outFeatures)
    {
        var y = bias.Select(z => (double)z).ToArray();
        for (int i = 0; i < x.Length; i++)
            for (int o = 0; o < outFeatures; o++) y[o] += x[i] * weight[i * outFeatures + o];
        return y;
    }

    private static double[] LayerNorm(double[] x, float[] gamma, float[] beta, double eps)
    {
        double mean = x.Average(), variance = x.Select(z => (z - mean) * (z - mean)).Average();
        return x.Select((z, i) => (z - mean) / Math.Sqrt(variance + eps) * gamma[i] + beta[i]).ToArray();
    }

    private static double[] RmsNorm(double[] x, float[] weight, double eps)
    {
        double rms = Math.Sqrt(x.Select(z => z * z).Average() + eps);
        return x.Select((z, i) => z / rms * weight[i]).ToArray();
    }

    private static void Add(double[] x, double[] y)
    {
        for (int i = 0; i < x.Length; i++) x[i] += y[i];
    }
}
