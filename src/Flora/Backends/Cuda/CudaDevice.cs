using System.Reflection;
using System.Security.Cryptography;
using System.Text;

namespace Flora.Backends.Cuda;

/// <summary>
/// One CUDA device: its primary context (current on the calling thread), its properties, and the
/// project's kernels, compiled from the embedded .cu sources with NVRTC once per process and cached
/// on disk by a hash of source, options, architecture and compiler version.
/// </summary>
internal sealed unsafe class CudaDevice
{
    private readonly Dictionary<string, IntPtr> _functions = new();
    private IntPtr _module;

    private CudaDevice(int ordinal, IntPtr context, string name, int major, int minor, int multiprocessors, long totalMemory)
    {
        Ordinal = ordinal;
        Context = context;
        Name = name;
        Major = major;
        Minor = minor;
        Multiprocessors = multiprocessors;
        TotalMemory = totalMemory;
    }

    public int Ordinal { get; }
    public IntPtr Context { get; }
    public string Name { get; }
    public int Major { get; }
    public int Minor { get; }
    public int Multiprocessors { get; }
    public long TotalMemory { get; }
    public string Architecture => $"sm_{Major}{Minor}";

    public static CudaDevice Open(int ordinal = 0)
    {
        var d = Driver.Functions;
        Driver.Check(d.Init(0), "cuInit(0)");
        int count;
        Driver.Check(d.DeviceGetCount(&count), "cuDeviceGetCount");
        if (ordinal >= count) throw new FloraException($"CUDA device {ordinal} requested, but the driver sees {count} device(s)");
        int device;
        Driver.Check(d.DeviceGet(&device, ordinal), $"cuDeviceGet({ordinal})");
        byte* name = stackalloc byte[256];
        Driver.Check(d.DeviceGetName(name, 256, device), "cuDeviceGetName");
        int major, minor, sms;
        Driver.Check(d.DeviceGetAttribute(&major, 75, device), "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MAJOR)");
        Driver.Check(d.DeviceGetAttribute(&minor, 76, device), "cuDeviceGetAttribute(COMPUTE_CAPABILITY_MINOR)");
        Driver.Check(d.DeviceGetAttribute(&sms, 16, device), "cuDeviceGetAttribute(MULTIPROCESSOR_COUNT)");
        IntPtr context;
        Driver.Check(d.DevicePrimaryCtxRetain(&context, device), $"cuDevicePrimaryCtxRetain({ordinal})");
        Driver.Check(d.CtxSetCurrent(context), "cuCtxSetCurrent");
        nuint free, total;
        Driver.Check(d.MemGetInfo(&free, &total), "cuMemGetInfo");
        return new CudaDevice(ordinal, context, new string((sbyte*)name), major, minor, sms, (long)total);
    }

    /// <summary>Makes this device's context current on the calling thread (contexts are per thread).</summary>
    public void MakeCurrent() => Driver.Check(Driver.Functions.CtxSetCurrent(Context), "cuCtxSetCurrent");

    public (long Free, long Total) MemoryInfo()
    {
        nuint free, total;
        Driver.Check(Driver.Functions.MemGetInfo(&free, &total), "cuMemGetInfo");
        return ((long)free, (long)total);
    }

    public void Synchronize() => Driver.Check(Driver.Functions.CtxSynchronize(), "cuCtxSynchronize");

    /// <summary>Kernel sources in compilation order: the common header, then every .cu file.</summary>
    internal static string KernelSource()
    {
        var assembly = typeof(CudaDevice).Assembly;
        string Read(string name)
        {
            using var stream = assembly.GetManifestResourceStream("cuda/" + name) ?? throw new InvalidOperationException($"kernel source {name} is not embedded");
            using var reader = new StreamReader(stream);
            return $"// ---- {name}\n" + reader.ReadToEnd() + "\n";
        }
        var sources = assembly.GetManifestResourceNames().Where(n => n.StartsWith("cuda/", StringComparison.Ordinal) && n.EndsWith(".cu", StringComparison.Ordinal))
            .Select(n => n["cuda/".Length..]).OrderBy(n => n == "philox.cu" ? "" : n, StringComparer.Ordinal);
        return Read("common.cuh") + string.Concat(sources.Select(Read));
    }

