using System.Buffers.Binary;
using System.IO.Compression;

using Flora.Data.Corpora;

namespace Flora.Experiments.Bible;

/// <summary>
/// Gzip (RFC 1952) whose bytes depend only on the input: the header is written here with modification time 0,
/// no file name, no flags, XFL 2 (best compression) and OS 255 (unknown), so neither the clock, the file name
/// nor the operating system leak in; the body is raw DEFLATE from <see cref="DeflateStream"/> at
/// <see cref="CompressionLevel.SmallestSize"/>, which the same runtime's zlib produces identically every time;
/// the trailer is the CRC-32 and the length mod 2^32.
/// </summary>
internal static class DeterministicGzip
{
    private static readonly byte[] Header = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff];

    private static readonly uint[] CrcTable = BuildCrcTable();

    /// <summary>Compresses <paramref name="data"/> into a gzip member.</summary>
    public static byte[] Compress(ReadOnlySpan<byte> data)
    {
        using var output = new MemoryStream(data.Length / 3 + 64);
        output.Write(Header);
        using (var deflate = new DeflateStream(output, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            deflate.Write(data);
        }
        Span<byte> trailer = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(trailer, Crc32(data));
        BinaryPrimitives.WriteUInt32LittleEndian(trailer[4..], (uint)data.Length);
        output.Write(trailer);
        return output.ToArray();
    }

    /// <summary>Decompresses gzip data (any valid gzip, not only what <see cref="Compress"/> writes).</summary>
    /// <exception cref="InvalidDataException">The data is not valid gzip.</exception>
    public static byte[] Decompress(byte[] gzip)
    {
        using var input = new GZipStream(new MemoryStream(gzip), CompressionMode.Decompress);
        using var output = new MemoryStream(gzip.Length * 4);
        input.CopyTo(output);
        return output.ToArray();
    }

    /// <summary>The CRC-32 of gzip and zip (IEEE 802.3, reflected polynomial 0xEDB88320).</summary>
    public static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFFu;
        foreach (byte b in data) crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return ~crc;
    }

    private static uint[] BuildCrcTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }
}
