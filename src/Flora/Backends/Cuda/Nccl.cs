using System.Runtime.InteropServices;

namespace Flora.Backends.Cuda;

/// <summary>The 128 opaque bytes (NCCL_UNIQUE_ID_BYTES) that let the ranks of one communicator find each other.</summary>
[StructLayout(LayoutKind.Sequential, Size = Bytes)]
internal unsafe struct NcclUniqueId
{
    /// <summary>Size of the id in bytes.</summary>
    public const int Bytes = 128;

    private fixed byte _internal[Bytes];

    /// <summary>The id as a byte array (to hand to the other ranks).</summary>
    public readonly byte[] ToArray()
    {
        var bytes = new byte[Bytes];
        fixed (byte* s = _internal) new ReadOnlySpan<byte>(s, Bytes).CopyTo(bytes);
        return bytes;
    }

    /// <summary>The id another rank handed over.</summary>
    public static NcclUniqueId FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Bytes) throw new ArgumentException($"an NCCL unique id has {Bytes} bytes, got {bytes.Length}");
        var id = new NcclUniqueId();
        bytes.CopyTo(new Span<byte>(id._internal, Bytes));
        return id;
    }
}

/// <summary>
/// NCCL (libnccl.so.2), bound at run time like cuBLAS: the functions data-parallel training needs, each call
/// checked and turned into an <see cref="NcclException"/> naming the call and NCCL's own text. Enumerations
/// follow nccl.h. NCCL is loaded only by a data-parallel run; NVLink multicast (NVLS) is switched off in the
/// process environment before the library is loaded (<see cref="DisableMulticast"/>).
/// </summary>
internal sealed unsafe class Nccl
{
    /// <summary>ncclDataType_t values used here.</summary>
    public const int Float32 = 7, Float64 = 8, BFloat16 = 9, Uint8 = 1;

    /// <summary>ncclRedOp_t values used here.</summary>
    public const int Sum = 0, Avg = 4;

    private const int InProgress = 7;

    private static readonly Lazy<Nccl> Loaded = new(() => Load(DefaultCandidates()));

    private readonly delegate* unmanaged<int*, int> _getVersion;
    private readonly delegate* unmanaged<NcclUniqueId*, int> _getUniqueId;
    private readonly delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int> _commInitRank;
    private readonly delegate* unmanaged<void*, void*, nuint, int, int, IntPtr, IntPtr, int> _allReduce;
    private readonly delegate* unmanaged<void*, void*, nuint, int, int, IntPtr, IntPtr, int> _broadcast;
    private readonly delegate* unmanaged<int> _groupStart, _groupEnd;
    private readonly delegate* unmanaged<IntPtr, int> _commDestroy, _commAbort;
    private readonly delegate* unmanaged<IntPtr, int*, int> _commGetAsyncError;
    private readonly delegate* unmanaged<int, byte*> _getErrorString;
    private readonly delegate* unmanaged<IntPtr, byte*> _getLastError;

    private Nccl(NativeLibraryHandle lib)
    {
        Path = lib.Path;
        _getVersion = (delegate* unmanaged<int*, int>)lib.Export("ncclGetVersion");
        _getUniqueId = (delegate* unmanaged<NcclUniqueId*, int>)lib.Export("ncclGetUniqueId");
        _commInitRank = (delegate* unmanaged<IntPtr*, int, NcclUniqueId, int, int>)lib.Export("ncclCommInitRank");
        _allReduce = (delegate* unmanaged<void*, void*, nuint, int, int, IntPtr, IntPtr, int>)lib.Export("ncclAllReduce");
        _broadcast = (delegate* unmanaged<void*, void*, nuint, int, int, IntPtr, IntPtr, int>)lib.Export("ncclBroadcast");
        _groupStart = (delegate* unmanaged<int>)lib.Export("ncclGroupStart");
        _groupEnd = (delegate* unmanaged<int>)lib.Export("ncclGroupEnd");
        _commDestroy = (delegate* unmanaged<IntPtr, int>)lib.Export("ncclCommDestroy");
        _commAbort = (delegate* unmanaged<IntPtr, int>)lib.Export("ncclCommAbort");
        _commGetAsyncError = (delegate* unmanaged<IntPtr, int*, int>)lib.Export("ncclCommGetAsyncError");
        _getErrorString = (delegate* unmanaged<int, byte*>)lib.Export("ncclGetErrorString");
        _getLastError = (delegate* unmanaged<IntPtr, byte*>)lib.TryExport("ncclGetLastError");
    }

    /// <summary>The library file that was loaded.</summary>
    public string Path { get; }

    /// <summary>NCCL, loaded once per process (multicast disabled first); throws naming every file tried when it is missing.</summary>
    public static Nccl Functions => Loaded.Value;

    /// <summary>Candidate names: the soname NCCL 2 installs, then the same in the usual library and CUDA directories.</summary>
    public static IEnumerable<string> DefaultCandidates() => NativeLibraryHandle.Candidates("libnccl.so.2", "libnccl.so");

