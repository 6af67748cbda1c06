using System.Text.Json;
using System.Text.Json.Serialization;
using Flora.Reporting;

namespace Flora.Training;

/// <summary>What <see cref="TrainingCheckpoint.Verify"/> found: each file's size and SHA-256, or no manifest at all.</summary>
/// <param name="Directory">The checkpoint directory.</param>
/// <param name="Files">The files the manifest lists (empty without a manifest).</param>
internal sealed record CheckpointVerification(string Directory, IReadOnlyList<CheckpointFile> Files)
{
    /// <summary>False for a checkpoint written before checksums existed: it loads, unverified.</summary>
    public bool Verified => Files.Count > 0;

    /// <summary>The one-line note for an unverified checkpoint; null when verified.</summary>
    public string? Note => Verified ? null
        : $"{Directory} has no {CheckpointManifest.FileName} (written by an older flora): it is loaded without checksums, unverified";
}

/// <summary>One file of a checkpoint as its manifest lists it.</summary>
/// <param name="Name">The file's name in the checkpoint directory.</param>
/// <param name="Bytes">Its size.</param>
/// <param name="Sha256">Its SHA-256, in lower-case hexadecimal.</param>
internal sealed record CheckpointFile(string Name, long Bytes, string Sha256);

/// <summary>
/// <c>manifest.json</c> of a checkpoint: the size and SHA-256 of every other file, written last into the
/// temporary directory (so a complete checkpoint always has one) and checked on every load. A single flipped bit
/// in a weight is then an error naming the file, not a silently different model.
/// </summary>
internal static class CheckpointManifest
{
    public const string FileName = "manifest.json", Format = "flora.checkpoint-manifest";
    public const int Version = 1;

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private sealed record Document(string Format, int Version, List<CheckpointFile> Files);

    /// <summary>Hashes every file of <paramref name="directory"/> and writes the manifest there.</summary>
    public static void Write(string directory)
    {
        var files = Directory.GetFiles(directory).Select(Path.GetFileName).Where(n => n != FileName).Order(StringComparer.Ordinal)
            .Select(n => { var id = FileIdentity.Of(Path.Combine(directory, n!)); return new CheckpointFile(n!, id.Bytes, id.Sha256); }).ToList();
        string path = Path.Combine(directory, FileName);
        using (var stream = new FileStream(path, FileMode.Create, FileAccess.Write))
        {
            JsonSerializer.Serialize(stream, new Document(Format, Version, files), Json);
            stream.Flush(flushToDisk: true);
        }
    }

    /// <summary>
    /// Checks every file the manifest lists; throws <see cref="InvalidDataException"/> naming the first file that is
    /// missing or differs. A directory without a manifest (an older checkpoint) gives an unverified result.
    /// </summary>
    public static CheckpointVerification Verify(string directory) => Verify(directory, only: null);

    /// <summary>Like <see cref="Verify(string)"/>, checking only the file named <paramref name="only"/> when given (a file the manifest does not list is unverified).</summary>
    public static CheckpointVerification Verify(string directory, string? only)
    {
        string path = Path.Combine(directory, FileName);
        if (!File.Exists(path)) return new CheckpointVerification(directory, []);
        Document document;
        try
        {
            document = JsonSerializer.Deserialize<Document>(File.ReadAllText(path), Json) ?? throw new JsonException("empty");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a valid checkpoint manifest ({e.Message}): the checkpoint is damaged; use an earlier one");
        }
        if (document.Format != Format || document.Version != Version || document.Files is not { Count: > 0 })
            throw new InvalidDataException($"{path}: not a version {Version} checkpoint manifest: the checkpoint is damaged or from a newer flora");
        var files = only is null ? document.Files : document.Files.Where(f => f.Name == only).ToList();
        foreach (var f in files)
        {
            string file = Path.Combine(directory, f.Name);
            if (f.Name != Path.GetFileName(f.Name) || !File.Exists(file))
                throw new InvalidDataException($"{file}: listed in {FileName} but missing: the checkpoint is incomplete; use an earlier one");
            var actual = FileIdentity.Of(file);
            if (actual.Bytes != f.Bytes || actual.Sha256 != f.Sha256)
                throw new InvalidDataException($"{file}: checksum mismatch ({actual.Bytes:N0} bytes, sha256 {actual.Sha256[..12]}; the manifest says {f.Bytes:N0} bytes, " +
                    $"sha256 {f.Sha256[..Math.Min(12, f.Sha256.Length)]}): the file is damaged; use an earlier checkpoint");
        }
        return new CheckpointVerification(directory, files);
    }
}
