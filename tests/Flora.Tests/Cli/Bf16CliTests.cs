using Flora.Experiments;
using Flora.Training;
using static Flora.Tests.TestCli;

namespace Flora.Tests.Cli;

/// <summary>The command line of bf16 weights: <c>flora train --weights</c> and the options of the 7B-scale benchmark.</summary>
public class Bf16CliTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-bf16-cli-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public void Bench_train_takes_the_options_of_the_large_model_benchmark()
    {
        // The command with a model that runs on the CPU: bf16 weights, LOMO, activation checkpointing, FLORA.
        string json = Path.Combine(_temp, "bench.json");
        var (code, stdout, error) = RunCli("bench", "train", "--model", "llama-tiny", "--weights", "bf16", "--lomo", "on", "--activation-checkpointing",
            "--optimizer", "flora:8", "--batch", "1", "--seq-len", "32", "--steps", "1", "--warmup", "1", "--tokenizer", "bpe:300", "--vocabulary", "1000", "--json", json);
        Assert.True(code == 0, error);
        Assert.Contains("bf16, ckpt", stdout);
        Assert.Contains("vocabulary 1,000", stdout);
        var row = Assert.Single(TrainBenchmark.ReadJson(json).Rows);
        Assert.Equal(("bf16", true, 1000, true), (row.Weights, row.Checkpointing, row.Vocabulary, row.Lomo));
        Assert.True(row.PeakByTag!["Parameters"] > 0);
        Assert.Equal(32_000, TrainBenchmark.ParseVocabulary("published", "llama-7b"));
        Assert.Equal(128_256, TrainBenchmark.ParseVocabulary("published", "llama-1b"));
        Assert.Equal(0, TrainBenchmark.ParseVocabulary("published", "gpt-tiny"));       // no published shape: the tokenizer's
        Assert.Throws<ArgumentException>(() => TrainBenchmark.ParseVocabulary("big", "llama-7b"));
    }

    [Fact]
    public void Bench_train_times_several_checkpointed_block_counts_and_train_refuses_bad_ones()
    {
        string json = Path.Combine(_temp, "blocks.json");
        var (code, stdout, error) = RunCli("bench", "train", "--model", "llama-tiny", "--lomo", "on", "--activation-checkpointing", "--checkpoint-blocks", "1,2,0",
            "--optimizer", "flora:8", "--batch", "1", "--seq-len", "32", "--steps", "1", "--warmup", "1", "--tokenizer", "bpe:300", "--json", json);
        Assert.True(code == 0, error);
        Assert.Contains("ckpt 1/2", stdout);
        var rows = TrainBenchmark.ReadJson(json).Rows;
        Assert.Equal([(1, 2, true), (2, 2, true), (0, 2, false)], rows.Select(r => (r.CheckpointedBlocks, r.Blocks, r.Checkpointing)));
        Assert.True(rows[0].PeakLedgerBytes > rows[1].PeakLedgerBytes, "the block left out of checkpointing keeps its activations");
        Assert.True(rows[2].PeakLedgerBytes > rows[1].PeakLedgerBytes, "0 checkpointed blocks is checkpointing off");

        (code, _, error) = RunCli("train", "--quick", "--model", "llama-tiny", "--checkpoint-blocks", "1", "--out", Path.Combine(_temp, "no-ckpt"));
        Assert.Equal(Flora.Cli.FloraCli.UserError, code);
        Assert.Contains("--checkpoint-blocks needs --activation-checkpointing", error);
        (code, _, error) = RunCli("train", "--quick", "--model", "llama-tiny", "--activation-checkpointing", "--checkpoint-blocks", "3", "--out", Path.Combine(_temp, "too-many"));
        Assert.Equal(Flora.Cli.FloraCli.UserError, code);
        Assert.Contains("cannot checkpoint 3 blocks of 2", error);
        string run = Path.Combine(_temp, "partial");
        (code, stdout, error) = RunCli("train", "--quick", "--steps", "2", "--model", "llama-tiny", "--activation-checkpointing", "--checkpoint-blocks", "1", "--out", run);
        Assert.True(code == 0, error);
        Assert.Contains("activation checkpointing on, first 1 of 2 blocks", stdout);
    }

    [Fact]
    public void Train_with_bf16_weights_records_them_and_refuses_an_unknown_type()
    {
        string run = Path.Combine(_temp, "run");
        var (code, _, error) = RunCli("train", "--quick", "--steps", "3", "--weights", "bf16", "--out", run);
        Assert.True(code == 0, error);
        Assert.Equal("bf16", TrainingCheckpoint.ReadInfo(TrainingCheckpoint.Resolve(run)).Options.Weights);
        (code, _, error) = RunCli("train", "--quick", "--steps", "3", "--weights", "fp16", "--out", Path.Combine(_temp, "bad"));
        Assert.Equal(Flora.Cli.FloraCli.UserError, code);
        Assert.Contains("unknown weight type 'fp16'", error);
    }

    [Fact]
    public void Bench_memory_finds_the_fewest_checkpointed_blocks_under_a_budget()
    {
        var (code, stdout, error) = RunCli("bench", "memory", "--model", "llama-tiny", "--optimizer", "flora:8", "--seq-len", "32", "--vocabulary", "500",
            "--checkpoint-blocks", "auto", "--budget", "100");
        Assert.True(code == 0, error);
        Assert.Contains("the first N blocks checkpointed", stdout);
        Assert.Contains("fewest checkpointed blocks under 100 GiB", stdout);               // a tiny model fits with one block
        Assert.Contains("estimate --activation-checkpointing off", stdout);
        (code, stdout, error) = RunCli("bench", "memory", "--model", "llama-tiny", "--optimizer", "flora:8", "--seq-len", "32", "--vocabulary", "500",
            "--checkpoint-blocks", "auto", "--budget", "0.0001");
        Assert.True(code == 0, error);
        Assert.Contains("even with every block checkpointed", stdout);
        (code, _, error) = RunCli("bench", "memory", "--model", "llama-tiny", "--checkpoint-blocks", "most");
        Assert.NotEqual(0, code);
        Assert.Contains("--checkpoint-blocks takes a number of blocks or auto, got 'most'", error);
        (code, _, error) = RunCli("bench", "memory", "--model", "llama-tiny", "--activation-checkpointing", "off", "--checkpoint-blocks", "auto");
        Assert.NotEqual(0, code);
        Assert.Contains("--checkpoint-blocks auto needs --activation-checkpointing on", error);
    }
}
