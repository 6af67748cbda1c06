using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Flora.Data.Tokenizers;

/// <summary>
/// A piece of the text on its way to the model: either an added token already recognised
/// (<see cref="TokenId"/> &gt;= 0) or text still to be split and tokenized. <see cref="AtStart"/> tells
/// whether it starts at the beginning of the original text (Metaspace's <c>prepend_scheme: first</c>).
/// </summary>
internal readonly record struct HfPiece(string Text, bool AtStart, int TokenId = -1)
{
    public bool IsToken => TokenId >= 0;
}

/// <summary>How a split pattern's matches become pieces (Hugging Face's <c>SplitDelimiterBehavior</c>).</summary>
internal enum HfSplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

/// <summary>A normalizer of a <c>tokenizer.json</c>: text in, text out.</summary>
internal abstract class HfNormalizer
{
    public abstract string Normalize(string text);

    /// <summary>Reads <c>normalizer</c> (an object or null).</summary>
    public static HfNormalizer? Parse(HfJson root, string path, JsonElement element)
    {
        if (element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        HfJson type = root.ChildAt(path, element);
        string kind = type.Type();
        switch (kind)
        {
            case "NFC" or "NFD" or "NFKC" or "NFKD":
                root.ChildAt(path, element, "type");
                return new UnicodeForm(kind switch
                {
                    "NFC" => NormalizationForm.FormC,
                    "NFD" => NormalizationForm.FormD,
                    "NFKC" => NormalizationForm.FormKC,
                    _ => NormalizationForm.FormKD,
                });
            case "Prepend":
                return new Prepend(root.ChildAt(path, element, "type", "prepend").String("prepend"));
            case "Replace":
                {
                    HfJson j = root.ChildAt(path, element, "type", "pattern", "content");
                    return new Replace(HfPattern.Parse(j, "pattern"), j.String("content"));
                }
            case "Sequence":
                {
                    HfJson j = root.ChildAt(path, element, "type", "normalizers");
                    return new Sequence(j.Items("normalizers", (at, item) => Parse(root, at, item), "a normalizer"));
                }
            default:
                throw root.Fail(type.PathOf("type"), $"normalizer type '{kind}' is not supported (supported: NFC, NFD, NFKC, NFKD, Prepend, Replace, Sequence)");
        }
    }

    private sealed class UnicodeForm(NormalizationForm form) : HfNormalizer
    {
        // string.Normalize does nothing under invariant globalization, which the library runs with.
        public override string Normalize(string text) => UnicodeNormalization.Normalize(text, form);
    }

    private sealed class Prepend(string prefix) : HfNormalizer
    {
        public override string Normalize(string text) => text.Length == 0 ? text : prefix + text;
    }

    private sealed class Replace(HfRegex pattern, string content) : HfNormalizer
    {
        public override string Normalize(string text) => HfPattern.ReplaceAll(pattern, text, content);
    }

    private sealed class Sequence(List<HfNormalizer> items) : HfNormalizer
    {
        public override string Normalize(string text)
        {
            foreach (HfNormalizer item in items)
            {
                text = item.Normalize(text);
            }
            return text;
        }
    }
}

/// <summary>Patterns (<c>{"String": ...}</c> or <c>{"Regex": ...}</c>) and splitting by them.</summary>
internal static class HfPattern
{
    /// <summary>Reads a pattern field.</summary>
    public static HfRegex Parse(HfJson parent, string key)
    {
        HfJson j = parent.Child(key);
        if (j.Has("String") && !j.Has("Regex"))
        {
            parent.Child(key, "String");
            return HfRegex.Literal(j.String("String"));
        }
        if (j.Has("Regex") && !j.Has("String"))
        {
            parent.Child(key, "Regex");
            string at = j.PathOf("Regex");
            return HfRegex.Create(j.String("Regex"), problem => j.Fail(at, problem));
        }
        throw j.Fail("expected {\"String\": ...} or {\"Regex\": ...}");
    }

