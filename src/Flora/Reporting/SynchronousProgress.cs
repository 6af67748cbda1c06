namespace Flora.Reporting;

/// <summary>
/// An <see cref="IProgress{T}"/> that runs its handler on the reporting thread, at once. System.Progress posts to the
/// thread pool instead, so a progress bar or a log would see reports late and out of order.
/// </summary>
public sealed class SynchronousProgress<T>(Action<T> handler) : IProgress<T>
{
    public void Report(T value) => handler(value);
}
