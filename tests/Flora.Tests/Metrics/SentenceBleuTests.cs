using Flora.Metrics;

namespace Flora.Tests.Metrics;

/// <summary>
/// Sentence BLEU against <c>sacrebleu.sentence_bleu(hypothesis, [reference])</c> 2.6.0 (effective order on): the cases of
/// metric_cases.json's "sentence_bleu" section, whose expected values bench/metrics_reference.py wrote on the GPU machine.
/// </summary>
public sealed class SentenceBleuTests
{
    public static IEnumerable<object[]> Cases => MetricCases.Section("sentence_bleu").Select(c => new object[] { c.GetProperty("name").GetString()! });

    [Theory]
    [MemberData(nameof(Cases))]
    public void Matches_sacrebleu_sentence_bleu(string name)
    {
        var c = MetricCases.Section("sentence_bleu").Single(x => x.GetProperty("name").GetString() == name);
        var e = c.GetProperty("expected");
        var s = SacreBleu.Sentence(c.GetProperty("hypothesis").GetString()!, c.GetProperty("reference").GetString()!);
        Assert.Equal(e.GetProperty("score").GetDouble(), s.Score, 9);
        Assert.Equal(MetricCases.Doubles(e.GetProperty("precisions")), s.Precisions.ToArray(), new Tolerance(1e-9));
        Assert.Equal(MetricCases.Longs(e.GetProperty("counts")), s.Counts.ToArray());
        Assert.Equal(MetricCases.Longs(e.GetProperty("totals")), s.Totals.ToArray());
        Assert.Equal(e.GetProperty("sys_len").GetInt64(), s.SystemLength);
        Assert.Equal(e.GetProperty("ref_len").GetInt64(), s.ReferenceLength);
        Assert.Equal(e.GetProperty("line").GetString(), s.ToString());
        Assert.Equal(e.GetProperty("signature").GetString(), s.Signature);
    }

    [Fact]
    public void Effective_order_scores_short_hypotheses_that_corpus_bleu_gives_zero()
    {
        // Two words, both right, in a three-word reference: no trigram, so corpus BLEU (all four orders) is 0, while
        // sentence BLEU averages the unigram and bigram precisions (100 each) and applies the brevity penalty exp(1 - 3/2).
        var corpus = SacreBleu.Corpus(["the cat"], ["the cat sat"]);
        var sentence = SacreBleu.Sentence("the cat", "the cat sat");
        Assert.Equal(0, corpus.Score);
        Assert.Equal(100 * Math.Exp(1 - 3.0 / 2), sentence.Score, 9);
        Assert.Contains("eff:yes", sentence.Signature);
        Assert.Contains("eff:no", corpus.Signature);
    }

    private sealed class Tolerance(double eps) : IEqualityComparer<double>
    {
        public bool Equals(double a, double b) => Math.Abs(a - b) <= eps;
        public int GetHashCode(double v) => 0;
    }
}
