using Flora.Metrics;

namespace Flora.Tests.Metrics;

/// <summary>
/// ROUGE-1, ROUGE-2 and ROUGE-L against Google's rouge-score (<c>RougeScorer([...], use_stemmer).score(target,
/// prediction)</c>, default tokenizer, sentence-level "rougeL").
/// </summary>
public sealed class RougeTests
{
    private const double Tolerance = 1e-12;

    private static void AssertScore(double precision, double recall, double f, RougeScore actual)
    {
        Assert.Equal(precision, actual.Precision, Tolerance);
        Assert.Equal(recall, actual.Recall, Tolerance);
        Assert.Equal(f, actual.F, Tolerance);
    }

    // ---- the tokenizer ----

    /// <summary>
    /// rouge-score's tokenizer: lowercase, every run outside [a-z0-9] separates, so "quick-brown" is two words,
    /// "3.14" is "3" "14" and "1,000" is "1" "000"; apostrophes split ("Don't" → "don" "t").
    /// </summary>
    [Fact]
    public void Tokenize_LowercasesAndSplitsOnNonAlphanumerics()
    {
        Assert.Equal(["the", "quick", "brown", "fox", "3", "14", "1", "000", "don", "t"],
            Rouge.Tokenize("The quick-brown FOX, 3.14 & 1,000! Don't", stem: false));
        Assert.Empty(Rouge.Tokenize("... !!! \u2014 \u201c\u201d", stem: false));
        Assert.Empty(Rouge.Tokenize("", stem: true));
    }

    /// <summary>
    /// Non-ASCII letters are separators after Python's lower(): "Café" → "caf", "naïve" → "na" "ve"; U+0130
    /// lowercases to "i" + combining dot, so "İstanbul" → "i" "stanbul"; the Kelvin sign lowercases to "k".
    /// </summary>
    [Fact]
    public void Tokenize_NonAsciiLettersSeparate()
    {
        Assert.Equal(["caf", "na", "ve", "r", "sum"], Rouge.Tokenize("Caf\u00e9 na\u00efve r\u00e9sum\u00e9", stem: false));
        Assert.Equal(["i", "stanbul", "5k"], Rouge.Tokenize("\u0130stanbul 5\u212A", stem: false));
    }

    /// <summary>
    /// With the stemmer, only tokens longer than 3 characters are stemmed (NLTK Porter): "cats" → "cat",
    /// "running" → "run", "quickly" → "quickli", "ties" → "tie" (NLTK's four-letter -ies rule); "was", "has" stay
    /// (Porter alone would cut them to "wa", "ha").
    /// </summary>
    [Fact]
    public void Tokenize_StemsOnlyTokensLongerThanThree()
    {
        Assert.Equal(["the", "cat", "were", "run", "quickli", "was", "has", "tie"],
            Rouge.Tokenize("The cats were running quickly, was has ties", stem: true));
        Assert.Equal(["univers", "gener", "happi", "agre"], Rouge.Tokenize("Universities, generously: happiness! agreed", stem: true));
    }

    // ---- hand-worked scores ----

    /// <summary>
    /// rouge-score's README example. Target (9 tokens): the quick brown fox jumps over the lazy dog; prediction
    /// (8): the quick brown dog jumps on the log.
    /// <code>
    /// ROUGE-1: overlap = the 2 + quick + brown + jumps + dog = 6 → P = 6/8, R = 6/9, F = 2PR/(P+R) = 12/17
    /// ROUGE-2: target bigrams 8, prediction bigrams 7, shared "the quick", "quick brown" → P = 2/7, R = 2/8, F = 4/15
    /// ROUGE-L: LCS = the quick brown jumps the = 5 → P = 5/8, R = 5/9, F = 10/17
    /// </code>
    /// Stemming changes nothing here ("jumps" → "jump" and "lazy" → "lazi" on both sides alike).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void HandWorked_ReadmeExample(bool stem)
    {
        const string target = "The quick brown fox jumps over the lazy dog";
        const string prediction = "The quick brown dog jumps on the log.";
        AssertScore(6.0 / 8, 6.0 / 9, 12.0 / 17, Rouge.RougeN(target, prediction, 1, stem));
        AssertScore(2.0 / 7, 2.0 / 8, 4.0 / 15, Rouge.RougeN(target, prediction, 2, stem));
        AssertScore(5.0 / 8, 5.0 / 9, 10.0 / 17, Rouge.RougeL(target, prediction, stem));
    }

