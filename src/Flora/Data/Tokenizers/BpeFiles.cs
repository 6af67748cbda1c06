using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace Flora.Data.Tokenizers;

/// <summary>One merge of <c>vocab.bpe</c> and the line it stands on (1-based).</summary>
internal readonly record struct MergeLine(string Left, string Right, int Line);

/// <summary>
/// Reads and writes GPT-2's two tokenizer files, raw or gzip-compressed:
/// <c>encoder.json</c>, one JSON object from each token's byte-level string to its id, and
/// <c>vocab.bpe</c>, a <c>#version</c> line then one merge <c>left right</c> per line, most
/// frequent first. Every problem is a <see cref="DataFormatException"/> naming the file and,
/// where it helps, the line.
/// </summary>
internal static class BpeFiles
{
    /// <summary>The first line GPT-2 writes in <c>vocab.bpe</c>.</summary>
    public const string VersionLine = "#version: 0.2";

    private const int MaxShownChars = 60;

    private static readonly UTF8Encoding Utf8NoBom = new(encoderShouldEmitUTF8Identifier: false);

    /// <summary>All bytes of a file, decompressed when it is gzip (by name or by its magic bytes).</summary>
    public static byte[] ReadFile(string path) => ReadFile(path, out _);

    /// <summary>All bytes of a file, decompressed when it is gzip; <paramref name="stored"/> gets the bytes as stored.</summary>
    public static byte[] ReadFile(string path, out byte[] stored)
    {
        if (!File.Exists(path))
        {
            string problem = Directory.Exists(path) ? "is a directory, not a file" : "file not found";
            throw new DataFormatException(path, problem);
        }
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataFormatException(path, $"cannot read the file: {e.Message}");
        }
        stored = bytes;
        bool gzip = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase)
            || (bytes.Length >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b);
        return gzip ? Gunzip(bytes, path) : bytes;
    }

    /// <summary>All bytes of a stream, decompressed when <paramref name="gzip"/>.</summary>
    public static byte[] ReadStream(Stream stream, string name, bool gzip)
    {
        var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        byte[] bytes = buffer.ToArray();
        return gzip ? Gunzip(bytes, name) : bytes;
    }

    /// <summary>
    /// Decompresses a single-member gzip file and checks its trailer. .NET's <see cref="GZipStream"/>
    /// quietly returns what it has when the input is cut short, so the CRC-32 and length stored in
    /// the last 8 bytes are compared with what was decompressed.
    /// </summary>
    public static byte[] Gunzip(byte[] compressed, string path)
    {
        const int MinimumGzipBytes = 18; // 10-byte header, empty deflate stream, 8-byte trailer
        if (compressed.Length < MinimumGzipBytes || compressed[0] != 0x1f || compressed[1] != 0x8b)
        {
            throw new DataFormatException(path,
                $"not a gzip file or truncated: {compressed.Length} bytes, a gzip file has at least {MinimumGzipBytes} starting 1f 8b");
        }
        byte[] data;
        try
        {
            using var gzip = new GZipStream(new MemoryStream(compressed, writable: false), CompressionMode.Decompress);
            var output = new MemoryStream();
            gzip.CopyTo(output);
            data = output.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new DataFormatException(path, $"corrupt gzip stream: {e.Message}");
        }
        catch (IOException e)
        {
            throw new DataFormatException(path, $"cannot decompress: {e.Message}");
        }
        uint storedCrc = BinaryPrimitives.ReadUInt32LittleEndian(compressed.AsSpan(compressed.Length - 8));
        uint storedSize = BinaryPrimitives.ReadUInt32LittleEndian(compressed.AsSpan(compressed.Length - 4));
        if (storedSize != (uint)data.Length || storedCrc != Crc32.Compute(data))
        {
            throw new DataFormatException(path,
                $"truncated or corrupt gzip stream: the trailer does not match the {data.Length} bytes decompressed "
                + "(the file may be cut short; concatenated gzip members are not supported)");
        }
        return data;
    }

    /// <summary>Parses <c>encoder.json</c> into the token string of each id; ids must be 0..N-1.</summary>
    public static string[] ParseEncoder(byte[] json, string path)
    {
        ReadOnlySpan<byte> span = SkipBom(json);
        int offset = json.Length - span.Length;
        CheckUtf8(span, offset, json, path);
        if (span.Trim(" \t\r\n"u8).IsEmpty)
        {
            throw new DataFormatException(path, "empty file: expected a JSON object mapping each token to its id");
        }
        var byToken = new Dictionary<string, int>(StringComparer.Ordinal);
        var byId = new Dictionary<int, string>();
        try
        {
            var reader = new Utf8JsonReader(span, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow });
            reader.Read();
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw new DataFormatException(path,
                    $"line {LineOf(json, offset + reader.TokenStartIndex)}: expected a JSON object mapping each token to its id, found {Describe(reader.TokenType)}");
            }
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                // Lines are counted only for a message: counting for every entry would be quadratic.
                long start = offset + reader.TokenStartIndex;
                string token = ReadTokenName(ref reader, path, json, start);
                reader.Read();
                if (reader.TokenType != JsonTokenType.Number)
                {
                    throw new DataFormatException(path,
                        $"line {LineOf(json, start)}: the id of token {Show(token)} is {Describe(reader.TokenType)}, not an integer");
                }
                if (!reader.TryGetInt32(out int id) || id < 0)
                {
                    string raw = Encoding.UTF8.GetString(reader.ValueSpan);
                    throw new DataFormatException(path,
                        $"line {LineOf(json, start)}: the id of token {Show(token)} is {raw}, not an integer from 0 to {int.MaxValue}");
                }
                if (token.Length == 0)
                {
                    throw new DataFormatException(path, $"line {LineOf(json, start)}: empty token (id {id})");
                }
                if (!byToken.TryAdd(token, id))
                {
                    throw new DataFormatException(path,
                        $"line {LineOf(json, start)}: token {Show(token)} appears twice (ids {byToken[token]} and {id})");
                }
                if (!byId.TryAdd(id, token))
                {
                    throw new DataFormatException(path,
                        $"line {LineOf(json, start)}: duplicate id {id}, given to both {Show(byId[id])} and {Show(token)}");
                }
            }
            if (reader.TokenType != JsonTokenType.EndObject)
            {
                throw new DataFormatException(path, "truncated: the JSON object is not closed");
            }
            if (reader.Read())
            {
                throw new DataFormatException(path,
                    $"line {LineOf(json, offset + reader.TokenStartIndex)}: unexpected {Describe(reader.TokenType)} after the object");
            }
        }
        catch (JsonException e)
        {
            throw new DataFormatException(path, $"line {(e.LineNumber ?? 0) + 1}: invalid JSON: {FirstSentence(e.Message)}");
        }
        var tokens = new string[byId.Count];
        foreach (var (id, token) in byId)
        {
            if (id >= tokens.Length)
            {
                int missing = Enumerable.Range(0, tokens.Length).First(i => !byId.ContainsKey(i));
                throw new DataFormatException(path,
                    $"the {tokens.Length} ids must be 0 to {tokens.Length - 1} without gaps, but token {Show(token)} has id {id} and id {missing} is missing");
            }
            tokens[id] = token;
        }
        return tokens;
    }

    private static string ReadTokenName(ref Utf8JsonReader reader, string path, byte[] json, long start)
    {
        try
        {
            return reader.GetString()!;
        }
        catch (InvalidOperationException e)
        {
            throw new DataFormatException(path, $"line {LineOf(json, start)}: unreadable token name: {e.Message}");
        }
    }

    /// <summary>Parses <c>vocab.bpe</c>: a <c>#version</c> line, then one merge per line; blank lines are skipped.</summary>
    public static List<MergeLine> ParseMerges(byte[] bytes, string path)
    {
        ReadOnlySpan<byte> span = SkipBom(bytes);
        int offset = bytes.Length - span.Length;
        CheckUtf8(span, offset, bytes, path);
        string text = Encoding.UTF8.GetString(span);
        if (text.Length == 0)
        {
            throw new DataFormatException(path, $"empty file: expected the header \"{VersionLine}\" and one merge per line");
        }
        var merges = new List<MergeLine>();
        int lineNumber = 0;
        foreach (ReadOnlySpan<char> rawLine in text.AsSpan().EnumerateLines())
        {
            lineNumber++;
            ReadOnlySpan<char> line = rawLine;
            if (lineNumber == 1)
            {
                if (!line.StartsWith("#version", StringComparison.Ordinal))
                {
                    throw new DataFormatException(path,
                        $"line 1: expected the header \"{VersionLine}\", found {Show(line.ToString())}");
                }
                continue;
            }
            line = line.Trim(" \t");
            if (line.IsEmpty)
            {
                continue;
            }
            int space = line.IndexOfAny(' ', '\t');
            ReadOnlySpan<char> left = space < 0 ? line : line[..space];
            ReadOnlySpan<char> right = space < 0 ? default : line[(space + 1)..].TrimStart(" \t");
            if (space < 0 || right.IndexOfAny(' ', '\t') >= 0)
            {
                throw new DataFormatException(path,
                    $"line {lineNumber}: expected a merge of two tokens separated by a space, found {Show(line.ToString())}");
            }
            merges.Add(new MergeLine(left.ToString(), right.ToString(), lineNumber));
        }
        return merges;
    }

    /// <summary>
    /// <c>encoder.json</c> exactly as GPT-2 writes it (Python's <c>json.dumps</c> defaults): one line,
    /// <c>", "</c> and <c>": "</c> separators, every character outside printable ASCII as <c>\uXXXX</c>.
    /// </summary>
    public static byte[] FormatEncoder(IReadOnlyList<string> tokens)
    {
        var json = new StringBuilder(tokens.Count * 12);
        json.Append('{');
        for (int id = 0; id < tokens.Count; id++)
        {
            if (id > 0)
            {
                json.Append(", ");
            }
            AppendPythonJsonString(json, tokens[id]);
            json.Append(": ").Append(id.ToString(CultureInfo.InvariantCulture));
        }
        json.Append('}');
        return Encoding.ASCII.GetBytes(json.ToString());
    }

    /// <summary><c>vocab.bpe</c> as GPT-2 writes it: the version line, then <c>left right</c> per line, each ended by a newline.</summary>
    public static byte[] FormatMerges(IReadOnlyList<(string Left, string Right)> merges)
    {
        var text = new StringBuilder(merges.Count * 10);
        text.Append(VersionLine).Append('\n');
        foreach (var (left, right) in merges)
        {
            text.Append(left).Append(' ').Append(right).Append('\n');
        }
        return Utf8NoBom.GetBytes(text.ToString());
    }

    private static void AppendPythonJsonString(StringBuilder json, string value)
    {
        json.Append('"');
        foreach (char c in value)
        {
            switch (c)
            {
                case '"': json.Append("\\\""); break;
                case '\\': json.Append("\\\\"); break;
                case '\n': json.Append("\\n"); break;
                case '\r': json.Append("\\r"); break;
                case '\t': json.Append("\\t"); break;
                case '\b': json.Append("\\b"); break;
                case '\f': json.Append("\\f"); break;
                default:
                    if (c is >= ' ' and <= '~')
                    {
                        json.Append(c);
                    }
                    else
                    {
                        json.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    break;
            }
        }
        json.Append('"');
    }

    private static ReadOnlySpan<byte> SkipBom(byte[] bytes) =>
        bytes.AsSpan().StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]) ? bytes.AsSpan(3) : bytes;

    private static void CheckUtf8(ReadOnlySpan<byte> span, int offset, byte[] whole, string path)
    {
        var chars = new char[4096];
        int done = 0;
        while (done < span.Length)
        {
            var status = Utf8.ToUtf16(span[done..], chars, out int read, out _, replaceInvalidSequences: false);
            done += read;
            if (status == System.Buffers.OperationStatus.InvalidData
                || status == System.Buffers.OperationStatus.NeedMoreData)
            {
                throw new DataFormatException(path,
                    $"line {LineOf(whole, offset + done)}: not valid UTF-8 (byte offset {offset + done})");
            }
        }
    }

    /// <summary>The 1-based line of a byte offset.</summary>
    public static int LineOf(byte[] bytes, long offset)
    {
        int end = (int)Math.Min(offset, bytes.Length);
        return bytes.AsSpan(0, end).Count((byte)'\n') + 1;
    }

    /// <summary>A token quoted for a message, shortened when long.</summary>
    public static string Show(string token)
    {
        string shown = token.Length <= MaxShownChars ? token : token[..MaxShownChars] + "...";
        var quoted = new StringBuilder(shown.Length + 2).Append('"');
        foreach (char c in shown)
        {
            if (char.IsControl(c) || char.IsSurrogate(c))
            {
                quoted.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
            }
            else
            {
                quoted.Append(c);
            }
        }
        return quoted.Append('"').ToString();
    }

    private static string Describe(JsonTokenType type) => type switch
    {
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        JsonTokenType.EndObject => "the end of an object",
        JsonTokenType.EndArray => "the end of an array",
        _ => type.ToString(),
    };

    private static string FirstSentence(string message)
    {
        int end = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return (end > 0 ? message[..end] : message).Trim();
    }
}

/// <summary>CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) as gzip stores it.</summary>
internal static class Crc32
{
    private static readonly uint[] Table = BuildTable();

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            }
            table[n] = c;
        }
        return table;
    }

    public static uint Compute(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFFu;
        foreach (byte b in data)
        {
            crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }
        return ~crc;
    }
}
