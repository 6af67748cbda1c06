using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Flora.Data.Tokenizers;
using Flora.Training;

namespace Flora.Tests.Data;

/// <summary>
/// <see cref="HuggingFaceTokenizer"/> on small <c>tokenizer.json</c> files written here, with ids derived by
/// hand; GPT-2's real vocabulary against the reference encodings; pattern translation; bad files; and
/// <see cref="ITokenizer"/> on <see cref="ByteLevelBpe"/>. The fixtures made by Hugging Face's own library
/// are checked in <see cref="HuggingFaceTokenizerFixtureTests"/>.
/// </summary>
public sealed class HuggingFaceTokenizerTests : IDisposable
{
    private const string Llama3Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private const string Qwen2Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private const string Spiece = "\u2581";

    private readonly string _temp = Directory.CreateTempSubdirectory("flora-hf-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    // ---- writing tokenizer.json files ----

    private static string TokenizerJson(object model, object? normalizer = null, object? preTokenizer = null,
        object? postProcessor = null, object? decoder = null, object[]? added = null) =>
        JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added ?? [],
            ["normalizer"] = normalizer,
            ["pre_tokenizer"] = preTokenizer,
            ["model"] = model,
            ["post_processor"] = postProcessor,
            ["decoder"] = decoder,
        });

    private static object Bpe(IEnumerable<string> tokens, IEnumerable<object> merges, bool byteFallback = false,
        bool fuseUnk = false, string? unk = null) => new Dictionary<string, object?>
        {
            ["type"] = "BPE",
            ["dropout"] = null,
            ["unk_token"] = unk,
            ["continuing_subword_prefix"] = null,
            ["end_of_word_suffix"] = null,
            ["fuse_unk"] = fuseUnk,
            ["byte_fallback"] = byteFallback,
            ["ignore_merges"] = false,
            ["vocab"] = tokens.Select((t, i) => (t, i)).ToDictionary(x => x.t, x => x.i),
            ["merges"] = merges,
        };

    private static object AddedJson(int id, string content, bool special = true, bool normalized = false,
        bool singleWord = false, bool lstrip = false, bool rstrip = false) => new
        {
            id, content, single_word = singleWord, lstrip, rstrip, normalized, special,
        };

    private static object Template(string token, int id) => new
    {
        type = "TemplateProcessing",
        single = new object[] { new { SpecialToken = new { id = token, type_id = 0 } }, new { Sequence = new { id = "A", type_id = 0 } } },
        pair = new object[]
        {
            new { SpecialToken = new { id = token, type_id = 0 } }, new { Sequence = new { id = "A", type_id = 0 } },
            new { SpecialToken = new { id = token, type_id = 1 } }, new { Sequence = new { id = "B", type_id = 1 } },
        },
        special_tokens = new Dictionary<string, object> { [token] = new { id = token, ids = new[] { id }, tokens = new[] { token } } },
    };

    private static object SplitThenByteLevel(string pattern) => new
    {
        type = "Sequence",
        pretokenizers = new object[]
        {
            new { type = "Split", pattern = new { Regex = pattern }, behavior = "Isolated", invert = false },
            new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = false },
        },
    };

    private static readonly object ByteLevelDecoder = new { type = "ByteLevel", add_prefix_space = true, trim_offsets = true, use_regex = true };

    private static string[] Texts(HuggingFaceTokenizer tokenizer, string text) =>
        tokenizer.PreTokenize(text).Select(p => p.IsToken ? $"[{p.TokenId}]" : p.Text).ToArray();

    // ---- a byte-level BPE in the style of Llama 3 ----

    /// <summary>A byte-level vocabulary of a few characters (ids 0-18), 15 merges (ids 19-33) and two specials.</summary>
    private static HuggingFaceTokenizer Llama3Style() => HuggingFaceTokenizer.FromJson(Llama3StyleJson());

    private static string Llama3StyleJson()
    {
        string[] tokens =
        [
            "H", "e", "l", "o", "Ġ", "w", "r", "d", "1", "2", "3", "4", "5", "'", "s", "!", "Ċ", "x", "k",
            "ll", "He", "Hell", "Hello", "Ġw", "or", "Ġwor", "Ġworl", "Ġworld", "12", "123", "'s", "Ġo", "Ġok", "ĊĊ",
        ];
        string[] merges =
        [
            "l l", "H e", "He ll", "Hell o", "Ġ w", "o r", "Ġw or", "Ġwor l", "Ġworl d", "1 2", "12 3", "' s", "Ġ o", "Ġo k", "Ċ Ċ",
        ];
        return TokenizerJson(Bpe(tokens, merges), preTokenizer: SplitThenByteLevel(Llama3Pattern),
            postProcessor: new
            {
                type = "Sequence",
                processors = new object[]
                {
                    new { type = "ByteLevel", add_prefix_space = true, trim_offsets = false, use_regex = true },
                    Template("<|begin_of_text|>", 34),
                },
            },
            decoder: ByteLevelDecoder,
            added: [AddedJson(34, "<|begin_of_text|>"), AddedJson(35, "<|end_of_text|>")]);
    }

    [Fact]
    public void Directory_TakesEachOfBosAndEosFromTheFirstConfigurationThatNamesIt()
    {
        File.WriteAllText(Path.Combine(_temp, "tokenizer.json"), Llama3StyleJson());
        File.WriteAllText(Path.Combine(_temp, "tokenizer_config.json"), """{"model_max_length": 8192, "eos_token": null}""");
        File.WriteAllText(Path.Combine(_temp, "special_tokens_map.json"), """{"bos_token": "<|end_of_text|>", "eos_token": "<|end_of_text|>"}""");

        var tokenizer = HuggingFaceTokenizer.Load(_temp);

        Assert.Equal(35, tokenizer.BeginOfText); // from special_tokens_map.json, over the template's 34
        Assert.Null(tokenizer.EndOfText);        // tokenizer_config.json says null
        File.Delete(Path.Combine(_temp, "special_tokens_map.json"));
        Assert.Equal(34, HuggingFaceTokenizer.Load(_temp).BeginOfText);
    }

    [Fact]
    public void Llama3Style_SplitsWithItsPatternThenBytes()
    {
        var tokenizer = Llama3Style();

        // Contractions, letters with one leading non-letter, digits three at a time, punctuation with its
        // newlines, and a run of spaces that leaves its last space to the next word.
        Assert.Equal(["Hello", "Ġworld", "'s", "Ġ", "123", "45", "Ġok", "!!ĊĊ", "Ġ", "Ġx"],
            Texts(tokenizer, "Hello world's 12345 ok!!\n\n  x"));
    }

    [Fact]
    public void Llama3Style_EncodesWithHandDerivedIds()
    {
        var tokenizer = Llama3Style();
        const string text = "Hello world's 12345 ok!!\n\n  x";
        int[] plain = [22, 27, 30, 4, 29, 11, 12, 32, 15, 15, 33, 4, 4, 17];

        Assert.Equal(plain, tokenizer.Encode(text));
        Assert.Equal([34, .. plain], tokenizer.EncodeWithSpecialTokens(text));
        Assert.Equal(text, tokenizer.Decode(plain));
        Assert.Equal(34, tokenizer.BeginOfText);
        Assert.Null(tokenizer.EndOfText);
        Assert.Equal(36, tokenizer.VocabularySize);
        Assert.Equal(15, tokenizer.MergeCount);
    }

    [Fact]
    public void Llama3Style_MatchesSpecialTokensInline()
    {
        var tokenizer = Llama3Style();

        Assert.Equal([34, 22, 35], tokenizer.Encode("<|begin_of_text|>Hello<|end_of_text|>"));
        Assert.Equal([34, 34, 22, 35], tokenizer.EncodeWithSpecialTokens("<|begin_of_text|>Hello<|end_of_text|>"));
        Assert.Equal("<|begin_of_text|>Hello<|end_of_text|>", tokenizer.Decode([34, 22, 35]));
        Assert.Equal("Hello", tokenizer.Decode([34, 22, 35], skipSpecialTokens: true));
        Assert.Equal([new AddedToken(34, "<|begin_of_text|>", true), new AddedToken(35, "<|end_of_text|>", true)], tokenizer.AddedTokens);
        Assert.Equal(35, tokenizer.TokenId("<|end_of_text|>"));
        Assert.Equal(27, tokenizer.TokenId("Ġworld"));
        Assert.Null(tokenizer.TokenId("world"));
        Assert.Equal("Ġworld", tokenizer.TokenString(27));
        Assert.Equal("<|end_of_text|>", tokenizer.TokenString(35));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.TokenString(36));
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([36]));
    }

    [Fact]
    public void Llama3Pattern_KeepsLettersOutsideTheBasicPlaneInTheirWord_AndFoldsCaseOfContractions()
    {
        var tokenizer = HuggingFaceTokenizer.FromJson(TokenizerJson(Bpe(["a"], []),
            preTokenizer: new { type = "Split", pattern = new { Regex = Llama3Pattern }, behavior = "Isolated", invert = false }));

        // U+20000 is a letter (Lo); U+1D400, U+1D401 are mathematical bold capitals (Lu); U+1D7D9 a digit (Nd).
        Assert.Equal(["a\U00020000b", " \U0001D400\U0001D401", " ", "\U0001D7D9\U0001D7D9", " \U0001F600!"],
            Texts(tokenizer, "a\U00020000b \U0001D400\U0001D401 \U0001D7D9\U0001D7D9 \U0001F600!"));
        Assert.Equal(["DON", "'T", " don", "'t", " it", "'S"], Texts(tokenizer, "DON'T don't it'S"));
    }

    [Fact]
    public void Qwen2Style_NormalizesToNfc_AndSplitsDigitsOneByOne()
    {
        var tokenizer = HuggingFaceTokenizer.FromJson(TokenizerJson(Bpe(["a"], []), normalizer: new { type = "NFC" },
            preTokenizer: SplitThenByteLevel(Qwen2Pattern)));

        // e + U+0301 becomes U+00E9, whose UTF-8 bytes C3 A9 are the byte-level characters Ã and ©.
        Assert.Equal(["1", "2", "3", "4", "5", "ĠcafÃ©"], Texts(tokenizer, "12345 cafe\u0301"));
    }

    [Fact]
    public void ByteLevelPreTokenizer_AddsAPrefixSpaceToEachPieceWhenAsked()
    {
        var tokenizer = HuggingFaceTokenizer.FromJson(TokenizerJson(Bpe(["a"], []),
            preTokenizer: new { type = "ByteLevel", add_prefix_space = true, trim_offsets = true, use_regex = true },
            added: [AddedJson(1, "<s>")]));

        Assert.Equal(["Ġhello", "Ġworld", "[1]", "Ġx", "Ġy"], Texts(tokenizer, "hello world<s> x y"));
    }

    [Fact]
    public void SplitBehaviors_CutAsHuggingFaceDoes()
    {
        string[] Cut(string behavior, bool invert = false) => Texts(HuggingFaceTokenizer.FromJson(TokenizerJson(Bpe(["a"], []),
            preTokenizer: new { type = "Split", pattern = new { String = "-" }, behavior, invert })), "a-b--c");

        Assert.Equal(["a", "-", "b", "-", "-", "c"], Cut("Isolated"));
        Assert.Equal(["a", "b", "c"], Cut("Removed"));
        Assert.Equal(["a-", "b-", "-", "c"], Cut("MergedWithPrevious"));
        Assert.Equal(["a", "-b", "-", "-c"], Cut("MergedWithNext"));
        Assert.Equal(["a", "-", "b", "--", "c"], Cut("Contiguous"));
        Assert.Equal(["-", "-", "-"], Cut("Removed", invert: true));
    }

    // ---- GPT-2's real vocabulary as a tokenizer.json ----

    private static string Gpt2Json()
    {
        string directory = TestUtil.Gpt2Directory;
        var vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(Gunzip(Path.Combine(directory, "encoder.json.gz")))!;
        string[] merges = Encoding.UTF8.GetString(Gunzip(Path.Combine(directory, "vocab.bpe.gz")))
            .Split('\n').Skip(1).Where(line => line.Length > 0).ToArray();
        var model = new Dictionary<string, object?>
        {
            ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = "",
            ["end_of_word_suffix"] = "", ["fuse_unk"] = false, ["byte_fallback"] = false, ["ignore_merges"] = false,
            ["vocab"] = vocab,
            // Half the merges as pairs, half as "a b" strings: both forms are read.
            ["merges"] = merges.Select((m, i) => i % 2 == 0 ? (object)m : m.Split(' ')).ToArray(),
        };
        return TokenizerJson(model, preTokenizer: new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = true },
            postProcessor: new { type = "ByteLevel", add_prefix_space = true, trim_offsets = false, use_regex = true },
            decoder: ByteLevelDecoder, added: [AddedJson(50256, "<|endoftext|>", normalized: true)]);
    }

    [Fact]
    public void Gpt2Json_GivesTheReferenceIdsOfGpt2_AndMatchesEndOfTextInline()
    {
        var tokenizer = HuggingFaceTokenizer.FromJson(Gpt2Json());
        var reference = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(AppContext.BaseDirectory, "Data", "gpt2-reference.json")));
        var wrong = new List<string>();
        int count = 0;
        foreach (JsonElement c in reference.RootElement.GetProperty("encode").EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            if (text.Contains("<|endoftext|>", StringComparison.Ordinal))
            {
                continue; // GPT-2's original encoder reads it as text; see below
            }
            int[] expected = c.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            count++;
            if (!tokenizer.Encode(text).SequenceEqual(expected) || !tokenizer.EncodeWithSpecialTokens(text).SequenceEqual(expected)
                || tokenizer.Decode(expected) != text)
            {
                wrong.Add(JsonSerializer.Serialize(text));
            }
        }
        Assert.True(count >= 300);
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {count} differ: {string.Join(", ", wrong.Take(10))}");

        // Unlike GPT-2's original encoder, the tokenizers library matches added tokens in the text.
        Assert.Equal([64, 50256, 65], tokenizer.Encode("a<|endoftext|>b"));
        Assert.DoesNotContain(50256, ByteLevelBpe.Gpt2().Encode("a<|endoftext|>b"));
        Assert.Equal(50257, tokenizer.VocabularySize);
        Assert.Equal(50000, tokenizer.MergeCount);
    }

    [Fact]
    public void Gpt2Directory_LoadsGzippedWithItsConfiguration()
    {
        string json = Gpt2Json();
        File.WriteAllBytes(Path.Combine(_temp, "tokenizer.json.gz"), Gzip(Encoding.UTF8.GetBytes(json)));
        File.WriteAllText(Path.Combine(_temp, "tokenizer_config.json"),
            """{"bos_token": "<|endoftext|>", "eos_token": {"content": "<|endoftext|>", "special": true}, "model_max_length": 1024}""");

        var tokenizer = HuggingFaceTokenizer.Load(_temp);

        Assert.Equal([15496, 995], tokenizer.Encode("Hello world"));
        Assert.Equal(50256, tokenizer.BeginOfText);
        Assert.Equal(50256, tokenizer.EndOfText);
        Assert.True(HuggingFaceTokenizer.IsTokenizerDirectory(_temp));
        var plain = HuggingFaceTokenizer.FromJson(json);
        Assert.Null(plain.BeginOfText);
        Assert.StartsWith(plain.Identity, tokenizer.Identity, StringComparison.Ordinal);
        Assert.NotEqual(plain.Identity, tokenizer.Identity);
        Assert.Matches("^hf:[0-9a-f]{64}$", plain.Identity);
        Assert.NotEqual(plain.Identity, HuggingFaceTokenizer.FromJson(json.Replace("\"Hello\":15496", "\"Hello\": 15496")).Identity);
    }

    // ---- SentencePiece-style BPE with byte fallback (Llama 2, Mistral) ----

    /// <summary>
    /// &lt;unk&gt; 0, &lt;s&gt; 1, &lt;/s&gt; 2, &lt;0x00&gt;..&lt;0xFF&gt; 3..258, then ▁ 259, h 260, e 261, l 262, o 263,
    /// ▁h 264, ll 265, ▁he 266, llo 267, ▁hello 268, w 269, ▁w 270.
    /// </summary>
    private static string[] SentencePieceVocab() =>
    [
        "<unk>", "<s>", "</s>", .. Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>"),
        Spiece, "h", "e", "l", "o", Spiece + "h", "ll", Spiece + "he", "llo", Spiece + "hello", "w", Spiece + "w",
    ];

    private static readonly object[] SentencePieceMerges =
        [new[] { Spiece, "h" }, new[] { "l", "l" }, new[] { Spiece + "h", "e" }, new[] { "ll", "o" }, new[] { Spiece + "he", "llo" }, new[] { Spiece, "w" }];

    private static readonly object[] SentencePieceAdded = [AddedJson(0, "<unk>"), AddedJson(1, "<s>"), AddedJson(2, "</s>")];

    private static HuggingFaceTokenizer Llama2HubStyle(bool byteFallback = true, bool fuseUnk = true) =>
        HuggingFaceTokenizer.FromJson(TokenizerJson(
            Bpe(SentencePieceVocab(), SentencePieceMerges, byteFallback, fuseUnk, unk: "<unk>"),
            normalizer: new
            {
                type = "Sequence",
                normalizers = new object[] { new { type = "Prepend", prepend = Spiece }, new { type = "Replace", pattern = new { String = " " }, content = Spiece } },
            },
            postProcessor: Template("<s>", 1),
            decoder: new
            {
                type = "Sequence",
                decoders = new object[]
                {
                    new { type = "Replace", pattern = new { String = Spiece }, content = " " }, new { type = "ByteFallback" },
                    new { type = "Fuse" }, new { type = "Strip", content = " ", start = 1, stop = 0 },
                },
            },
            added: SentencePieceAdded));

    [Fact]
    public void Llama2HubStyle_MergesByRankAndFallsBackToBytes()
    {
        var tokenizer = Llama2HubStyle();

        // "▁hello": ▁h (rank 0), ll (1), ▁he (2), llo (3), ▁hello (4) = 268. "▁w": rank 5, 270. é is C3 A9: <0xC3> = 198, <0xA9> = 172.
        Assert.Equal([268], tokenizer.Encode("hello"));
        Assert.Equal([1, 268], tokenizer.EncodeWithSpecialTokens("hello"));
        Assert.Equal([268, 270, 198, 172], tokenizer.Encode("hello w\u00e9"));
        Assert.Equal("hello w\u00e9", tokenizer.Decode([268, 270, 198, 172]));
        Assert.Equal("hello", tokenizer.Decode([1, 268], skipSpecialTokens: true));
        Assert.Equal("<s> hello", tokenizer.Decode([1, 268]));
        Assert.Equal("\uFFFD", tokenizer.Decode([198]));
        Assert.Equal([1, 268, 2], tokenizer.Encode("<s>hello</s>"));
        Assert.Equal(1, tokenizer.BeginOfText);
        Assert.Equal(271, tokenizer.VocabularySize);
    }

    [Fact]
    public void Llama2HubStyle_WithoutByteFallback_GivesOneUnknownTokenPerRun_OrOnePerCharacter()
    {
        Assert.Equal([268, 0], Llama2HubStyle(byteFallback: false).Encode("hello\U0001F600\u00e9"));
        Assert.Equal([268, 0, 0], Llama2HubStyle(byteFallback: false, fuseUnk: false).Encode("hello\U0001F600\u00e9"));
        Assert.Equal("hello<unk>", Llama2HubStyle(byteFallback: false).Decode([268, 0]));
    }

    private static HuggingFaceTokenizer MetaspaceStyle(string prependScheme, bool split) =>
        HuggingFaceTokenizer.FromJson(TokenizerJson(
            Bpe(SentencePieceVocab(), SentencePieceMerges, byteFallback: true, fuseUnk: true, unk: "<unk>"),
            preTokenizer: new { type = "Metaspace", replacement = Spiece, prepend_scheme = prependScheme, split },
            postProcessor: Template("<s>", 1),
            decoder: new { type = "Metaspace", replacement = Spiece, prepend_scheme = prependScheme, split },
            added: SentencePieceAdded));

    [Fact]
    public void Metaspace_PrependsFirstOnlyAtTheStartOfTheText_OrAlways()
    {
        var first = MetaspaceStyle("first", split: false);
        var always = MetaspaceStyle("always", split: true);

        Assert.Equal([268], first.Encode("hello"));
        // After <s> the piece does not start the text: no ▁, so "hello" is h, e, llo.
        Assert.Equal([1, 260, 261, 267], first.Encode("<s>hello"));
        Assert.Equal([1, 268], always.Encode("<s>hello"));
        Assert.Equal([Spiece + "hello", Spiece + "hello"], Texts(always, "hello hello"));
        Assert.Equal([Spiece + "hello" + Spiece + "hello"], Texts(first, "hello hello"));
        Assert.Equal([268, 268], first.Encode("hello hello"));
        Assert.Equal("hello hello", first.Decode([268, 268]));
        Assert.Equal(" hello", MetaspaceStyle("never", split: true).Decode([268]));
    }

    // ---- added tokens' options ----

    [Fact]
    public void AddedTokens_HonourLstripRstripAndSingleWord()
    {
        var tokenizer = HuggingFaceTokenizer.FromJson(TokenizerJson(Bpe(["a", "b"], []),
            added: [AddedJson(2, "<mask>", lstrip: true, rstrip: true), AddedJson(3, "ony", special: false, normalized: true, singleWord: true)]));

        Assert.Equal(["a", "[2]", "b"], Texts(tokenizer, "a <mask> b"));
        Assert.Equal(["pony ", "[3]"], Texts(tokenizer, "pony ony"));
        Assert.Equal(["[3]", "x"], Texts(tokenizer, "ony x").Select(t => t.Trim()).ToArray());
        Assert.Equal([new AddedToken(2, "<mask>", true), new AddedToken(3, "ony", false)], tokenizer.AddedTokens);
    }

    [Fact]
    public void AddedTokens_MatchLeftmostThenLongest()
    {
        var tokenizer = HuggingFaceTokenizer.FromJson(TokenizerJson(Bpe(["a"], []),
            added: [AddedJson(1, "<s>"), AddedJson(2, "<s>>"), AddedJson(3, "s>>x")]));

        Assert.Equal(["a", "[2]", "x"], Texts(tokenizer, "a<s>>x"));
    }

    [Fact]
    public void NormalizedAddedTokens_AreMatchedInTheNormalizedText()
    {
        var tokenizer = HuggingFaceTokenizer.FromJson(TokenizerJson(Bpe(["a", "b", Spiece], []),
            normalizer: new { type = "Replace", pattern = new { String = " " }, content = Spiece },
            added: [AddedJson(3, "x y", special: false, normalized: true), AddedJson(4, "p q", special: false, normalized: false)]));

        Assert.Equal(["a" + Spiece, "[3]", "[4]"], Texts(tokenizer, "a x yp q"));
    }

    // ---- Unicode normalization (string.Normalize does nothing under invariant globalization) ----

    [Theory]
    [InlineData("e\u0301", "C", "\u00e9")]
    [InlineData("\u00e9", "D", "e\u0301")]
    [InlineData("A\u030A", "C", "\u00C5")]
    [InlineData("\u212B", "C", "\u00C5")]                 // a singleton decomposition: the Angstrom sign
    [InlineData("\u0958", "C", "\u0915\u093C")]           // excluded from composition
    [InlineData("s\u0307\u0323", "C", "\u1E69")]          // marks reordered (dot below 220 before dot above 230), then composed
    [InlineData("q\u0307\u0323", "C", "q\u0323\u0307")]  // reordered, nothing to compose
    [InlineData("\u1100\u1161\u11A8", "C", "\uAC01")]     // Hangul L V T
    [InlineData("\uAC01", "D", "\u1100\u1161\u11A8")]
    [InlineData("\uFB01 \u00BD", "KC", "fi 1\u20442")]
    [InlineData("\uFB01", "C", "\uFB01")]
    [InlineData("\u1E9B\u0323", "KD", "s\u0323\u0307")]  // long s with dot above, dot below
    [InlineData("plain ASCII", "KC", "plain ASCII")]
    public void UnicodeNormalization_GivesTheNormalForms(string text, string form, string expected)
    {
        var f = form switch { "C" => NormalizationForm.FormC, "D" => NormalizationForm.FormD, "KC" => NormalizationForm.FormKC, _ => NormalizationForm.FormKD };
        Assert.Equal(expected, UnicodeNormalization.Normalize(text, f));
    }

    // ---- pattern translation ----

    private static Exception Fail(string problem) => new InvalidDataException(problem);

    [Theory]
    [InlineData("a++", "(?>a+)")]
    [InlineData(@"[^\s\p{L}]*+x", @"(?>[^\s\p{L}]*)x")]
    [InlineData(@"(ab)?+", @"(?>(ab)?)")]
    [InlineData(@"\p{^L}\P{^N}", @"\P{L}\p{N}")]
    [InlineData(@"\x{41}\x42", @"\u0041\x42")]
    [InlineData(@"(?i:'s|'t)|\p{N}{1,3}", @"(?i:'s|'t)|\p{N}{1,3}")]
    public void Patterns_TranslateToDotNet(string oniguruma, string dotNet) => Assert.Equal(dotNet, HfRegex.Translate(oniguruma, Fail));

    [Theory]
    [InlineData(@"\w+", "'\\w'")]
    [InlineData(@"\bx", "'\\b'")]
    [InlineData(@"\p{Han}", "\\p{Han}")]
    [InlineData("[[:alpha:]]", "nested class")]
    [InlineData("[a-z&&[^b]]", "intersection")]
    [InlineData(@"\h", "'\\h'")]
    [InlineData("(?m:a.)", "group")]
    [InlineData("a{1,3}+", "repetition")]
    [InlineData("(a", "unclosed")]
    public void Patterns_WithConstructsThatDifferAreRefused(string oniguruma, string named)
    {
        var e = Assert.Throws<InvalidDataException>(() => HfRegex.Translate(oniguruma, Fail));
        Assert.Contains(named, e.Message);
    }

    [Fact]
    public void Patterns_MatchOnCodePoints()
    {
        var regex = HfRegex.Create(@"\p{L}+|\p{N}+|[^\p{L}\p{N}]+", Fail);
        const string text = "a\U00020000b \U0001D7D9\U0001D7DA \U0001F600!";

        var pieces = regex.Matches(text).Select(m => text.Substring(m.Start, m.Length)).ToArray();

        Assert.Equal(["a\U00020000b", " ", "\U0001D7D9\U0001D7DA", " \U0001F600!"], pieces);
        Assert.Equal([(3, 2), (8, 2)], HfRegex.Literal("\U0001F600").Matches("ab \U0001F600 c \U0001F600"));
    }

    // ---- bad files ----

    private static string Problem(string json)
    {
        var e = Assert.Throws<DataFormatException>(() => HuggingFaceTokenizer.FromJson(json, "bad/tokenizer.json"));
        Assert.DoesNotContain('\n', e.Message);
        Assert.StartsWith("bad/tokenizer.json: ", e.Message, StringComparison.Ordinal);
        return e.Message;
    }

    private static readonly object SmallModel = Bpe(["a", "b", "ab"], ["a b"]);

    [Fact]
    public void BadFiles_AreRefusedWithTheFileAndWhatIsWrong()
    {
        Assert.Contains("not valid JSON", Problem("{\"model\": "));
        Assert.Contains("the field 'model' is missing", Problem("{\"version\": \"1.0\"}"));
        Assert.Contains("model.type: model type 'WordPiece' is not supported", Problem(
            TokenizerJson(new { type = "WordPiece", unk_token = "[UNK]", continuing_subword_prefix = "##", max_input_chars_per_word = 100, vocab = new { a = 0 } })));
        Assert.Contains("model.merges[1]: merge \"a z\" names \"z\", which is not in model.vocab",
            Problem(TokenizerJson(Bpe(["a", "b", "ab"], ["a b", "a z"]))));
        Assert.Contains("makes \"ba\", which is not in model.vocab", Problem(TokenizerJson(Bpe(["a", "b", "ab"], ["b a"]))));
        Assert.Contains("model.merges[0]: \"a b c\" is not two tokens", Problem(TokenizerJson(Bpe(["a", "b", "ab"], ["a b c"]))));
        Assert.Contains("model.vocab[\"b\"]: duplicate id 0, given to both \"a\" and \"b\"",
            Problem("""{"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}}"""));
        Assert.Contains("model.vocab[\"a\"]: the token appears twice",
            Problem("""{"model": {"type": "BPE", "vocab": {"a": 0, "a": 1}, "merges": []}}"""));
        Assert.Contains("model.vocab[\"a\"]: expected an integer", Problem("""{"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}}"""));
        Assert.Contains("normalizer.type: normalizer type 'Lowercase' is not supported", Problem(TokenizerJson(SmallModel, normalizer: new { type = "Lowercase" })));
        Assert.Contains("normalizer.normalizers[1].type: normalizer type 'Precompiled' is not supported", Problem(TokenizerJson(SmallModel,
            normalizer: new { type = "Sequence", normalizers = new object[] { new { type = "NFC" }, new { type = "Precompiled", precompiled_charsmap = "" } } })));
        Assert.Contains("pre_tokenizer.type: pre-tokenizer type 'Whitespace' is not supported", Problem(TokenizerJson(SmallModel, preTokenizer: new { type = "Whitespace" })));
        Assert.Contains("pre_tokenizer.pattern.Regex: regular expression", Problem(TokenizerJson(SmallModel,
            preTokenizer: new { type = "Split", pattern = new { Regex = @"\w+" }, behavior = "Isolated", invert = false })));
        Assert.Contains("post_processor.type: post-processor type 'BertProcessing' is not supported", Problem(TokenizerJson(SmallModel,
            postProcessor: new { type = "BertProcessing", sep = new object[] { "[SEP]", 1 }, cls = new object[] { "[CLS]", 0 } })));
        Assert.Contains("decoder.type: decoder type 'WordPiece' is not supported", Problem(TokenizerJson(SmallModel, decoder: new { type = "WordPiece", prefix = "##", cleanup = true })));
        Assert.Contains("model.dropout: 0.1 is not supported", Problem(TokenizerJson(new { type = "BPE", dropout = 0.1, vocab = new { a = 0 }, merges = Array.Empty<string>() })));
        Assert.Contains("model.foo: unknown field", Problem(TokenizerJson(new { type = "BPE", foo = 1, vocab = new { a = 0 }, merges = Array.Empty<string>() })));
        Assert.Contains("model.unk_token: \"<unk>\" is not in model.vocab", Problem(TokenizerJson(Bpe(["a"], [], unk: "<unk>"))));
        Assert.Contains("truncation: ", Problem("""{"truncation": {"max_length": 8}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}"""));
        Assert.Contains("added_tokens[0].id: 7, but Hugging Face gives \"<s>\" the id 3", Problem(TokenizerJson(SmallModel, added: [AddedJson(7, "<s>")])));
        Assert.Contains("added_tokens[0].id: 1, but \"a\" is token 0 of model.vocab", Problem(TokenizerJson(SmallModel, added: [AddedJson(1, "a")])));
        Assert.Contains("post_processor.single[0].SpecialToken.id: '<x>' is not among", Problem(TokenizerJson(SmallModel,
            postProcessor: new { type = "TemplateProcessing", single = new object[] { new { SpecialToken = new { id = "<x>", type_id = 0 } }, new { Sequence = new { id = "A", type_id = 0 } } },
                pair = (object?)null, special_tokens = new Dictionary<string, object>() })));
        Assert.Contains("pre_tokenizer.prepend_scheme: unknown prepend_scheme 'sometimes'", Problem(TokenizerJson(SmallModel,
            preTokenizer: new { type = "Metaspace", replacement = Spiece, prepend_scheme = "sometimes", split = true })));
    }

    [Fact]
    public void BadFiles_OnDiskAreNamedByTheirPath()
    {
        string missing = Path.Combine(_temp, "none", "tokenizer.json");
        var e = Assert.Throws<DataFormatException>(() => HuggingFaceTokenizer.Load(missing));
        Assert.Equal(missing, e.Path);

        var noTokenizer = Assert.Throws<DataFormatException>(() => HuggingFaceTokenizer.Load(_temp));
        Assert.Contains("not a Hugging Face tokenizer directory", noTokenizer.Message);

        string file = Path.Combine(_temp, "tokenizer.json");
        File.WriteAllText(file, "[1, 2]");
        var notObject = Assert.Throws<DataFormatException>(() => HuggingFaceTokenizer.Load(file));
        Assert.Equal($"{file}: expected an object, found an array", notObject.Message);

        File.WriteAllBytes(file + ".gz", Gzip(Encoding.UTF8.GetBytes(TokenizerJson(SmallModel)))[..20]);
        File.Delete(file);
        var truncated = Assert.Throws<DataFormatException>(() => HuggingFaceTokenizer.Load(_temp));
        Assert.StartsWith(file + ".gz: ", truncated.Message, StringComparison.Ordinal);

        File.WriteAllBytes(file + ".gz", Gzip(Encoding.UTF8.GetBytes(TokenizerJson(SmallModel))));
        File.WriteAllText(Path.Combine(_temp, "tokenizer_config.json"), """{"eos_token": "</s>"}""");
        var badConfig = Assert.Throws<DataFormatException>(() => HuggingFaceTokenizer.Load(_temp));
        Assert.Contains("tokenizer_config.json: eos_token: \"</s>\" is not a token", badConfig.Message);
    }

    // ---- ITokenizer on GPT-2's own encoder ----

    [Fact]
    public void ByteLevelBpe_IsAnITokenizer()
    {
        ITokenizer tokenizer = ByteLevelBpe.Gpt2();

        Assert.Equal("gpt2", tokenizer.Identity);
        Assert.Equal([15496, 995], tokenizer.EncodeWithSpecialTokens("Hello world"));
        Assert.Equal("Hello world", tokenizer.Decode([15496, 50256, 995], skipSpecialTokens: true));
        Assert.Equal("Hello<|endoftext|> world", tokenizer.Decode([15496, 50256, 995]));
        Assert.Equal([new AddedToken(50256, "<|endoftext|>", true)], tokenizer.AddedTokens);
        Assert.Null(tokenizer.BeginOfText);
        Assert.Equal(50256, tokenizer.EndOfText);
        Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([50257], skipSpecialTokens: true));
    }

    [Fact]
    public void ByteLevelBpe_IdentityIsTheRunsTokenizerIdentity()
    {
        var trainer = new BpeTrainer(300);
        trainer.AddText("the cat sat on the mat, the cat sat on the hat. " + string.Concat(Enumerable.Repeat("that that ", 20)));
        ByteLevelBpe trained = trainer.Train();
        string saved = Path.Combine(_temp, "bpe");
        trainer.Save(saved);
        ByteLevelBpe loaded = ByteLevelBpe.LoadDirectory(saved);

        Assert.Matches("^[0-9a-f]{64}$", trained.Identity);
        Assert.Equal(TokenizerSetup.Identity(saved), trained.Identity);
        Assert.Equal(TokenizerSetup.Identity(saved), loaded.Identity);

        File.WriteAllBytes(Path.Combine(saved, "vocab.bpe.gz"), Gzip(File.ReadAllBytes(Path.Combine(saved, "vocab.bpe"))));
        File.Delete(Path.Combine(saved, "vocab.bpe"));
        Assert.Equal(TokenizerSetup.Identity(saved), ByteLevelBpe.LoadDirectory(saved).Identity);
        Assert.NotEqual(trained.Identity, ByteLevelBpe.LoadDirectory(saved).Identity);
    }

    // ---- helpers ----


    private static byte[] Gunzip(string path)
    {
        using var gzip = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        var output = new MemoryStream();
        gzip.CopyTo(output);
        return output.ToArray();
    }

    private static byte[] Gzip(byte[] bytes)
    {
        var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(bytes);
        }
        return output.ToArray();
    }
}
