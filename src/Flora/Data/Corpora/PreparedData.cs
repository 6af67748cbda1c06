using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Flora.Data.Corpora;

/// <summary>
/// A prepared data directory, as <c>flora data prepare</c> (<c>BiblePreparation</c> of Flora.Experiments) writes it: by default
/// <c>data/prepared/bible-v1</c>, not committed. Plain UTF-8 files (no byte-order mark, "\n" line endings):
/// <list type="bullet">
/// <item><c>lm-train.txt</c>, <c>lm-validation.txt</c>, <c>lm-test.txt</c>: the English World English Bible (every book
/// the module has, the deuterocanonical ones included, in the module's order) for language modelling, in the layout of
/// <see cref="EmbeddedCorpus"/>: one verse per line without its reference, one blank line between chapters. Split by
/// chapter with the rule of <see cref="TextCorpus"/>: chapter <c>i</c>, counted from 0 through the whole text, goes to
/// validation when <c>i % 20 == 19</c>, to test when <c>i % 20 == 9</c>, to training otherwise.</item>
/// <item><c>pairs-train.tsv</c>, <c>pairs-validation.tsv</c>, <c>pairs-test.tsv</c>: Spanish (Reina-Valera 1909) to
/// English (World English Bible) verse pairs, "reference TAB spanish TAB english" per line, aligned as
/// <c>BibleAlignment</c> of Flora.Experiments describes and split by a hash of the reference as <see cref="ParallelCorpus"/>
/// describes (about 2 % test, 2 % validation, 96 % training).</item>
/// <item><c>manifest.json</c>: <see cref="PreparedManifest"/>, with the SHA-256 of every data file.</item>
/// </list>
/// <see cref="Open"/> checks the manifest and the checksums; the Read methods then read the files.
/// </summary>
public sealed class PreparedData
{
    /// <summary>The directory written when no other is given, relative to the current directory.</summary>
    public const string DefaultDirectory = "data/prepared/bible-v1";

    /// <summary>The name of the data set, the default directory's name.</summary>
    public const string Name = "bible-v1";

    /// <summary>The version of the layout this code writes and reads.</summary>
    public const int FormatVersion = 1;

    /// <summary>The manifest's file name.</summary>
    public const string ManifestFile = "manifest.json";

    /// <summary>The three splits in file order.</summary>
    public static IReadOnlyList<CorpusSplit> Splits { get; } = [CorpusSplit.Train, CorpusSplit.Validation, CorpusSplit.Test];

    /// <summary>The six data files, language-model files first, each in split order.</summary>
    public static IReadOnlyList<string> DataFiles { get; } =
        [.. Splits.Select(LanguageModelFile), .. Splits.Select(PairsFile)];

    private PreparedData(string directory, PreparedManifest manifest) => (Directory, Manifest) = (directory, manifest);

    /// <summary>The directory, as given to <see cref="Open"/>.</summary>
    public string Directory { get; }

    /// <summary>The manifest.</summary>
    public PreparedManifest Manifest { get; }

    /// <summary>"train", "validation" or "test".</summary>
    public static string SplitName(CorpusSplit split) => split switch
    {
        CorpusSplit.Train => "train",
        CorpusSplit.Validation => "validation",
        CorpusSplit.Test => "test",
        _ => throw new ArgumentOutOfRangeException(nameof(split), split, null),
    };

    /// <summary>The language-model file of a split, such as "lm-train.txt".</summary>
    public static string LanguageModelFile(CorpusSplit split) => $"lm-{SplitName(split)}.txt";

    /// <summary>The pairs file of a split, such as "pairs-train.tsv".</summary>
    public static string PairsFile(CorpusSplit split) => $"pairs-{SplitName(split)}.tsv";

    /// <summary>Opens a prepared directory: reads the manifest and checks every data file against it (<see cref="Verify"/>).</summary>
    /// <exception cref="DataFormatException">The manifest is missing or malformed, or a file is missing or does not match its checksum.</exception>
    public static PreparedData Open(string directory)
    {
        var manifest = ReadManifest(directory);
        Verify(directory, manifest);
        return new PreparedData(directory, manifest);
    }

