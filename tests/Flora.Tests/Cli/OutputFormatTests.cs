using System.Text.Json;
using Flora.Checkpoints;
using Flora.Cli;
using Spectre.Console;

namespace Flora.Tests.Cli;

/// <summary>What the command line writes for people and programs: help that tells the truth, logs with one naming convention, JSON that stays one line.</summary>
public sealed class OutputFormatTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-output-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public void Train_help_gives_each_optimizers_learning_rate_instead_of_one_default()
    {
        var (code, output, _) = TestCli.RunCli("train", "--help");
        Assert.Equal(0, code);
        string lrLine = output.Split('\n').Single(l => l.TrimStart().StartsWith("--lr ", StringComparison.Ordinal));
        Assert.DoesNotContain("[default:", lrLine);
        Assert.Contains("0.03 for flora", lrLine);
        Assert.Contains("0.001 for adamw", lrLine);
        Assert.Contains("0.1 for sgd", lrLine);
    }

    [Fact]
    public void Metrics_json_lines_use_the_csv_columns_names_and_checkpoints_write_enums_by_name()
    {
        string run = Path.Combine(_temp, "run");
        var (code, _, error) = TestCli.RunCli("train", "--model", "gpt-tiny", "--tokenizer", "bpe:300", "--batch", "2", "--seq-len", "16",
            "--steps", "2", "--eval-every", "2", "--checkpoint-every", "2", "--accumulate", "compressed", "--tau", "2", "--out", run);
        Assert.True(code == 0, error);

        string[] csvColumns = File.ReadLines(Path.Combine(run, "metrics.csv")).First().Split(',');
        using (var json = JsonDocument.Parse(File.ReadLines(Path.Combine(run, "metrics.jsonl")).Last()))
            Assert.Equal(csvColumns, json.RootElement.EnumerateObject().Select(p => p.Name).ToArray());

        string state = Directory.GetFiles(Path.Combine(run, "checkpoints"), "state.safetensors", SearchOption.AllDirectories).Single();
        using var file = SafeTensorsFile.Open(state);
        string options = file.Metadata["options"];
        Assert.Contains("\"Variant\":\"Official\"", options);
        Assert.Contains("\"Mode\":\"Compressed\"", options);
        Assert.DoesNotMatch("\"(Variant|Mode|Schedule|Accumulation)\":[0-9]", options);
    }

    [Fact]
    public void Redirected_output_never_wraps_a_long_line()
    {
        var writer = new StringWriter();
        IAnsiConsole console = FloraCli.Redirected(writer);
        string json = JsonSerializer.Serialize(Enumerable.Range(0, 300).ToDictionary(i => $"key{i}", i => i));   // about 3,000 characters
        console.MarkupLine(Markup.Escape($"  options: {json}"));
        Assert.Equal([$"  options: {json}"], writer.ToString().TrimEnd('\n').Split('\n'));
    }
}
