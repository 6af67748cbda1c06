using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using Flora.Data.Tokenizers;
using Xunit.Abstractions;

namespace Flora.Tests.Data;

/// <summary>
/// <see cref="HuggingFaceTokenizer"/> against the ids Hugging Face's <c>tokenizers</c> gave for about 330
/// strings per tokenizer: <c>tests/fixtures/hf/tokenizers/NAME/</c> (<c>tokenizer.json</c> or
/// <c>tokenizer.json.gz</c>, and <c>cases.json</c>), written by <c>tests/fixtures/hf/make_fixtures.py</c>
/// (see its README). A missing fixture directory fails these tests; it is never skipped.
/// </summary>
public sealed class HuggingFaceTokenizerFixtureTests(ITestOutputHelper output)
{
    public static TheoryData<string> Names => new() { "gpt2", "llama3-style", "qwen2-style", "llama2-style", "llama2-hub-style" };

    [Fact]
    public void The_tokenizer_fixtures_are_present()
    {
        string directory = TokenizersDirectory();
        Assert.True(Directory.Exists(directory),
            $"fixtures missing: {directory} does not exist (generate it with tests/fixtures/hf/make_fixtures.py, see tests/fixtures/hf/README.md)");
        foreach (string name in Names)
        {
            Assert.True(File.Exists(Path.Combine(directory, name, "cases.json")), $"fixtures missing: {name}/cases.json");
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Every_case_gives_the_ids_and_text_of_Hugging_Face(string name)
    {
        string directory = Path.Combine(TokenizersDirectory(), name);
        Assert.True(Directory.Exists(directory), $"fixtures missing: {directory} (see tests/fixtures/hf/README.md)");
        var tokenizer = HuggingFaceTokenizer.Load(directory);
        var cases = ReadCases(Path.Combine(directory, "cases.json"));
        Assert.True(cases.Count >= 300, $"{name}: only {cases.Count} cases");

        var wrong = new List<string>();
        int idsEqual = 0, plainEqual = 0, decodedEqual = 0;
        foreach (var c in cases)
        {
            int[] ids = tokenizer.EncodeWithSpecialTokens(c.Text);
            int[] plain = tokenizer.Encode(c.Text);
            string decoded = tokenizer.Decode(c.IdsNoSpecial);
            idsEqual += ids.SequenceEqual(c.Ids) ? 1 : 0;
            plainEqual += plain.SequenceEqual(c.IdsNoSpecial) ? 1 : 0;
            decodedEqual += decoded == c.Decoded ? 1 : 0;
            if (!ids.SequenceEqual(c.Ids))
            {
                wrong.Add($"ids {Show(c.Text)}: expected [{string.Join(",", c.Ids)}], got [{string.Join(",", ids)}]");
            }
            if (!plain.SequenceEqual(c.IdsNoSpecial))
            {
                wrong.Add($"ids_no_special {Show(c.Text)}: expected [{string.Join(",", c.IdsNoSpecial)}], got [{string.Join(",", plain)}]");
            }
            if (decoded != c.Decoded)
            {
                wrong.Add($"decoded {Show(c.Text)}: expected {Show(c.Decoded)}, got {Show(decoded)}");
            }
        }
        output.WriteLine($"{name}: {cases.Count} cases; ids {idsEqual}, ids_no_special {plainEqual}, decoded {decodedEqual} equal");
        Assert.True(wrong.Count == 0, $"{name}: {wrong.Count} differences in {cases.Count} cases:\n" + string.Join("\n", wrong.Take(12)));
    }

    /// <summary>
    /// Variants of the fixtures with options they do not use (added tokens with lstrip, rstrip and single_word, the
    /// other split behaviours and invert, NFKC, NFD, Metaspace "always" with split and the Metaspace decoder, unknown
    /// tokens without byte fallback, ignore_merges, a prefix space, a template that appends EOS, no decoder): each is
    /// a list of edits of a fixture's tokenizer.json with the ids and texts Hugging Face's tokenizers gave for 120
    /// strings (<c>Data/hf-variants.json.gz</c>, written by <c>Data/hf-variants.mjs</c>).
    /// </summary>
    [Fact]
    public void Variants_of_the_fixtures_give_the_ids_and_text_of_Hugging_Face()
    {
        using var document = JsonDocument.Parse(Gunzip(Path.Combine(AppContext.BaseDirectory, "Data", "hf-variants.json.gz")));
        var wrong = new List<string>();
        int variants = 0, cases = 0;
        foreach (JsonElement variant in document.RootElement.GetProperty("variants").EnumerateArray())
        {
            string name = variant.GetProperty("name").GetString()!;
            string directory = Path.Combine(TokenizersDirectory(), variant.GetProperty("base").GetString()!);
            Assert.True(Directory.Exists(directory), $"fixtures missing: {directory}");
            string file = Path.Combine(directory, "tokenizer.json");
            byte[] bytes = File.Exists(file) ? File.ReadAllBytes(file) : Gunzip(file + ".gz");
            JsonNode json = JsonNode.Parse(bytes)!;
            foreach (JsonElement edit in variant.GetProperty("edits").EnumerateArray())
            {
                Apply(json, edit[0].GetString()!, JsonNode.Parse(edit[1].GetRawText()));
            }
            var tokenizer = HuggingFaceTokenizer.FromJson(json.ToJsonString(), name);
            variants++;
            foreach (JsonElement c in variant.GetProperty("cases").EnumerateArray())
            {
                cases++;
                string text = c.GetProperty("text").GetString()!;
                int[] ids = Ints(c.GetProperty("ids")), plain = Ints(c.GetProperty("ids_no_special"));
                if (!tokenizer.EncodeWithSpecialTokens(text).SequenceEqual(ids) || !tokenizer.Encode(text).SequenceEqual(plain)
                    || tokenizer.Decode(plain) != c.GetProperty("decoded").GetString()
                    || tokenizer.Decode(ids, skipSpecialTokens: true) != c.GetProperty("decoded_skip_special").GetString())
                {
                    wrong.Add($"{name}: {Show(text)}: expected [{string.Join(",", ids)}], got [{string.Join(",", tokenizer.EncodeWithSpecialTokens(text))}]");
                }
            }
        }
        output.WriteLine($"{variants} variants, {cases} cases, {cases - wrong.Count} equal");
        Assert.True(variants >= 15 && cases >= 1800, $"only {variants} variants and {cases} cases");
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {cases} differ:\n" + string.Join("\n", wrong.Take(12)));
    }

    /// <summary>Sets the value at a JSON pointer; a pointer ending in "/-" appends to an array.</summary>
    private static void Apply(JsonNode json, string pointer, JsonNode? value)
    {
        string[] parts = pointer.Split('/')[1..];
        JsonNode node = json;
        foreach (string part in parts[..^1])
        {
            node = node is JsonArray array ? array[int.Parse(part, System.Globalization.CultureInfo.InvariantCulture)]! : node[part]!;
        }
        string last = parts[^1];
        if (node is JsonArray list)
        {
            if (last == "-")
            {
                list.Add(value);
            }
            else
            {
                list[int.Parse(last, System.Globalization.CultureInfo.InvariantCulture)] = value;
            }
        }
        else
        {
            node[last] = value;
        }
    }

    private static int[] Ints(JsonElement array) => array.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    private static byte[] Gunzip(string path)
    {
        using var gzip = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        var result = new MemoryStream();
        gzip.CopyTo(result);
        return result.ToArray();
    }

    /// <summary>tests/fixtures/hf/tokenizers, found from the test binaries upwards.</summary>
    internal static string TokenizersDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string hf = Path.Combine(dir.FullName, "tests", "fixtures", "hf");
            if (File.Exists(Path.Combine(hf, "README.md")))
            {
                return Path.Combine(hf, "tokenizers");
            }
        }
        throw new InvalidOperationException("fixtures missing: tests/fixtures/hf not found above " + AppContext.BaseDirectory);
    }

    private sealed record Case(string Text, int[] Ids, int[] IdsNoSpecial, string Decoded);

    private static List<Case> ReadCases(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path));
        return document.RootElement.EnumerateArray().Select(c => new Case(
            c.GetProperty("text").GetString()!,
            c.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
            c.GetProperty("ids_no_special").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
            c.GetProperty("decoded").GetString()!)).ToList();
    }

    private static string Show(string text)
    {
        string json = JsonSerializer.Serialize(text);
        return json.Length <= 80 ? json : json[..77] + "...";
    }
}
