using System.Text;

namespace Flora.Data.Corpora;

/// <summary>Locating invalid UTF-8, for error messages that point at the bad byte.</summary>
internal static class Utf8Bytes
{
    /// <summary>The offset of the first byte that does not start a valid UTF-8 sequence, or -1 when all are valid.</summary>
    public static int FirstInvalid(ReadOnlySpan<byte> bytes)
    {
        int i = 0;
        while (i < bytes.Length)
        {
            if (Rune.DecodeFromUtf8(bytes[i..], out _, out int consumed) != System.Buffers.OperationStatus.Done) return i;
            i += consumed;
        }
        return -1;
    }
}
