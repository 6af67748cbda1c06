using Flora.Reporting;

namespace Flora.Training;

/// <summary>
/// A training run's directory, held for writing. A fresh run starts only in a new or empty directory: one holding
/// another run is refused (continue it with --resume) unless --overwrite moves that run aside, and a non-empty
/// directory that holds no run (the file-system root, a home directory) is always refused. While a run writes,
/// it holds the directory's <see cref="RunLock"/>, so a second writer is refused.
/// </summary>
internal sealed class RunDirectory : IDisposable
{
    private readonly RunLock? _lock;
    private readonly bool _existed;

    private RunDirectory(string path, RunLock? runLock, bool existed) => (Path, _lock, _existed) = (path, runLock, existed);

    /// <summary>The absolute path of the run directory.</summary>
    public string Path { get; }

    /// <summary>Whether this process holds the directory and writes it (not a data-parallel rank that follows the lead).</summary>
    public bool IsLead => _lock is not null;

    /// <summary>
    /// The directory of a data-parallel run as a rank other than 0 sees it: rank 0 takes, locks and writes it; this
    /// rank only reads it (the tokenizer, checkpoints), so it takes no lock and never removes anything.
    /// </summary>
    public static RunDirectory Follow(string path) => new(System.IO.Path.GetFullPath(path), null, existed: true);

    /// <summary>The files that make a directory a run's.</summary>
    private static readonly string[] RunEntries =
        [RunManifest.FileName, TrainingCheckpoint.Directory, MetricsLog.CsvFile, MetricsLog.JsonFile, TokenizerSetup.Directory, TrainingCheckpoint.Best];

    /// <summary>Prepares <paramref name="path"/> for a new run; notices (a run moved aside, a stale lock) go to <paramref name="notices"/>.</summary>
    public static RunDirectory CreateFresh(string path, bool overwrite, ICollection<string> notices)
    {
        string full = System.IO.Path.GetFullPath(path);
        if (System.IO.Path.GetPathRoot(full) == full)
            throw new FloraException($"--out {path}: the root of the file system cannot hold a run; choose a directory of its own for the run");
        if (File.Exists(full)) throw new FloraException($"--out {full} is a file: choose a directory for the run");
        if (Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any(e => !IsLeftover(e)))
        {
            if (RunLock.Holder(full) is string holder)
                throw new FloraException($"{full} is in use by {holder}: wait for it to end, or choose another --out");
            if (!HoldsRun(full))
                throw new FloraException($"{full} is not empty and holds no flora run: choose a new or empty directory for --out");
            if (!overwrite)
                throw new FloraException($"{full} holds another run ({LatestOf(full)}): continue it with --resume {path}, " +
                    "start over with --overwrite (the old run is moved aside), or choose another --out");
            string aside = AsideName(full);
            Directory.Move(full, aside);
            notices.Add($"--overwrite: moved the previous run in {full} aside to {aside} (delete it when it is no longer needed)");
        }
        return Open(full, notices);
    }

    /// <summary>Takes the lock of an existing run directory, to continue the run.</summary>
    public static RunDirectory OpenExisting(string path, ICollection<string> notices) => Open(System.IO.Path.GetFullPath(path), notices);

    private static RunDirectory Open(string full, ICollection<string> notices)
    {
        bool existed = Directory.Exists(full);
        RunOutput.Create(full);                                               // exists and can be written to
        var runLock = RunLock.Acquire(full, out string? notice);
        if (notice is not null) notices.Add(notice);
        return new RunDirectory(full, runLock, existed);
    }

    /// <summary>
    /// Removes what a new run wrote before it failed to start (bad settings found late, an interruption while
    /// preparing): the directory itself if the run created it, its entries if it was empty. Releases the lock.
    /// </summary>
    public void Abandon()
    {
        if (_lock is null) return;
        _lock.Dispose();
        try
        {
            if (!_existed) Directory.Delete(Path, recursive: true);
            else
                foreach (var entry in new DirectoryInfo(Path).EnumerateFileSystemInfos())
                    if (entry is DirectoryInfo d) d.Delete(recursive: true);
                    else entry.Delete();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* the error that made the run fail matters more */ }
    }

    /// <summary>Whether <paramref name="directory"/> holds a run's files (a manifest, checkpoints, metrics, a tokenizer).</summary>
    public static bool HoldsRun(string directory) =>
        RunEntries.Any(e => File.Exists(System.IO.Path.Combine(directory, e)) || Directory.Exists(System.IO.Path.Combine(directory, e)));

    /// <summary>What a run killed before it wrote anything leaves: its lock, a temporary file, a write probe.</summary>
    private static bool IsLeftover(string entry) => System.IO.Path.GetFileName(entry) is var name
        && (name is RunLock.FileName or RunLock.OwnerFile || name.StartsWith(".flora-write-probe-", StringComparison.Ordinal)
            || (name.StartsWith('.') && name.EndsWith(".tmp", StringComparison.Ordinal)));

    private static string LatestOf(string run)
    {
        string latest = System.IO.Path.Combine(run, TrainingCheckpoint.Directory, TrainingCheckpoint.Latest);
        try { return File.Exists(latest) ? $"its latest checkpoint is {File.ReadAllText(latest).Trim()}" : "no checkpoint yet"; }
        catch (IOException) { return "its checkpoints cannot be read"; }
    }

    private static string AsideName(string full)
    {
        string stamp = DateTime.UtcNow.ToString("yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture);
        string aside = $"{full}.replaced-{stamp}";
        for (int i = 2; Directory.Exists(aside) || File.Exists(aside); i++) aside = $"{full}.replaced-{stamp}-{i}";
        return aside;
    }

    public void Dispose() => _lock?.Dispose();
}
