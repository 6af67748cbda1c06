using System.CommandLine;
using System.Globalization;
using Flora.Checkpoints;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary><c>flora inspect FILE</c>: the metadata and the tensors of a safetensors file.</summary>
internal static class InspectCommand
{
    public static Command Create(IAnsiConsole console, TextWriter error)
    {
        var file = new Argument<string>("file") { Description = "a .safetensors file (a Flora checkpoint or a Hugging Face model)" };
        var command = new Command("inspect", "Print the metadata and the tensors (name, dtype, shape, size) of a safetensors file.")
        {
            file,
        };
        command.SetAction(parse => CommandGuard.Run(error, () =>
        {
            using var st = SafeTensorsFile.Open(parse.GetValue(file)!);
            Print(console, st);
            return 0;
        }));
        return command;
    }

    private static void Print(IAnsiConsole console, SafeTensorsFile file)
    {
        long dataBytes = file.FileLength - file.DataStart;
        long elements = file.Tensors.Sum(t => t.ElementCount);
        console.MarkupLine($"[bold]{Markup.Escape(file.Path)}[/]: {file.Tensors.Count} tensors, {elements:N0} elements, "
            + $"{Mib(dataBytes)} MiB of data, header {file.HeaderBytes:N0} bytes");
        if (file.Metadata.Count == 0)
        {
            console.MarkupLine("metadata: none");
        }
        else
        {
            console.MarkupLine("metadata:");
            foreach (var (key, value) in file.Metadata)
                console.MarkupLine($"  {Markup.Escape(key)}: {Markup.Escape(value)}");
        }
        if (file.Tensors.Count == 0) return;
        var table = new Table().AddColumns("name", "dtype", "shape", "MiB");
        table.Columns[3].RightAligned();
        foreach (var t in file.Tensors)
            table.AddRow(Markup.Escape(t.Name), t.DType.Code(), t.ShapeText, Mib(t.ByteCount));
        console.Write(table);
    }

    private static string Mib(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("F3", CultureInfo.InvariantCulture);
}