    /// <summary>Every match replaced by <paramref name="content"/>.</summary>
    public static string ReplaceAll(HfRegex pattern, string text, string content)
    {
        var matches = pattern.Matches(text);
        if (matches.Count == 0)
        {
            return text;
        }
        var result = new StringBuilder(text.Length);
        int previous = 0;
        foreach (var (start, length) in matches)
        {
            result.Append(text, previous, start - previous).Append(content);
            previous = start + length;
        }
        return result.Append(text, previous, text.Length - previous).ToString();
    }

    /// <summary>The text cut into (start, end, isMatch) spans covering it, as Hugging Face's <c>find_matches</c>.</summary>
    public static List<(int Start, int End, bool Match)> FindMatches(HfRegex pattern, string text)
    {
        var spans = new List<(int, int, bool)>();
        if (text.Length == 0)
        {
            spans.Add((0, 0, false));
            return spans;
        }
        int previous = 0;
        foreach (var (start, length) in pattern.Matches(text))
        {
            if (previous != start)
            {
                spans.Add((previous, start, false));
            }
            spans.Add((start, start + length, true));
            previous = start + length;
        }
        if (previous != text.Length)
        {
            spans.Add((previous, text.Length, false));
        }
        return spans;
    }

    /// <summary>Splits a text by matched spans with one of the five behaviours; empty pieces are dropped later.</summary>
    public static List<(int Start, int End)> Split(List<(int Start, int End, bool Match)> spans, HfSplitBehavior behavior)
    {
        var result = new List<(int Start, int End)>();
        switch (behavior)
        {
            case HfSplitBehavior.Isolated:
                result.AddRange(spans.Select(s => (s.Start, s.End)));
                break;
            case HfSplitBehavior.Removed:
                result.AddRange(spans.Where(s => !s.Match).Select(s => (s.Start, s.End)));
                break;
            case HfSplitBehavior.Contiguous:
                {
                    bool previousMatch = false;
                    foreach (var s in spans)
                    {
                        if (s.Match == previousMatch && result.Count > 0)
                        {
                            result[^1] = (result[^1].Start, s.End);
                        }
                        else
                        {
                            result.Add((s.Start, s.End));
                        }
                        previousMatch = s.Match;
                    }
                    break;
                }
            case HfSplitBehavior.MergedWithPrevious:
                {
                    bool previousMatch = false;
                    foreach (var s in spans)
                    {
                        if (s.Match && !previousMatch && result.Count > 0)
                        {
                            result[^1] = (result[^1].Start, s.End);
                        }
                        else
                        {
                            result.Add((s.Start, s.End));
                        }
                        previousMatch = s.Match;
                    }
                    break;
                }
            case HfSplitBehavior.MergedWithNext:
                {
                    bool previousMatch = false;
                    for (int k = spans.Count - 1; k >= 0; k--)
                    {
                        var s = spans[k];
                        if (s.Match && !previousMatch && result.Count > 0)
                        {
                            result[^1] = (s.Start, result[^1].End);
                        }
                        else
                        {
                            result.Add((s.Start, s.End));
                        }
                        previousMatch = s.Match;
                    }
                    result.Reverse();
                    break;
                }
        }
        return result;
    }
}

/// <summary>A pre-tokenizer of a <c>tokenizer.json</c>: cuts the text pieces into smaller ones (and may rewrite them).</summary>
internal abstract class HfPreTokenizer
{
    /// <summary>Replaces each text piece of <paramref name="pieces"/> by its sub-pieces; token pieces stay.</summary>
    public abstract void PreTokenize(List<HfPiece> pieces);

    /// <summary>Applies <paramref name="split"/> to every text piece, dropping empty results.</summary>
    protected static void SplitEach(List<HfPiece> pieces, Func<HfPiece, IEnumerable<HfPiece>> split)
    {
        var result = new List<HfPiece>(pieces.Count * 2);
        foreach (HfPiece piece in pieces)
        {
            if (piece.IsToken)
            {
                result.Add(piece);
                continue;
            }
            foreach (HfPiece sub in split(piece))
            {
                if (sub.Text.Length > 0)
                {
                    result.Add(sub);
                }
            }
        }
        pieces.Clear();
        pieces.AddRange(result);
    }

