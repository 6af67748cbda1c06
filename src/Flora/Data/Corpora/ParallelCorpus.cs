using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Flora.Data.Corpora;

/// <summary>
/// Verse pairs for translation (<see cref="VersePair"/>): their split into training, validation and test pairs, and
/// the tab-separated files they are stored in (<c>pairs-train.tsv</c>, <c>pairs-validation.tsv</c>,
/// <c>pairs-test.tsv</c> of <see cref="PreparedData"/>).
/// <para>
/// The split rule: a pair's bucket is the SHA-256 of the UTF-8 bytes of its reference (such as "Genesis 1:1"), its
/// first 8 bytes read as a big-endian unsigned 64-bit integer, modulo 100. Buckets 0 and 1 go to test, 2 and 3 to
/// validation, 4 to 99 to training: about 2 % / 2 % / 96 %, scattered through the whole Bible, depending on nothing
/// but the reference (not on the order, the other pairs, a seed or the text).
/// </para>
/// <para>
/// The file format: UTF-8 without byte-order mark, one pair per line, lines ending with "\n" (the last one too), each
/// line <c>reference TAB source TAB target</c>, as in "Genesis 1:1\tEN el principio crió Dios...\tIn the beginning,
/// God created...". For the prepared Bible data the source is Spanish and the target English. The reference is
/// "Book C:V"; the texts are one line each, with no tab and no line break, never empty. No header line.
/// </para>
/// </summary>
public static partial class ParallelCorpus
{
    /// <summary>Buckets below this go to test.</summary>
    public const int TestBuckets = 2;

    /// <summary>Buckets from <see cref="TestBuckets"/> up to below this go to validation; the rest to training.</summary>
    public const int ValidationBucketsEnd = 4;

    /// <summary>The number of buckets.</summary>
    public const int Buckets = 100;

    /// <summary>The bucket of a reference, 0 to 99, by the rule on the class.</summary>
    public static int BucketOf(string reference)
    {
        ArgumentException.ThrowIfNullOrEmpty(reference);
        byte[] hash = SHA256.HashData(Encoding.UTF8.GetBytes(reference));
        return (int)(BinaryPrimitives.ReadUInt64BigEndian(hash) % Buckets);
    }

    /// <summary>The split of a reference by the rule on the class.</summary>
    public static CorpusSplit SplitOf(string reference) => BucketOf(reference) switch
    {
        < TestBuckets => CorpusSplit.Test,
        < ValidationBucketsEnd => CorpusSplit.Validation,
        _ => CorpusSplit.Train,
    };

    /// <summary>The pairs of one split, in their order.</summary>
    public static IReadOnlyList<VersePair> Select(IEnumerable<VersePair> pairs, CorpusSplit split)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        return pairs.Where(p => SplitOf(p.Reference) == split).ToList();
    }

    /// <summary>The file text of pairs in the format on the class.</summary>
    /// <exception cref="ArgumentException">A reference is not "Book C:V", or a text is empty or holds a tab or a line break.</exception>
    public static string Format(IEnumerable<VersePair> pairs)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var text = new StringBuilder();
        foreach (var pair in pairs)
        {
            if (!ReferencePattern().IsMatch(pair.Reference))
            {
                throw new ArgumentException($"'{pair.Reference}' is not a reference like 'Genesis 1:1'", nameof(pairs));
            }
            foreach (string t in new[] { pair.Source, pair.Target })
            {
                if (t.Trim().Length == 0 || t.IndexOfAny(['\t', '\n', '\r']) >= 0)
                {
                    throw new ArgumentException($"{pair.Reference}: a text must be one non-empty line without tabs", nameof(pairs));
                }
            }
            text.Append(pair.Reference).Append('\t').Append(pair.Source).Append('\t').Append(pair.Target).Append('\n');
        }
        return text.ToString();
    }

    /// <summary>Reads a file of pairs in the format on the class.</summary>
    /// <param name="path">The file. A leading UTF-8 byte-order mark and "\r\n" line endings are accepted.</param>
    /// <returns>The pairs, in file order; never empty.</returns>
    /// <exception cref="DataFormatException">The file is missing or empty, or a line is not valid UTF-8, has other
    /// than three tab-separated fields, an empty text, a reference not like "Genesis 1:1" or one seen before:
    /// the message names the file and the line.</exception>
    public static IReadOnlyList<VersePair> Load(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path)) throw new DataFormatException(path, "file not found");
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length == 0) throw new DataFormatException(path, "the file is empty: expected lines 'reference TAB spanish TAB english'");
        var span = bytes.AsSpan();
        if (span.StartsWith("\uFEFF"u8)) span = span[3..];

        var pairs = new List<VersePair>();
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        int lineNumber = 0;
        while (span.Length > 0)
        {
            lineNumber++;
            int end = span.IndexOf((byte)'\n');
            var lineBytes = end < 0 ? span : span[..end];
            span = end < 0 ? [] : span[(end + 1)..];
            if (lineBytes.EndsWith("\r"u8)) lineBytes = lineBytes[..^1];
            int bad = Utf8Bytes.FirstInvalid(lineBytes);
            if (bad >= 0)
            {
                throw new DataFormatException(path, $"line {lineNumber}: not valid UTF-8 (bad byte 0x{lineBytes[bad]:X2} at byte {bad + 1} of the line): the file must be UTF-8 text");
            }
            string line = Encoding.UTF8.GetString(lineBytes);
            if (line.Length == 0)
            {
                throw new DataFormatException(path, $"line {lineNumber}: empty line: expected 'reference TAB spanish TAB english'");
            }
            string[] fields = line.Split('\t');
            if (fields.Length != 3)
            {
                throw new DataFormatException(path,
                    $"line {lineNumber}: expected 3 tab-separated fields (reference, spanish, english), found {fields.Length}");
            }
            if (!ReferencePattern().IsMatch(fields[0]))
            {
                throw new DataFormatException(path, $"line {lineNumber}: '{Shorten(fields[0])}' is not a reference like 'Genesis 1:1'");
            }
            if (fields[1].Trim().Length == 0) throw new DataFormatException(path, $"line {lineNumber} ({fields[0]}): the spanish text is empty");
            if (fields[2].Trim().Length == 0) throw new DataFormatException(path, $"line {lineNumber} ({fields[0]}): the english text is empty");
            if (!seen.TryAdd(fields[0], lineNumber))
            {
                throw new DataFormatException(path, $"line {lineNumber}: {fields[0]} appears again (first on line {seen[fields[0]]})");
            }
            pairs.Add(new VersePair(fields[0], fields[1], fields[2]));
        }
        if (pairs.Count == 0) throw new DataFormatException(path, "the file has no pairs");
        return pairs;
    }

    private static string Shorten(string s) => s.Length <= 60 ? s : s[..57] + "...";

    /// <summary>"Book C:V": a book name that starts and ends with a non-blank character, a space, chapter:verse.</summary>
    [GeneratedRegex(@"^\S(?:.*\S)? [0-9]+:[0-9]+$")]
    private static partial Regex ReferencePattern();
}
