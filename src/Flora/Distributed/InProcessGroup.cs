using Flora.Backends;
using Flora.Tensors;

namespace Flora.Distributed;

/// <summary>
/// Several ranks in one process, each a thread with its own backend and model replica, meeting in collectives
/// through shared memory: data-parallel training on the CPU without a network, to check its math (a run of N
/// ranks with batch B against one rank with batch N B), sharding and checkpoints in tests. A collective waits
/// until every rank has called it, checks that all called the same one with the same sizes (else every rank
/// gets a <see cref="RankMismatchException"/>), then combines the contributions in rank order, in double
/// precision, so the result is the same on every rank and from run to run. A rank that fails should call
/// <see cref="Abort"/> (<see cref="Run{T}"/> does), so that the others stop waiting; a collective that waits
/// longer than the timeout fails with <see cref="TimeoutException"/>.
/// </summary>
public sealed class InProcessGroup
{
    private readonly object _lock = new();
    private readonly double[]?[] _contributions;
    private readonly string?[] _collectives;
    private readonly TimeSpan _timeout;
    private int _arrived;
    private long _generation;
    private double[] _result = [];
    private Exception? _failure;

    /// <summary>A group of <paramref name="worldSize"/> ranks; a collective gives up after <paramref name="timeout"/> (default two minutes).</summary>
    public InProcessGroup(int worldSize, TimeSpan? timeout = null)
    {
        if (worldSize <= 0) throw new ArgumentException($"world size must be positive, got {worldSize}", nameof(worldSize));
        WorldSize = worldSize;
        _contributions = new double[worldSize][];
        _collectives = new string[worldSize];
        _timeout = timeout ?? TimeSpan.FromMinutes(2);
    }

    /// <summary>The number of ranks.</summary>
    public int WorldSize { get; }

