using System.Text.Json;
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
