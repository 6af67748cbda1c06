using Flora.Metrics;

namespace Flora.Tests.Metrics;

/// <summary>
/// Corpus BLEU and the 13a tokenizer against SacreBLEU 2.6.0's defaults (<c>sacrebleu.BLEU()</c>: tok 13a,
/// mixed case, exp smoothing, effective order off, one reference per hypothesis).
/// </summary>
public sealed class SacreBleuTests
{
    private const double Tolerance = 1e-9;

    // ---- hand-worked corpora ----

    /// <summary>
    /// Two segments, counts worked out by hand (SacreBLEU sums clipped matches and totals per order over the
    /// corpus before taking any precision):
    /// <code>
    /// hyp 1 "the cat sat on the mat"  vs ref 1 "the cat is on the mat"
    ///   1-grams: the×2 cat sat on mat = 6; matched the×2 cat on mat      = 5
    ///   2-grams: the cat, cat sat, sat on, on the, the mat = 5; matched "the cat", "on the", "the mat" = 3
    ///   3-grams: 4; matched "on the mat" = 1;   4-grams: 3; matched 0
    /// hyp 2 "a dog barked"            vs ref 2 "the dog barked loudly"
    ///   1-grams: 3, matched dog barked = 2;  2-grams: 2, matched "dog barked" = 1;  3-grams: 1, matched 0;  4-grams: 0
    /// counts = [7, 4, 1, 0], totals = [9, 7, 5, 3], c = 9, r = 10
    /// p1..p3 = 700/9 = 77.78, 400/7 = 57.14, 100/5 = 20; p4 has no match: exp smoothing's first zero gets
    /// 100 / (2 · 3) = 16.67.  BP = exp(1 − 10/9) = 0.8948.
    /// BLEU = 0.8948 · exp((ln 77.78 + ln 57.14 + ln 20 + ln 16.67) / 4) = 0.8948 · 34.89 = 31.22
    /// </code>
    /// </summary>
    [Fact]
    public void HandWorked_TwoSegmentCorpus()
    {
        BleuScore s = SacreBleu.Corpus(
            ["the cat sat on the mat", "a dog barked"],
            ["the cat is on the mat", "the dog barked loudly"]);

        Assert.Equal(new long[] { 7, 4, 1, 0 }, s.Counts);
        Assert.Equal(new long[] { 9, 7, 5, 3 }, s.Totals);
        Assert.Equal(9, s.SystemLength);
        Assert.Equal(10, s.ReferenceLength);
        Assert.Equal(Math.Exp(1 - 10.0 / 9), s.BrevityPenalty, Tolerance);
        Assert.Equal(0.9, s.Ratio, Tolerance);
        double[] p = [700.0 / 9, 400.0 / 7, 20.0, 100.0 / 6];
        Assert.Equal(p, s.Precisions.ToArray(), (a, b) => Math.Abs(a - b) < Tolerance);
        double expected = Math.Exp(1 - 10.0 / 9) * Math.Exp(p.Sum(Math.Log) / 4);
        Assert.Equal(expected, s.Score, Tolerance);
        Assert.Equal(31.22, Math.Round(s.Score, 2));
        Assert.Equal("BLEU = 31.22 77.8/57.1/20.0/16.7 (BP = 0.895 ratio = 0.900 hyp_len = 9 ref_len = 10)", s.ToString());
    }

    /// <summary>A hypothesis equal to its reference: every precision 100, BP 1, BLEU 100.</summary>
    [Fact]
    public void IdenticalSentence_Is100()
    {
        BleuScore s = SacreBleu.Corpus(["the cat sat on the mat"], ["the cat sat on the mat"]);
        Assert.Equal(100.0, s.Score, Tolerance);
        Assert.Equal(new long[] { 6, 5, 4, 3 }, s.Counts);
        Assert.Equal("BLEU = 100.00 100.0/100.0/100.0/100.0 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)", s.ToString());
    }

