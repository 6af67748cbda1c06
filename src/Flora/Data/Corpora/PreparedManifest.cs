using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Flora.Data.Corpora;

/// <summary>
/// <c>manifest.json</c> of a prepared data directory (<see cref="PreparedData"/>): what it holds, where it came from,
/// and the SHA-256 of every file. Written by <c>BiblePreparation</c> of Flora.Experiments after the data files, in camelCase JSON;
/// it has no time stamp, so the same packages give the same bytes.
/// </summary>
/// <param name="FormatVersion">The layout of the directory and its files; <see cref="PreparedData.FormatVersion"/> is the one this code reads.</param>
/// <param name="Name">The data set, such as "bible-v1".</param>
/// <param name="Description">One sentence on what the data is.</param>
/// <param name="Reader">The program the texts were read with.</param>
/// <param name="Sources">The SWORD modules read, English first.</param>
/// <param name="Files">The data files, in the order <see cref="PreparedData.DataFiles"/> lists them.</param>
/// <param name="Alignment">How the Spanish and English verses were paired.</param>
/// <param name="SplitRules">The rules of the train/validation/test splits, in words.</param>
public sealed record PreparedManifest(
    int FormatVersion,
    string Name,
    string Description,
    PreparedReader Reader,
    IReadOnlyList<PreparedSource> Sources,
    IReadOnlyList<PreparedFile> Files,
    PreparedAlignment Alignment,
    PreparedSplitRules SplitRules)
{
    /// <summary>camelCase, indented, null properties left out, quotes and non-ASCII characters written as they are.</summary>
    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DictionaryKeyPolicy = null,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>The manifest as JSON text, ending with "\n".</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions) + "\n";

    /// <summary>The entry of a data file, or null when the manifest does not list it.</summary>
    public PreparedFile? FileEntry(string name) => Files.FirstOrDefault(f => f.Name == name);
}

/// <summary>The program the texts were read with.</summary>
/// <param name="Program">The executable run, such as "diatheke".</param>
/// <param name="DebianPackage">Its Debian package.</param>
/// <param name="PackageVersion">The package's installed version (<c>dpkg-query</c>), when known.</param>
public sealed record PreparedReader(string Program, string? DebianPackage, string? PackageVersion);

/// <summary>A SWORD module read.</summary>
/// <param name="Language">"english" or "spanish".</param>
/// <param name="Module">The SWORD module, such as "engWEB2015eb".</param>
/// <param name="Title">The title diatheke lists for it, when it lists one.</param>
/// <param name="DebianPackage">The Debian package that installs it.</param>
/// <param name="PackageVersion">The package's installed version (<c>dpkg-query</c>), when known.</param>
/// <param name="ModuleVersion">The <c>Version</c> of the module's SWORD configuration file (diatheke does not print it), when found.</param>
/// <param name="Command">The diatheke command that printed the text.</param>
/// <param name="References">Verses diatheke printed, empty ones included.</param>
/// <param name="VersesWithText">Verses with text after the markup is removed.</param>
/// <param name="Books">Books with at least one verse with text.</param>
/// <param name="Chapters">Chapters with at least one verse with text.</param>
public sealed record PreparedSource(
    string Language,
    string Module,
    string? Title,
    string? DebianPackage,
    string? PackageVersion,
    string? ModuleVersion,
    string Command,
    int References,
    int VersesWithText,
    int Books,
    int Chapters);

/// <summary>A data file of the directory.</summary>
/// <param name="Name">The file name, such as "pairs-train.tsv".</param>
/// <param name="Kind">"language-model" (lm-*.txt) or "pairs" (pairs-*.tsv).</param>
/// <param name="Split">"train", "validation" or "test".</param>
/// <param name="Lines">Lines ending with "\n", blank ones included.</param>
/// <param name="Pairs">Verse pairs (pairs files only).</param>
/// <param name="Verses">Non-blank lines, one verse each (language-model files only).</param>
/// <param name="Chapters">Chapters, the blank-line separated paragraphs (language-model files only).</param>
/// <param name="Characters">Unicode scalar values (code points) of the text, line breaks and tabs included.</param>
/// <param name="Bytes">The file's length in bytes (UTF-8).</param>
/// <param name="Sha256">The SHA-256 of the file's bytes, lower-case hex.</param>
public sealed record PreparedFile(
    string Name,
    string Kind,
    string Split,
    int Lines,
    int? Pairs,
    int? Verses,
    int? Chapters,
    long Characters,
    long Bytes,
    string Sha256);

/// <summary>How the verses were paired (see <c>BibleAlignment</c> of Flora.Experiments).</summary>
/// <param name="Source">The language of the pairs' second field: "spanish".</param>
/// <param name="Target">The language of the pairs' third field: "english".</param>
/// <param name="Rule">The alignment rule, in words.</param>
/// <param name="References">Distinct references in either module.</param>
/// <param name="Aligned">Pairs written, all splits together.</param>
/// <param name="Dropped">References dropped: <c>References - Aligned</c>.</param>
/// <param name="DroppedByReason">Dropped references by reason (the alignment's reason keys), every reason listed;
/// "duplicate-reference" counts extra occurrences, outside <paramref name="Dropped"/>.</param>
/// <param name="Examples">A few dropped references per reason that has any.</param>
/// <param name="RenumberedChapters">The chapters whose verses were dropped as renumbered, such as "Numbers 13".</param>
public sealed record PreparedAlignment(
    string Source,
    string Target,
    string Rule,
    int References,
    int Aligned,
    int Dropped,
    IReadOnlyDictionary<string, int> DroppedByReason,
    IReadOnlyDictionary<string, IReadOnlyList<string>> Examples,
    IReadOnlyList<string> RenumberedChapters);

/// <summary>The split rules, in words.</summary>
/// <param name="LanguageModel">The rule of lm-*.txt.</param>
/// <param name="Pairs">The rule of pairs-*.tsv.</param>
public sealed record PreparedSplitRules(string LanguageModel, string Pairs);
