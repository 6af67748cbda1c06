namespace Flora.Cli.Commands;

/// <summary>Runs a command's body: a user error ends with one line on stderr and exit code 1, anything else is an internal error (70).</summary>
internal static class CommandGuard
{
    /// <summary>Exit codes: a user error (bad input, missing file), a command-line usage error, an internal error.</summary>
    public const int UserError = 1, UsageError = 2, InternalError = 70;

    /// <summary>Runs a command body and turns exceptions into one-line errors and exit codes.</summary>
    public static int Run(TextWriter error, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is FloraException or ArgumentException or IOException or UnauthorizedAccessException or InvalidDataException)
        {
            error.WriteLine($"error: {OneLine(e.Message)}");
            if (Environment.GetEnvironmentVariable("FLORA_DEBUG") is not null) error.WriteLine(e);
            return UserError;
        }
        catch (Exception e)
        {
            error.WriteLine($"internal error: {e.GetType().Name}: {OneLine(e.Message)} (set FLORA_DEBUG=1 for the stack trace)");
            if (Environment.GetEnvironmentVariable("FLORA_DEBUG") is not null) error.WriteLine(e);
            return InternalError;
        }
    }

    private static string OneLine(string message) => message.ReplaceLineEndings(" ").Trim();
}
