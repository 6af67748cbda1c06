using System.Text.Json;
using System.Text.Json.Nodes;
using Flora.Checkpoints;
using Flora.Data.Tokenizers;
using Flora.Nn.Models.HuggingFace;
using Flora.Tensors;

namespace Flora.Training;

/// <summary>
/// <c>flora export</c>: a run, a checkpoint or a Hugging Face directory written as a Hugging Face directory
/// (<see cref="HfExport"/>) with its tokenizer: a Hugging Face tokenizer's files are copied from where the run keeps
/// them; Flora's byte-level BPE (gpt2, bpe:N or a GPT-2-format directory) is written as GPT-2's vocab.json and
/// merges.txt with a tokenizer_config.json that names GPT2Tokenizer.
/// </summary>
internal static class ModelExport
{
    /// <summary>The file <see cref="Run"/> writes beside the export when asked for a check: input_ids and Flora's logits for them.</summary>
    public const string CheckFile = "flora_check.safetensors";

    /// <summary>
    /// Exports <paramref name="source"/> to <paramref name="output"/>; returns the written directory. With
    /// <paramref name="checkIds"/> (a safetensors file holding input_ids (B, T), I64 or I32, such as a fixture's
    /// expected.safetensors) it also writes <see cref="CheckFile"/> into the export: those ids and the logits (B, T, V)
    /// of the model as Flora computes them before export, for bench/hf_roundtrip.py to compare with transformers.
    /// </summary>
    public static string Run(string source, string output, LoraExport lora = LoraExport.None, long maxShardBytes = 5_000_000_000, bool overwrite = false,
        string? checkIds = null)
    {
        using var loaded = CheckpointModel.Open(source);
        if (lora == LoraExport.Peft) CheckOnlyAdaptersTrained(loaded);
        (int[] Ids, int Batch, float[] Logits)? check = checkIds is null ? null : Logits(loaded, checkIds);
        var options = new HfExportOptions
        {
            Lora = lora,
            MaxShardBytes = maxShardBytes,
            Overwrite = overwrite,
            BaseModel = loaded.Options.Model == Trainer.HuggingFaceModel ? loaded.Options.InitFrom : null,
            WriteTokenizer = directory => WriteTokenizer(loaded, directory),
        };
        string written = HfExport.Save(loaded.Model, output, options);
        if (check is var (ids, batch, logits))
        {
            int length = ids.Length / batch;
            new SafeTensorsWriter().AddMetadata("format", "pt").AddMetadata("source", Path.GetFullPath(source))
                .Add("input_ids", ids.Select(i => (long)i).ToArray(), new Shape(batch, length))
                .Add("logits", logits, new Shape(batch, length, logits.Length / ids.Length))
                .Write(Path.Combine(written, CheckFile));
        }
        return written;
    }

    /// <summary>The ids of <paramref name="path"/> and the loaded model's logits for them (dropout off).</summary>
    private static (int[] Ids, int Batch, float[] Logits) Logits(CheckpointModel loaded, string path)
    {
        using var file = SafeTensorsFile.Open(path);
        var info = file.GetInfo("input_ids");
        if (info.Shape.Count != 2) throw new InvalidDataException($"{path}: input_ids {info.ShapeText} should be (B, T)");
        int[] ids = info.DType == SafeTensorDType.I64 ? file.ReadLongs("input_ids").Select(v => checked((int)v)).ToArray() : file.ReadInts("input_ids");
        if (ids.Any(i => i < 0 || i >= loaded.Model.Vocabulary)) throw new InvalidDataException($"{path}: input_ids outside the model's vocabulary of {loaded.Model.Vocabulary}");
        int batch = (int)info.Shape[0];
        using var t = loaded.Backend.Allocate(new Shape(batch, ids.Length / batch), MemoryTag.Activations, DType.Int32);
        loaded.Backend.Upload(ids, t);
        loaded.Model.Context.Training = false;
        return (ids, batch, loaded.Model.Forward(t).ToArray());
    }

    /// <summary>
    /// A PEFT adapter holds the adapters alone: the run must have started from a Hugging Face directory (the adapter's
    /// base) and left every other weight as it was there; otherwise (embeddings or norms trained too) it is refused, so
    /// that no training is lost silently.
    /// </summary>
    private static void CheckOnlyAdaptersTrained(CheckpointModel loaded)
    {
        var o = loaded.Options;
        if (o.Model != Trainer.HuggingFaceModel || !HfDirectory.IsModelDirectory(o.InitFrom))
            throw new ArgumentException($"a PEFT adapter applies to the Hugging Face model its run started from (--init-from), and {loaded.Directory}'s run has none{(o.InitFrom is null ? "" : $" ({o.InitFrom} is not one, or is gone)")}: export with --merge-lora");
        if (HfDirectory.Open(o.InitFrom!).FirstChangedParameter(loaded.Model) is string changed)
            throw new ArgumentException($"the run trained '{changed}' besides the LoRA adapters, which a PEFT adapter cannot carry: export with --merge-lora");
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
        if (loaded.Tokenizer is not ByteLevelBpe tokenizer)
            throw new InvalidOperationException($"a run's own tokenizer is GPT-2-style byte-level BPE, not {loaded.Tokenizer.GetType().Name}");
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