    /// <summary>
    /// Shorter hypothesis, all its n-grams matching: "the cat sat on the" (c = 5) against "the cat sat on the
    /// mat" (r = 6). counts = totals = [5, 4, 3, 2], precisions 100, so BLEU = 100 · BP = 100 · exp(1 − 6/5)
    /// = 100 · exp(−0.2) = 81.87.
    /// </summary>
    [Fact]
    public void ShorterHypothesis_IsPenalisedByBrevity()
    {
        BleuScore s = SacreBleu.Corpus(["the cat sat on the"], ["the cat sat on the mat"]);
        Assert.Equal(Math.Exp(-0.2), s.BrevityPenalty, Tolerance);
        Assert.Equal(100 * Math.Exp(-0.2), s.Score, Tolerance);
        Assert.Equal("BLEU = 81.87 100.0/100.0/100.0/100.0 (BP = 0.819 ratio = 0.833 hyp_len = 5 ref_len = 6)", s.ToString());
    }

    /// <summary>
    /// Longer hypothesis: BP stays 1 (SacreBLEU penalises only c &lt; r) and the ratio exceeds 1. "the cat sat
    /// on the mat today in the sun" (10 tokens) against "the cat sat on the mat" (6): matches 6, 5, 4, 3 of
    /// totals 10, 9, 8, 7 → precisions 60, 55.6, 50, 42.9.
    /// </summary>
    [Fact]
    public void LongerHypothesis_HasNoBrevityPenalty()
    {
        BleuScore s = SacreBleu.Corpus(["the cat sat on the mat today in the sun"], ["the cat sat on the mat"]);
        Assert.Equal(1.0, s.BrevityPenalty);
        Assert.Equal(10.0 / 6, s.Ratio, Tolerance);
        double expected = Math.Exp((Math.Log(60) + Math.Log(500.0 / 9) + Math.Log(50) + Math.Log(300.0 / 7)) / 4);
        Assert.Equal(expected, s.Score, Tolerance);
    }

    /// <summary>
    /// Exp smoothing over two zero orders: "a b x c d y e f" against "a b c d e f". Unigrams 6/8; bigrams: ab,
    /// cd, ef of ab bx xc cd dy ye ef = 3/7; trigrams 0/6 and 4-grams 0/5. The first zero order gets
    /// 100/(2·6) = 8.33, the second 100/(4·5) = 5.0; BP = 1 (8 ≥ 6).
    /// </summary>
    [Fact]
    public void ZeroMatchesAtHigherOrders_AreSmoothedExponentially()
    {
        BleuScore s = SacreBleu.Corpus(["a b x c d y e f"], ["a b c d e f"]);
        Assert.Equal(new long[] { 6, 3, 0, 0 }, s.Counts);
        Assert.Equal(new long[] { 8, 7, 6, 5 }, s.Totals);
        Assert.Equal(100.0 / 12, s.Precisions[2], Tolerance);
        Assert.Equal(5.0, s.Precisions[3], Tolerance);
        double expected = Math.Exp((Math.Log(75) + Math.Log(300.0 / 7) + Math.Log(100.0 / 12) + Math.Log(5)) / 4);
        Assert.Equal(expected, s.Score, Tolerance);
        Assert.Equal("BLEU = 19.13 75.0/42.9/8.3/5.0 (BP = 1.000 ratio = 1.333 hyp_len = 8 ref_len = 6)", s.ToString());
    }

    /// <summary>
    /// Clipping: "the" appears 7 times in the hypothesis but twice in "the cat is on the mat", so only 2 of 7
    /// unigrams count; no bigram matches, so the smoothed precisions are 100/(2·6), 100/(4·5), 100/(8·4).
    /// </summary>
    [Fact]
    public void RepeatedWords_AreClippedToTheReferenceCount()
    {
        BleuScore s = SacreBleu.Corpus(["the the the the the the the"], ["the cat is on the mat"]);
        Assert.Equal(new long[] { 2, 0, 0, 0 }, s.Counts);
        Assert.Equal(new[] { 200.0 / 7, 100.0 / 12, 5.0, 100.0 / 32 }, s.Precisions.ToArray(), (a, b) => Math.Abs(a - b) < Tolerance);
        Assert.Equal("BLEU = 7.81 28.6/8.3/5.0/3.1 (BP = 1.000 ratio = 1.167 hyp_len = 7 ref_len = 6)", s.ToString());
    }

    // ---- edge cases as SacreBLEU handles them ----

    /// <summary>
    /// No n-gram matches at any order: SacreBLEU stops early with BLEU 0 and all precisions 0 (not smoothed),
    /// though BP and the lengths are still reported.
    /// </summary>
    [Fact]
    public void NoOverlap_IsZeroWithZeroPrecisions()
    {
        BleuScore s = SacreBleu.Corpus(["alpha beta gamma delta"], ["one two three four"]);
        Assert.Equal(0.0, s.Score);
        Assert.All(s.Precisions, p => Assert.Equal(0.0, p));
        Assert.Equal(new long[] { 4, 3, 2, 1 }, s.Totals);
        Assert.Equal("BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 1.000 ratio = 1.000 hyp_len = 4 ref_len = 4)", s.ToString());
    }

