using System.Collections.Concurrent;
using System.Reflection;
using System.Text;

namespace Flora.Data.Tokenizers;

/// <summary>
/// GPT-2's byte-level byte-pair-encoding tokenizer: reads GPT-2's <c>encoder.json</c> and
/// <c>vocab.bpe</c> (or files of the same format, such as those <see cref="BpeTrainer"/> writes)
/// and gives exactly GPT-2's token ids.
/// </summary>
/// <remarks>
/// <para>Encoding cuts the text into words with GPT-2's pattern (see <see cref="PreTokenizerPattern"/>),
/// writes each word's UTF-8 bytes as byte-level characters (GPT-2's reversible byte-to-unicode
/// table), and merges adjacent symbols, always the pair of lowest rank (line order in
/// <c>vocab.bpe</c>) and every occurrence of it left to right, until no ranked pair is left.
/// Each merged word is cached (up to <see cref="MaxCachedWords"/> words, then the cache starts over).
/// The pattern is matched on code points as in OpenAI's Python encoder, so letters outside the
/// Basic Multilingual Plane stay in their word and U+0085 counts as white space.</para>
/// <para>Special tokens are tokens of the form <c>&lt;|name|&gt;</c> that no merge produces;
/// GPT-2 has one, <c>&lt;|endoftext|&gt;</c> = 50256. They are recognised in the text only when
/// asked (<c>allowSpecial: true</c>); otherwise they are encoded as ordinary text, as GPT-2 does.</para>
/// <para>Decoding concatenates the tokens' bytes and reads them as UTF-8, so it gives back any
/// encoded text (with lone surrogates replaced by U+FFFD); invalid byte sequences, such as a
/// token sequence cut inside a character, become U+FFFD as in GPT-2.</para>
/// <para>An instance is immutable apart from its cache and safe to use from several threads.</para>
/// <para>As an <see cref="ITokenizer"/> it has no post-processor: <see cref="EncodeWithSpecialTokens"/>
/// is <see cref="Encode(string)"/>, and it defines no beginning-of-text token.</para>
/// </remarks>
public sealed class ByteLevelBpe : ITokenizer
{
    /// <summary>GPT-2's end-of-text token.</summary>
    public const string EndOfTextToken = "<|endoftext|>";

    /// <summary>How many words the merge cache holds before it is cleared.</summary>
    public const int MaxCachedWords = 100_000;

    /// <summary>Words longer than this (in UTF-16 code units) are merged every time, never cached.</summary>
    public const int MaxCachedWordLength = 256;

    private const string Gpt2EncoderResource = "gpt2/encoder.json.gz";
    private const string Gpt2MergesResource = "gpt2/vocab.bpe.gz";
    private const int StackBytes = 512;

    private static readonly Lazy<ByteLevelBpe> Gpt2Instance = new(LoadGpt2, LazyThreadSafetyMode.ExecutionAndPublication);

    private readonly string[] _tokens;
    private readonly byte[][] _tokenBytes;
    private readonly int[] _byteIds;
    private readonly Dictionary<string, int> _ids;
    private readonly Dictionary<long, int> _ranks;
    private readonly int[] _mergeResults;
    private readonly (string Left, string Right)[] _merges;
    private readonly string[] _specialTexts;
    private readonly int[] _specialIds;
    private readonly AddedToken[] _addedTokens;
    private readonly Lazy<string> _identity;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheLookup;
    private int _cachedWords;

    [ThreadStatic]
    private static MergeScratch? t_scratch;

    private ByteLevelBpe(string[] tokens, Dictionary<string, int> ids, byte[][] tokenBytes, int[] byteIds, Dictionary<long, int> ranks,
        int[] mergeResults, (string, string)[] merges, string[] specialTexts, int[] specialIds, string? identity)
    {
        _tokens = tokens;
        _ids = ids;
        _tokenBytes = tokenBytes;
        _byteIds = byteIds;
        _ranks = ranks;
        _mergeResults = mergeResults;
        _merges = merges;
        _specialTexts = specialTexts;
        _specialIds = specialIds;
        _addedTokens = specialIds.Select((id, i) => new AddedToken(id, specialTexts[i], Special: true)).ToArray();
        _identity = identity is not null ? new Lazy<string>(identity)
            : new Lazy<string>(() => Sha256Hex(BpeFiles.FormatEncoder(_tokens), BpeFiles.FormatMerges(_merges)));
        _cacheLookup = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
        int endOfText = Array.IndexOf(specialTexts, EndOfTextToken);
        EndOfText = endOfText >= 0 ? specialIds[endOfText] : null;
    }

