namespace Flora.Data.Tokenizers;

/// <summary>
/// GPT-2's reversible map from the 256 byte values to 256 printable characters, so that a
/// byte-level token can be written as an ordinary string in <c>encoder.json</c> and <c>vocab.bpe</c>.
/// </summary>
/// <remarks>
/// The printable bytes <c>!</c>..<c>~</c>, U+00A1..U+00AC and U+00AE..U+00FF stand for themselves;
/// the other 68 bytes (controls, space, DEL, U+0080..U+00A0 and the soft hyphen), in increasing
/// order, take U+0100, U+0101, ... . So space is <c>Ġ</c> (U+0120) and newline is <c>Ċ</c> (U+010A).
/// GPT-2 numbers its first 256 tokens in the same order: first the bytes that stand for themselves,
/// then the remapped ones.
/// </remarks>
internal static class ByteLevelAlphabet
{
    /// <summary>The largest character the alphabet uses (U+0143).</summary>
    public const char MaxChar = (char)0x143;

    /// <summary>The character standing for each byte.</summary>
    public static readonly char[] ByteToChar = new char[256];

    /// <summary>The byte each character stands for, or -1; indexed by character up to <see cref="MaxChar"/>.</summary>
    public static readonly short[] CharToByte = new short[MaxChar + 1];

    /// <summary>The bytes in GPT-2's token order: token id <c>i</c> (for i &lt; 256) is byte <c>GptOrder[i]</c>.</summary>
    public static readonly byte[] GptOrder = new byte[256];

    static ByteLevelAlphabet()
    {
        Array.Fill(CharToByte, (short)-1);
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            if (StandsForItself(b))
            {
                GptOrder[next++] = (byte)b;
                ByteToChar[b] = (char)b;
            }
        }
        int remapped = 0;
        for (int b = 0; b < 256; b++)
        {
            if (!StandsForItself(b))
            {
                GptOrder[next++] = (byte)b;
                ByteToChar[b] = (char)(256 + remapped++);
            }
        }
        for (int b = 0; b < 256; b++)
        {
            CharToByte[ByteToChar[b]] = (short)b;
        }
    }

    private static bool StandsForItself(int b) =>
        b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;

    /// <summary>The byte-level string of some bytes.</summary>
    public static string Encode(ReadOnlySpan<byte> bytes)
    {
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++)
        {
            chars[i] = ByteToChar[bytes[i]];
        }
        return new string(chars);
    }

    /// <summary>
    /// The bytes of a byte-level string, or null when a character is not in the alphabet
    /// (then <paramref name="badIndex"/> is its position).
    /// </summary>
    public static byte[]? TryDecode(string text, out int badIndex)
    {
        var bytes = new byte[text.Length];
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            int b = c <= MaxChar ? CharToByte[c] : -1;
            if (b < 0)
            {
                badIndex = i;
                return null;
            }
            bytes[i] = (byte)b;
        }
        badIndex = -1;
        return bytes;
    }
}
