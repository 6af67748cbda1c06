using System.Diagnostics;

namespace Flora.Tests.Cli;

/// <summary>
/// The <c>./flora</c> wrapper at the repository root, run by bash in a copy of its checkout layout whose path has a
/// space, with a stand-in <c>dotnet</c> that logs whether it built or ran: it builds when (and only when) a
/// source is newer than the last build, and always runs the command, with its exit code.
/// </summary>
public class WrapperScriptTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("flora-wrapper-").FullName;
    private readonly string _checkout, _log;

    public WrapperScriptTests()
    {
        _checkout = Path.Combine(_temp, "a checkout with spaces");
        _log = Path.Combine(_temp, "dotnet.log");
        Directory.CreateDirectory(Path.Combine(_checkout, "src", "Flora.Cli", "obj"));
        Directory.CreateDirectory(Path.Combine(_checkout, "src", "Flora", "Training"));
        File.Copy(Path.Combine(RepositoryRoot(), "flora"), Path.Combine(_checkout, "flora"));
        File.WriteAllText(Path.Combine(_checkout, "src", "Flora", "Training", "Trainer.cs"), "// a source\n");
        string fakeBin = Path.Combine(_temp, "bin");
        Directory.CreateDirectory(fakeBin);
        // The stand-in dotnet: "build" makes the DLL, anything else is a run of the command.
        File.WriteAllText(Path.Combine(fakeBin, "dotnet"), $$"""
            #!/usr/bin/env bash
            if [ "$1" = build ]; then
              echo build >> '{{_log}}'
              mkdir -p "$2/bin/Release/net10.0" && touch "$2/bin/Release/net10.0/Flora.Cli.dll"
            else
              echo "run ${*:2}" >> '{{_log}}'
              echo "ran ${*:2}"
              exit 3
            fi
            """);
        if (OperatingSystem.IsWindows()) throw new PlatformNotSupportedException("the wrapper is a bash script");
        File.SetUnixFileMode(Path.Combine(fakeBin, "dotnet"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        _path = fakeBin + ":" + Environment.GetEnvironmentVariable("PATH");
    }

    private readonly string _path;

    internal static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "flora")) && File.Exists(Path.Combine(dir.FullName, "Flora.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no repository root above {AppContext.BaseDirectory}");
    }

    /// <summary>Runs the wrapper; returns its exit code, its output and what the stand-in dotnet did.</summary>
    private (int Code, string Output, string[] Log) Wrapper(params string[] args)
    {
        File.WriteAllText(_log, "");
        var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = _temp };
        info.ArgumentList.Add(Path.Combine(_checkout, "flora"));
        foreach (string a in args) info.ArgumentList.Add(a);
        info.Environment["PATH"] = _path;
        using var p = Process.Start(info)!;
        string output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output, File.ReadAllLines(_log));
    }

    private void Touch(string relative, int secondsFromNow)
    {
        string path = Path.Combine(_checkout, relative);
        if (!File.Exists(path)) File.WriteAllText(path, "// generated\n");
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddSeconds(secondsFromNow));
    }

    [Fact]
    public void Builds_only_when_a_source_is_newer_than_the_last_build_even_in_a_path_with_spaces()
    {
        var first = Wrapper("train", "--quick");
        Assert.Equal(["build", "run train --quick"], first.Log);
        Assert.Equal(3, first.Code);                                          // the command's exit code comes through
        Assert.Contains("ran train --quick", first.Output);

        Assert.Equal(["run --help"], Wrapper("--help").Log);                  // up to date: no build

        Touch("src/Flora.Cli/obj/Generated.g.cs", 60);                       // build outputs do not count
        Touch("src/Flora.Cli/bin/Release/net10.0/Flora.Cli.deps.json", 60);
        Assert.Equal(["run --help"], Wrapper("--help").Log);

        Touch("src/Flora/Training/Trainer.cs", 60);                          // an edited source does
        Assert.Equal(["build", "run --help"], Wrapper("--help").Log);
        Touch("src/Flora/Training/Trainer.cs", -60);
        Assert.Equal(["run --help"], Wrapper("--help").Log);
    }

    [Fact]
    public void The_freshness_check_never_fails_the_command()
    {
        Wrapper("--help");
        for (int i = 0; i < 10; i++) File.WriteAllText(Path.Combine(_checkout, "src", "Flora", $"Source{i}.cs"), "// many sources\n");
        for (int i = 0; i < 20; i++)
        {
            var r = Wrapper("--version");
            Assert.True(r.Code == 3 && r.Output.Contains("ran --version"), $"run {i}: exit {r.Code}: {r.Output}");
        }
    }

    public void Dispose() => Directory.Delete(_temp, recursive: true);
}