    /// <summary>Loads NCCL from the first of <paramref name="candidates"/> that loads.</summary>
    public static Nccl Load(IEnumerable<string> candidates)
    {
        DisableMulticast();
        var lib = NativeLibraryHandle.TryLoad(candidates, out string tried)
            ?? throw new FloraException($"NCCL not found (tried {tried}): data-parallel training needs NCCL 2 (libnccl.so.2, e.g. the libnccl2 package)");
        return new Nccl(lib);
    }

    /// <summary>
    /// Sets NCCL_NVLS_ENABLE=0 in the native environment (what NCCL reads with getenv) and the managed one, so that
    /// NCCL never uses NVLink multicast (NVLS). Must run before NCCL reads its environment.
    /// </summary>
    public static void DisableMulticast()
    {
        Environment.SetEnvironmentVariable("NCCL_NVLS_ENABLE", "0");
        if (OperatingSystem.IsLinux())
            if (LibC.SetEnv("NCCL_NVLS_ENABLE", "0", 1) != 0) throw new FloraException("setenv(NCCL_NVLS_ENABLE=0) failed: NVLink multicast could not be switched off");
    }

    /// <summary>The version as NCCL encodes it (2.28.3 is 22803) and as text.</summary>
    public (int Code, string Text) Version()
    {
        int v;
        Check(_getVersion(&v), "ncclGetVersion");
        string text = v >= 10000 ? $"{v / 10000}.{v / 100 % 100}.{v % 100}" : $"{v / 1000}.{v / 100 % 10}.{v % 100}";
        return (v, text);
    }

    /// <summary>A fresh unique id (rank 0 makes it and hands it to the others).</summary>
    public NcclUniqueId GetUniqueId()
    {
        NcclUniqueId id;
        Check(_getUniqueId(&id), "ncclGetUniqueId");
        return id;
    }

    /// <summary>Joins rank <paramref name="rank"/> of <paramref name="ranks"/> on the current CUDA device; blocks until every rank has joined.</summary>
    public IntPtr CommInitRank(int ranks, NcclUniqueId id, int rank)
    {
        IntPtr comm;
        Check(_commInitRank(&comm, ranks, id, rank), $"ncclCommInitRank(nranks={ranks}, rank={rank})");
        return comm;
    }

    /// <summary>In-place when <paramref name="send"/> equals <paramref name="receive"/>; enqueued on <paramref name="stream"/>.</summary>
    public void AllReduce(ulong send, ulong receive, long count, int dataType, int op, IntPtr comm, IntPtr stream) =>
        Check(_allReduce((void*)send, (void*)receive, (nuint)count, dataType, op, comm, stream), $"ncclAllReduce(count={count}, datatype={dataType}, op={op})", comm);

    /// <summary>Copies <paramref name="count"/> elements of rank <paramref name="root"/> to every rank; enqueued on <paramref name="stream"/>.</summary>
    public void Broadcast(ulong send, ulong receive, long count, int dataType, int root, IntPtr comm, IntPtr stream) =>
        Check(_broadcast((void*)send, (void*)receive, (nuint)count, dataType, root, comm, stream), $"ncclBroadcast(count={count}, datatype={dataType}, root={root})", comm);

    /// <summary>Collectives between this and <see cref="GroupEnd"/> are launched together.</summary>
    public void GroupStart() => Check(_groupStart(), "ncclGroupStart");

    /// <summary>Launches the collectives issued since <see cref="GroupStart"/>.</summary>
    public void GroupEnd() => Check(_groupEnd(), "ncclGroupEnd");

    /// <summary>An error a communicator met while its collectives ran (a peer died, a network failure), or null.</summary>
    public string? AsyncError(IntPtr comm)
    {
        int error;
        int status = _commGetAsyncError(comm, &error);
        if (status != 0) return $"ncclCommGetAsyncError failed: {Text(status, comm)}";
        return error == 0 || error == InProgress ? null : Text(error, comm);
    }

    /// <summary>Frees a communicator after its work is done.</summary>
    public void CommDestroy(IntPtr comm) => Check(_commDestroy(comm), "ncclCommDestroy");

    /// <summary>Frees a communicator and aborts its pending work (after a failure).</summary>
    public void CommAbort(IntPtr comm) => _commAbort(comm);

    private void Check(int status, string call, IntPtr comm = default)
    {
        if (status == 0 || status == InProgress) return;
        throw new NcclException(status, $"{call} failed: {Text(status, comm)}");
    }

    private string Text(int status, IntPtr comm)
    {
        string text = new((sbyte*)_getErrorString(status));
        if (comm != IntPtr.Zero && _getLastError != null)
        {
            byte* last = _getLastError(comm);
            if (last != null && *last != 0) text += $": {new string((sbyte*)last)}";
        }
        return $"{text} (ncclResult {status})";
    }
}

