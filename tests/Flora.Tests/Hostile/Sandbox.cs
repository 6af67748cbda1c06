namespace Flora.Tests.Hostile;

/// <summary>
/// A directory of its own for one hostile case, next to the suite's shared files (a corpus, a trained run made by
/// the command under test). <see cref="Snapshot"/> lists every file with its size and time, so a case can be held
/// to changing nothing outside its run directory.
/// </summary>
internal sealed class Sandbox
{
    public Sandbox(string root, HostileFixture fixture)
    {
        Root = root;
        Fixture = fixture;
        Directory.CreateDirectory(root);
    }

    public string Root { get; }
    public HostileFixture Fixture { get; }

    /// <summary>A path inside the sandbox.</summary>
    public string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

    /// <summary>The conventional run directory of a case.</summary>
    public string Run => Path("run");

    /// <summary>Creates a file (its parent too) and returns its path.</summary>
    public string File(string name, string content = "not what was asked for\n")
    {
        string path = Path(name);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        System.IO.File.WriteAllText(path, content);
        return path;
    }

    /// <summary>Creates a directory and returns its path.</summary>
    public string Dir(string name) => Directory.CreateDirectory(Path(name)).FullName;

    /// <summary>
    /// A directory nothing can be created in: mode 555, or, where that does not stop this user (root), a place of
    /// the kernel's file system that refuses new entries.
    /// </summary>
    public string ReadOnlyDirectory()
    {
        string dir = Dir("read-only");
        if (OperatingSystem.IsWindows()) throw new PlatformNotSupportedException("the suite runs on Linux");
        System.IO.File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        try
        {
            System.IO.File.WriteAllText(System.IO.Path.Combine(dir, "probe"), "");
            System.IO.File.Delete(System.IO.Path.Combine(dir, "probe"));
            return "/sys/flora-read-only";                                     // root writes anyway
        }
        catch (UnauthorizedAccessException)
        {
            return dir;
        }
    }

    /// <summary>A copy of the suite's trained run (made by the command under test), without its lock files.</summary>
    public string CopyRun(string name = "run")
    {
        string target = Path(name);
        Copy(Fixture.TrainedRun, target);
        return target;
    }

    public static void Copy(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            string relative = System.IO.Path.GetRelativePath(from, file);
            if (System.IO.Path.GetFileName(file).StartsWith(".lock", StringComparison.Ordinal)) continue;
            string target = System.IO.Path.Combine(to, relative);
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(target)!);
            System.IO.File.Copy(file, target);
        }
    }

    /// <summary>Every file (relative path, size and last write) and directory of the sandbox outside <paramref name="except"/>.</summary>
    public Dictionary<string, (long Bytes, DateTime Written)> Snapshot(string? except)
    {
        string? skip = except is null ? null : System.IO.Path.TrimEndingDirectorySeparator(Path(except)) + System.IO.Path.DirectorySeparatorChar;
        var files = new Dictionary<string, (long, DateTime)>();
        foreach (var entry in new DirectoryInfo(Root).EnumerateFileSystemInfos("*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0 }))
        {
            if (skip is not null && (entry.FullName + System.IO.Path.DirectorySeparatorChar).StartsWith(skip, StringComparison.Ordinal)) continue;
            files[System.IO.Path.GetRelativePath(Root, entry.FullName)] = entry is FileInfo f ? (f.Length, f.LastWriteTimeUtc) : (-1, default);
        }
        return files;
    }

    /// <summary>What changed between two snapshots, or null.</summary>
    public static string? Changes(Dictionary<string, (long Bytes, DateTime Written)> before, Dictionary<string, (long Bytes, DateTime Written)> after)
    {
        var changed = before.Keys.Union(after.Keys)
            .Where(k => !before.TryGetValue(k, out var b) || !after.TryGetValue(k, out var a) || a != b).Order().Take(5).ToList();
        return changed.Count == 0 ? null : $"files outside the run directory changed: {string.Join(", ", changed)}";
    }
}