    /// <summary>
    /// An empty hypothesis contributes length 0 and no n-grams but its reference still counts towards r:
    /// ["", "the cat sat on the mat"] against ["a b c", same] has c = 6, r = 9, precisions 100 and
    /// BLEU = 100 · exp(1 − 9/6) = 60.65.
    /// </summary>
    [Fact]
    public void EmptyHypothesis_CountsOnlyItsReferenceLength()
    {
        BleuScore s = SacreBleu.Corpus(["", "the cat sat on the mat"], ["a b c", "the cat sat on the mat"]);
        Assert.Equal(6, s.SystemLength);
        Assert.Equal(9, s.ReferenceLength);
        Assert.Equal(100 * Math.Exp(1 - 9.0 / 6), s.Score, Tolerance);
    }

    /// <summary>All hypotheses empty (system length 0): SacreBLEU sets BP to 0 (no division) and BLEU to 0.</summary>
    [Fact]
    public void AllHypothesesEmpty_HasBrevityPenaltyZero()
    {
        BleuScore s = SacreBleu.Corpus(["", " "], ["a b c", "d e"]);
        Assert.Equal(0.0, s.BrevityPenalty);
        Assert.Equal(0.0, s.Score);
        Assert.Equal(0, s.SystemLength);
        Assert.Equal("BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 0.000 ratio = 0.000 hyp_len = 0 ref_len = 5)", s.ToString());
    }

    /// <summary>
    /// One-word segments have no bigrams: SacreBLEU's precision loop stops at the first order with total 0,
    /// leaving it (and the higher orders) at 0, whose log it floors to −9999999999: BLEU 0 even though half the
    /// unigrams match (precision 50).
    /// </summary>
    [Fact]
    public void OneWordSentences_ScoreZeroBecauseNoBigramsExist()
    {
        BleuScore s = SacreBleu.Corpus(["hello", "world"], ["hello", "there"]);
        Assert.Equal(new long[] { 1, 0, 0, 0 }, s.Counts);
        Assert.Equal(new long[] { 2, 0, 0, 0 }, s.Totals);
        Assert.Equal(0.0, s.Score);
        Assert.Equal("BLEU = 0.00 50.0/0.0/0.0/0.0 (BP = 1.000 ratio = 1.000 hyp_len = 2 ref_len = 2)", s.ToString());
    }

    /// <summary>An empty reference: r = 0, so the ratio is reported as 0 (SacreBLEU avoids the division) and BP is 1.</summary>
    [Fact]
    public void EmptyReference_HasRatioZero()
    {
        BleuScore s = SacreBleu.Corpus(["some words"], [""]);
        Assert.Equal(0.0, s.Ratio);
        Assert.Equal(1.0, s.BrevityPenalty);
        Assert.Equal(0.0, s.Score);
    }

    /// <summary>BLEU is case-sensitive by default: "The Cat Sat" shares no n-gram with "the cat sat".</summary>
    [Fact]
    public void CaseSensitive()
    {
        Assert.Equal(0.0, SacreBleu.Corpus(["The Cat Sat"], ["the cat sat"]).Score);
        Assert.Equal(100.0, SacreBleu.Corpus(["The Cat Sat on it"], ["The Cat Sat on it"]).Score, Tolerance);
    }

    /// <summary>
    /// HTML entities are unescaped before tokenizing, so "&amp;quot;Hi&amp;quot; &amp;amp; bye &amp;lt;3" and
    /// "\"Hi\" &amp; bye &lt;3" are the same 7 tokens: " Hi " &amp; bye &lt; 3.
    /// </summary>
    [Fact]
    public void HtmlEntities_MatchTheirCharacters()
    {
        BleuScore s = SacreBleu.Corpus(["&quot;Hi&quot; &amp; bye &lt;3"], ["\"Hi\" & bye <3"]);
        Assert.Equal(100.0, s.Score, Tolerance);
        Assert.Equal(7, s.SystemLength);
    }

