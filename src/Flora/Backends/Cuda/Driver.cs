namespace Flora.Backends.Cuda;

/// <summary>
/// The CUDA driver API (libcuda.so.1), bound at run time. Every call goes through <see cref="Check"/>,
/// which turns an error code into a <see cref="CudaException"/> naming the call, its arguments and the error.
/// </summary>
internal static unsafe class Driver
{
    private static readonly Lazy<Api> Loaded = new(Load);

    internal sealed class Api
    {
        public required string Path;
        public required delegate* unmanaged<uint, int> Init;
        public required delegate* unmanaged<int*, int> DriverGetVersion;
        public required delegate* unmanaged<int*, int> DeviceGetCount;
        public required delegate* unmanaged<int*, int, int> DeviceGet;
        public required delegate* unmanaged<byte*, int, int, int> DeviceGetName;
        public required delegate* unmanaged<int*, int, int, int> DeviceGetAttribute;
        public required delegate* unmanaged<IntPtr*, int, int> DevicePrimaryCtxRetain;
        public required delegate* unmanaged<IntPtr, int> CtxSetCurrent;
        public required delegate* unmanaged<int> CtxSynchronize;
        public required delegate* unmanaged<ulong*, nuint, int> MemAlloc;
        public required delegate* unmanaged<ulong, int> MemFree;
        public required delegate* unmanaged<nuint*, nuint*, int> MemGetInfo;
        public required delegate* unmanaged<ulong, void*, nuint, int> MemcpyHtoD;
        public required delegate* unmanaged<void*, ulong, nuint, int> MemcpyDtoH;
        public required delegate* unmanaged<ulong, ulong, nuint, int> MemcpyDtoD;
        public required delegate* unmanaged<ulong, uint, nuint, int> MemsetD32;
        public required delegate* unmanaged<IntPtr*, void*, int> ModuleLoadData;
        public required delegate* unmanaged<IntPtr*, IntPtr, byte*, int> ModuleGetFunction;
        public required delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int> LaunchKernel;
        public required delegate* unmanaged<IntPtr, int, int, int> FuncSetAttribute;
        public required delegate* unmanaged<IntPtr*, uint, int> EventCreate;
        public required delegate* unmanaged<IntPtr, IntPtr, int> EventRecord;
        public required delegate* unmanaged<IntPtr, int> EventSynchronize;
        public required delegate* unmanaged<float*, IntPtr, IntPtr, int> EventElapsedTime;
        public required delegate* unmanaged<IntPtr, int> EventDestroy;
        public required delegate* unmanaged<int, byte**, int> GetErrorName;
        public required delegate* unmanaged<int, byte**, int> GetErrorString;
    }

    public static Api Functions => Loaded.Value;

    /// <summary>Whether a driver can be loaded at all (no exception).</summary>
    public static bool TryLoad(out string? problem)
    {
        try
        {
            _ = Loaded.Value;
            problem = null;
            return true;
        }
        catch (FloraException e)
        {
            problem = e.Message;
            return false;
        }
    }

