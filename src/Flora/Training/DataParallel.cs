using System.Text.Json;
using Flora.Optim;
using Flora.Backends;
using Flora.Distributed;
using Flora.Nn.Models;

namespace Flora.Training;

/// <summary>What a data-parallel run reports at its end (rank 0 prints it; docs/distributed.md).</summary>
/// <param name="WorldSize">Ranks the run trained on.</param>
/// <param name="Communicator">What carried the collectives.</param>
/// <param name="Mode">Plain or compressed all-reduce.</param>
/// <param name="WireRank">The projection rank of the compressed all-reduce (0 with plain).</param>
/// <param name="PayloadBytesPerStep">Bytes of gradients each rank contributed to all-reduces per step.</param>
/// <param name="FullBytesPerStep">What a plain all-reduce of the full gradients would have been per step.</param>
/// <param name="CompressedMatrices">Matrices sent compressed (compressed all-reduce, or compressed accumulators).</param>
/// <param name="LaunchesPerStep">All-reduce launches (buckets) per step.</param>
public sealed record DataParallelReport(int WorldSize, string Communicator, AllReduceMode Mode, int WireRank,
    double PayloadBytesPerStep, double FullBytesPerStep, int CompressedMatrices, double LaunchesPerStep)
{
    /// <summary>
    /// Bytes each rank sends per step with a ring all-reduce (NCCL's usual algorithm within a node):
    /// 2 (N - 1) / N times the payload.
    /// </summary>
    public double RingBytesPerStep => 2.0 * (WorldSize - 1) / WorldSize * PayloadBytesPerStep;

    /// <summary>How many times fewer bytes than plain all-reduce of full gradients.</summary>
    public double Reduction => PayloadBytesPerStep > 0 ? FullBytesPerStep / PayloadBytesPerStep : 1;
}

/// <summary>
/// The trainer's data-parallel steps (issue 16), kept apart from the training loop: world-size checks on resume,
/// the order in which ranks prepare the tokenizer, agreement of the ranks' settings, the parameter broadcast,
/// the reducer, data shards, and the per-step and validation sums.
/// </summary>
internal static class DataParallel
{
    /// <summary>
    /// The options of a run of <paramref name="worldSize"/> ranks. A checkpoint written by another number of ranks is
    /// refused: the global batch (ranks x batch) and the data shards are part of the run, so resuming with another
    /// world size would not continue the same run.
    /// </summary>
    public static TrainOptions CheckWorldSize(TrainOptions options, CheckpointInfo? resume, int worldSize)
    {
        if (resume is not null && resume.Options.WorldSize != worldSize)
        {
            string how = resume.Options.WorldSize == 1 ? "without 'flora launch'" : $"with 'flora launch -n {resume.Options.WorldSize}' (or that many ranks over several machines)";
            throw new FloraException($"{resume.Directory}: the checkpoint was written by a run on {resume.Options.WorldSize} rank(s) (global batch {resume.Options.WorldSize} x {resume.Options.BatchSize}), " +
                $"this run has {worldSize}: resume it {how}; another number of ranks would change the global batch and the data shards");
        }
        return options with { WorldSize = worldSize };
    }

    /// <summary>Ranks other than 0 wait here until rank 0 has prepared the tokenizer (a trained BPE is written to the run directory).</summary>
    public static void BeforeTokenizer(ICommunicator? communicator)
    {
        if (communicator is { Rank: not 0 }) communicator.Barrier();
    }

    /// <summary>Rank 0 lets the others go on once its tokenizer is written.</summary>
    public static void AfterTokenizer(ICommunicator? communicator)
    {
        if (communicator is { Rank: 0 }) communicator.Barrier();
    }

    /// <summary>
    /// Makes this process a rank: checks that every rank runs the same settings (a fingerprint of the options,
    /// the tokenizer and the parameter count, broadcast from rank 0), copies rank 0's parameters to every rank,
    /// gives the model its rank (dropout masks differ between ranks), attaches the gradient reducer to the
    /// pipeline's sinks and gives the task its shard. Returns the reducer.
    /// </summary>
    public static GradientReducer Join(ICommunicator communicator, TrainOptions options, string tokenizerIdentity, IBackend backend,
        LanguageModel model, GradientPipeline pipeline, ITrainingTask task)
    {
        var parameters = model.Parameters().ToList();
        string settings = JsonSerializer.Serialize(options with { OutputDirectory = "" }) + "\n" + tokenizerIdentity + "\n" +
                          string.Join(",", parameters.Select(p => $"{p.Name}{p.Shape}"));
        RankAgreement.Check(communicator, settings, "settings (command line, tokenizer or model)");
        if (communicator.WorldSize > 1)
        {
            communicator.Broadcast(parameters.Select(p => p.Value).ToList(), root: 0);
            var shards = task as IShardedTask ?? throw new FloraException($"{task.GetType().Name} cannot be split among data-parallel ranks");
            shards.SetShard(communicator.Rank, communicator.WorldSize);
        }
        model.Context.Shard = communicator.Rank;
        var compression = options.AllReduce == AllReduceMode.Compressed ? new WireCompression(options.WireRank, Seeds.Derive(options.Seed, 11)) : null;
        var reducer = new GradientReducer(backend, communicator, compression);
        pipeline.UseReducer(reducer);
        return reducer;
    }

    /// <summary>A step's loss (mean over ranks), tokens (sum) and whether any rank was asked to stop (then all stop).</summary>
    public static (double Loss, long Tokens, bool Stop) StepTotals(ICommunicator communicator, double loss, long tokens, bool stop)
    {
        Span<double> totals = [loss, tokens, stop ? 1 : 0];
        communicator.AllReduce(totals, ReduceOp.Sum);
        return (totals[0] / communicator.WorldSize, (long)totals[1], totals[2] > 0);
    }

    /// <summary>Validation sums over ranks (each evaluated its share of the batches).</summary>
    public static (double Sum, long Count) Sum(ICommunicator communicator, double sum, long count)
    {
        Span<double> totals = [sum, count];
        communicator.AllReduce(totals, ReduceOp.Sum);
        return (totals[0], (long)totals[1]);
    }

    /// <summary>The end-of-run report of <paramref name="reducer"/> over <paramref name="steps"/> steps.</summary>
    public static DataParallelReport Report(GradientReducer reducer, TrainOptions options, long steps)
    {
        double per = Math.Max(steps, 1);
        return new DataParallelReport(reducer.Communicator.WorldSize, reducer.Communicator.Description, options.AllReduce,
            options.AllReduce == AllReduceMode.Compressed ? options.WireRank : 0, reducer.PayloadBytes / per, reducer.FullBytes / per,
            reducer.CompressedMatrices + reducer.CompressedFormMatrices, reducer.Launches / per);
    }
}
