using System.Collections.Concurrent;
using System.IO.Compression;
using System.Reflection;
using System.Text;
using System.Text.Json;
using Flora.Data.Tokenizers;
using Xunit.Abstractions;

namespace Flora.Tests.Data;

/// <summary>
/// GPT-2's byte-level BPE: exact ids against reference encodings, special tokens, the trainer,
/// GPT-2's file format, bad files and fuzzing.
/// </summary>
/// <remarks>
/// <c>Data/gpt2-reference.json</c> was produced by the npm package gpt-3-encoder 1.1.4 (its
/// <c>encode</c> and <c>decode</c>) from a small node script; its <c>source</c> field says so.
/// </remarks>
public sealed class TokenizerTests : IDisposable
{
    private const int FuzzSeed = 20240607;

    private static readonly string ReferencePath = Path.Combine(AppContext.BaseDirectory, "Data", "gpt2-reference.json");

    private static readonly Lazy<(List<(string Text, int[] Ids)> Encode, List<(int[] Ids, string Text)> Decode)> Reference =
        new(ReadReference);

    /// <summary>A few English paragraphs (public domain: Lincoln, Dickens, Melville) for the trainer.</summary>
    private const string English =
        "Four score and seven years ago our fathers brought forth on this continent, a new nation, conceived in "
        + "Liberty, and dedicated to the proposition that all men are created equal. Now we are engaged in a great "
        + "civil war, testing whether that nation, or any nation so conceived and so dedicated, can long endure. We "
        + "are met on a great battle-field of that war. We have come to dedicate a portion of that field, as a final "
        + "resting place for those who here gave their lives that that nation might live.\n\n"
        + "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
        + "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, it "
        + "was the season of Darkness, it was the spring of hope, it was the winter of despair.\n\n"
        + "Call me Ishmael. Some years ago - never mind how long precisely - having little or no money in my purse, "
        + "and nothing particular to interest me on shore, I thought I would sail about a little and see the watery "
        + "part of the world. It's a way I have of driving off the spleen, and regulating the circulation.\n";

    private readonly ITestOutputHelper _output;
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-bpe-").FullName;

    public TokenizerTests(ITestOutputHelper output) => _output = output;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    // ---- GPT-2 against the reference encodings ----

    [Fact]
    public void Reference_HasHundredsOfStringsIncludingHelloWorld()
    {
        var cases = Reference.Value.Encode;
        Assert.True(cases.Count >= 300, $"only {cases.Count} reference strings");
        Assert.Equal(new[] { 15496, 995 }, cases.Single(c => c.Text == "Hello world").Ids);
        Assert.Contains(cases, c => c.Text.Length == 0);
        Assert.Contains(cases, c => c.Text == new string(' ', 300));
    }

    [Fact]
    public void Gpt2_EncodesEveryReferenceStringToTheReferenceIds()
    {
        var tokenizer = ByteLevelBpe.Gpt2();
        var wrong = new List<string>();
        foreach (var (text, ids) in Reference.Value.Encode)
        {
            int[] got = tokenizer.Encode(text);
            if (!got.SequenceEqual(ids))
            {
                wrong.Add($"{JsonSerializer.Serialize(text)}: expected [{string.Join(",", ids)}], got [{string.Join(",", got)}]");
            }
        }
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {Reference.Value.Encode.Count} differ:\n" + string.Join("\n", wrong.Take(10)));
    }

    [Fact]
    public void Gpt2_DecodesEveryReferenceEncodingBackToItsString()
    {
        var tokenizer = ByteLevelBpe.Gpt2();
        var wrong = Reference.Value.Encode.Where(c => tokenizer.Decode(c.Ids) != c.Text).Select(c => JsonSerializer.Serialize(c.Text)).ToList();
        Assert.True(wrong.Count == 0, "no round trip for:\n" + string.Join("\n", wrong.Take(10)));
    }

    [Fact]
    public void Gpt2_DecodesInvalidUtf8LikeGpt2()
    {
        var tokenizer = ByteLevelBpe.Gpt2();
        var cases = Reference.Value.Decode;
        Assert.Contains(cases, c => c.Text.Contains('\uFFFD'));
        foreach (var (ids, text) in cases)
        {
            Assert.Equal(text, tokenizer.Decode(ids));
        }
    }

    [Fact]
    public void Gpt2_HelloWorld()
    {
        var tokenizer = ByteLevelBpe.Gpt2();

        Assert.Equal(new[] { 15496, 995 }, tokenizer.Encode("Hello world"));
        Assert.Equal("Hello world", tokenizer.Decode([15496, 995]));
        Assert.Equal("Hello", tokenizer.TokenText(15496));
        Assert.Equal(" world", tokenizer.TokenText(995));
        Assert.Equal("Ġworld", tokenizer.TokenString(995));
        Assert.Equal(995, tokenizer.TokenId("Ġworld"));
        Assert.Null(tokenizer.TokenId("no such token"));
        Assert.Equal(" world"u8.ToArray(), tokenizer.TokenBytes(995).ToArray());
    }

