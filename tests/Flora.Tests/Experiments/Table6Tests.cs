using System.Globalization;
using Flora.Experiments.Reproduce;
using Xunit.Abstractions;
using Flora.Reporting;
using static Flora.Tests.TestCli;

namespace Flora.Tests.Experiments;

/// <summary>
/// <c>flora reproduce table6 --quick</c>: GaLore, FLORA (AdamW), AdamW and FLORA (Adafactor) train llama-tiny on the
/// embedded corpus; the outputs exist, every arm has finite perplexities, and GaLore's optimizer state holds its
/// stored projections on top of its projected moments. Scores of 30-step runs are not asserted.
/// </summary>
public sealed class Table6Tests(ITestOutputHelper output)
{

    [Fact]
    public void Quick_scale_writes_the_table_with_finite_perplexities_and_counts_galores_projections()
    {
        string root = Directory.CreateTempSubdirectory("flora-table6-").FullName;
        try
        {
            var settings = new ReproduceSettings { Quick = true, OutputDirectory = Path.Combine(root, "table6"), Seed = 1, CommandLine = "flora reproduce table6 --quick" };
            var summary = new Table6Reproduction().Run(settings, new SynchronousProgress<string>(output.WriteLine));
            output.WriteLine(summary.TableMarkdown);
            foreach (var f in new[] { "table.md", "results.csv", "commands.txt", "loss.svg" })
                Assert.True(File.Exists(Path.Combine(summary.OutputDirectory, f)), $"{f} is missing");
            string table = File.ReadAllText(Path.Combine(summary.OutputDirectory, "table.md"));
            Assert.Contains("34.64", table);                                         // the paper's 60M GaLore perplexity beside ours
            Assert.Contains("**Verdict:**", table);
            string galoreCommand = File.ReadAllLines(Path.Combine(summary.OutputDirectory, "commands.txt")).Single(l => l.Contains("--optimizer galore", StringComparison.Ordinal));
            Assert.Contains("--rank 8 ", galoreCommand);

            var rows = ReadResults(Path.Combine(summary.OutputDirectory, "results.csv"));
            Assert.Equal(["galore", "flora", "adamw", "flora-adafactor"], rows.Select(r => r["arm"]));
            Assert.Equal(["galore", "adamw-flora", "adamw", "flora"], rows.Select(r => r["optimizer"]));
            foreach (var r in rows)
            {
                Assert.Equal("", r["failure"]);
                foreach (var column in new[] { "final_val_ppl", "best_val_ppl", "test_ppl" })
                    Assert.True(double.IsFinite(Double(r, column)) && Double(r, column) > 1, $"{r["arm"]}: {column} = {r[column]}");
                Assert.True(Long(r, "peak_bytes") > Long(r, "optimizer_state_bytes"), $"{r["arm"]}: the peak holds the state and more");
                // The checkpoint's optimizer tensors add up to the optimizer's own count.
                Assert.Equal(Long(r, "optimizer_state_bytes"), Long(r, "projection_bytes") + Long(r, "moment_bytes"));
            }
            var galore = rows[0];
            Assert.Equal(0.01, Double(galore, "lr"), 1e-6);
            // FLORA on AdamW at the best of its sweep, which tried the paper's rate (a third of GaLore's) and two below it.
            // Tried: F / 10, F / 3 and F (F = 0.01 / 3), then F / 30 or 3 F where the best sits on an edge.
            double floraLr = Double(rows[1], "lr"), paper = 0.01 / 3;
            Assert.Contains(new[] { paper / 30, paper / 10, paper / 3, paper, 3 * paper }, v => Math.Abs(floraLr - v) < 0.02 * v);
            Assert.Contains("Learning rates tried: flora ", table);
            Assert.Contains("0.00033, 0.00111, 0.00333", table);
            Assert.True(Directory.Exists(Path.Combine(summary.OutputDirectory, "runs", "flora-lr0.00333")), "the paper's rate was run");
            // llama-tiny (2 layers, 64 channels): GaLore projects q, k, v, o (64 x 64), gate and up (172 x 64) and down
            // (64 x 172) of each layer, each projection r x 64.
            Assert.Equal(14, Long(galore, "projected_matrices"));
            Assert.Equal(14L * 8 * 64 * 4, Long(galore, "projection_bytes"));
            Assert.True(Long(galore, "optimizer_state_bytes") > Long(galore, "moment_bytes"), "GaLore's state includes its projections");
            foreach (var r in rows.Skip(1)) Assert.Equal(0, Long(r, "projection_bytes"));
            Assert.True(Long(rows[2], "optimizer_state_bytes") > Long(galore, "optimizer_state_bytes"), "full-rank AdamW keeps more state than GaLore");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
