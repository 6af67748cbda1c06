using System.Globalization;
using Flora.Experiments.Bible;
using Flora.Data.Corpora;
using Flora.Experiments.Reproduce;
using Flora.Training;
using Xunit.Abstractions;
using Flora.Reporting;
using static Flora.Tests.TestCli;

namespace Flora.Tests.Experiments;

/// <summary>
/// <c>flora reproduce</c> at the CI-sized quick scale on the real Bible data: every text experiment runs its whole
/// protocol (learning-rate sweep, model selection on validation, test evaluation of the best checkpoint, memory from
/// the ledger) and writes its table; the checks are on the protocol and on memory, which must order as the paper
/// says at any scale (scores of 24-step runs are not meaningful and are not asserted).
/// </summary>
public sealed class ReproduceTests : IClassFixture<ReproduceTests.Workspace>
{
    /// <summary>Prepared data and an output root shared by the class (the quick tokenizer and pretrained model are reused across tests).</summary>
    public sealed class Workspace : IDisposable
    {
        public Workspace()
        {
            Data = Path.Combine(Root, "bible");
            BiblePreparation.Prepare(new PrepareOptions { OutputDirectory = Data, InstallMissingPackages = false });
        }

        public string Root { get; } = Directory.CreateTempSubdirectory("flora-reproduce-").FullName;
        public string Data { get; }

        public ReproduceSettings Settings(string name) => new()
        {
            Quick = true, Data = Data, OutputDirectory = Path.Combine(Root, "quick", name), Seed = 1, CommandLine = $"flora reproduce {name} --quick",
        };

        public void Dispose() => Directory.Delete(Root, recursive: true);
    }

    private readonly Workspace _w;
    private readonly ITestOutputHelper _output;
    public ReproduceTests(Workspace w, ITestOutputHelper output) => (_w, _output) = (w, output);

    private IProgress<string> Log => new SynchronousProgress<string>(_output.WriteLine);