    /// <summary>
    /// Segments are right-stripped before tokenizing, so a final "-\n" is not a joined line break: "word-\n"
    /// becomes the single token "word-" (a dash after a letter is not split) and does not match "word -";
    /// <see cref="SacreBleu.Tokenize13a"/> alone (no strip) joins it to "word".
    /// </summary>
    [Fact]
    public void TrailingHyphenNewline_IsStrippedBeforeTokenizing()
    {
        Assert.Equal("word", SacreBleu.Tokenize13a("word-\n"));
        BleuScore s = SacreBleu.Corpus(["word-\n"], ["word-"]);
        Assert.Equal(1, s.SystemLength);
        Assert.Equal(1, s.Counts[0]);
        Assert.Equal(0, SacreBleu.Corpus(["word-\n"], ["word -"]).Counts[0]);
    }

    /// <summary>
    /// Python formats with ties to even: 16 hypothesis unigrams, 1 match gives p1 = 6.25 exactly, printed "6.2"
    /// (.NET's "F1" would print 6.3). The other orders are smoothed: 100/(2·15), 100/(4·14), 100/(8·13).
    /// </summary>
    [Fact]
    public void ScoreLine_RoundsTiesToEvenLikePython()
    {
        BleuScore s = SacreBleu.Corpus(["a b c d e f g h i j k l m n o p"], ["a"]);
        Assert.Equal(6.25, s.Precisions[0]);
        Assert.Equal("BLEU = 2.45 6.2/3.3/1.8/1.0 (BP = 1.000 ratio = 16.000 hyp_len = 16 ref_len = 1)", s.ToString());
    }

    [Theory]
    [InlineData(6.25, 1, "6.2")]
    [InlineData(6.35, 1, "6.3")] // 6.35 is stored as 6.3499999...
    [InlineData(0.125, 2, "0.12")]
    [InlineData(0.375, 2, "0.38")]
    [InlineData(2.675, 2, "2.67")] // stored as 2.67499999...
    [InlineData(99.995, 2, "100.00")] // stored as 99.99500000000000454..., above the tie
    [InlineData(100.0, 2, "100.00")]
    [InlineData(0.0, 3, "0.000")]
    [InlineData(0.0005, 3, "0.001")] // stored slightly above 0.0005
    [InlineData(-2.5, 0, "-2")]
    [InlineData(1e-300, 2, "0.00")]
    public void FormatFixed_MatchesPythonFormatting(double value, int decimals, string expected)
    {
        // Expected strings are Python's f"{value:.{decimals}f}".
        Assert.Equal(expected, SacreBleu.FormatFixed(value, decimals));
    }

    [Fact]
    public void Signature_IsSacreBleus()
    {
        BleuScore s = SacreBleu.Corpus(["a b c d"], ["a b c d"]);
        Assert.Equal("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0", s.Signature);
        Assert.Equal(
            "BLEU|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0 = 100.00 100.0/100.0/100.0/100.0 (BP = 1.000 ratio = 1.000 hyp_len = 4 ref_len = 4)",
            s.ToStringWithSignature());
    }

    // ---- argument checks ----

    [Fact]
    public void MismatchedCounts_ThrowNamingBothCounts()
    {
        var e = Assert.Throws<ArgumentException>(() => SacreBleu.Corpus(["a", "b", "c"], ["a", "b"]));
        Assert.Contains("3 hypotheses", e.Message);
        Assert.Contains("2 references", e.Message);
    }

    [Fact]
    public void NullsAndEmptyCorpus_Throw()
    {
        Assert.Throws<ArgumentException>(() => SacreBleu.Corpus(null!, ["a"]));
        Assert.Throws<ArgumentException>(() => SacreBleu.Corpus(["a"], null!));
        Assert.Throws<ArgumentException>(() => SacreBleu.Corpus(["a", null!], ["a", "b"]));
        Assert.Throws<ArgumentException>(() => SacreBleu.Corpus(["a"], [null!]));
        // SacreBLEU itself fails on an empty corpus (it indexes the first hypothesis).
        Assert.Throws<ArgumentException>(() => SacreBleu.Corpus([], []));
    }

    // ---- the 13a tokenizer ----

