using System.Xml.Linq;
using Flora.Experiments.Bible;
using Flora.Data.Corpora;
using Flora.Experiments.Reproduce;
using Flora.Reporting;
using Flora.Tensors;
using Xunit.Abstractions;

namespace Flora.Tests.Experiments;

/// <summary>
/// The memory timeline of the ledger, the stacked-area chart, and <c>flora reproduce figure2</c> at the quick scale on a
/// small synthetic prepared directory (no diatheke needed), run once for the class.
/// </summary>
public sealed class Figure2Tests : IClassFixture<Figure2Tests.QuickRun>
{
    /// <summary>Runs the quick scale once into a temporary directory.</summary>
    public sealed class QuickRun : IDisposable
    {
        public QuickRun()
        {
            var random = new Random(7);
            string[] es = ["uno", "dos", "tres", "casa", "perro", "gato", "sol", "luna", "mar", "rojo"];
            string[] en = ["one", "two", "three", "house", "dog", "cat", "sun", "moon", "sea", "red"];
            var spanish = new List<Verse>();
            var english = new List<Verse>();
            for (int c = 1; c <= 20; c++)
                for (int v = 1; v <= 20; v++)
                {
                    int[] words = Enumerable.Range(0, random.Next(4, 12)).Select(_ => random.Next(es.Length)).ToArray();
                    spanish.Add(new Verse("Genesis", c, v, string.Join(' ', words.Select(w => es[w])) + "."));
                    english.Add(new Verse("Genesis", c, v, string.Join(' ', words.Select(w => en[w])) + "."));
                }
            Data = Path.Combine(Temp, "bible-v1");
            BiblePreparation.Write(BiblePreparation.Build(english, spanish), Data, force: false);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var figure = new Figure2();
            Summary = figure.Run(new ReproduceSettings { OutputDirectory = Path.Combine(Temp, "out"), Quick = true, Data = Data, Seed = 5 });
            Seconds = clock.Elapsed.TotalSeconds;
            Results = figure.Results;
        }

        public string Temp { get; } = Directory.CreateTempSubdirectory("flora-figure2-").FullName;
        public string Data { get; }
        public ReproductionSummary Summary { get; }
        public IReadOnlyList<ProfileResult> Results { get; }
        public double Seconds { get; }

        public void Dispose() => Directory.Delete(Temp, recursive: true);
    }

    private readonly QuickRun _run;
    private readonly ITestOutputHelper _output;

    public Figure2Tests(QuickRun run, ITestOutputHelper output) => (_run, _output) = (run, output);

    [Fact]
    public void Timeline_records_every_allocation_and_free_and_the_ledgers_peak()
    {
        var ledger = new MemoryLedger();
        using var cpu = new Flora.Backends.Cpu.CpuBackend(ledger);
        using var w = cpu.Allocate(new Shape(10, 10), MemoryTag.Parameters);        // 400 B, before the timeline
        ledger.ResetPeaks();
        var timeline = new MemoryTimeline();
        ledger.Timeline = timeline;                                                  // sample 0: the state now
        var a = cpu.Allocate(new Shape(50), MemoryTag.Activations);                  // 200 B
        timeline.AddMark("backward");
        var g = cpu.Allocate(new Shape(25), MemoryTag.Gradients);                    // 100 B: the peak, 700 B
        a.Dispose();
        g.Dispose();
        ledger.Timeline = null;
        using var after = cpu.Allocate(new Shape(1000), MemoryTag.Scratch);          // not recorded

        var samples = timeline.Samples;
        Assert.Equal(6, samples.Count);                                              // attach, 4 events, detach
        Assert.Equal([400L, 600, 700, 500, 400, 400], samples.Select(s => s.Total));
        Assert.Equal(700, timeline.PeakTotal);
        Assert.Equal(2, timeline.PeakIndex);
        Assert.Equal(200, timeline.AtPeak[MemoryTag.Activations]);
        Assert.Equal(100, timeline.AtPeak[MemoryTag.Gradients]);
        Assert.Equal(2, timeline.Marks.Single().NextSample);
        Assert.True(samples.Zip(samples.Skip(1)).All(p => p.Second.Seconds >= p.First.Seconds));
        Assert.Equal(4000 + 400, ledger.Snapshot().PeakTotalBytes);                  // the later scratch raised the ledger's peak, not the timeline's
    }

