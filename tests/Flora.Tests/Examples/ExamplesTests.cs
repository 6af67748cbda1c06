using System.Diagnostics;

namespace Flora.Tests.Examples;

/// <summary>
/// The programs under examples/ build from their own project files and do what they say; and the custom loop builds
/// against the packed core package alone, in a fresh project outside the repository. One class, so they run one at
/// a time (they build).
/// </summary>
public sealed class ExamplesTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-examples-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public void The_custom_loop_resumes_bit_for_bit()
    {
        var (code, output) = Dotnet(Root, "run", "--project", Path.Combine(Root, "examples", "CustomLoop"), "-c", "Release", "--", _temp);
        Assert.True(code == 0, output);
        Assert.Contains("resumed run identical: yes", output);
    }

    [Fact]
    public void LoRA_fine_tuning_merges_without_changing_the_model()
    {
        var (code, output) = Dotnet(Root, "run", "--project", Path.Combine(Root, "examples", "LoraFineTune"), "-c", "Release", "--", _temp);
        Assert.True(code == 0, output);
        Assert.Contains("merge keeps the fine-tuned model: yes", output);
    }

    [Fact]
    public void The_CUDA_loop_runs_or_says_why_not()
    {
        var (code, output) = Dotnet(Root, "run", "--project", Path.Combine(Root, "examples", "CudaLoop"), "-c", "Release");
        Assert.True(code == 0, output);
        Assert.True(output.Contains("no CUDA GPU here, skipped:") || output.Contains("first loss on the CPU"), output);
    }

    [Fact]
    public void A_fresh_project_with_only_the_packed_core_package_runs_the_custom_loop()
    {
        string feed = Path.Combine(_temp, "feed"), project = Path.Combine(_temp, "fresh");
        var (packed, packOutput) = Dotnet(Root, "pack", Path.Combine(Root, "src", "Flora"), "-c", "Release", "-o", feed);
        Assert.True(packed == 0, packOutput);
        string package = Assert.Single(Directory.GetFiles(feed, "Flora.*.nupkg"), f => !f.EndsWith(".snupkg", StringComparison.Ordinal));
        string version = Path.GetFileNameWithoutExtension(package)["Flora.".Length..];

        Directory.CreateDirectory(project);
        File.Copy(Path.Combine(Root, "examples", "CustomLoop", "Program.cs"), Path.Combine(project, "Program.cs"));
        File.WriteAllText(Path.Combine(project, "Fresh.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
                <RestorePackagesPath>$(MSBuildThisFileDirectory)packages</RestorePackagesPath>
                <RestoreFallbackFolders>$(NuGetPackageRoot)</RestoreFallbackFolders>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="Flora" Version="{version}" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(project, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="local" value="{feed}" />
              </packageSources>
            </configuration>
            """);
        var (code, output) = Dotnet(project, "run", "-c", "Release", "--", Path.Combine(_temp, "run"));
        Assert.True(code == 0, output);
        Assert.Contains("resumed run identical: yes", output);
        Assert.DoesNotContain(Directory.GetFiles(Path.Combine(project, "bin"), "*.dll", SearchOption.AllDirectories),
            f => Path.GetFileName(f) is "Flora.Experiments.dll" or "Flora.Cli.dll");
    }

    private static string Root => TestUtil.RepositoryRoot;

    /// <summary>Runs the dotnet command in <paramref name="directory"/>; returns its exit code and its output (stdout and stderr).</summary>
    private static (int Code, string Output) Dotnet(string directory, params string[] args)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string a in args) start.ArgumentList.Add(a);
        // The test run's own MSBuild settings must not leak into these builds.
        foreach (string key in start.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToArray())
            start.Environment.Remove(key);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout + stderr.Result);
    }
}
