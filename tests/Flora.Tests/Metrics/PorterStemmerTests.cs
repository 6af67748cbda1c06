using System.IO.Compression;
using Flora.Metrics;

namespace Flora.Tests.Metrics;

/// <summary>
/// The Porter stemmer against NLTK's <c>PorterStemmer()</c> (mode NLTK_EXTENSIONS), the stemmer rouge-score uses.
/// </summary>
/// <remarks>
/// <c>Metrics/porter_nltk.txt.gz</c> holds "word stem" pairs written by NLTK 3.8 (Debian 12's python3-nltk); its
/// first line says how they were chosen: every distinct word of the embedded corpus, hand-picked tricky words,
/// stem × suffix combinations aimed at each rule, and random strings.
/// </remarks>
public sealed class PorterStemmerTests
{
    /// <summary>Every word of the NLTK fixture stems exactly as NLTK stemmed it.</summary>
    [Fact]
    public void AgreesWithNltkOnEveryFixtureWord()
    {
        using var file = File.OpenRead(Path.Combine(MetricCases.Directory, "porter_nltk.txt.gz"));
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var reader = new StreamReader(gzip);
        string header = reader.ReadLine()!;
        Assert.StartsWith("# word stem pairs from NLTK 3.8", header);

        int words = 0;
        var wrong = new List<string>();
        for (string? line = reader.ReadLine(); line is not null; line = reader.ReadLine())
        {
            string[] pair = line.Split(' ');
            Assert.Equal(2, pair.Length);
            string stem = PorterStemmer.Stem(pair[0]);
            if (stem != pair[1])
            {
                wrong.Add($"{pair[0]}: NLTK {pair[1]}, ours {stem}");
            }
            words++;
        }
        Assert.True(words > 16000, $"only {words} words in the fixture");
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {words} differ:\n" + string.Join("\n", wrong.Take(30)));
    }

    /// <summary>
    /// The paper's examples where NLTK agrees with it, one per rule: step 1a (caresses, ponies, cats), 1b (feed,
    /// agreed, plastered, bled, motoring, sing, conflated, troubled, sized, hopping, falling, hissing, fizzed,
    /// failing, filing), 1c (happy), 2 (relational, conditional, digitizer), 3 (triplicate, hopefulness,
    /// electrical, goodness), 4 (allowance, adjustment, adoption, homologous, effective), 5 (probate, rate,
    /// cease, controll, roll).
    /// </summary>
    [Theory]
    [InlineData("caresses", "caress")]
    [InlineData("ponies", "poni")]
    [InlineData("cats", "cat")]
    [InlineData("feed", "feed")]
    [InlineData("agreed", "agre")]
    [InlineData("plastered", "plaster")]
    [InlineData("bled", "bled")]
    [InlineData("motoring", "motor")]
    [InlineData("sing", "sing")]
    [InlineData("conflated", "conflat")]
    [InlineData("troubled", "troubl")]
    [InlineData("sized", "size")]
    [InlineData("hopping", "hop")]
    [InlineData("falling", "fall")]
    [InlineData("hissing", "hiss")]
    [InlineData("fizzed", "fizz")]
    [InlineData("failing", "fail")]
    [InlineData("filing", "file")]
    [InlineData("happy", "happi")]
    [InlineData("relational", "relat")]
    [InlineData("conditional", "condit")]
    [InlineData("digitizer", "digit")]
    [InlineData("triplicate", "triplic")]
    [InlineData("hopefulness", "hope")]
    [InlineData("electrical", "electr")]
    [InlineData("goodness", "good")]
    [InlineData("allowance", "allow")]
    [InlineData("adjustment", "adjust")]
    [InlineData("adoption", "adopt")]
    [InlineData("homologous", "homolog")]
    [InlineData("effective", "effect")]
    [InlineData("probate", "probat")]
    [InlineData("rate", "rate")]
    [InlineData("cease", "ceas")]
    [InlineData("controll", "control")]
    [InlineData("roll", "roll")]
    public void PaperExamples(string word, string stem) => Assert.Equal(stem, PorterStemmer.Stem(word));

