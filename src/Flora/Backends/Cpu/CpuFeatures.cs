using X86 = System.Runtime.Intrinsics.X86;

namespace Flora.Backends.Cpu;

/// <summary>
/// What the x86 processor says about itself (CPUID vendor, family and model) and which vector instruction sets
/// both it and the operating system support, as far as the choice of OpenBLAS kernels needs it.
/// </summary>
/// <param name="Vendor">CPUID leaf 0 vendor string, e.g. "GenuineIntel" or "AuthenticAMD"; empty off x86.</param>
/// <param name="Family">Display family (base family plus extended family when the base is 0xF), e.g. 0x1A for AMD Zen 5.</param>
/// <param name="Model">Display model (with the extended model bits for families 6 and 0xF and above).</param>
/// <param name="Avx">AVX usable.</param>
/// <param name="Avx2">AVX2 usable.</param>
/// <param name="Fma">FMA3 usable.</param>
/// <param name="Avx512F">AVX-512 Foundation usable.</param>
/// <param name="Avx512BW">AVX-512 byte and word instructions usable.</param>
/// <param name="Avx512DQ">AVX-512 doubleword and quadword instructions usable.</param>
/// <param name="Avx512VL">AVX-512 vector-length extensions usable.</param>
/// <param name="Avx512CD">AVX-512 conflict detection usable.</param>
/// <param name="Avx512Bf16">AVX512_BF16 reported by CPUID leaf 7 sub-leaf 1 (EAX bit 5), with AVX-512 usable.</param>
internal sealed record CpuFeatures(
    string Vendor, int Family, int Model,
    bool Avx, bool Avx2, bool Fma,
    bool Avx512F, bool Avx512BW, bool Avx512DQ, bool Avx512VL, bool Avx512CD, bool Avx512Bf16)
{
    /// <summary>The AVX-512 subsets OpenBLAS's SkylakeX kernels are built for (F, BW, DQ, VL and CD).</summary>
    public bool Avx512 => Avx512F && Avx512BW && Avx512DQ && Avx512VL && Avx512CD;

    /// <summary>True for a processor made by Intel.</summary>
    public bool IsIntel => Vendor == "GenuineIntel";

    /// <summary>True for a processor made by AMD.</summary>
    public bool IsAmd => Vendor == "AuthenticAMD";

    /// <summary>This process's processor. The instruction-set flags come from .NET, which also checks that the operating system saves the registers (and honours DOTNET_EnableAVX512F=0 and the like).</summary>
    public static CpuFeatures Detect()
    {
        if (!X86.X86Base.IsSupported) return new CpuFeatures("", 0, 0, false, false, false, false, false, false, false, false, false);
        var (maxLeaf, ebx, ecx, edx) = X86.X86Base.CpuId(0, 0);
        Span<byte> vendor = stackalloc byte[12];
        BitConverter.TryWriteBytes(vendor[..4], ebx);
        BitConverter.TryWriteBytes(vendor[4..8], edx);
        BitConverter.TryWriteBytes(vendor[8..], ecx);
        int signature = X86.X86Base.CpuId(1, 0).Eax;
        int baseFamily = (signature >> 8) & 0xF, baseModel = (signature >> 4) & 0xF;
        int family = baseFamily == 0xF ? baseFamily + ((signature >> 20) & 0xFF) : baseFamily;
        int model = baseFamily is 0x6 or 0xF ? baseModel | (((signature >> 16) & 0xF) << 4) : baseModel;
        bool avx512 = X86.Avx512F.IsSupported;
        bool bf16 = avx512 && maxLeaf >= 7 && X86.X86Base.CpuId(7, 0).Eax >= 1 && (X86.X86Base.CpuId(7, 1).Eax & (1 << 5)) != 0;
        return new CpuFeatures(System.Text.Encoding.ASCII.GetString(vendor), family, model,
            X86.Avx.IsSupported, X86.Avx2.IsSupported, X86.Fma.IsSupported,
            avx512, X86.Avx512BW.IsSupported, X86.Avx512DQ.IsSupported, X86.Avx512F.VL.IsSupported, X86.Avx512CD.IsSupported, bf16);
    }

    /// <summary>"AuthenticAMD family 0x1A model 0x02: AVX2 FMA AVX-512 AVX512_BF16", for reports.</summary>
    public override string ToString()
    {
        var sets = new List<string>();
        if (Avx) sets.Add("AVX");
        if (Avx2) sets.Add("AVX2");
        if (Fma) sets.Add("FMA");
        if (Avx512) sets.Add("AVX-512");
        else if (Avx512F) sets.Add("AVX-512F (partial)");
        if (Avx512Bf16) sets.Add("AVX512_BF16");
        return $"{(Vendor.Length == 0 ? "not x86" : Vendor)} family 0x{Family:X2} model 0x{Model:X2}: {(sets.Count == 0 ? "no AVX" : string.Join(' ', sets))}";
    }
}
