namespace Flora.Reporting;

/// <summary>
/// An <see cref="IProgress{T}"/> that runs its handler on the reporting thread, at once. System.Progress posts to the
/// thread pool instead, so a progress bar or a log would see reports late and out of order.
/// </summary>
/// <typeparam name="T">The type of a progress report.</typeparam>
/// <param name="handler">Called with every report, on the thread that reports it.</param>
public sealed class SynchronousProgress<T>(Action<T> handler) : IProgress<T>
{
    /// <inheritdoc/>
    public void Report(T value) => handler(value);
}