    [Fact]
    public void Table2_runs_the_protocol_and_flora_momentum_costs_less_state_than_naive()
    {
        var summary = new Table2Reproduction().Run(_w.Settings("table2"), Log);
        string dir = summary.OutputDirectory;
        foreach (var f in new[] { "table.md", "results.csv", "commands.txt", "validation-gpt.svg", "validation-t5.svg" })
            Assert.True(File.Exists(Path.Combine(dir, f)), $"{f} is missing");
        var rows = ReadResults(Path.Combine(dir, "results.csv"));
        foreach (string family in new[] { "gpt", "t5" })
        {
            var f = rows.Where(r => r["setting"] == family).ToList();
            var naive = f.Where(r => r["method"] == "Naive").ToList();
            Assert.True(naive.Count >= 2, $"{family}: {naive.Count} naive runs");           // the grid, extended past an edge that won
            var chosen = naive.Where(r => r["failure"] == "").OrderBy(r => double.Parse(r["best_val_loss"], CultureInfo.InvariantCulture)).First()["lr"];
            var rates = naive.Select(r => double.Parse(r["lr"], CultureInfo.InvariantCulture)).Order().ToList();
            double best = double.Parse(chosen, CultureInfo.InvariantCulture);
            // The grid is extended past the edge that won, once at the quick scale.
            // A grid of two always has its best rate at an edge, so it gains a third rate beyond that edge.
            Assert.Equal(3, rates.Count);
            Assert.True(best >= rates[0] && best <= rates[^1]);
            var flora = f.Single(r => r["method"] == "Flora");
            var none = f.Single(r => r["method"] == "None");
            Assert.Equal(chosen, flora["lr"]);              // the learning rate chosen for Naive is reused
            Assert.Equal(chosen, none["lr"]);
            Assert.Equal(6, Long(flora, "resamplings"));    // kappa = 24 / 5 = 4; the official variant moves M after updates 4, 8, ..., 24
            Assert.Equal(0, Long(none, "resamplings"));
            // LoRA as the paper ran it: the token embedding (512 x 64) trains besides the adapters.
            foreach (var lora in f.Where(r => r["method"] == "LoRA"))
            {
                Assert.Equal("Paper", lora["lora_mode"]);
                Assert.True(Long(lora, "trainable_parameters") > 512 * 64, $"{family}: LoRA trains {lora["trainable_parameters"]} parameters");
                Assert.True(Long(lora, "trainable_parameters") < Long(flora, "trainable_parameters"), "LoRA freezes the wrapped matrices");
            }
            Assert.True(Long(flora, "optimizer_state_bytes") < Long(naive[0], "optimizer_state_bytes"), $"{family}: Flora's state is not smaller than naive momentum's");
            Assert.True(Long(none, "optimizer_state_bytes") < Long(flora, "optimizer_state_bytes"), $"{family}: no momentum must cost less state than compressed momentum");
            Assert.True(Long(flora, "peak_bytes") < Long(naive[0], "peak_bytes"), $"{family}: Flora's peak is not below Naive's");
            foreach (var r in f.Where(r => r["failure"] == "")) Assert.True(double.Parse(r["test_loss"], CultureInfo.InvariantCulture) is > 0 and < 20, $"{family} {r["method"]}: test loss {r["test_loss"]}");
        }
        string table = File.ReadAllText(Path.Combine(dir, "table.md"));
        Assert.Contains("| Flora(8) |", table);
        Assert.Contains("| 9.09 | 0.14 | 9.14 |", table);     // the paper's GPT-2 Flora(8) row sits next to ours
        Assert.Contains("Verdict:", table);
        // The official variant (the default) moves M after updates 4, 8, ..., 24: six times in 24 steps.
        Assert.Contains("resamplings per FLORA arm: 6 (kappa = 4 here, the paper's 1000)", table);
        Assert.Contains("| the paper's claim | here | holds? |", table);
        Assert.Contains("Flora(8) within 0.05 nats of Naive", summary.Verdict);
        Assert.Contains("flora train --model gpt-tiny", File.ReadAllText(Path.Combine(dir, "commands.txt")));
    }

    [Fact]
    public void Table1_fine_tunes_a_pretrained_model_and_compressed_accumulators_are_smaller_than_buffers()
    {
        var summary = new AccumulationReproduction("table1", unfactored: false).Run(_w.Settings("table1"), Log);
        var rows = ReadResults(Path.Combine(summary.OutputDirectory, "results.csv"));
        var naive = rows.Where(r => r["method"] == "Naive").ToList();
        var none = rows.Single(r => r["method"] == "None");
        var flora = rows.Single(r => r["method"] == "Flora");
        var lora = rows.First(r => r["method"] == "LoRA");
        Assert.True(Long(flora, "resamplings") >= 20, $"compressed accumulation draws a new projection after every update: {flora["resamplings"]}");
        // LOMO without accumulation: the only buffer is the tied embedding's (its uses are summed before its update), 512 x 64 floats.
        Assert.Equal(512 * 64 * 4, Long(none, "accumulator_peak_bytes") + Long(none, "gradient_peak_bytes"));
        Assert.Equal("16", flora["tau"]);
        Assert.Equal((16 * int.Parse(flora["steps"], CultureInfo.InvariantCulture)).ToString(CultureInfo.InvariantCulture), none["steps"]);
        long naiveBuffers = Long(naive[0], "accumulator_peak_bytes") + Long(naive[0], "gradient_peak_bytes");
        long floraBuffers = Long(flora, "accumulator_peak_bytes") + Long(flora, "gradient_peak_bytes");
        Assert.True(floraBuffers < naiveBuffers, $"compressed accumulation {floraBuffers} B is not below naive {naiveBuffers} B");
        Assert.True(Long(lora, "accumulator_peak_bytes") + Long(lora, "gradient_peak_bytes") < naiveBuffers);
        // Fine-tuning starts from the pretrained model: its first validation loss is far below a random model's ln(512).
        Assert.True(double.Parse(naive[0]["best_val_loss"], CultureInfo.InvariantCulture) < Math.Log(512) - 0.5);
        Assert.Contains("--init-from", naive[0]["command"]);
        Assert.Contains("| 2.93 | 0.15 | 16.3 |", File.ReadAllText(Path.Combine(summary.OutputDirectory, "table.md")));   // the paper's Flora(8) row
    }

