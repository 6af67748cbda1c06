namespace Flora.Backends.Cpu;

/// <summary>What to do about the kernel family of the OpenBLAS that was loaded.</summary>
/// <param name="Upgrade">The family to load instead (an <c>OPENBLAS_CORETYPE</c> name), or null to keep the loaded one.</param>
/// <param name="Reason">How the family in use came about: "detected", "user OPENBLAS_CORETYPE=...", "upgraded from Prescott".</param>
internal sealed record BlasKernelDecision(string? Upgrade, string Reason);

/// <summary>
/// The rule that picks OpenBLAS's x86-64 kernel family (a pure function of the family OpenBLAS chose, the CPU and the
/// user's <c>OPENBLAS_CORETYPE</c>).
/// <para>
/// OpenBLAS built with DYNAMIC_ARCH picks its kernels from the CPU model. A release that does not know a newer CPU
/// falls back to something older: Debian 12's 0.3.21 runs a Xeon with AVX-512 on its generic SSE3 "Prescott" kernels
/// (about 40 GFLOP/s against 290 with "Cooperlake" on the same two cores), and an AMD EPYC of family 0x1A (Zen 5) on
/// its AVX2 "Haswell" kernels (about 125 GFLOP/s on one core against 245 with "SkylakeX" or "Cooperlake", in every
/// product shape of the default model).
/// </para>
/// <para>
/// The rule: a generic (SSE or AVX-only) family is replaced by the best family the CPU's instruction sets allow;
/// an AVX2 family (Haswell, Zen) is replaced by an AVX-512 one only on CPUs where that was measured to be faster: Intel
/// (AVX-512 cores run 512-bit vectors at full width) and AMD from family 0x1A (Zen 5). AMD family 0x19 (Zen 4, AVX-512
/// on 256-bit halves) is left as OpenBLAS chose it because it has not been measured; OPENBLAS_CORETYPE=SkylakeX
/// tries it. A family Flora does not know (another architecture, a newer release's name) is never replaced, and a
/// user's own OPENBLAS_CORETYPE always wins.
/// </para>
/// </summary>
internal static class BlasKernelRule
{
    /// <summary>Families in rising order of speed where the CPU supports them, as <c>OPENBLAS_CORETYPE</c> spells them.</summary>
    public static readonly IReadOnlyList<string> Ladder = ["Prescott", "Sandybridge", "Haswell", "SkylakeX", "Cooperlake"];

    /// <summary>
    /// The rung of an x86-64 family name from <c>openblas_get_corename</c> (case-insensitive): 0 for the SSE families,
    /// 1 for Sandybridge, 2 for the AVX2 families, 3 for SkylakeX, 4 for Cooperlake and SapphireRapids; null for a
    /// name Flora does not rank. AMD's own families for its 2011-2015 cores (Bulldozer to Excavator) are tuned for
    /// the CPU OpenBLAS found, so they rank with Haswell and are never replaced by it.
    /// </summary>
    public static int? Rank(string family) => family.ToLowerInvariant() switch
    {
        "katmai" or "coppermine" or "northwood" or "prescott" or "banias" or "atom" or "core2" or "penryn" or "dunnington"
            or "nehalem" or "athlon" or "opteron" or "opteron_sse3" or "opteron(sse3)" or "barcelona" or "nano" or "bobcat" => 0,
        "sandybridge" => 1,
        "haswell" or "zen" or "bulldozer" or "piledriver" or "steamroller" or "excavator" => 2,
        "skylakex" => 3,
        "cooperlake" or "sapphirerapids" => 4,
        _ => null,
    };

    /// <summary>True when the CPU can run the family's kernels at all (an unsupported family dies of an illegal instruction).</summary>
    public static bool Supports(CpuFeatures cpu, string family) => family.ToLowerInvariant() switch
    {
        "prescott" => cpu.Vendor.Length > 0,
        "sandybridge" => cpu.Avx,
        "haswell" or "zen" => cpu.Avx2 && cpu.Fma,
        "skylakex" => cpu.Avx512 && cpu.Avx2 && cpu.Fma,
        "cooperlake" => cpu.Avx512 && cpu.Avx512Bf16 && cpu.Avx2 && cpu.Fma,
        _ => false,
    };

    /// <summary>True where AVX-512 kernels were measured faster than AVX2 ones: Intel, and AMD from family 0x1A (Zen 5).</summary>
    public static bool Avx512Pays(CpuFeatures cpu) => cpu.IsIntel || (cpu.IsAmd && cpu.Family >= 0x1A);

    /// <summary>The best family for this CPU under the rule, or null when it supports none above Prescott's SSE3.</summary>
    public static string? Best(CpuFeatures cpu)
    {
        for (int i = Ladder.Count - 1; i >= 1; i--)
        {
            if (Rank(Ladder[i]) >= 3 && !Avx512Pays(cpu)) continue;
            if (Supports(cpu, Ladder[i])) return Ladder[i];
        }
        return null;
    }

    /// <summary>
    /// The decision for <paramref name="loaded"/> (what <c>openblas_get_corename</c> of the loaded library says) on
    /// <paramref name="cpu"/>, given the user's <c>OPENBLAS_CORETYPE</c> (null or empty when unset).
    /// </summary>
    public static BlasKernelDecision Decide(string loaded, CpuFeatures cpu, string? userCoreType)
    {
        string? best = Best(cpu);
        bool better = best is not null && Rank(loaded) is int current && Rank(best) > current;
        if (!string.IsNullOrEmpty(userCoreType))
            return new BlasKernelDecision(null, $"user OPENBLAS_CORETYPE={userCoreType}{(better ? $"; Flora's rule would choose {best}" : "")}");
        return better ? new BlasKernelDecision(best, $"upgraded from {loaded}") : new BlasKernelDecision(null, "detected");
    }

    /// <summary>
    /// Applies <see cref="Decide"/> to <paramref name="detected"/>, the instance OpenBLAS initialised by itself with
    /// kernel family <paramref name="detectedCore"/>: where an upgrade is due, <paramref name="loadFamily"/> makes a
    /// checked instance of that family or says why it could not, and the detected instance is kept in that case.
    /// Returns the instance to use and how its family came about.
    /// </summary>
    public static (T Chosen, string Reason) Choose<T>(T detected, string detectedCore, CpuFeatures cpu, string? userCoreType,
        Func<string, (T? Instance, string? Failure)> loadFamily) where T : class
    {
        var decision = Decide(detectedCore, cpu, userCoreType);
        if (decision.Upgrade is not string family) return (detected, decision.Reason);
        var (upgraded, failure) = loadFamily(family);
        return upgraded is null ? (detected, $"kept {detectedCore}: {failure}") : (upgraded, decision.Reason);
    }
}
