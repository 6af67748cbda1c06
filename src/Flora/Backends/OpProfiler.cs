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

    private readonly Dictionary<string, (OpTiming Timing, double Flops)> _products = new();

    /// <summary>Matrix products by shape (for example "8192x2304x768 bf16"), with the floating-point operations they did.</summary>
    public IReadOnlyDictionary<string, (OpTiming Timing, double Flops)> Products => _products;

    public void RecordProduct(string shape, long elapsedTicks, double flops)
    {
        _products.TryGetValue(shape, out var t);
        _products[shape] = (new OpTiming(t.Timing.Calls + 1, t.Timing.Ticks + elapsedTicks), t.Flops + flops);
    }

    public double Seconds(string op) => _ops.TryGetValue(op, out var t) ? t.Seconds : 0;

    public double TotalSeconds => _ops.Values.Sum(t => t.Seconds);

    public void Reset() { _ops.Clear(); _products.Clear(); }
}

public readonly record struct OpTiming(long Calls, long Ticks)
{
    public double Seconds => (double)Ticks / Stopwatch.Frequency;
}
