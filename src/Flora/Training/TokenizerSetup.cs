using System.Security.Cryptography;
using Flora.Data.Tokenizers;
using Flora.Reporting;

namespace Flora.Training;

/// <summary>
/// The tokenizer of a run: "gpt2" (GPT-2's, embedded), "bpe:N" (a byte-level BPE of N tokens trained
/// deterministically on the training text and saved in the run's tokenizer/ directory), "hf" (the tokenizer of the
/// Hugging Face directory the run starts from, whose files are copied into the run's tokenizer/ directory), or a
/// directory holding encoder.json and vocab.bpe. Its identity (a SHA-256 of its files, or "gpt2") goes into
/// checkpoints, so that a checkpoint is never read with another tokenizer. A trained tokenizer is saved
/// atomically (tokenizer.tmp, renamed), so a run killed while saving it leaves no half-written tokenizer.
/// </summary>
internal static class TokenizerSetup
{
    public const string Directory = "tokenizer";

    /// <summary>The tokenizer spec of a run that uses its Hugging Face directory's tokenizer.</summary>
    public const string HuggingFace = "hf";

    /// <summary>
    /// The run's tokenizer from <paramref name="spec"/>, trained or copied into the run directory when needed;
    /// <paramref name="huggingFaceDirectory"/> is the model directory whose tokenizer "hf" means.
    /// </summary>
    public static (ITokenizer Tokenizer, string Identity) Prepare(string spec, string runDirectory, Func<string> trainingText, string? huggingFaceDirectory = null)
    {
        if (spec == "gpt2") return (ByteLevelBpe.Gpt2(), "gpt2");
        string saved = Path.Combine(runDirectory, Directory);
        if (spec == HuggingFace)
        {
            if (huggingFaceDirectory is null) throw new ArgumentException("tokenizer 'hf' is the tokenizer of a Hugging Face model directory: start from one with --init-from");
            var (tokenizer, _) = LoadHuggingFace(huggingFaceDirectory);                 // refuses before anything is copied
            if (!System.IO.Directory.Exists(saved))                                      // rank 0 copies; other ranks find the copy
                AtomicDirectory.Write(saved, temporary =>
                {
                    foreach (string name in Flora.Nn.Models.HuggingFace.HfDirectory.TokenizerFileNames)
                        if (File.Exists(Path.Combine(huggingFaceDirectory, name))) File.Copy(Path.Combine(huggingFaceDirectory, name), Path.Combine(temporary, name));
                });
            return (tokenizer, HuggingFaceIdentity(saved));
        }
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
    public static (ITokenizer Tokenizer, string Identity) ForCheckpoint(TrainOptions options, string runDirectory) =>
        options.Tokenizer == "gpt2" ? (ByteLevelBpe.Gpt2(), "gpt2")
        : options.Tokenizer == HuggingFace ? LoadHuggingFace(Path.Combine(runDirectory, Directory))
        : Load(options.Tokenizer.StartsWith("bpe:", StringComparison.Ordinal) ? Path.Combine(runDirectory, Directory) : options.Tokenizer);

    private static (ITokenizer, string) Load(string directory) => (ByteLevelBpe.LoadDirectory(directory), Identity(directory));

    /// <summary>
    /// The tokenizer of a Hugging Face directory and its identity: its tokenizer.json (<see cref="HuggingFaceTokenizer"/>,
    /// with BOS and EOS from tokenizer_config.json), as transformers' fast tokenizers read it; else GPT-2's files
    /// vocab.json and merges.txt (<see cref="ByteLevelBpe"/>).
    /// </summary>
    /// <exception cref="FloraException">The directory has no tokenizer, or one Flora cannot read (the message says why).</exception>
    public static (ITokenizer Tokenizer, string Identity) LoadHuggingFace(string directory)
    {
        if (HuggingFaceTokenizer.IsTokenizerDirectory(directory)) return (HuggingFaceTokenizer.Load(directory), HuggingFaceIdentity(directory));
        string vocab = Path.Combine(directory, "vocab.json"), merges = Path.Combine(directory, "merges.txt");
        if (File.Exists(vocab) && File.Exists(merges)) return (ByteLevelBpe.Load(vocab, merges), HuggingFaceIdentity(directory));
        throw new FloraException($"{directory}: no tokenizer (tokenizer.json, or vocab.json and merges.txt): give --tokenizer");
    }

    /// <summary>SHA-256 over the tokenizer files of a Hugging Face directory (names and contents, in name order).</summary>
    private static string HuggingFaceIdentity(string directory)
    {
        using var sha = SHA256.Create();
        foreach (string name in Flora.Nn.Models.HuggingFace.HfDirectory.TokenizerFileNames.Where(n => n != "generation_config.json").Order(StringComparer.Ordinal))
        {
            string path = Path.Combine(directory, name);
            if (!File.Exists(path)) continue;
            byte[] label = System.Text.Encoding.UTF8.GetBytes(name + "\0");
            sha.TransformBlock(label, 0, label.Length, null, 0);
            byte[] bytes = File.ReadAllBytes(path);
            sha.TransformBlock(bytes, 0, bytes.Length, null, 0);
        }
        sha.TransformFinalBlock([], 0, 0);
        return "hf:" + Convert.ToHexString(sha.Hash!).ToLowerInvariant();
    }

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