    /// <summary>GPT-2's pre-tokenisation pattern, as GPT-2 writes it.</summary>
    public static string PreTokenizerPattern => Gpt2PreTokenizer.Gpt2Source;

    /// <summary>The number of tokens (GPT-2: 50257); ids run from 0 to <c>VocabularySize - 1</c>.</summary>
    public int VocabularySize => _tokens.Length;

    /// <summary>The number of merges (GPT-2: 50000).</summary>
    public int MergeCount => _merges.Length;

    /// <summary>The id of <c>&lt;|endoftext|&gt;</c> (GPT-2: 50256), or null when the vocabulary has none.</summary>
    public int? EndOfText { get; }

    /// <summary>The special tokens' texts, in id order.</summary>
    public IReadOnlyList<string> SpecialTokens => _specialTexts;

    /// <summary>The special tokens (<c>&lt;|name|&gt;</c>, see <see cref="SpecialTokens"/>), in id order.</summary>
    public IReadOnlyList<AddedToken> AddedTokens => _addedTokens;

    /// <summary>Always null: GPT-2 marks only the end of a text.</summary>
    public int? BeginOfText => null;

    /// <summary>
    /// "gpt2" for <see cref="Gpt2"/>; otherwise the SHA-256 (lower-case hex) of <c>encoder.json</c>
    /// followed by <c>vocab.bpe</c>, as the files are stored (compressed or not), or, for a tokenizer
    /// made in memory, as <see cref="Save"/> writes them.
    /// </summary>
    public string Identity => _identity.Value;

    /// <summary>Words now in the merge cache (for tests).</summary>
    internal int CachedWords => _cache.Count;

    /// <summary>The merges in rank order, as byte-level strings.</summary>
    public IReadOnlyList<(string Left, string Right)> Merges => _merges;

    /// <summary>GPT-2's tokenizer, from the copy of its files embedded in this library; loaded once and shared.</summary>
    public static ByteLevelBpe Gpt2() => Gpt2Instance.Value;

    /// <summary>Loads a tokenizer from GPT-2-format files.</summary>
    /// <param name="encoderJsonPath"><c>encoder.json</c>, or a gzip-compressed copy (<c>.gz</c>).</param>
    /// <param name="vocabBpePath"><c>vocab.bpe</c>, or a gzip-compressed copy (<c>.gz</c>).</param>
    /// <exception cref="DataFormatException">A file is missing, unreadable or malformed, or the two do not fit together.</exception>
    public static ByteLevelBpe Load(string encoderJsonPath, string vocabBpePath)
    {
        ArgumentException.ThrowIfNullOrEmpty(encoderJsonPath);
        ArgumentException.ThrowIfNullOrEmpty(vocabBpePath);
        string[] tokens = BpeFiles.ParseEncoder(BpeFiles.ReadFile(encoderJsonPath, out byte[] encoderStored), encoderJsonPath);
        List<MergeLine> merges = BpeFiles.ParseMerges(BpeFiles.ReadFile(vocabBpePath, out byte[] mergesStored), vocabBpePath);
        return Create(tokens, merges, encoderJsonPath, vocabBpePath, Sha256Hex(encoderStored, mergesStored));
    }

    /// <summary>Loads <c>encoder.json</c> and <c>vocab.bpe</c> (or their <c>.gz</c> copies) from a directory.</summary>
    /// <exception cref="DataFormatException">A file is missing, unreadable or malformed.</exception>
    public static ByteLevelBpe LoadDirectory(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        return Load(FindFile(directory, "encoder.json"), FindFile(directory, "vocab.bpe"));
    }

