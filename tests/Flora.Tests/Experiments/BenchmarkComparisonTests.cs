using Flora.Experiments;

namespace Flora.Tests.Experiments;

public class BenchmarkComparisonTests
{
    private static TrainBenchRow Row(string optimizer, bool lomo, double ms, long peakBytes) =>
        new("gpt2-124m", optimizer, lomo, 124_000_000, 8, 1024, ms, 8192 / (ms / 1000), 0.15, 10, 20, 5, 0.3, peakBytes, peakBytes + 1, 1000);

    [Fact]
    public void The_side_by_side_table_reads_the_targets_off_matching_rows()
    {
        const long GiB = 1L << 30;
        var ours = new TrainBenchReport("H100", "bf16", "2026-11-22", 989, 5, 12,
        [
            Row("adafactor", false, 40, 7 * GiB), Row("adafactor", true, 39, 6 * GiB),
            Row("flora r=256", false, 42, 7 * GiB), Row("flora r=256", true, 41.5, 7 * GiB),
            Row("adamw", false, 45, 13 * GiB), Row("adamw", true, 44, 12 * GiB),
        ]);
        var torch = new TorchBenchReport("H100", "torch 2.11", [new("gpt2-124m", "AdamW (fused)", 68.0, 120_000, 12.68, 949), new("gpt2-124m", "Flora r=256", 128.9, 63_535, 12.0, 258)]);
        string md = BenchmarkComparison.Markdown(ours, torch);

        Assert.Contains("| gpt2-124m | flora r=256 | off | 42.0 |", md);
        Assert.Contains("68.0 | 120,000 | 12.68 | 1.51x |", md);                                  // adamw: 68 / 45
        Assert.Contains("against PyTorch's fused AdamW 120,000: 1.63x", md);                      // 195,048 / 120,000
        Assert.Contains("42.0 / 40.0 ms = 1.050 (target at most 1.05)", md);
        Assert.Contains("41.5 / 39.0 ms = 1.064", md);
        Assert.Contains("- adamw: peak 13.00 GiB against PyTorch's 12.68 GiB (NOT below)", md);
        Assert.Contains("- flora r=256: peak 7.00 GiB against PyTorch's 12.00 GiB (below); with LOMO 7.00 GiB, 5.00 GiB below PyTorch, gradients are 0.46 GiB (met).", md);
    }

    [Fact]
    public void Compiled_PyTorch_rows_get_their_own_columns_and_the_targets_against_them()
    {
        const long GiB = 1L << 30;
        var ours = new TrainBenchReport("H100", "bf16", "2026-12-07", 989, 6, 12,
            [Row("flora r=256", false, 40, 6 * GiB), Row("adamw", false, 38, 8 * GiB)]);
        var torch = new TorchBenchReport("H100", "torch 2.11",
        [
            new("gpt2-124m", "AdamW (fused)", 60.0, 136_000, 12.5, 949),
            new("gpt2-124m", "AdamW (fused)", 32.0, 256_000, 6.5, 949, Compiled: true),
            new("gpt2-124m", "Flora r=256", 62.0, 132_000, 6.0, 258, Compiled: true),
        ]);
        string md = BenchmarkComparison.Markdown(ours, torch);

        Assert.Contains("| gpt2-124m | adamw | off | 38.0 | 215,579 | ", md);
        Assert.Contains("60.0 | 136,000 | 12.50 | 1.58x | 32.0 | 256,000 | 6.50 | 0.84x |", md);                // 60 / 38, 32 / 38
        Assert.Contains("- | - | - | - | 62.0 | 132,000 | 6.00 | 1.55x |", md);                     // flora: compiled only
        Assert.Contains("against compiled PyTorch's fused AdamW 256,000: 0.80x (target at least 1.3x)", md);   // 204,800 / 256,000
        Assert.Contains("6.00 GiB against compiled PyTorch's FLORA r=256 6.00 GiB: 1.00x (target at most 0.8x)", md);
        Assert.Contains("- adamw: peak 8.00 GiB against compiled PyTorch AdamW's 6.50 GiB (NOT below).", md);
    }

    [Fact]
    public void Rows_with_bf16_weights_are_read_against_the_7b_memory_target_and_the_fastest_pytorch_that_fitted()
    {
        const long GiB = 1L << 30;
        TrainBenchRow Large(string model, double tokensPerSecond, long ledger, long driver) =>
            new(model, "flora r=256", true, 6_738_415_616, 1, 2048, 2048 / tokensPerSecond * 1000, tokensPerSecond, 0.4, 1, 2, 0.5, 0.8, ledger, driver, 2 * GiB,
                null, "bf16", true, 32_000, new Dictionary<string, long> { ["Parameters"] = 12 * GiB + GiB / 2, ["Scratch"] = GiB });
        var ours = new TrainBenchReport("H100", "bf16", "2026-12-07", 989, 2, 5, [Large("llama-7b", 3000, 19 * GiB, 20 * GiB + GiB / 2), Large("llama-1b", 20000, 5 * GiB, 6 * GiB)]);
        var torch = new TorchBenchReport("H100", "torch 2.11",
        [
            new("llama-7b", "AdamW (fused)", 1000, 2048, 70.1, 25_000),
            new("llama-7b", "adafactor", 800, 2560, 30.2, 10),
            new("llama-7b", "adafactor", 700, 2000, 30.2, 10, Compiled: true),
        ]);
        string md = BenchmarkComparison.Markdown(ours, torch);
        Assert.Contains("- llama-7b, flora r=256, LOMO, checkpointing: peak 19.00 GiB (ledger) (Parameters 12.50, Scratch 1.00), 20.50 GiB (driver); target under 24 GiB: met, stretch under 20 GiB: not met.", md);
        Assert.Contains("3,000 tokens/s against PyTorch's fastest that fitted, adafactor at 2,560 (30.20 GiB): 1.17x (target at least 1x).", md);
        Assert.Contains("no PyTorch configuration of llama-1b was measured (or none fitted)", md);
        Assert.DoesNotContain("llama-1b, flora r=256, LOMO, checkpointing: peak 5.00 GiB (ledger) (Parameters 12.50, Scratch 1.00), 6.00 GiB (driver); target", md);
    }
}
