using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.RegularExpressions;

namespace Flora.Metrics;

/// <summary>
/// Corpus BLEU exactly as SacreBLEU 2.6.0 computes it with its defaults (<c>sacrebleu.BLEU().corpus_score</c>,
/// or the <c>sacrebleu</c> command without options) for one reference per hypothesis: tokenizer "13a",
/// case-sensitive, n-grams up to order 4, exponential smoothing ("exp"), brevity penalty, effective order off;
/// and sentence BLEU as <c>sacrebleu.sentence_bleu</c> computes it (the same with effective order on, see
/// <see cref="Sentence"/>).
/// </summary>
/// <remarks>
/// <para>
/// The BLEU computation, the 13a tokenizer and the score line are unchanged from SacreBLEU 2.0.0 through 2.6.0;
/// the signature names 2.6.0, the version whose numbers the test cases were computed with.
/// </para>
/// <para>
/// Each segment is right-stripped of whitespace, tokenized with <see cref="Tokenize13a"/> and split on spaces.
/// For every order n the clipped matches (each hypothesis n-gram counted at most as often as it occurs in the
/// reference) and the hypothesis n-gram totals are summed over the corpus, as are the hypothesis and reference
/// lengths c and r. Then
/// <c>BLEU = BP · exp((1/4) Σₙ log pₙ)</c> with <c>pₙ = 100 · matchesₙ / totalₙ</c> and
/// <c>BP = 1</c> when c ≥ r, <c>exp(1 − r/c)</c> when 0 &lt; c &lt; r, 0 when c = 0.
/// Smoothing "exp" (NIST's): the k-th order with zero matches (counting from 1) gets
/// <c>pₙ = 100 / (2ᵏ · totalₙ)</c>. With no match at any order the score is 0 and all precisions are 0; an order
/// with no hypothesis n-grams at all stops the loop, leaving its precision (and those above it) at 0, which
/// makes the score 0 (SacreBLEU takes log 0 as −9999999999).
/// </para>
/// </remarks>
public static class SacreBleu
{
    /// <summary>The SacreBLEU release whose behaviour this reproduces, as written in <see cref="Signature"/>.</summary>
    public const string Version = "2.6.0";

    /// <summary>The largest n-gram order.</summary>
    public const int MaxOrder = 4;

    /// <summary>SacreBLEU's signature for these settings and one reference per hypothesis (corpus BLEU, effective order off).</summary>
    public const string Signature = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" + Version;

    /// <summary>The signature of sentence BLEU (<see cref="Sentence"/>): the same settings with effective order on.</summary>
    public const string SentenceSignature = "nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp|version:" + Version;

    // The four rules of the 13a tokenizer (mteval-v13a), applied one after the other to the whole line.
    // 1. Space out the ASCII symbols  {|}~ [\]^_` space!"#$%& ()*+ :;<=>?@ /  (not ' , - . nor letters or digits).
    private static readonly Regex Symbols =
        new(@"([\x7B-\x7E\x5B-\x60\x20-\x26\x28-\x2B\x3A-\x40/])", RegexOptions.CultureInvariant);

    // 2. A period or comma after anything but an ASCII digit gets spaces around it.
    private static readonly Regex PunctuationAfterNonDigit = new(@"([^0-9])([.,])", RegexOptions.CultureInvariant);

    // 3. A period or comma before anything but an ASCII digit gets spaces around it.
    private static readonly Regex PunctuationBeforeNonDigit = new(@"([.,])([^0-9])", RegexOptions.CultureInvariant);

    // 4. A dash after an ASCII digit gets spaces around it.
    private static readonly Regex DashAfterDigit = new(@"([0-9])(-)", RegexOptions.CultureInvariant);

