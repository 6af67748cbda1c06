namespace Flora.Metrics;

/// <summary>Precision, recall and F-measure of one ROUGE variant, each between 0 and 1.</summary>
/// <param name="Precision">Overlap / prediction size (n-grams, or tokens for ROUGE-L).</param>
/// <param name="Recall">Overlap / target size.</param>
/// <param name="F">2PR / (P + R), or 0 when P + R = 0.</param>
public sealed record RougeScore(double Precision, double Recall, double F);

/// <summary>
/// ROUGE-1, ROUGE-2 and ROUGE-L over a corpus: each precision, recall and F is the arithmetic mean of the
/// per-pair values (a macro average; not the bootstrap median that rouge-score's <c>BootstrapAggregator</c>
/// reports).
/// </summary>
/// <param name="Rouge1">Mean unigram scores.</param>
/// <param name="Rouge2">Mean bigram scores.</param>
/// <param name="RougeL">Mean longest-common-subsequence scores.</param>
/// <param name="Pairs">The number of (target, prediction) pairs averaged.</param>
public sealed record RougeCorpusScores(RougeScore Rouge1, RougeScore Rouge2, RougeScore RougeL, int Pairs);

/// <summary>
/// ROUGE-N and ROUGE-L exactly as Google's <c>rouge-score</c> package (0.1.2, <c>rouge_scorer.RougeScorer</c>
/// with its default tokenizer) computes them for one (target, prediction) pair: <c>Rouge.RougeN(target,
/// prediction, 1, stem)</c> is <c>RougeScorer(["rouge1"], use_stemmer=stem).score(target, prediction)["rouge1"]</c>.
/// Note the argument order: the reference (target) comes first, as in rouge-score.
/// </summary>
/// <remarks>
/// <para>
/// ROUGE-N: with <c>overlap = Σ_g min(count_target(g), count_prediction(g))</c> over the n-grams g,
/// precision = overlap / max(prediction n-grams, 1), recall = overlap / max(target n-grams, 1).
/// ROUGE-L (sentence level, rouge-score's "rougeL", not "rougeLsum"): with L the length of the longest common
/// subsequence of the two token lists, precision = L / prediction tokens, recall = L / target tokens, and all
/// three are 0 when either side has no tokens. F = 2PR / (P + R), or 0 when P + R = 0.
/// </para>
/// </remarks>
public static class Rouge
{
    /// <summary>
    /// rouge-score's default tokenizer: lowercase; every run of characters other than a–z and 0–9 becomes a
    /// separator (so punctuation, accented letters and all other non-ASCII characters split words: "café" →
    /// "caf"); with <paramref name="stem"/>, tokens longer than 3 characters go through
    /// the Porter stemmer (NLTK's, as rouge-score uses); only non-empty tokens of a–z, 0–9 are kept.
    /// </summary>
    /// <remarks>
    /// Lowercasing is Python's, whose only non-ASCII characters that become ASCII letters are U+212A (Kelvin
    /// sign → "k") and U+0130 (capital I with dot → "i" followed by a combining dot, which separates).
    /// </remarks>
    /// <exception cref="ArgumentNullException"><paramref name="text"/> is null.</exception>
    public static IReadOnlyList<string> Tokenize(string text, bool stem)
    {
        ArgumentNullException.ThrowIfNull(text);
        var tokens = new List<string>();
        var current = new System.Text.StringBuilder();
        void Flush()
        {
            if (current.Length > 0)
            {
                string token = current.ToString();
                current.Clear();
                if (stem && token.Length > 3)
                {
                    token = PorterStemmer.Stem(token);
                }
                if (IsValidToken(token))
                {
                    tokens.Add(token);
                }
            }
        }

        foreach (char c in text)
        {
            char lower = c switch
            {
                >= 'a' and <= 'z' or >= '0' and <= '9' => c,
                >= 'A' and <= 'Z' => (char)(c + ('a' - 'A')),
                '\u212A' => 'k',
                '\u0130' => 'i', // Python: "i" + U+0307, and the combining dot separates
                _ => '\0',
            };
            if (lower != '\0')
            {
                current.Append(lower);
                if (c == '\u0130')
                {
                    Flush();
                }
            }
            else
            {
                Flush();
            }
        }
        Flush();
        return tokens;
    }

