using System.Text.Json;
using System.Text.Json.Serialization;
using Flora.Reporting;

namespace Flora.Training;

/// <summary>
/// <c>RUN/run.json</c>: what a run was started with, written before any work and completed once the tokenizer
/// exists. A resumed run checks the corpus (absolute path, size, SHA-256), the prepared data's manifest and the
/// tokenizer (spec and hash) against it and refuses a mismatch naming both values; a run directory killed before
/// its first checkpoint restarts from it.
/// </summary>
internal sealed record RunManifest(TrainOptions Options, FileIdentity? Corpus, FileIdentity? Data, string Tokenizer, string? TokenizerHash)
{
    public const string FileName = "run.json", Kind = "flora.run";
    public const int CurrentVersion = 1;

    public string Format { get; init; } = Kind;
    public int Version { get; init; } = CurrentVersion;

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    public void Write(string runDirectory) => AtomicFile.WriteAllText(Path.Combine(runDirectory, FileName), JsonSerializer.Serialize(this, Json) + "\n");

    /// <summary>The manifest of <paramref name="runDirectory"/>, or null for a run made before manifests existed.</summary>
    public static RunManifest? Read(string runDirectory)
    {
        string path = Path.Combine(runDirectory, FileName);
        if (!File.Exists(path)) return null;
        RunManifest? manifest;
        try { manifest = JsonSerializer.Deserialize<RunManifest>(File.ReadAllText(path), Json); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not a valid run manifest ({e.Message})"); }
        if (manifest is null || manifest.Format != Kind || manifest.Options is null || manifest.Tokenizer is null)
            throw new InvalidDataException($"{path}: not a flora run manifest");
        if (manifest.Version != CurrentVersion) throw new InvalidDataException($"{path}: run manifest version {manifest.Version} is not supported");
        return manifest;
    }

    /// <summary>Refuses a recorded file that is missing or changed, naming what was recorded and what is there now.</summary>
    public static void CheckUnchanged(FileIdentity? recorded, string what)
    {
        if (recorded is null) return;
        if (!File.Exists(recorded.Path))
            throw new FloraException($"the {what} of this run, {recorded.Path} ({recorded.Describe()}), is missing: put it back to resume the run");
        var now = FileIdentity.Of(recorded.Path);
        if (now != recorded)
            throw new InvalidDataException($"the {what} {recorded.Path} changed since the run started: it was {recorded.Describe()}, now {now.Describe()}; " +
                "put the original back, or start a new run");
    }

    /// <summary>Refuses a tokenizer whose hash is not the recorded one.</summary>
    public void CheckTokenizer(string runDirectory, string hash)
    {
        if (TokenizerHash is not null && TokenizerHash != hash)
            throw new InvalidDataException($"the tokenizer of {runDirectory} ({Tokenizer}) changed since the run started: its hash was {TokenizerHash[..Math.Min(12, TokenizerHash.Length)]}, " +
                $"now {hash[..Math.Min(12, hash.Length)]}; put the original back, or start a new run");
    }
}
