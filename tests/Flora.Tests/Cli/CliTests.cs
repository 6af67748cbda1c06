using System.Text.Json;
using System.Xml.Linq;
using Flora.Cli;
using Spectre.Console;
using static Flora.Tests.TestCli;

namespace Flora.Tests.Cli;

/// <summary>The flora command in-process: exit codes, one-line errors and the files it writes.</summary>
public class CliTests : IDisposable
{
    private static readonly string Sample = Path.Combine(AppContext.BaseDirectory, "Data", "fashion-mnist-sample");
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-cli-").FullName;

    private static void AssertOneLineError(string error, string expected)
    {
        string[] lines = error.TrimEnd().Split('\n');
        Assert.True(lines.Length == 1, $"expected one line on stderr, got:\n{error}");
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(expected, lines[0]);
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public void Pilot_writes_metrics_chart_and_summary()
    {
        string outDir = Path.Combine(_temp, "run");
        var (code, stdout, error) = RunCli("pilot", "--data", Sample, "--batch", "8", "--steps", "4", "--eval-every", "2", "--out", outDir);
        Assert.True(code == 0, error);
        string[] csv = File.ReadAllLines(Path.Combine(outDir, "metrics.csv"));
        Assert.Equal("variant,step,train_loss,test_accuracy,test_loss", csv[0]);
        Assert.Equal(5 * 5, csv.Length - 1);                      // five variants, steps 0..4
        var svg = XDocument.Load(Path.Combine(outDir, "figure1.svg"));
        Assert.Equal(5, svg.Descendants().Count(e => e.Name.LocalName == "polyline"));
        using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")));
        Assert.Equal(5, summary.RootElement.GetProperty("variants").GetArrayLength());
        Assert.Contains("frozen", summary.RootElement.GetProperty("network").GetString());
        Assert.Contains("Pilot study results", stdout);
    }

    [Fact]
    public void Pilot_quick_runs_on_the_real_data_set()
    {
        // The README's test command installs the Debian package; without it this test fails and says so.
        Assert.True(Directory.Exists(Flora.Data.FashionMnist.DefaultDirectory),
            $"{Flora.Data.FashionMnist.DefaultDirectory} is missing: install it with 'sudo apt-get install dataset-fashion-mnist' (./test.sh does this as root)");
        string outDir = Path.Combine(_temp, "quick");
        var (code, stdout, error) = RunCli("pilot", "--quick", "--out", outDir);
        Assert.True(code == 0, error);
        foreach (string f in new[] { "metrics.csv", "figure1.svg", "summary.json" })
            Assert.True(new FileInfo(Path.Combine(outDir, f)).Length > 100, $"{f} missing or empty");
        using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json")));
        foreach (var v in summary.RootElement.GetProperty("variants").EnumerateArray())
        {
            Assert.InRange(v.GetProperty("testAccuracy").GetDouble(), 0.3, 1.0); // 200 steps of SGD learn well beyond chance (0.1)
            Assert.Equal(0, v.GetProperty("allocationsAfterFirstStep").GetInt64());
        }
        Assert.Contains("60000 training and 2000 test images", stdout);
    }

    [Fact]
    public void Missing_data_set_is_one_line_naming_the_package()
    {
        var (code, _, error) = RunCli("pilot", "--data", Path.Combine(_temp, "nowhere"), "--out", Path.Combine(_temp, "o"));
        Assert.Equal(FloraCli.UserError, code);
        AssertOneLineError(error, "dataset-fashion-mnist");
    }

    [Fact]
    public void Corrupt_idx_file_is_one_line_naming_the_file()
    {
        string data = Path.Combine(_temp, "corrupt");
        Directory.CreateDirectory(data);
        foreach (string f in Directory.GetFiles(Sample, "*.gz")) File.Copy(f, Path.Combine(data, Path.GetFileName(f)));
        File.WriteAllBytes(Path.Combine(data, "train-images-idx3-ubyte.gz"), [0x1f, 0x8b, 1, 2, 3]);
        var (code, _, error) = RunCli("pilot", "--data", data, "--out", Path.Combine(_temp, "o"));
        Assert.Equal(FloraCli.UserError, code);
        AssertOneLineError(error, "train-images-idx3-ubyte.gz");
    }

    [Fact]
    public void Rank_larger_than_the_layer_is_one_line_naming_the_rank()
    {
        var (code, _, error) = RunCli("pilot", "--data", Sample, "--rank", "1000", "--out", Path.Combine(_temp, "o"));
        Assert.Equal(FloraCli.UserError, code);
        AssertOneLineError(error, "rank 1000");
    }

    [Theory]
    [InlineData("--lr", "-0.5", "--lr must be positive")]
    [InlineData("--lr", "0", "--lr must be positive")]
    [InlineData("--steps", "0", "--steps must be positive")]
    [InlineData("--steps", "-3", "--steps must be positive")]
    public void Non_positive_numbers_are_usage_errors(string option, string value, string expected)
    {
        var (code, _, error) = RunCli("pilot", option, value);
        Assert.Equal(FloraCli.UsageError, code);
        Assert.Contains(expected, error);
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public void Unwritable_output_directory_is_one_line_naming_it()
    {
        string file = Path.Combine(_temp, "a-file");
        File.WriteAllText(file, "not a directory");
        var (code, _, error) = RunCli("pilot", "--data", Sample, "--out", Path.Combine(file, "sub"));
        Assert.Equal(FloraCli.UserError, code);
        AssertOneLineError(error, "cannot write to output directory");
    }

    [Fact]
    public void Bench_pilot_reports_gemm_share_against_the_target()
    {
        var (code, stdout, error) = RunCli("bench", "pilot", "--batch", "16", "--steps", "3", "--warmup", "1");
        Assert.True(code == 0, error);
        Assert.Contains("GEMM share", stdout);
        Assert.Contains("reference in this run: sgemm", stdout);
        foreach (string v in new[] { "SGD", "LoRA", "LoRA(B)", "RP", "RRP" }) Assert.Contains($" {v} ", stdout);
    }

    [Fact]
    public void Inspect_prints_metadata_and_a_table_of_tensors()
    {
        string path = Path.Combine(_temp, "model.safetensors");
        new Flora.Checkpoints.SafeTensorsWriter()
            .Add("encoder.weight", new float[512 * 1024], new Flora.Tensors.Shape(512, 1024))
            .Add("labels", new[] { 1, 2, 3 })
            .AddMetadata("format", "flora")
            .AddMetadata("step", "[42]")
            .Write(path);
        var (code, stdout, error) = RunCli("inspect", path);
        Assert.True(code == 0, error);
        Assert.Contains("2 tensors, 524,291 elements", stdout);
        Assert.Contains("format: flora", stdout);
        Assert.Contains("step: [42]", stdout);                                 // markup characters are printed as they are
        string[] lines = stdout.Split('\n');
        Assert.Contains(lines, l => l.Contains("encoder.weight") && l.Contains("F32") && l.Contains("(512, 1024)") && l.Contains("2.000"));
        Assert.Contains(lines, l => l.Contains("labels") && l.Contains("I32") && l.Contains("(3)") && l.Contains("0.000"));
    }

    [Fact]
    public void Inspect_of_a_corrupt_file_is_one_line_naming_the_file_and_the_problem()
    {
        string path = Path.Combine(_temp, "corrupt.safetensors");
        File.WriteAllBytes(path, [14, 0, 0, 0, 0, 0, 0, 0, .. "{\"a\":{\"dtype\":"u8]);       // the JSON stops after 14 bytes
        var (code, _, error) = RunCli("inspect", path);
        Assert.Equal(FloraCli.UserError, code);
        AssertOneLineError(error, $"{path}: the header is not valid JSON");
    }

    [Fact]
    public void Inspect_of_a_missing_file_is_one_line_naming_it()
    {
        string path = Path.Combine(_temp, "nowhere.safetensors");
        var (code, _, error) = RunCli("inspect", path);
        Assert.Equal(FloraCli.UserError, code);
        AssertOneLineError(error, path);
    }

    public void Dispose() => Directory.Delete(_temp, recursive: true);
}
