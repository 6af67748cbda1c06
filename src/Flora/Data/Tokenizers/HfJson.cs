using System.Text.Json;

namespace Flora.Data.Tokenizers;

/// <summary>
/// A JSON object of a <c>tokenizer.json</c> with its path in the file (<c>pre_tokenizer.pretokenizers[0]</c>),
/// read field by field. Every problem is a <see cref="DataFormatException"/> naming the file and the path;
/// a field that is not listed as known is refused, so that nothing that could change the output is skipped.
/// </summary>
internal sealed class HfJson
{
    private readonly Dictionary<string, JsonElement> _fields;

    /// <summary>A JSON null, for optional fields that are absent.</summary>
    public static readonly JsonElement NullElement = JsonDocument.Parse("null").RootElement.Clone();

    private HfJson(string file, string path, Dictionary<string, JsonElement> fields)
    {
        File = file;
        Path = path;
        _fields = fields;
    }

    /// <summary>The file, for messages.</summary>
    public string File { get; }

    /// <summary>The JSON path of this object (empty for the root).</summary>
    public string Path { get; }

    /// <summary>An exception for a problem at a path of this file.</summary>
    public DataFormatException Fail(string path, string problem) =>
        new(File, path.Length == 0 ? problem : $"{path}: {problem}");

    /// <summary>An exception for a problem with this object.</summary>
    public DataFormatException Fail(string problem) => Fail(Path, problem);

    /// <summary>The path of a field of this object.</summary>
    public string PathOf(string key) => Path.Length == 0 ? key : $"{Path}.{key}";

    /// <summary>Reads an element as an object; refuses duplicate fields and, when <paramref name="known"/> is given, unknown ones.</summary>
    public static HfJson Object(string file, string path, JsonElement element, params string[] known)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new DataFormatException(file, $"{(path.Length == 0 ? "" : path + ": ")}expected an object, found {Kind(element)}");
        }
        var fields = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (JsonProperty property in element.EnumerateObject())
        {
            string at = path.Length == 0 ? property.Name : $"{path}.{property.Name}";
            if (!fields.TryAdd(property.Name, property.Value))
            {
                throw new DataFormatException(file, $"{at}: the field appears twice");
            }
            if (known.Length > 0 && System.Array.IndexOf(known, property.Name) < 0)
            {
                throw new DataFormatException(file, $"{at}: unknown field, not supported (known here: {string.Join(", ", known)})");
            }
        }
        return new HfJson(file, path, fields);
    }

    /// <summary>A field as an object, checked like <see cref="Object"/>.</summary>
    public HfJson Child(string key, params string[] known) =>
        Object(File, PathOf(key), Required(key), known);

    /// <summary>An element at a path as an object, checked like <see cref="Object"/>.</summary>
    public HfJson ChildAt(string path, JsonElement element, params string[] known) => Object(File, path, element, known);

    /// <summary>Whether the field is present (null counts as present).</summary>
    public bool Has(string key) => _fields.ContainsKey(key);

    /// <summary>Whether the field is absent or null.</summary>
    public bool IsNull(string key) => !_fields.TryGetValue(key, out JsonElement e) || e.ValueKind == JsonValueKind.Null;

    /// <summary>The raw element of a field, which must be present.</summary>
    public JsonElement Required(string key) =>
        _fields.TryGetValue(key, out JsonElement e) ? e : throw Fail($"the field '{key}' is missing");

    /// <summary>The raw element of a field, or null when absent.</summary>
    public JsonElement? Optional(string key) => _fields.TryGetValue(key, out JsonElement e) ? e : null;

    /// <summary>The <c>type</c> field.</summary>
    public string Type() => String("type");

    /// <summary>A string field, which must be present.</summary>
    public string String(string key)
    {
        JsonElement e = Required(key);
        return e.ValueKind == JsonValueKind.String ? e.GetString()!
            : throw Fail(PathOf(key), $"expected a string, found {Kind(e)}");
    }

    /// <summary>A string field, or null when absent or null.</summary>
    public string? StringOrNull(string key) => IsNull(key) ? null : String(key);

    /// <summary>A boolean field, or <paramref name="fallback"/> when absent (or null).</summary>
    public bool Bool(string key, bool fallback)
    {
        if (IsNull(key))
        {
            return fallback;
        }
        JsonElement e = _fields[key];
        return e.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Fail(PathOf(key), $"expected true or false, found {Kind(e)}"),
        };
    }

    /// <summary>A non-negative integer field, which must be present.</summary>
    public int Int(string key) => Int(Required(key), PathOf(key));

    /// <summary>An element as a non-negative 32-bit integer.</summary>
    public int Int(JsonElement e, string path) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int value) && value >= 0 ? value
            : throw Fail(path, $"expected an integer from 0 to {int.MaxValue}, found {Raw(e)}");

    /// <summary>An array field, which must be present.</summary>
    /// <summary>
    /// The items of the array under <paramref name="key"/>, each read by <paramref name="parse"/> (given the item's
    /// path); a null item is refused, naming its path and <paramref name="what"/> it should be.
    /// </summary>
    public List<T> Items<T>(string key, Func<string, JsonElement, T?> parse, string what) where T : class
    {
        var items = new List<T>();
        int n = 0;
        foreach (JsonElement item in Array(key).EnumerateArray())
        {
            string at = $"{PathOf(key)}[{n++}]";
            items.Add(parse(at, item) ?? throw Fail(at, $"null is not {what}"));
        }
        return items;
    }

    public JsonElement Array(string key)
    {
        JsonElement e = Required(key);
        return e.ValueKind == JsonValueKind.Array ? e : throw Fail(PathOf(key), $"expected an array, found {Kind(e)}");
    }

    /// <summary>A one-character string field (as Rust's <c>char</c>: one code point).</summary>
    public string Char(string key)
    {
        string s = String(key);
        return s.Length > 0 && (s.Length == 1 || (s.Length == 2 && char.IsSurrogatePair(s[0], s[1]))) ? s
            : throw Fail(PathOf(key), $"expected a single character, found {BpeFiles.Show(s)}");
    }

    /// <summary>Refuses a field that must be absent, null or equal to an accepted value.</summary>
    public void Refuse(string key, string why)
    {
        if (!IsNull(key))
        {
            throw Fail(PathOf(key), $"{Raw(_fields[key])} is not supported ({why})");
        }
    }

    /// <summary>A short description of an element's kind, for messages.</summary>
    public static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => $"the string {BpeFiles.Show(e.GetString()!)}",
        JsonValueKind.Number => $"the number {e.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => e.GetRawText(),
        _ => "null",
    };

    /// <summary>An element's JSON text, cut short, for messages.</summary>
    public static string Raw(JsonElement e)
    {
        string text = e.GetRawText();
        return text.Length <= 60 ? text : text[..57] + "...";
    }
}