    [Fact]
    public void Stacked_area_chart_is_well_formed_and_keeps_the_peak_when_downsampling()
    {
        var chart = new SvgStackedAreaChart("memory <profile>", "time (s)", "MiB") { MaxPoints = 50, Subtitle = "a & b" };
        var x = Enumerable.Range(0, 1000).Select(i => i * 0.01).ToArray();
        chart.SetX(x);
        chart.AddLayer("parameters", x.Select(_ => 1.0).ToArray());
        chart.AddLayer("activations", x.Select((_, i) => i == 537 ? 9.0 : 2.0).ToArray());
        chart.AddMarker(1.5, "step 2");
        var doc = XDocument.Parse(chart.ToSvg());
        XNamespace svg = "http://www.w3.org/2000/svg";
        Assert.Equal(2, doc.Descendants(svg + "polygon").Count());
        Assert.Contains(doc.Descendants(svg + "text"), t => t.Value == "10");         // the y axis reaches the peak of 10
        var combined = XDocument.Parse(SvgStackedAreaChart.Combine("both", [chart, new SvgStackedAreaChart("empty", "x", "y") { IdPrefix = "other" }], 2));
        Assert.Equal(2, combined.Root!.Elements(svg + "svg").Count());
        Assert.Throws<ArgumentException>(() => chart.AddLayer("short", [1.0]));
    }

    [Fact]
    public void Quick_scale_writes_the_outputs_and_every_svg_is_well_formed()
    {
        _output.WriteLine($"quick figure2: {_run.Seconds:F1} s");
        _output.WriteLine(_run.Summary.TableMarkdown);
        string dir = _run.Summary.OutputDirectory;
        foreach (string name in new[] { "table.md", "results.csv", "commands.txt", "figure2.svg", "peaks.svg" })
            Assert.True(File.Exists(Path.Combine(dir, name)), name);
        var svgs = Directory.GetFiles(dir, "*.svg");
        Assert.Equal(6 + 2, svgs.Length);                                           // six profiles, figure2.svg, peaks.svg
        foreach (string file in svgs) XDocument.Load(file);                         // throws when not well-formed
        Assert.Contains("| (b) | LoRA(8) + AC + LOMO |", File.ReadAllText(Path.Combine(dir, "table.md")));
        Assert.Equal(1 + 6 * Enum.GetValues<MemoryTag>().Length, File.ReadAllLines(Path.Combine(dir, "results.csv")).Length);
    }

    [Fact]
    public void Quick_scale_timelines_match_the_ledger_and_show_the_papers_categories()
    {
        var results = _run.Results;
        Assert.Equal(6, results.Count);
        Assert.All(results, r => Assert.Null(r.Failure));                             // every combination runs, LOMO with Adam and LoRA included
        foreach (var r in results)
        {
            Assert.Equal(r.Ledger!.PeakTotalBytes, r.Timeline!.PeakTotal);
            foreach (var t in Enum.GetValues<MemoryTag>()) Assert.Equal(r.Ledger[t].BytesAtTotalPeak, r.AtPeak(t));
            Assert.True(r.Timeline.Marks.Count == 2, $"{r.Config.Label}: {r.Timeline.Marks.Count} step marks");
        }
        ProfileResult Get(string method, bool efficient) => results.Single(r => r.Config.Method == method && r.Config.Efficient == efficient);
        var adam = Get("Adam", false);
        // Adam keeps a gradient for every trainable parameter; LOMO keeps none, except for the embedding tied to the
        // output projection (it receives three gradients per step and is updated at the last); LoRA freezes it.
        Assert.Equal(adam.TrainableParameters * 4, adam.AtPeak(MemoryTag.Gradients));
        Assert.Equal(0, Get("LoRA", true).AtPeak(MemoryTag.Gradients));
        long tiedEmbedding = 512L * 64 * 4;                                          // vocabulary (at most 512) x 64 channels
        Assert.InRange(Get("Adam", true).AtPeak(MemoryTag.Gradients), 1, tiedEmbedding);
        Assert.InRange(Get("FLORA", true).AtPeak(MemoryTag.Gradients), 1, tiedEmbedding);
        Assert.True(Get("Adam", true).AtPeak(MemoryTag.Gradients) < adam.AtPeak(MemoryTag.Gradients) / 2);
        // LoRA and FLORA keep less optimizer state than Adam.
        foreach (bool efficient in new[] { false, true })
        {
            Assert.True(Get("LoRA", efficient).OptimizerStateBytes < Get("Adam", efficient).OptimizerStateBytes);
            Assert.True(Get("FLORA", efficient).OptimizerStateBytes < Get("Adam", efficient).OptimizerStateBytes);
            Assert.True(Get("FLORA", efficient).AtPeak(MemoryTag.OptimizerState) < Get("Adam", efficient).AtPeak(MemoryTag.OptimizerState));
        }
        // FLORA trains every weight: more gradient storage than LoRA without LOMO.
        Assert.True(Get("FLORA", false).AtPeak(MemoryTag.Gradients) > Get("LoRA", false).AtPeak(MemoryTag.Gradients));
        // Activation checkpointing and LOMO lower every peak.
        foreach (string m in new[] { "Adam", "LoRA", "FLORA" }) Assert.True(Get(m, true).PeakTotal < Get(m, false).PeakTotal, m);
    }
}