    /// <summary>
    /// SacreBLEU's "13a" tokenizer (its <c>Tokenizer13a</c> called on one line): the tokens of
    /// <paramref name="line"/> joined by single spaces.
    /// </summary>
    /// <remarks>
    /// In order: "&lt;skipped&gt;" is removed; "-" followed by a newline is removed (joining a hyphenated line
    /// break); remaining newlines become spaces; &amp;quot; &amp;amp; &amp;lt; &amp;gt; become " &amp; &lt; &gt;
    /// (replaced one after the other, so "&amp;amp;lt;" ends as "&lt;"); the ASCII symbols other than ' , - . are
    /// spaced out; a period or comma is spaced out unless it sits between digits on the side checked
    /// (so "3.14" and "1,000" stay whole but "3." splits); a dash after a digit is spaced out; finally the line
    /// is split on whitespace (Python's definition) and rejoined with single spaces. Non-ASCII characters
    /// (curly quotes, dashes, accented letters) are never separated.
    /// </remarks>
    /// <exception cref="ArgumentNullException"><paramref name="line"/> is null.</exception>
    public static string Tokenize13a(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        line = line.Replace("<skipped>", "", StringComparison.Ordinal)
            .Replace("-\n", "", StringComparison.Ordinal)
            .Replace("\n", " ", StringComparison.Ordinal);
        if (line.Contains('&'))
        {
            line = line.Replace("&quot;", "\"", StringComparison.Ordinal)
                .Replace("&amp;", "&", StringComparison.Ordinal)
                .Replace("&lt;", "<", StringComparison.Ordinal)
                .Replace("&gt;", ">", StringComparison.Ordinal);
        }

        line = " " + line + " ";
        line = Symbols.Replace(line, " $1 ");
        line = PunctuationAfterNonDigit.Replace(line, "$1 $2 ");
        line = PunctuationBeforeNonDigit.Replace(line, " $1 $2");
        line = DashAfterDigit.Replace(line, "$1 $2 ");
        return string.Join(' ', PythonText.SplitWhitespace(line));
    }

    /// <summary>
    /// Corpus BLEU of <paramref name="hypotheses"/> against <paramref name="references"/> (one reference each,
    /// same order), as <c>sacrebleu.BLEU().corpus_score(hypotheses, [references])</c>.
    /// </summary>
    /// <exception cref="ArgumentException">
    /// Either list or one of its strings is null, the lists differ in length (the message names both counts), or
    /// the corpus is empty (SacreBLEU fails on an empty corpus too).
    /// </exception>
    public static BleuScore Corpus(IReadOnlyList<string> hypotheses, IReadOnlyList<string> references)
    {
        if (hypotheses is null || references is null)
        {
            throw new ArgumentException(
                $"BLEU needs a list of hypotheses and a list of references (hypotheses: {Describe(hypotheses)}, references: {Describe(references)}).");
        }
        if (hypotheses.Count != references.Count)
        {
            throw new ArgumentException(
                $"BLEU needs one reference per hypothesis: {hypotheses.Count} hypotheses but {references.Count} references.");
        }
        if (hypotheses.Count == 0)
        {
            throw new ArgumentException("BLEU of an empty corpus (0 hypotheses, 0 references) is undefined.");
        }

        var counts = new long[MaxOrder];
        var totals = new long[MaxOrder];
        long systemLength = 0, referenceLength = 0;
        for (int s = 0; s < hypotheses.Count; s++)
        {
            string hypothesis = hypotheses[s]
                ?? throw new ArgumentException($"Hypothesis {s} is null ({hypotheses.Count} hypotheses, {references.Count} references).");
            string reference = references[s]
                ?? throw new ArgumentException($"Reference {s} is null ({hypotheses.Count} hypotheses, {references.Count} references).");

            string[] hypTokens = Segment(hypothesis);
            string[] refTokens = Segment(reference);
            systemLength += hypTokens.Length;
            referenceLength += refTokens.Length;
            for (int n = 1; n <= MaxOrder; n++)
            {
                Dictionary<string, int> refGrams = NGrams(refTokens, n);
                Dictionary<string, int> hypGrams = NGrams(hypTokens, n);
                foreach ((string gram, int count) in hypGrams)
                {
                    totals[n - 1] += count;
                    if (refGrams.TryGetValue(gram, out int refCount))
                    {
                        counts[n - 1] += Math.Min(count, refCount);
                    }
                }
            }
        }
        return FromStatistics(counts, totals, systemLength, referenceLength);
    }

