using System.Diagnostics;
using Flora.Backends.Cpu;
using Flora.Experiments;

namespace Flora.Tests.Backends;

public class BlasKernelRuleTests
{
    private static CpuFeatures Cpu(string vendor, int family, bool avx = true, bool avx2 = true, bool avx512 = true, bool bf16 = true, bool bw = true) =>
        new(vendor, family, 0x02, avx, avx2 && avx, avx2 && avx, avx512, avx512 && bw, avx512, avx512, avx512, avx512 && bf16);

    private static readonly CpuFeatures XeonBf16 = Cpu("GenuineIntel", 6);
    private static readonly CpuFeatures XeonAvx512 = Cpu("GenuineIntel", 6, bf16: false);
    private static readonly CpuFeatures IntelAvx2 = Cpu("GenuineIntel", 6, avx512: false);
    private static readonly CpuFeatures IntelAvx = Cpu("GenuineIntel", 6, avx2: false, avx512: false);
    private static readonly CpuFeatures IntelSse = Cpu("GenuineIntel", 6, avx: false, avx512: false);
    private static readonly CpuFeatures KnightsLanding = Cpu("GenuineIntel", 6, bf16: false, bw: false);
    private static readonly CpuFeatures Zen5 = Cpu("AuthenticAMD", 0x1A);
    private static readonly CpuFeatures Zen4 = Cpu("AuthenticAMD", 0x19);
    private static readonly CpuFeatures Hygon = Cpu("HygonGenuine", 0x18, avx512: false);

    private static readonly Dictionary<string, CpuFeatures> Cpus = new()
    {
        [nameof(XeonBf16)] = XeonBf16, [nameof(XeonAvx512)] = XeonAvx512, [nameof(IntelAvx2)] = IntelAvx2, [nameof(IntelAvx)] = IntelAvx,
        [nameof(IntelSse)] = IntelSse, [nameof(KnightsLanding)] = KnightsLanding, [nameof(Zen5)] = Zen5, [nameof(Zen4)] = Zen4,
        [nameof(Hygon)] = Hygon, ["Excavator"] = Cpu("AuthenticAMD", 0x15, avx512: false),
    };

    public static TheoryData<string, string, string?> Upgrades => new()
    {
        { "Prescott", "XeonBf16", "Cooperlake" },   // Debian's 0.3.21 on a Xeon it does not know
        { "Prescott", "XeonAvx512", "SkylakeX" },
        { "Haswell", "XeonBf16", "Cooperlake" },
        { "SkylakeX", "XeonBf16", "Cooperlake" },
        { "Cooperlake", "XeonBf16", null },
        { "Prescott", "IntelAvx2", "Haswell" },
        { "Nehalem", "IntelAvx2", "Haswell" },
        { "Haswell", "IntelAvx2", null },
        { "Core2", "IntelAvx", "Sandybridge" },
        { "Sandybridge", "IntelAvx", null },
        { "Prescott", "IntelSse", null },
        { "Prescott", "KnightsLanding", "Haswell" },   // AVX-512F without BW: not what SkylakeX kernels need
        { "Haswell", "Zen5", "Cooperlake" },           // measured about twice as fast on an EPYC of family 0x1A
        { "zen", "Zen5", "Cooperlake" },
        { "Cooperlake", "Zen5", null },
        { "Zen", "Zen4", null },                       // AVX-512 on Zen 4 not measured: left as OpenBLAS chose
        { "Prescott", "Zen4", "Haswell" },
        { "Prescott", "Hygon", "Haswell" },
        { "Excavator", "Excavator", null },
        { "armv8", "XeonBf16", null },                 // a name Flora does not rank is never replaced
        { "Unknown", "XeonBf16", null },
    };

    [Theory]
    [MemberData(nameof(Upgrades))]
    public void Generic_families_give_way_to_the_best_the_cpu_supports_and_avx2_ones_only_where_avx512_was_measured_faster(
        string loaded, string cpu, string? expected)
    {
        var decision = BlasKernelRule.Decide(loaded, Cpus[cpu], userCoreType: null);
        Assert.Equal(expected, decision.Upgrade);
        Assert.Equal(expected is null ? "detected" : $"upgraded from {loaded}", decision.Reason);
    }