    /// <summary>The sub-pieces of a piece at the given spans.</summary>
    protected static IEnumerable<HfPiece> Cut(HfPiece piece, List<(int Start, int End)> spans) =>
        spans.Select(s => new HfPiece(piece.Text[s.Start..s.End], piece.AtStart && s.Start == 0));

    /// <summary>Reads <c>pre_tokenizer</c> (an object or null).</summary>
    public static HfPreTokenizer? Parse(HfJson root, string path, JsonElement element)
    {
        if (element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        HfJson type = root.ChildAt(path, element);
        string kind = type.Type();
        switch (kind)
        {
            case "ByteLevel":
                {
                    HfJson j = root.ChildAt(path, element, "type", "add_prefix_space", "trim_offsets", "use_regex");
                    return new ByteLevel(j.Bool("add_prefix_space", true), j.Bool("use_regex", true));
                }
            case "Split":
                {
                    HfJson j = root.ChildAt(path, element, "type", "pattern", "behavior", "invert");
                    return new Split(HfPattern.Parse(j, "pattern"), ParseBehavior(j), j.Bool("invert", false));
                }
            case "Metaspace":
                {
                    HfJson j = root.ChildAt(path, element, "type", "replacement", "add_prefix_space", "prepend_scheme", "split", "str_rep");
                    return new Metaspace(j.Char("replacement"), ParsePrependScheme(j), j.Bool("split", true));
                }
            case "Sequence":
                {
                    HfJson j = root.ChildAt(path, element, "type", "pretokenizers");
                    return new Sequence(j.Items("pretokenizers", (at, item) => Parse(root, at, item), "a pre-tokenizer"));
                }
            default:
                throw root.Fail(type.PathOf("type"), $"pre-tokenizer type '{kind}' is not supported (supported: ByteLevel, Split, Metaspace, Sequence)");
        }
    }

    private static HfSplitBehavior ParseBehavior(HfJson j)
    {
        string behavior = j.String("behavior");
        return behavior switch
        {
            "Removed" => HfSplitBehavior.Removed,
            "Isolated" => HfSplitBehavior.Isolated,
            "MergedWithPrevious" => HfSplitBehavior.MergedWithPrevious,
            "MergedWithNext" => HfSplitBehavior.MergedWithNext,
            "Contiguous" => HfSplitBehavior.Contiguous,
            _ => throw j.Fail(j.PathOf("behavior"), $"unknown behavior '{behavior}' (Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)"),
        };
    }

    /// <summary>
    /// Metaspace's <c>prepend_scheme</c> (default <c>always</c>); the old <c>add_prefix_space: false</c> must come
    /// with <c>never</c>, as Hugging Face requires.
    /// </summary>
    internal static string ParsePrependScheme(HfJson j)
    {
        string scheme = j.StringOrNull("prepend_scheme") ?? "always";
        if (scheme is not ("first" or "always" or "never"))
        {
            throw j.Fail(j.PathOf("prepend_scheme"), $"unknown prepend_scheme '{scheme}' (first, always or never)");
        }
        if (!j.Bool("add_prefix_space", true))
        {
            if (scheme != "never")
            {
                throw j.Fail(j.PathOf("add_prefix_space"), $"false does not match prepend_scheme '{scheme}'");
            }
            scheme = "never";
        }
        return scheme;
    }

    /// <summary>GPT-2's byte-level step: an optional leading space, GPT-2's pattern, then bytes as characters.</summary>
    private sealed class ByteLevel(bool addPrefixSpace, bool useRegex) : HfPreTokenizer
    {
        public override void PreTokenize(List<HfPiece> pieces)
        {
            SplitEach(pieces, piece =>
            {
                if (addPrefixSpace && !piece.Text.StartsWith(' '))
                {
                    piece = piece with { Text = " " + piece.Text };
                }
                if (!useRegex)
                {
                    return [piece];
                }
                var spans = new List<(int, int)>();
                foreach (var m in Gpt2PreTokenizer.Pattern.EnumerateMatches(piece.Text))
                {
                    spans.Add((m.Index, m.Index + m.Length));
                }
                return Cut(piece, spans);
            });
            for (int i = 0; i < pieces.Count; i++)
            {
                if (!pieces[i].IsToken)
                {
                    pieces[i] = pieces[i] with { Text = ByteLevelAlphabet.Encode(Encoding.UTF8.GetBytes(pieces[i].Text)) };
                }
            }
        }
    }

    private sealed class Split(HfRegex pattern, HfSplitBehavior behavior, bool invert) : HfPreTokenizer
    {
        public override void PreTokenize(List<HfPiece> pieces) => SplitEach(pieces, piece =>
        {
            var spans = HfPattern.FindMatches(pattern, piece.Text);
            if (invert)
            {
                spans = spans.Select(s => (s.Start, s.End, !s.Match)).ToList();
            }
            return Cut(piece, HfPattern.Split(spans, behavior));
        });
    }

    private sealed class Metaspace(string replacement, string prependScheme, bool split) : HfPreTokenizer
    {
        public override void PreTokenize(List<HfPiece> pieces) => SplitEach(pieces, piece =>
        {
            string text = piece.Text.Replace(" ", replacement, StringComparison.Ordinal);
            bool prepend = prependScheme == "always" || (prependScheme == "first" && piece.AtStart);
            if (prepend && !text.StartsWith(replacement, StringComparison.Ordinal))
            {
                text = replacement + text;
            }
            piece = piece with { Text = text };
            if (!split)
            {
                return [piece];
            }
            // Each replacement character starts a new piece (a split on it, merged with what follows).
            var spans = new List<(int Start, int End, bool Match)>();
            int last = 0;
            for (int i = text.IndexOf(replacement, StringComparison.Ordinal); i >= 0;
                 i = text.IndexOf(replacement, i + replacement.Length, StringComparison.Ordinal))
            {
                if (last < i)
                {
                    spans.Add((last, i, false));
                }
                spans.Add((i, i + replacement.Length, true));
                last = i + replacement.Length;
            }
            if (last < text.Length)
            {
                spans.Add((last, text.Length, false));
            }
            return Cut(piece, HfPattern.Split(spans, HfSplitBehavior.MergedWithNext));
        });
    }

    private sealed class Sequence(List<HfPreTokenizer> items) : HfPreTokenizer
    {
        public override void PreTokenize(List<HfPiece> pieces)
        {
            foreach (HfPreTokenizer item in items)
            {
                item.PreTokenize(pieces);
            }
        }
    }
}

/// <summary>
/// The post-processor's effect on the ids of a single text: the tokens a <c>TemplateProcessing</c>
/// puts around it (<c>ByteLevel</c> post-processing changes only offsets, so it is accepted and does nothing).
/// </summary>
internal sealed class HfPostProcessor
{
    private readonly List<int[]?> _single; // null: the text's ids ($A); otherwise special-token ids