    [Fact]
    public void Table3_and_the_ablation_vary_kappa_and_the_momentum_variant_on_the_same_seeds()
    {
        var t3 = new Table3Reproduction().Run(_w.Settings("table3"), Log);
        var rows = ReadResults(Path.Combine(t3.OutputDirectory, "results.csv"));
        // The paper's 1, 10 and 1000; 1000 is scaled to a fifth of the 24-step run.
        Assert.Equal(new[] { "1", "10", "4" }, rows.Where(r => r["method"] == "Flora").Select(r => r["kappa"]).ToArray());
        // The official variant moves M after every kappa-th update: 24, 2 and 6 times in 24 steps (kappa 1 may diverge first).
        Assert.Equal(new long[] { 24, 2, 6 }, rows.Where(r => r["method"] == "Flora").Select(r => r["failure"] == "" ? Long(r, "resamplings") : 24).ToArray());
        string t3Table = File.ReadAllText(Path.Combine(t3.OutputDirectory, "table.md"));
        Assert.Contains("| 30.2/9.51/24.0 |", t3Table);   // the paper's kappa = 1000 row
        Assert.Contains("1000 -> 4 (a fifth of the run)", t3Table);
        Assert.Contains("kappa = 1 fails", t3.Verdict);

        // Resumed into the same directory, every run's stored result is reused: the same results, no training.
        string csv = File.ReadAllText(Path.Combine(t3.OutputDirectory, "results.csv"));
        var messages = new List<string>();
        var resumed = new Table3Reproduction().Run(_w.Settings("table3") with { Resume = true }, new SynchronousProgress<string>(messages.Add));
        Assert.Equal(csv, File.ReadAllText(Path.Combine(resumed.OutputDirectory, "results.csv")));
        Assert.Equal(rows.Count, messages.Count(m => m.Contains("reusing the result stored in", StringComparison.Ordinal)));
        Assert.DoesNotContain(messages, m => m.Contains("step 1/", StringComparison.Ordinal) || m.Contains("best validation", StringComparison.Ordinal));

        var ab = new AblationReproduction().Run(_w.Settings("ablation"), Log);
        var arms = ReadResults(Path.Combine(ab.OutputDirectory, "results.csv"));
        Assert.Equal(new[] { "Flora-paper", "Flora-official", "Naive" }, arms.Select(r => r["method"]).Distinct().ToArray());
        Assert.All(arms.Where(r => r["method"] == "Flora-paper"), r => Assert.Equal("Paper", r["variant"]));
        Assert.All(arms.Where(r => r["method"] == "Flora-official"), r => Assert.Equal("Official", r["variant"]));
        Assert.True(arms.Count(r => r["method"] == "Flora-paper") >= 2, "each variant has its own learning-rate sweep");
        // Same seeds and rate, different momentum: the two variants must not give the same run.
        string FirstLoss(string method) => arms.First(r => r["method"] == method && r["lr"] == "0.01")["best_val_loss"];
        Assert.NotEqual(FirstLoss("Flora-paper"), FirstLoss("Flora-official"));
        Assert.Contains("Algorithm 2 as printed", ab.Verdict);
    }

