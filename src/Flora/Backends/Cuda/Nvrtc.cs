using System.Text;

namespace Flora.Backends.Cuda;

/// <summary>NVRTC, the run-time CUDA C++ compiler: turns the project's .cu sources into a cubin for the device.</summary>
internal static unsafe class Nvrtc
{
    private static readonly Lazy<Api> Loaded = new(Load);

    private sealed class Api
    {
        public required string Path;
        public required delegate* unmanaged<int*, int*, int> Version;
        public required delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int> CreateProgram;
        public required delegate* unmanaged<IntPtr, int, byte**, int> CompileProgram;
        public required delegate* unmanaged<IntPtr, nuint*, int> GetProgramLogSize;
        public required delegate* unmanaged<IntPtr, byte*, int> GetProgramLog;
        public required delegate* unmanaged<IntPtr, nuint*, int> GetCubinSize;
        public required delegate* unmanaged<IntPtr, byte*, int> GetCubin;
        public required delegate* unmanaged<IntPtr*, int> DestroyProgram;
        public required delegate* unmanaged<int, byte*> GetErrorString;
    }

    private static Api Load()
    {
        var lib = NativeLibraryHandle.TryLoad(NativeLibraryHandle.Candidates(
                "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"), out string tried)
            ?? throw new FloraException($"NVRTC not found (tried {tried}): install the CUDA toolkit's runtime compiler");
        return new Api
        {
            Path = lib.Path,
            Version = (delegate* unmanaged<int*, int*, int>)lib.Export("nvrtcVersion"),
            CreateProgram = (delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int>)lib.Export("nvrtcCreateProgram"),
            CompileProgram = (delegate* unmanaged<IntPtr, int, byte**, int>)lib.Export("nvrtcCompileProgram"),
            GetProgramLogSize = (delegate* unmanaged<IntPtr, nuint*, int>)lib.Export("nvrtcGetProgramLogSize"),
            GetProgramLog = (delegate* unmanaged<IntPtr, byte*, int>)lib.Export("nvrtcGetProgramLog"),
            GetCubinSize = (delegate* unmanaged<IntPtr, nuint*, int>)lib.Export("nvrtcGetCUBINSize"),
            GetCubin = (delegate* unmanaged<IntPtr, byte*, int>)lib.Export("nvrtcGetCUBIN"),
            DestroyProgram = (delegate* unmanaged<IntPtr*, int>)lib.Export("nvrtcDestroyProgram"),
            GetErrorString = (delegate* unmanaged<int, byte*>)lib.Export("nvrtcGetErrorString"),
        };
    }

    public static string Describe()
    {
        var api = Loaded.Value;
        int major, minor;
        Check(api.Version(&major, &minor), "nvrtcVersion");
        return $"NVRTC {major}.{minor} ({api.Path})";
    }

    /// <summary>Compiles <paramref name="source"/> for <paramref name="architecture"/> (e.g. "sm_90") and returns the cubin.</summary>
    public static byte[] Compile(string source, string name, string architecture, IEnumerable<string> extraOptions)
    {
        var api = Loaded.Value;
        IntPtr program;
        byte[] src = Encoding.UTF8.GetBytes(source + "\0"), nameBytes = Encoding.UTF8.GetBytes(name + "\0");
        fixed (byte* s = src, n = nameBytes)
            Check(api.CreateProgram(&program, s, n, 0, null, null), $"nvrtcCreateProgram({name})");
        try
        {
            var options = new List<string> { $"--gpu-architecture={architecture}", "--std=c++17", "-default-device" };
            options.AddRange(extraOptions);
            var encoded = options.Select(o => Encoding.UTF8.GetBytes(o + "\0")).ToArray();
            var handles = encoded.Select(e => System.Runtime.InteropServices.GCHandle.Alloc(e, System.Runtime.InteropServices.GCHandleType.Pinned)).ToArray();
            try
            {
                byte** pointers = stackalloc byte*[encoded.Length];
                for (int i = 0; i < encoded.Length; i++) pointers[i] = (byte*)handles[i].AddrOfPinnedObject();
                int result = api.CompileProgram(program, encoded.Length, pointers);
                if (result != 0)
                    throw new CudaException(result, $"NVRTC could not compile {name} for {architecture} ({string.Join(' ', options)}): {Log(api, program)}");
            }
            finally
            {
                foreach (var h in handles) h.Free();
            }
            nuint size;
            Check(api.GetCubinSize(program, &size), $"nvrtcGetCUBINSize({name})");
            var cubin = new byte[size];
            fixed (byte* c = cubin) Check(api.GetCubin(program, c), $"nvrtcGetCUBIN({name})");
            return cubin;
        }
        finally
        {
            api.DestroyProgram(&program);
        }
    }

    private static string Log(Api api, IntPtr program)
    {
        nuint size;
        if (api.GetProgramLogSize(program, &size) != 0 || size <= 1) return "(no log)";
        var log = new byte[size];
        fixed (byte* l = log) api.GetProgramLog(program, l);
        return Encoding.UTF8.GetString(log, 0, (int)size - 1).Trim().ReplaceLineEndings(" | ");
    }

    private static void Check(int result, string call)
    {
        if (result == 0) return;
        byte* text = Loaded.Value.GetErrorString(result);
        throw new CudaException(result, $"{call} failed: {(text == null ? $"NVRTC error {result}" : new string((sbyte*)text))}");
    }
}
