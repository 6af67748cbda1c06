using System.Diagnostics;

namespace Flora.Backends;

/// <summary>Wall time and call count per backend op, for benchmarks. Not thread-safe: ops are issued from one thread.</summary>
public sealed class OpProfiler
{
    private readonly Dictionary<string, OpTiming> _ops = new();

    /// <summary>Calls and time per op name (the <see cref="IBackend"/> method, e.g. "MatMul"), since the last <see cref="Reset"/>.</summary>
    public IReadOnlyDictionary<string, OpTiming> Ops => _ops;

    /// <summary>Adds one call of <paramref name="op"/> that took <paramref name="elapsedTicks"/> <see cref="Stopwatch"/> ticks.</summary>
    public void Record(string op, long elapsedTicks)
    {
        _ops.TryGetValue(op, out var t);
        _ops[op] = new OpTiming(t.Calls + 1, t.Ticks + elapsedTicks);
    }

    private readonly Dictionary<string, (OpTiming Timing, double Flops)> _products = new();

    /// <summary>Matrix products by shape (for example "8192x2304x768 bf16"), with the floating-point operations they did.</summary>
    public IReadOnlyDictionary<string, (OpTiming Timing, double Flops)> Products => _products;

    /// <summary>
    /// Adds one matrix product of <paramref name="shape"/> (the key of <see cref="Products"/>) that took
    /// <paramref name="elapsedTicks"/> <see cref="Stopwatch"/> ticks and did <paramref name="flops"/> floating-point operations.
    /// </summary>
    public void RecordProduct(string shape, long elapsedTicks, double flops)
    {
        _products.TryGetValue(shape, out var t);
        _products[shape] = (new OpTiming(t.Timing.Calls + 1, t.Timing.Ticks + elapsedTicks), t.Flops + flops);
    }

    /// <summary>Seconds spent in <paramref name="op"/> so far; 0 for an op never recorded.</summary>
    public double Seconds(string op) => _ops.TryGetValue(op, out var t) ? t.Seconds : 0;

    /// <summary>Seconds spent in all ops together (<see cref="Products"/> are not added again).</summary>
    public double TotalSeconds => _ops.Values.Sum(t => t.Seconds);

    /// <summary>Forgets every op and product recorded, to time a later phase alone.</summary>
    public void Reset() { _ops.Clear(); _products.Clear(); }
}

/// <summary>The calls of one op or product shape and their total wall time.</summary>
/// <param name="Calls">How many calls were recorded.</param>
/// <param name="Ticks">Their total wall time in <see cref="Stopwatch"/> ticks (<see cref="Stopwatch.Frequency"/> per second).</param>
public readonly record struct OpTiming(long Calls, long Ticks)
{
    /// <summary>The total wall time in seconds.</summary>
    public double Seconds => (double)Ticks / Stopwatch.Frequency;
}
