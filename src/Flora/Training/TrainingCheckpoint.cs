using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Flora.Backends;
using Flora.Reporting;
using Flora.Checkpoints;
using Flora.Data;
using Flora.Nn;
using Flora.Nn.Models;
using Flora.Nn.Models.HuggingFace;
using Flora.Optim;
using Flora.Tensors;

namespace Flora.Training;

/// <summary>What a checkpoint's state file says about the run, besides the tensors.</summary>
/// <param name="Directory">
/// The checkpoint directory (or the Hugging Face directory a <see cref="CheckpointModel"/> opened).
/// </param>
/// <param name="Step">The step the checkpoint was written after (0 for a Hugging Face directory).</param>
/// <param name="Position">The data position a resumed run continues from.</param>
/// <param name="Options">The run's options, as the run resolved them.</param>
/// <param name="Model">The model in one line.</param>
/// <param name="TokenizerHash">The identity of the run's tokenizer (a SHA-256 of its files, or "gpt2").</param>
public sealed record CheckpointInfo(string Directory, long Step, DataPosition Position, TrainOptions Options, string Model, string TokenizerHash);

/// <summary>
/// Training checkpoints. A checkpoint is a directory checkpoints/step-NNNNNNNN holding
/// <list type="bullet">
/// <item>model.safetensors: the weights under the model's own names (for GPT-2, Hugging Face's, so
/// GPT2LMHeadModel.from_pretrained(dir) loads it together with config.json);</item>
/// <item>state.safetensors: the optimizer state (FLORA's compressed momentum among it), the gradient
/// pipeline's state (accumulators mid-cycle, resampling cycles), and metadata: step, data position,
/// seed, options, model description, tokenizer hash;</item>
/// <item>config.json: the Hugging Face configuration, for GPT-2 and Llama-style models (the source directory's, for a
/// run that started from one: the model of a resumed "hf" run is built from it);</item>
/// <item>manifest.json: the size and SHA-256 of each of these files, checked on every load.</item>
/// </list>
/// It is written into step-NNNNNNNN.tmp, each file flushed to disk, then the directory is renamed and
/// the pointer file checkpoints/latest replaced atomically: a crash at any moment leaves the previous
/// checkpoint intact and pointed to, and a failed write (a full disk) removes the temporary directory. Only
/// the newest <c>keep</c> checkpoints are kept. A checkpoint reference (checkpoints/latest) names a checkpoint
/// of its own run and nothing else.
/// </summary>
internal static partial class TrainingCheckpoint
{
    /// <summary>
    /// How a checkpoint stores its run's options: enums by name ("Official", "Compressed"). Checkpoints written before
    /// (enums as numbers) still read: the converter accepts both.
    /// </summary>
    internal static readonly JsonSerializerOptions OptionsJson = new() { Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } };

    public const string Kind = "flora.training-state";
    public const int Version = 1;
    public const string ModelFile = "model.safetensors", StateFile = "state.safetensors", ConfigFile = "config.json", Latest = "latest";
    /// <summary>The directory of a run's checkpoints (RUN/checkpoints).</summary>
    public const string Directory = "checkpoints";

    [GeneratedRegex(@"^step-[0-9]{8,}$")]
    private static partial Regex StepName();

    public static string Save(string runDirectory, long step, LanguageModel model, Optimizer optimizer, GradientPipeline pipeline,
        DataPosition position, TrainOptions options, string tokenizerHash, int keep)
    {
        string root = Path.Combine(runDirectory, Directory);
        System.IO.Directory.CreateDirectory(root);
        string name = $"step-{step:D8}", final = Path.Combine(root, name);
        try
        {
            WriteCheckpoint(final, step, model, optimizer, pipeline, position, options, tokenizerHash);
        }
        catch (IOException e)
        {
            throw new IOException($"writing checkpoint {final} failed: {e.Message.TrimEnd('.')}; its temporary directory was removed and {Latest} still names the previous checkpoint", e);
        }
        WriteDurably(Path.Combine(root, Latest + ".tmp"), name);
        File.Move(Path.Combine(root, Latest + ".tmp"), Path.Combine(root, Latest), overwrite: true);
        Prune(root, name, keep);
        return final;
    }

    /// <summary>Best checkpoint directory of a run (<see cref="TrainOptions.KeepBest"/>).</summary>
    public const string Best = "best";

    /// <summary>Writes the checkpoint of the best validation loss so far to RUN/best (replacing the previous best atomically).</summary>
    public static string SaveBest(string runDirectory, long step, LanguageModel model, Optimizer optimizer, GradientPipeline pipeline,
        DataPosition position, TrainOptions options, string tokenizerHash)
    {
        string final = Path.Combine(runDirectory, Best);
        WriteCheckpoint(final, step, model, optimizer, pipeline, position, options, tokenizerHash);
        return final;
    }

    /// <summary>Writes a complete checkpoint into <paramref name="final"/> through a temporary directory renamed at the end.</summary>
    private static void WriteCheckpoint(string final, long step, LanguageModel model, Optimizer optimizer, GradientPipeline pipeline,
        DataPosition position, TrainOptions options, string tokenizerHash)
    {
        AtomicDirectory.Write(final, temp => WriteFiles(temp, step, model, optimizer, pipeline, position, options, tokenizerHash));
    }

    private static void WriteFiles(string temp, long step, LanguageModel model, Optimizer optimizer, GradientPipeline pipeline,
        DataPosition position, TrainOptions options, string tokenizerHash)
    {
        var weights = new SafeTensorsWriter().AddMetadata("format", "pt");
        foreach (var p in model.Parameters()) weights.Add(p.Name, p.Value);
        weights.Write(Path.Combine(temp, ModelFile));

        var state = new SafeTensorsWriter()
            .AddMetadata("kind", Kind)
            .AddMetadata("version", Version.ToString(CultureInfo.InvariantCulture))
            .AddMetadata("step", step.ToString(CultureInfo.InvariantCulture))
            .AddMetadata("data_epoch", position.Epoch.ToString(CultureInfo.InvariantCulture))
            .AddMetadata("data_index", position.Index.ToString(CultureInfo.InvariantCulture))
            .AddMetadata("options", JsonSerializer.Serialize(options, OptionsJson))
            .AddMetadata("model", model.Describe())
            .AddMetadata("tokenizer", tokenizerHash);
        OptimizerCheckpoint.AddTo(optimizer, state);
        pipeline.SaveState(state, "pipeline/");
        state.Write(Path.Combine(temp, StateFile));

        if (model is Gpt2 or Llama) WriteDurably(Path.Combine(temp, ConfigFile), HfModelConfig.For(model).ToJson());
        CheckpointManifest.Write(temp);
    }

    /// <summary>
    /// The checkpoint directory of <paramref name="path"/>: a checkpoint itself, or a run directory (its latest
    /// checkpoint). checkpoints/latest must name a checkpoint of the same run (step-NNNNNNNN, a directory and not a
    /// link): a reference that leads elsewhere is refused, so a resumed run never writes into another run.
    /// </summary>
    public static string Resolve(string path)
    {
        if (File.Exists(Path.Combine(path, StateFile))) return path;
        if (File.Exists(path)) throw new FloraException($"{path} is a file: give a run directory or a checkpoint directory");
        if (!System.IO.Directory.Exists(path)) throw new FloraException($"{path}: no such run or checkpoint directory");
        string latest = Path.Combine(path, Directory, Latest);
        if (!File.Exists(latest)) throw new FloraException($"{path}: no checkpoint here (neither {StateFile} nor {Directory}/{Latest})");
        string name = File.ReadAllText(latest).Trim();
        if (!StepName().IsMatch(name))
            throw new InvalidDataException($"{latest} names '{name}', which is not a checkpoint of this run (step-NNNNNNNN): a checkpoint reference must stay inside its run directory");
        string dir = Path.Combine(path, Directory, name);
        if (new DirectoryInfo(dir).LinkTarget is string target)
            throw new InvalidDataException($"{dir} is a link to {target}: a checkpoint reference must stay inside its run directory");
        if (!File.Exists(Path.Combine(dir, StateFile))) throw new InvalidDataException($"{latest} points to {dir}, which holds no {StateFile}");
        return dir;
    }

    /// <summary>
    /// The run directory a checkpoint belongs to: RUN for RUN/checkpoints/step-N and for RUN/best; null for a
    /// checkpoint directory outside a run (a copy), which a resumed run must not write around.
    /// </summary>
    public static string? RunDirectoryOf(string checkpointDirectory)
    {
        string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(checkpointDirectory));
        string name = Path.GetFileName(full), parent = Path.GetDirectoryName(full) ?? "";
        if (name == Best) return parent;
        return StepName().IsMatch(name) && Path.GetFileName(parent) == Directory ? Path.GetDirectoryName(parent) : null;
    }

    /// <summary>
    /// Checks the checksums of every file of a checkpoint against its manifest (<see cref="InvalidDataException"/>
    /// naming a damaged or missing file); a checkpoint written before checksums existed is reported unverified.
    /// </summary>
    public static CheckpointVerification Verify(string checkpointDirectory) => CheckpointManifest.Verify(checkpointDirectory);

    /// <summary>Reads a checkpoint's metadata (no tensors), checking its kind and version.</summary>
    public static CheckpointInfo ReadInfo(string checkpointDirectory)
    {
        using var file = SafeTensorsFile.Open(Path.Combine(checkpointDirectory, StateFile));
        string Meta(string key) => file.Metadata.TryGetValue(key, out var v) ? v : throw new InvalidDataException($"{file.Path}: metadata '{key}' is missing");
        if (Meta("kind") != Kind) throw new InvalidDataException($"{file.Path}: not a training state file");
        if (Meta("version") != Version.ToString(CultureInfo.InvariantCulture)) throw new InvalidDataException($"{file.Path}: state version {Meta("version")} is not supported");
        TrainOptions options;
        try { options = JsonSerializer.Deserialize<TrainOptions>(Meta("options"), OptionsJson) ?? throw new InvalidDataException($"{file.Path}: empty options"); }
        catch (JsonException e) { throw new InvalidDataException($"{file.Path}: corrupt options: {e.Message}"); }
        long P(string key) => long.TryParse(Meta(key), NumberStyles.Integer, CultureInfo.InvariantCulture, out long v) && v >= 0 ? v
            : throw new InvalidDataException($"{file.Path}: metadata '{key}' is not a non-negative integer");
        return new CheckpointInfo(checkpointDirectory, P("step"), new DataPosition(P("data_epoch"), P("data_index")), options, Meta("model"), Meta("tokenizer"));
    }

    /// <summary>
    /// Loads weights, optimizer and pipeline state into objects built from the checkpoint's own options, after
    /// checking the checksums; the note of an unverified (older) checkpoint goes to <paramref name="notes"/>.
    /// </summary>
    public static void Load(string checkpointDirectory, LanguageModel model, Optimizer optimizer, GradientPipeline pipeline, ICollection<string>? notes = null)
    {
        LoadWeights(checkpointDirectory, model, notes);
        using var state = SafeTensorsFile.Open(Path.Combine(checkpointDirectory, StateFile));
        OptimizerCheckpoint.LoadFrom(optimizer, state);
        pipeline.LoadState(state, "pipeline/");
    }

    /// <summary>
    /// The model weights alone (generation, evaluation), after checking the checksums; refuses a checkpoint of
    /// another model shape, and weights holding NaN or infinities.
    /// </summary>
    public static void LoadWeights(string checkpointDirectory, LanguageModel model, ICollection<string>? notes = null) =>
        ReadWeights(checkpointDirectory, model, adaptersMayBeMissing: false, notes);

    /// <summary>
    /// Fine-tuning start: copies the weights of <paramref name="checkpointDirectory"/> into every parameter of
    /// <paramref name="model"/>; parameters the file lacks must be LoRA adapters (they keep their initialisation).
    /// Returns how many tensors were loaded.
    /// </summary>
    public static int InitialiseFrom(string checkpointDirectory, LanguageModel model, ICollection<string>? notes = null) =>
        ReadWeights(checkpointDirectory, model, adaptersMayBeMissing: true, notes);

    /// <summary>
    /// Whether every element of <paramref name="t"/> is finite: one sum of squares, through Float32 chunks for a BFloat16
    /// tensor (weights stored in bf16; the reductions read Float32).
    /// </summary>
    internal static bool IsFinite(IBackend backend, Tensor t)
    {
        if (t.DType != DType.BFloat16) return double.IsFinite(backend.SumOfSquares(t));
        const int Chunk = 1 << 22;
        using var wide = backend.Allocate(new Shape(Math.Max(1, Math.Min(Chunk, t.Count))), MemoryTag.Scratch);
        using var flat = t.View(new Shape(t.Count));
        for (int start = 0; start < t.Count; start += Chunk)
        {
            int n = Math.Min(Chunk, t.Count - start);
            using var part = flat.View(new Shape(n), start);
            using var into = wide.View(new Shape(n));
            backend.Copy(part, into);
            if (!double.IsFinite(backend.SumOfSquares(into))) return false;
        }
        return true;
    }

    /// <summary>Reads every parameter the file holds by name (shapes checked); the file must hold exactly the model's tensors, adapters aside when allowed.</summary>
    private static int ReadWeights(string checkpointDirectory, LanguageModel model, bool adaptersMayBeMissing, ICollection<string>? notes)
    {
        if (Verify(checkpointDirectory).Note is string note) notes?.Add(note);
        using var weights = SafeTensorsFile.Open(Path.Combine(checkpointDirectory, ModelFile));
        var parameters = model.Parameters().ToList();
        int loaded = 0;
        foreach (var p in parameters)
        {
            if (weights.Contains(p.Name))
            {
                weights.ReadInto(p.Name, p.Value);
                if (!IsFinite(model.Backend, p.Value))
                    throw new InvalidDataException($"{weights.Path}: tensor '{p.Name}' holds NaN or infinite values (the run had diverged): use an earlier checkpoint");
                loaded++;
            }
            else if (!(adaptersMayBeMissing && LoraLinear.IsAdapter(p.Name)))
                throw new InvalidDataException($"{weights.Path}: no tensor '{p.Name}': the checkpoint holds another model ({weights.Tensors.Count} tensors, this model has {parameters.Count})");
        }
        if (loaded != weights.Tensors.Count)
            throw new InvalidDataException($"{weights.Path}: {weights.Tensors.Count} tensors, {loaded} of them match this model's {parameters.Count} parameters: the checkpoint holds another model");
        return loaded;
    }

    /// <summary>
    /// Keeps <paramref name="current"/> and the <paramref name="keep"/> - 1 newest checkpoints before it. Checkpoints
    /// after it belong to a timeline the run left when it resumed from an earlier checkpoint, and go too.
    /// </summary>
    private static void Prune(string root, string current, int keep)
    {
        var all = System.IO.Directory.GetDirectories(root, "step-*").Select(Path.GetFileName).Where(n => StepName().IsMatch(n!)).ToList();
        var kept = all.Where(n => string.CompareOrdinal(n, current) < 0).OrderByDescending(n => n, StringComparer.Ordinal).Take(keep - 1).Append(current).ToHashSet();
        var old = all.Where(n => !kept.Contains(n)).Select(n => Path.Combine(root, n!));
        foreach (string dir in old) System.IO.Directory.Delete(dir, recursive: true);
    }

    private static void WriteDurably(string path, string text)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        using (var writer = new StreamWriter(stream, leaveOpen: true)) writer.Write(text);
        stream.Flush(flushToDisk: true);
    }
}