    [Fact]
    public void Gpt2_HasGpt2sVocabulary()
    {
        var tokenizer = ByteLevelBpe.Gpt2();

        Assert.Equal(50257, tokenizer.VocabularySize);
        Assert.Equal(50000, tokenizer.MergeCount);
        Assert.Equal(50256, tokenizer.EndOfText);
        Assert.Equal(new[] { "<|endoftext|>" }, tokenizer.SpecialTokens);
        Assert.Equal(("Ġ", "t"), tokenizer.Merges[0]);
        Assert.Equal("!", tokenizer.TokenString(0));
        Assert.Equal("Ā", tokenizer.TokenString(188)); // byte 0x00
        Assert.Equal("Ġ", tokenizer.TokenString(220)); // space
        Assert.Same(tokenizer, ByteLevelBpe.Gpt2());
    }

    [Fact]
    public void EndOfText_IsOneTokenOnlyWhenAllowed()
    {
        var tokenizer = ByteLevelBpe.Gpt2();
        int[] asText = Reference.Value.Encode.Single(c => c.Text == "<|endoftext|>").Ids;

        Assert.Equal(new[] { 27, 91, 437, 1659, 5239, 91, 29 }, asText);
        Assert.Equal(asText, tokenizer.Encode("<|endoftext|>"));
        Assert.Equal(asText, tokenizer.Encode("<|endoftext|>", allowSpecial: false));
        Assert.Equal(new[] { 50256 }, tokenizer.Encode("<|endoftext|>", allowSpecial: true));
        Assert.Equal(
            tokenizer.Encode("Hello world").Concat([50256]).Concat(tokenizer.Encode(" And more")).Concat([50256, 50256]),
            tokenizer.Encode("Hello world<|endoftext|> And more<|endoftext|><|endoftext|>", allowSpecial: true));
        Assert.Equal("<|endoftext|>", tokenizer.Decode([50256]));
        Assert.Equal("a<|endoftext|>b", tokenizer.Decode(tokenizer.Encode("a<|endoftext|>b", allowSpecial: true)));
        Assert.Equal(tokenizer.Encode("<|endoftext"), tokenizer.Encode("<|endoftext", allowSpecial: true));
    }

    [Fact]
    public void Encode_ReplacesLoneSurrogatesLikeUtf8Encoding()
    {
        var tokenizer = ByteLevelBpe.Gpt2();

        Assert.Equal("\uFFFD", tokenizer.Decode(tokenizer.Encode("\uD800")));
        Assert.Equal("a\uFFFDb\uFFFD", tokenizer.Decode(tokenizer.Encode("a\uDC00b\uD83D")));
        Assert.Equal(tokenizer.Encode("\uFFFD"), tokenizer.Encode("\uDFFF"));
    }

    [Fact]
    public void Encode_AppendsToAList()
    {
        var tokenizer = ByteLevelBpe.Gpt2();
        var ids = new List<int> { 7 };

        tokenizer.EncodeTo("Hello world", ids);
        tokenizer.EncodeTo("<|endoftext|>", ids, allowSpecial: true);

        Assert.Equal(new[] { 7, 15496, 995, 50256 }, ids);
    }

    [Fact]
    public void Decode_RejectsIdsOutsideTheVocabulary()
    {
        var tokenizer = ByteLevelBpe.Gpt2();

        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([50257]));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([-1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.TokenText(50257));
        Assert.Equal("", tokenizer.Decode([]));
    }

    [Fact]
    public void Encode_VeryLongWordMatchesTheSameWordFromShorterPieces()
    {
        var tokenizer = ByteLevelBpe.Gpt2();
        string word = string.Concat(Enumerable.Repeat("abracadabra", 20_000)); // 220,000 letters, one word

        int[] ids = tokenizer.Encode(word);

        Assert.Equal(word, tokenizer.Decode(ids));
        Assert.True(ids.Length < word.Length / 2, $"{ids.Length} tokens for {word.Length} letters");
        Assert.Equal(Reference.Value.Encode.Single(c => c.Text == new string('a', 1000)).Ids, tokenizer.Encode(new string('a', 1000)));
    }

    [Fact]
    public void Encode_IsThreadSafeAndTheCacheStaysBounded()
    {
        var tokenizer = ByteLevelBpe.LoadDirectory(TestUtil.Gpt2Directory);
        var cases = Reference.Value.Encode;
        var failures = new ConcurrentBag<string>();
        Parallel.For(0, 8 * cases.Count, i =>
        {
            var (text, ids) = cases[i % cases.Count];
            if (!tokenizer.Encode(text).SequenceEqual(ids))
            {
                failures.Add(text);
            }
        });
        Assert.Empty(failures);

        var words = new StringBuilder();
        for (int i = 0; i < ByteLevelBpe.MaxCachedWords + 20_000; i++)
        {
            words.Append(" w").Append(i);
        }
        string text = words.ToString();
        int[] first = tokenizer.Encode(text);
        Assert.InRange(tokenizer.CachedWords, 1, ByteLevelBpe.MaxCachedWords);
        Assert.Equal(first, tokenizer.Encode(text));
        Assert.Equal(text, tokenizer.Decode(first));
    }

