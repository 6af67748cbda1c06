using System.Security.Cryptography;
using Flora.Data.Tokenizers;
using Flora.Reporting;

namespace Flora.Training;

/// <summary>
/// The tokenizer of a run: "gpt2" (GPT-2's, embedded), "bpe:N" (a byte-level BPE of N tokens trained
/// deterministically on the training text and saved in the run's tokenizer/ directory), or a directory
/// holding encoder.json and vocab.bpe. Its identity (a SHA-256 of its two files, or "gpt2") goes into
/// checkpoints, so that a checkpoint is never read with another tokenizer. A trained tokenizer is saved
/// atomically (tokenizer.tmp, renamed), so a run killed while saving it leaves no half-written tokenizer.
/// </summary>
public static class TokenizerSetup
{
    public const string Directory = "tokenizer";

    public static (ByteLevelBpe Tokenizer, string Identity) Prepare(string spec, string runDirectory, Func<string> trainingText)
    {
        if (spec == "gpt2") return (ByteLevelBpe.Gpt2(), "gpt2");
        string saved = Path.Combine(runDirectory, Directory);
        if (spec.StartsWith("bpe:", StringComparison.Ordinal))
        {
            if (!int.TryParse(spec.AsSpan(4), out int size) || size < 257)
                throw new ArgumentException($"tokenizer '{spec}': the vocabulary size must be an integer of at least 257");
            if (!File.Exists(Path.Combine(saved, "encoder.json")))
            {
                var trainer = new BpeTrainer(size);
                trainer.AddText(trainingText());
                trainer.Train();
                AtomicDirectory.Write(saved, trainer.Save);
            }
            return Load(saved);
        }
        if (!System.IO.Directory.Exists(spec)) throw new FloraException($"tokenizer '{spec}': not 'gpt2', 'bpe:N' or a directory with encoder.json and vocab.bpe");
        foreach (string name in new[] { "encoder.json", "vocab.bpe" })
            if (!File.Exists(Path.Combine(spec, name)) && !File.Exists(Path.Combine(spec, name + ".gz")))
                throw new FloraException($"tokenizer '{spec}': the directory has no {name} (a tokenizer directory holds encoder.json and vocab.bpe)");
        return Load(spec);
    }

    /// <summary>The tokenizer a checkpoint was trained with: GPT-2's, or the run's saved one.</summary>
    public static (ByteLevelBpe Tokenizer, string Identity) ForCheckpoint(TrainOptions options, string runDirectory) =>
        options.Tokenizer == "gpt2" ? (ByteLevelBpe.Gpt2(), "gpt2")
        : Load(options.Tokenizer.StartsWith("bpe:", StringComparison.Ordinal) ? Path.Combine(runDirectory, Directory) : options.Tokenizer);

    private static (ByteLevelBpe, string) Load(string directory) => (ByteLevelBpe.LoadDirectory(directory), Identity(directory));

    public static string Identity(string directory)
    {
        using var sha = SHA256.Create();
        foreach (string name in new[] { "encoder.json", "vocab.bpe" })
        {
            string path = Path.Combine(directory, name);
            if (!File.Exists(path)) path += ".gz";
            byte[] bytes = File.ReadAllBytes(path);
            sha.TransformBlock(bytes, 0, bytes.Length, null, 0);
        }
        sha.TransformFinalBlock([], 0, 0);
        return Convert.ToHexString(sha.Hash!).ToLowerInvariant();
    }
}
