using System.Xml.Linq;
using Flora.Data;
using Flora.Experiments.Reproduce;
using Flora.Nn.Models;
using Flora.Tensors;
using Xunit.Abstractions;

namespace Flora.Tests.Experiments;

/// <summary><c>flora reproduce table5</c> at the quick scale on the real Fashion-MNIST files (run once for the class), and its data layout.</summary>
public sealed class Table5Tests : IClassFixture<Table5Tests.QuickRun>
{
    public sealed class QuickRun : IDisposable
    {
        public QuickRun()
        {
            var table = new Table5();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            Summary = table.Run(new ReproduceSettings { OutputDirectory = Path.Combine(Temp, "out"), Quick = true, Seed = 3 });
            Seconds = clock.Elapsed.TotalSeconds;
            Results = table.Results;
        }

        public string Temp { get; } = Directory.CreateTempSubdirectory("flora-table5-").FullName;
        public ReproductionSummary Summary { get; }
        public IReadOnlyList<ClassifierArmResult> Results { get; }
        public double Seconds { get; }

        public void Dispose() => Directory.Delete(Temp, recursive: true);
    }

    private readonly QuickRun _run;
    private readonly ITestOutputHelper _output;

    public Table5Tests(QuickRun run, ITestOutputHelper output) => (_run, _output) = (run, output);

    [Fact]
    public void Quick_scale_writes_table_results_and_a_well_formed_accuracy_chart()
    {
        _output.WriteLine($"quick table5: {_run.Seconds:F1} s");
        _output.WriteLine(_run.Summary.TableMarkdown);
        string dir = _run.Summary.OutputDirectory;
        foreach (string name in new[] { "table.md", "results.csv", "curves.csv", "commands.txt", "accuracy.svg", "loss.svg" })
            Assert.True(File.Exists(Path.Combine(dir, name)), name);
        XDocument.Load(Path.Combine(dir, "accuracy.svg"));
        XDocument.Load(Path.Combine(dir, "loss.svg"));
        Assert.Equal(1 + 4, File.ReadAllLines(Path.Combine(dir, "results.csv")).Length);
        string table = File.ReadAllText(Path.Combine(dir, "table.md"));
        Assert.Contains("91.93", table);                                               // the paper's numbers next to ours
        Assert.Contains("-32.4 %", table);
    }

    [Fact]
    public void Quick_scale_trains_above_chance_and_flora_keeps_less_optimizer_state()
    {
        var results = _run.Results;
        Assert.Equal(["base Adam", "base FLORA", "large Adam", "large FLORA"], results.Select(r => $"{r.Size} {r.Optimizer}"));
        foreach (var r in results)
        {
            Assert.InRange(r.TestAccuracy, 0.0, 1.0);
            Assert.InRange(r.BestValidationAccuracy, 0.0, 1.0);
            Assert.True(r.TestAccuracy > 0.3, $"{r.Size} {r.Optimizer}: test accuracy {r.TestAccuracy:P1} (chance is 10 %)");
            Assert.True(r.Curve[^1].TrainLoss < r.Curve[0].TrainLoss, $"{r.Size} {r.Optimizer}: the training loss did not fall");
            Assert.Equal(r.PeakBytes, r.Memory.PeakTotalBytes);
        }
        foreach (string size in new[] { "base", "large" })
        {
            var adam = results.Single(r => r.Size == size && r.Optimizer == "Adam");
            var flora = results.Single(r => r.Size == size && r.Optimizer == "FLORA");
            Assert.Equal(adam.Parameters, flora.Parameters);
            Assert.Equal(2 * adam.Parameters * 4, adam.OptimizerStateBytes);          // Adam: m and v, full size
            Assert.True(flora.OptimizerStateBytes < adam.OptimizerStateBytes / 4, $"{size}: FLORA {flora.OptimizerStateBytes} B vs Adam {adam.OptimizerStateBytes} B");
            Assert.True(flora.PeakBytes < adam.PeakBytes);
            Assert.Equal(adam.Memory[MemoryTag.Parameters].BytesAtTotalPeak, flora.Memory[MemoryTag.Parameters].BytesAtTotalPeak);
        }
    }

    [Fact]
    public void Patch_rows_hold_each_images_patches_in_reading_order()
    {
        var pixels = Enumerable.Range(0, 2 * 28 * 28).Select(i => (float)i).ToArray();
        var images = new ImageDataset("t", 2, 28, 28, pixels, [1, 2], 10);
        var rows = Table5.PatchRows(images, VitConfig.FashionMnist());
        Assert.Equal((16, 49), (rows.Rows, rows.Cols));
        // Image 1, patch 5 (second row of patches, second column), its row 3, column 4: pixel (7 + 3, 7 + 4) of image 1.
        Assert.Equal(28 * 28 + (7 + 3) * 28 + 7 + 4, rows.Pixels[784 + 5 * 49 + 3 * 7 + 4]);
        Assert.Equal(images.Labels, rows.Labels);
    }
}
