using System.Runtime.InteropServices;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary>
/// Ctrl+C (SIGINT) and SIGTERM as a request to stop: the first one cancels <see cref="Token"/> and says what will
/// happen (finish the step and write a checkpoint while training; stop before training while preparing), the
/// second one ends the process at once. <see cref="ExitCode"/> is 128 plus the signal's number.
/// </summary>
internal sealed class StopSignals : IDisposable
{
    private readonly CancellationTokenSource _cancel = new();
    private readonly IAnsiConsole _console;
    private readonly PosixSignalRegistration _interrupt, _terminate;

    public StopSignals(IAnsiConsole console)
    {
        _console = console;
        _interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => Stop(c, 130, "Ctrl+C"));
        _terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => Stop(c, 143, "SIGTERM"));
    }

    public CancellationToken Token => _cancel.Token;

    /// <summary>Set once training steps run (a stop then writes a checkpoint).</summary>
    public bool Training { get; set; }

    /// <summary>130 after SIGINT, 143 after SIGTERM.</summary>
    public int ExitCode { get; private set; }

    private void Stop(PosixSignalContext context, int exitCode, string name)
    {
        if (_cancel.IsCancellationRequested) return;                         // the second signal: the default action, the process ends
        context.Cancel = true;
        ExitCode = exitCode;
        _console.MarkupLine(Training
            ? $"[yellow]{name}: stopping after this step; writing a checkpoint[/]"
            : $"[yellow]{name} while preparing: stopping before training (no checkpoint to write); send it again to stop at once[/]");
        _cancel.Cancel();
    }

    public void Dispose()
    {
        _interrupt.Dispose();
        _terminate.Dispose();
        _cancel.Dispose();
    }
}
