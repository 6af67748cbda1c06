using System.CommandLine;
using System.Globalization;
using Flora.Checkpoints;
using Flora.Training;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary>
/// <c>flora inspect FILE</c>: the metadata and the tensors of a safetensors file; a file of a checkpoint is checked
/// against the checkpoint's manifest. <c>flora inspect --verify PATH</c> checks a whole checkpoint (a run directory,
/// a checkpoint directory or one of its files): every checksum, and every weight finite.
/// </summary>
internal static class InspectCommand
{
    public static Command Create(IAnsiConsole console, TextWriter error)
    {
        var file = new Argument<string>("file") { Description = "a .safetensors file (a Flora checkpoint or a Hugging Face model); with --verify also a checkpoint or run directory" };
        var verify = new Option<bool>("--verify") { Description = "verify the whole checkpoint: the checksums of its manifest, and that every weight is finite" };
        var command = new Command("inspect", "Print the metadata and the tensors (name, dtype, shape, size) of a safetensors file; --verify checks a checkpoint.")
        {
            file, verify,
        };
        command.SetAction(parse => CommandGuard.Run(error, () =>
        {
            string path = parse.GetValue(file)!;
            if (parse.GetValue(verify)) return Verify(console, path);
            if (Directory.Exists(path)) throw new FloraException($"{path} is a directory: give a .safetensors file, or --verify to check a checkpoint");
            var check = CheckpointManifest.Verify(Path.GetDirectoryName(Path.GetFullPath(path))!, Path.GetFileName(path));
            using var st = SafeTensorsFile.Open(path);
            Print(console, st);
            if (check.Verified) console.MarkupLine($"checksum: matches {CheckpointManifest.FileName} (sha256 {check.Files[0].Sha256[..12]})");
            return 0;
        }));
        return command;
    }

    /// <summary>Checks every file of the checkpoint <paramref name="path"/> names, then that every floating-point weight is finite.</summary>
    private static int Verify(IAnsiConsole console, string path)
    {
        string directory = File.Exists(path) ? Path.GetDirectoryName(Path.GetFullPath(path))! : TrainingCheckpoint.Resolve(path);
        var check = TrainingCheckpoint.Verify(directory);
        if (!check.Verified) throw new FloraException($"{directory} has no {CheckpointManifest.FileName} (written by an older flora): its files cannot be verified");
        foreach (var f in check.Files) console.MarkupLine(Markup.Escape($"ok  {f.Name}  {f.Bytes:N0} bytes  sha256 {f.Sha256}"));
        string weights = Path.Combine(directory, TrainingCheckpoint.ModelFile);
        if (File.Exists(weights))
        {
            using var st = SafeTensorsFile.Open(weights);
            foreach (var t in st.Tensors.Where(t => t.DType == SafeTensorDType.F32))
                if (st.ReadFloats(t.Name).Any(v => !float.IsFinite(v)))
                    throw new FloraException($"{weights}: tensor '{t.Name}' holds NaN or infinite values (the run had diverged)");
            console.MarkupLine($"ok  every weight of {st.Tensors.Count} tensors is finite");
        }
        console.MarkupLine(Markup.Escape($"verified {directory}: {check.Files.Count} files match {CheckpointManifest.FileName}"));
        return 0;
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
