using System.IO.MemoryMappedFiles;
using System.Security.Cryptography;
using System.Text;

namespace Flora.Data;

/// <summary>
/// A read-only sequence of token ids: in memory, or a token file mapped from disk, so that a tokenised corpus is
/// read by the page cache instead of being tokenised again or loaded whole. A token file is
/// <c>"FLTOKENS"</c> (8 bytes), the count as int64, then the ids as little-endian int32.
/// <see cref="Cached"/> keeps such files in a cache directory under a key derived from the tokenizer and the
/// text, written to a temporary file and renamed, so a crash never leaves a half-written file under the key.
/// </summary>
public sealed unsafe class TokenStore : IDisposable
{
    private static readonly byte[] Magic = "FLTOKENS"u8.ToArray();
    private const int HeaderBytes = 16;

    private readonly int[]? _array;
    private readonly MemoryMappedFile? _file;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly int* _tokens;

    private TokenStore(int[] array)
    {
        _array = array;
        Length = array.Length;
    }

    private TokenStore(MemoryMappedFile file, MemoryMappedViewAccessor view, long length, string path)
    {
        (_file, _view, Length, Path) = (file, view, length, path);
        byte* start = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
        _tokens = (int*)(start + view.PointerOffset + HeaderBytes);
    }

    /// <summary>Tokens in the store.</summary>
    public long Length { get; }

    /// <summary>The token file behind the store, or null when it lives in memory.</summary>
    public string? Path { get; }

    /// <summary>A store over <paramref name="tokens"/> in memory (held, not copied).</summary>
    public static TokenStore FromArray(int[] tokens) => new(tokens);

    /// <summary>Tokens [start, start + count).</summary>
    public ReadOnlySpan<int> Slice(long start, int count)
    {
        if (start < 0 || count < 0 || start + count > Length)
            throw new ArgumentOutOfRangeException(nameof(start), $"tokens [{start}, {start + count}) are outside a store of {Length}");
        return _array is not null ? _array.AsSpan((int)start, count) : new ReadOnlySpan<int>(_tokens + start, count);
    }

    /// <summary>Maps a token file; a file of another format or a truncated one is an error naming the file.</summary>
    public static TokenStore Open(string path)
    {
        long size = new FileInfo(path).Length;
        Span<byte> header = stackalloc byte[HeaderBytes];
        using (var stream = File.OpenRead(path))
            if (stream.ReadAtLeast(header, HeaderBytes, throwOnEndOfStream: false) < HeaderBytes || !header[..8].SequenceEqual(Magic))
                throw new InvalidDataException($"{path}: not a Flora token file (no FLTOKENS header)");
        long count = BitConverter.ToInt64(header[8..]);
        if (count < 0 || size != HeaderBytes + count * 4)
            throw new InvalidDataException($"{path}: the header announces {count} tokens but the file has {size} bytes (expected {HeaderBytes + count * 4L}): truncated or corrupt");
        var file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            return new TokenStore(file, file.CreateViewAccessor(0, size, MemoryMappedFileAccess.Read), count, path);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Writes <paramref name="tokens"/> as a token file (to a temporary name, then renamed into place).</summary>
    public static void Write(string path, ReadOnlySpan<int> tokens)
    {
        string temporary = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var stream = File.Create(temporary))
            {
                stream.Write(Magic);
                Span<byte> count = stackalloc byte[8];
                BitConverter.TryWriteBytes(count, (long)tokens.Length);
                stream.Write(count);
                stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(tokens));
            }
            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary)) File.Delete(temporary);
        }
    }

    /// <summary>
    /// The tokens of <paramref name="text"/> under <paramref name="tokenizerIdentity"/>: mapped from the cache when
    /// they are there, otherwise tokenised by <paramref name="tokenize"/>, written to the cache and mapped. Without a
    /// cache directory (null) the tokens stay in memory.
    /// </summary>
    public static TokenStore Cached(string? cacheDirectory, string tokenizerIdentity, string text, Func<string, int[]> tokenize, out bool hit)
    {
        hit = false;
        if (cacheDirectory is null) return FromArray(tokenize(text));
        string path = System.IO.Path.Combine(cacheDirectory, Key(tokenizerIdentity, text) + ".tokens");
        if (File.Exists(path))
        {
            try
            {
                var store = Open(path);
                hit = true;
                return store;
            }
            catch (InvalidDataException) { }                                 // a damaged entry: tokenise again
        }
        int[] tokens = tokenize(text);
        Directory.CreateDirectory(cacheDirectory);
        Write(path, tokens);
        return Open(path);
    }

    /// <summary>The cache key: SHA-256 of the tokenizer identity and the text.</summary>
    public static string Key(string tokenizerIdentity, string text)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData(Encoding.UTF8.GetBytes(tokenizerIdentity + "\n"));
        sha.AppendData(Encoding.UTF8.GetBytes(text));
        return Convert.ToHexString(sha.GetHashAndReset())[..32].ToLowerInvariant();
    }

    /// <summary>The default cache: FLORA_TOKEN_CACHE, or flora/tokens under the user's local data directory.</summary>
    public static string DefaultCacheDirectory =>
        Environment.GetEnvironmentVariable("FLORA_TOKEN_CACHE")
        ?? System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "flora", "tokens");

    /// <summary>Unmaps a token file; a store in memory has nothing to free. Spans returned by <see cref="Slice"/> are invalid afterwards.</summary>
    public void Dispose()
    {
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _file?.Dispose();
    }
}
