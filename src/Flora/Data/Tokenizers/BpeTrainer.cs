using System.Runtime.InteropServices;
using System.Text;

namespace Flora.Data.Tokenizers;

/// <summary>
/// Learns a byte-level BPE vocabulary in GPT-2's format from a corpus: the text is cut into words
/// with GPT-2's pattern, the distinct words are counted, and the most frequent adjacent pair of
/// symbols is merged into a new token, again and again, until the vocabulary has the size asked for.
/// </summary>
/// <remarks>
/// <para>Usage: <see cref="AddText"/> as often as needed, then <see cref="Train"/>, then
/// <see cref="Save"/> (GPT-2's <c>encoder.json</c> and <c>vocab.bpe</c>, which
/// <see cref="ByteLevelBpe.Load"/> reads back).</para>
/// <para>Pairs are counted inside words, weighted by the word's count; overlapping pairs count
/// each (<c>aaa</c> holds <c>a a</c> twice). Ties are broken by the pair's strings: the pair whose
/// left token, then right token, comes first in ordinal order of their byte-level strings wins,
/// so training is deterministic. A merge rewrites only the words that hold its pair and updates
/// the pair counts by what changed there; a heap with lazily corrected counts finds the next pair.</para>
/// <para>Token ids: the 256 bytes in GPT-2's order, then the learned tokens in the order they were
/// made, then the special tokens. A merge whose result is already a token (two merges can spell
/// the same string) reuses that token. Training stops early, with a smaller vocabulary, when no
/// pair is left to merge.</para>
/// </remarks>
public sealed class BpeTrainer
{
    private readonly Dictionary<string, long> _wordCounts = new(StringComparer.Ordinal);
    private readonly string[] _specialTokens;
    private ByteLevelBpe? _trained;

    /// <summary>Creates a trainer.</summary>
    /// <param name="vocabularySize">
    /// Tokens wanted, special tokens included: at least 256 (the bytes) plus the number of special tokens.
    /// </param>
    /// <param name="specialTokens">
    /// Special tokens, each of the form <c>&lt;|name|&gt;</c>; they get the last ids and are never
    /// learned from the text. Null gives GPT-2's one, <c>&lt;|endoftext|&gt;</c>.
    /// </param>
    public BpeTrainer(int vocabularySize, IEnumerable<string>? specialTokens = null)
    {
        _specialTokens = (specialTokens ?? [ByteLevelBpe.EndOfTextToken]).ToArray();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (string special in _specialTokens)
        {
            if (special is null || !ByteLevelBpe.IsSpecialForm(special))
            {
                throw new ArgumentException($"special token {special ?? "null"} is not of the form <|name|>", nameof(specialTokens));
            }
            if (!seen.Add(special))
            {
                throw new ArgumentException($"special token {special} is given twice", nameof(specialTokens));
            }
        }
        int minimum = 256 + _specialTokens.Length;
        if (vocabularySize < minimum)
        {
            throw new ArgumentOutOfRangeException(nameof(vocabularySize), vocabularySize,
                $"the vocabulary needs at least {minimum} tokens: 256 bytes and {_specialTokens.Length} special token(s)");
        }
        VocabularySize = vocabularySize;
    }

    /// <summary>The vocabulary size asked for, special tokens included.</summary>
    public int VocabularySize { get; }

    /// <summary>The special tokens.</summary>
    public IReadOnlyList<string> SpecialTokens => _specialTokens;

    /// <summary>Distinct words counted so far.</summary>
    public int DistinctWords => _wordCounts.Count;

    /// <summary>Words counted so far.</summary>
    public long Words { get; private set; }

    /// <summary>The tokenizer <see cref="Train"/> made, or null before.</summary>
    public ByteLevelBpe? Tokenizer => _trained;

    /// <summary>Counts the words of a text. Special tokens in it separate words and are not counted.</summary>
    public void AddText(ReadOnlySpan<char> text)
    {
        if (_trained is not null)
        {
            throw new InvalidOperationException("the trainer has already trained; create a new one to add text");
        }
        var lookup = _wordCounts.GetAlternateLookup<ReadOnlySpan<char>>();
        Span<int> next = _specialTokens.Length <= 16 ? stackalloc int[_specialTokens.Length] : new int[_specialTokens.Length];
        next.Fill(-2);
        int pos = 0;
        while (pos < text.Length)
        {
            int at = ByteLevelBpe.FindSpecial(text, pos, _specialTokens, next, out int which);
            ReadOnlySpan<char> part = at < 0 ? text[pos..] : text[pos..at];
            foreach (var match in Gpt2PreTokenizer.Pattern.EnumerateMatches(part))
            {
                ref long count = ref CollectionsMarshal.GetValueRefOrAddDefault(lookup, part.Slice(match.Index, match.Length), out _);
                count++;
                Words++;
            }
            pos = at < 0 ? text.Length : at + _specialTokens[which].Length;
        }
    }

