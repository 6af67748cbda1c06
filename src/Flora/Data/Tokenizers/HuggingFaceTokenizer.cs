using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Flora.Data.Tokenizers;

/// <summary>
/// A tokenizer read from a Hugging Face <c>tokenizer.json</c> (or <c>tokenizer.json.gz</c>), giving the
/// ids of Hugging Face's <c>tokenizers</c> library exactly, for the byte-pair-encoding families in use:
/// byte-level BPE (GPT-2, Llama 3, Qwen2) and SentencePiece-style BPE with byte fallback (Llama 2,
/// Mistral, TinyLlama).
/// </summary>
/// <remarks>
/// <para>Encoding follows the library's pipeline. Added tokens (<c>added_tokens</c>) are found in the
/// text first, leftmost and longest first (those with <c>normalized: false</c> in the raw text, the others
/// in the normalized pieces between them), honouring <c>single_word</c>, <c>lstrip</c> and <c>rstrip</c>.
/// Each remaining piece is normalized (<c>NFC</c>, <c>NFD</c>, <c>NFKC</c>, <c>NFKD</c>, <c>Prepend</c>,
/// <c>Replace</c>, <c>Sequence</c>), pre-tokenized (<c>ByteLevel</c> with or without GPT-2's pattern,
/// <c>Split</c> with any of its five behaviours, <c>Metaspace</c> with <c>prepend_scheme</c> first, always or
/// never, <c>Sequence</c>), and each piece goes through the <c>BPE</c> model (<c>byte_fallback</c>,
/// <c>fuse_unk</c>, <c>unk_token</c>, <c>ignore_merges</c>, <c>continuing_subword_prefix</c>,
/// <c>end_of_word_suffix</c>; merges as <c>"a b"</c> strings or pairs). <see cref="EncodeWithSpecialTokens"/>
/// then applies the single-text template of a <c>TemplateProcessing</c> post-processor.</para>
/// <para>Decoding maps ids to token strings (added tokens by their content) and runs the decoder
/// (<c>ByteLevel</c>, <c>Replace</c>, <c>ByteFallback</c>, <c>Fuse</c>, <c>Strip</c>, <c>Metaspace</c>,
/// <c>Sequence</c>); without a decoder the tokens are joined with spaces, as the library does.</para>
/// <para>Anything else that would change the output (another model, normalizer, pre-tokenizer, decoder
/// or post-processor, dropout, truncation, padding, an unknown field, a pattern construct whose meaning
/// differs between Oniguruma and .NET) is refused with a <see cref="DataFormatException"/> naming the file
/// and the JSON path. Patterns are matched on code points, as in the Rust library (see <c>HfRegex</c>).</para>
/// <para>The input is a .NET string, which may hold lone surrogates that a Rust string cannot: they are read
/// as U+FFFD. Decoding an id that is not a token throws, where the Rust library skips it.</para>
/// <para>Microsoft.ML.Tokenizers 3.0.0 was measured as a possible engine: its byte-level <c>BpeTokenizer</c>
/// gave GPT-2's ids on all 434 reference strings of the tests, but its BPE has no byte fallback (its
/// SentencePiece tokenizer reads only <c>tokenizer.model</c>), it reads no <c>tokenizer.json</c>, has none of
/// the library's added-token matching, <c>Split</c>/<c>Metaspace</c> steps, templates or decoders, and its
/// pattern pre-tokenizer matches on UTF-16 code units. This class therefore implements the pipeline itself.</para>
/// </remarks>
public sealed class HuggingFaceTokenizer : ITokenizer
{
    /// <summary>The tokenizer file's name in a Hugging Face directory.</summary>
    public const string FileName = "tokenizer.json";

    private readonly HfNormalizer? _normalizer;
    private readonly HfPreTokenizer? _preTokenizer;
    private readonly HfBpeModel _model;
    private readonly HfPostProcessor? _postProcessor;
    private readonly HfDecoder? _decoder;
    private readonly Added[] _added;
    private readonly Dictionary<int, Added> _addedById;
    private readonly Dictionary<string, int> _addedByContent;
    private readonly HashSet<string> _specialContents;
    private readonly Matcher _rawMatcher;
    private readonly Matcher _normalizedMatcher;
    private readonly AddedToken[] _addedTokens;

