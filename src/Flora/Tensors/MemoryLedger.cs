namespace Flora.Tensors;

/// <summary>
/// Counts the bytes held by every tensor allocation, by <see cref="MemoryTag"/>: current, peak per tag,
/// and the overall peak with its breakdown. Every <see cref="Storage"/> reports here when it is
/// allocated and freed, so the numbers are measured, not estimated. Thread-safe.
/// </summary>
public sealed class MemoryLedger
{
    private static readonly MemoryTag[] Tags = Enum.GetValues<MemoryTag>();
    private readonly object _gate = new();
    private readonly long[] _current = new long[Tags.Length];
    private readonly long[] _peak = new long[Tags.Length];
    private readonly long[] _atPeak = new long[Tags.Length];
    private long _currentTotal;
    private long _peakTotal;
    private long _allocations;
    private long _frees;
    private MemoryTimeline? _timeline;

    /// <summary>
    /// When set, records the bytes per tag now, after every later allocation and free, and once more when it is
    /// replaced or set to null (so the record spans the whole profiled time): the memory profile of Figure 2.
    /// Null (the default) records nothing, so an unprofiled run pays one null check per event.
    /// </summary>
    public MemoryTimeline? Timeline
    {
        get { lock (_gate) return _timeline; }
        set
        {
            lock (_gate)
            {
                if (ReferenceEquals(value, _timeline)) return;
                _timeline?.Record(_current, _currentTotal);
                _timeline = value;
                value?.Record(_current, _currentTotal);
            }
        }
    }

    /// <summary>Number of allocations made so far. Unchanged across a training step means the step reuses its buffers.</summary>
    public long Allocations { get { lock (_gate) return _allocations; } }

    /// <summary>Number of allocations released so far.</summary>
    public long Frees { get { lock (_gate) return _frees; } }

    /// <summary>Bytes held now under <paramref name="tag"/>.</summary>
    public long Current(MemoryTag tag) { lock (_gate) return _current[(int)tag]; }

    /// <summary>Most bytes ever held at once under <paramref name="tag"/> (since the last <see cref="ResetPeaks"/>).</summary>
    public long Peak(MemoryTag tag) { lock (_gate) return _peak[(int)tag]; }

    /// <summary>Bytes held now, all tags together.</summary>
    public long CurrentTotal { get { lock (_gate) return _currentTotal; } }

    /// <summary>Most bytes ever held at once, all tags together.</summary>
    public long PeakTotal { get { lock (_gate) return _peakTotal; } }

    internal void OnAllocated(MemoryTag tag, long bytes)
    {
        lock (_gate)
        {
            _allocations++;
            int t = (int)tag;
            _current[t] += bytes;
            if (_current[t] > _peak[t]) _peak[t] = _current[t];
            _currentTotal += bytes;
            if (_currentTotal > _peakTotal)
            {
                _peakTotal = _currentTotal;
                Array.Copy(_current, _atPeak, _current.Length);
            }
            _timeline?.Record(_current, _currentTotal);
        }
    }

    internal void OnFreed(MemoryTag tag, long bytes)
    {
        lock (_gate)
        {
            _frees++;
            _current[(int)tag] -= bytes;
            _currentTotal -= bytes;
            _timeline?.Record(_current, _currentTotal);
        }
    }

    /// <summary>Sets every peak to the current value, to measure the peak of a later phase alone.</summary>
    public void ResetPeaks()
    {
        lock (_gate)
        {
            Array.Copy(_current, _peak, _current.Length);
            Array.Copy(_current, _atPeak, _current.Length);
            _peakTotal = _currentTotal;
        }
    }

    /// <summary>A consistent copy of all counters.</summary>
    public MemorySnapshot Snapshot()
    {
        lock (_gate)
        {
            var rows = Tags.Select(t => new MemoryTagUsage(t, _current[(int)t], _peak[(int)t], _atPeak[(int)t])).ToArray();
            return new MemorySnapshot(rows, _currentTotal, _peakTotal, _allocations, _frees);
        }
    }
}

/// <summary>Bytes of one tag: now, at its own peak, and at the moment of the overall peak.</summary>
/// <param name="Tag">The tag the row counts.</param>
/// <param name="CurrentBytes">Bytes of the tag allocated and not yet freed.</param>
/// <param name="PeakBytes">The most bytes the tag held at once (since the last <see cref="MemoryLedger.ResetPeaks"/>).</param>
/// <param name="BytesAtTotalPeak">Bytes of the tag when the total over all tags was at its peak.</param>
public sealed record MemoryTagUsage(MemoryTag Tag, long CurrentBytes, long PeakBytes, long BytesAtTotalPeak);

/// <summary>A copy of the ledger's counters at one moment.</summary>
/// <param name="Tags">One row per <see cref="MemoryTag"/>, in the order of the enum's values.</param>
/// <param name="CurrentTotalBytes">Bytes held now, all tags together.</param>
/// <param name="PeakTotalBytes">The most bytes held at once, all tags together (since the last <see cref="MemoryLedger.ResetPeaks"/>).</param>
/// <param name="Allocations">Storages allocated since the ledger was made.</param>
/// <param name="Frees">Storages freed since the ledger was made.</param>
public sealed record MemorySnapshot(
    IReadOnlyList<MemoryTagUsage> Tags, long CurrentTotalBytes, long PeakTotalBytes, long Allocations, long Frees)
{
    /// <summary>The row of <paramref name="tag"/>.</summary>
    public MemoryTagUsage this[MemoryTag tag] => Tags[(int)tag];
}