    /// <summary>Learns the merges from the words counted so far; calling it again returns the same tokenizer.</summary>
    public ByteLevelBpe Train()
    {
        if (_trained is not null)
        {
            return _trained;
        }
        var run = new TrainingRun(_wordCounts, _specialTokens);
        run.Learn(VocabularySize - 256 - _specialTokens.Length);
        _trained = run.Build();
        return _trained;
    }

    /// <summary>Writes <c>encoder.json</c> and <c>vocab.bpe</c> of the trained tokenizer into a directory, in GPT-2's format.</summary>
    public void Save(string directory)
    {
        if (_trained is null)
        {
            throw new InvalidOperationException("call Train before Save");
        }
        _trained.Save(directory);
    }

    /// <summary>The state of one training: words as symbol arrays, pair counts, where each pair occurs, a heap.</summary>
    private sealed class TrainingRun
    {
        private readonly List<string> _symbols = new();
        private readonly Dictionary<string, int> _symbolIds = new(StringComparer.Ordinal);
        private readonly HashSet<string> _reserved;
        private readonly int[][] _words;
        private readonly int[] _lengths;
        private readonly long[] _counts;
        private readonly int[] _lastVisit;
        private readonly Dictionary<long, long> _pairCounts = new();
        private readonly Dictionary<long, List<int>> _pairWords = new();
        private readonly PriorityQueue<long, (long Count, long Pair)> _heap;
        private readonly List<long> _increased = new();
        private readonly List<(int Left, int Right)> _merges = new();
        private readonly HashSet<long> _mergedPairs = new();
        private readonly string[] _specialTokens;

        public TrainingRun(Dictionary<string, long> wordCounts, string[] specialTokens)
        {
            _specialTokens = specialTokens;
            _reserved = specialTokens.Select(s => ByteLevelAlphabet.Encode(Encoding.UTF8.GetBytes(s))).ToHashSet(StringComparer.Ordinal);
            for (int b = 0; b < 256; b++)
            {
                AddSymbol(ByteLevelAlphabet.ByteToChar[b].ToString());
            }
            _heap = new PriorityQueue<long, (long, long)>(new PairOrder(_symbols));

            // Sorted words make the word order, and so any order-dependent detail, independent of hashing.
            var words = wordCounts.OrderBy(w => w.Key, StringComparer.Ordinal).ToArray();
            _words = new int[words.Length][];
            _lengths = new int[words.Length];
            _counts = new long[words.Length];
            _lastVisit = new int[words.Length];
            for (int w = 0; w < words.Length; w++)
            {
                byte[] bytes = Encoding.UTF8.GetBytes(words[w].Key);
                _words[w] = Array.ConvertAll(bytes, b => (int)b);
                _lengths[w] = bytes.Length;
                _counts[w] = words[w].Value;
                for (int i = 0; i + 1 < bytes.Length; i++)
                {
                    Change(Pair(bytes[i], bytes[i + 1]), _counts[w], w);
                }
            }
            foreach (var (pair, count) in _pairCounts)
            {
                _heap.Enqueue(pair, (count, pair));
            }
            _increased.Clear();
        }

        private int AddSymbol(string text)
        {
            _symbols.Add(text);
            _symbolIds.Add(text, _symbols.Count - 1);
            return _symbols.Count - 1;
        }

        public void Learn(int newTokens)
        {
            int made = 0;
            int visit = 0;
            while (made < newTokens && TryTakeBest(out long pair))
            {
                int left = (int)(pair >> 32), right = (int)pair;
                string joined = _symbols[left] + _symbols[right];
                if (_reserved.Contains(joined))
                {
                    continue; // would spell a special token: never merge this pair
                }
                if (!_symbolIds.TryGetValue(joined, out int merged))
                {
                    merged = AddSymbol(joined);
                    made++;
                }
                if (_mergedPairs.Add(pair))
                {
                    // A pair can come back when a later merge spells one of its tokens again;
                    // its merge is then applied but not written twice.
                    _merges.Add((left, right));
                }
                visit++;
                foreach (int w in _pairWords[pair])
                {
                    if (_lastVisit[w] != visit)
                    {
                        _lastVisit[w] = visit;
                        MergeInWord(w, left, right, merged);
                    }
                }
                _pairCounts.Remove(pair);
                _pairWords.Remove(pair);
                foreach (long changed in _increased)
                {
                    if (_pairCounts.TryGetValue(changed, out long count) && count > 0)
                    {
                        _heap.Enqueue(changed, (count, changed));
                    }
                }
                _increased.Clear();
            }
        }