    private HfPostProcessor(List<int[]?> single) => _single = single;

    /// <summary>The ids of the special token the single template starts with, if it starts with one.</summary>
    public int[]? Leading => _single.Count > 0 ? _single[0] : null;

    /// <summary>The ids of the special token the single template ends with, if it ends with one.</summary>
    public int[]? Trailing => _single.Count > 0 ? _single[^1] : null;

    /// <summary>The ids with the template's tokens around them.</summary>
    public int[] Apply(List<int> ids)
    {
        var result = new List<int>(ids.Count + 4);
        foreach (int[]? part in _single)
        {
            result.AddRange(part ?? (IEnumerable<int>)ids);
        }
        return result.ToArray();
    }

    /// <summary>Reads <c>post_processor</c>; null when it adds nothing.</summary>
    public static HfPostProcessor? Parse(HfJson root, string path, JsonElement element)
    {
        if (element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        HfJson type = root.ChildAt(path, element);
        string kind = type.Type();
        switch (kind)
        {
            case "ByteLevel":
                root.ChildAt(path, element, "type", "add_prefix_space", "trim_offsets", "use_regex");
                return null;
            case "TemplateProcessing":
                return ParseTemplate(root.ChildAt(path, element, "type", "single", "pair", "special_tokens"));
            case "Sequence":
                {
                    HfJson j = root.ChildAt(path, element, "type", "processors");
                    HfPostProcessor? found = null;
                    int n = 0;
                    foreach (JsonElement item in j.Array("processors").EnumerateArray())
                    {
                        string at = $"{j.PathOf("processors")}[{n++}]";
                        HfPostProcessor? p = Parse(root, at, item);
                        if (p is not null)
                        {
                            found = found is null ? p : throw root.Fail(at, "a second TemplateProcessing in one Sequence is not supported");
                        }
                    }
                    return found;
                }
            default:
                throw root.Fail(type.PathOf("type"), $"post-processor type '{kind}' is not supported (supported: TemplateProcessing, ByteLevel, Sequence)");
        }
    }

    private static HfPostProcessor ParseTemplate(HfJson j)
    {
        HfJson specials = j.Child("special_tokens");
        var specialIds = new Dictionary<string, int[]>(StringComparer.Ordinal);
        foreach (JsonProperty property in j.Required("special_tokens").EnumerateObject())
        {
            HfJson token = j.ChildAt(specials.PathOf(property.Name), property.Value, "id", "ids", "tokens");
            var ids = new List<int>();
            int n = 0;
            foreach (JsonElement id in token.Array("ids").EnumerateArray())
            {
                ids.Add(token.Int(id, $"{token.PathOf("ids")}[{n++}]"));
            }
            specialIds[property.Name] = ids.ToArray();
        }
        // The pair template matters only for two texts, which this library never encodes together; it is checked for form.
        if (!j.IsNull("pair"))
        {
            ReadTemplate(j, "pair", specialIds);
        }
        return new HfPostProcessor(ReadTemplate(j, "single", specialIds));
    }

    private static List<int[]?> ReadTemplate(HfJson j, string key, Dictionary<string, int[]> specialIds)
    {
        var parts = new List<int[]?>();
        int n = 0;
        foreach (JsonElement item in j.Array(key).EnumerateArray())
        {
            string at = $"{j.PathOf(key)}[{n++}]";
            HfJson piece = j.ChildAt(at, item, "SpecialToken", "Sequence");
            if (piece.Has("SpecialToken"))
            {
                HfJson special = piece.Child("SpecialToken", "id", "type_id");
                string name = special.String("id");
                parts.Add(specialIds.TryGetValue(name, out int[]? ids) ? ids
                    : throw special.Fail(special.PathOf("id"), $"'{name}' is not among {j.PathOf("special_tokens")}"));
            }
            else if (piece.Has("Sequence"))
            {
                HfJson sequence = piece.Child("Sequence", "id", "type_id");
                string id = sequence.String("id");
                if (id != "A" && (key == "single" || id != "B"))
                {
                    throw sequence.Fail(sequence.PathOf("id"), $"sequence '{id}' is not supported in the {key} template");
                }
                parts.Add(null);
            }
            else
            {
                throw piece.Fail("expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
            }
        }
        if (key == "single" && parts.Count(p => p is null) != 1)
        {
            throw j.Fail(j.PathOf(key), "the single template must hold the text ($A) exactly once");
        }
        return parts;
    }
}

/// <summary>A decoder of a <c>tokenizer.json</c>: token strings in, strings out (joined at the end).</summary>
internal abstract class HfDecoder
{
    public abstract List<string> DecodeChain(List<string> tokens);

    /// <summary>Reads <c>decoder</c> (an object or null).</summary>
    public static HfDecoder? Parse(HfJson root, string path, JsonElement element)
    {
        if (element.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        HfJson type = root.ChildAt(path, element);
        string kind = type.Type();
        switch (kind)
        {
            case "ByteLevel":
                root.ChildAt(path, element, "type", "add_prefix_space", "trim_offsets", "use_regex");
                return new ByteLevel();
            case "Replace":
                {
                    HfJson j = root.ChildAt(path, element, "type", "pattern", "content");
                    return new Replace(HfPattern.Parse(j, "pattern"), j.String("content"));
                }
            case "ByteFallback":
                root.ChildAt(path, element, "type");
                return new ByteFallback();
            case "Fuse":
                root.ChildAt(path, element, "type");
                return new Fuse();
            case "Strip":
                {
                    HfJson j = root.ChildAt(path, element, "type", "content", "start", "stop");
                    return new Strip(j.Char("content"), j.Int("start"), j.Int("stop"));
                }
            case "Metaspace":
                {
                    HfJson j = root.ChildAt(path, element, "type", "replacement", "add_prefix_space", "prepend_scheme", "split", "str_rep");
                    return new Metaspace(j.Char("replacement"), HfPreTokenizer.ParsePrependScheme(j) != "never");
                }
            case "Sequence":
                {
                    HfJson j = root.ChildAt(path, element, "type", "decoders");
                    return new Sequence(j.Items("decoders", (at, item) => Parse(root, at, item), "a decoder"));
                }
            default:
                throw root.Fail(type.PathOf("type"), $"decoder type '{kind}' is not supported (supported: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence)");
        }
    }

    /// <summary>All tokens' byte-level characters as bytes (a token with another character: its UTF-8), read as UTF-8.</summary>
    private sealed class ByteLevel : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens)
        {
            var bytes = new List<byte>();
            foreach (string token in tokens)
            {
                byte[]? decoded = ByteLevelAlphabet.TryDecode(token, out _);
                bytes.AddRange(decoded ?? Encoding.UTF8.GetBytes(token));
            }
            return [Encoding.UTF8.GetString(bytes.ToArray())];
        }
    }

    private sealed class Replace(HfRegex pattern, string content) : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens) =>
            tokens.Select(t => HfPattern.ReplaceAll(pattern, t, content)).ToList();
    }