/// <summary>An NCCL call failed; the message names the call and NCCL's explanation.</summary>
public sealed class NcclException : FloraException
{
    /// <summary>An NCCL failure with its ncclResult_t code.</summary>
    public NcclException(int status, string message) : base(message) => Status = status;

    /// <summary>The ncclResult_t code.</summary>
    public int Status { get; }
}

/// <summary>The C library calls the CUDA side needs that .NET does not offer.</summary>
internal static partial class LibC
{
    /// <summary>setenv(3): changes the native environment, which native libraries read (Environment.SetEnvironmentVariable does not).</summary>
    [LibraryImport("libc.so.6", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SetEnv(string name, string value, int overwrite);
}

/// <summary>
/// The CUDA driver's stream and event calls that overlap communication with computation: collectives run on a
/// stream of their own that waits, through events, for the gradients they read, and the default stream (where
/// every kernel of the backend runs) waits for them before it reads their result.
/// </summary>
internal static unsafe class CudaStreams
{
    /// <summary>CU_STREAM_NON_BLOCKING: no implicit synchronisation with the legacy default stream.</summary>
    public const uint NonBlocking = 1;

    /// <summary>CU_EVENT_DISABLE_TIMING: an event used only to order streams.</summary>
    public const uint DisableTiming = 2;

    /// <summary>The legacy default stream the backend issues all its work to.</summary>
    public static readonly IntPtr Default = IntPtr.Zero;

    private sealed class Api
    {
        public required delegate* unmanaged<IntPtr*, uint, int> StreamCreate;
        public required delegate* unmanaged<IntPtr, int> StreamDestroy;
        public required delegate* unmanaged<IntPtr, IntPtr, uint, int> StreamWaitEvent;
        public required delegate* unmanaged<IntPtr, int> StreamSynchronize;
        public required delegate* unmanaged<IntPtr, int> StreamQuery;
    }

    private static readonly Lazy<Api> Loaded = new(() =>
    {
        var lib = NativeLibraryHandle.TryLoad(NativeLibraryHandle.Candidates("libcuda.so.1", "libcuda.so"), out string tried)
            ?? throw new FloraException($"no CUDA driver found: tried {tried}");
        return new Api
        {
            StreamCreate = (delegate* unmanaged<IntPtr*, uint, int>)lib.Export("cuStreamCreate"),
            StreamDestroy = (delegate* unmanaged<IntPtr, int>)lib.Export("cuStreamDestroy_v2"),
            StreamWaitEvent = (delegate* unmanaged<IntPtr, IntPtr, uint, int>)lib.Export("cuStreamWaitEvent"),
            StreamSynchronize = (delegate* unmanaged<IntPtr, int>)lib.Export("cuStreamSynchronize"),
            StreamQuery = (delegate* unmanaged<IntPtr, int>)lib.Export("cuStreamQuery"),
        };
    });

    /// <summary>A new stream that runs concurrently with the default stream.</summary>
    public static IntPtr CreateStream()
    {
        IntPtr stream;
        Driver.Check(Loaded.Value.StreamCreate(&stream, NonBlocking), "cuStreamCreate(NON_BLOCKING)");
        return stream;
    }

    /// <summary>An event for ordering streams (no timing).</summary>
    public static IntPtr CreateEvent()
    {
        IntPtr e;
        Driver.Check(Driver.Functions.EventCreate(&e, DisableTiming), "cuEventCreate(DISABLE_TIMING)");
        return e;
    }

    /// <summary>Work issued to <paramref name="waiting"/> from now on waits until the work issued to <paramref name="after"/> so far is done.</summary>
    public static void Order(IntPtr after, IntPtr waiting, IntPtr e)
    {
        Driver.Check(Driver.Functions.EventRecord(e, after), "cuEventRecord");
        Driver.Check(Loaded.Value.StreamWaitEvent(waiting, e, 0), "cuStreamWaitEvent");
    }

    /// <summary>Blocks the host until <paramref name="stream"/> is idle.</summary>
    public static void Synchronize(IntPtr stream) => Driver.Check(Loaded.Value.StreamSynchronize(stream), "cuStreamSynchronize");

    /// <summary>Whether every operation issued to <paramref name="stream"/> has completed (cuStreamQuery; CUDA_ERROR_NOT_READY means not yet).</summary>
    public static bool IsIdle(IntPtr stream)
    {
        const int NotReady = 600;
        int status = Loaded.Value.StreamQuery(stream);
        if (status == NotReady) return false;
        Driver.Check(status, "cuStreamQuery");
        return true;
    }

    /// <summary>Destroys a stream made by <see cref="CreateStream"/> (after its work completes).</summary>
    public static void DestroyStream(IntPtr stream) => Loaded.Value.StreamDestroy(stream);

    /// <summary>Destroys an event made by <see cref="CreateEvent"/>.</summary>
    public static void DestroyEvent(IntPtr e) => Driver.Functions.EventDestroy(e);
}
