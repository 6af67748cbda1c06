using System.Text.Json;
using System.Text.Json.Serialization;

namespace Flora.Reporting;

/// <summary>
/// An experiment's output directory. <see cref="Create"/> makes sure the directory exists and
/// can be written to before any work starts, so a bad path fails in the first second rather
/// than after hours of training. Every write is atomic (temporary file, then move).
/// </summary>
public sealed class RunOutput
{
    /// <summary>
    /// JSON settings for <see cref="WriteJson{T}"/>: indented, camelCase property names, enums as
    /// camelCase strings, public fields included (so value tuples and simple structs work), and
    /// NaN / ±Infinity written as the strings "NaN", "Infinity", "-Infinity" instead of throwing.
    /// </summary>
    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DictionaryKeyPolicy = null,
        IncludeFields = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    private RunOutput(string directory) => Directory = directory;

    /// <summary>The absolute path of the output directory.</summary>
    public string Directory { get; }

    /// <summary>
    /// Creates <paramref name="directory"/> (and its parents) if needed and checks that a file
    /// can be created and deleted in it.
    /// </summary>
    /// <exception cref="FloraException">
    /// "cannot write to output directory X: reason" when the path is invalid, is the root of the
    /// file system, is an existing file, or cannot be created or written (permission denied,
    /// read-only file system, ...).
    /// </exception>
    public static RunOutput Create(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        string full;
        try
        {
            if (string.IsNullOrWhiteSpace(directory))
                throw new ArgumentException("the path is empty");
            full = Path.GetFullPath(directory);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw Fail(directory, e.Message, e);
        }

        if (Path.GetPathRoot(full) == full)
            throw Fail(full, "it is the root of the file system; choose a directory of its own");
        if (File.Exists(full))
            throw Fail(full, "the path is an existing file, not a directory");
        for (string? parent = Path.GetDirectoryName(full); parent is not null; parent = Path.GetDirectoryName(parent))
        {
            if (File.Exists(parent))
                throw Fail(full, $"{parent} is a file, not a directory");
            if (System.IO.Directory.Exists(parent))
                break;
        }

        try
        {
            System.IO.Directory.CreateDirectory(full);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException)
        {
            throw Fail(full, Reason(e), e);
        }

        string probe = Path.Combine(full, $".flora-write-probe-{Guid.NewGuid():N}");
        try
        {
            using (var stream = new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None))
                stream.WriteByte(0);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try { File.Delete(probe); } catch (Exception) { /* best effort: it probably was never created */ }
            throw Fail(full, e is FileNotFoundException or DirectoryNotFoundException ? "files cannot be created there" : Reason(e), e);
        }

        return new RunOutput(full);
    }

    /// <summary>
    /// The full path of <paramref name="fileName"/> inside the output directory. Sub-directories
    /// ("plots/loss.svg") are allowed; absolute paths and paths leaving the directory are not.
    /// </summary>
    /// <exception cref="ArgumentException">The name is empty, absolute, or escapes the directory.</exception>
    public string PathOf(string fileName)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(fileName);
        if (Path.IsPathRooted(fileName))
            throw new ArgumentException($"'{fileName}' must be relative to the output directory.", nameof(fileName));
        string full = Path.GetFullPath(Path.Combine(Directory, fileName));
        string root = Path.TrimEndingDirectorySeparator(Directory) + Path.DirectorySeparatorChar;
        if (!full.StartsWith(root, StringComparison.Ordinal))
            throw new ArgumentException($"'{fileName}' is outside the output directory.", nameof(fileName));
        return full;
    }

    /// <summary>Serialises <paramref name="value"/> with <see cref="JsonOptions"/> and writes it atomically.</summary>
    public void WriteJson<T>(string fileName, T value)
    {
        string json = JsonSerializer.Serialize(value, JsonOptions);
        WriteText(fileName, json + "\n");
    }

    /// <summary>Writes UTF-8 text (no BOM) atomically, creating sub-directories as needed.</summary>
    public void WriteText(string fileName, string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string path = PathOf(fileName);
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        AtomicFile.WriteAllText(path, text);
    }

    /// <summary>Renders <paramref name="chart"/> and writes it atomically.</summary>
    public void WriteChart(string fileName, SvgLineChart chart, int width = 800, int height = 480)
    {
        ArgumentNullException.ThrowIfNull(chart);
        WriteText(fileName, chart.ToSvg(width, height));
    }

    /// <summary>Writes <paramref name="table"/> atomically.</summary>
    public void WriteCsv(string fileName, CsvTable table)
    {
        ArgumentNullException.ThrowIfNull(table);
        WriteText(fileName, table.ToString());
    }

    private static FloraException Fail(string path, string reason, Exception? inner = null)
    {
        string shown = path.Length == 0 ? "''" : OneLine(path);
        string message = $"cannot write to output directory {shown}: {OneLine(reason)}";
        return inner is null ? new FloraException(message) : new FloraException(message, inner);
    }

    private static string Reason(Exception e) => e switch
    {
        UnauthorizedAccessException => "permission denied",
        IOException io when io.Message.Contains("Read-only file system", StringComparison.OrdinalIgnoreCase)
            => "read-only file system",
        _ => e.Message,
    };

    private static string OneLine(string s) =>
        s.Replace("\r\n", " ", StringComparison.Ordinal).Replace('\n', ' ').Replace('\r', ' ').Trim();
}