    [Fact]
    public void A_users_OPENBLAS_CORETYPE_always_wins_and_the_reason_says_what_the_rule_would_have_chosen()
    {
        var decision = BlasKernelRule.Decide("Prescott", XeonBf16, userCoreType: "Prescott");
        Assert.Null(decision.Upgrade);
        Assert.Equal("user OPENBLAS_CORETYPE=Prescott; Flora's rule would choose Cooperlake", decision.Reason);
        Assert.Equal("user OPENBLAS_CORETYPE=cooperlake", BlasKernelRule.Decide("Cooperlake", XeonBf16, "cooperlake").Reason);
        Assert.Equal("Cooperlake", BlasKernelRule.Decide("Prescott", XeonBf16, "").Upgrade);   // set but empty: unset

        bool loaded = false;
        var (chosen, reason) = BlasKernelRule.Choose("detected instance", "Haswell", Zen5, "Haswell", _ => { loaded = true; return ("other", null); });
        Assert.False(loaded);
        Assert.Equal("detected instance", chosen);
        Assert.StartsWith("user OPENBLAS_CORETYPE=Haswell", reason);
    }

    [Fact]
    public void An_upgrade_that_cannot_be_loaded_or_checked_keeps_the_detected_instance_and_says_why()
    {
        string? asked = null;
        var (chosen, reason) = BlasKernelRule.Choose("detected", "Prescott", XeonBf16, null, family => { asked = family; return (null, "failed the known-answer product"); });
        Assert.Equal("Cooperlake", asked);
        Assert.Equal("detected", chosen);
        Assert.Equal("kept Prescott: failed the known-answer product", reason);

        (chosen, reason) = BlasKernelRule.Choose("detected", "Prescott", XeonBf16, null, family => ($"{family} instance", null));
        Assert.Equal("Cooperlake instance", chosen);
        Assert.Equal("upgraded from Prescott", reason);
    }

    [Fact]
    public void Families_a_cpu_cannot_run_are_never_chosen()
    {
        Assert.False(BlasKernelRule.Supports(XeonAvx512, "Cooperlake"));
        Assert.False(BlasKernelRule.Supports(IntelAvx2, "SkylakeX"));
        Assert.False(BlasKernelRule.Supports(IntelAvx, "Haswell"));
        Assert.True(BlasKernelRule.Supports(IntelSse, "Prescott"));
        Assert.Null(BlasKernelRule.Best(new CpuFeatures("", 0, 0, false, false, false, false, false, false, false, false, false)));
        Assert.Equal("Haswell", BlasKernelRule.Best(Zen4));
    }
}

public class BlasKnownAnswerTests
{
    /// <summary>A plain float32 product with the summation in reverse order: correct, but rounded differently from OpenBLAS.</summary>
    private static void Reference(bool ta, bool tb, int m, int n, int k, float alpha, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> b, int ldb, float beta, Span<float> c, int ldc)
    {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float sum = 0;
                for (int p = k - 1; p >= 0; p--) sum += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
                c[i * ldc + j] = alpha * sum + (beta == 0 ? 0 : beta * c[i * ldc + j]);
            }
    }

    [Fact]
    public void The_loaded_library_and_a_correct_product_with_another_rounding_pass()
    {
        var library = BlasKnownAnswer.Check(OpenBlas.Product);
        Assert.True(library.Passed, library.ToString());
        var reference = BlasKnownAnswer.Check(Reference);
        Assert.True(reference.Passed, reference.ToString());
        Assert.True(reference.WorstError > 0);   // the check does see rounding, and accepts it
    }

    public static TheoryData<string> Faults => ["A's transpose ignored", "one element off by 1e-3", "operands cut to tf32", "C not written", "row end overwritten", "NaN", "beta ignored"];

    private static float[] ToTf32(ReadOnlySpan<float> x)
    {
        var y = x.ToArray();
        for (int i = 0; i < y.Length; i++) y[i] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(y[i]) & ~0x1FFF);
        return y;
    }

    [Theory]
    [MemberData(nameof(Faults))]
    public void A_wrong_product_is_rejected(string fault)
    {
        var result = BlasKnownAnswer.Check((ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) =>
        {
            if (fault == "C not written") return;
            if (fault == "operands cut to tf32") { a = ToTf32(a); b = ToTf32(b); }   // a reduced-precision kernel (10-bit mantissas)
            Reference(fault == "A's transpose ignored" ? false : ta, tb, m, n, k, alpha, a, lda, b, ldb, fault == "beta ignored" ? 0 : beta, c, ldc);
            if (fault == "one element off by 1e-3") c[17 * ldc + 5] *= 1.001f;
            if (fault == "row end overwritten" && ldc > n) c[3 * ldc + n] = 0;
            if (fault == "NaN") c[(m - 1) * ldc] = float.NaN;
        });
        Assert.False(result.Passed, $"{fault}: {result}");
    }
}

