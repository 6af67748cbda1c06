using System.Security.Cryptography;

namespace Flora.Training;

/// <summary>
/// A file as a run recorded it: its absolute path, its size and its SHA-256, so that a file changed, replaced or
/// moved underneath a run is noticed instead of used silently.
/// </summary>
internal sealed record FileIdentity(string Path, long Bytes, string Sha256)
{
    /// <summary>Reads <paramref name="path"/> once, as a stream.</summary>
    public static FileIdentity Of(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return new FileIdentity(full, stream.Length, Convert.ToHexStringLower(SHA256.HashData(stream)));
    }

    /// <summary>"12,345 bytes, sha256 0123456789ab": enough to tell two versions apart in a message.</summary>
    public string Describe() => $"{Bytes:N0} bytes, sha256 {Sha256[..Math.Min(12, Sha256.Length)]}";
}
