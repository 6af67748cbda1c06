using System.Diagnostics;

namespace Flora.Backends;

/// <summary>Wall time and call count per backend op, for benchmarks. Not thread-safe: ops are issued from one thread.</summary>
public sealed class OpProfiler
{
    private readonly Dictionary<string, OpTiming> _ops = new();

    public IReadOnlyDictionary<string, OpTiming> Ops => _ops;

    public void Record(string op, long elapsedTicks)
    {
        _ops.TryGetValue(op, out var t);
        _ops[op] = new OpTiming(t.Calls + 1, t.Ticks + elapsedTicks);
    }

    public double Seconds(string op) => _ops.TryGetValue(op, out var t) ? t.Seconds : 0;

    public double TotalSeconds => _ops.Values.Sum(t => t.Seconds);

    public void Reset() => _ops.Clear();
}

public readonly record struct OpTiming(long Calls, long Ticks)
{
    public double Seconds => (double)Ticks / Stopwatch.Frequency;
}