    /// <summary>
    /// Stemming makes "cats"/"cat" and "running"/"runs" match: target "the cat were run quickli", prediction
    /// "a cat run quick" share cat, run → ROUGE-1 P = 2/4, R = 2/5, F = 4/9; without the stemmer nothing matches.
    /// </summary>
    [Fact]
    public void Stemming_CreatesMatches()
    {
        const string target = "The cats were running quickly";
        const string prediction = "A cat runs quick";
        AssertScore(0, 0, 0, Rouge.RougeN(target, prediction, 1, stem: false));
        AssertScore(0.5, 0.4, 4.0 / 9, Rouge.RougeN(target, prediction, 1, stem: true));
        AssertScore(0.5, 0.4, 4.0 / 9, Rouge.RougeL(target, prediction, stem: true));
        AssertScore(0, 0, 0, Rouge.RougeN(target, prediction, 2, stem: true));
    }

    /// <summary>
    /// Overlap is the min of the counts: target "the the the cat", prediction "the the" → ROUGE-1 overlap 2,
    /// P = 2/2, R = 2/4, F = 2/3; ROUGE-2 overlap "the the" min(2, 1) = 1, P = 1/1, R = 1/3, F = 1/2.
    /// </summary>
    [Fact]
    public void RougeN_ClipsToTheSmallerCount()
    {
        AssertScore(1.0, 0.5, 2.0 / 3, Rouge.RougeN("the the the cat", "the the", 1, stem: false));
        AssertScore(1.0, 1.0 / 3, 0.5, Rouge.RougeN("the the the cat", "the the", 2, stem: false));
    }

    /// <summary>
    /// Word order: "the cat sat on the mat" vs "the cat on the mat sat" — same unigrams (1.0), bigrams 3 of 5
    /// (the cat, on the, the mat: 0.6), LCS "the cat on the mat" = 5 of 6 (0.8333).
    /// </summary>
    [Fact]
    public void WordOrder_AffectsRouge2AndRougeL()
    {
        const string target = "the cat sat on the mat";
        const string prediction = "the cat on the mat sat";
        AssertScore(1, 1, 1, Rouge.RougeN(target, prediction, 1, stem: false));
        AssertScore(0.6, 0.6, 0.6, Rouge.RougeN(target, prediction, 2, stem: false));
        AssertScore(5.0 / 6, 5.0 / 6, 5.0 / 6, Rouge.RougeL(target, prediction, stem: false));
    }

    /// <summary>
    /// Edge cases as rouge-score has them: no common token → all 0; an empty side → ROUGE-N divides by
    /// max(count, 1) and gives 0, ROUGE-L returns 0 outright; a single-word pair has no bigrams (ROUGE-2 all 0)
    /// but ROUGE-1 and ROUGE-L 1.
    /// </summary>
    [Fact]
    public void EdgeCases_NoOverlapEmptyAndOneWord()
    {
        AssertScore(0, 0, 0, Rouge.RougeN("alpha beta gamma", "one two three", 1, stem: false));
        AssertScore(0, 0, 0, Rouge.RougeL("alpha beta gamma", "one two three", stem: false));
        AssertScore(0, 0, 0, Rouge.RougeN("the cat", "", 1, stem: false));
        AssertScore(0, 0, 0, Rouge.RougeN("", "the cat", 1, stem: false));
        AssertScore(0, 0, 0, Rouge.RougeL("the cat", "!!!", stem: true));
        AssertScore(0, 0, 0, Rouge.RougeL("", "", stem: false));
        AssertScore(1, 1, 1, Rouge.RougeN("hello", "Hello!", 1, stem: false));
        AssertScore(0, 0, 0, Rouge.RougeN("hello", "Hello!", 2, stem: false));
        AssertScore(1, 1, 1, Rouge.RougeL("hello", "Hello!", stem: false));
    }