    private static string FindFile(string directory, string name)
    {
        string plain = Path.Combine(directory, name);
        string gzip = plain + ".gz";
        return !File.Exists(plain) && File.Exists(gzip) ? gzip : plain;
    }

    private static ByteLevelBpe LoadGpt2()
    {
        Assembly assembly = typeof(ByteLevelBpe).Assembly;
        string encoderName = $"{Gpt2EncoderResource} (embedded in {assembly.GetName().Name})";
        string mergesName = $"{Gpt2MergesResource} (embedded in {assembly.GetName().Name})";
        byte[] encoder = ReadResource(assembly, Gpt2EncoderResource, encoderName);
        byte[] merges = ReadResource(assembly, Gpt2MergesResource, mergesName);
        return Create(BpeFiles.ParseEncoder(encoder, encoderName), BpeFiles.ParseMerges(merges, mergesName),
            encoderName, mergesName, identity: "gpt2");
    }

    private static byte[] ReadResource(Assembly assembly, string resource, string name)
    {
        using Stream stream = assembly.GetManifestResourceStream(resource)
            ?? throw new DataFormatException(name, "embedded resource not found: the library was built without data/gpt2");
        return BpeFiles.ReadStream(stream, name, gzip: true);
    }

    /// <summary>Builds a tokenizer from a vocabulary (token string by id) and merges in rank order.</summary>
    internal static ByteLevelBpe Create(string[] tokens, IReadOnlyList<MergeLine> merges, string encoderName, string mergesName,
        string? identity = null)
    {
        var ids = new Dictionary<string, int>(tokens.Length, StringComparer.Ordinal);
        var tokenBytes = new byte[tokens.Length][];
        for (int id = 0; id < tokens.Length; id++)
        {
            byte[]? bytes = ByteLevelAlphabet.TryDecode(tokens[id], out int bad);
            if (bytes is null)
            {
                throw new DataFormatException(encoderName,
                    $"token {BpeFiles.Show(tokens[id])} (id {id}) contains U+{(int)tokens[id][bad]:X4}, which is not one of GPT-2's 256 byte-level characters");
            }
            tokenBytes[id] = bytes;
            ids.Add(tokens[id], id);
        }

        var byteIds = new int[256];
        var isByte = new bool[tokens.Length];
        for (int b = 0; b < 256; b++)
        {
            string symbol = ByteLevelAlphabet.ByteToChar[b].ToString();
            if (!ids.TryGetValue(symbol, out int id))
            {
                throw new DataFormatException(encoderName,
                    $"the vocabulary lacks the token {BpeFiles.Show(symbol)} of byte 0x{b:X2}: all 256 bytes must be tokens");
            }
            byteIds[b] = id;
            isByte[id] = true;
        }

        var ranks = new Dictionary<long, int>(merges.Count);
        var firstLine = new Dictionary<long, int>(merges.Count);
        var results = new int[merges.Count];
        var mergeStrings = new (string, string)[merges.Count];
        var isResult = new bool[tokens.Length];
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (left, right, line) = merges[rank];
            int leftId = MergePart(ids, left, line, left, right, encoderName, mergesName);
            int rightId = MergePart(ids, right, line, left, right, encoderName, mergesName);
            string joined = left + right;
            if (!ids.TryGetValue(joined, out int result))
            {
                throw new DataFormatException(mergesName,
                    $"line {line}: merge {BpeFiles.Show(left + " " + right)} makes {BpeFiles.Show(joined)}, which is not in the vocabulary ({encoderName})");
            }
            long pair = PairKey(leftId, rightId);
            if (!firstLine.TryAdd(pair, line))
            {
                throw new DataFormatException(mergesName,
                    $"line {line}: merge {BpeFiles.Show(left + " " + right)} repeats line {firstLine[pair]}");
            }
            ranks.Add(pair, rank);
            results[rank] = result;
            mergeStrings[rank] = (left, right);
            isResult[result] = true;
        }

