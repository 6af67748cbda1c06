using Flora.Distributed;
using Flora.Optim;
using Flora.Tests.Training;
using Flora.Training;

namespace Flora.Tests.Distributed;

/// <summary>
/// Data-parallel training with several ranks in one process (threads on the CPU, <see cref="InProcessGroup"/>): the
/// math of the whole path (shards, all-reduce in the sinks, per-step sums, rank-0 checkpoints, resume) without GPUs.
/// </summary>
public class DataParallelTrainingTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-dp-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    private sealed class SyncProgress(Action<TrainProgress> report) : IProgress<TrainProgress>
    {
        public void Report(TrainProgress value) => report(value);
    }

    private sealed record RankRun(float[][] Parameters, List<double> Losses, TrainResult Result);

    private static RankRun Train(Trainer trainer, long? stopAfter = null)
    {
        var losses = new List<double>();
        using var cancel = new CancellationTokenSource();
        var result = trainer.Run(new SyncProgress(p => { losses.Add(p.Loss); if (p.Step == stopAfter) cancel.Cancel(); }), cancel.Token);
        return new RankRun(trainer.Model.Parameters().Select(p => p.Value.ToArray()).ToArray(), losses, result);
    }

    /// <summary>Trains <paramref name="world"/> ranks; rank 0 alone is asked to stop (Ctrl+C) once step <paramref name="stopAfter"/> is done.</summary>
    private static RankRun[] TrainRanks(int world, TrainOptions options, string? resume = null, long? stopAfter = null) =>
        InProcessGroup.Run(world, (group, rank) =>
        {
            using var trainer = new Trainer(options, resume, connect: backend => group.Join(rank, backend), lead: rank == 0);
            return Train(trainer, rank == 0 ? stopAfter : null);
        });

    private static RankRun TrainAlone(TrainOptions options, string? resume = null)
    {
        using var trainer = new Trainer(options, resume);
        return Train(trainer);
    }

    private TrainOptions Options(string name, string optimizer = "sgd", AccumulationMode mode = AccumulationMode.None, int tau = 1, bool lomo = false) =>
        TrainerTests.Tiny(_temp, Path.Combine(_temp, name)) with
        {
            Steps = 3,
            EvalEvery = 3,
            CheckpointEvery = 3,
            BatchSize = 2,
            Optimizer = new OptimizerSpec { Name = optimizer, LearningRate = optimizer == "sgd" ? 0.5f : 0.05f, Rank = 4, Kappa = 3 },
            Accumulation = mode,
            AccumulationSteps = tau,
            Lomo = lomo,
        };

    public static TheoryData<AccumulationMode, int, bool> Paths => new()
    {
        { AccumulationMode.None, 1, false },          // plain gradients, bucketed all-reduce during backward
        { AccumulationMode.Naive, 2, false },         // full accumulators, reduced at the end of the cycle
        { AccumulationMode.Compressed, 2, false },    // FLORA accumulators, reduced compressed
        { AccumulationMode.None, 1, true },           // LOMO: each gradient reduced inside backward
    };

    [Theory]
    [MemberData(nameof(Paths))]
    public void Two_ranks_with_batch_b_make_the_update_of_one_rank_with_batch_2b(AccumulationMode mode, int tau, bool lomo)
    {
        var options = Options($"dp-{mode}-{tau}-{lomo}", "sgd", mode, tau, lomo);
        var ranks = TrainRanks(2, options);
        var alone = TrainAlone(options with { BatchSize = 4, OutputDirectory = Path.Combine(_temp, $"one-{mode}-{tau}-{lomo}") });
        float[][] initial;
        using (var untrained = new Trainer(options with { OutputDirectory = Path.Combine(_temp, "init") }))
            initial = untrained.Model.Parameters().Select(p => p.Value.ToArray()).ToArray();

        Assert.Equal(ranks[0].Parameters, ranks[1].Parameters);                         // replicas stay identical, bit for bit
        double moved = 0, difference = 0;
        for (int i = 0; i < alone.Parameters.Length; i++)
            for (int j = 0; j < alone.Parameters[i].Length; j++)
            {
                moved = Math.Max(moved, Math.Abs(alone.Parameters[i][j] - initial[i][j]));
                difference = Math.Max(difference, Math.Abs(alone.Parameters[i][j] - ranks[0].Parameters[i][j]));
            }
        Assert.True(moved > 1e-3, $"the parameters barely moved ({moved:E2}): the comparison would prove nothing");
        Assert.True(difference < 2e-6, $"2 ranks x batch 2 and 1 rank x batch 4 differ by {difference:E2} after 3 steps (moved {moved:E2})");
        for (int s = 0; s < 3; s++) Assert.Equal(alone.Losses[s], ranks[0].Losses[s], 1e-5);   // the logged loss is the mean over ranks
        Assert.Equal(ranks[0].Losses, ranks[1].Losses);
        Assert.Equal(alone.Result.TokensSeen, ranks[0].Result.TokensSeen);                  // tokens of all ranks
        Assert.NotNull(ranks[0].Result.DataParallel);
        Assert.Equal(2, ranks[0].Result.DataParallel!.WorldSize);
    }

    [Fact]
    public void With_flora_two_ranks_follow_the_loss_curve_of_one_rank_with_twice_the_batch()
    {
        var options = Options("dp-flora", "flora") with { Steps = 4, EvalEvery = 2 };
        var ranks = TrainRanks(2, options);
        var alone = TrainAlone(options with { BatchSize = 4, OutputDirectory = Path.Combine(_temp, "one-flora") });
        for (int s = 0; s < 4; s++) Assert.Equal(alone.Losses[s], ranks[0].Losses[s], 1e-5);
        Assert.Equal(alone.Result.FinalValidationLoss!.Value, ranks[0].Result.FinalValidationLoss!.Value, 1e-5);   // the same windows, shared by the ranks
        Assert.Equal(ranks[0].Parameters, ranks[1].Parameters);
    }

    [Fact]
    public void One_rank_through_a_communicator_is_the_single_process_run_bit_for_bit()
    {
        var options = Options("single", "flora", AccumulationMode.Compressed, 2) with { Steps = 4, EvalEvery = 2, Dropout = 0.1f };
        var alone = TrainAlone(options);
        var one = TrainRanks(1, options with { OutputDirectory = Path.Combine(_temp, "one-rank") })[0];
        Assert.Equal(alone.Losses, one.Losses);
        Assert.Equal(alone.Parameters, one.Parameters);
        var a = MetricsLog.ReadCsv(Path.Combine(options.OutputDirectory, MetricsLog.CsvFile));
        var b = MetricsLog.ReadCsv(Path.Combine(_temp, "one-rank", MetricsLog.CsvFile));
        Assert.Equal(a.Select(r => (r.TrainLoss, r.ValidationLoss)), b.Select(r => (r.TrainLoss, r.ValidationLoss)));
    }

    [Fact]
    public void Compressed_all_reduce_sends_fewer_bytes_keeps_the_replicas_identical_and_still_trains()
    {
        var options = Options("compressed", "adamw") with
        {
            AllReduce = AllReduceMode.Compressed, AllReduceRank = 4, Steps = 6, EvalEvery = 6, CheckpointEvery = 6,
            Optimizer = new OptimizerSpec { Name = "adamw", LearningRate = 3e-3f },
        };
        var ranks = TrainRanks(2, options);
        var report = ranks[0].Result.DataParallel!;
        Assert.Equal(AllReduceMode.Compressed, report.Mode);
        Assert.Equal(9, report.CompressedMatrices);                                        // 4 matrices of each of 2 blocks, and wpe (64, 64); not wte (300, 64)
        Assert.True(report.PayloadBytesPerStep < 0.8 * report.FullBytesPerStep, $"{report.PayloadBytesPerStep} of {report.FullBytesPerStep} bytes");
        Assert.Equal(ranks[0].Parameters, ranks[1].Parameters);
        Assert.True(ranks[0].Losses[^1] < ranks[0].Losses[0] - 0.2, $"loss {ranks[0].Losses[0]:F3} -> {ranks[0].Losses[^1]:F3}");
        Assert.True(File.Exists(Path.Combine(options.OutputDirectory, "checkpoints", "step-00000006", TrainingCheckpoint.StateFile)));
    }

    [Fact]
    public void Rank_0_alone_writes_the_run_and_resume_needs_the_same_number_of_ranks()
    {
        var options = Options("resume", "flora") with { Steps = 6, CheckpointEvery = 3, EvalEvery = 2 };
        var whole = TrainRanks(2, options with { OutputDirectory = Path.Combine(_temp, "whole") });
        // Ctrl+C reaches rank 0 during step 3: the ranks agree on it at the end of step 4 and stop together; rank 0 writes step 4.
        TrainRanks(2, options, stopAfter: 3);
        var rows = MetricsLog.ReadCsv(Path.Combine(options.OutputDirectory, MetricsLog.CsvFile));
        Assert.Equal([1L, 2, 3, 4], rows.Select(r => r.Step));                            // one writer: no duplicated rows
        var info = TrainingCheckpoint.ReadInfo(TrainingCheckpoint.Resolve(options.OutputDirectory));
        Assert.Equal((4L, 2), (info.Step, info.Options.WorldSize));

        var e = Assert.Throws<FloraException>(() => new Trainer(options, options.OutputDirectory));
        Assert.Contains("written by a run on 2 rank(s)", e.Message);
        Assert.Contains("flora launch -n 2", e.Message);

        var resumed = TrainRanks(2, options, resume: options.OutputDirectory);
        Assert.Equal(whole[0].Losses.Skip(4), resumed[0].Losses);                          // continues the same run, bit for bit
        Assert.Equal(whole[0].Parameters, resumed[0].Parameters);
    }

    [Fact]
    public void Ranks_started_with_different_settings_all_refuse_to_train()
    {
        var options = Options("mismatch");
        var e = Assert.Throws<AggregateException>(() => InProcessGroup.Run(2, (group, rank) =>
        {
            using var trainer = new Trainer(options with { Seed = (ulong)rank }, connect: backend => group.Join(rank, backend), lead: rank == 0);
            return 0;
        }));
        Assert.Equal(2, e.InnerExceptions.Count);
        Assert.All(e.InnerExceptions, x => Assert.IsType<RankMismatchException>(x));
        Assert.Contains(e.InnerExceptions, x => x.Message.Contains("rank 1 runs with other settings (command line, tokenizer or model) than rank 0"));
    }
}