    /// <summary>
    /// Sentence BLEU of one hypothesis against one reference, as <c>sacrebleu.sentence_bleu(hypothesis, [reference])</c>
    /// computes it: the statistics of <see cref="Corpus"/> for a corpus of one segment, scored with effective order
    /// on, so that the geometric mean runs over the orders the hypothesis has n-grams of (a two-word hypothesis is
    /// scored on its unigram and bigram precisions instead of getting 0 for lacking trigrams).
    /// </summary>
    /// <exception cref="ArgumentNullException">Either string is null.</exception>
    public static BleuScore Sentence(string hypothesis, string reference)
    {
        ArgumentNullException.ThrowIfNull(hypothesis);
        ArgumentNullException.ThrowIfNull(reference);
        var corpus = Corpus([hypothesis], [reference]);
        return FromStatistics(corpus.Counts, corpus.Totals, corpus.SystemLength, corpus.ReferenceLength, effectiveOrder: true);
    }

    /// <summary>
    /// BLEU from already summed statistics (SacreBLEU's <c>compute_bleu</c> with smoothing "exp"): matched and
    /// total n-grams per order (1 to <see cref="MaxOrder"/>), system and reference length. With
    /// <paramref name="effectiveOrder"/> the mean of the log precisions runs over orders 1 to the highest order with
    /// at least one hypothesis n-gram (SacreBLEU's <c>effective_order</c>, on in sentence BLEU); otherwise over all four.
    /// </summary>
    /// <exception cref="ArgumentException">The arrays do not have <see cref="MaxOrder"/> entries, or a number is negative.</exception>
    public static BleuScore FromStatistics(IReadOnlyList<long> counts, IReadOnlyList<long> totals, long systemLength, long referenceLength,
        bool effectiveOrder = false)
    {
        ArgumentNullException.ThrowIfNull(counts);
        ArgumentNullException.ThrowIfNull(totals);
        if (counts.Count != MaxOrder || totals.Count != MaxOrder)
        {
            throw new ArgumentException($"Expected {MaxOrder} counts and {MaxOrder} totals, got {counts.Count} and {totals.Count}.");
        }
        if (systemLength < 0 || referenceLength < 0 || counts.Any(c => c < 0) || totals.Any(t => t < 0))
        {
            throw new ArgumentException("BLEU statistics cannot be negative.");
        }

        double brevityPenalty = 1.0;
        if (systemLength < referenceLength)
        {
            brevityPenalty = systemLength > 0 ? Math.Exp(1 - (double)referenceLength / systemLength) : 0.0;
        }
        double ratio = referenceLength != 0 ? (double)systemLength / referenceLength : 0.0;

        var precisions = new double[MaxOrder];
        long[] countsCopy = counts.ToArray();
        long[] totalsCopy = totals.ToArray();
        if (countsCopy.All(c => c == 0))
        {
            return new BleuScore(0.0, precisions, brevityPenalty, ratio, systemLength, referenceLength, countsCopy, totalsCopy, effectiveOrder);
        }

        double smoothing = 1.0;
        int order = MaxOrder;
        for (int n = 0; n < MaxOrder; n++)
        {
            if (totalsCopy[n] == 0)
            {
                break;
            }
            if (effectiveOrder)
            {
                order = n + 1;
            }
            if (countsCopy[n] == 0)
            {
                smoothing *= 2;
                precisions[n] = 100.0 / (smoothing * totalsCopy[n]);
            }
            else
            {
                precisions[n] = 100.0 * countsCopy[n] / totalsCopy[n];
            }
        }

        // Summed left to right as Python's sum() does up to 3.11 (3.12 compensates; the two differ by an ulp at most).
        double logSum = 0.0;
        for (int n = 0; n < order; n++)
        {
            logSum += precisions[n] == 0.0 ? -9999999999.0 : Math.Log(precisions[n]);
        }
        double score = brevityPenalty * Math.Exp(logSum / order);
        return new BleuScore(score, precisions, brevityPenalty, ratio, systemLength, referenceLength, countsCopy, totalsCopy, effectiveOrder);
    }

