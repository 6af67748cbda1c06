using System.CommandLine;
using System.CommandLine.Parsing;
using Flora.Cli.Commands;
using Spectre.Console;

namespace Flora.Cli;

/// <summary>
/// The <c>flora</c> command line. Every command runs inside <see cref="CommandGuard.Run"/>: a user error
/// (<see cref="FloraException"/>, a bad argument, an unwritable file) ends with one line on stderr
/// and exit code 1; a parse error with exit code 2; anything else is an internal error (exit 70),
/// with the stack trace only when FLORA_DEBUG is set.
/// </summary>
public static class FloraCli
{
    public const int UserError = CommandGuard.UserError, UsageError = CommandGuard.UsageError, InternalError = CommandGuard.InternalError;

    public static int Run(string[] args, IAnsiConsole? console = null, TextWriter? error = null)
    {
        console ??= DefaultConsole();
        error ??= Console.Error;
        var parsed = CreateRoot(console, error).Parse(args);
        if (parsed.Errors.Count > 0)
        {
            // Errors about a value (an option's or an argument's) first: they name the problem; the rest follow from it.
            foreach (var e in parsed.Errors.OrderBy(e => e.SymbolResult is CommandResult ? 1 : 0)) error.WriteLine($"error: {e.Message}");
            error.WriteLine("run 'flora --help' for usage");
            return UsageError;
        }
        // Help goes where the commands' own output goes (the console given, a test's writer).
        return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false, Error = error, Output = console.Profile.Out.Writer });
    }

    /// <summary>The <c>flora</c> command and its subcommands, writing to <paramref name="console"/> and <paramref name="error"/>.</summary>
    public static RootCommand CreateRoot(IAnsiConsole console, TextWriter error)
    {
        var root = new RootCommand("Flora: train neural networks with FLORA, low-rank gradient compression (Hao, Cao, Mou, ICML 2024).");
        root.Subcommands.Add(TrainCommand.Create(console, error));
        root.Subcommands.Add(LaunchCommand.Create(console, error));
        root.Subcommands.Add(GenerateCommand.Create(console, error));
        root.Subcommands.Add(EvalCommand.Create(console, error));
        root.Subcommands.Add(CheckCommand.Create(console, error));
        root.Subcommands.Add(PilotCommand.Create(console, error));
        root.Subcommands.Add(BenchCommand.Create(console, error));
        root.Subcommands.Add(TheoryCommand.Create(console, error));
        root.Subcommands.Add(MemoryCommand.Create(console, error));
        root.Subcommands.Add(InspectCommand.Create(console, error));
        root.Subcommands.Add(DataCommand.Create(console, error));
        root.Subcommands.Add(ReproduceCommand.Create(console, error));
        return root;
    }

    /// <summary>
    /// The terminal when there is one; when output is redirected (a CI log, a file, a pipe), <see cref="Redirected"/>.
    /// </summary>
    private static IAnsiConsole DefaultConsole() => Console.IsOutputRedirected ? Redirected(Console.Out) : AnsiConsole.Console;

    /// <summary>
    /// Plain text without colour codes or interaction, and never wrapped: a line of JSON (a checkpoint's options that
    /// <c>flora inspect</c> prints) stays one line that a program can read. Tables keep their natural width.
    /// </summary>
    internal static IAnsiConsole Redirected(TextWriter output)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        });
        console.Profile.Width = UnwrappedWidth;
        return console;
    }

    /// <summary>Columns of a redirected console: wider than any line Flora prints, so nothing wraps.</summary>
    internal const int UnwrappedWidth = 1 << 20;

}
