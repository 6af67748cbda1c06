using System.Text.Json;
using Flora.Reporting;

namespace Flora.Tests.Reporting;

public sealed class RunOutputTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("flora-run-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private sealed record Summary(string ModelName, double LearningRate, int[] Epochs, double FinalLoss);

    [Fact]
    public void CreatesNestedDirectoriesAndLeavesNoProbe()
    {
        string target = Path.Combine(_root, "a", "b", "c");

        RunOutput output = RunOutput.Create(target);

        Assert.True(Directory.Exists(target));
        Assert.Equal(Path.GetFullPath(target), output.Directory);
        Assert.Empty(Directory.GetFileSystemEntries(target));
    }

    [Fact]
    public void ExistingDirectoryIsFine()
    {
        File.WriteAllText(Path.Combine(_root, "keep.txt"), "x");
        RunOutput output = RunOutput.Create(_root);
        Assert.Equal(new[] { Path.Combine(_root, "keep.txt") }, Directory.GetFileSystemEntries(_root));
        Assert.Equal(Path.Combine(_root, "keep.txt"), output.PathOf("keep.txt"));
    }

    [Fact]
    public void PathThatIsAFileGivesAOneLineFloraException()
    {
        string file = Path.Combine(_root, "results");
        File.WriteAllText(file, "not a directory");

        var ex = Assert.Throws<FloraException>(() => RunOutput.Create(file));

        Assert.StartsWith($"cannot write to output directory {file}: ", ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
        Assert.Equal("not a directory", File.ReadAllText(file));
    }

    [Fact]
    public void ParentThatIsAFileGivesAFloraException()
    {
        string file = Path.Combine(_root, "results");
        File.WriteAllText(file, "not a directory");
        string target = Path.Combine(file, "run1");

        var ex = Assert.Throws<FloraException>(() => RunOutput.Create(target));

        Assert.Contains(target, ex.Message);
        Assert.Contains($"{file} is a file", ex.Message);
    }

    [Fact]
    public void EmptyPathGivesAFloraException() =>
        Assert.Throws<FloraException>(() => RunOutput.Create("  "));

    [Fact]
    public void WritesLeaveNoTemporaryFilesAndOverwrite()
    {
        RunOutput output = RunOutput.Create(Path.Combine(_root, "run"));
        output.WriteText("notes.txt", "first");
        output.WriteText("notes.txt", "second");
        output.WriteJson("summary.json", new Summary("mlp", 0.01, new[] { 1, 2 }, 0.125));
        output.WriteText("plots/loss.txt", "nested");
        var table = new CsvTable("a");
        table.AddRow(1);
        output.WriteCsv("table.csv", table);
        var chart = new SvgLineChart("t", "x", "y");
        output.WriteChart("chart.svg", chart);

        string[] files = Directory.GetFiles(output.Directory, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(output.Directory, f)).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(new[] { "chart.svg", "notes.txt", Path.Combine("plots", "loss.txt"), "summary.json", "table.csv" }, files);
        Assert.Equal("second", File.ReadAllText(output.PathOf("notes.txt")));
        Assert.Equal("nested", File.ReadAllText(output.PathOf("plots/loss.txt")));
    }

    [Fact]
    public void JsonIsIndentedCamelCaseAndReadsBack()
    {
        RunOutput output = RunOutput.Create(_root);
        output.WriteJson("summary.json", new Summary("mlp", 0.01, new[] { 1, 2, 3 }, double.NaN));

        string json = File.ReadAllText(output.PathOf("summary.json"));
        Assert.Contains("\n  \"modelName\": \"mlp\"", json);
        Assert.Contains("\"learningRate\": 0.01", json);
        Assert.Contains("\"finalLoss\": \"NaN\"", json);
        Summary back = JsonSerializer.Deserialize<Summary>(json, RunOutput.JsonOptions)!;
        Assert.Equal("mlp", back.ModelName);
        Assert.Equal(new[] { 1, 2, 3 }, back.Epochs);
        Assert.True(double.IsNaN(back.FinalLoss));
    }

    [Theory]
    [InlineData("../escape.txt")]
    [InlineData("a/../../escape.txt")]
    [InlineData("/etc/escape.txt")]
    [InlineData("")]
    public void PathOfRejectsNamesOutsideTheDirectory(string name)
    {
        RunOutput output = RunOutput.Create(Path.Combine(_root, "run"));
        Assert.ThrowsAny<ArgumentException>(() => output.PathOf(name));
        Assert.ThrowsAny<ArgumentException>(() => output.WriteText(name, "x"));
        Assert.False(File.Exists(Path.Combine(_root, "escape.txt")));
    }
}