    /// <summary>Compiles (or loads from the cache) the kernel module and loads it into the context.</summary>
    public string LoadKernels()
    {
        string source = KernelSource();
        string[] options = ["-lineinfo"];
        string compiler = Nvrtc.Describe();
        string key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(source + string.Join(' ', options) + Architecture + compiler)))[..32].ToLowerInvariant();
        string cacheDirectory = Environment.GetEnvironmentVariable("FLORA_KERNEL_CACHE")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "flora", "kernels");
        string cached = Path.Combine(cacheDirectory, $"{key}.{Architecture}.cubin");
        byte[] cubin;
        string origin;
        if (File.Exists(cached))
        {
            cubin = File.ReadAllBytes(cached);
            origin = $"cached {cached}";
        }
        else
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            cubin = Nvrtc.Compile(source, "flora_kernels.cu", Architecture, options);
            origin = $"compiled by {compiler} in {clock.Elapsed.TotalSeconds:F1} s";
            try
            {
                Directory.CreateDirectory(cacheDirectory);
                File.WriteAllBytes(cached + ".tmp", cubin);
                File.Move(cached + ".tmp", cached, overwrite: true);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        IntPtr module;
        fixed (byte* c = cubin) Driver.Check(Driver.Functions.ModuleLoadData(&module, c), $"cuModuleLoadData({cubin.Length} bytes)");
        _module = module;
        return origin;
    }

    public IntPtr Function(string name)
    {
        if (_functions.TryGetValue(name, out IntPtr f)) return f;
        byte[] bytes = Encoding.ASCII.GetBytes(name + "\0");
        fixed (byte* n = bytes) Driver.Check(Driver.Functions.ModuleGetFunction(&f, _module, n), $"cuModuleGetFunction({name})");
        _functions[name] = f;
        return f;
    }

    /// <summary>Lets <paramref name="kernel"/> use <paramref name="bytes"/> of dynamic shared memory (beyond the default 48 KiB).</summary>
    public void AllowSharedMemory(string kernel, int bytes)
    {
        const int MaxDynamicSharedSizeBytes = 8;                       // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
        Driver.Check(Driver.Functions.FuncSetAttribute(Function(kernel), MaxDynamicSharedSizeBytes, bytes), $"cuFuncSetAttribute({kernel}, max dynamic shared memory = {bytes})");
    }

    /// <summary>Launches <paramref name="kernel"/> on the default stream; arguments are device pointers (ulong), int, uint, float or double.</summary>
    public void Launch(string kernel, uint gridX, uint gridY, uint block, uint sharedBytes, params object[] args)
    {
        IntPtr function = Function(kernel);
        ulong* values = stackalloc ulong[args.Length];
        void** pointers = stackalloc void*[args.Length];
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case ulong u: values[i] = u; break;
                case int n: *(int*)&values[i] = n; break;
                case uint n: *(uint*)&values[i] = n; break;
                case float f: *(float*)&values[i] = f; break;
                case double d: *(double*)&values[i] = d; break;
                case long l: *(long*)&values[i] = l; break;
                default: throw new ArgumentException($"kernel {kernel}: argument {i} of type {args[i]?.GetType().Name ?? "null"} cannot be passed");
            }
            pointers[i] = &values[i];
        }
        int result = Driver.Functions.LaunchKernel(function, gridX, gridY, 1, block, 1, 1, sharedBytes, IntPtr.Zero, pointers, null);
        if (result != 0) Driver.Check(result, $"cuLaunchKernel({kernel}, grid=({gridX}, {gridY}), block={block}, shared={sharedBytes})");
    }
}