    /// <summary>The communicator of rank <paramref name="rank"/>, whose tensors live on <paramref name="backend"/>.</summary>
    public ICommunicator Join(int rank, IBackend backend)
    {
        if (rank < 0 || rank >= WorldSize) throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} is outside a group of {WorldSize}");
        return new Member(this, rank, backend);
    }

    /// <summary>Wakes every rank waiting in a collective with an error naming <paramref name="reason"/>; later collectives fail at once.</summary>
    public void Abort(Exception reason)
    {
        lock (_lock)
        {
            _failure ??= reason;
            Monitor.PulseAll(_lock);
        }
    }

    /// <summary>
    /// Runs <paramref name="body"/> (group, rank) on one thread per rank and returns the results by rank. A rank that
    /// throws aborts the group; the exception of the rank that failed first is rethrown.
    /// </summary>
    public static T[] Run<T>(int worldSize, Func<InProcessGroup, int, T> body, TimeSpan? timeout = null)
    {
        var group = new InProcessGroup(worldSize, timeout);
        var results = new T[worldSize];
        var errors = new Exception?[worldSize];
        var threads = Enumerable.Range(0, worldSize).Select(rank => new Thread(() =>
        {
            try { results[rank] = body(group, rank); }
            catch (Exception e)
            {
                errors[rank] = e;
                group.Abort(e);
            }
        }) { Name = $"rank {rank}", IsBackground = true }).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        Exception? first = group._failure;
        if (first is not null) throw new AggregateException($"a rank failed: {first.Message}", errors.Where(e => e is not null)!);
        return results;
    }

    /// <summary>Adds a rank's contribution to the current collective, waits for all, returns the combined result (shared, read-only).</summary>
    private double[] Exchange(int rank, string collective, double[] contribution, Func<double[]?[], double[]> combine)
    {
        lock (_lock)
        {
            ThrowIfFailed(rank, collective);
            long generation = _generation;
            _contributions[rank] = contribution;
            _collectives[rank] = collective;
            if (++_arrived == WorldSize)
            {
                try
                {
                    for (int r = 0; r < WorldSize; r++)
                        if (_collectives[r] != _collectives[0])
                            throw new RankMismatchException($"rank {r} called {_collectives[r]} while rank 0 called {_collectives[0]}: every rank must issue the same collectives in the same order");
                    _result = combine(_contributions);
                }
                catch (Exception e)
                {
                    _failure ??= e;
                    Monitor.PulseAll(_lock);
                    throw;
                }
                Array.Clear(_contributions);
                _arrived = 0;
                _generation++;
                Monitor.PulseAll(_lock);
                return _result;
            }
            var deadline = DateTime.UtcNow + _timeout;
            while (_generation == generation)
            {
                ThrowIfFailed(rank, collective);
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero || !Monitor.Wait(_lock, left) && _generation == generation)
                {
                    var timeout = new TimeoutException($"rank {rank} waited {_timeout.TotalSeconds:F0} s in {collective} for the other ranks ({_arrived} of {WorldSize} arrived)");
                    _failure ??= timeout;
                    Monitor.PulseAll(_lock);
                    throw timeout;
                }
            }
            return _result;   // no later collective can complete before this rank has left this one
        }
    }

    private void ThrowIfFailed(int rank, string collective)
    {
        if (_failure is not null)
            throw _failure as RankMismatchException ?? new FloraException($"rank {rank} stopped in {collective}: another rank failed ({_failure.Message})");
    }

    private static string Sizes(IReadOnlyList<Tensor> tensors) => "[" + string.Join(", ", tensors.Select(t => t.Count)) + "]";

    /// <summary>One rank's view of the group.</summary>
    private sealed class Member(InProcessGroup group, int rank, IBackend backend) : ICommunicator
    {
        public int Rank => rank;
        public int WorldSize => group.WorldSize;
        public string Description => $"in-process group, rank {rank} of {group.WorldSize}";

        public void StartAllReduce(IReadOnlyList<Tensor> tensors, ReduceOp op)
        {
            double[] mine = Gather(tensors);
            double[] result = group.Exchange(rank, $"all-reduce {op} of {Sizes(tensors)}", mine, all => Reduce(all, op));
            Scatter(result, tensors);
        }

        public void Wait() { }

        public void Broadcast(IReadOnlyList<Tensor> tensors, int root)
        {
            CheckRoot(root);
            double[] result = group.Exchange(rank, $"broadcast from {root} of {Sizes(tensors)}", Gather(tensors), all => all[root]!);
            Scatter(result, tensors);
        }

        public void AllReduce(Span<double> values, ReduceOp op)
        {
            double[] result = group.Exchange(rank, $"host all-reduce {op} of {values.Length}", values.ToArray(), all => Reduce(all, op));
            result.CopyTo(values);
        }

        public void Broadcast(Span<double> values, int root)
        {
            CheckRoot(root);
            double[] result = group.Exchange(rank, $"host broadcast from {root} of {values.Length}", values.ToArray(), all => all[root]!);
            result.CopyTo(values);
        }

        public void Barrier() => group.Exchange(rank, "barrier", [], _ => []);

        private void CheckRoot(int root)
        {
            if (root < 0 || root >= group.WorldSize) throw new ArgumentOutOfRangeException(nameof(root), $"root {root} is outside a group of {group.WorldSize}");
        }

        private static double[] Reduce(double[]?[] all, ReduceOp op)
        {
            var sum = new double[all[0]!.Length];
            foreach (double[]? contribution in all)
                for (int i = 0; i < sum.Length; i++) sum[i] += contribution![i];
            if (op == ReduceOp.Average)
                for (int i = 0; i < sum.Length; i++) sum[i] /= all.Length;
            return sum;
        }

        private double[] Gather(IReadOnlyList<Tensor> tensors)
        {
            backend.Synchronize();
            var values = new double[tensors.Sum(t => (long)t.Count)];
            int at = 0;
            foreach (var t in tensors)
            {
                if (t.DType == DType.BFloat16)                                          // bf16 weights (broadcast): exact as doubles
                {
                    var bits = new ushort[t.Count];
                    t.CopyTo<ushort>(bits);
                    for (int i = 0; i < bits.Length; i++) values[at + i] = BFloat16.ToSingle(bits[i]);
                    at += bits.Length;
                    continue;
                }
                if (t.DType != DType.Float32) throw new ArgumentException($"the in-process group reduces float32 and bfloat16 tensors, got {t.DType}");
                var host = new float[t.Count];
                t.CopyTo<float>(host);
                for (int i = 0; i < host.Length; i++) values[at + i] = host[i];
                at += host.Length;
            }
            return values;
        }

        private static void Scatter(double[] values, IReadOnlyList<Tensor> tensors)
        {
            int at = 0;
            foreach (var t in tensors)
            {
                if (t.DType == DType.BFloat16)
                {
                    var bits = new ushort[t.Count];
                    for (int i = 0; i < bits.Length; i++) bits[i] = BFloat16.RoundToNearestEven((float)values[at + i]);
                    t.CopyFrom<ushort>(bits);
                    at += bits.Length;
                    continue;
                }
                var host = new float[t.Count];
                for (int i = 0; i < host.Length; i++) host[i] = (float)values[at + i];
                t.CopyFrom<float>(host);
                at += host.Length;
            }
        }

        public void Dispose() { }
    }
}
