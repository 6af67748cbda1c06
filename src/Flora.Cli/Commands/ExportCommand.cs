using System.CommandLine;
using System.Globalization;
using Flora.Nn.Models.HuggingFace;
using Flora.Training;
using Spectre.Console;

namespace Flora.Cli.Commands;

/// <summary>
/// <c>flora export --checkpoint RUN --out DIR [--merge-lora | --peft]</c>: a run's model (or a checkpoint's, or a Hugging
/// Face directory's) as a Hugging Face directory that <c>AutoModelForCausalLM.from_pretrained</c> loads.
/// </summary>
internal static class ExportCommand
{
    public static Command Create(IAnsiConsole console, TextWriter error)
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "a run directory (its latest checkpoint), a checkpoint directory or a Hugging Face model directory", Required = true };
        var output = new Option<string>("--out") { Description = "the directory to write (must not exist, or be empty)", Required = true };
        var merge = new Option<bool>("--merge-lora") { Description = "fold LoRA adapters into the weights and write a plain model" };
        var peft = new Option<bool>("--peft") { Description = "write the LoRA adapters alone as a PEFT adapter (adapter_model.safetensors, adapter_config.json)" };
        var shard = new Option<string>("--max-shard-size") { Description = "split the weights into shards of at most this size (bytes, or with KB, MB, GB)", DefaultValueFactory = _ => "5GB" };
        var overwrite = new Option<bool>("--overwrite") { Description = "replace the output directory if it exists" };
        var checkIds = new Option<string?>("--check-ids") { Description = $"also write {ModelExport.CheckFile}: the input_ids of this safetensors file (a fixture's expected.safetensors, say) and Flora's logits for them, which bench/hf_roundtrip.py compares with transformers" };
        var command = new Command("export", "Write a run's model as a Hugging Face directory (config.json, safetensors weights, tokenizer files), or its LoRA adapters as a PEFT adapter.")
        {
            checkpoint, output, merge, peft, shard, overwrite, checkIds,
        };
        command.SetAction(parse => CommandGuard.Run(error, () =>
        {
            if (parse.GetValue(merge) && parse.GetValue(peft)) throw new ArgumentException("--merge-lora and --peft exclude each other");
            var lora = parse.GetValue(merge) ? LoraExport.Merge : parse.GetValue(peft) ? LoraExport.Peft : LoraExport.None;
            long maxShard = ParseSize(parse.GetValue(shard)!);
            string written = ModelExport.Run(parse.GetValue(checkpoint)!, parse.GetValue(output)!, lora, maxShard, parse.GetValue(overwrite), parse.GetValue(checkIds));
            console.MarkupLine($"wrote {Markup.Escape(written)}:");
            foreach (var file in new DirectoryInfo(written).GetFiles().OrderBy(f => f.Name, StringComparer.Ordinal))
                console.MarkupLine($"  {Markup.Escape(file.Name)} ({file.Length:N0} bytes)");
            return 0;
        }));
        return command;
    }

    /// <summary>"5GB", "200MB", "64KB" (powers of 1000, as Hugging Face counts) or plain bytes.</summary>
    internal static long ParseSize(string text)
    {
        string t = text.Trim().ToUpperInvariant();
        long unit = 1;
        foreach (var (suffix, factor) in new[] { ("GB", 1_000_000_000L), ("MB", 1_000_000L), ("KB", 1_000L), ("B", 1L) })
            if (t.EndsWith(suffix, StringComparison.Ordinal)) { unit = factor; t = t[..^suffix.Length].Trim(); break; }
        if (!double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !(value > 0) || !double.IsFinite(value) || value * unit > long.MaxValue)
            throw new ArgumentException($"--max-shard-size must be a positive size such as 5GB, 200MB or 1000000, got '{text}'");
        return (long)(value * unit);
    }
}