    /// <summary>Reads and checks the shape of <c>manifest.json</c>, without checking the data files.</summary>
    /// <exception cref="DataFormatException">The directory or the manifest is missing, the manifest is not valid JSON, has another format
    /// version, or does not list the six data files.</exception>
    public static PreparedManifest ReadManifest(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        if (!System.IO.Directory.Exists(directory))
        {
            throw new DataFormatException(directory, "directory not found: prepare the data with 'flora data prepare'");
        }
        string path = Path.Combine(directory, ManifestFile);
        if (!File.Exists(path))
        {
            throw new DataFormatException(path, "file not found: the directory is not prepared data (or its preparation did not finish); prepare it again with 'flora data prepare --force'");
        }
        PreparedManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<PreparedManifest>(File.ReadAllBytes(path), PreparedManifest.JsonOptions);
        }
        catch (JsonException e)
        {
            throw new DataFormatException(path, $"not a valid manifest: {e.Message}");
        }
        if (manifest is null) throw new DataFormatException(path, "not a valid manifest: null");
        if (manifest.FormatVersion != FormatVersion)
        {
            throw new DataFormatException(path, $"format version {manifest.FormatVersion}, but this Flora reads version {FormatVersion}: prepare the data again with 'flora data prepare --force'");
        }
        if (manifest.Files is null) throw new DataFormatException(path, "not a valid manifest: no 'files'");
        foreach (string name in DataFiles)
        {
            if (manifest.FileEntry(name) is null) throw new DataFormatException(path, $"lists no file '{name}'");
        }
        foreach (var file in manifest.Files)
        {
            if (string.IsNullOrEmpty(file.Name) || file.Name != Path.GetFileName(file.Name) || file.Name is "." or "..")
            {
                throw new DataFormatException(path, $"'{file.Name}' is not a plain file name");
            }
            if (file.Sha256 is null || file.Sha256.Length != 64) throw new DataFormatException(path, $"no valid SHA-256 for '{file.Name}'");
        }
        return manifest;
    }

    /// <summary>Checks that every file the manifest lists is there with the recorded length and SHA-256.</summary>
    /// <exception cref="DataFormatException">A file is missing or differs; the message names it.</exception>
    public static void Verify(string directory, PreparedManifest manifest)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ArgumentNullException.ThrowIfNull(manifest);
        foreach (var file in manifest.Files)
        {
            string path = Path.Combine(directory, file.Name);
            if (!File.Exists(path)) throw new DataFormatException(path, $"file not found, though {ManifestFile} lists it: prepare the data again with 'flora data prepare --force'");
            string sha;
            long length;
            using (var stream = File.OpenRead(path))
            {
                length = stream.Length;
                sha = Convert.ToHexStringLower(SHA256.HashData(stream));
            }
            if (!string.Equals(sha, file.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                throw new DataFormatException(path,
                    $"SHA-256 mismatch: {ManifestFile} records {file.Sha256}, the file ({length:N0} bytes, {file.Bytes:N0} recorded) has {sha}; the file was changed or damaged: prepare the data again with 'flora data prepare --force'");
            }
        }
    }

    /// <summary>The language-model text of a split, as written: verses one per line, chapters separated by a blank line.</summary>
    /// <exception cref="DataFormatException">The file is missing, empty or not valid UTF-8.</exception>
    public string ReadLanguageModel(CorpusSplit split) => ReadText(Path.Combine(Directory, LanguageModelFile(split)));

    /// <summary>The three language-model texts (train, validation, test).</summary>
    public (string Train, string Validation, string Test) ReadLanguageModel() =>
        (ReadLanguageModel(CorpusSplit.Train), ReadLanguageModel(CorpusSplit.Validation), ReadLanguageModel(CorpusSplit.Test));

    /// <summary>The verse pairs of a split, read and checked by <see cref="ParallelCorpus.Load"/>.</summary>
    public IReadOnlyList<VersePair> ReadPairs(CorpusSplit split) => ParallelCorpus.Load(Path.Combine(Directory, PairsFile(split)));

    /// <summary>Reads a UTF-8 text file, strictly.</summary>
    /// <exception cref="DataFormatException">The file is missing, empty or not valid UTF-8.</exception>
    public static string ReadText(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path)) throw new DataFormatException(path, "file not found");
        byte[] bytes = File.ReadAllBytes(path);
        if (bytes.Length == 0) throw new DataFormatException(path, "the file is empty");
        try
        {
            return new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            int line = 1 + bytes.AsSpan(0, Math.Max(0, Utf8Bytes.FirstInvalid(bytes))).Count((byte)'\n');
            throw new DataFormatException(path, $"line {line}: not valid UTF-8: the file must be UTF-8 text");
        }
    }

}