    private HuggingFaceTokenizer(string source, HfNormalizer? normalizer, HfPreTokenizer? preTokenizer, HfBpeModel model,
        HfPostProcessor? postProcessor, HfDecoder? decoder, Added[] added, string identity)
    {
        Source = source;
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _model = model;
        _postProcessor = postProcessor;
        _decoder = decoder;
        _added = added;
        _addedById = added.ToDictionary(a => a.Id);
        _addedByContent = added.ToDictionary(a => a.Content, a => a.Id, StringComparer.Ordinal);
        _specialContents = added.Where(a => a.Special).Select(a => a.Content).ToHashSet(StringComparer.Ordinal);
        _rawMatcher = new Matcher(added.Where(a => !a.Normalized).Select(a => (a.Content, a)));
        _normalizedMatcher = new Matcher(added.Where(a => a.Normalized).Select(a => (a.Pattern, a)));
        _addedTokens = added.OrderBy(a => a.Id).Select(a => new AddedToken(a.Id, a.Content, a.Special)).ToArray();
        Identity = identity;
        int maxModel = model.Tokens.Count == 0 ? -1 : model.Tokens.Keys.Max();
        int maxAdded = added.Length == 0 ? -1 : added.Max(a => a.Id);
        VocabularySize = Math.Max(maxModel, maxAdded) + 1;
        BeginOfText = SingleId(postProcessor?.Leading);
        EndOfText = SingleId(postProcessor?.Trailing);
    }

    /// <summary>Where the tokenizer was read from (a file, or a name given to <see cref="FromJson"/>).</summary>
    public string Source { get; }

    /// <summary>One more than the largest id of the model's vocabulary and the added tokens.</summary>
    public int VocabularySize { get; }

    /// <inheritdoc/>
    public IReadOnlyList<AddedToken> AddedTokens => _addedTokens;

    /// <summary>
    /// BOS: the token named by <c>bos_token</c> in <c>tokenizer_config.json</c> (or else <c>special_tokens_map.json</c>)
    /// when a directory was loaded and one of them has the key; otherwise the special token the single-text
    /// template starts with, if any.
    /// </summary>
    public int? BeginOfText { get; private init; }

    /// <summary>
    /// EOS: the token named by <c>eos_token</c> in <c>tokenizer_config.json</c> (or else <c>special_tokens_map.json</c>)
    /// when a directory was loaded and one of them has the key; otherwise the special token the single-text
    /// template ends with, if any.
    /// </summary>
    public int? EndOfText { get; private init; }

    /// <summary>
    /// "hf:" and the SHA-256 (lower-case hex) of the <c>tokenizer.json</c> text (decompressed), followed, when a
    /// directory's configuration named them, by the BOS and EOS ids.
    /// </summary>
    public string Identity { get; private init; }

    /// <summary>The number of merges of the BPE model.</summary>
    public int MergeCount => _model.MergeCount;

