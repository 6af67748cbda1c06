using System.Runtime.InteropServices;

namespace Flora.Backends.Cpu;

/// <summary>
/// The C library's own environment (getenv, setenv, unsetenv), which native libraries read, and dladdr. On Unix .NET
/// keeps a private copy of the environment: Environment.SetEnvironmentVariable does not reach getenv. The functions
/// are looked up in the process's global symbol scope (the host program links the C library), so no C library file
/// name (libc.so.6, musl's) is assumed; where one is missing the calls report failure instead of throwing.
/// </summary>
internal static unsafe class NativeEnvironment
{
    [StructLayout(LayoutKind.Sequential)]
    private struct DlInfo
    {
        public IntPtr FileName;
        public IntPtr FileBase;
        public IntPtr SymbolName;
        public IntPtr SymbolAddress;
    }

    private static readonly IntPtr GetEnv = Find("getenv"), SetEnv = Find("setenv"), UnsetEnv = Find("unsetenv"), DlAddr = Find("dladdr");

    private static IntPtr Find(string name) =>
        !OperatingSystem.IsWindows() && NativeLibrary.TryGetExport(NativeLibrary.GetMainProgramHandle(), name, out IntPtr address) ? address : IntPtr.Zero;

    /// <summary>The variable as native code sees it (falling back to .NET's copy where getenv is not found); null when unset.</summary>
    public static string? Get(string name)
    {
        if (GetEnv == IntPtr.Zero) return Environment.GetEnvironmentVariable(name);
        IntPtr key = Marshal.StringToCoTaskMemUTF8(name);
        try { return Marshal.PtrToStringUTF8(((delegate* unmanaged<IntPtr, IntPtr>)GetEnv)(key)); }
        finally { Marshal.FreeCoTaskMem(key); }
    }

    /// <summary>Sets (or with a null value removes) the variable in the native environment; false when that is not possible here.</summary>
    public static bool Set(string name, string? value)
    {
        if (SetEnv == IntPtr.Zero || UnsetEnv == IntPtr.Zero) return false;
        IntPtr key = Marshal.StringToCoTaskMemUTF8(name), text = value is null ? IntPtr.Zero : Marshal.StringToCoTaskMemUTF8(value);
        try
        {
            return value is null
                ? ((delegate* unmanaged<IntPtr, int>)UnsetEnv)(key) == 0
                : ((delegate* unmanaged<IntPtr, IntPtr, int, int>)SetEnv)(key, text, 1) == 0;
        }
        finally
        {
            Marshal.FreeCoTaskMem(key);
            if (text != IntPtr.Zero) Marshal.FreeCoTaskMem(text);
        }
    }

    /// <summary>The path of the shared object that contains <paramref name="address"/> (dladdr), or null.</summary>
    public static string? FileOf(IntPtr address)
    {
        if (DlAddr == IntPtr.Zero || address == IntPtr.Zero) return null;
        DlInfo info;
        return ((delegate* unmanaged<IntPtr, DlInfo*, int>)DlAddr)(address, &info) != 0 ? Marshal.PtrToStringUTF8(info.FileName) : null;
    }
}
