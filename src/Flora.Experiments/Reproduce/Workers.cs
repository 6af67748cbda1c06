using System.Diagnostics;
using System.Globalization;

namespace Flora.Experiments.Reproduce;

/// <summary>
/// One of several processes (workers) that share a reproduction's output directory, so that a table's runs train side
/// by side: on the GPUs of one machine, several small models on one GPU, or the cores of a CPU. A worker walks the
/// reproduction as usual; each run it reaches is trained by whichever worker claims it first
/// (<see cref="RunClaim"/>), and a run another worker holds stands in the walk as pending (<see cref="ArmResult.Pending"/>):
/// its seeds and the runs that do not depend on it go on, a learning-rate sweep with a pending rate ends the walk's use
/// of that sweep (the runs that need its choice wait). A walk that met pending runs writes nothing and is repeated
/// when they finish; the walk that finds every run stored ends the worker. Workers write no tables: the process that
/// started them writes those from the stored runs afterwards (<c>flora reproduce ... --workers N</c>).
/// </summary>
public sealed class ReproductionWorker
{
    /// <summary>Runs of the current walk that another worker holds, or that wait on such runs.</summary>
    public int Pending { get; private set; }

    internal void CountPending() => Pending++;

    /// <summary>Runs this worker trained (over all walks).</summary>
    public int Trained { get; private set; }

    internal void CountTrained() => Trained++;

    /// <summary>
    /// Walks <paramref name="reproduction"/> as one worker until every run it needs is stored (by this worker or another),
    /// walking again whenever another run is stored (or after <paramref name="poll"/>) while others still train. Returns the
    /// number of runs this worker trained.
    /// </summary>
    public static int Run(IReproduction reproduction, ReproduceSettings settings, IProgress<string>? log, CancellationToken cancel, TimeSpan poll)
    {
        if (!reproduction.RunsArms)
            throw new ArgumentException($"{reproduction.Name} has no separate runs to share among workers: run it without --workers");
        var worker = new ReproductionWorker();
        var s = settings with { Resume = true, Worker = worker };
        for (int walk = 1; ; walk++)
        {
            worker.Pending = 0;
            int stored = StoredRuns(s.OutputDirectory);                       // before the walk: a run stored during it counts as news
            try { reproduction.Run(s, log, cancel); }
            catch (Exception e) when (worker.Pending > 0 && e is not (OperationCanceledException or WorkerRunException))
            {
                // The tables of a walk with pending runs are built on stand-ins; what failed there is not a result.
            }
            if (worker.Pending == 0) return worker.Trained;
            log?.Report($"waiting for {worker.Pending} run(s) that other workers are training (walk {walk})");
            // Walk again once another run is stored, or after `poll` at the latest (a worker that died leaves a stale claim to take over).
            var waited = System.Diagnostics.Stopwatch.StartNew();
            while (waited.Elapsed < poll && StoredRuns(s.OutputDirectory) == stored)
            {
                cancel.WaitHandle.WaitOne(TimeSpan.FromSeconds(0.5));
                cancel.ThrowIfCancellationRequested();
            }
        }
    }

    /// <summary>How many runs of the output directory have a stored result.</summary>
    private static int StoredRuns(string outputDirectory)
    {
        string runs = Path.Combine(outputDirectory, "runs");
        return Directory.Exists(runs) ? Directory.EnumerateDirectories(runs).Count(d => File.Exists(StoredArm.FileIn(d))) : 0;
    }
}

/// <summary>A run a worker trained failed (not a pending stand-in's side effect): the worker stops.</summary>
public sealed class WorkerRunException(string message, Exception inner) : Exception(message, inner);

/// <summary>
/// Marks a run (or a shared preparation) as taken by this process: a file PATH.claim created exclusively, holding the
/// host, the process id and its start time. A claim whose process has ended on this host is stale and taken over; a
/// claim of another host is respected (nothing here can tell whether it still runs). Disposing removes the file.
/// </summary>
public sealed class RunClaim : IDisposable
{
    private readonly string _file;
    private RunClaim(string file) => _file = file;

    /// <summary>The claim file of a run directory or a prepared file.</summary>
    public static string FileOf(string path) => Path.TrimEndingDirectorySeparator(Path.GetFullPath(path)) + ".claim";

    /// <summary>This process's claim on <paramref name="path"/>, or null when a live process holds it.</summary>
    public static RunClaim? TryTake(string path)
    {
        string file = FileOf(path);
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        for (int attempt = 0; attempt < 2; attempt++)
        {
            try
            {
                using (var stream = new FileStream(file, FileMode.CreateNew, FileAccess.Write, FileShare.None))
                using (var writer = new StreamWriter(stream)) writer.Write(Owner());
                return new RunClaim(file);
            }
            catch (IOException) when (File.Exists(file))
            {
                if (!IsStale(file)) return null;
                try { File.Delete(file); } catch (IOException) { }                 // another process may have taken it over first
            }
        }
        return null;
    }

    /// <summary>Waits (polling) until this process holds <paramref name="path"/>'s claim: for preparations every worker needs once.</summary>
    public static RunClaim Wait(string path, CancellationToken cancel)
    {
        while (true)
        {
            if (TryTake(path) is RunClaim claim) return claim;
            cancel.WaitHandle.WaitOne(TimeSpan.FromSeconds(1));
            cancel.ThrowIfCancellationRequested();
        }
    }

    public void Dispose()
    {
        try { File.Delete(_file); } catch (IOException) { }
    }

    private static string Owner()
    {
        using var self = Process.GetCurrentProcess();
        return $"{Environment.MachineName} {Environment.ProcessId} {self.StartTime.ToUniversalTime().Ticks.ToString(CultureInfo.InvariantCulture)}";
    }

    /// <summary>Whether the claim's process has ended (on this host: no such process id, or one started at another time).</summary>
    internal static bool IsStale(string file)
    {
        string[] parts;
        try { parts = File.ReadAllText(file).Split(' ', StringSplitOptions.RemoveEmptyEntries); }
        catch (IOException) { return false; }                                  // being written or just removed: look again later
        if (parts.Length != 3 || !int.TryParse(parts[1], out int pid) || !long.TryParse(parts[2], out long started))
            return DateTime.UtcNow - File.GetLastWriteTimeUtc(file) > TimeSpan.FromMinutes(1);   // just created, not yet written: live

        if (parts[0] != Environment.MachineName) return false;
        try
        {
            using var process = Process.GetProcessById(pid);
            // The start time is derived from the boot time, which the runtime reads anew each time: equal to a second or so.
            return process.HasExited || Math.Abs(process.StartTime.ToUniversalTime().Ticks - started) > TimeSpan.TicksPerSecond * 2;
        }
        catch (ArgumentException) { return true; }                              // no process with that id
        catch (InvalidOperationException) { return true; }
    }
}
