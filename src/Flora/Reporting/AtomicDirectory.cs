namespace Flora.Reporting;

/// <summary>
/// Writes a directory so that readers see the old one or the complete new one, never a part: the files go to
/// <c>NAME.tmp</c> beside it, which is renamed to <c>NAME</c> at the end. When writing fails (a full disk, a
/// kill is another matter) the temporary directory is removed, so it holds no space.
/// </summary>
internal static class AtomicDirectory
{
    public const string TempSuffix = ".tmp";

    /// <summary>Runs <paramref name="fill"/> on an empty temporary directory, then puts it in place of <paramref name="final"/>.</summary>
    public static void Write(string final, Action<string> fill)
    {
        string temp = final + TempSuffix;
        if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);    // left by a killed writer
        Directory.CreateDirectory(temp);
        try
        {
            fill(temp);
            if (Directory.Exists(final)) Directory.Delete(final, recursive: true);
            Directory.Move(temp, final);
        }
        catch
        {
            try { if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* the original error matters more */ }
            throw;
        }
    }
}