    /// <summary>ROUGE-N of <paramref name="prediction"/> against <paramref name="target"/> (rouge-score's "rouge{n}").</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="n"/> is not positive.</exception>
    public static RougeScore RougeN(string target, string prediction, int n, bool stem)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(prediction);
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        return ScoreNGrams(Tokenize(target, stem), Tokenize(prediction, stem), n);
    }

    /// <summary>ROUGE-L of <paramref name="prediction"/> against <paramref name="target"/> (rouge-score's "rougeL").</summary>
    public static RougeScore RougeL(string target, string prediction, bool stem)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(prediction);
        return ScoreLcs(Tokenize(target, stem), Tokenize(prediction, stem));
    }

    /// <summary>ROUGE-N on token lists already tokenized.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="n"/> is not positive.</exception>
    public static RougeScore ScoreNGrams(IReadOnlyList<string> targetTokens, IReadOnlyList<string> predictionTokens, int n)
    {
        ArgumentNullException.ThrowIfNull(targetTokens);
        ArgumentNullException.ThrowIfNull(predictionTokens);
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        Dictionary<string, int> target = NGrams(targetTokens, n);
        Dictionary<string, int> prediction = NGrams(predictionTokens, n);
        long overlap = 0;
        foreach ((string gram, int count) in target)
        {
            overlap += Math.Min(count, prediction.GetValueOrDefault(gram));
        }
        long targetCount = Math.Max(0, targetTokens.Count - n + 1);
        long predictionCount = Math.Max(0, predictionTokens.Count - n + 1);
        double precision = (double)overlap / Math.Max(predictionCount, 1);
        double recall = (double)overlap / Math.Max(targetCount, 1);
        return new RougeScore(precision, recall, FMeasure(precision, recall));
    }

    /// <summary>ROUGE-L on token lists already tokenized.</summary>
    public static RougeScore ScoreLcs(IReadOnlyList<string> targetTokens, IReadOnlyList<string> predictionTokens)
    {
        ArgumentNullException.ThrowIfNull(targetTokens);
        ArgumentNullException.ThrowIfNull(predictionTokens);
        if (targetTokens.Count == 0 || predictionTokens.Count == 0)
        {
            return new RougeScore(0, 0, 0);
        }
        int lcs = LcsLength(targetTokens, predictionTokens);
        double precision = (double)lcs / predictionTokens.Count;
        double recall = (double)lcs / targetTokens.Count;
        return new RougeScore(precision, recall, FMeasure(precision, recall));
    }

    /// <summary>
    /// The length of the longest common subsequence of two token sequences (ordinal comparison), by the usual
    /// dynamic programme: <c>L[i][j] = L[i-1][j-1] + 1</c> when the i-th and j-th tokens are equal, else
    /// <c>max(L[i-1][j], L[i][j-1])</c>; kept to one row, O(|a|·|b|) time and O(|b|) memory.
    /// </summary>
    public static int LcsLength(IReadOnlyList<string> a, IReadOnlyList<string> b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var row = new int[b.Count + 1];
        for (int i = 1; i <= a.Count; i++)
        {
            int diagonal = 0; // L[i-1][j-1]
            for (int j = 1; j <= b.Count; j++)
            {
                int above = row[j]; // L[i-1][j]
                row[j] = string.Equals(a[i - 1], b[j - 1], StringComparison.Ordinal)
                    ? diagonal + 1
                    : Math.Max(above, row[j - 1]);
                diagonal = above;
            }
        }
        return row[b.Count];
    }

    /// <summary>
    /// ROUGE-1, ROUGE-2 and ROUGE-L averaged over pairs: each precision, recall and F is the arithmetic mean of
    /// the per-pair values from <see cref="RougeN"/> and <see cref="RougeL"/> (pair i is
    /// (<paramref name="targets"/>[i], <paramref name="predictions"/>[i])).
    /// </summary>
    /// <exception cref="ArgumentException">
    /// A list or one of its strings is null, the lists differ in length (the message names both counts), or they
    /// are empty.
    /// </exception>
    public static RougeCorpusScores Corpus(IReadOnlyList<string> targets, IReadOnlyList<string> predictions, bool stem)
    {
        if (targets is null || predictions is null)
        {
            throw new ArgumentException(
                $"ROUGE needs a list of targets and a list of predictions (targets: {Describe(targets)}, predictions: {Describe(predictions)}).");
        }
        if (targets.Count != predictions.Count)
        {
            throw new ArgumentException(
                $"ROUGE needs one prediction per target: {targets.Count} targets but {predictions.Count} predictions.");
        }
        if (targets.Count == 0)
        {
            throw new ArgumentException("ROUGE of an empty corpus (0 targets, 0 predictions) is undefined.");
        }

        var sums = new double[9];
        for (int i = 0; i < targets.Count; i++)
        {
            string target = targets[i]
                ?? throw new ArgumentException($"Target {i} is null ({targets.Count} targets, {predictions.Count} predictions).");
            string prediction = predictions[i]
                ?? throw new ArgumentException($"Prediction {i} is null ({targets.Count} targets, {predictions.Count} predictions).");
            IReadOnlyList<string> t = Tokenize(target, stem);
            IReadOnlyList<string> p = Tokenize(prediction, stem);
            Accumulate(sums, 0, ScoreNGrams(t, p, 1));
            Accumulate(sums, 3, ScoreNGrams(t, p, 2));
            Accumulate(sums, 6, ScoreLcs(t, p));
        }
        int count = targets.Count;
        return new RougeCorpusScores(Mean(sums, 0, count), Mean(sums, 3, count), Mean(sums, 6, count), count);
    }

    private static void Accumulate(double[] sums, int at, RougeScore score)
    {
        sums[at] += score.Precision;
        sums[at + 1] += score.Recall;
        sums[at + 2] += score.F;
    }

    private static RougeScore Mean(double[] sums, int at, int count) =>
        new(sums[at] / count, sums[at + 1] / count, sums[at + 2] / count);

    /// <summary>rouge-score's F-measure: 2PR / (P + R) evaluated as (2·P·R) / (P + R), 0 when P + R is not positive.</summary>
    private static double FMeasure(double precision, double recall) =>
        precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;

    private static bool IsValidToken(string token)
    {
        if (token.Length == 0)
        {
            return false;
        }
        foreach (char c in token)
        {
            if (c is not (>= 'a' and <= 'z' or >= '0' and <= '9'))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>
    /// The n-grams of a token list with their counts. The key writes each token as its length, a colon and the
    /// token, which no other sequence of tokens writes the same way (tokens passed in may contain anything).
    /// </summary>
    private static Dictionary<string, int> NGrams(IReadOnlyList<string> tokens, int n)
    {
        var grams = new Dictionary<string, int>(StringComparer.Ordinal);
        var key = new System.Text.StringBuilder();
        for (int i = 0; i + n <= tokens.Count; i++)
        {
            string gram;
            if (n == 1)
            {
                gram = tokens[i] ?? throw new ArgumentException($"Token {i} is null.", nameof(tokens));
            }
            else
            {
                key.Clear();
                for (int k = i; k < i + n; k++)
                {
                    string token = tokens[k] ?? throw new ArgumentException($"Token {k} is null.", nameof(tokens));
                    key.Append(token.Length).Append(':').Append(token);
                }
                gram = key.ToString();
            }
            grams[gram] = grams.GetValueOrDefault(gram) + 1;
        }
        return grams;
    }

    private static string Describe(IReadOnlyList<string>? list) =>
        list is null ? "null" : list.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
