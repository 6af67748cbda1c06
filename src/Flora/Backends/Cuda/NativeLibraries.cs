using System.Runtime.InteropServices;

namespace Flora.Backends.Cuda;

/// <summary>Loads a native library by trying known names and paths, and binds its exports.</summary>
internal sealed class NativeLibraryHandle
{
    private readonly IntPtr _handle;

    private NativeLibraryHandle(IntPtr handle, string path)
    {
        _handle = handle;
        Path = path;
    }

    public string Path { get; }

    /// <summary>The first of <paramref name="candidates"/> that loads, or null; <paramref name="tried"/> lists them for the error message.</summary>
    public static NativeLibraryHandle? TryLoad(IEnumerable<string> candidates, out string tried)
    {
        var names = candidates.ToArray();
        tried = string.Join(", ", names);
        foreach (string name in names)
            if (NativeLibrary.TryLoad(name, out IntPtr handle)) return new NativeLibraryHandle(handle, name);
        return null;
    }

    /// <summary>The address of <paramref name="name"/>; throws naming the symbol and the library when it is missing.</summary>
    public IntPtr Export(string name) =>
        NativeLibrary.TryGetExport(_handle, name, out IntPtr address) ? address
        : throw new FloraException($"{Path} has no symbol {name}: the library is older than Flora needs");

    public IntPtr TryExport(string name) => NativeLibrary.TryGetExport(_handle, name, out IntPtr address) ? address : IntPtr.Zero;

    /// <summary>Candidate file names: plain names first, then the same names in the usual CUDA directories.</summary>
    public static IEnumerable<string> Candidates(params string[] names)
    {
        string[] directories = ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu", "/usr/local/nvidia/lib64"];
        foreach (string n in names) yield return n;
        foreach (string d in directories)
            foreach (string n in names) yield return System.IO.Path.Combine(d, n);
    }
}
