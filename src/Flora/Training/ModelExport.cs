using System.Text.Json;
using System.Text.Json.Nodes;
using Flora.Nn.Models.HuggingFace;

namespace Flora.Training;

/// <summary>
/// <c>flora export</c>: a run, a checkpoint or a Hugging Face directory written as a Hugging Face directory
/// (<see cref="HfExport"/>) with its tokenizer: a Hugging Face tokenizer's files are copied from where the run keeps
/// them; Flora's byte-level BPE (gpt2, bpe:N or a GPT-2-format directory) is written as GPT-2's vocab.json and
/// merges.txt with a tokenizer_config.json that names GPT2Tokenizer.
/// </summary>
public static class ModelExport
{
    /// <summary>Exports <paramref name="source"/> to <paramref name="output"/>; returns the written directory.</summary>
    public static string Run(string source, string output, LoraExport lora = LoraExport.None, long maxShardBytes = 5_000_000_000, bool overwrite = false)
    {
        using var loaded = CheckpointModel.Open(source);
        var options = new HfExportOptions
        {
            Lora = lora,
            MaxShardBytes = maxShardBytes,
            Overwrite = overwrite,
            BaseModel = loaded.Options.Model == Trainer.HuggingFaceModel ? loaded.Options.InitFrom : null,
            WriteTokenizer = directory => WriteTokenizer(loaded, directory),
        };
        return HfExport.Save(loaded.Model, output, options);
    }

    /// <summary>The tokenizer files of <paramref name="loaded"/> into <paramref name="directory"/>.</summary>
    public static void WriteTokenizer(CheckpointModel loaded, string directory)
    {
        if (loaded.HuggingFaceTokenizerDirectory is string from)
        {
            foreach (string name in HfDirectory.TokenizerFileNames)
                if (File.Exists(Path.Combine(from, name))) File.Copy(Path.Combine(from, name), Path.Combine(directory, name), overwrite: true);
            return;
        }
        var tokenizer = loaded.Tokenizer;
        string staging = Path.Combine(directory, ".tokenizer");
        tokenizer.Save(staging);                                                    // encoder.json and vocab.bpe: GPT-2's formats
        File.Move(Path.Combine(staging, "encoder.json"), Path.Combine(directory, "vocab.json"));
        File.Move(Path.Combine(staging, "vocab.bpe"), Path.Combine(directory, "merges.txt"));
        Directory.Delete(staging, recursive: true);
        string? special = tokenizer.EndOfText is int id ? tokenizer.TokenString(id) : null;
        var config = new JsonObject
        {
            ["tokenizer_class"] = "GPT2Tokenizer",
            ["add_prefix_space"] = false,
            ["model_max_length"] = loaded.Model.MaxSequenceLength,
            ["bos_token"] = special,
            ["eos_token"] = special,
            ["unk_token"] = special,
        };
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }
}