    // ---- the longest common subsequence ----

    /// <summary>LCS lengths worked out by hand: "a c e" (or "a b d") of a b c d e / a c e b d; "the gunman" of the reordered sentence.</summary>
    [Fact]
    public void Lcs_HandWorked()
    {
        Assert.Equal(3, Rouge.LcsLength(["a", "b", "c", "d", "e"], ["a", "c", "e", "b", "d"]));
        Assert.Equal(2, Rouge.LcsLength(["police", "killed", "the", "gunman"], ["the", "gunman", "killed", "police"]));
        Assert.Equal(0, Rouge.LcsLength([], ["a"]));
        Assert.Equal(0, Rouge.LcsLength(["a"], []));
        Assert.Equal(4, Rouge.LcsLength(["x", "y", "x", "y"], ["x", "y", "x", "y"]));
        Assert.Equal(1, Rouge.LcsLength(["a", "a", "a"], ["a"]));
        Assert.Equal(0, Rouge.LcsLength(["A"], ["a"])); // tokens compare ordinally
    }

    /// <summary>The one-row dynamic programme agrees with an exhaustive search over subsequences on random short sequences.</summary>
    [Fact]
    public void Lcs_MatchesBruteForce()
    {
        var rng = new Random(2024);
        string[] alphabet = ["a", "b", "c"];
        for (int trial = 0; trial < 300; trial++)
        {
            string[] a = Enumerable.Range(0, rng.Next(0, 9)).Select(_ => alphabet[rng.Next(3)]).ToArray();
            string[] b = Enumerable.Range(0, rng.Next(0, 9)).Select(_ => alphabet[rng.Next(3)]).ToArray();
            Assert.Equal(BruteForceLcs(a, b), Rouge.LcsLength(a, b));
            Assert.Equal(Rouge.LcsLength(a, b), Rouge.LcsLength(b, a));
        }
    }

    /// <summary>The longest subsequence of <paramref name="a"/> (tried over all 2^|a| masks) that is also a subsequence of <paramref name="b"/>.</summary>
    private static int BruteForceLcs(string[] a, string[] b)
    {
        int best = 0;
        for (int mask = 0; mask < 1 << a.Length; mask++)
        {
            int j = 0, length = 0;
            bool ok = true;
            for (int i = 0; i < a.Length && ok; i++)
            {
                if ((mask & (1 << i)) == 0)
                {
                    continue;
                }
                while (j < b.Length && b[j] != a[i])
                {
                    j++;
                }
                ok = j < b.Length;
                j++;
                length++;
            }
            if (ok)
            {
                best = Math.Max(best, length);
            }
        }
        return best;
    }

    // ---- the corpus helper ----

    /// <summary>
    /// The corpus scores are the arithmetic means of the per-pair scores. Pair 1 identical (all 1), pair 2 with
    /// no overlap (all 0): every mean is 0.5. Pair 3 adds the README example: ROUGE-1 P = (1 + 0 + 6/8)/3.
    /// </summary>
    [Fact]
    public void Corpus_AveragesPerPairScores()
    {
        RougeCorpusScores two = Rouge.Corpus(["the cat sat", "alpha beta"], ["the cat sat", "one two"], stem: false);
        Assert.Equal(2, two.Pairs);
        AssertScore(0.5, 0.5, 0.5, two.Rouge1);
        AssertScore(0.5, 0.5, 0.5, two.Rouge2);
        AssertScore(0.5, 0.5, 0.5, two.RougeL);

        RougeCorpusScores three = Rouge.Corpus(
            ["the cat sat", "alpha beta", "The quick brown fox jumps over the lazy dog"],
            ["the cat sat", "one two", "The quick brown dog jumps on the log."], stem: false);
        AssertScore((1 + 0 + 6.0 / 8) / 3, (1 + 0 + 6.0 / 9) / 3, (1 + 0 + 12.0 / 17) / 3, three.Rouge1);
        AssertScore((1 + 0 + 5.0 / 8) / 3, (1 + 0 + 5.0 / 9) / 3, (1 + 0 + 10.0 / 17) / 3, three.RougeL);
    }