    private static Api Load()
    {
        var lib = NativeLibraryHandle.TryLoad(NativeLibraryHandle.Candidates("libcuda.so.1", "libcuda.so"), out string tried)
            ?? throw new FloraException($"no CUDA driver found: tried {tried}");
        return new Api
        {
            Path = lib.Path,
            Init = (delegate* unmanaged<uint, int>)lib.Export("cuInit"),
            DriverGetVersion = (delegate* unmanaged<int*, int>)lib.Export("cuDriverGetVersion"),
            DeviceGetCount = (delegate* unmanaged<int*, int>)lib.Export("cuDeviceGetCount"),
            DeviceGet = (delegate* unmanaged<int*, int, int>)lib.Export("cuDeviceGet"),
            DeviceGetName = (delegate* unmanaged<byte*, int, int, int>)lib.Export("cuDeviceGetName"),
            DeviceGetAttribute = (delegate* unmanaged<int*, int, int, int>)lib.Export("cuDeviceGetAttribute"),
            DevicePrimaryCtxRetain = (delegate* unmanaged<IntPtr*, int, int>)lib.Export("cuDevicePrimaryCtxRetain"),
            CtxSetCurrent = (delegate* unmanaged<IntPtr, int>)lib.Export("cuCtxSetCurrent"),
            CtxSynchronize = (delegate* unmanaged<int>)lib.Export("cuCtxSynchronize"),
            MemAlloc = (delegate* unmanaged<ulong*, nuint, int>)lib.Export("cuMemAlloc_v2"),
            MemFree = (delegate* unmanaged<ulong, int>)lib.Export("cuMemFree_v2"),
            MemGetInfo = (delegate* unmanaged<nuint*, nuint*, int>)lib.Export("cuMemGetInfo_v2"),
            MemcpyHtoD = (delegate* unmanaged<ulong, void*, nuint, int>)lib.Export("cuMemcpyHtoD_v2"),
            MemcpyDtoH = (delegate* unmanaged<void*, ulong, nuint, int>)lib.Export("cuMemcpyDtoH_v2"),
            MemcpyDtoD = (delegate* unmanaged<ulong, ulong, nuint, int>)lib.Export("cuMemcpyDtoD_v2"),
            MemsetD32 = (delegate* unmanaged<ulong, uint, nuint, int>)lib.Export("cuMemsetD32_v2"),
            ModuleLoadData = (delegate* unmanaged<IntPtr*, void*, int>)lib.Export("cuModuleLoadData"),
            ModuleGetFunction = (delegate* unmanaged<IntPtr*, IntPtr, byte*, int>)lib.Export("cuModuleGetFunction"),
            LaunchKernel = (delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int>)lib.Export("cuLaunchKernel"),
            FuncSetAttribute = (delegate* unmanaged<IntPtr, int, int, int>)lib.Export("cuFuncSetAttribute"),
            EventCreate = (delegate* unmanaged<IntPtr*, uint, int>)lib.Export("cuEventCreate"),
            EventRecord = (delegate* unmanaged<IntPtr, IntPtr, int>)lib.Export("cuEventRecord"),
            EventSynchronize = (delegate* unmanaged<IntPtr, int>)lib.Export("cuEventSynchronize"),
            EventElapsedTime = (delegate* unmanaged<float*, IntPtr, IntPtr, int>)lib.Export("cuEventElapsedTime"),
            EventDestroy = (delegate* unmanaged<IntPtr, int>)lib.Export("cuEventDestroy_v2"),
            GetErrorName = (delegate* unmanaged<int, byte**, int>)lib.Export("cuGetErrorName"),
            GetErrorString = (delegate* unmanaged<int, byte**, int>)lib.Export("cuGetErrorString"),
        };
    }

    public const int OutOfMemory = 2;

    /// <summary>Throws a <see cref="CudaException"/> unless <paramref name="result"/> is CUDA_SUCCESS.</summary>
    public static void Check(int result, string call)
    {
        if (result == 0) return;
        throw new CudaException(result, $"{call} failed: {ErrorText(result)}");
    }

    public static string ErrorText(int result)
    {
        byte* name = null, text = null;
        var api = Loaded.Value;
        api.GetErrorName(result, &name);
        api.GetErrorString(result, &text);
        string n = name == null ? $"error {result}" : new string((sbyte*)name);
        string t = text == null ? "" : new string((sbyte*)text);
        return $"{n} ({t})";
    }
}

/// <summary>A CUDA driver, NVRTC or cuBLAS call failed; the message names the call and its arguments.</summary>
public sealed class CudaException : FloraException
{
    /// <summary>A failure with the library's status <paramref name="code"/> and a message naming the call.</summary>
    public CudaException(int code, string message) : base(message) => Code = code;

    /// <summary>
    /// The status the failed call returned, in the numbering of the library that returned it (CUresult for the driver,
    /// nvrtcResult, cublasStatus_t or cusolverStatus_t); the message says which library it was.
    /// </summary>
    public int Code { get; }
}
