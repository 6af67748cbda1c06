using System.Runtime.InteropServices;
using Flora.Backends;
using Flora.Backends.Cuda;
using Flora.Tensors;

namespace Flora.Distributed;

/// <summary>
/// Collectives between GPUs through NCCL, one process per GPU. The backend issues all its kernels to the CUDA
/// default stream; collectives run on a stream of their own:
/// <code>
/// StartAllReduce: event on the default stream -> the NCCL stream waits for it -> grouped ncclAllReduce (in place)
/// Wait:           event on the NCCL stream -> the default stream waits for it (the host does not block)
/// </code>
/// so a bucket of gradients is reduced while backward computes the next layers. Host collectives (the loss,
/// the stop flag, validation sums) copy to a small device buffer, reduce in float64 and wait, checking the
/// communicator for asynchronous errors (a rank that died) while they wait. NVLink multicast is off
/// (NCCL_NVLS_ENABLE=0 is set before NCCL loads).
/// </summary>
public sealed unsafe class NcclCommunicator : ICommunicator
{
    private readonly Nccl _nccl;
    private readonly IBackend _backend;
    private readonly IntPtr _comm, _stream, _ready, _done;
    private readonly TensorSlot _hostValues;
    private bool _pending, _failed, _disposed;

    private NcclCommunicator(Nccl nccl, IBackend backend, IntPtr comm, int rank, int worldSize, string version)
    {
        (_nccl, _backend, _comm, Rank, WorldSize) = (nccl, backend, comm, rank, worldSize);
        _stream = CudaStreams.CreateStream();
        _ready = CudaStreams.CreateEvent();
        _done = CudaStreams.CreateEvent();
        _hostValues = new TensorSlot(backend, MemoryTag.Scratch);
        Description = $"NCCL {version} ({nccl.Path}), rank {rank} of {worldSize}";
    }

    /// <summary>
    /// Joins the run <paramref name="rendezvous"/> describes on the GPU of <paramref name="backend"/> (which must be the
    /// CUDA backend, its device current on this thread): rank 0 makes NCCL's unique id, the rendezvous hands it to
    /// the others, every rank calls ncclCommInitRank, which returns once all have joined.
    /// </summary>
    public static NcclCommunicator Connect(IBackend backend, Rendezvous rendezvous)
    {
        if (backend is not CudaBackend) throw new FloraException("data-parallel training runs on GPUs through NCCL: pass --device cuda");
        var nccl = Nccl.Functions;
        string version = nccl.Version().Text;
        byte[] id = rendezvous.Exchange(() => nccl.GetUniqueId().ToArray());
        IntPtr comm = nccl.CommInitRank(rendezvous.WorldSize, NcclUniqueId.FromBytes(id), rendezvous.Rank);
        try
        {
            rendezvous.Finish();
            return new NcclCommunicator(nccl, backend, comm, rendezvous.Rank, rendezvous.WorldSize, version);
        }
        catch
        {
            nccl.CommAbort(comm);
            throw;
        }
    }

    /// <inheritdoc/>
    public int Rank { get; }

    /// <inheritdoc/>
    public int WorldSize { get; }

    /// <inheritdoc/>
    public string Description { get; }

    /// <inheritdoc/>
    public void StartAllReduce(IReadOnlyList<Tensor> tensors, ReduceOp op)
    {
        if (tensors.Count == 0) return;
        CudaStreams.Order(CudaStreams.Default, _stream, _ready);          // the gradients are complete on the default stream
        Grouped(() =>
        {
            foreach (var t in tensors)
                _nccl.AllReduce(Address(t), Address(t), t.Count, DataType(t), op == ReduceOp.Average ? Nccl.Avg : Nccl.Sum, _comm, _stream);
        });
        _pending = true;
    }

    /// <inheritdoc/>
    public void Wait()
    {
        if (!_pending) return;
        CudaStreams.Order(_stream, CudaStreams.Default, _done);
        _pending = false;
    }

    /// <inheritdoc/>
    public void Broadcast(IReadOnlyList<Tensor> tensors, int root)
    {
        if (tensors.Count == 0) return;
        CudaStreams.Order(CudaStreams.Default, _stream, _ready);
        Grouped(() =>
        {
            foreach (var t in tensors) _nccl.Broadcast(Address(t), Address(t), t.Count, DataType(t), root, _comm, _stream);
        });
        _pending = true;
        Wait();
    }

    /// <inheritdoc/>
    public void AllReduce(Span<double> values, ReduceOp op) =>
        OnHost(values, (buffer, count) => _nccl.AllReduce(buffer, buffer, count, Nccl.Float64, op == ReduceOp.Average ? Nccl.Avg : Nccl.Sum, _comm, _stream));

    /// <inheritdoc/>
    public void Broadcast(Span<double> values, int root) =>
        OnHost(values, (buffer, count) => _nccl.Broadcast(buffer, buffer, count, Nccl.Float64, root, _comm, _stream));

    /// <inheritdoc/>
    public void Barrier()
    {
        Span<double> one = [1];
        AllReduce(one, ReduceOp.Sum);
    }

    /// <summary>Host values through a device buffer of float64 (held as pairs of float32 slots), the host waiting.</summary>
    private void OnHost(Span<double> values, Action<ulong, long> collective)
    {
        if (values.Length == 0) return;
        Tensor buffer = _hostValues.Get(new Shape(values.Length * 2));
        _backend.Upload(MemoryMarshal.Cast<double, float>(values), buffer);
        CudaStreams.Order(CudaStreams.Default, _stream, _ready);
        collective(Address(buffer), values.Length);
        WaitForStream();
        _backend.Download(buffer, MemoryMarshal.Cast<double, float>(values));
    }

    /// <summary>Waits for the NCCL stream, polling for asynchronous errors so that a dead peer ends the run instead of hanging it.</summary>
    private void WaitForStream(TimeSpan? limit = null)
    {
        var deadline = limit is TimeSpan l ? DateTime.UtcNow + l : DateTime.MaxValue;
        while (!CudaStreams.IsIdle(_stream))
        {
            if (DateTime.UtcNow > deadline)
            {
                _failed = true;
                throw new NcclException(8, $"rank {Rank}: the collectives in flight did not complete within {limit!.Value.TotalSeconds:F0} s");
            }
            if (_nccl.AsyncError(_comm) is string error)
            {
                _failed = true;
                throw new NcclException(6, $"rank {Rank}: a collective failed: {error}");
            }
            Thread.Sleep(0);
        }
    }

    private void Grouped(Action issue)
    {
        _nccl.GroupStart();
        try { issue(); }
        finally { _nccl.GroupEnd(); }
    }

    private static ulong Address(Tensor t) => (ulong)t.Pointer;

    private static int DataType(Tensor t) => t.DType switch
    {
        DType.Float32 => Nccl.Float32,
        DType.BFloat16 => Nccl.BFloat16,
        _ => throw new ArgumentException($"NCCL collectives here take float32 or bfloat16 tensors, got {t.DType}"),
    };

    /// <summary>Frees the communicator (aborting it after a failure), its stream and events.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _hostValues.Dispose();
        if (_failed) _nccl.CommAbort(_comm);
        else
        {
            try
            {
                WaitForStream(TimeSpan.FromSeconds(30));            // a peer that stopped early would leave it waiting forever
                _nccl.CommDestroy(_comm);
            }
            catch (FloraException) { _nccl.CommAbort(_comm); }
        }
        CudaStreams.DestroyEvent(_ready);
        CudaStreams.DestroyEvent(_done);
        CudaStreams.DestroyStream(_stream);
    }
}
