using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Flora.Distributed;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary>
/// <c>flora launch -n N -- train ...</c>: data-parallel training, one process per GPU. Starts N copies of
/// <c>flora train ...</c> on this machine, process i seeing only GPU i (CUDA_VISIBLE_DEVICES), each told its rank,
/// the world size and the rendezvous through the environment (<see cref="DataParallelWorker"/>); NVLink multicast
/// is off in each (NCCL_NVLS_ENABLE=0). Rank 0 prints the progress and writes logs and checkpoints; the other
/// ranks print only errors, prefixed with their rank. When a rank fails the others are stopped. Several machines:
/// the same command on each with --nodes M --node-rank K and a --master HOST:PORT (or a shared file) that all
/// reach; --rank R --world-size W starts one process of an explicitly numbered run.
/// </summary>
internal static class LaunchCommand
{
    public static Command Create(IAnsiConsole console, TextWriter error)
    {
        var gpus = Options.PositiveInt("--gpus", "processes to start on this machine, one per GPU", 1);
        gpus.Aliases.Add("-n");
        var nodes = Options.PositiveInt("--nodes", "machines taking part (each runs flora launch with its --node-rank)", 1);
        var nodeRank = new Option<int>("--node-rank") { Description = "this machine's index, 0..nodes-1 (its processes get ranks node-rank x gpus + i)", DefaultValueFactory = _ => 0 };
        var master = new Option<string?>("--master") { Description = "rendezvous: HOST:PORT where rank 0 listens, or a file every rank can read (default on one machine: a temporary file)" };
        var rank = new Option<int?>("--rank") { Description = "start one process as this global rank (with --world-size), for runs numbered by a scheduler" };
        var worldSize = new Option<int?>("--world-size") { Description = "the number of ranks of an explicitly numbered run (with --rank)" };
        var command = new Argument<string[]>("command") { Description = "the command each process runs, after --: train and its options", Arity = ArgumentArity.OneOrMore };
        var launch = new Command("launch", "Data-parallel training over several GPUs (and machines) with NCCL: flora launch -n 8 -- train --device cuda ...")
        {
            gpus, nodes, nodeRank, master, rank, worldSize, command,
        };
        launch.SetAction(parse => CommandGuard.Run(error, () =>
        {
            var plan = LaunchPlan.Create(parse.GetValue(command)!, parse.GetValue(gpus), parse.GetValue(nodes), parse.GetValue(nodeRank),
                parse.GetValue(master), parse.GetValue(rank), parse.GetValue(worldSize), Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES"));
            return Run(console, error, plan);
        }));
        return launch;
    }

    /// <summary>Starts every process of the plan, forwards the other ranks' output, waits; the first failure stops the rest.</summary>
    private static int Run(IAnsiConsole console, TextWriter error, LaunchPlan plan)
    {
        console.MarkupLine(Markup.Escape($"flora launch: {plan.Processes.Count} process(es) of a run of {plan.WorldSize} rank(s), rendezvous {plan.Master}"));
        var (file, prefix) = SelfCommand();
        var children = new List<(LaunchPlan.Worker Plan, Process Process)>();
        ConsoleCancelEventHandler onCancel = (_, e) => e.Cancel = true;      // Ctrl+C reaches every rank too: they stop after the same step
        Console.CancelKeyPress += onCancel;
        try
        {
            foreach (var p in plan.Processes)
            {
                var info = new ProcessStartInfo(file) { UseShellExecute = false };
                foreach (string a in prefix.Concat(plan.Command)) info.ArgumentList.Add(a);
                foreach (var (name, value) in p.Environment) info.Environment[name] = value;
                bool quiet = p.Rank != 0;
                info.RedirectStandardOutput = quiet;
                info.RedirectStandardError = quiet;
                var process = Process.Start(info) ?? throw new FloraException($"could not start {file}");
                if (quiet)
                {
                    string tag = $"[rank {p.Rank}] ";
                    process.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 } line) lock (error) error.WriteLine(tag + line); };
                    process.OutputDataReceived += (_, _) => { };
                    process.BeginErrorReadLine();
                    process.BeginOutputReadLine();
                }
                children.Add((p, process));
            }
            return Wait(children, console, error);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
            foreach (var (_, process) in children)
            {
                if (!process.HasExited) process.Kill(entireProcessTree: true);
                process.Dispose();
            }
            if (plan.TemporaryMaster && File.Exists(plan.Master)) File.Delete(plan.Master);
        }
    }

    private static int Wait(List<(LaunchPlan.Worker Plan, Process Process)> children, IAnsiConsole console, TextWriter error)
    {
        var running = children.ToList();
        while (running.Count > 0)
        {
            foreach (var child in running.ToList())
            {
                if (!child.Process.WaitForExit(50)) continue;
                child.Process.WaitForExit();                                   // flush the forwarded output
                running.Remove(child);
                int code = child.Process.ExitCode;
                if (code == 0) continue;
                foreach (var (_, other) in running) if (!other.HasExited) other.Kill(entireProcessTree: true);
                lock (error) error.WriteLine($"error: rank {child.Plan.Rank} exited with code {code}; stopped the other ranks");
                return code;
            }
        }
        console.MarkupLine(Markup.Escape($"flora launch: every rank finished"));
        return 0;
    }

    /// <summary>How to start this program again: the single-file build or the apphost itself, or dotnet with Flora.Cli.dll.</summary>
    internal static (string File, string[] Prefix) SelfCommand()
    {
        string? process = Environment.ProcessPath;
        string cli = Path.Combine(AppContext.BaseDirectory, "Flora.Cli.dll");
        if (!File.Exists(cli)) cli = "";                                        // a single-file build: the program is the process
        if (process is not null && (cli.Length == 0 || Path.GetFileNameWithoutExtension(process) == Path.GetFileNameWithoutExtension(cli)))
            return (process, []);
        string dotnet = process is not null && Path.GetFileNameWithoutExtension(process) == "dotnet" ? process
            : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
        return (dotnet, [cli]);
    }
}