    /// <summary>
    /// Loads a tokenizer: <paramref name="path"/> is a <c>tokenizer.json</c> file (or <c>tokenizer.json.gz</c>), or a
    /// Hugging Face directory holding one, whose <c>tokenizer_config.json</c> (or <c>special_tokens_map.json</c>) then
    /// names BOS and EOS.
    /// </summary>
    /// <exception cref="DataFormatException">A file is missing, unreadable or malformed, or uses what is not supported.</exception>
    public static HuggingFaceTokenizer Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path))
        {
            return LoadDirectory(path);
        }
        return Parse(BpeFiles.ReadFile(path), path);
    }

    /// <summary>Whether a directory holds a <c>tokenizer.json</c> (or <c>tokenizer.json.gz</c>).</summary>
    public static bool IsTokenizerDirectory(string directory) =>
        File.Exists(Path.Combine(directory, FileName)) || File.Exists(Path.Combine(directory, FileName + ".gz"));

    private static HuggingFaceTokenizer LoadDirectory(string directory)
    {
        string file = Path.Combine(directory, FileName);
        if (!File.Exists(file) && File.Exists(file + ".gz"))
        {
            file += ".gz";
        }
        if (!File.Exists(file))
        {
            throw new DataFormatException(Path.Combine(directory, FileName), "file not found (nor tokenizer.json.gz): not a Hugging Face tokenizer directory");
        }
        return Parse(BpeFiles.ReadFile(file), file).WithConfiguration(directory);
    }

    /// <summary>Reads a tokenizer from the text of a <c>tokenizer.json</c>; <paramref name="name"/> stands for the file in messages.</summary>
    /// <exception cref="DataFormatException">The text is malformed or uses what is not supported.</exception>
    public static HuggingFaceTokenizer FromJson(string json, string name = FileName)
    {
        ArgumentNullException.ThrowIfNull(json);
        return Parse(Encoding.UTF8.GetBytes(json), name);
    }

    private static HuggingFaceTokenizer Parse(byte[] bytes, string file)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new DataFormatException(file, $"not valid JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}): {FirstLine(e.Message)}");
        }
        using (document)
        {
            HfJson root = HfJson.Object(file, "", document.RootElement, "version", "truncation", "padding", "added_tokens",
                "normalizer", "pre_tokenizer", "model", "post_processor", "decoder");
            string? version = root.StringOrNull("version");
            if (version is not null and not "1.0")
            {
                throw root.Fail("version", $"'{version}' is not supported (1.0)");
            }
            root.Refuse("truncation", "truncation changes the ids");
            root.Refuse("padding", "padding changes the ids");
            if (!root.Has("model"))
            {
                throw root.Fail("the field 'model' is missing: a tokenizer.json needs a model");
            }
            HfNormalizer? normalizer = HfNormalizer.Parse(root, "normalizer", root.Optional("normalizer") ?? HfJson.NullElement);
            HfPreTokenizer? preTokenizer = HfPreTokenizer.Parse(root, "pre_tokenizer", root.Optional("pre_tokenizer") ?? HfJson.NullElement);
            HfBpeModel model = HfBpeModel.Parse(root, root.Required("model"));
            HfPostProcessor? postProcessor = HfPostProcessor.Parse(root, "post_processor", root.Optional("post_processor") ?? HfJson.NullElement);
            HfDecoder? decoder = HfDecoder.Parse(root, "decoder", root.Optional("decoder") ?? HfJson.NullElement);
            Added[] added = ParseAdded(root, model, normalizer);
            int vocabularySize = Math.Max(model.Tokens.Count == 0 ? 0 : model.Tokens.Keys.Max() + 1, added.Length == 0 ? 0 : added.Max(a => a.Id) + 1);
            if (postProcessor is not null)
            {
                CheckTemplateIds(root, postProcessor, vocabularySize);
            }
            string identity = "hf:" + Convert.ToHexStringLower(SHA256.HashData(bytes));
            return new HuggingFaceTokenizer(file, normalizer, preTokenizer, model, postProcessor, decoder, added, identity);
        }
    }

    private static string FirstLine(string message)
    {
        int end = message.IndexOfAny(['\r', '\n']);
        return end < 0 ? message : message[..end];
    }

    private static void CheckTemplateIds(HfJson root, HfPostProcessor processor, int vocabularySize)
    {
        foreach (int id in processor.Apply([]))
        {
            if (id >= vocabularySize)
            {
                throw root.Fail("post_processor", $"the template adds id {id}, outside the vocabulary of {vocabularySize} tokens");
            }
        }
    }

    /// <summary>
    /// Reads <c>added_tokens</c>. Each token keeps the id the Rust library gives it on loading (its model id when its
    /// content is a model token, otherwise the next id after the model's), which must be the id the file states.
    /// </summary>
    private static Added[] ParseAdded(HfJson root, HfBpeModel model, HfNormalizer? normalizer)
    {
        var result = new List<Added>();
        if (root.IsNull("added_tokens"))
        {
            return [];
        }
        var byContent = new Dictionary<string, int>(StringComparer.Ordinal);
        var byId = new Dictionary<int, string>();
        int nextId = model.Tokens.Count;
        int n = 0;
        foreach (JsonElement item in root.Array("added_tokens").EnumerateArray())
        {
            string at = $"added_tokens[{n++}]";
            HfJson j = root.ChildAt(at, item, "id", "content", "single_word", "lstrip", "rstrip", "normalized", "special");
            int id = j.Int("id");
            string content = j.String("content");
            if (content.Length == 0)
            {
                throw j.Fail(j.PathOf("content"), "an added token cannot be empty");
            }
            if (!byContent.TryAdd(content, id))
            {
                throw j.Fail(j.PathOf("content"), $"{BpeFiles.Show(content)} is added twice");
            }
            int? inModel = model.TokenId(content);
            int expected = inModel ?? nextId++;
            if (id != expected)
            {
                throw j.Fail(j.PathOf("id"), inModel is not null
                    ? $"{id}, but {BpeFiles.Show(content)} is token {expected} of model.vocab"
                    : $"{id}, but Hugging Face gives {BpeFiles.Show(content)} the id {expected} (the next one after model.vocab and the added tokens before it)");
            }
            if (!byId.TryAdd(id, content))
            {
                throw j.Fail(j.PathOf("id"), $"duplicate id {id}, given to both {BpeFiles.Show(byId[id])} and {BpeFiles.Show(content)}");
            }
            bool normalized = j.Bool("normalized", true);
            string pattern = normalized && normalizer is not null ? normalizer.Normalize(content) : content;
            result.Add(new Added(id, content, pattern, j.Bool("special", false), normalized,
                j.Bool("single_word", false), j.Bool("lstrip", false), j.Bool("rstrip", false)));
        }
        return result.ToArray();
    }

    /// <summary>
    /// Takes BOS and EOS from the directory's <c>tokenizer_config.json</c>, then <c>special_tokens_map.json</c> for a key
    /// the first does not have; a key neither has keeps the template's token.
    /// </summary>
    private HuggingFaceTokenizer WithConfiguration(string directory)
    {
        int? bos = BeginOfText, eos = EndOfText;
        bool foundBos = false, foundEos = false, any = false;
        foreach (string name in new[] { "tokenizer_config.json", "special_tokens_map.json" })
        {
            string file = Path.Combine(directory, name);
            if (!File.Exists(file))
            {
                continue;
            }
            any = true;
            byte[] bytes = BpeFiles.ReadFile(file);
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(bytes);
            }
            catch (JsonException e)
            {
                throw new DataFormatException(file, $"not valid JSON (line {e.LineNumber + 1}): {FirstLine(e.Message)}");
            }
            using (document)
            {
                if (document.RootElement.ValueKind != JsonValueKind.Object)
                {
                    throw new DataFormatException(file, "expected a JSON object");
                }
                if (!foundBos)
                {
                    (foundBos, bos) = ConfiguredToken(file, document.RootElement, "bos_token", bos);
                }
                if (!foundEos)
                {
                    (foundEos, eos) = ConfiguredToken(file, document.RootElement, "eos_token", eos);
                }
            }
        }
        if (!any)
        {
            return this;
        }
        string identity = Identity + string.Create(CultureInfo.InvariantCulture,
            $"+bos={bos?.ToString(CultureInfo.InvariantCulture) ?? "none"}+eos={eos?.ToString(CultureInfo.InvariantCulture) ?? "none"}");
        return new HuggingFaceTokenizer(Source, _normalizer, _preTokenizer, _model, _postProcessor, _decoder, _added, identity)
        {
            BeginOfText = bos,
            EndOfText = eos,
        };
    }

    /// <summary>The token a configuration names under <paramref name="key"/> (null when it says null), or (false, <paramref name="fallback"/>) when it says nothing.</summary>
    private (bool Found, int? Id) ConfiguredToken(string file, JsonElement root, string key, int? fallback)
    {
        if (!root.TryGetProperty(key, out JsonElement value))
        {
            return (false, fallback);
        }
        if (value.ValueKind == JsonValueKind.Null)
        {
            return (true, null);
        }
        string? content = value.ValueKind switch
        {
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Object when value.TryGetProperty("content", out JsonElement c) && c.ValueKind == JsonValueKind.String => c.GetString(),
            _ => null,
        };
        if (content is null)
        {
            throw new DataFormatException(file, $"{key}: expected a token (a string or an object with 'content'), found {HfJson.Kind(value)}");
        }
        return (true, TokenId(content) ?? throw new DataFormatException(file, $"{key}: {BpeFiles.Show(content)} is not a token of {Source}"));
    }

    private static int? SingleId(int[]? ids) => ids is { Length: 1 } ? ids[0] : null;

    // ---- encoding ----

    /// <inheritdoc/>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return EncodeCore(text).ToArray();
    }

    /// <inheritdoc/>
    public int[] EncodeWithSpecialTokens(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        List<int> ids = EncodeCore(text);
        return _postProcessor is null ? ids.ToArray() : _postProcessor.Apply(ids);
    }

    /// <summary>The pieces a text becomes before the model: added tokens and pre-tokenized text (for tests and diagnostics).</summary>
    internal List<HfPiece> PreTokenize(string text)
    {
        text = ReplaceLoneSurrogates(text);
        var pieces = new List<HfPiece>();
        foreach (HfPiece raw in _rawMatcher.Split(text, atStart: true))
        {
            if (raw.IsToken)
            {
                pieces.Add(raw);
                continue;
            }
            string normalized = _normalizer is null ? raw.Text : _normalizer.Normalize(raw.Text);
            foreach (HfPiece piece in _normalizedMatcher.Split(normalized, raw.AtStart))
            {
                if (piece.Text.Length > 0)
                {
                    pieces.Add(piece);
                }
            }
        }
        _preTokenizer?.PreTokenize(pieces);
        return pieces;
    }

    private List<int> EncodeCore(string text)
    {
        var ids = new List<int>(text.Length / 3 + 4);
        foreach (HfPiece piece in PreTokenize(text))
        {
            if (piece.IsToken)
            {
                ids.Add(piece.TokenId);
            }
            else
            {
                _model.Tokenize(piece.Text, ids);
            }
        }
        return ids;
    }

    private static string ReplaceLoneSurrogates(string text)
    {
        int first = text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF');
        if (first < 0)
        {
            return text;
        }
        var chars = text.ToCharArray();
        for (int i = first; i < chars.Length; i++)
        {
            if (char.IsHighSurrogate(chars[i]) && i + 1 < chars.Length && char.IsLowSurrogate(chars[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(chars[i]))
            {
                chars[i] = '\uFFFD';
            }
        }
        return new string(chars);
    }

    // ---- decoding and lookup ----

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids) => Decode(ids, skipSpecialTokens: false);

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens)
    {
        var tokens = new List<string>(ids.Length);
        foreach (int id in ids)
        {
            string token = DecodingString(id);
            if (!skipSpecialTokens || !_specialContents.Contains(token))
            {
                tokens.Add(token);
            }
        }
        return _decoder is null ? string.Join(' ', tokens) : string.Concat(_decoder.DecodeChain(tokens));
    }

    /// <summary>The string the decoder gets for an id: an added token's normalized form, or the model's token.</summary>
    private string DecodingString(int id) =>
        _addedById.TryGetValue(id, out Added? added) ? added.Pattern
        : _model.Tokens.TryGetValue(id, out string? token) ? token
        : throw new ArgumentOutOfRangeException(nameof(id), id, $"token id {id} is not a token of {Source}");

    /// <inheritdoc/>
    public int? TokenId(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return _addedByContent.TryGetValue(token, out int id) ? id : _model.TokenId(token);
    }

    /// <inheritdoc/>
    public string TokenString(int id) =>
        _addedById.TryGetValue(id, out Added? added) ? added.Content
        : _model.Tokens.TryGetValue(id, out string? token) ? token
        : throw new ArgumentOutOfRangeException(nameof(id), id, $"token id {id} is not a token of {Source}");

    /// <summary>An added token with its matching options; <see cref="Pattern"/> is what is searched for (normalized when <see cref="Normalized"/>).</summary>
    private sealed record Added(int Id, string Content, string Pattern, bool Special, bool Normalized, bool SingleWord, bool LStrip, bool RStrip);

    /// <summary>
    /// Finds added tokens in a text as the Rust library's Aho-Corasick automaton does (leftmost, then longest,
    /// not overlapping), then applies each token's <c>single_word</c>, <c>lstrip</c> and <c>rstrip</c>.
    /// </summary>
    private sealed class Matcher
    {
        private readonly Dictionary<char, (string Pattern, Added Token)[]> _byFirst;

        public Matcher(IEnumerable<(string Pattern, Added Token)> tokens) =>
            _byFirst = tokens.Where(t => t.Pattern.Length > 0)
                .GroupBy(t => t.Pattern[0])
                .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Pattern.Length).ToArray());

        /// <summary>The text as pieces: text between tokens (possibly empty) and tokens.</summary>
        public List<HfPiece> Split(string text, bool atStart)
        {
            var pieces = new List<HfPiece>();
            if (_byFirst.Count == 0 || text.Length == 0)
            {
                pieces.Add(new HfPiece(text, atStart));
                return pieces;
            }
            int startOffset = 0;
            int position = 0;
            while (position < text.Length)
            {
                var (at, pattern, token) = FindNext(text, position);
                if (token is null)
                {
                    break;
                }
                int start = at, stop = at + pattern.Length;
                position = stop;
                if (token.SingleWord)
                {
                    bool spaceBefore = start == 0 || !EndsWithWord(text.AsSpan(0, start));
                    bool spaceAfter = stop == text.Length || !StartsWithWord(text.AsSpan(stop));
                    if (!spaceBefore || !spaceAfter)
                    {
                        continue;
                    }
                }
                if (token.LStrip)
                {
                    int newStart = start;
                    while (newStart > 0 && IsSpace(text[newStart - 1]))
                    {
                        newStart--;
                    }
                    start = Math.Max(newStart, startOffset);
                }
                if (token.RStrip)
                {
                    while (stop < text.Length && IsSpace(text[stop]))
                    {
                        stop++;
                    }
                }
                if (startOffset < start)
                {
                    pieces.Add(new HfPiece(text[startOffset..start], atStart && startOffset == 0));
                }
                pieces.Add(new HfPiece(text[start..stop], false, token.Id));
                startOffset = stop;
            }
            if (startOffset != text.Length)
            {
                pieces.Add(new HfPiece(text[startOffset..], atStart && startOffset == 0));
            }
            return pieces;
        }

        private (int At, string Pattern, Added? Token) FindNext(string text, int from)
        {
            for (int i = from; i < text.Length; i++)
            {
                if (_byFirst.TryGetValue(text[i], out var candidates))
                {
                    foreach (var candidate in candidates)
                    {
                        if (text.AsSpan(i).StartsWith(candidate.Pattern, StringComparison.Ordinal))
                        {
                            return (i, candidate.Pattern, candidate.Token);
                        }
                    }
                }
            }
            return (-1, "", null);
        }

        /// <summary>Rust's regex <c>\s</c>: Unicode White_Space, the same set as .NET's regex <c>\s</c>.</summary>
        private static bool IsSpace(char c) =>
            c is >= '\t' and <= '\r' or '\u0085' || char.GetUnicodeCategory(c) is UnicodeCategory.SpaceSeparator
                or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator;

        private static bool EndsWithWord(ReadOnlySpan<char> text)
        {
            if (text.IsEmpty)
            {
                return false;
            }
            int last = text.Length - 1;
            int codePoint = char.IsLowSurrogate(text[last]) && last > 0 && char.IsHighSurrogate(text[last - 1])
                ? char.ConvertToUtf32(text[last - 1], text[last]) : text[last];
            return IsWordCharacter(codePoint);
        }

        private static bool StartsWithWord(ReadOnlySpan<char> text) =>
            !text.IsEmpty && IsWordCharacter(text.Length > 1 && char.IsSurrogatePair(text[0], text[1])
                ? char.ConvertToUtf32(text[0], text[1]) : text[0]);

        /// <summary>Rust's regex <c>\w</c>: letters, marks, decimal digits, letter numbers, connector punctuation, joiners.</summary>
        private static bool IsWordCharacter(int codePoint) =>
            codePoint is 0x200C or 0x200D || CharUnicodeInfo.GetUnicodeCategory(codePoint) is
                UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.NonSpacingMark
                or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark or UnicodeCategory.DecimalDigitNumber
                or UnicodeCategory.LetterNumber or UnicodeCategory.ConnectorPunctuation;
    }
}
