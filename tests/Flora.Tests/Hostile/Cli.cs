using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Flora.Cli;

namespace Flora.Tests.Hostile;

/// <summary>What one run of the flora command gave back.</summary>
internal sealed record CliResult(int Code, string Out, string Error, string? Escaped = null)
{
    public string Text => Out + "\n" + Error;

    /// <summary>The first non-blank line of stderr (where errors and warnings go).</summary>
    public string FirstErrorLine => Error.Split('\n').Select(l => l.TrimEnd('\r')).FirstOrDefault(l => l.Trim().Length > 0) ?? "";

    /// <summary>An exception escaped, the runtime aborted (134) or reported an internal error (70), or a stack trace was printed.</summary>
    public bool Crashed => Escaped is not null || Code is 134 or FloraCli.InternalError
        || Text.Contains("   at ", StringComparison.Ordinal) || Text.Contains("Unhandled exception", StringComparison.Ordinal);

    public override string ToString() => $"exit {Code}{(Escaped is null ? "" : $", escaped {Escaped}")}\nstdout: {Tail(Out)}\nstderr: {Tail(Error)}";

    private static string Tail(string s) => s.Length > 2000 ? "..." + s[^2000..] : s;
}

/// <summary>
/// The flora command under test: in this process (the test suite) or a built Flora.Cli.dll run as a process (the
/// census of another version). <see cref="Start"/> always starts a separate process, for signals and for a
/// second writer.
/// </summary>
internal abstract class Cli
{
    public abstract string Name { get; }

    /// <summary>The Flora.Cli.dll that <see cref="Start"/> runs.</summary>
    public abstract string Dll { get; }

    /// <summary>Runs <c>flora ARGS</c> in <paramref name="directory"/> (the working directory of a process; in-process runs get absolute paths only).</summary>
    public abstract CliResult Run(string directory, params string[] args);

    public CliProcess Start(string directory, params string[] args) => new(Dll, directory, args);
}

/// <summary>The command in this process, as the tests of the CLI run it.</summary>
internal sealed class InProcessCli : Cli
{
    public override string Name => "in-process";
    public override string Dll => Path.Combine(AppContext.BaseDirectory, "Flora.Cli.dll");

    public override CliResult Run(string directory, params string[] args)
    {
        try
        {
            var (code, output, error) = TestCli.RunCli(args);
            return new CliResult(code, output, error);
        }
        catch (Exception e)
        {
            return new CliResult(-1, "", e.ToString(), e.GetType().Name);
        }
    }
}

/// <summary>A built Flora.Cli.dll run as a process.</summary>
internal sealed class ProcessCli(string dll) : Cli
{
    public override string Name => dll;
    public override string Dll => dll;

    public override CliResult Run(string directory, params string[] args)
    {
        using var process = Start(directory, args);
        return process.Wait(TimeSpan.FromMinutes(3));
    }
}

/// <summary>flora as a child process, its output collected; killed when disposed if still running.</summary>
internal sealed class CliProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _out = new(), _error = new();

    public CliProcess(string dll, string directory, string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = directory };
        info.ArgumentList.Add(dll);
        foreach (string a in args) info.ArgumentList.Add(a);
        info.Environment.Remove("FLORA_DEBUG");
        _process = Process.Start(info)!;
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_out) _out.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_error) _error.AppendLine(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public int Id => _process.Id;
    public bool HasExited => _process.HasExited;

    public string Output { get { lock (_out) return _out.ToString(); } }

    /// <summary>Waits until <paramref name="condition"/> holds or the process ends; false when it did not hold in time.</summary>
    public bool WaitUntil(Func<bool> condition, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (_process.HasExited || clock.Elapsed > timeout) return condition();
            Thread.Sleep(5);
        }
        return true;
    }

    /// <summary>Sends a signal (SIGINT 2, SIGTERM 15, SIGKILL 9).</summary>
    public void Signal(int signal)
    {
        if (kill(_process.Id, signal) != 0) throw new InvalidOperationException($"kill({_process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    public CliResult Wait(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
            lock (_error) _error.AppendLine($"(killed after {timeout.TotalSeconds:F0} s)");
        }
        _process.WaitForExit();                                              // drains the output
        lock (_out) lock (_error) return new CliResult(_process.ExitCode, _out.ToString(), _error.ToString());
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
        _process.Dispose();
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);
}
