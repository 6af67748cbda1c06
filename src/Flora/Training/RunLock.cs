using System.Diagnostics;
using Flora.Reporting;

namespace Flora.Training;

/// <summary>
/// The exclusive lock of a run directory, held for as long as a run writes to it. <c>RUN/.lock</c> is opened
/// without sharing (an advisory lock the kernel releases when the process ends, however it ends), and
/// <c>RUN/.lock.owner</c> names the owner's process id. A second writer is refused with the owner's id; an owner
/// file left behind (the owner crashed or was killed) while nobody holds the lock is a stale lock, taken over with
/// a notice.
/// </summary>
internal sealed class RunLock : IDisposable
{
    public const string FileName = ".lock", OwnerFile = ".lock.owner";
    private readonly FileStream _stream;
    private readonly string _owner;

    private RunLock(FileStream stream, string owner) => (_stream, _owner) = (stream, owner);

    /// <summary>
    /// Takes the lock of <paramref name="directory"/> (which must exist). Returns the notice to show when a stale
    /// lock was taken over, in <paramref name="notice"/>; throws <see cref="FloraException"/> when another process
    /// (or another run in this process) holds it.
    /// </summary>
    public static RunLock Acquire(string directory, out string? notice)
    {
        string path = Path.Combine(directory, FileName), owner = Path.Combine(directory, OwnerFile);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException && File.Exists(path))
        {
            throw new FloraException($"{directory} is in use by {Describe(ReadOwner(owner))}: wait for it to end, or train into another --out");
        }
        string? previous = ReadOwner(owner);
        notice = previous is null ? null
            : $"took over the lock of {directory} from {previous}, which ended without releasing it (a crash or a kill)";
        using (var self = Process.GetCurrentProcess())
            AtomicFile.WriteAllText(owner, $"process {Environment.ProcessId} on {Environment.MachineName}, started {self.StartTime.ToUniversalTime():yyyy-MM-dd HH:mm:ss} UTC\n");
        return new RunLock(stream, owner);
    }

    /// <summary>Who holds the lock of <paramref name="directory"/> now, or null when nobody does (the lock is not taken).</summary>
    public static string? Holder(string directory)
    {
        string path = Path.Combine(directory, FileName);
        if (!File.Exists(path)) return null;
        try
        {
            using var probe = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            return null;
        }
        catch (IOException) when (File.Exists(path))
        {
            return Describe(ReadOwner(Path.Combine(directory, OwnerFile)));
        }
    }

    private static string Describe(string? owner) => owner ?? "another flora process";

    private static string? ReadOwner(string path)
    {
        try { return File.Exists(path) ? File.ReadAllText(path).Trim() is { Length: > 0 } s ? s : null : null; }
        catch (IOException) { return null; }
    }

    /// <summary>Releases the lock: the owner file goes (a clean end), then the lock itself.</summary>
    public void Dispose()
    {
        try { File.Delete(_owner); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        _stream.Dispose();
    }
}