    /// <summary>Runs of <c>&lt;0xNN&gt;</c> tokens become their UTF-8 text, or one U+FFFD per token when invalid.</summary>
    private sealed class ByteFallback : HfDecoder
    {
        private static readonly UTF8Encoding Strict = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

        public override List<string> DecodeChain(List<string> tokens)
        {
            var result = new List<string>(tokens.Count);
            var pending = new List<byte>();
            foreach (string token in tokens)
            {
                if (token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
                    && byte.TryParse(token.AsSpan(3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out byte b))
                {
                    pending.Add(b);
                    continue;
                }
                Flush();
                result.Add(token);
            }
            Flush();
            return result;

            void Flush()
            {
                if (pending.Count == 0)
                {
                    return;
                }
                try
                {
                    result.Add(Strict.GetString(pending.ToArray()));
                }
                catch (DecoderFallbackException)
                {
                    result.AddRange(Enumerable.Repeat("\uFFFD", pending.Count));
                }
                pending.Clear();
            }
        }
    }

    private sealed class Fuse : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens) => [string.Concat(tokens)];
    }

    /// <summary>Removes up to <c>start</c> leading and <c>stop</c> trailing <c>content</c> characters from each token.</summary>
    private sealed class Strip(string content, int start, int stop) : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens) => tokens.Select(token =>
        {
            var chars = CodePoints(token);
            int startCut = 0;
            for (int i = 0; i < Math.Min(start, chars.Count) && chars[i] == content; i++)
            {
                startCut = i + 1;
            }
            int stopCut = chars.Count;
            for (int i = 0; i < Math.Min(stop, chars.Count) && chars[chars.Count - i - 1] == content; i++)
            {
                stopCut = chars.Count - i - 1;
            }
            return stopCut <= startCut ? "" : string.Concat(chars.Skip(startCut).Take(stopCut - startCut));
        }).ToList();
    }

    /// <summary>Replacement characters become spaces, except in the first token when a prefix was prepended (they are dropped).</summary>
    private sealed class Metaspace(string replacement, bool prepended) : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens) => tokens.Select((token, i) =>
            token.Replace(replacement, i == 0 && prepended ? "" : " ", StringComparison.Ordinal)).ToList();
    }

    private sealed class Sequence(List<HfDecoder> items) : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens)
        {
            foreach (HfDecoder item in items)
            {
                tokens = item.DecodeChain(tokens);
            }
            return tokens;
        }
    }

    private static List<string> CodePoints(string s)
    {
        var result = new List<string>(s.Length);
        for (int i = 0; i < s.Length; i += char.IsSurrogatePair(s, i) ? 2 : 1)
        {
            result.Add(s.Substring(i, char.IsSurrogatePair(s, i) ? 2 : 1));
        }
        return result;
    }
}