    /// <summary>The tokens of one segment as SacreBLEU's BLEU sees them: right-stripped, then 13a-tokenized.</summary>
    private static string[] Segment(string text)
    {
        string tokenized = Tokenize13a(PythonText.RightStrip(text));
        return tokenized.Length == 0 ? [] : tokenized.Split(' ');
    }

    /// <summary>The n-grams of one order with their counts, keyed by the tokens joined with spaces (tokens contain none).</summary>
    private static Dictionary<string, int> NGrams(string[] tokens, int n)
    {
        var grams = new Dictionary<string, int>(Math.Max(0, tokens.Length - n + 1), StringComparer.Ordinal);
        for (int i = 0; i + n <= tokens.Length; i++)
        {
            string key = n == 1 ? tokens[i] : string.Join(' ', tokens, i, n);
            grams[key] = grams.GetValueOrDefault(key) + 1;
        }
        return grams;
    }

    private static string Describe(IReadOnlyList<string>? list) => list is null ? "null" : list.Count.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// <paramref name="value"/> with <paramref name="decimals"/> digits after the point, as Python's
    /// <c>f"{value:.{decimals}f}"</c> writes it: rounded from the exact binary value, ties to even
    /// (6.25 → "6.2", 0.125 → "0.12"), where .NET's "F" format would round ties away from zero.
    /// </summary>
    internal static string FormatFixed(double value, int decimals)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(decimals);
        if (double.IsNaN(value))
        {
            return "nan";
        }
        if (double.IsInfinity(value))
        {
            return value > 0 ? "inf" : "-inf";
        }

        bool negative = double.IsNegative(value);
        long bits = BitConverter.DoubleToInt64Bits(Math.Abs(value));
        int exponentBits = (int)((bits >> 52) & 0x7FF);
        long fraction = bits & 0xFFFFFFFFFFFFFL;
        // |value| = mantissa · 2^exponent exactly.
        BigInteger mantissa = exponentBits == 0 ? fraction : fraction | (1L << 52);
        int exponent = (exponentBits == 0 ? 1 : exponentBits) - 1075;

        BigInteger scaled = mantissa * BigInteger.Pow(10, decimals);
        BigInteger digits;
        if (exponent >= 0)
        {
            digits = scaled << exponent;
        }
        else
        {
            BigInteger denominator = BigInteger.One << -exponent;
            digits = BigInteger.DivRem(scaled, denominator, out BigInteger remainder);
            int half = (remainder * 2).CompareTo(denominator);
            if (half > 0 || (half == 0 && !digits.IsEven))
            {
                digits += 1;
            }
        }

        string text = digits.ToString(CultureInfo.InvariantCulture).PadLeft(decimals + 1, '0');
        var sb = new StringBuilder(text.Length + 2);
        if (negative)
        {
            sb.Append('-');
        }
        sb.Append(text, 0, text.Length - decimals);
        if (decimals > 0)
        {
            sb.Append('.').Append(text, text.Length - decimals, decimals);
        }
        return sb.ToString();
    }
}