    // ---- GPT-2's files ----

    [Fact]
    public void Load_ReadsTheRepositorysGzipFiles()
    {
        string directory = TestUtil.Gpt2Directory;
        var loaded = ByteLevelBpe.Load(Path.Combine(directory, "encoder.json.gz"), Path.Combine(directory, "vocab.bpe.gz"));

        Assert.Equal(50257, loaded.VocabularySize);
        foreach (var (text, ids) in Reference.Value.Encode.Take(100))
        {
            Assert.Equal(ids, loaded.Encode(text));
        }
    }

    [Fact]
    public void Save_WritesGpt2sFilesByteForByte()
    {
        ByteLevelBpe.Gpt2().Save(_temp);

        Assert.Equal(EmbeddedGpt2File("gpt2/encoder.json.gz"), File.ReadAllBytes(Path.Combine(_temp, "encoder.json")));
        Assert.Equal(EmbeddedGpt2File("gpt2/vocab.bpe.gz"), File.ReadAllBytes(Path.Combine(_temp, "vocab.bpe")));
        var reloaded = ByteLevelBpe.Load(Path.Combine(_temp, "encoder.json"), Path.Combine(_temp, "vocab.bpe"));
        Assert.Equal(new[] { 15496, 995 }, reloaded.Encode("Hello world"));
    }

    // ---- The trainer ----

    [Fact]
    public void Trainer_LearnsTheHandWorkedMergesInOrder()
    {
        // "aaabdaaabac" is one word. Pairs: a a 4 (overlapping), a b 2, b d 1, d a 1, b a 1, a c 1.
        // 1. a a (4)                 -> aa a b d aa a b a c
        // 2. a b (2; ties aa a, "a" < "aa") -> aa ab d aa ab a c
        // 3. aa ab (2)               -> aaab d aaab a c
        // 4. a c (1; "a" is the smallest left token) -> aaab d aaab ac
        // 5. aaab ac ("ac" < "d")    -> aaab d aaabac
        // 6. aaab d                  -> aaabd aaabac
        // 7. aaabd aaabac            -> one token; nothing is left to merge.
        var trainer = new BpeTrainer(vocabularySize: 300);
        trainer.AddText("aaabdaaabac");
        ByteLevelBpe tokenizer = trainer.Train();

        (string, string)[] expected =
        [
            ("a", "a"), ("a", "b"), ("aa", "ab"), ("a", "c"), ("aaab", "ac"), ("aaab", "d"), ("aaabd", "aaabac"),
        ];
        Assert.Equal(expected, tokenizer.Merges);
        Assert.Equal(256 + 7 + 1, tokenizer.VocabularySize); // stopped early: no pair left
        Assert.Equal(new[] { 256 + 6 }, tokenizer.Encode("aaabdaaabac"));
        Assert.Equal(256 + 7, tokenizer.EndOfText);

        var small = new BpeTrainer(vocabularySize: 256 + 2 + 1);
        small.AddText("aaabdaaabac");
        ByteLevelBpe two = small.Train();
        Assert.Equal(expected[..2], two.Merges);
        Assert.Equal(new[] { "aa", "ab", "d", "aa", "ab", "a", "c" }, two.Encode("aaabdaaabac").Select(two.TokenString));
    }

    [Fact]
    public void Trainer_RoundTripsThroughSaveAndLoad()
    {
        var trainer = new BpeTrainer(vocabularySize: 600);
        trainer.AddText(English);
        ByteLevelBpe trained = trainer.Train();
        trainer.Save(_temp);
        var loaded = ByteLevelBpe.Load(Path.Combine(_temp, "encoder.json"), Path.Combine(_temp, "vocab.bpe"));

        Assert.Equal(trained.VocabularySize, loaded.VocabularySize);
        Assert.Equal(trained.Merges, loaded.Merges);
        Assert.Equal(trained.EndOfText, loaded.EndOfText);
        Assert.Equal(Enumerable.Range(0, trained.VocabularySize).Select(trained.TokenString),
            Enumerable.Range(0, loaded.VocabularySize).Select(loaded.TokenString));
        string[] texts = [English, "It was the age of dedication.", "naïve café 日本語 👍 12345", ""];
        foreach (string text in texts)
        {
            int[] ids = loaded.Encode(text);
            Assert.Equal(trained.Encode(text), ids);
            Assert.Equal(text, loaded.Decode(ids));
        }
        Assert.True(loaded.Encode(English).Length < Encoding.UTF8.GetByteCount(English) / 2, "the merges should compress the training text");

        // Saving what was loaded writes the same bytes again, and gzip copies load the same.
        string again = Path.Combine(_temp, "again");
        loaded.Save(again);
        foreach (string name in new[] { "encoder.json", "vocab.bpe" })
        {
            byte[] bytes = File.ReadAllBytes(Path.Combine(_temp, name));
            Assert.Equal(bytes, File.ReadAllBytes(Path.Combine(again, name)));
            File.WriteAllBytes(Path.Combine(again, name + ".gz"), Gzip(bytes));
        }
        var fromGzip = ByteLevelBpe.Load(Path.Combine(again, "encoder.json.gz"), Path.Combine(again, "vocab.bpe.gz"));
        Assert.Equal(loaded.Encode(English), fromGzip.Encode(English));
    }

