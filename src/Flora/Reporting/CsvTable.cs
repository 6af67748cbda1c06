using System.Globalization;
using System.Text;

namespace Flora.Reporting;

/// <summary>
/// A small CSV writer: one header row, then data rows, formatted the same on every machine.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>Every value is formatted with <see cref="CultureInfo.InvariantCulture"/>: the decimal
/// point is always '.', whatever the current culture.</item>
/// <item><see cref="double"/> and <see cref="float"/> are written with the "R" format, which on
/// .NET Core 3.0 and later is the <em>shortest</em> string that parses back to the same value:
/// 0.1 is written "0.1", 0.1f is written "0.1" (not 0.100000001), and nothing is lost.
/// NaN and infinities are written "NaN", "Infinity" and "-Infinity".</item>
/// <item>A missing value is an empty cell: pass <c>null</c>, for example a <c>double?</c>
/// without a value.</item>
/// <item><see cref="bool"/> is written "true"/"false"; <see cref="DateTime"/> and
/// <see cref="DateTimeOffset"/> in ISO 8601 round-trip form ("O"); enums by name.</item>
/// <item>A field is quoted as RFC 4180 describes when it contains a comma, a double quote,
/// a carriage return or a line feed; quotes inside are doubled.</item>
/// <item>Rows end with "\n" (LF), which every CSV reader accepts; the file is UTF-8 without BOM.</item>
/// </list>
/// </remarks>
public sealed class CsvTable
{
    private readonly string[] _columns;
    private readonly List<string[]> _rows = new();

    /// <summary>Starts a table with the given column names (at least one, no duplicates).</summary>
    public CsvTable(params string[] columns)
    {
        ArgumentNullException.ThrowIfNull(columns);
        if (columns.Length == 0)
            throw new ArgumentException("A CSV table needs at least one column.", nameof(columns));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (string? column in columns)
        {
            if (column is null)
                throw new ArgumentException("Column names must not be null.", nameof(columns));
            if (!seen.Add(column))
                throw new ArgumentException($"Duplicate column name '{column}'.", nameof(columns));
        }
        _columns = (string[])columns.Clone();
    }

    /// <summary>The column names, in order.</summary>
    public IReadOnlyList<string> Columns => _columns;

    /// <summary>Number of data rows added so far (the header is not counted).</summary>
    public int RowCount => _rows.Count;

    /// <summary>
    /// Adds a row. The values are formatted now, so later changes to mutable objects do not
    /// affect the table.
    /// </summary>
    /// <exception cref="ArgumentException">The number of values differs from the number of columns.</exception>
    public void AddRow(params object?[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Length != _columns.Length)
            throw new ArgumentException(
                $"Row has {values.Length} value(s) but the table has {_columns.Length} column(s) ({string.Join(", ", _columns)}).",
                nameof(values));
        var cells = new string[values.Length];
        for (int i = 0; i < values.Length; i++)
            cells[i] = FormatValue(values[i]);
        _rows.Add(cells);
    }

    /// <summary>The whole table as CSV text, header first, every row ending with "\n".</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        AppendRow(sb, _columns);
        foreach (string[] row in _rows)
            AppendRow(sb, row);
        return sb.ToString();
    }

    /// <summary>Writes the table to <paramref name="path"/> atomically (temporary file, then move).</summary>
    public void Save(string path) => AtomicFile.WriteAllText(path, ToString());

    /// <summary>Formats one value the way <see cref="AddRow"/> does, without quoting.</summary>
    internal static string FormatValue(object? value) => value switch
    {
        null => "",
        string s => s,
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        float f => f.ToString("R", CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        DateTime t => t.ToString("O", CultureInfo.InvariantCulture),
        DateTimeOffset t => t.ToString("O", CultureInfo.InvariantCulture),
        TimeSpan t => t.ToString("c", CultureInfo.InvariantCulture),
        Enum e => e.ToString(),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    /// <summary>Quotes a field when RFC 4180 requires it.</summary>
    internal static string Escape(string field)
    {
        if (field.AsSpan().IndexOfAny(",\"\r\n") < 0)
            return field;
        return "\"" + field.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
    }

    private static void AppendRow(StringBuilder sb, string[] cells)
    {
        for (int i = 0; i < cells.Length; i++)
        {
            if (i > 0) sb.Append(',');
            sb.Append(Escape(cells[i]));
        }
        sb.Append('\n');
    }
}
