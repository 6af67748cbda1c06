namespace Flora;

/// <summary>
/// An error the user can act on: bad input, a missing file or library, an impossible setting.
/// The command line prints <see cref="Exception.Message"/> as one line and exits non-zero,
/// so the message must say what went wrong and what to do about it.
/// </summary>
public class FloraException : Exception
{
    /// <summary>An error with <paramref name="message"/>: one line saying what went wrong and what to do.</summary>
    public FloraException(string message) : base(message) { }

    /// <summary>An error with <paramref name="message"/> caused by <paramref name="inner"/> (kept as <see cref="Exception.InnerException"/>).</summary>
    public FloraException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>A data file is missing, truncated or not in the expected format.</summary>
public sealed class DataFormatException : FloraException
{
    /// <summary>A problem in the file <paramref name="path"/>; the message is "path: problem".</summary>
    public DataFormatException(string path, string problem)
        : base($"{path}: {problem}") { Path = path; }

    /// <summary>The file the problem was found in.</summary>
    public string Path { get; }
}
