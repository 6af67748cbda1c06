using System.Diagnostics;

namespace Flora.Tensors;

/// <summary>
/// The bytes of a <see cref="MemoryLedger"/> per <see cref="MemoryTag"/> over time: one sample when it is
/// attached (<see cref="MemoryLedger.Timeline"/>), one after every allocation and every free, so the peak
/// inside a backward pass is caught, and one when it is detached; plus labelled marks (such as step
/// boundaries). While no timeline is attached the ledger records nothing. Thread-safe.
/// </summary>
public sealed class MemoryTimeline
{
    /// <summary>The tags in the order of <see cref="Sample.Bytes"/>.</summary>
    public static IReadOnlyList<MemoryTag> Tags { get; } = Enum.GetValues<MemoryTag>();

    private readonly object _gate = new();
    private readonly List<Sample> _samples = new();
    private readonly List<Mark> _marks = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _peakTotal = -1;
    private int _peakIndex = -1;
    private Sample _atPeak;

    /// <param name="maxSamples">Samples kept at most; later events still update the peak (see <see cref="Dropped"/>).</param>
    public MemoryTimeline(int maxSamples = 1_000_000)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxSamples);
        MaxSamples = maxSamples;
    }

    /// <summary>The most samples kept; events past it only count in <see cref="Dropped"/> and the peak.</summary>
    public int MaxSamples { get; }

    /// <summary>Bytes per tag (in <see cref="Tags"/> order) right after one event, <see cref="Seconds"/> after the timeline was made.</summary>
    /// <param name="Event">The event's number since the timeline was attached, dropped events included.</param>
    /// <param name="Seconds">Seconds since the timeline was made.</param>
    /// <param name="Bytes">Bytes held per tag, indexed like <see cref="Tags"/>.</param>
    public readonly record struct Sample(long Event, double Seconds, long[] Bytes)
    {
        /// <summary>Bytes held over all tags.</summary>
        public long Total => Bytes.Sum();

        /// <summary>Bytes held under <paramref name="tag"/>.</summary>
        public long this[MemoryTag tag] => Bytes[(int)tag];
    }

    /// <summary>A label at a moment: it precedes sample <see cref="NextSample"/>.</summary>
    /// <param name="NextSample">Index in <see cref="Samples"/> of the first sample after the mark.</param>
    /// <param name="Seconds">Seconds since the timeline was made.</param>
    /// <param name="Label">What happened, e.g. "step 3" or "backward".</param>
    public readonly record struct Mark(int NextSample, double Seconds, string Label);

    /// <summary>Events seen but not kept, after <see cref="MaxSamples"/> was reached.</summary>
    public long Dropped { get; private set; }

    /// <summary>A copy of the samples kept so far, oldest first.</summary>
    public IReadOnlyList<Sample> Samples { get { lock (_gate) return _samples.ToArray(); } }

    /// <summary>A copy of the marks added so far, in the order they were added.</summary>
    public IReadOnlyList<Mark> Marks { get { lock (_gate) return _marks.ToArray(); } }

    /// <summary>The largest total seen (0 before the first sample).</summary>
    public long PeakTotal { get { lock (_gate) return Math.Max(0, _peakTotal); } }

    /// <summary>The first sample with the largest total: the breakdown by tag at the peak.</summary>
    public Sample AtPeak { get { lock (_gate) return _atPeak; } }

    /// <summary>Index in <see cref="Samples"/> of <see cref="AtPeak"/> (-1 when it was not kept).</summary>
    public int PeakIndex { get { lock (_gate) return _peakIndex; } }

    /// <summary>Adds a label (a step starts, backward begins) at the current moment.</summary>
    public void AddMark(string label)
    {
        lock (_gate) _marks.Add(new Mark(_samples.Count, _clock.Elapsed.TotalSeconds, label));
    }

    /// <summary>Called by the ledger (under its lock) with its current bytes per tag.</summary>
    internal void Record(long[] current, long total)
    {
        lock (_gate)
        {
            long index = _samples.Count + Dropped;
            var sample = new Sample(index, _clock.Elapsed.TotalSeconds, (long[])current.Clone());
            bool kept = _samples.Count < MaxSamples;
            if (kept) _samples.Add(sample);
            else Dropped++;
            if (total > _peakTotal)
            {
                _peakTotal = total;
                _atPeak = sample;
                _peakIndex = kept ? _samples.Count - 1 : -1;
            }
        }
    }
}