    [Fact]
    public void Table4_through_the_command_line_uses_unfactored_adafactor_and_updates_the_results_document()
    {
        string doc = Path.Combine(_w.Root, "cli-results.md");
        var (code, stdout, error) = TestCli.RunCli("reproduce", "table4", "--quick", "--seed", "1", "--data", _w.Data,
            "--out", _w.Root, "--results", doc);
        _output.WriteLine(stdout);
        Assert.True(code == 0, error);
        var rows = ReadResults(Path.Combine(_w.Root, "quick", "table4", "results.csv"));
        Assert.All(rows, r => Assert.Contains("--unfactored", r["command"]));
        var naive = rows.First(r => r["method"] == "Naive");
        var flora = rows.Single(r => r["method"] == "Flora");
        // Unfactored Adafactor keeps a full-size second moment: as large as naive accumulation's full-size buffers
        // (factored, it would be a few row and column vectors).
        long buffers = Long(naive, "accumulator_peak_bytes") + Long(naive, "gradient_peak_bytes");
        Assert.True(Long(naive, "optimizer_state_bytes") >= 0.9 * buffers, $"state {Long(naive, "optimizer_state_bytes")} B, buffers {buffers} B");
        Assert.Contains("<!-- reproduce:table4:begin -->", File.ReadAllText(doc));
        Assert.Contains("| 1.00 | 0.01 | 31.6/9.72/24.7 |", File.ReadAllText(doc));      // the paper's Flora(8) row of Table 4
        Assert.Contains("wrote", stdout);

        var (badCode, _, badError) = TestCli.RunCli("reproduce", "table9");
        Assert.NotEqual(0, badCode);
        Assert.Contains("unknown experiment 'table9'", badError);
    }

    [Fact]
    public void Figure1_runs_the_pilot_study_and_writes_the_figure()
    {
        var summary = new Figure1Reproduction().Run(_w.Settings("figure1"), Log);
        foreach (var f in new[] { "table.md", "results.csv", "figure1.svg", "accuracy.svg", "metrics.csv" })
            Assert.True(File.Exists(Path.Combine(summary.OutputDirectory, f)), $"{f} is missing");
        var rows = ReadResults(Path.Combine(summary.OutputDirectory, "results.csv")).Where(r => r["table"] == "figure").ToList();
        Assert.Equal(5, rows.Count);
        Assert.All(rows, r => Assert.Equal("First", r["layer"]));   // the caption's setting: the patch on the first layer
        double Loss(string v) => double.Parse(rows.Single(r => r["variant"] == v)["final_train_loss"], CultureInfo.InvariantCulture);
        // RP and LoRA(B) follow the same update (Eq. 20): equal losses to float rounding, whatever the length of the run.
        Assert.Equal(Loss("RP"), Loss("LoRA(B)"), 3);
        Assert.Contains("LoRA(B) is close to LoRA", summary.Verdict);
        Assert.Contains("| layer patched | other layers |", File.ReadAllText(Path.Combine(summary.OutputDirectory, "table.md")));
    }

    [Fact]
    public void Results_document_sections_are_replaced_not_duplicated()
    {
        string path = Path.Combine(_w.Root, "results.md");
        File.WriteAllText(path, "# Results\n\nHand-written introduction.\n");
        var a = new ReproductionSummary("table9", "t", "# table9: first\n\n| a |\n", "v1", true, "x");
        Reproductions.UpdateResults(path, a);
        Reproductions.UpdateResults(path, a with { TableMarkdown = "# table9: second\n" , ConclusionHolds = false });
        string text = File.ReadAllText(path);
        Assert.Contains("Hand-written introduction.", text);
        Assert.DoesNotContain("first", text);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(text, "reproduce:table9:begin"));
        Assert.Contains("## table9: second", text);
        Assert.Contains("Conclusion holds here: **no**", text);
    }

    [Fact]
    public void Unknown_experiment_names_the_choices()
    {
        var e = Assert.Throws<ArgumentException>(() => Reproductions.Find("table7"));
        Assert.Contains("table2", e.Message);
    }
}
