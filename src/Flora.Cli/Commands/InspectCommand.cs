using System.CommandLine;
using System.Globalization;
using Flora.Checkpoints;
using Flora.Nn.Models.HuggingFace;
using Flora.Training;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary>
/// <c>flora inspect FILE</c>: the metadata and the tensors of a safetensors file; a file of a checkpoint is checked
/// against the checkpoint's manifest. <c>flora inspect DIR</c>: a Hugging Face model directory's configuration, parameter
/// count, weight files and tokenizer files (headers only: nothing is loaded). <c>flora inspect --verify PATH</c> checks a
/// whole checkpoint (a run directory, a checkpoint directory or one of its files): every checksum, and every weight finite.
/// </summary>
internal static class InspectCommand
{
    public static Command Create(IAnsiConsole console, TextWriter error)
    {
        var file = new Argument<string>("file") { Description = "a .safetensors file (a Flora checkpoint or a Hugging Face model), or a Hugging Face model directory; with --verify also a checkpoint or run directory" };
        var verify = new Option<bool>("--verify") { Description = "verify the whole checkpoint: the checksums of its manifest, and that every weight is finite" };
        var command = new Command("inspect", "Print the metadata and the tensors (name, dtype, shape, size) of a safetensors file, or the configuration and parameter count of a Hugging Face model directory; --verify checks a checkpoint.")
        {
            file, verify,
        };
        command.SetAction(parse => CommandGuard.Run(error, () =>
        {
            string path = parse.GetValue(file)!;
            if (parse.GetValue(verify)) return Verify(console, path);
            if (Directory.Exists(path) && HfDirectory.IsModelDirectory(path) && !File.Exists(Path.Combine(path, TrainingCheckpoint.StateFile)))
            {
                Print(console, HfDirectory.Open(path));
                return 0;
            }
            if (Directory.Exists(path)) throw new FloraException($"{path} is a directory but not a Hugging Face model directory: give a .safetensors file, a model directory, or --verify to check a checkpoint");
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

    private static void Print(IAnsiConsole console, HfDirectory directory)
    {
        var c = directory.Config;
        console.MarkupLine($"[bold]{Markup.Escape(directory.Path)}[/]: {c.ClassName} (model_type {c.ModelType}), {c.ParameterCount:N0} parameters");
        var table = new Table().AddColumns("setting", "value");
        void Row(string name, object? value) => table.AddRow(Markup.Escape(name), Markup.Escape(Convert.ToString(value, CultureInfo.InvariantCulture) ?? ""));
        if (c.Gpt2 is { } g)
        {
            Row("layers", g.Layers); Row("heads", g.Heads); Row("hidden size", g.Embed); Row("MLP width", g.InnerSize);
            Row("vocabulary", g.Vocabulary); Row("positions", g.Context); Row("layer norm epsilon", g.LayerNormEps); Row("tied embeddings", true);
        }
        else if (c.Llama is { } l)
        {
            Row("layers", l.Layers); Row("heads (key/value)", $"{l.Heads} ({l.KvHeads})"); Row("head size", l.HeadSize); Row("hidden size", l.Embed);
            Row("MLP width (SwiGLU)", l.Intermediate); Row("vocabulary", l.Vocabulary); Row("positions", l.Context); Row("rms norm epsilon", l.NormEps);
            Row("rope theta", l.RopeTheta);
            Row("rope scaling", l.RopeScaling is { } s ? $"llama3: factor {s.Factor}, low {s.LowFrequencyFactor}, high {s.HighFrequencyFactor}, original {s.OriginalContext}" : "none");
            Row("q/k/v biases", l.AttentionBias); Row("tied embeddings", l.TiedEmbeddings); Row("sliding window", l.SlidingWindow?.ToString(CultureInfo.InvariantCulture) ?? "none");
        }
        console.Write(table);
        long bytes = directory.WeightFiles.Sum(f => new FileInfo(f).Length);
        console.MarkupLine($"weights: {directory.WeightFiles.Count} file(s), {Mib(bytes)} MiB, {directory.StoredElements:N0} elements stored as "
            + Markup.Escape(string.Join(", ", directory.StoredDTypes.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key} ({kv.Value} tensors)"))));
        var tokenizer = directory.TokenizerFiles;
        console.MarkupLine("tokenizer: " + (tokenizer.Count == 0 ? "none" : Markup.Escape(string.Join(", ", tokenizer))));
    }

    private static string Mib(long bytes) => (bytes / (1024.0 * 1024.0)).ToString("F3", CultureInfo.InvariantCulture);
}