    [Fact]
    public void Trainer_WritesGpt2sLayout()
    {
        var trainer = new BpeTrainer(vocabularySize: 300);
        trainer.AddText(English);
        trainer.Train();
        trainer.Save(_temp);

        string json = File.ReadAllText(Path.Combine(_temp, "encoder.json"));
        string[] lines = File.ReadAllText(Path.Combine(_temp, "vocab.bpe")).Split('\n');
        Assert.StartsWith("{\"!\": 0, \"\\\"\": 1, \"#\": 2,", json);
        Assert.Contains("\"\\u0120\": 220", json);
        Assert.EndsWith(", \"<|endoftext|>\": 299}", json);
        Assert.Equal("#version: 0.2", lines[0]);
        Assert.Equal(1 + 43 + 1, lines.Length); // header, 43 merges, empty string after the last newline
        Assert.Equal("", lines[^1]);
        Assert.All(lines[1..^1], line => Assert.Equal(2, line.Split(' ').Length));
    }

    [Theory]
    [InlineData(257)]
    [InlineData(258)]
    [InlineData(300)]
    [InlineData(512)]
    public void Trainer_GivesTheVocabularySizeAskedFor(int size)
    {
        var trainer = new BpeTrainer(size);
        trainer.AddText(English);
        ByteLevelBpe tokenizer = trainer.Train();

        Assert.Equal(size, tokenizer.VocabularySize);
        Assert.Equal(size - 1, tokenizer.EndOfText);
        Assert.Equal(English, tokenizer.Decode(tokenizer.Encode(English)));
    }

