using System.Collections;
using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Flora.Backends;
using Flora.Distributed;
using Flora.Training;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary>
/// One rank of a data-parallel run, as <c>flora launch</c> starts it: the environment carries the rank, the world
/// size and the rendezvous (like torchrun's RANK and WORLD_SIZE), so the training command line stays the same for
/// every rank.
/// </summary>
/// <param name="Rank">This process's global rank.</param>
/// <param name="WorldSize">The number of ranks.</param>
/// <param name="Master">The rendezvous: a file path or HOST:PORT (<see cref="Rendezvous"/>).</param>
internal sealed record DataParallelWorker(int Rank, int WorldSize, string Master)
{
    /// <summary>Environment variables: global rank, world size, rendezvous, rank on this machine.</summary>
    public const string RankVariable = "FLORA_RANK", WorldSizeVariable = "FLORA_WORLD_SIZE", MasterVariable = "FLORA_MASTER", LocalRankVariable = "FLORA_LOCAL_RANK";

    /// <summary>How long a rank waits at the rendezvous (seconds), FLORA_RENDEZVOUS_TIMEOUT; five minutes by default.</summary>
    public const string TimeoutVariable = "FLORA_RENDEZVOUS_TIMEOUT";

    /// <summary>The worker the environment describes, or null when FLORA_WORLD_SIZE is not set (a single process).</summary>
    public static DataParallelWorker? FromEnvironment(IDictionary? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariables();
        string? Get(string name) => environment[name] as string;
        if (Get(WorldSizeVariable) is not string world) return null;
        int Number(string name, string? text) =>
            int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int v) ? v
            : throw new FloraException($"{name}={text ?? "(unset)"}: expected a non-negative integer (set by 'flora launch')");
        int size = Number(WorldSizeVariable, world), rank = Number(RankVariable, Get(RankVariable));
        if (size <= 0 || rank >= size) throw new FloraException($"{RankVariable}={rank} is not a rank of {WorldSizeVariable}={size}");
        string master = Get(MasterVariable) is { Length: > 0 } m ? m : throw new FloraException($"{MasterVariable} is not set: the ranks need a rendezvous (a file or HOST:PORT)");
        return new DataParallelWorker(rank, size, master);
    }

    /// <summary>The rendezvous timeout from the environment.</summary>
    public static TimeSpan RendezvousTimeout =>
        double.TryParse(Environment.GetEnvironmentVariable(TimeoutVariable), NumberStyles.Float, CultureInfo.InvariantCulture, out double s) && s > 0
            ? TimeSpan.FromSeconds(s) : TimeSpan.FromMinutes(5);

    /// <summary>Joins the run through NCCL on the trainer's GPU.</summary>
    public ICommunicator Connect(IBackend backend) => NcclCommunicator.Connect(backend, new Rendezvous(Master, Rank, WorldSize, RendezvousTimeout));
}

/// <summary>The data-parallel options of <c>flora train</c> and its end-of-run report.</summary>
internal static class DataParallelCli
{
    /// <summary>The report rank 0 writes into the run directory.</summary>
    public const string ReportFile = "data-parallel.json";

    /// <summary>--allreduce plain|compressed.</summary>
    public static Option<AllReduceMode> AllReduce() => Options.Choice("--allreduce",
        "data parallel (flora launch): all-reduce plain gradients, or compressed with FLORA's shared projection (docs/distributed.md)", AllReduceMode.Plain);

    /// <summary>--allreduce-rank: the rank r of the compressed all-reduce (0: the FLORA rank).</summary>
    public static Option<int> AllReduceRank()
        => Options.NonNegativeInt("--allreduce-rank", "rank r of the compressed all-reduce's projection (default 0: the FLORA rank, --rank)", 0);

    /// <summary>A console that prints nothing: ranks other than 0 keep quiet (errors still go to stderr).</summary>
    public static IAnsiConsole Silent() => AnsiConsole.Create(new AnsiConsoleSettings
    {
        Ansi = AnsiSupport.No,
        ColorSystem = ColorSystemSupport.NoColors,
        Interactive = InteractionSupport.No,
        Out = new AnsiConsoleOutput(TextWriter.Null),
    });

    /// <summary>Rows of the training summary about data parallelism.</summary>
    public static void AddRows(Table table, DataParallelReport r)
    {
        table.AddRow("data parallel", Markup.Escape($"{r.WorldSize} ranks, {r.Communicator}"));
        string mode = r.Mode == AllReduceMode.Compressed ? $"compressed (r = {r.WireRank}), {r.CompressedMatrices} matrices compressed" :
            r.CompressedMatrices > 0 ? $"plain; {r.CompressedMatrices} FLORA accumulators reduced compressed" : "plain";
        table.AddRow("all-reduce", Markup.Escape(mode));
        table.AddRow("all-reduce payload per step", Markup.Escape($"{r.PayloadBytesPerStep / 1048576.0:F2} MiB per rank ({r.Reduction:F2}x less than full gradients, {r.FullBytesPerStep / 1048576.0:F2} MiB); " +
            $"ring: about {r.RingBytesPerStep / 1048576.0:F2} MiB sent by each rank; {r.LaunchesPerStep:F1} bucket launches"));
    }

    /// <summary>Writes the report as JSON into the run directory (rank 0), for scripts.</summary>
    public static void Write(string runDirectory, DataParallelReport r, TrainResult result) =>
        File.WriteAllText(Path.Combine(runDirectory, ReportFile), JsonSerializer.Serialize(new
        {
            worldSize = r.WorldSize, communicator = r.Communicator, allReduce = r.Mode.ToString().ToLowerInvariant(), wireRank = r.WireRank,
            payloadBytesPerStep = r.PayloadBytesPerStep, fullBytesPerStep = r.FullBytesPerStep, ringBytesPerStep = r.RingBytesPerStep,
            compressedMatrices = r.CompressedMatrices, launchesPerStep = r.LaunchesPerStep, tokensPerSecond = result.TokensPerSecond,
            tokensSeen = result.TokensSeen, finalValidationLoss = result.FinalValidationLoss, finalTrainLoss = result.FinalTrainLoss,
        }, new JsonSerializerOptions { WriteIndented = true }));
}
