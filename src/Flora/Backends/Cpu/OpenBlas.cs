using System.Runtime.InteropServices;

namespace Flora.Backends.Cpu;

/// <summary>
/// OpenBLAS loaded at run time with <see cref="NativeLibrary"/> (Debian package libopenblas0-pthread).
/// Only the calls Flora uses are bound, as unmanaged function pointers.
/// <para>
/// At load Flora reads which kernel family OpenBLAS chose (<c>openblas_get_corename</c>) and, where
/// <see cref="BlasKernelRule"/> says the CPU has a faster one, loads a second instance with that family, checks it
/// with <see cref="BlasKnownAnswer"/> and uses it; otherwise, or if anything about the second instance fails, the
/// first one. <see cref="KernelFamily"/> and <see cref="KernelChoice"/> say what happened.
/// </para>
/// </summary>
internal static unsafe class OpenBlas
{
    public const string DebianPackage = "libopenblas0-pthread";

    /// <summary>The environment variable OpenBLAS reads once, when it initialises, to force a kernel family.</summary>
    public const string CoreTypeVariable = "OPENBLAS_CORETYPE";

    private static readonly string[] Candidates =
    [
        "libopenblas.so.0",
        "libopenblas.so",
        "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
        "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
        "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
        "libopenblas.dylib",
        "libopenblas.dll",
    ];

    // CBLAS enums.
    private const int RowMajor = 101, NoTrans = 111, Trans = 112;

    private static readonly Lazy<Selection> Loaded = new(() => Select(Load(Candidates)), LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Instances loaded on request (<see cref="Use"/>, <see cref="Peek"/>), by family; guarded by itself.</summary>
    private static readonly Dictionary<string, Api> Extra = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The instance <see cref="Sgemm"/> calls when not the selected one (<see cref="Use"/>).</summary>
    private static volatile Api? _override;

    private sealed class Api
    {
        public required IntPtr Handle;
        public required string Path;
        public required string CoreName;
        public required delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> Sgemm;
        public required delegate* unmanaged<int> GetNumThreads;

        /// <summary>This instance's product with managed operands, for <see cref="BlasKnownAnswer"/>.</summary>
        public SgemmCall Call => (transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) =>
        {
            fixed (float* pa = a) fixed (float* pb = b) fixed (float* pc = c)
                Sgemm(RowMajor, transA ? Trans : NoTrans, transB ? Trans : NoTrans, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc);
        };
    }

    private sealed record Selection(Api Chosen, Api Detected, string Reason, CpuFeatures Cpu);

    /// <summary>The library path that was loaded; loads it on first use.</summary>
    public static string LibraryPath => Loaded.Value.Detected.Path;

    /// <summary>Threads OpenBLAS uses for one call.</summary>
    public static int Threads => Active.GetNumThreads is null ? 1 : Active.GetNumThreads();

    /// <summary>The kernel family in use, as <c>openblas_get_corename</c> of the instance in use says ("Cooperlake", "Haswell", ...).</summary>
    public static string KernelFamily => Active.CoreName;

    /// <summary>How the selected family came about: "detected", "upgraded from Haswell", "user OPENBLAS_CORETYPE=Haswell", or "kept ...: why".</summary>
    public static string KernelChoice => Loaded.Value.Reason;

    /// <summary>The processor as the choice saw it.</summary>
    public static CpuFeatures Cpu => Loaded.Value.Cpu;

    /// <summary>"Cooperlake kernels (upgraded from Haswell)", for the headers of train and bench.</summary>
    public static string KernelDescription =>
        _override is { } o ? $"{o.CoreName} kernels (chosen for this run; selected at load: {Loaded.Value.Chosen.CoreName}, {KernelChoice})"
        : $"{KernelFamily} kernels ({KernelChoice})";

    private static Api Active => _override ?? Loaded.Value.Chosen;

    /// <summary>Loads the first of <paramref name="candidates"/> that exports cblas_sgemm, or throws naming all of them and the package.</summary>
    internal static void Probe(IReadOnlyList<string> candidates) => Load(candidates);

    private static Api Load(IReadOnlyList<string> candidates)
    {
        foreach (string name in candidates)
        {
            if (!NativeLibrary.TryLoad(name, out IntPtr handle)) continue;
            if (Bind(handle, name) is Api api) return api;
        }
        throw new FloraException(
            $"OpenBLAS not found (tried {string.Join(", ", candidates)}): install it with 'sudo apt-get install {DebianPackage}'");
    }

    private static Api? Bind(IntPtr handle, string path)
    {
        if (!NativeLibrary.TryGetExport(handle, "cblas_sgemm", out IntPtr sgemm)) return null;
        NativeLibrary.TryGetExport(handle, "openblas_get_num_threads", out IntPtr getThreads);
        string core = NativeLibrary.TryGetExport(handle, "openblas_get_corename", out IntPtr corename)
            ? Marshal.PtrToStringUTF8(((delegate* unmanaged<IntPtr>)corename)()) ?? "unknown" : "unknown";
        return new Api
        {
            Handle = handle,
            Path = path,
            CoreName = core,
            Sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)sgemm,
            GetNumThreads = (delegate* unmanaged<int>)getThreads,
        };
    }