public class BlasKernelFamilyTests
{
    [Fact]
    public void A_private_instance_initialises_with_the_family_asked_for_through_the_native_environment()
    {
        if (!System.Runtime.Intrinsics.X86.X86Base.IsSupported || !OperatingSystem.IsLinux()) return;   // x86-64 Linux only
        var (core, product) = OpenBlas.Peek("generic");
        Assert.Equal("Prescott", core);
        Assert.True(BlasKnownAnswer.Check(product).Passed);
        Assert.Equal(Environment.GetEnvironmentVariable("OPENBLAS_CORETYPE"), NativeEnvironment.Get("OPENBLAS_CORETYPE"));   // changed only for the load
        Assert.Contains("kernels (", OpenBlas.KernelDescription);
        var e = Assert.Throws<FloraException>(() => OpenBlas.Peek("Pentium4"));
        Assert.Contains("auto, detected, generic", e.Message);
    }

    [Fact]
    public async Task Bench_train_times_two_families_in_one_run_and_a_users_OPENBLAS_CORETYPE_wins()
    {
        if (!System.Runtime.Intrinsics.X86.Avx.IsSupported || !OperatingSystem.IsLinux()) return;   // Sandybridge needs AVX
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Flora.Cli.dll"));
        foreach (string a in "bench train --model gpt-tiny --tokenizer bpe:512 --steps 1 --warmup 1 --batch 1 --seq-len 16 --blas-family auto,generic".Split(' '))
            info.ArgumentList.Add(a);
        info.Environment["OPENBLAS_CORETYPE"] = "Sandybridge";
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2))) await process.WaitForExitAsync(timeout.Token);
        string output = System.Text.RegularExpressions.Regex.Replace(await stdout, @"\s+", " ");   // undo the console's wrapping
        Assert.True(process.ExitCode == 0, output + await stderr);
        Assert.Contains("Sandybridge kernels (user OPENBLAS_CORETYPE=Sandybridge", output);
        Assert.Contains("gpt-tiny, flora r=32: Sandybridge ", output);
        Assert.Contains(" tokens/s against Prescott ", output);
    }

    [Fact]
    public void Kernel_comparison_divides_the_first_familys_best_tokens_per_second_by_each_others()
    {
        TrainBenchRow Row(string kernels, double tokens) =>
            new("gpt-small", "flora r=32", false, 1, 8, 128, 1, tokens, double.NaN, 0, 0, 0, 0.8, 0, 0, 0) { BlasKernels = kernels };
        var lines = TrainBenchmark.KernelComparison([Row("Cooperlake", 5000), Row("Prescott", 1250)]).ToList();
        Assert.Equal(["gpt-small, flora r=32: Cooperlake 5,000 tokens/s against Prescott 1,250 tokens/s: 4.00x"], lines);
        Assert.Empty(TrainBenchmark.KernelComparison([Row("Haswell", 5000), Row("Haswell", 4000)]));
        lines = TrainBenchmark.KernelComparison([Row("Cooperlake", 1600), Row("Prescott", 600), Row("Cooperlake", 4000), Row("Prescott", 1000)]).ToList();
        Assert.Equal(["gpt-small, flora r=32: Cooperlake 4,000 tokens/s against Prescott 1,000 tokens/s: 4.00x (best of 2 and 2 runs)"], lines);
    }
}