/// <summary>What <c>flora launch</c> starts: the command, and per process its rank and environment.</summary>
internal sealed record LaunchPlan(IReadOnlyList<string> Command, int WorldSize, string Master, bool TemporaryMaster, IReadOnlyList<LaunchPlan.Worker> Processes)
{
    /// <summary>One process: its global rank and the environment it starts with (besides the launcher's own).</summary>
    public sealed record Worker(int Rank, int LocalRank, IReadOnlyList<(string Name, string Value)> Environment);

    /// <summary>
    /// The plan for <paramref name="gpus"/> processes on machine <paramref name="nodeRank"/> of <paramref name="nodes"/>
    /// (or one process of rank <paramref name="rank"/> of <paramref name="worldSize"/>). Local process i gets GPU i of
    /// <paramref name="visibleDevices"/> (the launcher's CUDA_VISIBLE_DEVICES; 0..gpus-1 when unset).
    /// </summary>
    public static LaunchPlan Create(string[] command, int gpus, int nodes, int nodeRank, string? master, int? rank, int? worldSize, string? visibleDevices)
    {
        if (command.Length == 0 || command[0] != "train")
            throw new ArgumentException($"flora launch runs 'train' in every process: flora launch -n N -- train --device cuda ... (got '{string.Join(' ', command)}')");
        // Each rank checks the rest of the train command itself (--device cuda, a checkpoint's world size) and says so.
        int world, first;
        if (rank is not null || worldSize is not null)
        {
            if (rank is not int r || worldSize is not int w) throw new ArgumentException("--rank and --world-size go together");
            if (w <= 0 || r < 0 || r >= w) throw new ArgumentException($"--rank {r} is not a rank of --world-size {w}");
            if (gpus != 1 || nodes != 1) throw new ArgumentException("--rank/--world-size start one process: leave out --gpus and --nodes");
            if (master is null && w > 1) throw new ArgumentException("an explicitly numbered run needs --master HOST:PORT (or a file every rank can read)");
            (world, first) = (w, r);
        }
        else
        {
            if (nodeRank < 0 || nodeRank >= nodes) throw new ArgumentException($"--node-rank {nodeRank} is outside 0..{nodes - 1}");
            if (nodes > 1 && master is null) throw new ArgumentException("several machines need --master HOST:PORT (rank 0's machine and a free port), or a file they all share");
            (world, first) = (gpus * nodes, nodeRank * gpus);
        }
        bool temporary = master is null;
        master ??= Path.Combine(Path.GetTempPath(), $"flora-rendezvous-{Environment.ProcessId}-{Guid.NewGuid():N}.id");
        Rendezvous.ParseEndpoint(master);                                            // a bad port fails here, not in every rank
        string[] devices = visibleDevices is { Length: > 0 } v ? v.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            : Enumerable.Range(0, gpus).Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray();
        int local = rank is null ? gpus : 1;
        if (devices.Length < local)
            throw new ArgumentException($"{local} processes need {local} GPUs, but CUDA_VISIBLE_DEVICES={visibleDevices} names {devices.Length}");
        var processes = Enumerable.Range(0, local).Select(i => new Worker(first + i, i,
        [
            (DataParallelWorker.RankVariable, (first + i).ToString(CultureInfo.InvariantCulture)),
            (DataParallelWorker.WorldSizeVariable, world.ToString(CultureInfo.InvariantCulture)),
            (DataParallelWorker.MasterVariable, master),
            (DataParallelWorker.LocalRankVariable, i.ToString(CultureInfo.InvariantCulture)),
            ("CUDA_VISIBLE_DEVICES", devices[i]),
            ("NCCL_NVLS_ENABLE", "0"),
        ])).ToList();
        return new LaunchPlan(command, world, master, temporary, processes);
    }
}
