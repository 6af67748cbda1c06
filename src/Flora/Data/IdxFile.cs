using System.Buffers.Binary;
using System.IO.Compression;

namespace Flora.Data;

/// <summary>
/// Reads unsigned-byte IDX files (the format of MNIST and Fashion-MNIST), raw or gzip-compressed.
/// </summary>
/// <remarks>
/// An IDX file starts with a big-endian magic number: two zero bytes, a data-type byte
/// (only 0x08, unsigned byte, is supported) and a dimension-count byte. One big-endian
/// int32 per dimension follows, then the data, row-major. A file is read as gzip when its
/// name ends with <c>.gz</c> or it starts with the gzip magic bytes 1f 8b. The file is
/// streamed once; every problem is reported as a <see cref="DataFormatException"/>
/// naming the file.
/// </remarks>
internal static class IdxFile
{
    /// <summary>Magic number of an unsigned-byte file with 3 dimensions (count, rows, columns).</summary>
    public const int ImagesMagic = 0x00000803;

    /// <summary>Magic number of an unsigned-byte file with 1 dimension (count).</summary>
    public const int LabelsMagic = 0x00000801;

    private const byte UnsignedByteType = 0x08;
    private const int FirstChunkBytes = 1 << 24;
    private const int FileBufferBytes = 1 << 16;

    /// <summary>Reads a 3-dimensional IDX file of images.</summary>
    /// <param name="path">The file, raw or gzip-compressed.</param>
    /// <returns>The image count, the rows and columns of one image, and all pixels row-major.</returns>
    /// <exception cref="DataFormatException">The file is missing, unreadable or malformed.</exception>
    public static (int Count, int Rows, int Cols, byte[] Pixels) ReadImages(string path)
    {
        var (sizes, data) = Read(path, dimensions: 3);
        if (sizes[1] == 0 || sizes[2] == 0)
        {
            throw new DataFormatException(path, $"absurd image size {sizes[1]} x {sizes[2]}: rows and columns must be positive");
        }
        return (sizes[0], sizes[1], sizes[2], data);
    }

    /// <summary>Reads a 1-dimensional IDX file of labels.</summary>
    /// <param name="path">The file, raw or gzip-compressed.</param>
    /// <returns>One byte per example.</returns>
    /// <exception cref="DataFormatException">The file is missing, unreadable or malformed.</exception>
    public static byte[] ReadLabels(string path) => Read(path, dimensions: 1).Data;

    private static (int[] Sizes, byte[] Data) Read(string path, int dimensions)
    {
        if (!File.Exists(path))
        {
            string problem = Directory.Exists(path) ? "is a directory, not an IDX file" : "file not found";
            throw new DataFormatException(path, problem);
        }
        try
        {
            using Stream stream = Open(path);
            int[] sizes = ReadHeader(stream, path, dimensions);
            byte[] data = ReadData(stream, path, sizes);
            CheckNothingFollows(stream, path, data.Length);
            return (sizes, data);
        }
        catch (InvalidDataException e)
        {
            throw new DataFormatException(path, $"corrupt gzip stream: {e.Message}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataFormatException(path, $"cannot read the file: {e.Message}");
        }
    }

    private static Stream Open(string path)
    {
        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileBufferBytes);
        try
        {
            return IsGzip(path, file) ? new GZipStream(file, CompressionMode.Decompress) : file;
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static bool IsGzip(string path, FileStream file)
    {
        if (path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }
        Span<byte> start = stackalloc byte[2];
        int read = file.ReadAtLeast(start, start.Length, throwOnEndOfStream: false);
        file.Position = 0;
        return read == 2 && start[0] == 0x1f && start[1] == 0x8b;
    }

    private static int[] ReadHeader(Stream stream, string path, int dimensions)
    {
        int headerBytes = 4 + 4 * dimensions;
        Span<byte> header = stackalloc byte[headerBytes];
        int read = stream.ReadAtLeast(header, headerBytes, throwOnEndOfStream: false);
        if (read >= 4)
        {
            CheckMagic(path, header[..4], dimensions);
        }
        if (read < headerBytes)
        {
            throw new DataFormatException(path, $"truncated header: expected {headerBytes} bytes, found {read}");
        }
        var sizes = new int[dimensions];
        for (int i = 0; i < dimensions; i++)
        {
            sizes[i] = BinaryPrimitives.ReadInt32BigEndian(header.Slice(4 + 4 * i, 4));
        }
        return sizes;
    }

    private static void CheckMagic(string path, ReadOnlySpan<byte> magic, int dimensions)
    {
        int found = BinaryPrimitives.ReadInt32BigEndian(magic);
        int expected = (UnsignedByteType << 8) | dimensions;
        if (found == expected)
        {
            return;
        }
        string mismatch = $"wrong magic number 0x{found:X8}, expected 0x{expected:X8}";
        if (magic[0] != 0 || magic[1] != 0)
        {
            throw new DataFormatException(path, $"{mismatch}: not an IDX file");
        }
        if (magic[2] != UnsignedByteType)
        {
            throw new DataFormatException(path,
                $"{mismatch}: unsupported data type 0x{magic[2]:X2}, only 0x{UnsignedByteType:X2} (unsigned byte) is supported");
        }
        throw new DataFormatException(path, $"{mismatch}: wrong number of dimensions, found {magic[3]}, expected {dimensions}");
    }

    private static long DataLength(string path, int[] sizes)
    {
        long total = 1;
        for (int i = 0; i < sizes.Length; i++)
        {
            if (sizes[i] < 0)
            {
                throw new DataFormatException(path, $"absurd size {sizes[i]} for dimension {i}: sizes cannot be negative");
            }
            total *= sizes[i];
            if (total > Array.MaxLength)
            {
                throw new DataFormatException(path,
                    $"absurd dimensions {string.Join(" x ", sizes)}: more than {Array.MaxLength} bytes of data");
            }
        }
        return total;
    }

    /// <summary>
    /// Reads exactly the data the header announces. The buffer grows as data arrives, so a
    /// header that lies about a huge size fails as truncated instead of allocating it all.
    /// </summary>
    private static byte[] ReadData(Stream stream, string path, int[] sizes)
    {
        long expected = DataLength(path, sizes);
        var data = new byte[Math.Min(expected, FirstChunkBytes)];
        int filled = 0;
        while (true)
        {
            filled += stream.ReadAtLeast(data.AsSpan(filled), data.Length - filled, throwOnEndOfStream: false);
            if (filled == expected)
            {
                return data;
            }
            if (filled < data.Length)
            {
                throw new DataFormatException(path,
                    $"truncated data: expected {expected} bytes ({string.Join(" x ", sizes)}) after the header, found {filled}");
            }
            Array.Resize(ref data, (int)Math.Min(expected, 2L * data.Length));
        }
    }

    private static void CheckNothingFollows(Stream stream, string path, long dataLength)
    {
        var buffer = new byte[FileBufferBytes];
        long extra = 0;
        int read;
        while ((read = stream.Read(buffer)) > 0)
        {
            extra += read;
        }
        if (extra > 0)
        {
            throw new DataFormatException(path, $"trailing garbage: {extra} unexpected bytes after the {dataLength} data bytes");
        }
    }
}