        /// <summary>
        /// Pops the most frequent pair. Entries are not updated when a count falls, so a popped
        /// entry whose count is too high goes back with its current count; one whose count is too
        /// low is dropped, because a count that rises is always pushed anew.
        /// </summary>
        private bool TryTakeBest(out long pair)
        {
            while (_heap.TryDequeue(out pair, out var entry))
            {
                long current = _pairCounts.GetValueOrDefault(pair);
                if (current == entry.Count && current > 0)
                {
                    return true;
                }
                if (current > 0 && current < entry.Count)
                {
                    _heap.Enqueue(pair, (current, pair));
                }
            }
            return false;
        }

        /// <summary>
        /// Merges every occurrence of (left, right) in a word, left to right, rewriting it in place,
        /// and moves the word's weight from the pairs that disappear to the pairs that appear.
        /// </summary>
        private void MergeInWord(int w, int left, int right, int merged)
        {
            int[] symbols = _words[w];
            int length = _lengths[w];
            long count = _counts[w];
            int read = 0, write = 0;
            while (read < length)
            {
                if (read + 1 < length && symbols[read] == left && symbols[read + 1] == right)
                {
                    if (write > 0)
                    {
                        int before = symbols[write - 1];
                        Change(Pair(before, left), -count, w);
                        Change(Pair(before, merged), count, w);
                    }
                    if (read + 2 < length)
                    {
                        int after = symbols[read + 2];
                        Change(Pair(right, after), -count, w);
                        Change(Pair(merged, after), count, w);
                    }
                    symbols[write++] = merged;
                    read += 2;
                }
                else
                {
                    symbols[write++] = symbols[read++];
                }
            }
            _lengths[w] = write;
        }

        private void Change(long pair, long delta, int word)
        {
            ref long count = ref CollectionsMarshal.GetValueRefOrAddDefault(_pairCounts, pair, out _);
            count += delta;
            if (delta > 0)
            {
                ref List<int>? where = ref CollectionsMarshal.GetValueRefOrAddDefault(_pairWords, pair, out _);
                where ??= new List<int>();
                if (where.Count == 0 || where[^1] != word)
                {
                    where.Add(word);
                }
                _increased.Add(pair);
            }
        }

        private static long Pair(int left, int right) => ((long)left << 32) | (uint)right;

        /// <summary>The tokenizer of the learned merges, with GPT-2's id layout.</summary>
        public ByteLevelBpe Build()
        {
            // Internal symbols: bytes by value, then learned tokens. Final ids: bytes in GPT-2's order.
            var ids = new int[_symbols.Count];
            for (int i = 0; i < 256; i++)
            {
                ids[ByteLevelAlphabet.GptOrder[i]] = i;
            }
            for (int s = 256; s < _symbols.Count; s++)
            {
                ids[s] = s;
            }
            var tokens = new string[_symbols.Count + _specialTokens.Length];
            for (int s = 0; s < _symbols.Count; s++)
            {
                tokens[ids[s]] = _symbols[s];
            }
            for (int i = 0; i < _specialTokens.Length; i++)
            {
                tokens[_symbols.Count + i] = ByteLevelAlphabet.Encode(Encoding.UTF8.GetBytes(_specialTokens[i]));
            }
            var merges = new List<MergeLine>(_merges.Count);
            for (int rank = 0; rank < _merges.Count; rank++)
            {
                var (left, right) = _merges[rank];
                merges.Add(new MergeLine(_symbols[left], _symbols[right], rank + 2));
            }
            const string Source = "(trained vocabulary)";
            return ByteLevelBpe.Create(tokens, merges, Source, Source);
        }
    }

    /// <summary>Most frequent first; ties by the left token's, then the right token's byte-level string, ordinal.</summary>
    private sealed class PairOrder(List<string> symbols) : IComparer<(long Count, long Pair)>
    {
        public int Compare((long Count, long Pair) x, (long Count, long Pair) y)
        {
            if (x.Count != y.Count)
            {
                return y.Count.CompareTo(x.Count);
            }
            if (x.Pair == y.Pair)
            {
                return 0;
            }
            int order = string.CompareOrdinal(symbols[(int)(x.Pair >> 32)], symbols[(int)(y.Pair >> 32)]);
            return order != 0 ? order : string.CompareOrdinal(symbols[(int)x.Pair], symbols[(int)y.Pair]);
        }
    }
}
