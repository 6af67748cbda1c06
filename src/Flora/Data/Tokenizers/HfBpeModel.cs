using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;

namespace Flora.Data.Tokenizers;

/// <summary>
/// The <c>BPE</c> model of a <c>tokenizer.json</c>, with Hugging Face's exact semantics: a piece is cut
/// into characters (code points) looked up in the vocabulary; a character that is not a token becomes its
/// <c>&lt;0xNN&gt;</c> byte tokens (<c>byte_fallback</c>) or the unknown token (consecutive ones fused into
/// one with <c>fuse_unk</c>); then pairs are merged, always the pair of lowest rank and, among equal ranks,
/// the leftmost, one merge at a time (a min-heap of (rank, position), stale entries skipped).
/// With <c>ignore_merges</c> a piece that is itself a token is taken whole.
/// </summary>
internal sealed class HfBpeModel
{
    private const int MaxCachedPieces = 100_000;
    private const int MaxCachedPieceLength = 256;

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabLookup;
    private readonly Dictionary<int, string> _tokens;
    private readonly Dictionary<long, (int Rank, int NewId)> _merges;
    private readonly int[] _byteIds; // <0xNN> token of each byte, or -1
    private readonly int _unkId;     // -1: none
    private readonly bool _fuseUnk;
    private readonly bool _byteFallback;
    private readonly bool _ignoreMerges;
    private readonly string? _prefix;
    private readonly string? _suffix;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);

    private HfBpeModel(Dictionary<string, int> vocab, Dictionary<int, string> tokens, Dictionary<long, (int, int)> merges,
        int unkId, bool fuseUnk, bool byteFallback, bool ignoreMerges, string? prefix, string? suffix)
    {
        _vocab = vocab;
        _vocabLookup = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _tokens = tokens;
        _merges = merges;
        _unkId = unkId;
        _fuseUnk = fuseUnk;
        _byteFallback = byteFallback;
        _ignoreMerges = ignoreMerges;
        _prefix = prefix;
        _suffix = suffix;
        _byteIds = new int[256];
        for (int b = 0; b < 256; b++)
        {
            _byteIds[b] = vocab.TryGetValue($"<0x{b:X2}>", out int id) ? id : -1;
        }
    }

    /// <summary>The model's tokens by id.</summary>
    public IReadOnlyDictionary<int, string> Tokens => _tokens;

    /// <summary>The number of merges.</summary>
    public int MergeCount { get; private init; }

    /// <summary>The id of a token of the model's vocabulary, or null.</summary>
    public int? TokenId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    /// <summary>Reads <c>model</c>, which must be a BPE model.</summary>
    public static HfBpeModel Parse(HfJson root, JsonElement element)
    {
        HfJson first = root.ChildAt("model", element);
        string kind = first.Has("type") ? first.Type() : first.Has("merges") ? "BPE" : "(none)";
        if (kind != "BPE")
        {
            throw first.Fail(first.PathOf("type"), $"model type '{kind}' is not supported (supported: BPE)");
        }
        HfJson j = root.ChildAt("model", element, "type", "dropout", "unk_token", "continuing_subword_prefix",
            "end_of_word_suffix", "fuse_unk", "byte_fallback", "ignore_merges", "vocab", "merges");
        if (!j.IsNull("dropout"))
        {
            JsonElement dropout = j.Required("dropout");
            if (dropout.ValueKind != JsonValueKind.Number || dropout.GetDouble() != 0)
            {
                throw j.Fail(j.PathOf("dropout"), $"{HfJson.Raw(dropout)} is not supported (dropout makes encoding random; only null or 0)");
            }
        }
        var (vocab, tokens) = ParseVocab(j);
        // An empty prefix or suffix (GPT-2's file has both) changes nothing.
        string? prefix = NullIfEmpty(j.StringOrNull("continuing_subword_prefix"));
        string? suffix = NullIfEmpty(j.StringOrNull("end_of_word_suffix"));
        var merges = ParseMerges(j, vocab, prefix?.Length ?? 0, out int mergeCount);
        int unkId = -1;
        string? unk = j.StringOrNull("unk_token");
        if (unk is not null)
        {
            unkId = vocab.TryGetValue(unk, out int id) ? id
                : throw j.Fail(j.PathOf("unk_token"), $"{BpeFiles.Show(unk)} is not in {j.PathOf("vocab")}");
        }
        return new HfBpeModel(vocab, tokens, merges, unkId, j.Bool("fuse_unk", false), j.Bool("byte_fallback", false),
            j.Bool("ignore_merges", false), prefix, suffix) { MergeCount = mergeCount };
    }

    private static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    private static (Dictionary<string, int>, Dictionary<int, string>) ParseVocab(HfJson j)
    {
        JsonElement element = j.Required("vocab");
        string path = j.PathOf("vocab");
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw j.Fail(path, $"expected an object mapping each token to its id, found {HfJson.Kind(element)}");
        }
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        var tokens = new Dictionary<int, string>();
        foreach (JsonProperty property in element.EnumerateObject())
        {
            string at = $"{path}[{BpeFiles.Show(property.Name)}]";
            int id = j.Int(property.Value, at);
            if (!vocab.TryAdd(property.Name, id))
            {
                throw j.Fail(at, $"the token appears twice (ids {vocab[property.Name]} and {id})");
            }
            if (!tokens.TryAdd(id, property.Name))
            {
                throw j.Fail(at, $"duplicate id {id}, given to both {BpeFiles.Show(tokens[id])} and {BpeFiles.Show(property.Name)}");
            }
        }
        if (vocab.Count == 0)
        {
            throw j.Fail(path, "the vocabulary is empty");
        }
        return (vocab, tokens);
    }

    private static Dictionary<long, (int, int)> ParseMerges(HfJson j, Dictionary<string, int> vocab, int prefixLength, out int count)
    {
        var merges = new Dictionary<long, (int, int)>();
        string path = j.PathOf("merges");
        JsonElement array = j.IsNull("merges") ? default : j.Array("merges");
        count = 0;
        if (array.ValueKind != JsonValueKind.Array)
        {
            return merges;
        }
        int rank = 0;
        foreach (JsonElement item in array.EnumerateArray())
        {
            string at = $"{path}[{rank}]";
            string left, right;
            if (item.ValueKind == JsonValueKind.String)
            {
                string[] parts = item.GetString()!.Split(' ');
                if (parts.Length != 2)
                {
                    throw j.Fail(at, $"{HfJson.Raw(item)} is not two tokens separated by one space");
                }
                (left, right) = (parts[0], parts[1]);
            }
            else if (item.ValueKind == JsonValueKind.Array && item.GetArrayLength() == 2
                     && item[0].ValueKind == JsonValueKind.String && item[1].ValueKind == JsonValueKind.String)
            {
                (left, right) = (item[0].GetString()!, item[1].GetString()!);
            }
            else
            {
                throw j.Fail(at, $"expected \"left right\" or [\"left\", \"right\"], found {HfJson.Raw(item)}");
            }
            int leftId = vocab.TryGetValue(left, out int l) ? l
                : throw j.Fail(at, $"merge {BpeFiles.Show(left + " " + right)} names {BpeFiles.Show(left)}, which is not in {j.PathOf("vocab")}");
            int rightId = vocab.TryGetValue(right, out int r) ? r
                : throw j.Fail(at, $"merge {BpeFiles.Show(left + " " + right)} names {BpeFiles.Show(right)}, which is not in {j.PathOf("vocab")}");
            if (right.Length < prefixLength)
            {
                throw j.Fail(at, $"the right part {BpeFiles.Show(right)} is shorter than continuing_subword_prefix");
            }
            string joined = left + right[prefixLength..];
            int newId = vocab.TryGetValue(joined, out int n) ? n
                : throw j.Fail(at, $"merge {BpeFiles.Show(left + " " + right)} makes {BpeFiles.Show(joined)}, which is not in {j.PathOf("vocab")}");
            // As in Hugging Face, a pair given twice keeps its last rank.
            merges[PairKey(leftId, rightId)] = (rank, newId);
            rank++;
        }
        count = rank;
        return merges;
    }

    /// <summary>Appends the ids of one pre-tokenized piece.</summary>
    public void Tokenize(string piece, List<int> output)
    {
        if (piece.Length == 0)
        {
            return;
        }
        if (_ignoreMerges && _vocab.TryGetValue(piece, out int whole))
        {
            output.Add(whole);
            return;
        }
        if (_cache.TryGetValue(piece, out int[]? cached))
        {
            output.AddRange(cached);
            return;
        }
        int start = output.Count;
        MergeWord(piece, output);
        if (piece.Length <= MaxCachedPieceLength)
        {
            if (_cache.Count >= MaxCachedPieces)
            {
                _cache.Clear();
            }
            _cache.TryAdd(piece, output.GetRange(start, output.Count - start).ToArray());
        }
    }

    private void MergeWord(string word, List<int> output)
    {
        // Symbols: token id and length (0 = merged away), linked left to right.
        var ids = new List<int>(word.Length);
        var lengths = new List<int>(word.Length);
        int unkId = -1, unkLength = 0;
        var symbol = new StringBuilder();
        for (int i = 0; i < word.Length;)
        {
            int width = char.IsSurrogatePair(word, i) ? 2 : 1;
            bool isFirst = i == 0, isLast = i + width == word.Length;
            ReadOnlySpan<char> character = word.AsSpan(i, width);
            int byteLength = Encoding.UTF8.GetByteCount(character);
            i += width;
            int id;
            bool found;
            if ((_prefix is null || isFirst) && (_suffix is null || !isLast))
            {
                found = _vocabLookup.TryGetValue(character, out id);
            }
            else
            {
                symbol.Clear();
                if (!isFirst && _prefix is not null)
                {
                    symbol.Append(_prefix);
                }
                symbol.Append(character);
                if (isLast && _suffix is not null)
                {
                    symbol.Append(_suffix);
                }
                found = _vocab.TryGetValue(symbol.ToString(), out id);
            }
            if (found)
            {
                if (unkId >= 0)
                {
                    ids.Add(unkId);
                    lengths.Add(unkLength);
                    unkId = -1;
                }
                ids.Add(id);
                lengths.Add(byteLength);
                continue;
            }
            if (_byteFallback && TryAddBytes(character, ids, lengths))
            {
                continue; // as in Hugging Face, a pending unknown token is not flushed here
            }
            if (_unkId >= 0)
            {
                if (unkId >= 0 && _fuseUnk)
                {
                    unkLength += byteLength;
                }
                else
                {
                    if (unkId >= 0)
                    {
                        ids.Add(unkId);
                        lengths.Add(unkLength);
                    }
                    unkId = _unkId;
                    unkLength = byteLength;
                }
            }
            // With neither byte fallback nor an unknown token the character is dropped, as in Hugging Face.
        }
        if (unkId >= 0)
        {
            ids.Add(unkId);
            lengths.Add(unkLength);
        }
        MergeAll(ids, lengths);
        for (int k = 0; k < ids.Count; k++)
        {
            if (lengths[k] != 0)
            {
                output.Add(ids[k]);
            }
        }
    }

    private bool TryAddBytes(ReadOnlySpan<char> character, List<int> ids, List<int> lengths)
    {
        Span<byte> bytes = stackalloc byte[4];
        int n = Encoding.UTF8.GetBytes(character, bytes);
        for (int k = 0; k < n; k++)
        {
            if (_byteIds[bytes[k]] < 0)
            {
                return false;
            }
        }
        for (int k = 0; k < n; k++)
        {
            ids.Add(_byteIds[bytes[k]]);
            lengths.Add(1);
        }
        return true;
    }

    /// <summary>Hugging Face's <c>Word::merge_all</c> without dropout.</summary>
    private void MergeAll(List<int> ids, List<int> lengths)
    {
        int n = ids.Count;
        if (n < 2 || _merges.Count == 0)
        {
            return;
        }
        var next = new int[n];
        var prev = new int[n];
        for (int k = 0; k < n; k++)
        {
            next[k] = k + 1 < n ? k + 1 : -1;
            prev[k] = k - 1;
        }
        var queue = new PriorityQueue<(int Position, int NewId), long>();
        for (int k = 0; k + 1 < n; k++)
        {
            if (_merges.TryGetValue(PairKey(ids[k], ids[k + 1]), out var m))
            {
                queue.Enqueue((k, m.NewId), QueueKey(m.Rank, k));
            }
        }
        while (queue.TryDequeue(out var top, out _))
        {
            int pos = top.Position;
            if (lengths[pos] == 0 || next[pos] == -1)
            {
                continue;
            }
            int right = next[pos];
            if (!_merges.TryGetValue(PairKey(ids[pos], ids[right]), out var current) || current.NewId != top.NewId)
            {
                continue; // a stale entry
            }
            ids[pos] = top.NewId;
            lengths[pos] += lengths[right];
            next[pos] = next[right];
            lengths[right] = 0;
            if (next[pos] >= 0)
            {
                prev[next[pos]] = pos;
            }
            if (prev[pos] >= 0 && _merges.TryGetValue(PairKey(ids[prev[pos]], ids[pos]), out var before))
            {
                queue.Enqueue((prev[pos], before.NewId), QueueKey(before.Rank, prev[pos]));
            }
            if (next[pos] >= 0 && _merges.TryGetValue(PairKey(ids[pos], ids[next[pos]]), out var after))
            {
                queue.Enqueue((pos, after.NewId), QueueKey(after.Rank, pos));
            }
        }
    }

    private static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    private static long QueueKey(int rank, int position) => ((long)rank << 32) | (uint)position;
}