    /// <summary>
    /// NLTK's own deviations: the irregular-forms table (skies, dying, lying, news, proceed), "-ies"/"-ied" in
    /// four-letter words → "-ie" (ties, dies, died) and "-ied" → "-i" otherwise (spied), y → i only after a
    /// consonant that is not the first letter (enjoy, by, sky stay), words of one or two letters untouched
    /// (ay, is; "was" has three and loses its s), "alli" → "al" then step 2 again (radically), "fulli" → "ful"
    /// (hopefully → hopefulli → hopeful → hope; in "fully" the stem before "fulli" is empty, m = 0, so it stays
    /// "fulli"), "logi" → "log" with the l counted in the measure (geology, theology), lowercasing before
    /// stemming but the irregular table looked up on the word as given (SKIES → ski, not sky).
    /// </summary>
    [Theory]
    [InlineData("skies", "sky")]
    [InlineData("sky", "sky")]
    [InlineData("dying", "die")]
    [InlineData("lying", "lie")]
    [InlineData("news", "news")]
    [InlineData("proceed", "proceed")]
    [InlineData("proceeding", "proceed")]
    [InlineData("ties", "tie")]
    [InlineData("dies", "die")]
    [InlineData("died", "die")]
    [InlineData("spied", "spi")]
    [InlineData("flies", "fli")]
    [InlineData("enjoy", "enjoy")]
    [InlineData("by", "by")]
    [InlineData("ay", "ay")]
    [InlineData("is", "is")]
    [InlineData("was", "wa")]
    [InlineData("radically", "radic")]
    [InlineData("fully", "fulli")]
    [InlineData("hopefully", "hope")]
    [InlineData("generalizations", "gener")]
    [InlineData("geology", "geolog")]
    [InlineData("theology", "theolog")]
    [InlineData("SKIES", "ski")]
    [InlineData("Running", "run")]
    [InlineData("1990s", "1990")]
    [InlineData("a1b2", "a1b2")]
    [InlineData("ied", "i")]
    public void NltkExtensions(string word, string stem) => Assert.Equal(stem, PorterStemmer.Stem(word));

    /// <summary>
    /// The measure m of [C](VC){m}[V], the paper's examples: TR, EE, TREE, Y, BY have m=0; TROUBLE, OATS, TREES,
    /// IVY m=1; TROUBLES, PRIVATE, OATEN, ORRERY m=2. In SYZYGY the y's after consonants are vowels.
    /// </summary>
    [Theory]
    [InlineData("tr", 0)]
    [InlineData("ee", 0)]
    [InlineData("tree", 0)]
    [InlineData("y", 0)]
    [InlineData("by", 0)]
    [InlineData("trouble", 1)]
    [InlineData("oats", 1)]
    [InlineData("trees", 1)]
    [InlineData("ivy", 1)]
    [InlineData("troubles", 2)]
    [InlineData("private", 2)]
    [InlineData("oaten", 2)]
    [InlineData("orrery", 2)]
    [InlineData("syzygy", 2)]
    public void Measure_PaperExamples(string stem, int m) => Assert.Equal(m, PorterStemmer.Measure(stem));

    /// <summary>y is a consonant at the start or after a vowel, a vowel after a consonant: t-o-Y, s-Y-z-Y-g-Y, y-y-y.</summary>
    [Fact]
    public void IsConsonant_TreatsYByPosition()
    {
        Assert.True(PorterStemmer.IsConsonant("toy", 2));
        Assert.False(PorterStemmer.IsConsonant("syzygy", 1));
        Assert.True(PorterStemmer.IsConsonant("syzygy", 2));
        Assert.False(PorterStemmer.IsConsonant("syzygy", 5));
        Assert.Equal([true, false, true], Enumerable.Range(0, 3).Select(i => PorterStemmer.IsConsonant("yyy", i)).ToArray());
    }

    [Fact]
    public void Null_Throws() => Assert.Throws<ArgumentNullException>(() => PorterStemmer.Stem(null!));
}
