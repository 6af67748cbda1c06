using System.Globalization;
using Flora.Cli;
using Spectre.Console;

namespace Flora.Tests;

/// <summary>The flora command in-process for tests, and the CSV files its experiments write.</summary>
internal static class TestCli
{
    /// <summary>Runs <c>flora ARGS</c> with a plain 400-column console; returns the exit code, stdout and stderr.</summary>
    public static (int Code, string Out, string Error) RunCli(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(output),
        });
        console.Profile.Width = 400;
        int code = FloraCli.Run(args, console, error);
        return (code, output.ToString(), error.ToString());
    }

    /// <summary>
    /// Rows of a results.csv as column -> text. The command line is the last column and may hold commas, so a row is
    /// split into no more fields than there are columns.
    /// </summary>
    public static List<Dictionary<string, string>> ReadResults(string path)
    {
        var lines = File.ReadAllLines(path);
        var header = lines[0].Split(',');
        return lines.Skip(1).Select(l => header.Zip(l.Split(',', header.Length)).ToDictionary(p => p.First, p => p.Second)).ToList();
    }

    public static long Long(Dictionary<string, string> row, string column) => long.Parse(row[column], CultureInfo.InvariantCulture);
    public static double Double(Dictionary<string, string> row, string column) => double.Parse(row[column], CultureInfo.InvariantCulture);
}