    /// <summary>Applies <see cref="BlasKernelRule"/> to the instance OpenBLAS initialised by itself.</summary>
    private static Selection Select(Api detected)
    {
        var cpu = CpuFeatures.Detect();
        var (chosen, reason) = BlasKernelRule.Choose(detected, detected.CoreName, cpu, NativeEnvironment.Get(CoreTypeVariable),
            family => LoadFamily(detected, family));
        return new Selection(chosen, detected, reason, cpu);
    }

    /// <summary>
    /// A fresh instance of the library <paramref name="original"/> came from, initialised with kernel family
    /// <paramref name="family"/> and checked with <see cref="BlasKnownAnswer"/>; or null and why not.
    /// <para>
    /// OpenBLAS reads OPENBLAS_CORETYPE with getenv once, in its load-time constructor, so the variable has to be in the
    /// native environment (setenv; .NET's Environment.SetEnvironmentVariable only changes the runtime's own copy on
    /// Unix) and the library has to be initialised again, which an instance already loaded never is. dlopen returns
    /// the loaded instance for the same path, for another name of it (a link: the loader compares device and inode)
    /// and for the same soname, so the fresh instance comes from a private copy of the file in a new temporary
    /// directory, which is deleted as soon as it is mapped (the mapping outlives the name). Alternatives not taken:
    /// calling OpenBLAS's exported gotoblas_dynamic_quit/init again re-points a live instance's internals underneath
    /// its thread pool and buffers; dlmopen into a new link-map namespace also loads a second C library. The variable
    /// gets its previous value (normally none) back right after the load so that nothing started later inherits it.
    /// (setenv is not safe against a getenv running at the same moment in another thread; this runs once, when the
    /// first CPU backend is made, before Flora starts threads of its own.)
    /// </para>
    /// </summary>
    private static (Api? Instance, string? Failure) LoadFamily(Api original, string family)
    {
        string? file = NativeEnvironment.FileOf((IntPtr)original.Sgemm);
        if (file is null || !File.Exists(file)) return (null, $"cannot tell which file {original.Path} was loaded from");
        string directory = Path.Combine(Path.GetTempPath(), $"flora-openblas-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(directory);
            string copy = Path.Combine(directory, Path.GetFileName(file));
            File.Copy(file, copy);
            IntPtr handle;
            string? previous = NativeEnvironment.Get(CoreTypeVariable);
            if (!NativeEnvironment.Set(CoreTypeVariable, family)) return (null, "cannot set OPENBLAS_CORETYPE in the native environment");
            try
            {
                if (!NativeLibrary.TryLoad(copy, out handle)) return (null, $"a private copy of {file} did not load (is {Path.GetTempPath()} mounted noexec?)");
            }
            finally
            {
                NativeEnvironment.Set(CoreTypeVariable, previous);
            }
            if (Bind(handle, $"{file} (private copy for {family})") is not Api api) return (null, $"the copy of {file} has no cblas_sgemm");
            if (!string.Equals(api.CoreName, family, StringComparison.OrdinalIgnoreCase))
                return (null, $"OpenBLAS initialised the copy with {api.CoreName} instead of {family}");
            var check = BlasKnownAnswer.Check(api.Call);
            return check.Passed ? (api, null) : (null, $"{family} failed the known-answer product ({check})");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DllNotFoundException or BadImageFormatException)
        {
            return (null, $"a private copy of {file} with {family} kernels could not be made ({e.Message})");
        }
        finally
        {
            try { if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>
    /// Makes later products use <paramref name="family"/>: "auto" (the family selected at load), "detected" (the one
    /// OpenBLAS chose by itself), "generic" (Prescott, its SSE3 fallback) or an OPENBLAS_CORETYPE name that this CPU
    /// supports, loaded as its own instance and checked like an upgrade. Returns the family now in use. For
    /// benchmarks: it changes the kernels of every product in the process, so nothing else may be computing.
    /// </summary>
    public static string Use(string family)
    {
        var selection = Loaded.Value;
        if (family.Trim().Equals("auto", StringComparison.OrdinalIgnoreCase)) { _override = null; return selection.Chosen.CoreName; }
        var api = Instance(family);
        _override = api;
        return api.CoreName;
    }

    /// <summary>The kernel family of <see cref="Instance"/>(<paramref name="family"/>) and its product, without using it for anything else.</summary>
    internal static (string CoreName, SgemmCall Product) Peek(string family)
    {
        var api = Instance(family);
        return (api.CoreName, api.Call);
    }

    /// <summary>The product of the instance in use, for checks.</summary>
    internal static SgemmCall Product => Active.Call;

    private static Api Instance(string family)
    {
        var selection = Loaded.Value;
        string key = family.Trim();
        if (key.Equals("auto", StringComparison.OrdinalIgnoreCase)) return selection.Chosen;
        if (key.Equals("detected", StringComparison.OrdinalIgnoreCase)) return selection.Detected;
        if (key.Equals("generic", StringComparison.OrdinalIgnoreCase)) key = BlasKernelRule.Ladder[0];
        if (key.Equals(selection.Chosen.CoreName, StringComparison.OrdinalIgnoreCase)) return selection.Chosen;
        if (key.Equals(selection.Detected.CoreName, StringComparison.OrdinalIgnoreCase)) return selection.Detected;
        if (BlasKernelRule.Rank(key) is null || !BlasKernelRule.Supports(selection.Cpu, key))
            throw new FloraException($"BLAS kernel family '{family}' is not one this CPU ({selection.Cpu}) can run: use auto, detected, generic or one of " +
                string.Join(", ", BlasKernelRule.Ladder.Where(f => BlasKernelRule.Supports(selection.Cpu, f))));
        lock (Extra)
        {
            if (!Extra.TryGetValue(key, out var api))
            {
                var (loaded, failure) = LoadFamily(selection.Detected, key);
                api = loaded ?? throw new FloraException($"BLAS kernel family {key}: {failure}");
                Extra[key] = api;
            }
            return api;
        }
    }

    /// <summary>Throws the clear "not found" error now rather than inside the first matrix product.</summary>
    public static void EnsureLoaded() => _ = Loaded.Value;

    /// <summary>An export of the instance selected at load (LAPACK routines), or zero when it has none.</summary>
    public static IntPtr Export(string name) => NativeLibrary.TryGetExport(Loaded.Value.Chosen.Handle, name, out IntPtr address) ? address : IntPtr.Zero;

    /// <summary>Row-major C (m x n) = alpha op(A) op(B) + beta C with op(A) (m x k), op(B) (k x n).</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc)
    {
        Active.Sgemm(RowMajor, transA ? Trans : NoTrans, transB ? Trans : NoTrans,
            m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    }
}