    [Fact]
    public void Trainer_RejectsAVocabularyTooSmallForBytesAndSpecials()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new BpeTrainer(256));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BpeTrainer(257, ["<|a|>", "<|b|>"]));
        Assert.Throws<ArgumentException>(() => new BpeTrainer(300, ["plain"]));
        Assert.Throws<ArgumentException>(() => new BpeTrainer(300, ["<|a|>", "<|a|>"]));

        var bytesOnly = new BpeTrainer(256, []);
        bytesOnly.AddText(English);
        ByteLevelBpe tokenizer = bytesOnly.Train();
        Assert.Equal(256, tokenizer.VocabularySize);
        Assert.Null(tokenizer.EndOfText);
        Assert.Equal(Encoding.UTF8.GetByteCount(English), tokenizer.Encode(English).Length);
    }

    [Fact]
    public void Trainer_KeepsSpecialTokensOutOfTheMerges()
    {
        var trainer = new BpeTrainer(400, ["<|endoftext|>", "<|pad|>"]);
        for (int i = 0; i < 50; i++)
        {
            trainer.AddText("<|endoftext|><|pad|>ab<|pad|> cd<|endoftext|>");
        }
        trainer.Train();
        trainer.Save(_temp);
        var tokenizer = ByteLevelBpe.LoadDirectory(_temp);

        Assert.DoesNotContain(tokenizer.Merges, m => (m.Left + m.Right).Contains('<') || (m.Left + m.Right).Contains('|'));
        Assert.Equal(new[] { "<|endoftext|>", "<|pad|>" }, tokenizer.SpecialTokens);
        int pad = tokenizer.VocabularySize - 1;
        Assert.Equal(new[] { tokenizer.EndOfText!.Value, pad }, tokenizer.Encode("<|endoftext|><|pad|>", allowSpecial: true));
        int[] mixed = tokenizer.Encode("x<|pad|>y<|endoftext|><|pad|><|pad", allowSpecial: true);
        Assert.Equal(2, mixed.Count(id => id == pad));
        Assert.Single(mixed, id => id == tokenizer.EndOfText);
        Assert.Equal("x<|pad|>y<|endoftext|><|pad|><|pad", tokenizer.Decode(mixed));
    }

    [Fact]
    public void Trainer_SavesOnlyAfterTrainingAndTakesNoTextAfterIt()
    {
        var trainer = new BpeTrainer(300);
        trainer.AddText(English);

        Assert.Throws<InvalidOperationException>(() => trainer.Save(_temp));
        Assert.Null(trainer.Tokenizer);
        ByteLevelBpe tokenizer = trainer.Train();
        Assert.Same(tokenizer, trainer.Train());
        Assert.Same(tokenizer, trainer.Tokenizer);
        Assert.Throws<InvalidOperationException>(() => trainer.AddText("more"));
        Assert.True(trainer.Words > trainer.DistinctWords);
    }

    [Fact]
    public void Trainer_IsDeterministic()
    {
        ByteLevelBpe Train()
        {
            var trainer = new BpeTrainer(700);
            trainer.AddText(English);
            trainer.AddText(English.ToUpperInvariant());
            return trainer.Train();
        }

        Assert.Equal(Train().Merges, Train().Merges);
    }

    // ---- Bad files ----

    [Fact]
    public void BadFiles_MissingFile()
    {
        var (encoder, merges) = WriteSmallVocabulary();
        string missing = Path.Combine(_temp, "nothing.json");

        var e = Assert.Throws<DataFormatException>(() => ByteLevelBpe.Load(missing, merges));
        Assert.Equal(missing, e.Path);
        Assert.Contains("file not found", e.Message);
        e = Assert.Throws<DataFormatException>(() => ByteLevelBpe.Load(encoder, missing + ".gz"));
        Assert.Contains("file not found", e.Message);
        e = Assert.Throws<DataFormatException>(() => ByteLevelBpe.Load(_temp, merges));
        Assert.Contains("directory", e.Message);
        e = Assert.Throws<DataFormatException>(() => ByteLevelBpe.LoadDirectory(Path.Combine(_temp, "none")));
        Assert.Contains("encoder.json", e.Path);
    }

    [Theory]
    [InlineData("{\n\"!\": 0,\n\"a\": 1\n", "line 4", "invalid JSON")]
    [InlineData("{\n\"!\": 0,\n\"a\" 1\n}", "line 3", "invalid JSON")]
    [InlineData("{\"!\": 0,}", "line 1", "invalid JSON")]
    [InlineData("[1, 2]", "line 1", "expected a JSON object")]
    [InlineData("", "empty file", "")]
    [InlineData("{\"!\": 0} {", "line 1", "")]
    [InlineData("{\n\"!\": 0,\n\n\"a\": 1.5\n}", "line 4", "the id of token \"a\" is 1.5, not an integer")]
    [InlineData("{\n\"!\": 0,\n\"a\": \"1\"\n}", "line 3", "the id of token \"a\" is a string, not an integer")]
    [InlineData("{\n\"!\": -1\n}", "line 2", "not an integer")]
    [InlineData("{\n\"!\": 99999999999\n}", "line 2", "not an integer")]
    [InlineData("{\n\"!\": 0,\n\"a\": 1,\n\"b\": 1\n}", "line 4", "duplicate id 1, given to both \"a\" and \"b\"")]
    [InlineData("{\n\"!\": 0,\n\"!\": 1\n}", "line 3", "token \"!\" appears twice")]
    [InlineData("{\"!\": 0, \"a\": 2}", "ids must be 0 to 1", "id 1 is missing")]
    [InlineData("{\"!\": 0, \"\": 1}", "line 1", "empty token")]
    [InlineData("{\"!\": 0, \"a\\u0020b\": 1}", "token \"a b\" (id 1) contains U+0020", "byte-level characters")]
    [InlineData("{\"!\": 0}", "lacks the token", "byte 0x00")]
    public void BadFiles_EncoderJson(string json, string where, string problem)
    {
        var (_, merges) = WriteSmallVocabulary();
        string encoder = Path.Combine(_temp, "bad-encoder.json");
        File.WriteAllText(encoder, json);

        var e = Assert.Throws<DataFormatException>(() => ByteLevelBpe.Load(encoder, merges));

        Assert.Equal(encoder, e.Path);
        Assert.StartsWith(encoder + ": ", e.Message);
        Assert.Contains(where, e.Message);
        Assert.Contains(problem, e.Message);
    }

    [Fact]
    public void BadFiles_EncoderJsonThatIsNotUtf8()
    {
        var (encoder, merges) = WriteSmallVocabulary();
        byte[] bytes = File.ReadAllBytes(encoder);
        int at = Array.IndexOf(bytes, (byte)'\n', 2) + 2; // inside line 3
        bytes[at] = 0xFF;
        File.WriteAllBytes(encoder, bytes);

        var e = Assert.Throws<DataFormatException>(() => ByteLevelBpe.Load(encoder, merges));
        Assert.Contains("line 3: not valid UTF-8", e.Message);
    }

    [Theory]
    [InlineData("a b\nab c\n", 1, "line 1: expected the header \"#version: 0.2\"")]
    [InlineData("#version: 0.2\na b c\n", 2, "line 2: expected a merge of two tokens separated by a space, found \"a b c\"")]
    [InlineData("#version: 0.2\na b\nabc\n", 3, "line 3: expected a merge of two tokens")]
    [InlineData("#version: 0.2\na b\nab xy\n", 3, "line 3: merge \"ab xy\": \"xy\" is not in the vocabulary")]
    [InlineData("#version: 0.2\na b\nzz c\n", 3, "line 3: merge \"zz c\": \"zz\" is not in the vocabulary")]
    [InlineData("#version: 0.2\nb c\n", 2, "line 2: merge \"b c\" makes \"bc\", which is not in the vocabulary")]
    [InlineData("#version: 0.2\na b\n\nab c\na b\n", 5, "line 5: merge \"a b\" repeats line 2")]
    [InlineData("", 0, "empty file")]
    public void BadFiles_VocabBpe(string text, int line, string problem)
    {
        var (encoder, _) = WriteSmallVocabulary();
        string merges = Path.Combine(_temp, "bad-vocab.bpe");
        File.WriteAllText(merges, text);

        var e = Assert.Throws<DataFormatException>(() => ByteLevelBpe.Load(encoder, merges));

        Assert.Equal(merges, e.Path);
        Assert.Contains(problem, e.Message);
        if (line > 0)
        {
            Assert.Contains($"line {line}:", e.Message);
        }
    }

    [Fact]
    public void SmallVocabulary_LoadsWithBlankLinesAndWindowsLineEnds()
    {
        var (encoder, _) = WriteSmallVocabulary();
        string merges = Path.Combine(_temp, "crlf.bpe");
        File.WriteAllText(merges, "#version: 0.2\r\na b\r\n\r\nab c\r\n\r\n");

        var tokenizer = ByteLevelBpe.Load(encoder, merges);

        Assert.Equal(new[] { "abc", "Ġ", "ab", "a" }, tokenizer.Encode("abc aba").Select(tokenizer.TokenString));
    }

    [Fact]
    public void BadFiles_TruncatedGzip()
    {
        var (encoder, merges) = WriteSmallVocabulary();
        foreach (string plain in new[] { encoder, merges })
        {
            byte[] gzip = Gzip(File.ReadAllBytes(plain));
            foreach (int keep in new[] { gzip.Length - 1, gzip.Length - 4, gzip.Length / 2, 12, 1 })
            {
                string cut = Path.Combine(_temp, $"cut-{keep}-{Path.GetFileName(plain)}.gz");
                File.WriteAllBytes(cut, gzip[..keep]);
                string goodEncoder = plain == encoder ? cut : encoder;
                string goodMerges = plain == merges ? cut : merges;

                var e = Assert.Throws<DataFormatException>(() => ByteLevelBpe.Load(goodEncoder, goodMerges));

                Assert.Equal(cut, e.Path);
                Assert.Matches("truncated|corrupt", e.Message);
            }
        }
    }

    // ---- Fuzzing ----

    [Fact]
    public void Fuzz_MutatedFilesLoadOrThrowDataFormatException()
    {
        var trainer = new BpeTrainer(320);
        trainer.AddText(English);
        trainer.Train();
        trainer.Save(_temp);
        byte[] encoder = File.ReadAllBytes(Path.Combine(_temp, "encoder.json"));
        byte[] merges = File.ReadAllBytes(Path.Combine(_temp, "vocab.bpe"));
        byte[] indented = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(
            JsonSerializer.Deserialize<Dictionary<string, int>>(encoder), new JsonSerializerOptions { WriteIndented = true }));
        string encoderPath = Path.Combine(_temp, "fuzz-encoder.json");
        string mergesPath = Path.Combine(_temp, "fuzz-vocab.bpe");
        var rng = new Random(FuzzSeed);
        const int Inputs = 3000;
        int loaded = 0, rejected = 0;
        var unexpected = new List<string>();
        var problems = new Dictionary<string, int>();

        for (int i = 0; i < Inputs; i++)
        {
            byte[] e = rng.Next(4) == 0 ? indented : encoder;
            byte[] m = merges;
            int target = rng.Next(10);
            bool gzip = target == 9;
            if (target < 5)
            {
                e = Mutate(e, rng);
            }
            else if (target < 9)
            {
                m = Mutate(m, rng);
            }
            string ePath = encoderPath, mPath = mergesPath;
            if (gzip)
            {
                bool first = rng.Next(2) == 0;
                (ePath, mPath) = (ePath + ".gz", mPath + ".gz");
                e = first ? Mutate(Gzip(e), rng) : Gzip(e);
                m = first ? Gzip(m) : Mutate(Gzip(m), rng);
            }
            File.WriteAllBytes(ePath, e);
            File.WriteAllBytes(mPath, m);
            try
            {
                var tokenizer = ByteLevelBpe.Load(ePath, mPath);
                const string Sample = "Four score, naïve 日本 👍 12345\n\t <|endoftext|>";
                if (tokenizer.Decode(tokenizer.Encode(Sample, allowSpecial: true)) != Sample)
                {
                    unexpected.Add($"input {i}: loaded but does not round-trip");
                }
                loaded++;
            }
            catch (DataFormatException ex)
            {
                rejected++;
                string kind = ProblemKind(ex.Message[(ex.Path.Length + 2)..]);
                problems[kind] = problems.GetValueOrDefault(kind) + 1;
            }
            catch (Exception ex)
            {
                unexpected.Add($"input {i}: {ex.GetType().Name}: {ex.Message}");
            }
        }

        _output.WriteLine($"fuzzed tokenizer files: {Inputs} inputs tried (seed {FuzzSeed}), {loaded} loaded, {rejected} rejected with DataFormatException");
        foreach (var (kind, count) in problems.OrderByDescending(p => p.Value).ThenBy(p => p.Key, StringComparer.Ordinal))
        {
            _output.WriteLine($"  {count,5}  {kind}");
        }
        Assert.True(unexpected.Count == 0, string.Join("\n", unexpected.Take(10)));
        Assert.Equal(Inputs, loaded + rejected);
        Assert.InRange(loaded, 1, Inputs - 1);
    }

    [Fact]
    public void Fuzz_RandomUnicodeRoundTrips()
    {
        var trainer = new BpeTrainer(400);
        trainer.AddText(English);
        ByteLevelBpe[] tokenizers = [ByteLevelBpe.Gpt2(), trainer.Train()];
        var rng = new Random(FuzzSeed);
        const int Strings = 2000;
        int tokens = 0, astral = 0;

        for (int i = 0; i < Strings; i++)
        {
            string text = RandomText(rng);
            astral += text.Any(char.IsSurrogate) ? 1 : 0;
            foreach (ByteLevelBpe tokenizer in tokenizers)
            {
                int[] ids = tokenizer.Encode(text);
                tokens += ids.Length;
                string back = tokenizer.Decode(ids);
                Assert.True(back == text, $"string {i} {JsonSerializer.Serialize(text)} came back as {JsonSerializer.Serialize(back)}");
                int[] withSpecial = tokenizer.Encode(text, allowSpecial: true);
                Assert.Equal(text, tokenizer.Decode(withSpecial));
                if (!text.Contains(ByteLevelBpe.EndOfTextToken))
                {
                    Assert.Equal(ids, withSpecial);
                }
            }
        }

        _output.WriteLine($"round-tripped {Strings} random strings (seed {FuzzSeed}, {astral} with supplementary characters) "
            + $"through GPT-2 and a trained vocabulary: {tokens} tokens");
    }

    [Fact]
    public void PreTokenizer_KeepsSupplementaryLettersInTheirWord()
    {
        static string[] Words(string text) =>
            Gpt2PreTokenizer.Pattern.Matches(text).Select(m => m.Value).ToArray();

        Assert.Equal(new[] { "a𝐀b", " 𠀀x" }, Words("a𝐀b 𠀀x"));
        Assert.Equal(new[] { "1𝟙2", " x𐍈y" }, Words("1𝟙2 x𐍈y")); // U+1D7D9 is a digit, U+10348 a letter number
        Assert.Equal(new[] { "a", "👍", " b", "!", "𝐀", "!" }, Words("a👍 b!𝐀!"));
        Assert.Equal(new[] { "x", "  ", " y", "\u0085", "z" }, Words("x   y\u0085z")); // U+0085 is white space in GPT-2's Python pattern
        Assert.Equal(new[] { "\uD800", "a" }, Words("\uD800a"));
        Assert.Equal(Gpt2PreTokenizer.Gpt2Source, ByteLevelBpe.PreTokenizerPattern);
    }

    // ---- Helpers ----

    private static (List<(string, int[])> Encode, List<(int[], string)> Decode) ReadReference()
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(ReferencePath));
        var encode = document.RootElement.GetProperty("encode").EnumerateArray()
            .Select(c => (c.GetProperty("text").GetString()!, c.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray()))
            .ToList();
        var decode = document.RootElement.GetProperty("decode").EnumerateArray()
            .Select(c => (c.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray(), c.GetProperty("text").GetString()!))
            .ToList();
        return (encode, decode);
    }


    private static byte[] EmbeddedGpt2File(string resource)
    {
        using Stream stream = typeof(ByteLevelBpe).Assembly.GetManifestResourceStream(resource)!;
        using var gzip = new GZipStream(stream, CompressionMode.Decompress);
        var output = new MemoryStream();
        gzip.CopyTo(output);
        return output.ToArray();
    }

    private static byte[] Gzip(byte[] bytes)
    {
        var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Optimal, leaveOpen: true))
        {
            gzip.Write(bytes);
        }
        return output.ToArray();
    }

    /// <summary>
    /// A vocabulary of the 256 bytes plus "ab" (256) and "abc" (257), one JSON entry per line
    /// (entry of id k on line k + 2), and merges "a b", "ab c".
    /// </summary>
    private (string Encoder, string Merges) WriteSmallVocabulary()
    {
        var tokens = Enumerable.Range(0, 256).Select(i => ByteLevelAlphabet.ByteToChar[ByteLevelAlphabet.GptOrder[i]].ToString())
            .Concat(["ab", "abc"]).ToList();
        string json = "{\n" + string.Join(",\n", tokens.Select((t, id) => $"{JsonSerializer.Serialize(t)}: {id}")) + "\n}";
        string encoder = Path.Combine(_temp, "encoder.json");
        string merges = Path.Combine(_temp, "vocab.bpe");
        File.WriteAllText(encoder, json);
        File.WriteAllText(merges, "#version: 0.2\na b\nab c\n");
        return (encoder, merges);
    }

    private static readonly byte[] Interesting = "\"',:{}[] \n\r\t-+.0159e\\#"u8.ToArray().Concat(new byte[] { 0x00, 0x7F, 0x80, 0xC3, 0xC4, 0xE2, 0xFF }).ToArray();

    /// <summary>One to three random edits: bit flips, byte changes, truncation, insertion, deletion, duplication, line swaps.</summary>
    private static byte[] Mutate(byte[] input, Random rng)
    {
        var bytes = new List<byte>(input);
        int edits = 1 + rng.Next(3);
        for (int k = 0; k < edits; k++)
        {
            int at = bytes.Count == 0 ? 0 : rng.Next(bytes.Count);
            switch (rng.Next(8))
            {
                case 0 when bytes.Count > 0:
                    bytes[at] ^= (byte)(1 << rng.Next(8));
                    break;
                case 1 when bytes.Count > 0:
                    bytes[at] = (byte)rng.Next(256);
                    break;
                case 2 when bytes.Count > 0:
                    bytes[at] = Interesting[rng.Next(Interesting.Length)];
                    break;
                case 3:
                    bytes.RemoveRange(at, bytes.Count - at);
                    break;
                case 4:
                    bytes.InsertRange(at, Enumerable.Range(0, 1 + rng.Next(8)).Select(_ => rng.Next(2) == 0
                        ? Interesting[rng.Next(Interesting.Length)] : (byte)rng.Next(256)));
                    break;
                case 5:
                    bytes.RemoveRange(at, Math.Min(bytes.Count - at, 1 + rng.Next(32)));
                    break;
                case 6 when bytes.Count > 0:
                    int length = Math.Min(bytes.Count - at, 1 + rng.Next(64));
                    bytes.InsertRange(rng.Next(bytes.Count), bytes.GetRange(at, length));
                    break;
                default:
                    SwapLines(bytes, rng);
                    break;
            }
        }
        return bytes.ToArray();
    }

    private static void SwapLines(List<byte> bytes, Random rng)
    {
        var lines = Encoding.Latin1.GetString(bytes.ToArray()).Split('\n');
        if (lines.Length < 3)
        {
            return;
        }
        int a = rng.Next(lines.Length), b = rng.Next(lines.Length);
        (lines[a], lines[b]) = (lines[b], lines[a]);
        bytes.Clear();
        bytes.AddRange(Encoding.Latin1.GetBytes(string.Join('\n', lines)));
    }

    /// <summary>The kind of a loading problem, without its details, for the fuzz summary.</summary>
    private static string ProblemKind(string message)
    {
        string kind = System.Text.RegularExpressions.Regex.Replace(message, "^line \\d+: ", "");
        foreach (string general in new[] { "invalid JSON", "corrupt gzip stream", "not valid UTF-8" })
        {
            if (kind.StartsWith(general, StringComparison.Ordinal))
            {
                return general;
            }
        }
        int end = kind.IndexOfAny([',', ':', '(']);
        kind = end > 0 ? kind[..end] : kind;
        return System.Text.RegularExpressions.Regex.Replace(kind, "\"[^\"]*\"|0x[0-9A-F]+|\\d+", "_").Trim();
    }

    /// <summary>A random string of valid UTF-16 (no lone surrogates) mixing ASCII, white space, other scripts and supplementary characters.</summary>
    private static string RandomText(Random rng)
    {
        string[] pieces = ["'s", "'ll", "'", " ", "  ", "\n", "\t", "\r\n", "\u00a0", "\u3000", "\u0085", "\uFEFF", "\u200d",
            "\u0301", "<|endoftext|>", "<|", "|>"];
        var text = new StringBuilder();
        int length = rng.Next(48);
        for (int i = 0; i < length; i++)
        {
            int codePoint = rng.Next(12) switch
            {
                0 or 1 or 2 or 3 => rng.Next(0x20, 0x7F),
                4 => rng.Next(0x00, 0x20),
                5 => rng.Next(0x80, 0x800),
                6 => RandomBmp(rng),
                7 => rng.Next(0x10000, 0x110000),
                8 => rng.Next(0x1F300, 0x1FAFF),
                9 => rng.Next(0x1D400, 0x1D800),
                _ => -1,
            };
            text.Append(codePoint < 0 ? pieces[rng.Next(pieces.Length)] : char.ConvertFromUtf32(codePoint));
        }
        return text.ToString();
    }

    private static int RandomBmp(Random rng)
    {
        while (true)
        {
            int c = rng.Next(0x800, 0x10000);
            if (c is < 0xD800 or > 0xDFFF)
            {
                return c;
            }
        }
    }
}
