namespace Flora.Reporting;

/// <summary>
/// Input files that must be ordinary files: a directory, a device (/dev/zero yields bytes forever), a pipe or a
/// /proc file is refused with a one-line message before anything reads it whole.
/// </summary>
internal static class RegularFile
{
    /// <summary>Opens <paramref name="path"/> for reading after checking it is a regular file of at most <paramref name="maxBytes"/>.</summary>
    /// <exception cref="DataFormatException">A directory, a missing file, not a regular file, or too large.</exception>
    public static FileStream Open(string path, long maxBytes)
    {
        if (Directory.Exists(path)) throw new DataFormatException(path, "is a directory: give a file");
        if (!File.Exists(path)) throw new DataFormatException(path, "file not found");
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            long length = stream.Length;
            if (length > maxBytes)
                throw new DataFormatException(path, $"{length / 1048576.0:N0} MiB: at most {maxBytes / 1048576.0:N0} MiB can be read; split the file");
            if (stream.CanSeek) stream.Position = length;
            if (!stream.CanSeek || stream.ReadByte() >= 0) throw new DataFormatException(path, "not a regular file (a device or a pipe): give a file");
            stream.Position = 0;
            return stream;
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>The whole of a regular file of at most <paramref name="maxBytes"/>.</summary>
    public static byte[] ReadAllBytes(string path, long maxBytes)
    {
        using var stream = Open(path, maxBytes);
        byte[] bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }
}