    /// <summary>
    /// mteval-v13a rules, each expected string derived from them (and confirmed by SacreBLEU 2.4.0 in
    /// metric_cases.json): ASCII symbols other than ' , - . are split off; a period/comma splits unless a digit
    /// is on the side being checked; a dash splits only after a digit; non-ASCII is never split.
    /// </summary>
    [Theory]
    [InlineData("Hello, world!", "Hello , world !")]
    [InlineData("It's 3.14 and 1,000 people.", "It's 3.14 and 1,000 people .")]
    [InlineData("1,000.50 3. .5", "1,000.50 3 . . 5")]
    [InlineData("e.g. U.S.A.", "e . g . U . S . A .")]
    [InlineData("a-b 1-2 x-1 -5", "a-b 1 - 2 x-1 -5")]
    [InlineData("don't o'clock", "don't o'clock")]
    [InlineData("\u201cQuoted\u201d \u2014 dash\u2014here", "\u201cQuoted\u201d \u2014 dash\u2014here")]
    [InlineData("Caf\u00e9 na\u00efve, r\u00e9sum\u00e9.", "Caf\u00e9 na\u00efve , r\u00e9sum\u00e9 .")]
    [InlineData("&quot;a&quot; &amp; &lt;b&gt;", "\" a \" & < b >")]
    [InlineData("&amp;lt; &amp;quot;", "< & quot ;")] // replaced in order: &quot; first, then &amp;, then &lt;
    [InlineData("x <skipped> y", "x y")]
    [InlineData("well-\nknown\nline", "wellknown line")]
    [InlineData("$5 (50%) a/b a:b [x] {y} a_b a|b a~b a^b a`b", "$ 5 ( 50 % ) a / b a : b [ x ] { y } a _ b a | b a ~ b a ^ b a ` b")]
    [InlineData("  tabs\tand \u00a0nbsp\u2009thin\u3000ideographic\u001Cfs ", "tabs and nbsp thin ideographic fs")]
    [InlineData("", "")]
    [InlineData("   ", "")]
    public void Tokenize13a_SplitsLikeMteval(string input, string expected)
    {
        Assert.Equal(expected, SacreBleu.Tokenize13a(input));
    }

    // ---- the shared reference table ----

    /// <summary>Every tokenizer case of metric_cases.json gives SacreBLEU's output.</summary>
    [Fact]
    public void ReferenceCases_Tokenize13a()
    {
        int n = 0;
        foreach (var c in MetricCases.Section("tokenize_13a"))
        {
            string input = c.GetProperty("input").GetString()!;
            Assert.True(
                c.GetProperty("expected").GetProperty("tokens").GetString() == SacreBleu.Tokenize13a(input),
                $"{c.GetProperty("name").GetString()}: {SacreBleu.Tokenize13a(input)}");
            n++;
        }
        Assert.True(n >= 20, $"only {n} tokenizer cases");
    }

    /// <summary>
    /// Every BLEU case of metric_cases.json: SacreBLEU's score line, counts, totals, lengths and signature exactly,
    /// score, precisions, BP and ratio to 1e-9.
    /// </summary>
    [Fact]
    public void ReferenceCases_Bleu()
    {
        int n = 0;
        foreach (var c in MetricCases.Section("bleu"))
        {
            string name = c.GetProperty("name").GetString()!;
            var e = c.GetProperty("expected");
            BleuScore s = SacreBleu.Corpus(MetricCases.Strings(c.GetProperty("hypotheses")), MetricCases.Strings(c.GetProperty("references")));
            Assert.True(e.GetProperty("line").GetString() == s.ToString(), $"{name}: {s}");
            Assert.Equal(MetricCases.Longs(e.GetProperty("counts")), s.Counts);
            Assert.Equal(MetricCases.Longs(e.GetProperty("totals")), s.Totals);
            Assert.Equal(e.GetProperty("sys_len").GetInt64(), s.SystemLength);
            Assert.Equal(e.GetProperty("ref_len").GetInt64(), s.ReferenceLength);
            Assert.Equal(e.GetProperty("signature").GetString(), s.Signature);
            Assert.Equal(e.GetProperty("score").GetDouble(), s.Score, Tolerance);
            Assert.Equal(e.GetProperty("bp").GetDouble(), s.BrevityPenalty, Tolerance);
            Assert.Equal(e.GetProperty("ratio").GetDouble(), s.Ratio, Tolerance);
            Assert.Equal(MetricCases.Doubles(e.GetProperty("precisions")), s.Precisions.ToArray(), (a, b) => Math.Abs(a - b) < Tolerance);
            n++;
        }
        Assert.True(n >= 20, $"only {n} BLEU cases");
    }
}