        var specialTexts = new List<string>();
        var specialIds = new List<int>();
        var strict = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
        for (int id = 0; id < tokens.Length; id++)
        {
            if (isByte[id] || isResult[id])
            {
                continue;
            }
            string text;
            try
            {
                text = strict.GetString(tokenBytes[id]);
            }
            catch (DecoderFallbackException)
            {
                continue;
            }
            if (IsSpecialForm(text))
            {
                specialTexts.Add(text);
                specialIds.Add(id);
            }
        }
        return new ByteLevelBpe(tokens, ids, tokenBytes, byteIds, ranks, results, mergeStrings,
            specialTexts.ToArray(), specialIds.ToArray(), identity);
    }

    private static string Sha256Hex(params byte[][] parts)
    {
        using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        foreach (byte[] part in parts)
        {
            sha.AppendData(part);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    private static int MergePart(Dictionary<string, int> ids, string part, int line, string left, string right,
        string encoderName, string mergesName)
    {
        if (!ids.TryGetValue(part, out int id))
        {
            throw new DataFormatException(mergesName,
                $"line {line}: merge {BpeFiles.Show(left + " " + right)}: {BpeFiles.Show(part)} is not in the vocabulary ({encoderName})");
        }
        return id;
    }

    /// <summary>Whether a text has the form of a special token, <c>&lt;|name|&gt;</c>.</summary>
    internal static bool IsSpecialForm(string text) =>
        text.Length > 4 && text.StartsWith("<|", StringComparison.Ordinal) && text.EndsWith("|>", StringComparison.Ordinal);

    /// <summary>Encodes a text; special tokens in it are encoded as ordinary text.</summary>
    public int[] Encode(string text) => Encode(text, allowSpecial: false);

    /// <summary>Encodes a text.</summary>
    /// <param name="text">The text.</param>
    /// <param name="allowSpecial">
    /// Whether special tokens such as <c>&lt;|endoftext|&gt;</c> in the text become their ids; when
    /// false they are encoded as the ordinary characters they are made of, as GPT-2's encoder does.
    /// </param>
    public int[] Encode(string text, bool allowSpecial)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 1);
        EncodeTo(text, ids, allowSpecial);
        return ids.ToArray();
    }

    /// <summary>The same as <see cref="Encode(string)"/>: GPT-2 adds no tokens around a text.</summary>
    public int[] EncodeWithSpecialTokens(string text) => Encode(text);

    /// <summary>Encodes a text and appends its ids to <paramref name="ids"/>.</summary>
    public void EncodeTo(ReadOnlySpan<char> text, List<int> ids, bool allowSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (!allowSpecial || _specialTexts.Length == 0)
        {
            EncodeOrdinary(text, ids);
            return;
        }
        Span<int> next = _specialTexts.Length <= 16 ? stackalloc int[_specialTexts.Length] : new int[_specialTexts.Length];
        next.Fill(-2);
        int pos = 0;
        while (pos < text.Length)
        {
            int at = FindSpecial(text, pos, _specialTexts, next, out int which);
            if (at < 0)
            {
                EncodeOrdinary(text[pos..], ids);
                return;
            }
            EncodeOrdinary(text[pos..at], ids);
            ids.Add(_specialIds[which]);
            pos = at + _specialTexts[which].Length;
        }
    }

    /// <summary>
    /// The first special token at or after <paramref name="pos"/> (the longest where several start
    /// there), or -1. <paramref name="next"/> holds each token's next occurrence (-2 unknown, -1 none
    /// left) between calls, so each token's search moves through the text only once.
    /// </summary>
    internal static int FindSpecial(ReadOnlySpan<char> text, int pos, string[] specials, Span<int> next, out int which)
    {
        int at = -1;
        which = -1;
        for (int s = 0; s < specials.Length; s++)
        {
            if (next[s] != -1 && next[s] < pos)
            {
                int found = text[pos..].IndexOf(specials[s], StringComparison.Ordinal);
                next[s] = found < 0 ? -1 : pos + found;
            }
            if (next[s] >= 0 && (at < 0 || next[s] < at || (next[s] == at && specials[s].Length > specials[which].Length)))
            {
                at = next[s];
                which = s;
            }
        }
        return at;
    }

    private void EncodeOrdinary(ReadOnlySpan<char> text, List<int> ids)
    {
        byte[]? rented = null;
        Span<byte> stack = stackalloc byte[StackBytes];
        try
        {
            foreach (var match in Gpt2PreTokenizer.Pattern.EnumerateMatches(text))
            {
                ReadOnlySpan<char> word = text.Slice(match.Index, match.Length);
                bool cacheable = word.Length <= MaxCachedWordLength;
                if (cacheable && _cacheLookup.TryGetValue(word, out int[]? cached))
                {
                    ids.AddRange(cached);
                    continue;
                }
                int maxBytes = Encoding.UTF8.GetMaxByteCount(word.Length);
                Span<byte> buffer = stack;
                if (maxBytes > stack.Length)
                {
                    if (rented is null || rented.Length < maxBytes)
                    {
                        if (rented is not null)
                        {
                            System.Buffers.ArrayPool<byte>.Shared.Return(rented);
                        }
                        rented = System.Buffers.ArrayPool<byte>.Shared.Rent(maxBytes);
                    }
                    buffer = rented;
                }
                int byteCount = Encoding.UTF8.GetBytes(word, buffer);
                int start = ids.Count;
                MergeWord(buffer[..byteCount], ids);
                if (cacheable)
                {
                    AddToCache(word, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(ids)[start..].ToArray());
                }
            }
        }
        finally
        {
            if (rented is not null)
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    private void AddToCache(ReadOnlySpan<char> word, int[] wordIds)
    {
        if (Volatile.Read(ref _cachedWords) >= MaxCachedWords)
        {
            _cache.Clear();
            Volatile.Write(ref _cachedWords, 0);
        }
        if (_cacheLookup.TryAdd(word, wordIds))
        {
            Interlocked.Increment(ref _cachedWords);
        }
    }

    /// <summary>
    /// GPT-2's merge loop on one word, in O(n log n): a heap holds every adjacent pair that has a
    /// rank, keyed by (rank, position). All entries of the lowest rank are taken together and merged
    /// left to right, skipping those a previous merge has consumed; the pairs the merges create are
    /// added only after that, exactly as GPT-2 merges every occurrence of its best pair before it
    /// looks for the next. Symbols form a linked list over the byte positions; a merged symbol keeps
    /// its left position, so positions order symbols left to right.
    /// </summary>
    private void MergeWord(ReadOnlySpan<byte> bytes, List<int> output)
    {
        int n = bytes.Length;
        if (n == 1)
        {
            output.Add(_byteIds[bytes[0]]);
            return;
        }
        MergeScratch scratch = t_scratch ??= new MergeScratch();
        scratch.Reset(n);
        int[] token = scratch.Tokens, next = scratch.Next, prev = scratch.Prev;
        PriorityQueue<int, long> heap = scratch.Heap;
        List<int> touched = scratch.Touched;
        for (int i = 0; i < n; i++)
        {
            token[i] = _byteIds[bytes[i]];
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
        }
        for (int i = 0; i + 1 < n; i++)
        {
            if (_ranks.TryGetValue(PairKey(token[i], token[i + 1]), out int rank))
            {
                heap.Enqueue(i, HeapKey(rank, i));
            }
        }
        while (heap.TryDequeue(out int position, out long key))
        {
            int rank = (int)(key >> 32);
            touched.Clear();
            Merge(position, rank);
            while (heap.TryPeek(out position, out key) && (int)(key >> 32) == rank)
            {
                heap.Dequeue();
                Merge(position, rank);
            }
            foreach (int i in touched)
            {
                if (token[i] >= 0 && next[i] >= 0 && _ranks.TryGetValue(PairKey(token[i], token[next[i]]), out int newRank))
                {
                    heap.Enqueue(i, HeapKey(newRank, i));
                }
            }
        }
        for (int i = 0; i >= 0; i = next[i])
        {
            output.Add(token[i]);
        }

        void Merge(int i, int rank)
        {
            int j = next[i];
            if (token[i] < 0 || j < 0 || !_ranks.TryGetValue(PairKey(token[i], token[j]), out int found) || found != rank)
            {
                return; // consumed or changed by an earlier merge
            }
            token[i] = _mergeResults[rank];
            token[j] = -1;
            int after = next[j];
            next[i] = after;
            if (after >= 0)
            {
                prev[after] = i;
            }
            if (prev[i] >= 0)
            {
                touched.Add(prev[i]);
            }
            touched.Add(i);
        }
    }

    private static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    private static long HeapKey(int rank, int position) => ((long)rank << 32) | (uint)position;

    /// <summary>Decodes ids to text: their bytes read as UTF-8, invalid sequences as U+FFFD.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is outside the vocabulary.</exception>
    public string Decode(ReadOnlySpan<int> ids)
    {
        int length = 0;
        foreach (int id in ids)
        {
            CheckId(id);
            length += _tokenBytes[id].Length;
        }
        byte[] bytes = System.Buffers.ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
        try
        {
            int at = 0;
            foreach (int id in ids)
            {
                byte[] token = _tokenBytes[id];
                token.CopyTo(bytes, at);
                at += token.Length;
            }
            return Encoding.UTF8.GetString(bytes, 0, length);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    /// <summary>Decodes ids to text, leaving out the special tokens (<see cref="SpecialTokens"/>) when <paramref name="skipSpecialTokens"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is outside the vocabulary.</exception>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens)
    {
        if (!skipSpecialTokens || _specialIds.Length == 0)
        {
            return Decode(ids);
        }
        var kept = new List<int>(ids.Length);
        foreach (int id in ids)
        {
            CheckId(id);
            if (Array.IndexOf(_specialIds, id) < 0)
            {
                kept.Add(id);
            }
        }
        return Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(kept));
    }

    /// <summary>The text of one token (GPT-2 51 -&gt; "T", 995 -&gt; " world"); a token that is part of a character gives U+FFFD.</summary>
    public string TokenText(int id)
    {
        CheckId(id);
        return Encoding.UTF8.GetString(_tokenBytes[id]);
    }

    /// <summary>A token as written in <c>encoder.json</c>, in GPT-2's byte-level characters (995 -&gt; "Ġworld").</summary>
    public string TokenString(int id)
    {
        CheckId(id);
        return _tokens[id];
    }

    /// <summary>The bytes a token stands for.</summary>
    public ReadOnlySpan<byte> TokenBytes(int id)
    {
        CheckId(id);
        return _tokenBytes[id];
    }

    /// <summary>The id of a token given as written in <c>encoder.json</c> ("Ġworld"), or null.</summary>
    public int? TokenId(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return _ids.TryGetValue(token, out int id) ? id : null;
    }

    /// <summary>Writes <c>encoder.json</c> and <c>vocab.bpe</c> into a directory (created if needed), in GPT-2's exact format.</summary>
    public void Save(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory.CreateDirectory(directory);
        Reporting.AtomicFile.WriteAllBytes(Path.Combine(directory, "encoder.json"), BpeFiles.FormatEncoder(_tokens));
        Reporting.AtomicFile.WriteAllBytes(Path.Combine(directory, "vocab.bpe"), BpeFiles.FormatMerges(_merges));
    }

    private void CheckId(int id)
    {
        if ((uint)id >= (uint)_tokens.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(id), id, $"token id {id} is outside the vocabulary of {_tokens.Length} tokens");
        }
    }

    /// <summary>Per-thread buffers of <see cref="MergeWord"/>.</summary>
    private sealed class MergeScratch
    {
        public int[] Tokens = new int[64];
        public int[] Next = new int[64];
        public int[] Prev = new int[64];
        public readonly PriorityQueue<int, long> Heap = new();
        public readonly List<int> Touched = new();

        public void Reset(int n)
        {
            if (Tokens.Length < n)
            {
                int size = Math.Max(n, 2 * Tokens.Length);
                Tokens = new int[size];
                Next = new int[size];
                Prev = new int[size];
            }
            Heap.Clear();
        }
    }
}