    [Fact]
    public void Corpus_MismatchedCountsThrowNamingBothCounts()
    {
        var e = Assert.Throws<ArgumentException>(() => Rouge.Corpus(["a", "b"], ["a", "b", "c"], stem: false));
        Assert.Contains("2 targets", e.Message);
        Assert.Contains("3 predictions", e.Message);
        Assert.Throws<ArgumentException>(() => Rouge.Corpus([], [], stem: false));
        Assert.Throws<ArgumentException>(() => Rouge.Corpus(null!, ["a"], stem: false));
        Assert.Throws<ArgumentException>(() => Rouge.Corpus(["a"], [null!], stem: false));
    }

    [Fact]
    public void RougeN_RequiresPositiveN()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Rouge.RougeN("a", "a", 0, stem: false));
    }

    /// <summary>Token lists passed directly may hold spaces; n-grams still compare token by token.</summary>
    [Fact]
    public void ScoreNGrams_KeepsTokensApart()
    {
        AssertScore(0, 0, 0, Rouge.ScoreNGrams(["a b", "c"], ["a", "b c"], 2));
        AssertScore(1, 1, 1, Rouge.ScoreNGrams(["a b", "c"], ["a b", "c"], 2));
    }

    // ---- the shared reference table ----

    /// <summary>Every ROUGE case of metric_cases.json: rouge-score's tokens exactly and its scores to 1e-12.</summary>
    [Fact]
    public void ReferenceCases_Rouge()
    {
        int n = 0;
        foreach (var c in MetricCases.Section("rouge"))
        {
            string target = c.GetProperty("target").GetString()!;
            string prediction = c.GetProperty("prediction").GetString()!;
            bool stem = c.GetProperty("stem").GetBoolean();
            var e = c.GetProperty("expected");
            Assert.Equal(MetricCases.Strings(e.GetProperty("target_tokens")), Rouge.Tokenize(target, stem));
            Assert.Equal(MetricCases.Strings(e.GetProperty("prediction_tokens")), Rouge.Tokenize(prediction, stem));
            foreach ((string key, RougeScore actual) in new[]
            {
                ("rouge1", Rouge.RougeN(target, prediction, 1, stem)),
                ("rouge2", Rouge.RougeN(target, prediction, 2, stem)),
                ("rougeL", Rouge.RougeL(target, prediction, stem)),
            })
            {
                double[] want = MetricCases.Doubles(e.GetProperty(key));
                AssertScore(want[0], want[1], want[2], actual);
            }
            n++;
        }
        Assert.True(n >= 20, $"only {n} ROUGE cases");
    }

    /// <summary>Every corpus case of metric_cases.json: the means of rouge-score's per-pair scores.</summary>
    [Fact]
    public void ReferenceCases_RougeCorpus()
    {
        int n = 0;
        foreach (var c in MetricCases.Section("rouge_corpus"))
        {
            var e = c.GetProperty("expected");
            RougeCorpusScores s = Rouge.Corpus(
                MetricCases.Strings(c.GetProperty("targets")), MetricCases.Strings(c.GetProperty("predictions")), c.GetProperty("stem").GetBoolean());
            Assert.Equal(e.GetProperty("pairs").GetInt32(), s.Pairs);
            foreach ((string key, RougeScore actual) in new[] { ("rouge1", s.Rouge1), ("rouge2", s.Rouge2), ("rougeL", s.RougeL) })
            {
                double[] want = MetricCases.Doubles(e.GetProperty(key));
                AssertScore(want[0], want[1], want[2], actual);
            }
            n++;
        }
        Assert.True(n >= 3, $"only {n} ROUGE corpus cases");
    }
}