/// <summary>
/// A corpus BLEU score with SacreBLEU's sufficient statistics (see <see cref="SacreBleu"/>).
/// </summary>
/// <param name="Score">BLEU, 0 to 100.</param>
/// <param name="Precisions">The (smoothed) n-gram precisions in percent, orders 1 to 4.</param>
/// <param name="BrevityPenalty">1 when the system output is at least as long as the references, else exp(1 − r/c), 0 when c = 0.</param>
/// <param name="Ratio">System length / reference length (0 when the reference length is 0).</param>
/// <param name="SystemLength">Tokens in all hypotheses (c).</param>
/// <param name="ReferenceLength">Tokens in all references (r).</param>
/// <param name="Counts">Clipped matching n-grams per order.</param>
/// <param name="Totals">Hypothesis n-grams per order.</param>
/// <param name="EffectiveOrder">Whether the score averages only the orders the hypotheses have n-grams of (sentence BLEU).</param>
public sealed record BleuScore(
    double Score,
    IReadOnlyList<double> Precisions,
    double BrevityPenalty,
    double Ratio,
    long SystemLength,
    long ReferenceLength,
    IReadOnlyList<long> Counts,
    IReadOnlyList<long> Totals,
    bool EffectiveOrder = false)
{
    /// <summary>SacreBLEU's reproducibility signature for the settings used.</summary>
    public string Signature => EffectiveOrder ? SacreBleu.SentenceSignature : SacreBleu.Signature;

    /// <summary>
    /// SacreBLEU's score line, e.g. "BLEU = 27.38 60.0/33.3/20.0/12.5 (BP = 1.000 ratio = 1.000 hyp_len = 5 ref_len = 5)",
    /// with Python's rounding (ties to even).
    /// </summary>
    public override string ToString()
    {
        string precisions = string.Join('/', Precisions.Select(p => SacreBleu.FormatFixed(p, 1)));
        return string.Create(CultureInfo.InvariantCulture,
            $"BLEU = {SacreBleu.FormatFixed(Score, 2)} {precisions} (BP = {SacreBleu.FormatFixed(BrevityPenalty, 3)} "
            + $"ratio = {SacreBleu.FormatFixed(Ratio, 3)} hyp_len = {SystemLength} ref_len = {ReferenceLength})");
    }

    /// <summary>The score line with the signature, as the <c>sacrebleu</c> command prints it in text mode: "BLEU|nrefs:1|...|version:2.6.0 = 27.38 ...".</summary>
    public string ToStringWithSignature() => "BLEU|" + Signature + " =" + ToString()["BLEU =".Length..];
}

/// <summary>Python's notion of whitespace (<c>str.isspace</c>), used by <c>str.split()</c> and <c>str.rstrip()</c>.</summary>
internal static class PythonText
{
    /// <summary>Whether Python's <c>str.isspace()</c> is true for <paramref name="c"/>.</summary>
    public static bool IsWhiteSpace(char c) => c switch
    {
        >= '\t' and <= '\r' => true,
        >= '\x1C' and <= ' ' => true,
        '\x85' or '\xA0' or '\u1680' => true,
        >= '\u2000' and <= '\u200A' => true,
        '\u2028' or '\u2029' or '\u202F' or '\u205F' or '\u3000' => true,
        _ => false,
    };

    /// <summary>Python's <c>str.split()</c> without arguments: the non-empty runs between whitespace.</summary>
    public static List<string> SplitWhitespace(string text)
    {
        var parts = new List<string>();
        int start = -1;
        for (int i = 0; i < text.Length; i++)
        {
            if (IsWhiteSpace(text[i]))
            {
                if (start >= 0)
                {
                    parts.Add(text[start..i]);
                    start = -1;
                }
            }
            else if (start < 0)
            {
                start = i;
            }
        }
        if (start >= 0)
        {
            parts.Add(text[start..]);
        }
        return parts;
    }

    /// <summary>Python's <c>str.rstrip()</c> without arguments.</summary>
    public static string RightStrip(string text)
    {
        int end = text.Length;
        while (end > 0 && IsWhiteSpace(text[end - 1]))
        {
            end--;
        }
        return end == text.Length ? text : text[..end];
    }
}
